//! Sparse LU factorisation of structurally symmetric complex matrices (admittance matrices).
//!
//! Power networks give matrices whose pattern is symmetric (a branch couples two buses both ways) even when
//! the values are not (phase-shifting transformers). The factorisation orders the unknowns by minimum degree
//! (leaves of a radial feeder first, so a tree factorises without fill-in), computes the fill pattern once
//! ([`Symbolic`]) and then refactorises numerically in place ([`Lu::refactor`]) whenever only values change:
//! the symbolic work, the elimination schedule and all buffers are reused between time steps. No pivoting:
//! admittance matrices of connected networks with a grounded reference are diagonally dominant enough. For
//! the complex symmetric (not Hermitian) matrices of IEC 60909 it is also guaranteed: with resistive branches
//! and a resistive source the real part of Y (its Hermitian part) is a weighted Laplacian plus positive
//! shunts, positive definite on every component that reaches a source, so every leading principal submatrix
//! in any order is regular and the factorisation without pivoting exists; a zero pivot (a purely reactive
//! island) is reported as [`SingularAt`]. [`Lu::inverse_diagonal`] gives the diagonal of the inverse from the
//! factor alone (selected inversion).

use num_complex::Complex64 as C64;

/// Pattern, ordering and elimination schedule of one matrix structure.
#[derive(Clone, Debug)]
pub struct Symbolic {
    n: usize,
    /// `perm[new] = old`.
    perm: Vec<usize>,
    /// `iperm[old] = new`.
    iperm: Vec<usize>,
    /// Row `k` (new order) of U / column `k` of L: positions `ptr[k]..ptr[k+1]` in `idx` (new indices `> k`).
    ptr: Vec<usize>,
    idx: Vec<usize>,
    /// Elimination updates per pivot: `(target, lower, upper)` value slots, `ops_ptr[k]..ops_ptr[k+1]`.
    ops: Vec<(u32, u32, u32)>,
    ops_ptr: Vec<usize>,
}

/// Where an original entry `(row, col)` lands in the value array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot(pub u32);

impl Symbolic {
    /// Builds the pattern from the off-diagonal couplings `(i, j)` (both orders are implied; duplicates fine).
    pub fn new(n: usize, edges: &[(usize, usize)]) -> Self {
        let mut adj: Vec<Vec<usize>> = vec![Vec::new(); n];
        for &(i, j) in edges {
            if i != j && i < n && j < n {
                adj[i].push(j);
                adj[j].push(i);
            }
        }
        for a in adj.iter_mut() {
            a.sort_unstable();
            a.dedup();
        }
        // Minimum-degree ordering with explicit elimination graphs (cliques of eliminated neighbours). The
        // networks here have up to a few thousand nodes and small degrees, so the simple form is fast enough.
        let mut eliminated = vec![false; n];
        let mut perm = Vec::with_capacity(n);
        let mut degree: Vec<usize> = adj.iter().map(|a| a.len()).collect();
        // Bucket queue keyed by degree; stale entries are skipped (lazy deletion). Ties break on node index.
        let mut heap: std::collections::BinaryHeap<std::cmp::Reverse<(usize, usize)>> =
            (0..n).map(|i| std::cmp::Reverse((degree[i], i))).collect();
        let mut upper: Vec<Vec<usize>> = vec![Vec::new(); n];
        while let Some(std::cmp::Reverse((d, v))) = heap.pop() {
            if eliminated[v] || d != degree[v] {
                continue;
            }
            eliminated[v] = true;
            perm.push(v);
            let nbrs: Vec<usize> = adj[v].iter().copied().filter(|&u| !eliminated[u]).collect();
            for &u in &nbrs {
                // u loses v and gains the other neighbours of v (fill-in clique).
                let a = &mut adj[u];
                a.retain(|&w| w != v);
                for &w in &nbrs {
                    if w != u && a.binary_search(&w).is_err() {
                        let pos = a.binary_search(&w).unwrap_err();
                        a.insert(pos, w);
                    }
                }
                let nd = a.iter().filter(|&&w| !eliminated[w]).count();
                degree[u] = nd;
                heap.push(std::cmp::Reverse((nd, u)));
            }
            upper[v] = nbrs;
        }
        let mut iperm = vec![0; n];
        for (k, &old) in perm.iter().enumerate() {
            iperm[old] = k;
        }
        let mut ptr = Vec::with_capacity(n + 1);
        let mut idx = Vec::new();
        ptr.push(0);
        for &old in &perm {
            let mut row: Vec<usize> = upper[old].iter().map(|&o| iperm[o]).collect();
            row.sort_unstable();
            idx.extend_from_slice(&row);
            ptr.push(idx.len());
        }
        let mut sym = Symbolic { n, perm, iperm, ptr, idx, ops: Vec::new(), ops_ptr: vec![0] };
        // Elimination schedule: for pivot k and i, j in pattern(k): a_ij -= l_ik * u_kj.
        let mut ops = Vec::new();
        for k in 0..n {
            let (s, e) = (sym.ptr[k], sym.ptr[k + 1]);
            for a in s..e {
                let i = sym.idx[a];
                for b in s..e {
                    let j = sym.idx[b];
                    let t = sym.slot_new(i, j).expect("fill pattern closed under elimination");
                    ops.push((t.0, sym.lower_slot(a) as u32, sym.upper_slot(b) as u32));
                }
            }
            sym.ops_ptr.push(ops.len());
        }
        sym.ops = ops;
        sym
    }

    pub fn n(&self) -> usize {
        self.n
    }

    /// Number of value slots (diagonal + upper + lower).
    pub fn len(&self) -> usize {
        self.n + 2 * self.idx.len()
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    fn upper_slot(&self, pos: usize) -> usize {
        self.n + pos
    }

    fn lower_slot(&self, pos: usize) -> usize {
        self.n + self.idx.len() + pos
    }

    fn slot_new(&self, i: usize, j: usize) -> Option<Slot> {
        use std::cmp::Ordering::*;
        match i.cmp(&j) {
            Equal => Some(Slot(i as u32)),
            Less => {
                let row = &self.idx[self.ptr[i]..self.ptr[i + 1]];
                row.binary_search(&j).ok().map(|p| Slot(self.upper_slot(self.ptr[i] + p) as u32))
            }
            Greater => {
                let col = &self.idx[self.ptr[j]..self.ptr[j + 1]];
                col.binary_search(&i).ok().map(|p| Slot(self.lower_slot(self.ptr[j] + p) as u32))
            }
        }
    }

    /// Slot of original entry `(row, col)`; `None` if it is not in the pattern.
    pub fn slot(&self, row: usize, col: usize) -> Option<Slot> {
        if row >= self.n || col >= self.n {
            return None;
        }
        self.slot_new(self.iperm[row], self.iperm[col])
    }
}

/// A numeric factorisation (values in the symbolic layout) with its own work vector.
#[derive(Clone, Debug)]
pub struct Lu {
    sym: std::sync::Arc<Symbolic>,
    vals: Vec<C64>,
    inv_diag: Vec<C64>,
    work: Vec<C64>,
    /// Packed factors when the pattern is a forest (radial feeders: every column of L holds at most one entry,
    /// the parent), so a triangular solve walks one array with no inner loops. Empty otherwise.
    tree: Vec<TreeNode>,
}

/// One unknown of a forest-shaped factor: its parent (`NO_PARENT` at a root), the L and U couplings to it
/// and the inverse pivot.
#[derive(Clone, Copy, Debug)]
struct TreeNode {
    parent: u32,
    l: C64,
    u: C64,
    inv_diag: C64,
}

const NO_PARENT: u32 = u32::MAX;

/// A zero (or non-finite) pivot: the matrix is singular at this original unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SingularAt(pub usize);

impl Lu {
    pub fn new(sym: std::sync::Arc<Symbolic>) -> Self {
        let len = sym.len();
        let n = sym.n;
        Lu {
            sym,
            vals: vec![C64::new(0.0, 0.0); len],
            inv_diag: vec![C64::new(0.0, 0.0); n],
            work: vec![C64::new(0.0, 0.0); n],
            tree: Vec::new(),
        }
    }

    pub fn symbolic(&self) -> &Symbolic {
        &self.sym
    }

    /// Factorises the matrix given as `(slot, value)` contributions (summed). Reuses all buffers.
    pub fn refactor(&mut self, entries: &[(Slot, C64)]) -> Result<(), SingularAt> {
        for v in self.vals.iter_mut() {
            *v = C64::new(0.0, 0.0);
        }
        for &(s, v) in entries {
            self.vals[s.0 as usize] += v;
        }
        let sym = &*self.sym;
        let vals = &mut self.vals;
        let lower0 = sym.n + sym.idx.len();
        let scale = vals[..sym.n].iter().fold(0.0f64, |m, v| m.max(v.norm())).max(f64::MIN_POSITIVE);
        for k in 0..sym.n {
            let piv = vals[k];
            // Written so that a NaN pivot also fails the test.
            #[allow(clippy::neg_cmp_op_on_partial_ord)]
            if !(piv.norm() > 1e-13 * scale) || !piv.re.is_finite() || !piv.im.is_finite() {
                return Err(SingularAt(sym.perm[k]));
            }
            let inv = piv.inv();
            self.inv_diag[k] = inv;
            for p in sym.ptr[k]..sym.ptr[k + 1] {
                vals[lower0 + p] *= inv;
            }
            for &(t, l, u) in &sym.ops[sym.ops_ptr[k]..sym.ops_ptr[k + 1]] {
                let d = vals[l as usize] * vals[u as usize];
                vals[t as usize] -= d;
            }
        }
        self.tree.clear();
        if sym.ptr.windows(2).all(|w| w[1] - w[0] <= 1) {
            let nnz = sym.idx.len();
            self.tree.extend((0..sym.n).map(|k| {
                let p = sym.ptr[k];
                if sym.ptr[k + 1] > p {
                    TreeNode {
                        parent: sym.idx[p] as u32,
                        l: vals[sym.n + nnz + p],
                        u: vals[sym.n + p],
                        inv_diag: self.inv_diag[k],
                    }
                } else {
                    let zero = C64::new(0.0, 0.0);
                    TreeNode { parent: NO_PARENT, l: zero, u: zero, inv_diag: self.inv_diag[k] }
                }
            }));
        }
        Ok(())
    }

    /// Original index of elimination position `k` (`perm[new] = old`).
    pub fn perm(&self) -> &[usize] {
        &self.sym.perm
    }

    /// Solves `A x = b` in place with `w` already in elimination order (`w[k]` belongs to `perm()[k]`).
    pub fn solve_ordered(&self, w: &mut [C64]) {
        let sym = &*self.sym;
        let n = sym.n;
        if !self.tree.is_empty() {
            let w = &mut w[..n];
            // Parents come later in elimination order: forward pushes each value to its parent, backward
            // reads the parent's finished value.
            for (k, t) in self.tree.iter().enumerate() {
                if t.parent != NO_PARENT {
                    let wk = w[k];
                    w[t.parent as usize] -= t.l * wk;
                }
            }
            for (k, t) in self.tree.iter().enumerate().rev() {
                let mut acc = w[k];
                if t.parent != NO_PARENT {
                    acc -= t.u * w[t.parent as usize];
                }
                w[k] = acc * t.inv_diag;
            }
            return;
        }
        let nnz = sym.idx.len();
        let upper = &self.vals[n..n + nnz];
        let lower = &self.vals[n + nnz..n + 2 * nnz];
        for k in 0..n {
            let wk = w[k];
            let (s, e) = (sym.ptr[k], sym.ptr[k + 1]);
            for (l, &i) in lower[s..e].iter().zip(&sym.idx[s..e]) {
                w[i] -= *l * wk;
            }
        }
        for k in (0..n).rev() {
            let (s, e) = (sym.ptr[k], sym.ptr[k + 1]);
            let mut acc = w[k];
            for (u, &j) in upper[s..e].iter().zip(&sym.idx[s..e]) {
                acc -= *u * w[j];
            }
            w[k] = acc * self.inv_diag[k];
        }
    }

    /// Diagonal of the inverse `A^-1` (in original order) by sparse selected inversion (Takahashi, Fagan
    /// and Chen 1973), without forming any column of the inverse.
    ///
    /// With `A = L D U` (L unit lower, U unit upper, both in the fill pattern), `Z = A^-1` satisfies
    /// `Z = D^-1 L^-1 + (I - U) Z` and `Z = U^-1 D^-1 + Z (I - L)`. Taken from the last pivot backwards, the
    /// entries of Z inside the fill pattern need only entries of Z inside the fill pattern already computed:
    /// for pivot k with pattern P (the indices after k that row k of U and column k of L hold),
    /// `Z_kj = -sum_{i in P} U_ki Z_ij` and `Z_jk = -sum_{i in P} Z_ji L_ik` for j in P, then
    /// `Z_kk = 1/d_k - sum_{i in P} U_ki Z_ik`. P is a clique of the filled graph, so every `Z_ij` needed is
    /// in the pattern. The cost is the elimination schedule's (`update_ops`, the sum of |P|^2): linear in the
    /// size of a radial or weakly meshed network, where the per-bus triangular solves cost n times the
    /// factor. The values are exact up to rounding (no approximation); the factorisation has no pivoting.
    pub fn inverse_diagonal(&self) -> Vec<C64> {
        let sym = &*self.sym;
        let n = sym.n;
        let nnz = sym.idx.len();
        let zero = C64::new(0.0, 0.0);
        // Z in the factor's value layout: diagonal, upper (row k, j > k), lower (column k, i > k).
        let mut z = vec![zero; sym.len()];
        let lower0 = n + nnz;
        let mut u_row: Vec<C64> = Vec::new();
        for k in (0..n).rev() {
            let (s, e) = (sym.ptr[k], sym.ptr[k + 1]);
            let m = e - s;
            let inv_d = self.inv_diag[k];
            // Row k of the unit upper factor: stored upper values divided by the pivot.
            u_row.clear();
            u_row.extend(self.vals[n + s..n + e].iter().map(|u| u * inv_d));
            let ops = &sym.ops[sym.ops_ptr[k]..sym.ops_ptr[k + 1]];
            // ops[(a - s) * m + (b - s)] targets Z(idx[a], idx[b]) for a, b in s..e.
            for bo in 0..m {
                let mut up = zero;
                let mut lo = zero;
                for ao in 0..m {
                    // Z_k,idx[b] = -sum_a U_k,idx[a] Z_idx[a],idx[b].
                    up -= u_row[ao] * z[ops[ao * m + bo].0 as usize];
                    // Z_idx[b],k = -sum_a Z_idx[b],idx[a] L_idx[a],k.
                    lo -= z[ops[bo * m + ao].0 as usize] * self.vals[lower0 + s + ao];
                }
                z[n + s + bo] = up;
                z[lower0 + s + bo] = lo;
            }
            let mut d = inv_d;
            for ao in 0..m {
                d -= u_row[ao] * z[lower0 + s + ao];
            }
            z[k] = d;
        }
        let mut out = vec![zero; n];
        for (k, &old) in sym.perm.iter().enumerate() {
            out[old] = z[k];
        }
        out
    }

    /// Solves `A x = b` in place (`b` in original order).
    pub fn solve(&mut self, b: &mut [C64]) {
        let mut w = std::mem::take(&mut self.work);
        let perm = &self.sym.perm;
        for (wk, &old) in w.iter_mut().zip(perm) {
            *wk = b[old];
        }
        self.solve_ordered(&mut w);
        for (wk, &old) in w.iter().zip(perm) {
            b[old] = *wk;
        }
        self.work = w;
    }
}

impl Symbolic {
    /// Off-diagonal entries of the factor (one triangle), to judge fill-in.
    pub fn factor_nnz(&self) -> usize {
        self.idx.len()
    }
    /// Number of multiply-add updates of one numeric factorisation.
    pub fn update_ops(&self) -> usize {
        self.ops.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn c(re: f64, im: f64) -> C64 {
        C64::new(re, im)
    }

    #[test]
    fn solves_a_small_meshed_system() {
        // 4-node ring plus a chord: fill-in required.
        let edges = [(0, 1), (1, 2), (2, 3), (3, 0), (0, 2)];
        let sym = Arc::new(Symbolic::new(4, &edges));
        let mut dense = [[c(0.0, 0.0); 4]; 4];
        let mut entries = Vec::new();
        for (k, &(i, j)) in edges.iter().enumerate() {
            let y = c(1.0 + k as f64, -2.0 - 0.5 * k as f64);
            for (r, s, v) in [(i, i, y), (j, j, y), (i, j, -y * c(1.0, 0.1)), (j, i, -y)] {
                dense[r][s] += v;
                entries.push((sym.slot(r, s).unwrap(), v));
            }
        }
        for i in 0..4 {
            dense[i][i] += c(0.3, 0.0);
            entries.push((sym.slot(i, i).unwrap(), c(0.3, 0.0)));
        }
        let mut lu = Lu::new(sym);
        lu.refactor(&entries).unwrap();
        let x_true = [c(1.0, 0.5), c(-0.2, 0.1), c(0.7, -0.3), c(0.0, 2.0)];
        let mut b = [c(0.0, 0.0); 4];
        for i in 0..4 {
            for j in 0..4 {
                b[i] += dense[i][j] * x_true[j];
            }
        }
        lu.solve(&mut b);
        for i in 0..4 {
            assert!((b[i] - x_true[i]).norm() < 1e-12, "{i}: {} vs {}", b[i], x_true[i]);
        }
    }

    #[test]
    fn singular_matrix_names_the_unknown() {
        let sym = Arc::new(Symbolic::new(2, &[(0, 1)]));
        let y = c(1.0, -1.0);
        let entries = [
            (sym.slot(0, 0).unwrap(), y),
            (sym.slot(1, 1).unwrap(), y),
            (sym.slot(0, 1).unwrap(), -y),
            (sym.slot(1, 0).unwrap(), -y),
        ];
        let mut lu = Lu::new(sym);
        assert!(lu.refactor(&entries).is_err());
    }

    #[test]
    fn forest_fast_path_matches_a_dense_solve() {
        // Two trees (a forest), non-symmetric values as with phase-shifting transformers.
        let n = 40;
        let edges: Vec<(usize, usize)> =
            (1..n).filter(|&i| i != 20).map(|i| (if i > 20 { (i - 21) / 3 + 20 } else { (i - 1) / 2 }, i)).collect();
        let sym = Arc::new(Symbolic::new(n, &edges));
        let mut dense = vec![vec![c(0.0, 0.0); n]; n];
        let mut entries = Vec::new();
        for (k, &(i, j)) in edges.iter().enumerate() {
            let y = c(2.0 + (k % 7) as f64, -3.0 + 0.25 * (k % 5) as f64);
            for (r, s, v) in [(i, i, y), (j, j, y), (i, j, -y * c(0.99, 0.05)), (j, i, -y * c(1.0, -0.05))] {
                dense[r][s] += v;
                entries.push((sym.slot(r, s).unwrap(), v));
            }
        }
        for (i, row) in dense.iter_mut().enumerate() {
            let y = c(0.1 + 0.01 * i as f64, 0.02);
            row[i] += y;
            entries.push((sym.slot(i, i).unwrap(), y));
        }
        let mut lu = Lu::new(sym);
        lu.refactor(&entries).unwrap();
        assert!(!lu.tree.is_empty(), "a forest takes the packed path");
        let x_true: Vec<C64> = (0..n).map(|i| c((i as f64 * 0.37).sin(), (i as f64 * 0.11).cos())).collect();
        let mut b: Vec<C64> = (0..n).map(|i| (0..n).map(|j| dense[i][j] * x_true[j]).sum()).collect();
        lu.solve(&mut b);
        for i in 0..n {
            assert!((b[i] - x_true[i]).norm() < 1e-10, "{i}: {} vs {}", b[i], x_true[i]);
        }
    }

    #[test]
    fn inverse_diagonal_matches_solves_with_fill_and_unsymmetric_values() {
        // A grid of 5 x 6 nodes (fill-in) and unsymmetric couplings, as phase shifts would give; and a tree
        // (packed fast path in the factor).
        let grid: Vec<(usize, usize)> = (0..30)
            .flat_map(|i| {
                let mut e = Vec::new();
                if i % 6 != 5 {
                    e.push((i, i + 1));
                }
                if i + 6 < 30 {
                    e.push((i, i + 6));
                }
                e
            })
            .collect();
        let tree: Vec<(usize, usize)> = (1..30).map(|i| ((i - 1) / 3, i)).collect();
        for edges in [grid, tree] {
            let n = 30;
            let sym = Arc::new(Symbolic::new(n, &edges));
            let mut entries = Vec::new();
            for (k, &(i, j)) in edges.iter().enumerate() {
                let y = c(1.0 + (k % 4) as f64, -3.0 + 0.3 * (k % 3) as f64);
                for (r, s, v) in [(i, i, y), (j, j, y), (i, j, -y * c(0.98, 0.04)), (j, i, -y * c(1.0, -0.03))] {
                    entries.push((sym.slot(r, s).unwrap(), v));
                }
            }
            entries.push((sym.slot(0, 0).unwrap(), c(0.2, -2.0)));
            let mut lu = Lu::new(sym);
            lu.refactor(&entries).unwrap();
            let diag = lu.inverse_diagonal();
            for (k, zkk) in diag.iter().enumerate() {
                let mut e = vec![c(0.0, 0.0); n];
                e[k] = c(1.0, 0.0);
                lu.solve(&mut e);
                assert!((zkk - e[k]).norm() < 1e-10 * e[k].norm(), "{k}: {zkk} vs {}", e[k]);
            }
        }
    }

    #[test]
    fn tree_has_no_fill() {
        let edges: Vec<(usize, usize)> = (1..50).map(|i| ((i - 1) / 2, i)).collect();
        let sym = Symbolic::new(50, &edges);
        assert_eq!(sym.idx.len(), 49);
    }
}
