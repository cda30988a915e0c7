//! Relay placement: the fewest extra relays this heuristic finds so that every site reaches the gateway over
//! at least `k` node-disjoint paths, with a lower bound on the optimum and an exhaustive search for small cases.
//!
//! 1. **Connect.** Unreachable components are joined in Prim order: the unreached site nearest to anything
//!    reached gets a straight chain of relays at most one range apart from its nearest reached node (the MST
//!    heuristic for Steiner trees with a minimum number of Steiner points; its worst case in the plane is
//!    within a factor 4 of the optimum for that connectivity problem).
//! 2. **Strengthen.** While a site has fewer than `k` disjoint paths, candidate positions around it (12
//!    directions at 0.8 range, and midpoints towards sites 1-2 ranges away) are each scored by how many paths
//!    they add to deficient sites within two ranges; the best is placed. If none adds a path, a relay chain
//!    straight to the gateway adds one (always possible). Counts are exact maximum flows at every step.
//!
//! The lower bound is the larger of (a) a degree bound: sites more than two ranges apart cannot share a relay,
//! and a site with d neighbours needs k - d more, summed over a greedy set of such far-apart sites; and (b) a
//! gap bound: an unreachable component at distance D from every other site needs ceil(D / range) - 1 relays.
//! The ratio relays / bound is reported with every plan; [`exact_min`] finds the true optimum over a candidate
//! set on small cases.

use super::graph::{FlowNet, Graph, hops};

/// Hard limit on relays one plan places.
pub const MAX_RELAYS: usize = 20_000;

/// Where a relay came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Connect,
    Strengthen,
    Chain,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Connect => "connect",
            Phase::Strengthen => "strengthen",
            Phase::Chain => "chain-to-gateway",
        }
    }
}

/// The result of [`place`].
#[derive(Clone, Debug)]
pub struct Placement {
    /// Relay positions (plane, m) in placement order, with why each was placed.
    pub relays: Vec<((f64, f64), Phase)>,
    pub lower_bound: u32,
    /// Disjoint paths (capped at k) per site after placement; the gateway's entry is k.
    pub paths_after: Vec<u32>,
    /// Sites still below k (only when the relay limit was hit).
    pub unresolved: Vec<usize>,
}

struct Work<'a> {
    pos: Vec<(f64, f64)>,
    lists: Vec<Vec<u32>>,
    n_sites: usize,
    range_m: f64,
    site_dist: &'a dyn Fn(usize, usize) -> f64,
}

impl Work<'_> {
    fn dist(&self, a: usize, b: usize) -> f64 {
        if a < self.n_sites && b < self.n_sites {
            (self.site_dist)(a, b)
        } else {
            (self.pos[a].0 - self.pos[b].0).hypot(self.pos[a].1 - self.pos[b].1)
        }
    }
    fn add(&mut self, p: (f64, f64)) -> usize {
        let id = self.pos.len();
        let mut nb = Vec::new();
        for (v, q) in self.pos.iter().enumerate() {
            if (q.0 - p.0).hypot(q.1 - p.1) <= self.range_m {
                nb.push(v as u32);
            }
        }
        for &v in &nb {
            self.lists[v as usize].push(id as u32);
        }
        self.pos.push(p);
        self.lists.push(nb);
        id
    }
    fn graph(&self) -> Graph {
        Graph::from_lists(self.lists.clone())
    }
    /// Graph with one extra node at `p` (index = current node count).
    fn graph_with(&self, p: (f64, f64)) -> Graph {
        let mut lists = self.lists.clone();
        let id = lists.len() as u32;
        let mut nb = Vec::new();
        for (v, q) in self.pos.iter().enumerate() {
            if (q.0 - p.0).hypot(q.1 - p.1) <= self.range_m {
                nb.push(v as u32);
                lists[v].push(id);
            }
        }
        lists.push(nb);
        Graph::from_lists(lists)
    }
    fn chain(
        &mut self,
        a: (f64, f64),
        b: (f64, f64),
        min_relays: usize,
        phase: Phase,
        out: &mut Vec<((f64, f64), Phase)>,
    ) {
        let d = (a.0 - b.0).hypot(a.1 - b.1);
        let m = (((d / (0.999 * self.range_m)).ceil() as usize).saturating_sub(1)).max(min_relays);
        for i in 1..=m {
            let f = i as f64 / (m + 1) as f64;
            let p = (a.0 + (b.0 - a.0) * f, a.1 + (b.1 - a.1) * f);
            self.add(p);
            out.push((p, phase));
        }
    }
}

/// Places relays so every site has at least `k` node-disjoint paths to `gw`. `pos` are site positions in a
/// plane, `g` their radio graph, `site_dist` the true distance between sites (relay distances are planar).
pub fn place(
    pos: &[(f64, f64)],
    g: &Graph,
    gw: usize,
    range_m: f64,
    k: u32,
    site_dist: &dyn Fn(usize, usize) -> f64,
) -> Placement {
    let n = pos.len();
    let lower_bound = lower_bound(pos, g, gw, range_m, k, site_dist);
    let mut w = Work { pos: pos.to_vec(), lists: g.to_lists(), n_sites: n, range_m, site_dist };
    let mut relays = Vec::new();
    // 1. Connect, in Prim order.
    let mut reached: Vec<bool> = hops(g, gw).iter().map(Option::is_some).collect();
    let mut near: Vec<(f64, usize)> = vec![(f64::INFINITY, usize::MAX); n];
    let reached_now: Vec<usize> = (0..n).filter(|&v| reached[v]).collect();
    let update = |near: &mut Vec<(f64, usize)>, reached: &[bool], w: &Work, from: &[usize]| {
        for b in 0..n {
            if reached[b] {
                continue;
            }
            for &a in from {
                let d = w.dist(a, b);
                if d < near[b].0 {
                    near[b] = (d, a);
                }
            }
        }
    };
    update(&mut near, &reached, &w, &reached_now);
    while relays.len() < MAX_RELAYS {
        let Some(b) = (0..n).filter(|&b| !reached[b]).min_by(|&x, &y| near[x].0.total_cmp(&near[y].0)) else { break };
        let a = near[b].1;
        let before = w.pos.len();
        w.chain(w.pos[a], w.pos[b], 0, Phase::Connect, &mut relays);
        let h = hops(&w.graph(), gw);
        reached.resize(w.pos.len(), false);
        let mut newly: Vec<usize> = (0..w.pos.len()).filter(|&v| h[v].is_some() && !reached[v]).collect();
        newly.extend(before..w.pos.len());
        newly.sort_unstable();
        newly.dedup();
        for &v in &newly {
            reached[v] = true;
        }
        if !reached[b] {
            // Cannot happen (the chain ends within range of b); stop rather than loop.
            break;
        }
        update(&mut near, &reached[..n], &w, &newly);
    }
    // 2. Strengthen.
    let mut net = FlowNet::new(&w.graph(), Some(gw));
    let mut sc = net.scratch();
    let mut paths: Vec<u32> = (0..n).map(|s| if s == gw { k } else { net.disjoint_paths(&mut sc, s, gw, k) }).collect();
    let mut deficient: Vec<usize> = (0..n).filter(|&s| paths[s] < k).collect();
    while let Some(&s) = deficient.first() {
        if relays.len() >= MAX_RELAYS {
            break;
        }
        let cands = candidates(&w, s);
        let near_deficient: Vec<usize> = deficient.iter().copied().filter(|&x| w.dist(x, s) <= 4.0 * range_m).collect();
        let mut best: Option<(u32, (f64, f64))> = None;
        for c in cands {
            let g2 = w.graph_with(c);
            let net2 = FlowNet::new(&g2, Some(gw));
            let mut sc2 = net2.scratch();
            let gain: u32 = near_deficient
                .iter()
                .filter(|&&x| (w.pos[x].0 - c.0).hypot(w.pos[x].1 - c.1) <= 2.0 * range_m)
                .map(|&x| net2.disjoint_paths(&mut sc2, x, gw, k).saturating_sub(paths[x]))
                .sum();
            if gain > 0 && best.is_none_or(|(b, _)| gain > b) {
                best = Some((gain, c));
            }
        }
        match best {
            Some((_, c)) => {
                w.add(c);
                relays.push((c, Phase::Strengthen));
            }
            None => {
                let (a, b) = (w.pos[s], w.pos[gw]);
                w.chain(a, b, 1, Phase::Chain, &mut relays);
            }
        }
        net = FlowNet::new(&w.graph(), Some(gw));
        sc = net.scratch();
        for &x in &deficient {
            paths[x] = net.disjoint_paths(&mut sc, x, gw, k);
        }
        deficient.retain(|&x| paths[x] < k);
    }
    Placement { relays, lower_bound, paths_after: paths, unresolved: deficient }
}

/// Candidate relay positions around site `s`.
fn candidates(w: &Work, s: usize) -> Vec<(f64, f64)> {
    let (x, y) = w.pos[s];
    let r = w.range_m;
    let mut out: Vec<(f64, f64)> = (0..12)
        .map(|i| {
            let a = i as f64 * std::f64::consts::TAU / 12.0;
            (x + 0.8 * r * a.cos(), y + 0.8 * r * a.sin())
        })
        .collect();
    let mut far: Vec<(f64, usize)> = (0..w.pos.len())
        .filter(|&v| v != s)
        .map(|v| (w.dist(s, v), v))
        .filter(|&(d, _)| d > r && d <= 2.0 * r)
        .collect();
    far.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    for &(_, v) in far.iter().take(12) {
        out.push(((x + w.pos[v].0) / 2.0, (y + w.pos[v].1) / 2.0));
    }
    out
}

/// A lower bound on the number of relays any placement needs (see the module docs).
pub fn lower_bound(
    pos: &[(f64, f64)],
    g: &Graph,
    gw: usize,
    range_m: f64,
    k: u32,
    site_dist: &dyn Fn(usize, usize) -> f64,
) -> u32 {
    let n = pos.len();
    // (a) degree bound over far-apart sites, neediest first.
    let mut needy: Vec<(u32, usize)> = (0..n)
        .filter(|&s| s != gw)
        .map(|s| (k.saturating_sub(g.degree(s) as u32), s))
        .filter(|&(d, _)| d > 0)
        .collect();
    needy.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut picked: Vec<usize> = Vec::new();
    let mut deg_bound = 0u32;
    for (need, s) in needy {
        if picked.iter().all(|&p| site_dist(p, s) > 2.0 * range_m) {
            picked.push(s);
            deg_bound += need;
        }
    }
    // (b) gap bound: components apart from the gateway's.
    let h = hops(g, gw);
    let mut comp = vec![usize::MAX; n];
    let mut gap_bound = 0u32;
    for s in 0..n {
        if h[s].is_some() || comp[s] != usize::MAX {
            continue;
        }
        let members: Vec<usize> = {
            let hs = hops(g, s);
            (0..n).filter(|&v| hs[v].is_some()).collect()
        };
        for &v in &members {
            comp[v] = s;
        }
        let mut d = f64::INFINITY;
        for &a in &members {
            for (b, &cb) in comp.iter().enumerate() {
                if cb != s {
                    d = d.min(site_dist(a, b));
                }
            }
        }
        if d.is_finite() {
            gap_bound = gap_bound.max(((d / range_m).ceil() as u32).saturating_sub(1));
        }
    }
    deg_bound.max(gap_bound)
}

/// The fewest relays, chosen from `cands`, that give every site at least `k` disjoint paths to `gw`, by
/// exhaustive search over subsets of up to `max_size` candidates (for small cases); `None` if none is found.
pub fn exact_min(
    pos: &[(f64, f64)],
    gw: usize,
    range_m: f64,
    k: u32,
    cands: &[(f64, f64)],
    max_size: usize,
) -> Option<Vec<usize>> {
    let ok = |chosen: &[usize]| {
        let mut all: Vec<(f64, f64)> = pos.to_vec();
        all.extend(chosen.iter().map(|&c| cands[c]));
        let d = |a: usize, b: usize| (all[a].0 - all[b].0).hypot(all[a].1 - all[b].1);
        let g = super::graph::unit_disc(&all, range_m, 1.0, d);
        let net = FlowNet::new(&g, Some(gw));
        let mut sc = net.scratch();
        (0..pos.len()).all(|s| s == gw || net.disjoint_paths(&mut sc, s, gw, k) >= k)
    };
    for size in 0..=max_size {
        if size > cands.len() {
            return None;
        }
        let mut idx: Vec<usize> = (0..size).collect();
        loop {
            if ok(&idx) {
                return Some(idx);
            }
            if !next_combination(&mut idx, cands.len()) {
                break;
            }
        }
    }
    None
}

/// Advances `idx` (ascending indices into 0..n) to the next combination; false after the last.
fn next_combination(idx: &mut [usize], n: usize) -> bool {
    let k = idx.len();
    for i in (0..k).rev() {
        if idx[i] < n - k + i {
            idx[i] += 1;
            for j in i + 1..k {
                idx[j] = idx[j - 1] + 1;
            }
            return true;
        }
    }
    false
}

/// The candidate positions [`place`] may consider for a small site set, for comparing with [`exact_min`]:
/// the per-site candidates of every site plus a grid of half-range pitch over the bounding box.
pub fn candidate_pool(pos: &[(f64, f64)], range_m: f64) -> Vec<(f64, f64)> {
    let d = |a: usize, b: usize| (pos[a].0 - pos[b].0).hypot(pos[a].1 - pos[b].1);
    let w = Work { pos: pos.to_vec(), lists: vec![Vec::new(); pos.len()], n_sites: pos.len(), range_m, site_dist: &d };
    let mut out: Vec<(f64, f64)> = (0..pos.len()).flat_map(|s| candidates(&w, s)).collect();
    let (x0, x1) = pos.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |a, p| (a.0.min(p.0), a.1.max(p.0)));
    let (y0, y1) = pos.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |a, p| (a.0.min(p.1), a.1.max(p.1)));
    let step = range_m / 2.0;
    let mut y = y0;
    while y <= y1 + 1e-9 && out.len() < 10_000 {
        let mut x = x0;
        while x <= x1 + 1e-9 {
            out.push((x, y));
            x += step;
        }
        y += step;
    }
    out
}
