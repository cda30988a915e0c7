//! gridtwin: a deterministic discrete-event simulator and digital twin of smart low-voltage grids.
//!
//! See `ARCHITECTURE.md` for the code map. The simulation path is deterministic bit for bit:
//! integer-nanosecond time, per-agent RNG streams, no hash-map iteration, no wall clock.
#![forbid(unsafe_code)]
// Input errors carry their source snippet for display; they only travel on cold paths.
#![allow(clippy::result_large_err)]

pub mod agents;
pub mod bridge;
pub mod chain;
pub mod cli;
pub mod engine;
pub mod grid;
pub mod market;
pub mod mesh;
pub mod plan;
pub mod report;
pub mod scenario;
pub mod sweep;
pub mod twin;
pub mod world;
