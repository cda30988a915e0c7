//! The world builder: turns a validated scenario into agents on one [`Simulation`], runs it, and gathers
//! every subsystem's report. Subsystems plug in as [`Part`]s: each adds its agents and later reports on them.

use crate::agents::Msg;
use crate::agents::coordinator::CommandRoute;
use crate::engine::{AgentId, SimDuration, SimTime, Simulation, Stop};
use crate::mesh::NodeSpec;
use crate::report::Report;
use crate::scenario::{InputError, Loaded};
use serde_json::json;

pub mod grid;
pub mod grid_detail;
pub mod lmu;
pub mod mesh;

/// A subsystem in a built world: reports on its agents after the run.
pub trait Part {
    /// Adds this part's summary object, tables and series to the report.
    fn report(&self, sim: &Simulation<Msg>, report: &mut Report);
}

/// A scenario turned into agents, ready to run.
pub struct World {
    pub sim: Simulation<Msg>,
    pub until: SimTime,
    pub seed: u64,
    pub name: String,
    /// The gateway agent, if the scenario has a `gateway` section (the live bridge drives it).
    pub gateway: Option<AgentId>,
    /// The mesh agent, if the scenario has a `mesh` section.
    mesh: Option<AgentId>,
    parts: Vec<Box<dyn Part>>,
}

/// Builds the world for `loaded` with master seed `seed` (which overrides the scenario's when given).
///
/// Order of agents (their ids follow it): the upstream path (coordinator, gateway, cloud), the grid (grid,
/// weather, recorder), the LMUs, then the mesh, whose nodes are the LMU poles plus the coordinator (or, with
/// no LMUs, the mesh's own layout).
pub fn build(loaded: &Loaded, seed: u64, until: Option<SimDuration>) -> Result<World, InputError> {
    build_with(loaded, seed, until, false)
}

/// [`build`], with the gateway's backhaul left to an external transport (the live bridge) when `external`:
/// no cloud broker agent is added.
pub fn build_with(loaded: &Loaded, seed: u64, until: Option<SimDuration>, external: bool) -> Result<World, InputError> {
    loaded.validate()?;
    let s = &loaded.scenario;
    let mut sim: Simulation<Msg> = Simulation::new(seed);
    let mut parts: Vec<Box<dyn Part>> = Vec::new();
    let mut upstream = None;
    if let Some(g) = &s.gateway {
        let span = until.unwrap_or(s.duration.0);
        upstream = Some(crate::agents::upstream::add(&mut sim, loaded, g, seed, span, external)?);
    }
    let coordinator = upstream.as_ref().map(|u| u.coordinator);
    let gateway = upstream.as_ref().map(|u| u.gateway);
    let mut lmus = None;
    let mut source_xy_m = (0.0, 0.0);
    let mut grid_agent = None;
    if let Some(g) = &s.grid {
        let part = grid::add(&mut sim, loaded, g)?;
        grid_agent = Some(part.grid);
        let xy = grid::bus_positions(&part.network);
        if let Some(e) = part.network.ext_grids.first()
            && let Some(b) = part.network.bus(e.bus)
        {
            source_xy_m = xy[b];
        }
        let cx = lmu::LmuContext { loaded, seed, sim: &mut sim, grid: part.grid, bus_xy_m: &xy, uplink: coordinator };
        lmus = lmu::attach(cx)?;
        let market = match &s.market {
            Some(m) => Some(crate::market::world::add(
                &mut sim,
                loaded,
                m,
                part.grid,
                &part.network,
                &g.generators,
                seed,
                until,
            )?),
            None => None,
        };
        parts.push(Box::new(part));
        if let Some(m) = market {
            parts.push(Box::new(m));
        }
    } else if s.lmus.is_some() || !s.faults.is_empty() {
        return Err(loaded.error_at("lmus", "LMUs and faults need a `grid` section", None));
    }
    let mut route = CommandRoute::None;
    let mut mesh_agent = None;
    if let Some(m) = &s.mesh {
        let mut nodes = Vec::new();
        if let Some(l) = &lmus {
            for &(agent, id, (x_m, y_m)) in &l.lmus {
                nodes.push(NodeSpec { app: Some(agent), ..NodeSpec::lmu(id, x_m, y_m) });
            }
            // The coordinator sits at the substation, a few metres from the source bus.
            let id = l.lmus.iter().map(|n| n.1).max().map_or(0, |m| m + 1).max(COORDINATOR_NODE_ID);
            nodes.push(NodeSpec {
                id,
                x_m: source_xy_m.0 - 5.0,
                y_m: source_xy_m.1,
                coordinator: true,
                app: coordinator,
                join_at: None,
            });
        }
        // With peer frames on the mesh, commissioning gives every weak peer link a relay route.
        let mut peers = Vec::new();
        if let Some(l) = &lmus
            && s.lmus.as_ref().is_some_and(|x| x.peer_frames == crate::twin::scenario::PeerFrames::Mesh)
        {
            for &(agent, id, _) in &l.lmus {
                if let Some(a) = sim.agent::<crate::twin::agent::LmuAgent>(agent) {
                    peers.extend(a.peer_ids().map(|p| (id, p as u32)));
                }
            }
        }
        let part = mesh::add(&mut sim, loaded, m, &nodes, &peers)?;
        mesh_agent = Some(part.handle.agent());
        if let Some(l) = &lmus {
            let peer_frames = s.lmus.as_ref().map(|x| x.peer_frames).unwrap_or_default();
            l.use_mesh(&mut sim, part.handle.agent(), peer_frames);
        }
        if let Some(c) = nodes.iter().find(|n| n.coordinator) {
            route = CommandRoute::Mesh { mesh: part.handle.agent(), node: c.id };
        }
        parts.push(Box::new(part));
    }
    if let Some(sc) = &s.security {
        parts.push(Box::new(crate::security::add(
            &mut sim,
            loaded,
            sc,
            lmus.as_ref(),
            mesh_agent,
            upstream.as_ref().and_then(|u| u.cloud),
            seed,
        )?));
    }
    if let Some(t) = &s.theft {
        parts.push(Box::new(crate::security::theft::add(&mut sim, loaded, t, lmus.as_ref(), grid_agent, seed)?));
    }
    if let Some(mut u) = upstream {
        let list: Vec<(AgentId, u32)> =
            lmus.as_ref().map_or(Vec::new(), |l| l.lmus.iter().map(|n| (n.0, n.1)).collect());
        if matches!(route, CommandRoute::None) && !list.is_empty() {
            route = CommandRoute::Direct(list.iter().map(|&(a, id)| (id, a)).collect());
        }
        u.attach_lmus(&mut sim, loaded, &list, route)?;
        parts.insert(0, Box::new(u));
    }
    if let Some(l) = lmus {
        parts.push(Box::new(l));
    }
    if let Some(c) = &s.chain
        && s.market.is_none()
    {
        parts.push(Box::new(crate::chain::add(&mut sim, loaded, c, seed)?));
    }
    let until = SimTime::ZERO + until.unwrap_or(s.duration.0);
    Ok(World { sim, until, seed, name: s.name.clone(), gateway, mesh: mesh_agent, parts })
}

/// Mesh node id of the coordinator when the world supplies the nodes (LMU ids stay below it).
pub const COORDINATOR_NODE_ID: u32 = 1_000_000;

/// Mesh nodes from which a run with a spare core gives the mesh a helper thread ([`World::use_cores`]): a
/// smaller mesh's broadcasts reach too few receivers to share.
pub const HELPER_MIN_NODES: usize = 2_000;

impl World {
    /// Lets the run use `cores` cores: with two or more and a mesh of [`HELPER_MIN_NODES`] or more, the mesh
    /// weighs its broadcasts' receivers on a second thread. Every result stays the same, bit for bit.
    pub fn use_cores(&mut self, cores: usize) {
        if cores < 2 {
            return;
        }
        if let Some(m) = self.mesh.and_then(|id| self.sim.agent_mut::<crate::mesh::MeshAgent>(id))
            && m.nodes.len() >= HELPER_MIN_NODES
        {
            m.start_helper();
        }
    }

    /// Runs to the end time in `chunks` equal steps of simulated time, calling `progress(fraction, events)` after
    /// each (`events`: delivered so far).
    /// Chunking never changes the result: events at a chunk's end are delivered before the next chunk starts.
    pub fn run(&mut self, chunks: u32, mut progress: impl FnMut(f64, u64)) -> Result<(), String> {
        let chunks = chunks.max(1) as u64;
        let end = self.until.0;
        for k in 1..=chunks {
            let t = SimTime(((end as u128 * k as u128) / chunks as u128) as u64);
            self.sim.run(Stop::at(t)).map_err(|e| format!("simulation stopped at {}: {e}", self.sim.now()))?;
            progress(k as f64 / chunks as f64, self.sim.stats().delivered);
        }
        Ok(())
    }

    /// The run's report: identity, digest and counters first, then each part's objects.
    pub fn report(&self) -> Report {
        let mut r = Report::default();
        let st = self.sim.stats();
        r.summary.insert("scenario".into(), json!(self.name));
        r.summary.insert("seed".into(), json!(self.seed));
        r.summary.insert("version".into(), json!(env!("CARGO_PKG_VERSION")));
        r.summary.insert("digest".into(), json!(self.sim.digest().hex()));
        r.summary.insert("events".into(), json!(st.delivered));
        r.summary.insert("sim_time_s".into(), json!(self.sim.now().as_secs_f64()));
        r.summary.insert("agents".into(), json!(self.sim.agent_count()));
        r.summary.insert("engine".into(), json!({"scheduled": st.scheduled, "cancelled": st.cancelled, "pending_at_end": st.pending, "pending_max": st.pending_max}));
        for p in &self.parts {
            p.report(&self.sim, &mut r);
        }
        r
    }
}
