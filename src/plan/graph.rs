//! The radio graph of a site set and the questions a planner asks of it: hop counts (BFS), the number of
//! node-disjoint paths to the gateway (maximum flow with node splitting and unit capacities, Dinic's
//! algorithm), and single points of failure (articulation points of a DFS tree rooted at the gateway).
//!
//! Neighbour search uses a uniform grid of cells one range wide, so building the graph costs O(n + m) for n
//! sites and m links instead of O(n²). Everything is in index order: no hash-map iteration.

/// An undirected graph in compressed adjacency form (neighbours of `v` are `adj[start[v]..start[v + 1]]`,
/// ascending).
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub start: Vec<u32>,
    pub adj: Vec<u32>,
}

impl Graph {
    pub fn n(&self) -> usize {
        self.start.len().saturating_sub(1)
    }
    pub fn neighbours(&self, v: usize) -> &[u32] {
        &self.adj[self.start[v] as usize..self.start[v + 1] as usize]
    }
    pub fn degree(&self, v: usize) -> usize {
        (self.start[v + 1] - self.start[v]) as usize
    }
    pub fn edges(&self) -> usize {
        self.adj.len() / 2
    }
    /// From per-node neighbour lists (each made ascending and deduplicated here).
    pub fn from_lists(mut lists: Vec<Vec<u32>>) -> Graph {
        let mut start = Vec::with_capacity(lists.len() + 1);
        let mut adj = Vec::new();
        start.push(0);
        for l in &mut lists {
            l.sort_unstable();
            l.dedup();
            adj.extend_from_slice(l);
            start.push(adj.len() as u32);
        }
        Graph { start, adj }
    }
    pub fn to_lists(&self) -> Vec<Vec<u32>> {
        (0..self.n()).map(|v| self.neighbours(v).to_vec()).collect()
    }
}

/// A uniform grid over points for range queries.
pub struct SpatialGrid {
    cell_m: f64,
    x0: f64,
    y0: f64,
    nx: usize,
    ny: usize,
    /// Point indices per cell (cell-major), `cells[cell_start[c]..cell_start[c + 1]]`.
    cell_start: Vec<u32>,
    cells: Vec<u32>,
}

impl SpatialGrid {
    /// Indexes `pts` with cells `cell_m` wide (at most about 4 cells per point).
    pub fn new(pts: &[(f64, f64)], cell_m: f64) -> SpatialGrid {
        let (mut x0, mut y0, mut x1, mut y1) = (f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY);
        for &(x, y) in pts {
            (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
        }
        if pts.is_empty() {
            (x0, y0, x1, y1) = (0.0, 0.0, 0.0, 0.0);
        }
        let limit = (4 * pts.len()).max(16) as f64;
        let mut cell = cell_m.max(1e-3);
        while ((x1 - x0) / cell + 1.0) * ((y1 - y0) / cell + 1.0) > limit {
            cell *= 2.0;
        }
        let nx = ((x1 - x0) / cell) as usize + 1;
        let ny = ((y1 - y0) / cell) as usize + 1;
        let key = |x: f64, y: f64| {
            let i = (((x - x0) / cell) as usize).min(nx - 1);
            let j = (((y - y0) / cell) as usize).min(ny - 1);
            j * nx + i
        };
        let mut count = vec![0u32; nx * ny + 1];
        for &(x, y) in pts {
            count[key(x, y) + 1] += 1;
        }
        for c in 1..count.len() {
            count[c] += count[c - 1];
        }
        let mut fill = count.clone();
        let mut cells = vec![0u32; pts.len()];
        for (k, &(x, y)) in pts.iter().enumerate() {
            let c = key(x, y);
            cells[fill[c] as usize] = k as u32;
            fill[c] += 1;
        }
        SpatialGrid { cell_m: cell, x0, y0, nx, ny, cell_start: count, cells }
    }

    /// Calls `f` with every indexed point in cells that a disc of radius `r_m` about (x, y) touches (a
    /// superset of the points within `r_m`), in cell order.
    pub fn around(&self, x: f64, y: f64, r_m: f64, mut f: impl FnMut(usize)) {
        let lo_i = ((x - r_m - self.x0) / self.cell_m).floor().max(0.0) as usize;
        let lo_j = ((y - r_m - self.y0) / self.cell_m).floor().max(0.0) as usize;
        let hi_i = ((x + r_m - self.x0) / self.cell_m).floor();
        let hi_j = ((y + r_m - self.y0) / self.cell_m).floor();
        if hi_i < 0.0 || hi_j < 0.0 {
            return;
        }
        let hi_i = (hi_i as usize).min(self.nx - 1);
        let hi_j = (hi_j as usize).min(self.ny - 1);
        for j in lo_j..=hi_j {
            for i in lo_i..=hi_i {
                let c = j * self.nx + i;
                for &p in &self.cells[self.cell_start[c] as usize..self.cell_start[c + 1] as usize] {
                    f(p as usize);
                }
            }
        }
    }
}

/// The unit-disc graph: `a` and `b` linked when `dist(a, b) <= range_m`. `pts` are positions in a plane for
/// the index; `dist` is the true distance, at most `slack` times the planar one.
pub fn unit_disc(pts: &[(f64, f64)], range_m: f64, slack: f64, dist: impl Fn(usize, usize) -> f64) -> Graph {
    let grid = SpatialGrid::new(pts, range_m * slack);
    let mut lists = vec![Vec::new(); pts.len()];
    for (a, &(x, y)) in pts.iter().enumerate() {
        grid.around(x, y, range_m * slack, |b| {
            if b > a && dist(a, b) <= range_m {
                lists[a].push(b as u32);
                lists[b].push(a as u32);
            }
        });
    }
    Graph::from_lists(lists)
}

/// Hop counts from `src` (BFS); `None` where unreachable.
pub fn hops(g: &Graph, src: usize) -> Vec<Option<u32>> {
    let mut h = vec![None; g.n()];
    let mut q = std::collections::VecDeque::new();
    h[src] = Some(0);
    q.push_back(src);
    while let Some(u) = q.pop_front() {
        let d = h[u].unwrap_or(0) + 1;
        for &v in g.neighbours(u) {
            if h[v as usize].is_none() {
                h[v as usize] = Some(d);
                q.push_back(v as usize);
            }
        }
    }
    h
}

/// The node-split flow network of a graph (node v: in = 2v, out = 2v + 1; arc v_in -> v_out capacity 1,
/// arcs u_out -> v_in capacity 1 for each link), reusable across (source, sink) pairs. Each node's arcs are
/// ordered by the far end's hop distance to a target (the gateway), so augmenting searches head for it first.
pub struct FlowNet {
    start: Vec<u32>,
    to: Vec<u32>,
    rev: Vec<u32>,
    cap0: Vec<u8>,
    degree: Vec<u32>,
}

/// Per-query scratch space of [`FlowNet::disjoint_paths`] (one per thread).
#[derive(Default)]
pub struct FlowScratch {
    cap: Vec<u8>,
    seen: Vec<u32>,
    stamp: u32,
    it: Vec<u32>,
    touched: Vec<u32>,
    stack: Vec<u32>,
    path: Vec<u32>,
}

impl FlowNet {
    /// The flow network of `g`, arcs ordered towards `toward` (hop distance) when given.
    pub fn new(g: &Graph, toward: Option<usize>) -> FlowNet {
        let n = g.n();
        let rank: Vec<u32> = match toward {
            Some(t) if t < n => hops(g, t).iter().map(|h| h.unwrap_or(u32::MAX)).collect(),
            _ => vec![0; n],
        };
        // Arcs per split node: v_in has the arc to v_out plus the reverses of the arcs u_out -> v_in;
        // v_out has the reverse of v_in -> v_out plus its arcs to neighbours' ins.
        let mut start = Vec::with_capacity(2 * n + 1);
        start.push(0u32);
        for v in 0..n {
            let d = g.degree(v) as u32;
            let s = *start.last().unwrap_or(&0);
            start.push(s + 1 + d);
            start.push(s + 1 + d + 1 + d);
        }
        let arcs = *start.last().unwrap_or(&0) as usize;
        let mut to = vec![0u32; arcs];
        let mut rev = vec![0u32; arcs];
        let mut cap0 = vec![0u8; arcs];
        let mut fill: Vec<u32> = start[..2 * n].to_vec();
        let mut add = |fill: &mut Vec<u32>, a: usize, b: usize, c: u8| {
            let (ea, eb) = (fill[a] as usize, fill[b] as usize);
            fill[a] += 1;
            fill[b] += 1;
            to[ea] = b as u32;
            rev[ea] = eb as u32;
            cap0[ea] = c;
            to[eb] = a as u32;
            rev[eb] = ea as u32;
            cap0[eb] = 0;
        };
        for v in 0..n {
            add(&mut fill, 2 * v, 2 * v + 1, 1);
        }
        for u in 0..n {
            let mut nb: Vec<u32> = g.neighbours(u).to_vec();
            nb.sort_by_key(|&v| (rank[v as usize], v));
            for v in nb {
                add(&mut fill, 2 * u + 1, 2 * v as usize, 1);
            }
        }
        let degree = (0..n).map(|v| g.degree(v) as u32).collect();
        FlowNet { start, to, rev, cap0, degree }
    }

    pub fn scratch(&self) -> FlowScratch {
        let nodes = self.start.len() - 1;
        FlowScratch { cap: self.cap0.clone(), seen: vec![0; nodes], it: vec![0; nodes], ..FlowScratch::default() }
    }

    /// The number of node-disjoint paths between `s` and `t` (`s != t`; a direct link counts as one path),
    /// counting at most `limit`: the maximum flow of the split network, by augmenting paths found with a
    /// depth-first search that tries arcs towards the gateway first. Stops as soon as the count reaches
    /// min(degree(s), degree(t), limit), so only a deficient pair pays for the final, exhaustive search.
    pub fn disjoint_paths(&self, sc: &mut FlowScratch, s: usize, t: usize, limit: u32) -> u32 {
        if s == t {
            return 0;
        }
        let bound = self.degree[s].min(self.degree[t]).min(limit);
        let (src, sink) = (2 * s + 1, 2 * t);
        let mut flow = 0u32;
        while flow < bound {
            sc.stamp = sc.stamp.wrapping_add(1);
            if sc.stamp == 0 {
                sc.seen.iter_mut().for_each(|x| *x = 0);
                sc.stamp = 1;
            }
            let stamp = sc.stamp;
            sc.stack.clear();
            sc.path.clear();
            sc.stack.push(src as u32);
            sc.seen[src] = stamp;
            sc.it[src] = self.start[src];
            let mut reached = false;
            while let Some(&u) = sc.stack.last() {
                let u = u as usize;
                if u == sink {
                    reached = true;
                    break;
                }
                let mut advanced = false;
                while sc.it[u] < self.start[u + 1] {
                    let e = sc.it[u] as usize;
                    sc.it[u] += 1;
                    let v = self.to[e] as usize;
                    if sc.cap[e] > 0 && sc.seen[v] != stamp {
                        sc.seen[v] = stamp;
                        sc.it[v] = self.start[v];
                        sc.stack.push(v as u32);
                        sc.path.push(e as u32);
                        advanced = true;
                        break;
                    }
                }
                if !advanced {
                    sc.stack.pop();
                    sc.path.pop();
                }
            }
            if !reached {
                break;
            }
            for &e in &sc.path {
                let e = e as usize;
                sc.cap[e] -= 1;
                sc.cap[self.rev[e] as usize] += 1;
                sc.touched.push(e as u32);
            }
            flow += 1;
        }
        for &e in &sc.touched {
            let e = e as usize;
            sc.cap[e] = self.cap0[e];
            let r = self.rev[e] as usize;
            sc.cap[r] = self.cap0[r];
        }
        sc.touched.clear();
        flow
    }
}

/// Single points of failure with respect to the gateway: for every site, the number of other sites its
/// failure cuts off from the gateway, and the nearest site whose failure cuts it off (its closest
/// articulation point towards the gateway), from one iterative DFS rooted at the gateway (Tarjan's low-link).
pub struct Cuts {
    /// Sites cut off from the gateway when this site fails (0 for non-articulation points).
    pub cuts_off: Vec<u32>,
    /// The nearest site on the way to the gateway whose single failure cuts this one off.
    pub cut_by: Vec<Option<u32>>,
    /// How many distinct sites' single failures cut this one off.
    pub spof_count: Vec<u32>,
}

pub fn cuts(g: &Graph, root: usize) -> Cuts {
    let n = g.n();
    let mut disc = vec![u32::MAX; n];
    let mut low = vec![0u32; n];
    let mut parent = vec![u32::MAX; n];
    let mut size = vec![1u32; n];
    let mut order = Vec::with_capacity(n);
    let mut it = vec![0u32; n];
    let mut time = 0u32;
    let mut stack = vec![root];
    disc[root] = 0;
    low[root] = 0;
    order.push(root);
    // separates[c] = parent[c] is an articulation point whose failure cuts off c's subtree.
    let mut separates = vec![false; n];
    while let Some(&u) = stack.last() {
        let nb = g.neighbours(u);
        if (it[u] as usize) < nb.len() {
            let v = nb[it[u] as usize] as usize;
            it[u] += 1;
            if disc[v] == u32::MAX {
                time += 1;
                disc[v] = time;
                low[v] = time;
                parent[v] = u as u32;
                order.push(v);
                stack.push(v);
            } else if v as u32 != parent[u] {
                low[u] = low[u].min(disc[v]);
            }
        } else {
            stack.pop();
            if let Some(&p) = stack.last() {
                low[p] = low[p].min(low[u]);
                size[p] += size[u];
                if p != root && low[u] >= disc[p] {
                    separates[u] = true;
                }
            }
        }
    }
    let mut cuts_off = vec![0u32; n];
    let mut cut_by = vec![None; n];
    let mut spof_count = vec![0u32; n];
    for &v in &order {
        if v == root {
            continue;
        }
        let p = parent[v] as usize;
        if separates[v] {
            cuts_off[p] += size[v];
            cut_by[v] = Some(p as u32);
            spof_count[v] = spof_count[p] + 1;
        } else {
            cut_by[v] = cut_by[p];
            spof_count[v] = spof_count[p];
        }
    }
    Cuts { cuts_off, cut_by, spof_count }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(n: usize, edges: &[(u32, u32)]) -> Graph {
        let mut l = vec![Vec::new(); n];
        for &(a, b) in edges {
            l[a as usize].push(b);
            l[b as usize].push(a);
        }
        Graph::from_lists(l)
    }

    #[test]
    fn disjoint_paths_on_small_graphs() {
        // A 4-cycle 0-1-2-3-0 plus chord 0-2: between 1 and 3 there are 2 node-disjoint paths (via 0 and 2).
        let g = graph(4, &[(0, 1), (1, 2), (2, 3), (3, 0), (0, 2)]);
        let f = FlowNet::new(&g, Some(0));
        let mut sc = f.scratch();
        assert_eq!(f.disjoint_paths(&mut sc, 1, 3, 99), 2);
        assert_eq!(f.disjoint_paths(&mut sc, 0, 2, 99), 3);
        assert_eq!(f.disjoint_paths(&mut sc, 0, 2, 2), 2);
        // A bow tie: two triangles sharing node 2; 0 to 4 has one node-disjoint path.
        let g = graph(5, &[(0, 1), (1, 2), (0, 2), (2, 3), (3, 4), (2, 4)]);
        let f = FlowNet::new(&g, Some(0));
        let mut sc = f.scratch();
        assert_eq!(f.disjoint_paths(&mut sc, 0, 4, 99), 1);
        let c = cuts(&g, 4);
        assert_eq!(c.cuts_off[2], 2);
        assert_eq!(c.cut_by[0], Some(2));
        assert_eq!(c.cut_by[3], None);
    }

    #[test]
    fn spatial_grid_finds_every_pair_in_range() {
        let pts: Vec<(f64, f64)> =
            (0..200).map(|k| ((k * 37 % 101) as f64 * 13.0, (k * 53 % 97) as f64 * 11.0)).collect();
        let d = |a: usize, b: usize| (pts[a].0 - pts[b].0).hypot(pts[a].1 - pts[b].1);
        let g = unit_disc(&pts, 150.0, 1.0, d);
        let mut m = 0;
        for a in 0..pts.len() {
            for b in a + 1..pts.len() {
                if d(a, b) <= 150.0 {
                    m += 1;
                    assert!(g.neighbours(a).contains(&(b as u32)));
                }
            }
        }
        assert_eq!(g.edges(), m);
    }
}
