//! Clearing one call-market order book: the integer transportation problem of maximum welfare, solved exactly by
//! a primal network simplex, with an optimality certificate (integer duals) that a validator checks in time
//! linear in the book, and two baselines (greedy matching and a continuous double auction).
//!
//! Units: volumes in Wh (positive integers), prices and fees as integers per kWh (in the market, milli-cents per
//! kWh). A match of `wh` between bid `i` and ask `j` adds `wh x (bid_i - ask_j - fee_ij)` to the welfare (so the
//! welfare is in Wh x price units per kWh; divide by 1000 for money).
//!
//! **The problem.** Maximise `sum p_ij x_ij` with `p_ij = bid_i - ask_j - fee_ij` over the pairs the bid accepts
//! (its technology preferences), subject to `sum_j x_ij <= wh_i`, `sum_i x_ij <= wh_j`, `x >= 0` integer. Its LP
//! relaxation has integer optima (the constraint matrix is totally unimodular), so the LP dual
//! `min sum wh_i u_i + sum wh_j v_j` s.t. `u_i + v_j >= p_ij`, `u, v >= 0` is a certificate: a feasible clearing
//! whose welfare equals the objective of feasible duals is optimal (weak duality).
//!
//! **The solver.** Min-cost flow on asks -> bids (cost `-p_ij`, only pairs with `p_ij > 0`: a pair without
//! gain never trades, so pairs with no margin and pairs a preference excludes are never arcs), with a disposal
//! node `D` (asks -> D and D -> bids, cost 0) that absorbs unsold and unfilled volume. Every arc is
//! uncapacitated. The start tree is a greedy clearing (pairs by gain, highest first) hung from `D`, which is
//! strongly feasible (see `Simplex::start`); pivots use block pricing and Cunningham's leaving-arc rule, so
//! the simplex never cycles. Potentials give the duals: `v_j = pi_j >= 0`, `u_i = -pi_i >= 0`.
//!
//! **Ties.** Bids and asks are first put in canonical order (by id), so the result never depends on the order
//! of the input; among several optimal clearings, the one returned is the vertex the simplex reaches from
//! that start: trade arcs are numbered in canonical (bid, ask) order after the disposal arcs (asks, then
//! bids); the greedy start fills pairs by gain, highest first, equal gains in arc order; entering arcs are
//! chosen by block pricing over arcs in that order (the most negative reduced cost in each block, the first
//! such arc on equal costs), leaving arcs by Cunningham's rule. This is a pure function of the book. The
//! price of a match is the seller's dual price `ask_j + v_j` per kWh (the buyer pays that plus the fee): a
//! competitive-equilibrium price, since `u_i + v_j = p_ij` on every match.

use std::collections::BTreeMap;

/// Technologies a kWh can come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tech {
    Solar,
    Wind,
    Hydro,
    Biogas,
    Conventional,
    Nuclear,
    /// Grid import from the supplier mix (before its origin is resolved to plants).
    Grid,
}

impl Tech {
    pub const ALL: [Tech; 7] =
        [Tech::Solar, Tech::Wind, Tech::Hydro, Tech::Biogas, Tech::Conventional, Tech::Nuclear, Tech::Grid];

    pub fn name(self) -> &'static str {
        match self {
            Tech::Solar => "solar",
            Tech::Wind => "wind",
            Tech::Hydro => "hydro",
            Tech::Biogas => "biogas",
            Tech::Conventional => "conventional",
            Tech::Nuclear => "nuclear",
            Tech::Grid => "grid",
        }
    }

    /// Parses a lowercase name; the error lists the known names.
    pub fn parse(s: &str) -> Result<Tech, String> {
        Tech::ALL.iter().copied().find(|t| t.name() == s).ok_or_else(|| {
            format!(
                "unknown technology \"{s}\" (known: {})",
                Tech::ALL.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ")
            )
        })
    }

    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }

    pub fn from_code(c: u8) -> Option<Tech> {
        Tech::ALL.get(c as usize).copied()
    }

    /// Renewable technologies (for the local-clean share).
    pub fn renewable(self) -> bool {
        matches!(self, Tech::Solar | Tech::Wind | Tech::Hydro | Tech::Biogas)
    }
}

/// Every technology accepted.
pub const ACCEPT_ANY: u8 = 0x7f;

/// A buy order: up to `wh` at most `price` per kWh, from the technologies in `accept` (bit set of [`Tech::bit`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bid {
    pub id: String,
    pub wh: u64,
    pub price: i64,
    pub accept: u8,
}

/// A sell order: up to `wh` at least `price` per kWh, of technology `tech`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ask {
    pub id: String,
    pub wh: u64,
    pub price: i64,
    pub tech: Tech,
}

/// Most orders on one side of a book (bounds memory: fees are kept as a dense matrix).
pub const MAX_ORDERS: usize = 4000;
/// Largest volume of one order (Wh): 1 GWh.
pub const MAX_WH: u64 = 1_000_000_000;
/// Largest absolute price or fee per kWh.
pub const MAX_PRICE: i64 = 1_000_000_000;

/// A fee marking a pair that may not trade (a preference other than technology rules it out).
pub const FORBIDDEN: i64 = i64::MAX;

/// An order book: bids, asks and the grid fee of each (bid, ask) pair (0 when not given).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Book {
    pub bids: Vec<Bid>,
    pub asks: Vec<Ask>,
    /// `fees[i * asks.len() + j]`: fee per kWh between bid `i` and ask `j` (empty = all zero).
    pub fees: Vec<i64>,
}

impl Book {
    pub fn fee(&self, i: usize, j: usize) -> i64 {
        if self.fees.is_empty() { 0 } else { self.fees[i * self.asks.len() + j] }
    }

    /// Gain per kWh of trading between bid `i` and ask `j`, or `None` if the bid refuses the ask's technology
    /// or the pair is [`FORBIDDEN`].
    pub fn gain(&self, i: usize, j: usize) -> Option<i64> {
        let (b, a) = (&self.bids[i], &self.asks[j]);
        let fee = self.fee(i, j);
        (b.accept & a.tech.bit() != 0 && fee != FORBIDDEN).then(|| b.price - a.price - fee)
    }

    /// Checks sizes and ranges (the JSON loader reports errors with ids; this guards direct callers).
    pub fn validate(&self) -> Result<(), String> {
        if self.bids.len() > MAX_ORDERS || self.asks.len() > MAX_ORDERS {
            return Err(format!("at most {MAX_ORDERS} bids and {MAX_ORDERS} asks per book"));
        }
        if !self.fees.is_empty() && self.fees.len() != self.bids.len() * self.asks.len() {
            return Err("fee matrix does not match the book".into());
        }
        for b in &self.bids {
            if b.wh == 0 || b.wh > MAX_WH || b.price.abs() > MAX_PRICE {
                return Err(format!("bid \"{}\": wh must be within 1..={MAX_WH} and |price| <= {MAX_PRICE}", b.id));
            }
        }
        for a in &self.asks {
            if a.wh == 0 || a.wh > MAX_WH || a.price.abs() > MAX_PRICE {
                return Err(format!("ask \"{}\": wh must be within 1..={MAX_WH} and |price| <= {MAX_PRICE}", a.id));
            }
        }
        if self.fees.iter().any(|f| !(0..=MAX_PRICE).contains(f) && *f != FORBIDDEN) {
            return Err(format!("fees must be within 0..={MAX_PRICE}"));
        }
        Ok(())
    }
}

/// One trade of a clearing: bid and ask by position in the book.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Match {
    pub bid: usize,
    pub ask: usize,
    pub wh: u64,
    /// Price per kWh the seller receives (the buyer pays it plus the fee).
    pub price: i64,
}

/// A clearing: the matches (sorted by bid, then ask) and its welfare.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Clearing {
    pub matches: Vec<Match>,
    pub welfare: i128,
}

/// Integer duals: `u[i]` per bid, `v[j]` per ask (price units per kWh).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Duals {
    pub u: Vec<i64>,
    pub v: Vec<i64>,
}

/// Welfare of a set of matches (errors if a match refuses a preference or names no order).
pub fn welfare(book: &Book, matches: &[Match]) -> Result<i128, String> {
    let mut w = 0i128;
    for m in matches {
        if m.bid >= book.bids.len() || m.ask >= book.asks.len() {
            return Err(format!("match names bid {} / ask {} outside the book", m.bid, m.ask));
        }
        let g = book.gain(m.bid, m.ask).ok_or_else(|| {
            format!(
                "bid \"{}\" does not accept {} from ask \"{}\"",
                book.bids[m.bid].id,
                book.asks[m.ask].tech.name(),
                book.asks[m.ask].id
            )
        })?;
        w += m.wh as i128 * g as i128;
    }
    Ok(w)
}

/// Checks that `matches` respect every order's volume and preferences.
pub fn check_feasible(book: &Book, matches: &[Match]) -> Result<(), String> {
    let mut used_b = vec![0u64; book.bids.len()];
    let mut used_a = vec![0u64; book.asks.len()];
    welfare(book, matches)?;
    for m in matches {
        if m.wh == 0 {
            return Err(format!("match {} / {} has no volume", book.bids[m.bid].id, book.asks[m.ask].id));
        }
        used_b[m.bid] = used_b[m.bid].saturating_add(m.wh);
        used_a[m.ask] = used_a[m.ask].saturating_add(m.wh);
    }
    for (i, b) in book.bids.iter().enumerate() {
        if used_b[i] > b.wh {
            return Err(format!("bid \"{}\" filled {} Wh of {} Wh", b.id, used_b[i], b.wh));
        }
    }
    for (j, a) in book.asks.iter().enumerate() {
        if used_a[j] > a.wh {
            return Err(format!("ask \"{}\" sold {} Wh of {} Wh", a.id, used_a[j], a.wh));
        }
    }
    Ok(())
}

/// The validator's check of a proposed clearing and its certificate, in time linear in the book (one pass over
/// matches, orders and pairs): the clearing is feasible, the duals are feasible (`u, v >= 0` and
/// `u_i + v_j >= p_ij` for every accepted pair) and the welfare equals the dual objective. Any clearing that
/// passes is optimal; any optimal clearing passes with the solver's duals.
pub fn verify(book: &Book, clearing: &Clearing, duals: &Duals) -> Result<(), String> {
    check_feasible(book, &clearing.matches)?;
    let w = welfare(book, &clearing.matches)?;
    if w != clearing.welfare {
        return Err(format!("stated welfare {} but the matches give {w}", clearing.welfare));
    }
    if duals.u.len() != book.bids.len() || duals.v.len() != book.asks.len() {
        return Err("certificate: one dual per bid and per ask expected".into());
    }
    if let Some(i) = duals.u.iter().position(|&x| x < 0) {
        return Err(format!("certificate: negative dual for bid \"{}\"", book.bids[i].id));
    }
    if let Some(j) = duals.v.iter().position(|&x| x < 0) {
        return Err(format!("certificate: negative dual for ask \"{}\"", book.asks[j].id));
    }
    for i in 0..book.bids.len() {
        for j in 0..book.asks.len() {
            if let Some(g) = book.gain(i, j)
                && (duals.u[i] as i128 + duals.v[j] as i128) < g as i128
            {
                return Err(format!(
                    "certificate: dual constraint of bid \"{}\" and ask \"{}\" violated ({} + {} < {g})",
                    book.bids[i].id, book.asks[j].id, duals.u[i], duals.v[j]
                ));
            }
        }
    }
    let dual_obj: i128 = book.bids.iter().zip(&duals.u).map(|(b, &u)| b.wh as i128 * u as i128).sum::<i128>()
        + book.asks.iter().zip(&duals.v).map(|(a, &v)| a.wh as i128 * v as i128).sum::<i128>();
    if dual_obj != w {
        return Err(format!("certificate: welfare {w} differs from the dual objective {dual_obj}: not optimal"));
    }
    Ok(())
}

/// Clears `book` to maximum welfare; returns the clearing and its certificate.
pub fn clear(book: &Book) -> Result<(Clearing, Duals), String> {
    book.validate()?;
    // Canonical order: by id (ids are unique in loaded books; equal ids keep input order).
    let mut bo: Vec<usize> = (0..book.bids.len()).collect();
    bo.sort_by(|&x, &y| book.bids[x].id.cmp(&book.bids[y].id).then(x.cmp(&y)));
    let mut ao: Vec<usize> = (0..book.asks.len()).collect();
    ao.sort_by(|&x, &y| book.asks[x].id.cmp(&book.asks[y].id).then(x.cmp(&y)));
    let (n, m) = (bo.len(), ao.len());
    let mut ns = Simplex::new(m, n);
    for (jj, &j) in ao.iter().enumerate() {
        ns.supply[jj] = book.asks[j].wh as i64;
    }
    for (ii, &i) in bo.iter().enumerate() {
        ns.supply[m + ii] = -(book.bids[i].wh as i64);
    }
    // Trade arcs in canonical (bid, ask) order, only for accepted pairs with a positive gain; each bid's row
    // of the fee matrix is read in one pass (in input order when the input is in canonical order).
    let ask_bit: Vec<u8> = ao.iter().map(|&j| book.asks[j].tech.bit()).collect();
    let ask_price: Vec<i64> = ao.iter().map(|&j| book.asks[j].price).collect();
    for (ii, &i) in bo.iter().enumerate() {
        let b = &book.bids[i];
        let fees = if book.fees.is_empty() { &[][..] } else { &book.fees[i * m..(i + 1) * m] };
        for (jj, &j) in ao.iter().enumerate() {
            let fee = fees.get(j).copied().unwrap_or(0);
            if b.accept & ask_bit[jj] == 0 || fee == FORBIDDEN {
                continue;
            }
            let g = b.price - ask_price[jj] - fee;
            if g > 0 {
                ns.add_arc(jj, m + ii, -g);
            }
        }
        ns.row_end.push(ns.src.len() as u32);
    }
    ns.solve()?;
    let mut duals = Duals { u: vec![0; n], v: vec![0; m] };
    for (jj, &j) in ao.iter().enumerate() {
        duals.v[j] = ns.pi[jj];
    }
    for (ii, &i) in bo.iter().enumerate() {
        duals.u[i] = -ns.pi[m + ii];
    }
    // Only tree arcs carry flow; a trade arc's flow is kept at the node it hangs (its ask or its bid).
    let mut matches = Vec::new();
    for w in 0..m + n {
        let e = ns.pred[w] as usize;
        if e >= ns.first_trade_arc && ns.flow[w] > 0 {
            let (i, j) = (bo[ns.dst[e] as usize - m], ao[ns.src[e] as usize]);
            matches.push(Match { bid: i, ask: j, wh: ns.flow[w] as u64, price: book.asks[j].price + duals.v[j] });
        }
    }
    matches.sort();
    let welfare = welfare(book, &matches)?;
    Ok((Clearing { matches, welfare }, duals))
}

/// Primal network simplex for uncapacitated min-cost flow on asks (nodes `0..m`), bids (`m..m+n`) and the
/// disposal root `D` (`m+n`). Arc `j` is ask `j` -> `D`, arc `m + i` is `D` -> bid `i`, then the trade arcs.
struct Simplex {
    m: usize,
    supply: Vec<i64>,
    /// Compact arcs (nodes fit in 16 bits and costs in 32, see the assertions below): less memory to stream
    /// through when pricing.
    src: Vec<u16>,
    dst: Vec<u16>,
    cost: Vec<i32>,
    first_trade_arc: usize,
    /// End of the run of trade arcs of each bid (arcs are in bid order).
    row_end: Vec<u32>,
    pi: Vec<i64>,
    parent: Vec<u32>,
    /// The tree arc of a node (to or from its parent) and its flow (arcs outside the tree carry none).
    pred: Vec<u32>,
    flow: Vec<i64>,
    /// The tree arc of a node points from it to its parent.
    up: Vec<bool>,
    /// Marks of the nodes on a path to the root (the join search of each pivot).
    mark: Vec<u64>,
    stamp: u64,
    /// Children of each tree node as intrusive doubly linked lists (O(1) unlink when a subtree moves).
    first_child: Vec<u32>,
    next_sib: Vec<u32>,
    prev_sib: Vec<u32>,
    /// Scratch buffers reused by every pivot (no allocation per pivot).
    path: Vec<u32>,
    old: Vec<(u32, bool, i64)>,
    stack: Vec<u32>,
}

const NONE: u32 = u32::MAX;
// Every node index fits the simplex's 16-bit arc ends, and every gain (at most a bid price less an ask price) its
// 32-bit costs.
const _: () = assert!(2 * MAX_ORDERS < u16::MAX as usize);
const _: () = assert!(2 * MAX_PRICE <= i32::MAX as i64);

impl Simplex {
    fn new(m: usize, n: usize) -> Simplex {
        let nodes = m + n + 1;
        let mut s = Simplex {
            m,
            supply: vec![0; nodes],
            src: Vec::with_capacity(m + n + m * n / 2),
            dst: Vec::with_capacity(m + n + m * n / 2),
            cost: Vec::with_capacity(m + n + m * n / 2),
            first_trade_arc: m + n,
            row_end: Vec::with_capacity(n),
            pi: vec![0; nodes],
            parent: vec![NONE; nodes],
            pred: vec![NONE; nodes],
            flow: vec![0; nodes],
            up: vec![false; nodes],
            mark: vec![0; nodes],
            stamp: 0,
            first_child: vec![NONE; nodes],
            next_sib: vec![NONE; nodes],
            prev_sib: vec![NONE; nodes],
            path: Vec::new(),
            old: Vec::new(),
            stack: Vec::new(),
        };
        for j in 0..m {
            s.add_arc(j, m + n, 0);
        }
        for i in 0..n {
            s.add_arc(m + n, m + i, 0);
        }
        s
    }

    fn add_arc(&mut self, a: usize, b: usize, c: i64) {
        self.src.push(a as u16);
        self.dst.push(b as u16);
        self.cost.push(c as i32);
    }

    /// Makes `c` the first child of `p`.
    fn link(&mut self, p: usize, c: usize) {
        let f = self.first_child[p];
        self.next_sib[c] = f;
        self.prev_sib[c] = NONE;
        if f != NONE {
            self.prev_sib[f as usize] = c as u32;
        }
        self.first_child[p] = c as u32;
    }

    /// Removes `c` from its parent `p`'s children.
    fn unlink(&mut self, p: usize, c: usize) {
        let (pr, nx) = (self.prev_sib[c], self.next_sib[c]);
        if pr == NONE {
            self.first_child[p] = nx;
        } else {
            self.next_sib[pr as usize] = nx;
        }
        if nx != NONE {
            self.prev_sib[nx as usize] = pr;
        }
        self.prev_sib[c] = NONE;
        self.next_sib[c] = NONE;
    }

    /// The most negative reduced cost below `best_rc` among arcs `lo..hi` (the first on equal costs).
    fn price(&self, lo: usize, hi: usize, best_rc: &mut i64, best: &mut Option<usize>) {
        let pi = &self.pi[..];
        let mid = hi.min(self.first_trade_arc).max(lo);
        let arcs = self.cost[lo..mid].iter().zip(&self.src[lo..mid]).zip(&self.dst[lo..mid]);
        for (k, ((&c, &a), &b)) in arcs.enumerate() {
            let r = c as i64 + pi[a as usize] - pi[b as usize];
            if r < *best_rc {
                *best_rc = r;
                *best = Some(lo + k);
            }
        }
        // Trade arcs come in runs of one bid: its potential is read once per run.
        let mut k = mid;
        while k < hi {
            let b = self.dst[k] as usize;
            let end = (self.row_end[b - self.m] as usize).min(hi);
            let pb = pi[b];
            for (t, (&c, &a)) in self.cost[k..end].iter().zip(&self.src[k..end]).enumerate() {
                let r = c as i64 + pi[a as usize] - pb;
                if r < *best_rc {
                    *best_rc = r;
                    *best = Some(k + t);
                }
            }
            k = end;
        }
    }

    /// Trade arcs by cost, lowest (highest gain) first, ties by arc index: a counting sort when the costs span
    /// a range no wider than a few times the number of arcs (as with prices in whole units), else a
    /// comparison sort.
    fn trade_arcs_by_cost(&self) -> Vec<u32> {
        let first = self.first_trade_arc;
        let cost = &self.cost[first..];
        let (Some(&lo), Some(&hi)) = (cost.iter().min(), cost.iter().max()) else { return Vec::new() };
        let span = (hi as i64 - lo as i64) as u64 + 1;
        if span <= 4 * cost.len() as u64 + 1024 {
            let mut at = vec![0u32; span as usize + 1];
            for &c in cost {
                at[(c as i64 - lo as i64) as usize + 1] += 1;
            }
            for k in 1..at.len() {
                at[k] += at[k - 1];
            }
            let mut order = vec![0u32; cost.len()];
            for (k, &c) in cost.iter().enumerate() {
                let slot = &mut at[(c as i64 - lo as i64) as usize];
                order[*slot as usize] = (first + k) as u32;
                *slot += 1;
            }
            order
        } else {
            let mut order: Vec<u32> = (first as u32..self.cost.len() as u32).collect();
            order.sort_unstable_by_key(|&e| (self.cost[e as usize], e));
            order
        }
    }

    /// The start tree: a greedy clearing (trade arcs by gain, highest first, ties by arc index, each filled as
    /// far as both orders allow) is a forest in which each component has at most one order left with volume
    /// (every fill exhausts one of its two orders, so a fill never joins two orders of one component, which
    /// would both have volume left). Each component hangs from `D` by the disposal arc of that order or, when
    /// all its orders are exhausted, by the zero-flow arc from `D` to its first bid. So every trade arc in the
    /// tree carries flow and every zero-flow tree arc points away from `D`: the tree is strongly feasible.
    fn start(&mut self) -> Result<(), String> {
        let nodes = self.supply.len();
        let root = nodes - 1;
        let m = self.m;
        let mut left: Vec<i64> = self.supply[..root].iter().map(|s| s.abs()).collect();
        let mut used: Vec<(u32, i64)> = Vec::new();
        for e in self.trade_arcs_by_cost() {
            let (a, b) = (self.src[e as usize] as usize, self.dst[e as usize] as usize);
            let q = left[a].min(left[b]);
            if q > 0 {
                left[a] -= q;
                left[b] -= q;
                used.push((e, q));
            }
        }
        // The forest's adjacency (compressed rows: the fills at each node).
        let mut at = vec![0u32; root + 1];
        for &(e, _) in &used {
            at[self.src[e as usize] as usize + 1] += 1;
            at[self.dst[e as usize] as usize + 1] += 1;
        }
        for v in 0..root {
            at[v + 1] += at[v];
        }
        let mut fill = at.clone();
        let mut adj = vec![0u32; used.len() * 2];
        for (k, &(e, _)) in used.iter().enumerate() {
            for w in [self.src[e as usize], self.dst[e as usize]] {
                adj[fill[w as usize] as usize] = k as u32;
                fill[w as usize] += 1;
            }
        }
        let mut seen = vec![false; root];
        let mut comp: Vec<u32> = Vec::new();
        let mut stack = std::mem::take(&mut self.stack);
        for v0 in 0..root {
            if seen[v0] {
                continue;
            }
            comp.clear();
            comp.push(v0 as u32);
            seen[v0] = true;
            let mut k = 0;
            while k < comp.len() {
                let w = comp[k] as usize;
                k += 1;
                for &f in &adj[at[w] as usize..at[w + 1] as usize] {
                    let e = used[f as usize].0 as usize;
                    let o = if self.src[e] as usize == w { self.dst[e] } else { self.src[e] } as usize;
                    if !seen[o] {
                        seen[o] = true;
                        comp.push(o as u32);
                    }
                }
            }
            let mut open = comp.iter().map(|&w| w as usize).filter(|&w| left[w] > 0);
            let r = match (open.next(), open.next()) {
                (Some(r), None) => r,
                (None, _) => comp
                    .iter()
                    .map(|&w| w as usize)
                    .filter(|&w| w >= m)
                    .min()
                    .ok_or("clearing: a start component without a bid")?,
                (Some(_), Some(_)) => return Err("clearing: two open orders in one start component".into()),
            };
            // r hangs from D by its disposal arc (arc index = node index), its component from r.
            self.parent[r] = root as u32;
            self.pred[r] = r as u32;
            self.flow[r] = left[r];
            self.up[r] = r < m;
            self.pi[r] = 0;
            self.link(root, r);
            stack.clear();
            stack.push(r as u32);
            while let Some(w) = stack.pop() {
                let w = w as usize;
                for &f in &adj[at[w] as usize..at[w + 1] as usize] {
                    let (e, q) = used[f as usize];
                    if e == self.pred[w] {
                        continue;
                    }
                    let (a, b) = (self.src[e as usize] as usize, self.dst[e as usize] as usize);
                    let o = if a == w { b } else { a };
                    let c = self.cost[e as usize] as i64;
                    self.parent[o] = w as u32;
                    self.pred[o] = e;
                    self.flow[o] = q;
                    self.up[o] = a == o;
                    self.pi[o] = if a == o { self.pi[w] - c } else { self.pi[w] + c };
                    self.link(w, o);
                    stack.push(o as u32);
                }
            }
        }
        self.stack = stack;
        Ok(())
    }

    fn solve(&mut self) -> Result<(), String> {
        let nodes = self.supply.len();
        self.start()?;
        let arcs = self.src.len();
        let block = ((arcs as f64).sqrt() as usize).max(10).min(arcs.max(1));
        let mut next = 0usize;
        // Pivots are finite (no cycling under Cunningham's rule); the bound only guards against a defect.
        let max_pivots = 50 * arcs as u64 + 1000 * nodes as u64 + 10_000;
        let mut pivots = 0u64;
        loop {
            // Block pricing: the most negative reduced cost in the next block (of arcs in index order, from
            // where the last scan stopped, wrapping round) that holds one.
            let mut best = None;
            let mut best_rc = 0i64;
            let mut scanned = 0usize;
            while scanned < arcs {
                let len = block.min(arcs - scanned);
                let hi = next + len;
                if hi <= arcs {
                    self.price(next, hi, &mut best_rc, &mut best);
                    next = if hi == arcs { 0 } else { hi };
                } else {
                    self.price(next, arcs, &mut best_rc, &mut best);
                    self.price(0, hi - arcs, &mut best_rc, &mut best);
                    next = hi - arcs;
                }
                scanned += len;
                if best.is_some() {
                    break;
                }
            }
            let Some(e) = best else { return Ok(()) };
            pivots += 1;
            if pivots > max_pivots {
                return Err("clearing did not converge (pivot bound reached)".into());
            }
            self.pivot(e)?;
        }
    }

    fn pivot(&mut self, e: usize) -> Result<(), String> {
        let (u, v) = (self.src[e] as usize, self.dst[e] as usize);
        let rc = self.cost[e] as i64 + self.pi[u] - self.pi[v];
        // The join (apex) of the cycle: the first node on v's path to the root that is on u's.
        self.stamp += 1;
        let root = self.pi.len() - 1;
        let mut w = u;
        loop {
            self.mark[w] = self.stamp;
            if w == root {
                break;
            }
            w = self.parent[w] as usize;
        }
        let mut w = v;
        while self.mark[w] != self.stamp {
            w = self.parent[w] as usize;
        }
        let join = w;
        // Leaving arc by Cunningham's rule: the last blocking arc met going round the cycle from the join.
        let mut delta = i64::MAX;
        let mut leave: Option<(usize, bool)> = None; // (node whose tree arc leaves, on the u side)
        let mut w = u;
        while w != join {
            if self.up[w] {
                let f = self.flow[w];
                if f < delta {
                    delta = f;
                    leave = Some((w, true));
                }
            }
            w = self.parent[w] as usize;
        }
        let mut w = v;
        while w != join {
            if !self.up[w] {
                let f = self.flow[w];
                if f <= delta {
                    delta = f;
                    leave = Some((w, false));
                }
            }
            w = self.parent[w] as usize;
        }
        let Some((q, u_side)) = leave else { return Err("clearing is unbounded (no blocking arc)".into()) };
        // Push delta round the cycle.
        if delta > 0 {
            let mut w = u;
            while w != join {
                if self.up[w] {
                    self.flow[w] -= delta
                } else {
                    self.flow[w] += delta
                }
                w = self.parent[w] as usize;
            }
            let mut w = v;
            while w != join {
                if self.up[w] {
                    self.flow[w] += delta
                } else {
                    self.flow[w] -= delta
                }
                w = self.parent[w] as usize;
            }
        }
        // Re-hang the subtree of q from the entering arc: reverse the path x .. q.
        let (x, y) = if u_side { (u, v) } else { (v, u) };
        let mut path = std::mem::take(&mut self.path);
        let mut old = std::mem::take(&mut self.old);
        path.clear();
        old.clear();
        let mut w = x;
        loop {
            path.push(w as u32);
            if w == q {
                break;
            }
            w = self.parent[w] as usize;
        }
        let old_parent_q = self.parent[q] as usize;
        self.unlink(old_parent_q, q);
        old.extend(path.iter().map(|&w| (self.pred[w as usize], self.up[w as usize], self.flow[w as usize])));
        for k in 0..path.len() - 1 {
            let (c, p) = (path[k] as usize, path[k + 1] as usize);
            self.unlink(p, c);
        }
        for k in 1..path.len() {
            let (c, p) = (path[k] as usize, path[k - 1] as usize);
            self.parent[c] = p as u32;
            self.pred[c] = old[k - 1].0;
            self.up[c] = !old[k - 1].1;
            self.flow[c] = old[k - 1].2;
            self.link(p, c);
        }
        self.parent[x] = y as u32;
        self.pred[x] = e as u32;
        self.up[x] = u_side; // the entering arc goes u -> v: from x to its new parent when x = u
        self.flow[x] = delta;
        self.link(y, x);
        // Potentials of the moved subtree: all shift by the amount that makes the entering arc's reduced cost 0.
        let shift = if u_side { -rc } else { rc };
        let mut stack = std::mem::take(&mut self.stack);
        stack.clear();
        stack.push(x as u32);
        while let Some(w) = stack.pop() {
            let w = w as usize;
            self.pi[w] += shift;
            let mut ch = self.first_child[w];
            while ch != NONE {
                stack.push(ch);
                ch = self.next_sib[ch as usize];
            }
        }
        self.path = path;
        self.old = old;
        self.stack = stack;
        Ok(())
    }
}

/// Greedy baseline: pairs by gain per kWh, highest first (ties: bid, then ask position), each filled as far as
/// both orders allow; the seller receives its ask price.
pub fn greedy(book: &Book) -> Clearing {
    let mut pairs = Vec::new();
    for i in 0..book.bids.len() {
        for j in 0..book.asks.len() {
            if let Some(g) = book.gain(i, j)
                && g > 0
            {
                pairs.push((std::cmp::Reverse(g), i, j));
            }
        }
    }
    pairs.sort();
    let mut rb: Vec<u64> = book.bids.iter().map(|b| b.wh).collect();
    let mut ra: Vec<u64> = book.asks.iter().map(|a| a.wh).collect();
    let mut matches = Vec::new();
    for (_, i, j) in pairs {
        let q = rb[i].min(ra[j]);
        if q > 0 {
            rb[i] -= q;
            ra[j] -= q;
            matches.push(Match { bid: i, ask: j, wh: q, price: book.asks[j].price });
        }
    }
    matches.sort();
    let welfare = welfare(book, &matches).unwrap_or(0);
    Clearing { matches, welfare }
}

/// Continuous double auction baseline: orders arrive one at a time in a seeded order; an arriving order trades
/// at once against the best resting order on the other side that it accepts and that leaves a gain (for a bid:
/// the lowest ask price plus fee; for an ask: the highest bid price less fee; ties by position), at the resting
/// order's price, until it is filled or nothing fits; what remains rests in the book.
pub fn cda(book: &Book, seed: u64) -> Clearing {
    let (n, m) = (book.bids.len(), book.asks.len());
    let mut arrivals: Vec<(u64, bool, usize)> = (0..n)
        .map(|i| (mix(seed ^ (i as u64) << 1), true, i))
        .chain((0..m).map(|j| (mix(seed ^ ((j as u64) << 1 | 1)), false, j)))
        .collect();
    arrivals.sort();
    let mut rb: Vec<u64> = book.bids.iter().map(|b| b.wh).collect();
    let mut ra: Vec<u64> = book.asks.iter().map(|a| a.wh).collect();
    let mut resting_b: BTreeMap<usize, ()> = BTreeMap::new();
    let mut resting_a: BTreeMap<usize, ()> = BTreeMap::new();
    let mut agg: BTreeMap<(usize, usize), (u64, i64)> = BTreeMap::new();
    for (_, is_bid, k) in arrivals {
        if is_bid {
            let i = k;
            while rb[i] > 0 {
                let best = resting_a
                    .keys()
                    .filter_map(|&j| {
                        book.gain(i, j).filter(|&g| g > 0).map(|_| (book.asks[j].price + book.fee(i, j), j))
                    })
                    .min();
                let Some((_, j)) = best else { break };
                let q = rb[i].min(ra[j]);
                rb[i] -= q;
                ra[j] -= q;
                agg.entry((i, j)).or_insert((0, book.asks[j].price)).0 += q;
                if ra[j] == 0 {
                    resting_a.remove(&j);
                }
            }
            if rb[i] > 0 {
                resting_b.insert(i, ());
            }
        } else {
            let j = k;
            while ra[j] > 0 {
                let best = resting_b
                    .keys()
                    .filter_map(|&i| {
                        book.gain(i, j)
                            .filter(|&g| g > 0)
                            .map(|_| (std::cmp::Reverse(book.bids[i].price - book.fee(i, j)), i))
                    })
                    .min();
                let Some((_, i)) = best else { break };
                let q = rb[i].min(ra[j]);
                rb[i] -= q;
                ra[j] -= q;
                agg.entry((i, j)).or_insert((0, book.bids[i].price - book.fee(i, j))).0 += q;
                if rb[i] == 0 {
                    resting_b.remove(&i);
                }
            }
            if ra[j] > 0 {
                resting_a.insert(j, ());
            }
        }
    }
    let matches: Vec<Match> = agg.into_iter().map(|((bid, ask), (wh, price))| Match { bid, ask, wh, price }).collect();
    let welfare = welfare(book, &matches).unwrap_or(0);
    Clearing { matches, welfare }
}

/// SplitMix64 finaliser (deterministic arrival order of the CDA).
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Maximum welfare by an independent, slow method (successive shortest paths with Bellman-Ford on the same flow
/// network, one augmentation at a time): the exact reference the tests compare the simplex against.
pub fn reference_welfare(book: &Book) -> i128 {
    let (n, m) = (book.bids.len(), book.asks.len());
    // Nodes: source s, asks, bids, sink t. Residual graph with explicit reverse arcs.
    let s = 0;
    let t = 1 + m + n;
    let mut to = Vec::new();
    let mut cap: Vec<i64> = Vec::new();
    let mut cost: Vec<i64> = Vec::new();
    let mut add = |a: usize, b: usize, c: i64, k: i64, to: &mut Vec<(usize, usize)>| {
        to.push((a, b));
        cap.push(c);
        cost.push(k);
        to.push((b, a));
        cap.push(0);
        cost.push(-k);
    };
    for j in 0..m {
        add(s, 1 + j, book.asks[j].wh as i64, 0, &mut to);
    }
    for i in 0..n {
        add(1 + m + i, t, book.bids[i].wh as i64, 0, &mut to);
    }
    for j in 0..m {
        for i in 0..n {
            if let Some(g) = book.gain(i, j)
                && g > 0
            {
                add(1 + j, 1 + m + i, i64::MAX / 4, -g, &mut to);
            }
        }
    }
    let nodes = t + 1;
    let mut total = 0i128;
    loop {
        let mut dist = vec![i64::MAX; nodes];
        let mut via = vec![usize::MAX; nodes];
        dist[s] = 0;
        for _ in 0..nodes {
            let mut changed = false;
            for (e, &(a, b)) in to.iter().enumerate() {
                if cap[e] > 0 && dist[a] != i64::MAX && dist[a] + cost[e] < dist[b] {
                    dist[b] = dist[a] + cost[e];
                    via[b] = e;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        if dist[t] == i64::MAX || dist[t] >= 0 {
            return total;
        }
        let mut q = i64::MAX;
        let mut w = t;
        while w != s {
            q = q.min(cap[via[w]]);
            w = to[via[w]].0;
        }
        let mut w = t;
        while w != s {
            cap[via[w]] -= q;
            cap[via[w] ^ 1] += q;
            w = to[via[w]].0;
        }
        total += q as i128 * (-dist[t]) as i128;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bid(id: &str, wh: u64, price: i64, accept: u8) -> Bid {
        Bid { id: id.into(), wh, price, accept }
    }
    fn ask(id: &str, wh: u64, price: i64, tech: Tech) -> Ask {
        Ask { id: id.into(), wh, price, tech }
    }

    #[test]
    fn the_issue_example_clears_and_verifies() {
        let book = Book {
            bids: vec![bid("h1", 3000, 250, Tech::Solar.bit() | Tech::Wind.bit())],
            asks: vec![ask("pv7", 2000, 120, Tech::Solar)],
            fees: vec![10],
        };
        let (c, d) = clear(&book).unwrap();
        assert_eq!(c.matches.len(), 1);
        assert_eq!(c.matches[0].wh, 2000);
        assert_eq!(c.welfare, 2000 * 120);
        verify(&book, &c, &d).unwrap();
    }

    #[test]
    fn preferences_are_respected_and_greedy_can_fall_short() {
        // Greedy takes the best pair first and strands the picky bid; the optimum routes around it.
        let book = Book {
            bids: vec![bid("a", 1000, 300, ACCEPT_ANY), bid("b", 1000, 290, Tech::Solar.bit())],
            asks: vec![ask("s", 1000, 100, Tech::Solar), ask("w", 1000, 150, Tech::Wind)],
            fees: vec![],
        };
        let (c, d) = clear(&book).unwrap();
        verify(&book, &c, &d).unwrap();
        assert_eq!(c.welfare, 1000 * 150 + 1000 * 190);
        assert_eq!(c.welfare, reference_welfare(&book));
        assert!(greedy(&book).welfare < c.welfare);
    }

    #[test]
    fn perturbed_clearings_are_rejected() {
        let book = Book {
            bids: vec![bid("a", 2000, 300, ACCEPT_ANY), bid("b", 1000, 200, ACCEPT_ANY)],
            asks: vec![ask("x", 1500, 100, Tech::Solar), ask("y", 1500, 120, Tech::Wind)],
            fees: vec![0, 5, 3, 0],
        };
        let (c, d) = clear(&book).unwrap();
        verify(&book, &c, &d).unwrap();
        let mut worse = c.clone();
        worse.matches[0].wh -= 1;
        worse.welfare = welfare(&book, &worse.matches).unwrap();
        assert!(verify(&book, &worse, &d).is_err());
        let mut bad_dual = d.clone();
        bad_dual.u[0] -= 1;
        assert!(verify(&book, &c, &bad_dual).is_err());
    }
}
