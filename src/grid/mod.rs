//! Grid physics: three-phase LV networks, power flow, short circuits, faults, loads and generation.
//!
//! - [`network`]: the network model and the import of the neutral `network.json` format (kV, ohm, MW).
//! - [`topology`]: compilation into per-unit sequence admittance primitives (switch states applied).
//! - [`sparse`]: sparse LU with minimum-degree ordering, symbolic work reused between refactorisations.
//! - [`powerflow`]: balanced and unbalanced power flow (fixed-point current injection on factorised
//!   sequence networks), faults and open conductors by compensation.
//! - [`fourwire`]: phase-domain power flow of 4-wire LV networks (explicit neutral, earthing, broken
//!   neutral), Newton-Raphson on the sparse LU.
//! - [`shortcircuit`]: IEC 60909 initial symmetrical currents.
//! - [`model`]: [`GridModel`], the simulation-facing state (loads, generators, switches, faults) and its
//!   solved snapshot.
//! - [`profiles`]: household load profiles (BDEW H0), PV, wind, hydro and biogas generation.
//! - [`agents`]: the grid and weather agents on the event queue, and [`GridMsg`].
//! - [`config`]: the scenario section [`GridConfig`].

pub mod agents;
pub mod config;
// Index loops here mirror the per-phase and matrix algebra they implement.
#[allow(clippy::needless_range_loop)]
pub mod fourwire;
// Index loops here mirror the per-phase and matrix algebra they implement.
pub mod harmonics;
#[allow(clippy::needless_range_loop)]
pub mod model;
pub mod network;
pub mod powerflow;
pub mod profiles;
pub mod shortcircuit;
// Index loops here mirror the per-phase and matrix algebra they implement.
#[allow(clippy::needless_range_loop)]
pub mod sparse;
// Index loops here mirror the per-phase and matrix algebra they implement.
#[allow(clippy::needless_range_loop)]
pub mod topology;

pub use model::{Fault, FaultKind, FaultLocation, GridModel, GridSnapshot, LoadId, Phase};
pub use network::Network;

pub use agents::{GridAgent, GridMsg, WeatherAgent};
pub use config::GridConfig;
