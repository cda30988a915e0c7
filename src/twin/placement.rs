//! Commissioning of LMUs on a radial LV feeder: where they sit, the sections they bound, their upstream and
//! downstream neighbours and the normally-open ties that can back-feed parts of the feeder.
//!
//! The feeder is the network seen from its source bus (the LV side of the transformer, or the external grid's
//! bus). An LMU sits at a bus on a line leaving it away from the source; its *section* is every line reached
//! downstream from that line without passing another LMU. Sections are named by their LMU's peer id.

use crate::grid::network::Network;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Where LMUs go.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum PlacementRule {
    /// On every line (a pole LMU at every span).
    EveryLine,
    /// On each line leaving the source bus or a junction (a bus with two or more lines leaving it).
    Junctions,
    /// On the lines leaving these buses (file indices) and the source bus.
    Buses(Vec<i64>),
    /// On the main branches only: a line leaving the source or a junction gets an LMU when at least
    /// `min_loads` loads lie below it and the junction splits into two or more such branches (cable
    /// distribution cabinets rather than every joint of a long cable run).
    MainJunctions { min_loads: u32 },
    /// As `Junctions`, plus an LMU on a long run wherever going on would put more than `max_m` of line
    /// between it and the LMU above (a pole LMU every few spans, so each one is within radio range of the
    /// next). A single span longer than `max_m` gets an LMU at its start.
    Spaced { max_m: f64 },
}

/// One commissioned LMU.
#[derive(Clone, Debug, PartialEq)]
pub struct Commissioned {
    pub peer: u16,
    /// Bus file index and position.
    pub bus: i64,
    pub bus_pos: usize,
    /// Line file index and position; the LMU sits at the line's `end` (0 from, 1 to).
    pub line: i64,
    pub line_pos: usize,
    pub end: usize,
    pub upstream: Option<u16>,
    pub downstream: Vec<u16>,
    /// Lines (positions) of its section.
    pub section_lines: Vec<usize>,
    /// Buses (positions) of its section (excluding its own bus).
    pub section_buses: Vec<usize>,
    /// Length of the section's line from the LMU to the first bus (m) and its loop reactance per km.
    pub first_line_len_m: f64,
    pub x_ohm_per_km: f64,
    /// Normally-open tie LMU downstream of this one, if any.
    pub tie: Option<u16>,
    pub is_tie: bool,
    pub tie_requesters: Vec<u16>,
}

/// The feeder as a tree.
#[derive(Clone, Debug)]
pub struct Feeder {
    pub source_bus_pos: usize,
    /// Parent line (position) and parent bus (position) of each bus; `None` for the source and unreachable buses.
    pub parent: Vec<Option<(usize, usize)>>,
    /// Children lines (position, child bus position) of each bus.
    pub children: Vec<Vec<(usize, usize)>>,
    pub depth_m: Vec<f64>,
}

impl Feeder {
    /// Builds the tree from the source bus over in-service lines, skipping lines in `exclude`.
    pub fn new(net: &Network, exclude: &BTreeSet<usize>) -> Result<Feeder, String> {
        let src = match net.trafos.first() {
            Some(t) => t.lv_bus,
            None => net.ext_grids.first().map(|e| e.bus).ok_or("network has neither transformer nor external grid")?,
        };
        let source_bus_pos = net.bus(src).ok_or(format!("source bus {src} missing"))?;
        let nb = net.buses.len();
        let mut adj: Vec<Vec<(usize, usize)>> = vec![Vec::new(); nb];
        for (k, l) in net.lines.iter().enumerate() {
            if !l.in_service || exclude.contains(&k) {
                continue;
            }
            let (Some(f), Some(t)) = (net.bus(l.from_bus), net.bus(l.to_bus)) else { continue };
            adj[f].push((k, t));
            adj[t].push((k, f));
        }
        let mut parent = vec![None; nb];
        let mut children = vec![Vec::new(); nb];
        let mut depth_m = vec![0.0; nb];
        let mut seen = vec![false; nb];
        seen[source_bus_pos] = true;
        let mut q = VecDeque::from([source_bus_pos]);
        while let Some(b) = q.pop_front() {
            for &(line, other) in &adj[b] {
                if seen[other] {
                    continue;
                }
                seen[other] = true;
                parent[other] = Some((line, b));
                children[b].push((line, other));
                depth_m[other] = depth_m[b] + net.lines[line].length_km * 1000.0;
                q.push_back(other);
            }
        }
        Ok(Feeder { source_bus_pos, parent, children, depth_m })
    }
}

/// Places and commissions LMUs; `ties` are (line position, bus position at which the tie LMU sits) of
/// normally-open tie lines (excluded from the tree).
pub fn commission(net: &Network, rule: &PlacementRule, ties: &[(usize, usize)]) -> Result<Vec<Commissioned>, String> {
    let exclude: BTreeSet<usize> = ties.iter().map(|t| t.0).collect();
    let f = Feeder::new(net, &exclude)?;
    let nb = net.buses.len();
    let bus_set: BTreeSet<usize> = match rule {
        PlacementRule::Buses(v) => {
            let mut s = BTreeSet::new();
            for b in v {
                s.insert(net.bus(*b).ok_or(format!("LMU placement: bus {b} does not exist"))?);
            }
            s
        }
        _ => BTreeSet::new(),
    };
    // Loads below each bus (for MainJunctions).
    let mut below = vec![0u32; nb];
    if let PlacementRule::MainJunctions { .. } = rule {
        for l in &net.loads {
            if let Some(b) = net.bus(l.bus) {
                below[b] += 1;
            }
        }
        for l in &net.asym_loads {
            if let Some(b) = net.bus(l.bus) {
                below[b] += 1;
            }
        }
        // Children after parents in BFS order: accumulate leaves up.
        let mut order = vec![f.source_bus_pos];
        let mut k = 0;
        while k < order.len() {
            let b = order[k];
            order.extend(f.children[b].iter().map(|c| c.1));
            k += 1;
        }
        for &b in order.iter().rev() {
            if let Some((_, p)) = f.parent[b] {
                below[p] += below[b];
            }
        }
    }
    if let PlacementRule::Spaced { max_m } = rule
        && !(max_m.is_finite() && *max_m > 0.0)
    {
        return Err(format!("LMU placement: Spaced(max_m: {max_m}) must be a positive distance"));
    }
    // Which (bus, line) pairs get an LMU.
    let mut at: Vec<(usize, usize, usize)> = Vec::new(); // (bus, line, child bus)
    if let PlacementRule::Spaced { max_m } = rule {
        // Line length from each bus up to the nearest LMU above it, walked from the source (parents first).
        let mut since_m = vec![0.0f64; nb];
        let mut order = vec![f.source_bus_pos];
        let mut k = 0;
        while k < order.len() {
            let b = order[k];
            k += 1;
            let junction = b == f.source_bus_pos || f.children[b].len() >= 2;
            for &(line, child) in &f.children[b] {
                let len_m = net.lines[line].length_km * 1000.0;
                if junction || since_m[b] + len_m > *max_m {
                    at.push((b, line, child));
                    since_m[child] = len_m;
                } else {
                    since_m[child] = since_m[b] + len_m;
                }
                order.push(child);
            }
        }
    }
    for b in 0..nb {
        if let PlacementRule::Spaced { .. } = rule {
            break;
        }
        if let PlacementRule::MainJunctions { min_loads } = rule {
            let main: Vec<(usize, usize)> =
                f.children[b].iter().copied().filter(|&(_, c)| below[c] >= (*min_loads).max(1)).collect();
            if b == f.source_bus_pos || main.len() >= 2 {
                at.extend(main.into_iter().map(|(line, child)| (b, line, child)));
            }
            continue;
        }
        let take = match rule {
            PlacementRule::EveryLine => true,
            PlacementRule::Junctions => b == f.source_bus_pos || f.children[b].len() >= 2,
            PlacementRule::Buses(_) => b == f.source_bus_pos || bus_set.contains(&b),
            PlacementRule::MainJunctions { .. } | PlacementRule::Spaced { .. } => false,
        };
        if take {
            for &(line, child) in &f.children[b] {
                at.push((b, line, child));
            }
        }
    }
    at.sort();
    let mut by_line: BTreeMap<usize, u16> = BTreeMap::new();
    let mut out: Vec<Commissioned> = Vec::new();
    for (k, &(b, line, _)) in at.iter().enumerate() {
        let peer = u16::try_from(k + 1).map_err(|_| "more than 65534 LMUs".to_string())?;
        by_line.insert(line, peer);
        let l = &net.lines[line];
        let end = if net.bus(l.from_bus) == Some(b) { 0 } else { 1 };
        out.push(Commissioned {
            peer,
            bus: net.buses[b].index,
            bus_pos: b,
            line: l.index,
            line_pos: line,
            end,
            upstream: None,
            downstream: Vec::new(),
            section_lines: Vec::new(),
            section_buses: Vec::new(),
            first_line_len_m: l.length_km * 1000.0,
            x_ohm_per_km: l.x_ohm_per_km,
            tie: None,
            is_tie: false,
            tie_requesters: Vec::new(),
        });
    }
    // Sections: walk down from each LMU's child bus until another LMU's line.
    for k in 0..out.len() {
        let (_, line, child) = at[k];
        let mut lines = vec![line];
        let mut buses = vec![child];
        let mut stack = vec![child];
        while let Some(b) = stack.pop() {
            for &(l2, c2) in &f.children[b] {
                if let Some(&p) = by_line.get(&l2) {
                    if !out[k].downstream.contains(&p) {
                        out[k].downstream.push(p);
                    }
                    continue;
                }
                lines.push(l2);
                buses.push(c2);
                stack.push(c2);
            }
        }
        out[k].section_lines = lines;
        out[k].section_buses = buses;
    }
    for k in 0..out.len() {
        let me = out[k].peer;
        for d in out[k].downstream.clone() {
            out[(d - 1) as usize].upstream = Some(me);
        }
    }
    // Tie LMUs: one per tie line, at the given bus; requesters are the LMUs upstream of that bus.
    for &(tline, tbus) in ties {
        let peer = u16::try_from(out.len() + 1).map_err(|_| "too many LMUs".to_string())?;
        let owner = section_of_bus(&out, tbus);
        let l = &net.lines[tline];
        let end = if net.bus(l.from_bus) == Some(tbus) { 0 } else { 1 };
        let mut requesters = Vec::new();
        // Every LMU on the path from the source to the tie bus may ask it to restore.
        let mut b = tbus;
        while let Some((pl, pb)) = f.parent[b] {
            if let Some(&p) = by_line.get(&pl) {
                requesters.push(p);
            }
            b = pb;
        }
        for &r in &requesters {
            let o = &mut out[(r - 1) as usize];
            if o.tie.is_none() {
                o.tie = Some(peer);
            }
        }
        out.push(Commissioned {
            peer,
            bus: net.buses[tbus].index,
            bus_pos: tbus,
            line: l.index,
            line_pos: tline,
            end,
            upstream: owner,
            downstream: Vec::new(),
            section_lines: Vec::new(),
            section_buses: Vec::new(),
            first_line_len_m: l.length_km * 1000.0,
            x_ohm_per_km: l.x_ohm_per_km,
            tie: None,
            is_tie: true,
            tie_requesters: requesters,
        });
    }
    Ok(out)
}

/// The LMU whose section holds bus position `b` (None for the source bus).
pub fn section_of_bus(lmus: &[Commissioned], b: usize) -> Option<u16> {
    lmus.iter().find(|c| !c.is_tie && c.section_buses.contains(&b)).map(|c| c.peer)
}

/// The LMU whose section holds line position `l`.
pub fn section_of_line(lmus: &[Commissioned], l: usize) -> Option<u16> {
    lmus.iter().find(|c| !c.is_tie && c.section_lines.contains(&l)).map(|c| c.peer)
}

/// The bus farthest (by line length) from the source in the subtree below bus position `b`.
pub fn farthest_below(f: &Feeder, b: usize) -> usize {
    let mut best = b;
    let mut stack = vec![b];
    while let Some(x) = stack.pop() {
        if f.depth_m[x] > f.depth_m[best] {
            best = x;
        }
        for &(_, c) in &f.children[x] {
            stack.push(c);
        }
    }
    best
}
