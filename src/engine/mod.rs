//! The discrete-event engine: one event queue, pluggable agents, integer-nanosecond time.
//!
//! Events are delivered in the total order (time, class, source agent, per-source sequence), so a run is a
//! pure function of its agents, their initial state and the master seed. Handlers are synchronous: an agent
//! receives an [`Event`] and a [`Ctx`] through which it sends, schedules and cancels events, draws random
//! streams, folds outputs into the run digest, or asks the run to stop. There is no async executor and no
//! global state; one [`Simulation`] is one run on one thread (parallelism lives in `sweep`, across runs).

mod digest;
pub mod phold;
mod rng;
mod sim;
mod time;

pub use digest::Digest;
pub use rng::{SimRng, derive_seed, derive_seed_next, derive_seed_start, mix64, purpose_id, stream};
pub use sim::{Agent, AgentId, Ctx, EngineError, Event, EventId, MAX_AGENTS, RunStats, Simulation, Stop, class};
pub use time::{NS_PER_MS, NS_PER_S, NS_PER_US, SimDuration, SimTime, format_duration, parse_duration};
