//! Wiring the mesh into a simulation ([`build`]), input checks with warnings that name nodes, and the mesh
//! report (`summary.json` object `mesh`, per-node and per-bin CSV files). Times in the report are seconds or
//! milliseconds as the field names say; energy in joules.

use super::config::{Layout, MeshConfig, MeshEvent, NodeSpec, dur};
use super::medium::{Bin, MeshAgent, Node};
use super::propagation::Fading;
use super::radio::RadioModel;
use super::{MeshControl, MeshMsg};
use crate::agents::Msg;
use crate::engine::{AgentId, SimTime, Simulation, class};
use gridtwin_firmware::mesh::{ETX_ONE, INFINITE_RANK};
use rayon::prelude::*;
use serde::Serialize;
use std::path::Path;

/// A built mesh: the agent id, the warnings found while building, and the way to read the results back.
#[derive(Clone, Debug)]
pub struct MeshHandle {
    agent: AgentId,
    /// Problems that do not stop a run (isolated or partitioned nodes, model validity, inconsistent ranges).
    pub warnings: Vec<String>,
}

/// Longest list of ids quoted in one message.
const QUOTE: usize = 12;

fn quote_ids(ids: &[u32]) -> String {
    let mut s: Vec<String> = ids.iter().take(QUOTE).map(|i| i.to_string()).collect();
    if ids.len() > QUOTE {
        s.push(format!("... ({} in all)", ids.len()));
    }
    s.join(", ")
}

/// Adds the mesh to `sim`: one [`MeshAgent`] holding `nodes` (or, if `nodes` is empty, the nodes of
/// `cfg.layout`), plus the late joiners of `cfg.events`. Fails with a message naming the problem on invalid
/// configuration, radio model, duplicate node ids or events naming unknown nodes.
pub fn build(
    sim: &mut Simulation<Msg>,
    cfg: &MeshConfig,
    radio: &RadioModel,
    nodes: &[NodeSpec],
    peers: &[(u32, u32)],
) -> Result<MeshHandle, String> {
    cfg.validate()?;
    radio.validate()?;
    let seed = sim.master_seed();
    let mut warnings = Vec::new();
    let mut specs: Vec<NodeSpec> = if nodes.is_empty() {
        match &cfg.layout {
            Some(l) => l.nodes(seed),
            None => return Err("mesh: no nodes given and no mesh.layout to generate them".into()),
        }
    } else {
        if cfg.layout.is_some() {
            warnings.push("mesh.layout ignored: the world supplies the mesh nodes".into());
        }
        nodes.to_vec()
    };
    let (id_min, id_max) = specs.iter().fold((u32::MAX, 0), |(lo, hi), s| (lo.min(s.id), hi.max(s.id)));
    for (k, e) in cfg.events.iter().enumerate() {
        if let MeshEvent::Join { node, x_m, y_m, at } = e {
            // Named here, at the event, rather than as a duplicate among all the nodes below: a layout scaled up
            // (a city from a district) grows its ids into a joiner's.
            if specs.iter().any(|s| s.id == *node) {
                return Err(format!(
                    "mesh.events[{k}].node: the joining node's id {node} is already taken (the nodes before the \
                     joins have ids {id_min} to {id_max}); give it an id no other node has"
                ));
            }
            let t = dur("events.Join.at", at)?;
            specs.push(NodeSpec { join_at: Some(SimTime(t.0)), ..NodeSpec::lmu(*node, *x_m, *y_m) });
        }
    }
    if cfg.radio != radio.name {
        warnings.push(format!("mesh.radio is `{}` but the radio model given is `{}`", cfg.radio, radio.name));
    }
    // Identity checks.
    let mut ids: Vec<u32> = specs.iter().map(|s| s.id).collect();
    ids.sort_unstable();
    let dups: Vec<u32> = ids.windows(2).filter(|w| w[0] == w[1]).map(|w| w[0]).collect::<Vec<_>>();
    if !dups.is_empty() {
        let mut d = dups.clone();
        d.dedup();
        return Err(format!("mesh: duplicate node ids: {} (each node id must be unique)", quote_ids(&d)));
    }
    if specs.len() > MAX_NODES {
        return Err(format!("mesh: {} nodes; at most {MAX_NODES} are supported", specs.len()));
    }
    if !specs.iter().any(|s| s.coordinator) {
        return Err("mesh: no coordinator among the nodes (at least one node must be a coordinator)".into());
    }
    if let Some(s) = specs.iter().find(|s| !(s.x_m.is_finite() && s.y_m.is_finite())) {
        return Err(format!("mesh: node {} has a non-finite position ({}, {})", s.id, s.x_m, s.y_m));
    }
    let pans = assign_pans(&specs, cfg.pan_max_nodes.map_or(PAN_MAX_NODES, |m| m as usize))?;
    let router_cfg = cfg.routing.router_config(radio.sensitivity_dbm)?;

    let mut agent_nodes: Vec<Node> =
        specs.iter().map(|s| Node::new(s.id, s.x_m, s.y_m, s.coordinator, s.app, s.join_at.map(|t| t.0))).collect();
    let me = sim.next_agent_id();
    let mut agent = MeshAgent::new(cfg, radio, Vec::new(), router_cfg, seed, me)?;
    agent.nodes = std::mem::take(&mut agent_nodes);
    agent.by_id = {
        let mut v: Vec<(u32, u32)> = agent.nodes.iter().enumerate().map(|(i, n)| (n.id, i as u32)).collect();
        v.sort_unstable();
        v
    };
    agent.set_pans(&pans);
    neighbour_lists(&mut agent, cfg, radio, &mut warnings);
    peer_routes(&mut agent, peers, radio.sensitivity_dbm, &cfg.routing, &mut warnings)?;

    // Scheduled events (by id -> index).
    let mut controls: Vec<(u64, MeshControl)> = Vec::new();
    for (k, e) in cfg.events.iter().enumerate() {
        let idx = |id: u32| agent.index_of(id).ok_or_else(|| format!("mesh.events[{k}]: no node with id {id}"));
        match e {
            MeshEvent::Fail { node, at } => {
                controls.push((dur("events.at", at)?.0, MeshControl::Fail(idx(*node)? as u32)))
            }
            MeshEvent::Recover { node, at } => {
                controls.push((dur("events.at", at)?.0, MeshControl::Recover(idx(*node)? as u32)))
            }
            MeshEvent::FailRelays { fraction, at } => {
                controls.push((dur("events.at", at)?.0, MeshControl::FailRelays((fraction * 1e6).round() as u32)))
            }
            MeshEvent::GlobalRepair { at } => controls.push((dur("events.at", at)?.0, MeshControl::GlobalRepair)),
            MeshEvent::DegradeLink { a, b, loss_db, at } => controls.push((
                dur("events.at", at)?.0,
                MeshControl::DegradeLink(idx(*a)? as u32, idx(*b)? as u32, (loss_db * 1000.0).round() as u32),
            )),
            MeshEvent::Join { .. } => {}
        }
    }
    // The warnings go back with the handle; the world prints them with the scenario's name.
    let id = sim.add_agent(Box::new(agent)).map_err(|e| format!("mesh: {e}"))?;
    debug_assert_eq!(id, me);
    for (at, c) in controls {
        sim.schedule(id, id, SimTime(at), class::DEFAULT, Msg::Mesh(MeshMsg::Control(c)))
            .map_err(|e| format!("mesh: {e}"))?;
    }
    Ok(MeshHandle { agent: id, warnings })
}

/// Commissioning of the peer (FLISR) links: each (sender, receiver) pair of node ids whose mean link, in its
/// weaker direction, is less than `margin_db` above the sensitivity `sens_dbm` gets a relay route in the
/// sender's router: the path of least expected transmissions over links with at least that margin (Dijkstra
/// over the nodes' reception lists, ties broken by node index, so the same mesh always gets the same routes).
/// Where no path has that margin everywhere, the margin asked of each hop is lowered 2 dB at a time, as long
/// as it stays above the direct link's. A pair with no better path, or whose sender already holds
/// [`MAX_PEER_ROUTES`](gridtwin_firmware::mesh::router::MAX_PEER_ROUTES) routes, keeps its direct link, with a warning;
/// pairs in different PANs are left alone (no link-layer path between PANs).
fn peer_routes(
    agent: &mut MeshAgent,
    peers: &[(u32, u32)],
    sens_dbm: f64,
    routing: &crate::mesh::config::Routing,
    warnings: &mut Vec<String>,
) -> Result<(), String> {
    let margin_db = routing.peer_relay_margin_db;
    let mut weak = Vec::new();
    let mut full = Vec::new();
    let mut single = Vec::new();
    let mut partial = Vec::new();
    for &(a_id, b_id) in peers {
        let (Some(a), Some(b)) = (agent.index_of(a_id), agent.index_of(b_id)) else {
            return Err(format!("mesh: peer link {a_id} -> {b_id} names a node that is not in the mesh"));
        };
        if a == b || agent.nodes[a].pan != agent.nodes[b].pan {
            continue;
        }
        let direct = link_dbm(agent, a, b).unwrap_or(f64::NEG_INFINITY);
        if direct >= sens_dbm + margin_db {
            continue;
        }
        let ladder = |avoid: &[usize]| relay_path_within_margins(agent, (a, b), sens_dbm, margin_db, direct, avoid);
        let Some(path) = ladder(&[]) else {
            weak.push(format!("{a_id} -> {b_id}"));
            continue;
        };
        if agent.nodes[a].peer_routes.len() >= gridtwin_firmware::mesh::router::MAX_PEER_ROUTES {
            // The router's table is full (a tie with every LMU up a long feeder as requester): this link
            // stays direct, as it was before relays existed.
            full.push(format!("{a_id} -> {b_id}"));
            continue;
        }
        let hops: Vec<u16> = path.iter().map(|&k| agent.nodes[k].addr).collect();
        let dst = agent.nodes[b].addr;
        // The routes as the node's router will take them at power-on (the table's size is checked above).
        let mut check = gridtwin_firmware::mesh::Router::new(agent.nodes[a].addr, false, Default::default(), 0);
        check
            .set_peer_route(dst, &hops)
            .map_err(|e| format!("mesh: peer link {a_id} -> {b_id} over {} relays: {e}", hops.len() - 1))?;
        // The second route: the same margins asked, through none of the first route's relays; else the direct
        // link, if it is heard at all (weak, but it fails for other reasons than a relay does); else through as
        // few of them as the radio graph allows.
        let mut shares = 0;
        let alt: Option<Vec<u16>> = if routing.peer_alternate_routes {
            let relays = &path[..path.len() - 1];
            let second = match ladder(relays) {
                Some(p) => Some(p),
                None if direct >= sens_dbm => Some(vec![b]),
                None => fewest_shared_relays(relays, ladder).map(|(p, shared)| {
                    shares = shared;
                    p
                }),
            };
            second.map(|p| p.iter().map(|&k| agent.nodes[k].addr).collect())
        } else {
            None
        };
        if shares > 0 {
            partial.push(format!("{a_id} -> {b_id}"));
        }
        tracing::debug!(
            from = a_id,
            to = b_id,
            relays = ?path[..path.len() - 1].iter().map(|&k| agent.nodes[k].id).collect::<Vec<_>>(),
            second_hops = ?alt.as_ref().map(Vec::len),
            "peer link over relays"
        );
        match alt {
            Some(alt) => {
                check
                    .set_peer_alternate(dst, &alt)
                    .map_err(|e| format!("mesh: peer link {a_id} -> {b_id}, second route: {e}"))?;
                agent.nodes[a].peer_alternates.push((dst, alt));
                agent.peer_alternate_routes += 1;
            }
            None if routing.peer_alternate_routes => single.push(format!("{a_id} -> {b_id}")),
            None => {}
        }
        agent.nodes[a].peer_routes.push((dst, hops));
        agent.peer_relay_routes += 1;
    }
    if !full.is_empty() {
        warnings.push(format!(
            "mesh: {} weak peer link(s) found their sender's {} relay routes taken and stay direct: {}",
            full.len(),
            gridtwin_firmware::mesh::router::MAX_PEER_ROUTES,
            full.iter().take(QUOTE).cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    if !partial.is_empty() {
        warnings.push(format!(
            "mesh: {} relayed peer link(s) have a second route that shares some of the first one's relays (no \
             path avoids them all): a failure of a shared relay breaks them: {}",
            partial.len(),
            partial.iter().take(QUOTE).cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    if !single.is_empty() {
        warnings.push(format!(
            "mesh: {} relayed peer link(s) have no second route (every path runs through all of the first one's \
             relays, and the direct link is not heard): one relay failure breaks them: {}",
            single.len(),
            single.iter().take(QUOTE).cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    if !weak.is_empty() {
        warnings.push(format!(
            "mesh: {} peer link(s) are weak and no relay path is better; they stay direct: {}",
            weak.len(),
            weak.iter().take(QUOTE).cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(())
}

/// Mean power of the link between nodes `a` and `b` in its weaker direction, dBm, from the reception lists
/// (sorted by index); `None` if either direction is below what the lists hold.
fn link_dbm(agent: &MeshAgent, a: usize, b: usize) -> Option<f64> {
    let rx = |from: usize, to: usize| -> Option<f64> {
        let l = &agent.nodes[from].nbrs;
        l.binary_search_by_key(&(to as u32), |e| e.0).ok().map(|k| l[k].1 as f64)
    };
    Some(rx(a, b)?.min(rx(b, a)?))
}

/// [`relay_path`] asking each hop for `margin_db` above the sensitivity, then 2 dB less each time, never below
/// 0 dB nor below the margin the direct link (`direct_dbm`) already has; the first path found, avoiding `avoid`.
/// Most searches for a second route that shares relays with the first (see [`fewest_shared_relays`]).
const SHARED_ROUTE_SEARCHES_MAX: usize = 256;

/// A second route for a peer link whose first route runs over `relays` (node indices, in order) where no
/// path avoids them all: the one through the fewest of them, found by `search` (a route avoiding the nodes
/// it is given). Every set tried holds the first relay, so the two copies leave by different first hops;
/// the rest are tried largest first, in route order within a size, at most [`SHARED_ROUTE_SEARCHES_MAX`]
/// searches. Returns the route and how many of the relays it shares; `None` where every path runs through
/// all of them but the first (nothing to gain over the first route).
fn fewest_shared_relays(
    relays: &[usize],
    search: impl Fn(&[usize]) -> Option<Vec<usize>>,
) -> Option<(Vec<usize>, usize)> {
    let (&first, rest) = relays.split_first()?;
    let k = rest.len();
    let mut searches = 0;
    // Avoid the first relay and `size` of the others: every combination, as index vectors in lexicographic
    // order.
    for size in (0..k).rev() {
        let mut pick: Vec<usize> = (0..size).collect();
        loop {
            if searches == SHARED_ROUTE_SEARCHES_MAX {
                return None;
            }
            searches += 1;
            let avoid: Vec<usize> = core::iter::once(first).chain(pick.iter().map(|&i| rest[i])).collect();
            if let Some(p) = search(&avoid) {
                let shared = p.iter().filter(|n| relays.contains(n)).count();
                return Some((p, shared));
            }
            // Next combination: the rightmost index that can move right moves, the ones after it follow.
            let Some(i) = (0..size).rev().find(|&i| pick[i] < k - size + i) else { break };
            pick[i] += 1;
            for j in i + 1..size {
                pick[j] = pick[j - 1] + 1;
            }
        }
    }
    None
}

fn relay_path_within_margins(
    agent: &MeshAgent,
    (a, b): (usize, usize),
    sens_dbm: f64,
    margin_db: f64,
    direct_dbm: f64,
    avoid: &[usize],
) -> Option<Vec<usize>> {
    let mut m = margin_db;
    while m >= 0.0 && sens_dbm + m > direct_dbm {
        if let Some(p) = relay_path(agent, a, b, sens_dbm + m, avoid) {
            return Some(p);
        }
        m -= 2.0;
    }
    None
}

/// The relays from `a` to `b` (node indices, ending at `b`) of least expected transmissions over links of
/// at least `floor_dbm`, or `None` (none, or longer than a PEER frame's route may be).
fn relay_path(agent: &MeshAgent, a: usize, b: usize, floor_dbm: f64, avoid: &[usize]) -> Option<Vec<usize>> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    // Expected transmissions of a hop from its margin over the floor, x 128 (as routers seed their estimates).
    let cost = |p_dbm: f64| -> u64 {
        match p_dbm - floor_dbm {
            m if m >= 14.0 => 128,
            m if m >= 8.0 => 160,
            m if m >= 4.0 => 256,
            _ => 512,
        }
    };
    let n = agent.nodes.len();
    let pan = agent.nodes[a].pan;
    let mut dist = vec![u64::MAX; n];
    let mut prev = vec![u32::MAX; n];
    let mut heap = BinaryHeap::new();
    dist[a] = 0;
    heap.push(Reverse((0u64, a)));
    while let Some(Reverse((d, u))) = heap.pop() {
        if u == b {
            break;
        }
        if d > dist[u] {
            continue;
        }
        for &(v, _) in &agent.nodes[u].nbrs {
            let v = v as usize;
            if agent.nodes[v].pan != pan || avoid.contains(&v) {
                continue;
            }
            let Some(p) = link_dbm(agent, u, v).filter(|&p| p >= floor_dbm) else { continue };
            let nd = d + cost(p);
            if nd < dist[v] || (nd == dist[v] && (u as u32) < prev[v]) {
                dist[v] = nd;
                prev[v] = u as u32;
                heap.push(Reverse((nd, v)));
            }
        }
    }
    if dist[b] == u64::MAX {
        return None;
    }
    let mut path = vec![b];
    let mut v = b;
    while prev[v] as usize != a {
        v = prev[v] as usize;
        path.push(v);
        if path.len() > n {
            return None;
        }
    }
    path.reverse();
    // A PEER frame carries at most this many hops.
    (path.len() <= gridtwin_firmware::mesh::frame::MAX_SOURCE_ROUTE).then_some(path)
}

/// Short addresses per PAN: 16-bit, less the broadcast address 0xFFFF and 0xFFFE ("no short address").
pub const PAN_MAX_NODES: usize = 0xFFFE;

/// Most nodes one mesh holds (several PANs).
pub const MAX_NODES: usize = 1_000_000;

/// Splits the nodes into PANs of at most `pan_max` nodes, as a city deploys them: one PAN while everything
/// fits (then a node's short address is its index, as it always was), else groups of coordinators in strips
/// along x (the PAN's border routers), every node joining the PAN of its nearest coordinator. Returns each
/// node's PAN; errors if no split of the coordinators keeps every PAN within `pan_max`.
pub fn assign_pans(specs: &[NodeSpec], pan_max: usize) -> Result<Vec<u16>, String> {
    let n = specs.len();
    let pan_max = pan_max.clamp(1, PAN_MAX_NODES);
    if n <= pan_max {
        return Ok(vec![0; n]);
    }
    let mut coords: Vec<usize> = (0..n).filter(|&i| specs[i].coordinator).collect();
    coords.sort_by(|&a, &b| {
        specs[a].x_m.total_cmp(&specs[b].x_m).then(specs[a].y_m.total_cmp(&specs[b].y_m)).then(a.cmp(&b))
    });
    // Nearest coordinator of every node (by rank along x; coordinators are their own, ties to the lower rank).
    let mut own = vec![usize::MAX; n];
    for (r, &c) in coords.iter().enumerate() {
        own[c] = r;
    }
    let nearest: Vec<usize> = (0..n)
        .map(|i| {
            if own[i] != usize::MAX {
                return own[i];
            }
            let (x, y) = (specs[i].x_m, specs[i].y_m);
            let mut best = (f64::INFINITY, 0usize);
            for (r, &c) in coords.iter().enumerate() {
                let d = (specs[c].x_m - x).powi(2) + (specs[c].y_m - y).powi(2);
                if d < best.0 {
                    best = (d, r);
                }
            }
            best.1
        })
        .collect();
    let c = coords.len();
    for p in n.div_ceil(pan_max)..=c.min(u16::MAX as usize) {
        let pan_of_rank = |r: usize| (r * p / c) as u16;
        let mut size = vec![0usize; p];
        for &r in &nearest {
            size[pan_of_rank(r) as usize] += 1;
        }
        if size.iter().all(|&s| s <= pan_max) {
            return Ok(nearest.iter().map(|&r| pan_of_rank(r)).collect());
        }
    }
    Err(format!(
        "mesh: {n} nodes and {c} coordinator(s): no split into PANs of at most {pan_max} nodes each; add \
         coordinators (or raise mesh.pan_max_nodes)"
    ))
}

/// Fills every node's neighbour list (who may decode it) with a grid-bucket spatial index, sets the channel's
/// interference reach, and warns about isolated and partitioned nodes and out-of-validity propagation.
fn neighbour_lists(agent: &mut MeshAgent, cfg: &MeshConfig, radio: &RadioModel, warnings: &mut Vec<String>) {
    let n = agent.nodes.len();
    let margin_db = if cfg.fading == Fading::Rayleigh { 5.0 } else { 0.0 };
    let sens = radio.sensitivity_dbm;
    // Lists hold the nodes a transmission may be decoded at; interference and CCA see every transmission whose
    // mean power is at or above the noise floor, computed per link on demand (static shadowing included).
    let thr = sens - margin_db;
    let interference = thr.min(radio.noise_floor_dbm());
    let shadow_margin = 3.5 * cfg.propagation.shadowing_db();
    let offset = radio.link_budget_offset_dbm();
    let f = radio.frequency_mhz;
    let reach = cfg.propagation.range_for_loss_m(offset - thr + shadow_margin, f).max(1.0);
    let interference_reach = cfg.propagation.range_for_loss_m(offset - interference + shadow_margin, f).max(reach);
    let links = std::sync::Arc::make_mut(&mut agent.links);
    links.xy = agent.nodes.iter().map(|nd| (nd.x_m, nd.y_m)).collect();
    links.reach2 = interference_reach * interference_reach;
    links.interference_dbm = interference;
    links.bound_links();
    agent.live = vec![false; agent.nodes.len()];
    agent.rx = vec![Default::default(); agent.nodes.len()];
    agent.audible_reach_m = reach;
    agent.index_channel();
    let (mut x0, mut y0, mut x1, mut y1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
    for nd in &agent.nodes {
        x0 = x0.min(nd.x_m);
        y0 = y0.min(nd.y_m);
        x1 = x1.max(nd.x_m);
        y1 = y1.max(nd.y_m);
    }
    // Cells at least `reach` wide, and no more than 2048 per axis.
    let cell = reach.max((x1 - x0) / 2048.0).max((y1 - y0) / 2048.0);
    let nx = ((x1 - x0) / cell) as usize + 1;
    let ny = ((y1 - y0) / cell) as usize + 1;
    let cell_of = |x: f64, y: f64| (((x - x0) / cell) as usize, ((y - y0) / cell) as usize);
    let mut heads = vec![u32::MAX; nx * ny];
    let mut next = vec![u32::MAX; n];
    for i in (0..n).rev() {
        let (cx, cy) = cell_of(agent.nodes[i].x_m, agent.nodes[i].y_m);
        next[i] = heads[cy * nx + cx];
        heads[cy * nx + cx] = i as u32;
    }
    // Each node's list depends only on the positions and the static link model, so the lists are built in
    // parallel; the result (each list in index order, and the min/max distances) is the same whatever the
    // thread count.
    // (receivers with their mean power, nearest and farthest of them in m)
    type Reach = (Vec<(u32, f32)>, f64, f64);
    let lists: Vec<Reach> = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut list = Vec::new();
            let (mut dmin, mut dmax) = (f64::MAX, 0.0f64);
            let (cx, cy) = cell_of(agent.nodes[i].x_m, agent.nodes[i].y_m);
            for gy in cy.saturating_sub(1)..=(cy + 1).min(ny - 1) {
                for gx in cx.saturating_sub(1)..=(cx + 1).min(nx - 1) {
                    let mut j = heads[gy * nx + gx];
                    while j != u32::MAX {
                        let ju = j as usize;
                        let (a, b) = (agent.links.xy[i], agent.links.xy[ju]);
                        let d = ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt();
                        if ju != i && d <= reach && agent.nodes[ju].pan == agent.nodes[i].pan {
                            let p = agent.mean_rx_dbm(i, ju);
                            if p >= thr {
                                list.push((j, p as f32));
                                dmin = dmin.min(d);
                                dmax = dmax.max(d);
                            }
                        }
                        j = next[ju];
                    }
                }
            }
            list.sort_unstable_by_key(|e| e.0);
            (list, dmin, dmax)
        })
        .collect();
    let (dmin, dmax) = lists.iter().fold((f64::MAX, 0.0f64), |(lo, hi), l| (lo.min(l.1), hi.max(l.2)));
    // Each node's farthest listed receiver, m (0 for an empty list; see `Node::nbrs_reach_m`).
    let reach_m: Vec<f64> = lists.iter().map(|l| l.2).collect();
    let lists: Vec<Vec<(u32, f32)>> = lists.into_iter().map(|l| l.0).collect();
    // Isolated nodes: nobody hears them (with symmetric links, they hear nobody either).
    let mut heard = vec![false; n];
    for l in &lists {
        for &(j, p) in l {
            if p as f64 >= sens {
                heard[j as usize] = true;
            }
        }
    }
    for i in 0..n {
        if !lists[i].iter().any(|e| e.1 as f64 >= sens) && !heard[i] {
            let a = &agent.nodes[i];
            let nearest = (0..n).filter(|&j| j != i).min_by(|&p, &q| {
                let dp = (agent.nodes[p].x_m - a.x_m).powi(2) + (agent.nodes[p].y_m - a.y_m).powi(2);
                let dq = (agent.nodes[q].x_m - a.x_m).powi(2) + (agent.nodes[q].y_m - a.y_m).powi(2);
                dp.total_cmp(&dq)
            });
            let near = match nearest {
                Some(j) => {
                    let b = &agent.nodes[j];
                    let d = ((a.x_m - b.x_m).powi(2) + (a.y_m - b.y_m).powi(2)).sqrt();
                    format!(
                        "; nearest is node {} at {:.0} m, received at {:.1} dBm against {:.1} dBm sensitivity",
                        b.id,
                        d,
                        agent.mean_rx_dbm(i, j),
                        radio.sensitivity_dbm
                    )
                }
                None => String::new(),
            };
            warnings.push(format!(
                "mesh: node {} at ({:.0}, {:.0}) m is outside every other node's range{near}",
                a.id, a.x_m, a.y_m
            ));
        }
    }
    // Partitions: nodes with no radio path to any coordinator.
    let mut reach_c = vec![false; n];
    let mut stack: Vec<usize> = (0..n).filter(|&i| agent.nodes[i].coordinator).collect();
    for &s in &stack {
        reach_c[s] = true;
    }
    while let Some(u) = stack.pop() {
        // `lists[u]` are the nodes hearing u: the downward direction; links are symmetric unless shadowing
        // is asymmetric, in which case this is a conservative reachability check.
        for &(v, p) in &lists[u] {
            if p as f64 >= sens && !reach_c[v as usize] {
                reach_c[v as usize] = true;
                stack.push(v as usize);
            }
        }
    }
    let cut: Vec<u32> = (0..n)
        .filter(|&i| !reach_c[i] && lists[i].iter().any(|e| e.1 as f64 >= sens))
        .map(|i| agent.nodes[i].id)
        .collect();
    if !cut.is_empty() {
        warnings.push(format!(
            "mesh: {} node(s) have no radio path to any coordinator: {}",
            cut.len(),
            quote_ids(&cut)
        ));
    }
    if dmax > 0.0
        && let Some(w) = cfg.propagation.validity_issue(radio.frequency_mhz, dmin, dmax)
    {
        warnings.push(format!("mesh.propagation: {w}"));
    }
    let median = cfg.propagation.range_for_loss_m(radio.max_path_loss_db(), radio.frequency_mhz);
    if (median - radio.range_m).abs() > 0.25 * radio.range_m {
        warnings.push(format!(
            "radio `{}` states range_m {} m but under mesh.propagation its median range is {:.0} m",
            radio.name, radio.range_m, median
        ));
    }
    for ((nd, l), far_m) in agent.nodes.iter_mut().zip(lists).zip(reach_m) {
        nd.nbrs = l;
        nd.nbrs_reach_m = far_m;
    }
}

/// One node's row of `mesh_nodes.csv`.
#[derive(Clone, Debug, Serialize)]
pub struct NodeRow {
    pub id: u32,
    /// The node's PAN (see [`assign_pans`]).
    pub pan: u16,
    pub x_m: f64,
    pub y_m: f64,
    pub coordinator: bool,
    pub alive: bool,
    pub parent: Option<u32>,
    pub rank_etx: Option<f64>,
    pub parent_link_etx: Option<f64>,
    pub neighbours: u32,
    pub hops_last: u8,
    pub hops_mean: Option<f64>,
    pub generated: u32,
    pub delivered: u32,
    pub pdr: Option<f64>,
    pub latency_ms_p50: Option<f64>,
    pub latency_ms_p90: Option<f64>,
    pub latency_ms_p99: Option<f64>,
    pub tx_frames: u32,
    pub retries: u32,
    pub noack: u32,
    pub collisions: u32,
    pub channel_access_failures: u32,
    pub queue_drops: u32,
    pub parent_changes: u32,
    pub dio_sent: u32,
    pub dao_sent: u32,
    pub duty_cycle: f64,
    pub energy_j: f64,
    pub joined_s: Option<f64>,
}

/// One time bin of `mesh_pdr.csv` (reports by generation time).
#[derive(Clone, Debug, Serialize)]
pub struct BinRow {
    /// Start of the bin, s, formatted exactly from integer ns (`60`, not `60.00000000000001`).
    pub t_s: String,
    pub sent: u32,
    pub delivered: u32,
    pub pdr: Option<f64>,
}

/// How the mesh coped with one failure event.
#[derive(Clone, Debug, Serialize)]
pub struct FailureReport {
    pub at_s: f64,
    pub failed: usize,
    /// Live nodes whose preferred parent failed.
    pub affected: u32,
    /// Of those, still without a working parent at the end.
    pub unrepaired: u32,
    /// Time until the last affected node had a working parent again, s.
    pub route_repair_s: f64,
    /// Delivery ratio of the reports generated during the first reporting period after the failure.
    pub pdr_first_period: Option<f64>,
    /// Time from the failure until delivery is back at >= 99 %, s: the start of the first metrics bin (by
    /// generation time) from which every bin up to the end of the first reporting period after the failure is
    /// delivered at >= 99 %, and which begins a reporting period delivered at >= 99 % (0 if the mesh never fell
    /// below). `None` if it never recovers within the run.
    pub pdr_recovery_s: Option<f64>,
}

/// Per-flow-kind delivery (`mesh_flows.csv`).
#[derive(Clone, Debug, Serialize)]
pub struct FlowRow {
    pub flow: &'static str,
    pub sent: u64,
    pub delivered: u64,
    pub pdr: Option<f64>,
    pub latency_ms_p50: Option<f64>,
    pub latency_ms_p90: Option<f64>,
    pub latency_ms_p99: Option<f64>,
}

/// Protection traffic on the radio (the `mesh.protection` object of `summary.json`): the LMUs' FLISR frames as
/// the mesh carried them, with the acknowledgements of those frames.
#[derive(Clone, Debug, Serialize)]
pub struct ProtectionAir {
    /// Protection data-frame transmissions, every attempt.
    pub frames_sent: u64,
    /// Mean PSDU of those transmissions, bytes.
    pub psdu_bytes_mean: f64,
    /// Airtime of protection frames and their acknowledgements, ms.
    pub airtime_ms: f64,
    /// One-way latency of delivered neighbour frames (queued at the sender to handed to the receiver), ms.
    pub latency_ms_p50: Option<f64>,
    pub latency_ms_p99: Option<f64>,
    pub latency_ms_max: Option<f64>,
    /// The busiest whole second of simulated time that carried protection frames (by the airtime of every
    /// transmission in it, counted by start), its start, s.
    pub busiest_second_s: f64,
    /// Share of that second the channel carried some transmission (summed over the mesh).
    pub busiest_second_occupancy: f64,
    /// Share of that second taken by protection frames and their acknowledgements.
    pub busiest_second_protection_share: f64,
    /// Latest-value frames (a repeated question, its answer) that a newer one to the same peer replaced in a
    /// node's queue before they were sent.
    pub frames_replaced: u64,
}

/// The mesh results: the `mesh` object of `summary.json`; node, bin and flow rows go to CSV files.
#[derive(Clone, Debug, Serialize)]
pub struct MeshReport {
    pub radio: String,
    pub nodes: usize,
    pub coordinators: usize,
    /// Reports delivered / generated (end-to-end, upward), excluding the last two minutes (still in flight);
    /// `None` (not applicable) when no report was generated.
    pub pdr: Option<f64>,
    pub reports_generated: u64,
    pub reports_delivered: u64,
    /// Latency percentiles and mean hop count over delivered reports; `None` when none was delivered.
    pub latency_ms_p50: Option<f64>,
    pub latency_ms_p90: Option<f64>,
    pub latency_ms_p99: Option<f64>,
    pub hops_mean: Option<f64>,
    pub down_sent: u64,
    pub down_delivered: u64,
    pub down_no_route: u64,
    /// FLISR frames the LMUs handed to the mesh (unicast and broadcast), and the unicast ones delivered.
    pub neighbour_sent: u64,
    pub neighbour_delivered: u64,
    /// Of `neighbour_sent`, the frames broadcast to every node in range (questions and `Beyond`s that the
    /// LMUs above overhear), and their receptions (one per node that decoded one).
    pub neighbour_broadcasts: u64,
    pub neighbour_broadcast_receptions: u64,
    /// Peer links commissioning routed over relays (too weak for one hop), and the PEER frames relays forwarded.
    pub peer_relay_routes: u32,
    pub peer_frames_relayed: u64,
    /// Of those links, the ones with a second route ([`crate::mesh::config::Routing::peer_alternate_routes`]),
    /// the messages also sent over it, and the copies their destinations dropped as duplicates.
    pub peer_alternate_routes: u32,
    pub peer_frames_duplicated: u64,
    pub peer_duplicates_dropped: u64,
    /// Time until every node present at the start had joined, s (`None` if some never did).
    pub convergence_s: Option<f64>,
    pub unjoined: usize,
    /// Longest delivery recovery after a failure event (see `failures`), s; `None` without failures.
    pub repair_s: Option<f64>,
    /// Longest route repair after a failure event, s.
    pub route_repair_s: Option<f64>,
    pub failures: Vec<FailureReport>,
    pub tx_frames: u64,
    /// Mean PSDU of a data-frame transmission (MAC header, network frame, security bytes if any, FCS), bytes.
    pub tx_psdu_bytes_per_frame: Option<f64>,
    /// Time on air of every transmission (data frames and acknowledgements), summed over nodes, s.
    pub airtime_s: f64,
    pub retries: u64,
    pub collisions: u64,
    /// Receptions weighed by the physical layer (a frame at a receiver whose mean power reaches sensitivity)
    /// and, per reception, the mean number of overlapping transmissions above the noise floor in its
    /// interference sum: with the frame count, the simulation's work (see docs/benchmarks.md, "City scale").
    pub receptions: u64,
    pub interferers_per_reception: Option<f64>,
    pub channel_access_failures: u64,
    pub noack: u64,
    pub queue_drops: u64,
    pub dio_sent: u64,
    pub dao_sent: u64,
    pub parent_changes: u64,
    pub local_repairs: u64,
    /// Upward frames dropped on a second rank inconsistency or received from the sender's own child (loops).
    pub loops_detected: u64,
    /// Upward frames that met a first rank inconsistency (flagged and forwarded).
    pub rank_errors: u64,
    /// Upward frames sent to the next-best parent after the MAC gave up on a link.
    pub reroutes: u64,
    /// Frames dropped by routing: no parent, link failed after retries and reroutes, queue full, hop limit.
    pub drop_no_route: u64,
    pub drop_link: u64,
    pub drop_queue: u64,
    pub drop_hop_limit: u64,
    pub duty_cycle_mean: f64,
    pub energy_j_mean: f64,
    pub energy_j_total: f64,
    pub warnings: Vec<String>,
    /// What protection (FLISR) frames asked of the radio; absent when none were sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protection: Option<ProtectionAir>,
    #[serde(skip)]
    pub node_rows: Vec<NodeRow>,
    #[serde(skip)]
    pub bins: Vec<BinRow>,
    #[serde(skip)]
    pub flows: Vec<FlowRow>,
}

fn pct(sorted: &[u32], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let k = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    Some(sorted[k] as f64 / 1000.0)
}

impl MeshHandle {
    /// The mesh agent (destination of `MeshMsg::Send`).
    pub fn agent(&self) -> AgentId {
        self.agent
    }

    /// The mesh agent of a simulation, to inspect nodes.
    pub fn mesh<'a>(&self, sim: &'a Simulation<Msg>) -> Option<&'a MeshAgent> {
        sim.agent::<MeshAgent>(self.agent)
    }

    /// The relay routes commissioning gave the peer link `from` -> `to` (node ids, each route ending at `to`):
    /// the first, and the second if it has one; `None` for a link that goes one hop (or unknown ids).
    pub fn peer_routes(&self, sim: &Simulation<Msg>, from: u32, to: u32) -> Option<(Vec<u32>, Option<Vec<u32>>)> {
        let m = self.mesh(sim)?;
        let (a, b) = (m.index_of(from)?, m.index_of(to)?);
        let dst = m.nodes[b].addr;
        let pan = m.nodes[a].pan;
        let ids = |hops: &[u16]| -> Option<Vec<u32>> {
            hops.iter().map(|&h| m.idx_of(pan, h).map(|k| m.nodes[k].id)).collect()
        };
        let find = |v: &[(u16, Vec<u16>)]| v.iter().find(|r| r.0 == dst).and_then(|r| ids(&r.1));
        let first = find(&m.nodes[a].peer_routes)?;
        Some((first, find(&m.nodes[a].peer_alternates)))
    }

    /// The results so far.
    pub fn report(&self, sim: &Simulation<Msg>) -> MeshReport {
        let Some(m) = self.mesh(sim) else {
            panic!("MeshHandle::report: agent {:?} is not the mesh agent of this simulation", self.agent)
        };
        let now = sim.now().0;
        let r = &m.radio;
        let mut rows = Vec::with_capacity(m.nodes.len());
        let (mut e_total, mut duty_sum, mut duty_n) = (0.0, 0.0, 0usize);
        let mut t = [0u64; 7];
        let (mut psdu_bytes, mut air_ns) = (0u64, 0u64);
        let mut rt = [0u64; 11];
        for (i, n) in m.nodes.iter().enumerate() {
            let alive_ns = m.alive_ns(i, now);
            let s = m.node_stats(i);
            let alive = m.live[i];
            let listen_ns = alive_ns.saturating_sub(s.tx_ns + s.rx_ns);
            let energy_j = r.supply_v
                * 1e-3
                * (r.tx_ma * s.tx_ns as f64 + r.rx_ma * s.rx_ns as f64 + r.listen_ma * listen_ns as f64)
                * 1e-9;
            let duty = if alive_ns > 0 { s.tx_ns as f64 / alive_ns as f64 } else { 0.0 };
            e_total += energy_j;
            if alive_ns > 0 {
                duty_sum += duty;
                duty_n += 1;
            }
            let mut lat = n.lat_us.clone();
            lat.sort_unstable();
            let rs = n.router.stats();
            psdu_bytes += s.tx_psdu_bytes;
            air_ns += s.tx_ns;
            for (k, v) in [s.tx_frames, s.retries, s.collisions, s.cca_failures, s.noack, s.queue_drops, 0]
                .into_iter()
                .enumerate()
            {
                t[k] += v as u64;
            }
            for (k, v) in [
                rs.dio_sent,
                rs.dao_sent,
                rs.parent_changes,
                rs.local_repairs,
                rs.loops_detected,
                rs.drop_no_route,
                rs.drop_link,
                rs.drop_queue,
                rs.drop_hop_limit,
                rs.rank_errors,
                rs.reroutes,
            ]
            .into_iter()
            .enumerate()
            {
                rt[k] += v as u64;
            }
            let routed = alive && !n.coordinator;
            rows.push(NodeRow {
                id: n.id,
                pan: n.pan,
                x_m: n.x_m,
                y_m: n.y_m,
                coordinator: n.coordinator,
                alive,
                parent: if routed {
                    n.router.parent().and_then(|p| m.idx_of(n.pan, p)).map(|k| m.nodes[k].id)
                } else {
                    None
                },
                rank_etx: (alive && n.router.rank() != INFINITE_RANK).then(|| n.router.rank() as f64 / ETX_ONE as f64),
                parent_link_etx: if routed {
                    n.router.parent_link_etx().map(|e| e as f64 / ETX_ONE as f64)
                } else {
                    None
                },
                neighbours: n.nbrs.len() as u32,
                hops_last: s.last_hops,
                hops_mean: (s.delivered > 0).then(|| s.hops_sum as f64 / s.delivered as f64),
                generated: s.generated,
                delivered: s.delivered,
                pdr: (s.generated > 0).then(|| s.delivered as f64 / s.generated as f64),
                latency_ms_p50: pct(&lat, 0.5),
                latency_ms_p90: pct(&lat, 0.9),
                latency_ms_p99: pct(&lat, 0.99),
                tx_frames: s.tx_frames,
                retries: s.retries,
                noack: s.noack,
                collisions: s.collisions,
                channel_access_failures: s.cca_failures,
                queue_drops: s.queue_drops,
                parent_changes: rs.parent_changes,
                dio_sent: rs.dio_sent,
                dao_sent: rs.dao_sent,
                duty_cycle: duty,
                energy_j,
                joined_s: s.joined_ns.map(|j| j.saturating_sub(n.join_at.unwrap_or(m.started_ns)) as f64 * 1e-9),
            });
        }
        // Delivery by generation-time bin; the last two minutes may still be in flight.
        let drain = 120_000_000_000u64;
        let complete = (now.saturating_sub(drain) / m.bin_ns) as usize;
        let bins: &[Bin] = &m.bins[..complete.min(m.bins.len())];
        let (sent, delivered) = bins.iter().fold((0u64, 0u64), |(s, d), b| (s + b.sent as u64, d + b.delivered as u64));
        let bin_rows: Vec<BinRow> = m
            .bins
            .iter()
            .enumerate()
            .map(|(k, b)| BinRow {
                t_s: crate::report::secs_from_ns(k as u64 * m.bin_ns),
                sent: b.sent,
                delivered: b.delivered,
                pdr: (b.sent > 0).then(|| b.delivered as f64 / b.sent as f64),
            })
            .collect();
        let period_bins = (m.report_period_ns().unwrap_or(m.bin_ns) / m.bin_ns).max(1) as usize;
        let window = |b0: usize| -> Option<f64> {
            if b0 + period_bins > bins.len() {
                return None;
            }
            let (s, d) = bins[b0..b0 + period_bins]
                .iter()
                .fold((0u64, 0u64), |(s, d), b| (s + b.sent as u64, d + b.delivered as u64));
            (s > 0).then(|| d as f64 / s as f64)
        };
        let failures: Vec<FailureReport> = m
            .failures
            .iter()
            .map(|f| {
                let b0 = f.at_ns.div_ceil(m.bin_ns) as usize;
                let bin_ok = |b: usize| bins[b].sent == 0 || bins[b].delivered as f64 >= 0.99 * bins[b].sent as f64;
                // Recovered from bin b on: the reporting period from b is delivered at >= 99 %, and so is every
                // bin from b to the end of the first reporting period after the failure (a dip a minute after
                // the failure counts, however good the first minute was).
                let first_period_end = (b0 + period_bins).min(bins.len());
                let recovery = (b0..bins.len())
                    .find(|&b| (b..first_period_end.max(b + 1)).all(bin_ok) && window(b).is_some_and(|p| p >= 0.99))
                    .map(|b| (b as u64 * m.bin_ns).saturating_sub(f.at_ns) as f64 / 1e9);
                FailureReport {
                    at_s: f.at_ns as f64 / 1e9,
                    failed: f.failed.len(),
                    affected: f.affected,
                    unrepaired: f.affected - f.repaired,
                    route_repair_s: (f.last_repair_ns - f.at_ns) as f64 / 1e9,
                    pdr_first_period: window(b0),
                    pdr_recovery_s: recovery,
                }
            })
            .collect();
        let repair_s = if failures.is_empty() {
            None
        } else {
            failures.iter().map(|f| f.pdr_recovery_s.unwrap_or(f64::INFINITY)).reduce(f64::max)
        };
        let route_repair_s = failures.iter().map(|f| f.route_repair_s).reduce(f64::max);
        let mut lat = m.lat_us.clone();
        lat.sort_unstable();
        let mut dlat = m.down_lat_us.clone();
        dlat.sort_unstable();
        let mut nlat = m.nbr_lat_us.clone();
        nlat.sort_unstable();
        let ua = &m.urgent_air;
        let protection = ua.busiest_second().filter(|_| ua.frames > 0).map(|(at_s, occupancy, share)| ProtectionAir {
            frames_sent: ua.frames,
            psdu_bytes_mean: ua.psdu_bytes as f64 / ua.frames as f64,
            airtime_ms: ua.air_ns as f64 / 1e6,
            latency_ms_p50: pct(&nlat, 0.5),
            latency_ms_p99: pct(&nlat, 0.99),
            latency_ms_max: nlat.last().map(|&l| l as f64 / 1000.0),
            busiest_second_s: at_s,
            busiest_second_occupancy: occupancy,
            busiest_second_protection_share: share,
            frames_replaced: m.nodes.iter().map(|n| n.stats.replaced as u64).sum(),
        });
        let starters: Vec<&NodeRow> =
            rows.iter().zip(&m.nodes).filter(|(_, n)| n.join_at.is_none() && !n.coordinator).map(|(r, _)| r).collect();
        let unjoined = starters.iter().filter(|r| r.joined_s.is_none()).count();
        let convergence_s =
            if unjoined == 0 { starters.iter().filter_map(|r| r.joined_s).reduce(f64::max) } else { None };
        let hops: (u64, u64) =
            m.nodes.iter().fold((0, 0), |a, n| (a.0 + n.stats.hops_sum as u64, a.1 + n.stats.delivered as u64));
        let fl = &m.flows;
        let flows = vec![
            FlowRow {
                flow: "up",
                sent: fl.up_sent,
                delivered: fl.up_delivered,
                pdr: (fl.up_sent > 0).then(|| fl.up_delivered as f64 / fl.up_sent as f64),
                latency_ms_p50: pct(&lat, 0.5),
                latency_ms_p90: pct(&lat, 0.9),
                latency_ms_p99: pct(&lat, 0.99),
            },
            FlowRow {
                flow: "down",
                sent: fl.down_sent,
                delivered: fl.down_delivered,
                pdr: (fl.down_sent > 0).then(|| fl.down_delivered as f64 / fl.down_sent as f64),
                latency_ms_p50: pct(&dlat, 0.5),
                latency_ms_p90: pct(&dlat, 0.9),
                latency_ms_p99: pct(&dlat, 0.99),
            },
            FlowRow {
                flow: "neighbour",
                // Unicast frames only: a broadcast has no one destination to be delivered to.
                sent: fl.nbr_sent - fl.nbr_broadcasts,
                delivered: fl.nbr_delivered,
                pdr: (fl.nbr_sent > fl.nbr_broadcasts)
                    .then(|| fl.nbr_delivered as f64 / (fl.nbr_sent - fl.nbr_broadcasts) as f64),
                latency_ms_p50: pct(&nlat, 0.5),
                latency_ms_p90: pct(&nlat, 0.9),
                latency_ms_p99: pct(&nlat, 0.99),
            },
        ];
        MeshReport {
            radio: r.name.clone(),
            nodes: m.nodes.len(),
            coordinators: m.nodes.iter().filter(|n| n.coordinator).count(),
            pdr: (sent > 0).then(|| delivered as f64 / sent as f64),
            reports_generated: sent,
            reports_delivered: delivered,
            latency_ms_p50: pct(&lat, 0.5),
            latency_ms_p90: pct(&lat, 0.9),
            latency_ms_p99: pct(&lat, 0.99),
            hops_mean: (hops.1 > 0).then(|| hops.0 as f64 / hops.1 as f64),
            down_sent: fl.down_sent,
            down_delivered: fl.down_delivered,
            down_no_route: fl.down_no_route,
            neighbour_sent: fl.nbr_sent,
            neighbour_delivered: fl.nbr_delivered,
            neighbour_broadcasts: fl.nbr_broadcasts,
            neighbour_broadcast_receptions: fl.nbr_broadcast_receptions,
            peer_relay_routes: m.peer_relay_routes,
            peer_frames_relayed: m.nodes.iter().map(|n| n.router.stats().peer_relayed as u64).sum(),
            peer_alternate_routes: m.peer_alternate_routes,
            peer_frames_duplicated: m.nodes.iter().map(|n| n.router.stats().peer_duplicated as u64).sum(),
            peer_duplicates_dropped: m.nodes.iter().map(|n| n.router.stats().peer_duplicates_dropped as u64).sum(),
            convergence_s,
            unjoined,
            repair_s,
            route_repair_s,
            failures,
            tx_frames: t[0],
            tx_psdu_bytes_per_frame: (t[0] > 0).then(|| psdu_bytes as f64 / t[0] as f64),
            airtime_s: air_ns as f64 * 1e-9,
            retries: t[1],
            collisions: t[2],
            receptions: fl.receptions,
            interferers_per_reception: (fl.receptions > 0).then(|| fl.interferers as f64 / fl.receptions as f64),
            channel_access_failures: t[3],
            noack: t[4],
            queue_drops: t[5],
            dio_sent: rt[0],
            dao_sent: rt[1],
            parent_changes: rt[2],
            local_repairs: rt[3],
            loops_detected: rt[4],
            drop_no_route: rt[5],
            drop_link: rt[6],
            drop_queue: rt[7],
            drop_hop_limit: rt[8],
            rank_errors: rt[9],
            reroutes: rt[10],
            duty_cycle_mean: if duty_n > 0 { duty_sum / duty_n as f64 } else { 0.0 },
            energy_j_mean: if m.nodes.is_empty() { 0.0 } else { e_total / m.nodes.len() as f64 },
            energy_j_total: e_total,
            warnings: self.warnings.clone(),
            protection,
            node_rows: rows,
            bins: bin_rows,
            flows,
        }
    }
}

impl MeshReport {
    /// Writes `mesh_nodes.csv`, `mesh_pdr.csv` and `mesh_flows.csv` into `dir`.
    pub fn write_csv(&self, dir: &Path) -> Result<(), String> {
        fn write<T: Serialize>(path: &Path, rows: &[T]) -> Result<(), String> {
            let mut w = csv::Writer::from_path(path).map_err(|e| format!("{}: {e}", path.display()))?;
            for r in rows {
                w.serialize(r).map_err(|e| format!("{}: {e}", path.display()))?;
            }
            w.flush().map_err(|e| format!("{}: {e}", path.display()))
        }
        write(&dir.join("mesh_nodes.csv"), &self.node_rows)?;
        write(&dir.join("mesh_pdr.csv"), &self.bins)?;
        write(&dir.join("mesh_flows.csv"), &self.flows)
    }
}

/// Builds the nodes of a layout (re-exported for callers that want to place them in their own world).
pub fn layout_nodes(layout: &Layout, seed: u64) -> Vec<NodeSpec> {
    layout.nodes(seed)
}

#[cfg(test)]
mod pan_tests {
    use super::*;

    #[test]
    fn one_pan_while_it_fits_then_each_node_in_its_nearest_coordinators_pan() {
        let mut specs = vec![NodeSpec::coordinator(1, 0.0, 0.0), NodeSpec::coordinator(2, 1000.0, 0.0)];
        for k in 0..10 {
            specs.push(NodeSpec::lmu(10 + k, 100.0 * k as f64, 5.0));
        }
        assert_eq!(assign_pans(&specs, 100).unwrap(), vec![0; 12]);
        // x < 500 m (and the tie at 500 m) is nearer coordinator 1: 7 nodes; the rest 5.
        let p = assign_pans(&specs, 7).unwrap();
        assert_eq!(p, vec![0, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1]);
        let e = assign_pans(&specs, 6).unwrap_err();
        assert!(e.contains("12 nodes and 2 coordinator(s)"), "{e}");
    }
}

#[cfg(test)]
pub(crate) mod bound_tests {
    use super::*;
    use crate::mesh::config::{Layout, MeshConfig};

    /// The bound on links' powers (`LinkModel::bound_links`) only ever skips links the full computation finds
    /// below the interference threshold: every pair of a jittered grid, with and without the bound, at two
    /// shadowing spreads.
    /// The shipped 868 MHz SUN-FSK radio model.
    pub(crate) fn sun_fsk_radio() -> RadioModel {
        let text =
            std::fs::read_to_string(format!("{}/models/radio-sun-fsk-868.ron", env!("CARGO_MANIFEST_DIR"))).unwrap();
        ron::from_str(&text).unwrap()
    }

    /// A jittered grid of `nodes` nodes `spacing_m` apart with two coordinators, log-distance propagation
    /// (exponent 3) with `shadowing_db` of shadowing.
    pub(crate) fn grid_mesh(nodes: u32, spacing_m: f64, shadowing_db: f64) -> MeshConfig {
        MeshConfig {
            layout: Some(Layout::Grid { nodes, spacing_m, jitter_m: 40.0, coordinators: 2 }),
            propagation: crate::mesh::Propagation::LogDistance {
                exponent: 3.0,
                ref_distance_m: 1.0,
                shadowing_db,
                asymmetric: false,
            },
            ..MeshConfig::default()
        }
    }

    #[test]
    fn bounded_link_powers_equal_the_full_computation() {
        let radio = sun_fsk_radio();
        for (seed, shadowing_db) in [(3u64, 4.0), (4, 8.0), (5, 0.0)] {
            let mut sim = Simulation::new(seed);
            let cfg = grid_mesh(900, 150.0, shadowing_db);
            let h = build(&mut sim, &cfg, &radio, &[], &[]).unwrap();
            let m = h.mesh(&sim).unwrap();
            assert!(!m.links.below_floor_d2.is_empty());
            let (mut audible, mut skipped) = (0, 0);
            for from in 0..m.links.xy.len() {
                for to in 0..m.links.xy.len() {
                    let (a, b) = (m.links.xy[from], m.links.xy[to]);
                    let d2 = (a.0 - b.0).powi(2) + (a.1 - b.1).powi(2);
                    if from == to || d2 > m.links.reach2 {
                        continue;
                    }
                    let exact = m.links.link_dbm_exact(d2, from, to);
                    if m.links.bounded_out(d2, from, to) {
                        assert_eq!(exact, None, "link {from} -> {to} at {} m bounded out", d2.sqrt());
                        skipped += 1;
                    }
                    audible += exact.is_some() as usize;
                }
            }
            // Without shadowing the interference reach is the bound itself: nothing is left to skip.
            assert!(audible > 0, "no audible link");
            assert!(shadowing_db == 0.0 || skipped > audible, "{audible} audible, {skipped} skipped by the bound");
        }
    }
}

#[cfg(test)]
mod second_route_tests {
    use super::{SHARED_ROUTE_SEARCHES_MAX, fewest_shared_relays};
    use std::cell::Cell;

    /// A chain 0 - 1 - 2 - 3 - 9 with a bypass 0 - 7 - 2 around relay 1 only: avoiding every relay (1, 2, 3)
    /// finds nothing, and neither does avoiding 1 with 2 or with 3; avoiding 1 alone finds the bypass, which
    /// shares 2 and 3. Searches come largest set first, in route order.
    #[test]
    fn a_second_route_shares_as_few_of_the_first_routes_relays_as_the_graph_allows() {
        let tried = std::cell::RefCell::new(Vec::new());
        let search = |avoid: &[usize]| {
            tried.borrow_mut().push(avoid.to_vec());
            (!avoid.contains(&2) && !avoid.contains(&3)).then(|| vec![7, 2, 3, 9])
        };
        let (route, shared) = fewest_shared_relays(&[1, 2, 3], search).unwrap();
        assert_eq!((route, shared), (vec![7, 2, 3, 9], 2));
        // Every set holds the first relay, so the copies leave by different first hops.
        assert_eq!(*tried.borrow(), vec![vec![1, 2], vec![1, 3], vec![1]]);
        // Every path runs through all the relays but the first: nothing to gain.
        assert!(fewest_shared_relays(&[1, 2, 3], |_| None).is_none());
        // A single relay: the only set would be itself, which the disjoint search already tried.
        let n = Cell::new(0);
        assert!(
            fewest_shared_relays(&[4], |_| {
                n.set(n.get() + 1);
                Some(vec![9])
            })
            .is_none()
        );
        assert_eq!(n.get(), 0);
        // The searches are bounded however long the route.
        let n = Cell::new(0);
        let relays: Vec<usize> = (0..20).collect();
        assert!(
            fewest_shared_relays(&relays, |_| {
                n.set(n.get() + 1);
                None
            })
            .is_none()
        );
        assert_eq!(n.get(), SHARED_ROUTE_SEARCHES_MAX);
    }
}
