//! The LMU part of a world: LMU agents on the feeder's poles (sensor and contactor twins around the
//! firmware), the scenario's faults on the grid agent, and the `faults` report.

use super::Part;
use crate::agents::Msg;
use crate::engine::{AgentId, Simulation};
use crate::report::Report;
use crate::scenario::{InputError, Loaded};

/// What the LMU part needs from the world.
pub struct LmuContext<'a> {
    pub loaded: &'a Loaded,
    pub seed: u64,
    pub sim: &'a mut Simulation<Msg>,
    /// The grid agent (a `GridAgent`; reach it with `sim.agent_mut` to add switches and subscribers).
    pub grid: AgentId,
    /// The network's buses laid out on the ground (metres), by bus position.
    pub bus_xy_m: &'a [(f64, f64)],
    /// The coordinator, which takes `Msg::Gw(GwMsg::Uplink(frame))` report frames, if the scenario has one.
    pub uplink: Option<AgentId>,
}

/// The LMUs as built.
pub struct LmuPart {
    /// One entry per LMU: its agent, its id (as in report frames and mesh node ids) and its pole (metres).
    pub lmus: Vec<(AgentId, u32, (f64, f64))>,
}

impl LmuPart {
    /// Routes the LMUs' report frames through the mesh agent `mesh` (node id = LMU id) instead of straight
    /// to the coordinator.
    pub fn use_mesh(&self, _sim: &mut Simulation<Msg>, _mesh: AgentId) {}
}

/// Adds the LMUs of `scenario.lmus` (none: `Ok(None)`).
pub fn attach(cx: LmuContext<'_>) -> Result<Option<LmuPart>, InputError> {
    if cx.loaded.scenario.lmus.is_none() && cx.loaded.scenario.faults.is_empty() {
        return Ok(None);
    }
    Err(cx.loaded.error_at("lmus", "LMUs and faults in a full world are not wired yet", None))
}

impl Part for LmuPart {
    fn report(&self, _sim: &Simulation<Msg>, _r: &mut Report) {}
}
