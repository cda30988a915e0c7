//! The shared radio channel's bookkeeping: every transmission still relevant (on air or recently ended), in
//! id order, with a grid-bucket index by transmitter position so a carrier sense or an interference scan
//! looks only at transmitters close enough to matter. Positions in m, times in ns.
//!
//! Why an index: the number of frames on air at once grows with the number of nodes, so scanning all of them
//! for every carrier sense and every reception makes a city cost O(N^2). A scan here visits the cells within
//! the asked radius and returns the matching frames sorted by id, the order a full scan would have produced,
//! so results (floating-point sums included) are bit-identical to a scan of everything.

use std::collections::VecDeque;

/// A transmission on the channel.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OnAir {
    pub id: u64,
    pub src: u32,
    /// The source's position, m (kept here so scans of the channel do not touch the node table).
    pub x_m: f64,
    pub y_m: f64,
    pub dst: u16,
    pub start: u64,
    pub end: u64,
    pub psdu: u16,
    pub seq: u8,
    pub ack: bool,
}

/// Upper bound of grid cells per axis (a degenerate layout must not allocate without limit).
const MAX_CELLS_PER_AXIS: usize = 1024;

/// Transmissions by id with a spatial index; see the module docs.
#[derive(Debug)]
pub(crate) struct Channel {
    /// Frames with ids `first_id..first_id + frames.len()`, contiguous (every id is pushed, in order).
    frames: VecDeque<OnAir>,
    first_id: u64,
    /// Copies of the frames per cell, by ascending id; ids below `first_id` are stale and skipped (pruned when
    /// the cell is pushed to). Copies, not ids: a scan then reads each cell's frames from one contiguous run
    /// instead of one scattered slot of `frames` per frame (frames never change once pushed).
    cells: Vec<VecDeque<OnAir>>,
    x0_m: f64,
    y0_m: f64,
    cell_m: f64,
    nx: usize,
    ny: usize,
    /// The longest transmission pushed so far, ns (frames are pruned by start time, which is monotone, so
    /// how long they may last bounds how long they stay relevant; the observed longest is far below the radio's
    /// longest PSDU in most runs, and keeps the scans short).
    longest_ns: u64,
    /// The radio's longest transmission, ns (an upper bound checked on every push).
    max_air_ns: u64,
    /// Scratch offsets of [`Channel::near`] (kept to avoid an allocation per scan).
    scratch: Vec<u32>,
    /// Scratch bitmap of [`Channel::near`] (offsets put in id order without a sort).
    scratch_bits: Vec<u64>,
    /// The last pushed frame's start, ns (starts never decrease along the ids; see [`Channel::live_newest_first`]).
    last_start_ns: u64,
}

impl Channel {
    /// A channel over the nodes at `xy` (m), cells about `cell_m` wide, frames at most `max_air_ns` long.
    pub(crate) fn new(xy: &[(f64, f64)], cell_m: f64, max_air_ns: u64) -> Channel {
        let (mut x0, mut y0, mut x1, mut y1) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        if let Some(&(x, y)) = xy.first() {
            (x0, y0, x1, y1) = (x, y, x, y);
        }
        for &(x, y) in xy {
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x);
            y1 = y1.max(y);
        }
        let span = (x1 - x0).max(y1 - y0);
        let cell_m = if cell_m.is_finite() && cell_m > 0.0 { cell_m } else { span.max(1.0) };
        let cell_m = cell_m.max(span / MAX_CELLS_PER_AXIS as f64).max(1e-3);
        let nx = ((x1 - x0) / cell_m) as usize + 1;
        let ny = ((y1 - y0) / cell_m) as usize + 1;
        Channel {
            frames: VecDeque::new(),
            first_id: 0,
            cells: vec![VecDeque::new(); nx * ny],
            x0_m: x0,
            y0_m: y0,
            cell_m,
            nx,
            ny,
            longest_ns: 0,
            max_air_ns,
            scratch: Vec::new(),
            scratch_bits: Vec::new(),
            last_start_ns: 0,
        }
    }

    /// The cell of a position (positions outside the nodes' bounding box fall in the border cells; scans
    /// widen their ring by the distance outside, so they stay exact).
    fn cell_of(&self, x_m: f64, y_m: f64) -> (usize, usize) {
        let cx = ((x_m - self.x0_m) / self.cell_m).max(0.0) as usize;
        let cy = ((y_m - self.y0_m) / self.cell_m).max(0.0) as usize;
        (cx.min(self.nx - 1), cy.min(self.ny - 1))
    }

    /// The id the next pushed frame must carry.
    pub(crate) fn next_id(&self) -> u64 {
        self.first_id + self.frames.len() as u64
    }

    /// Adds a frame at time `now_ns`; its id must be [`Channel::next_id`]. Drops frames that ended more than
    /// twice the longest transmission plus `slack_ns` ago: nothing asks about them any more (a carrier sense
    /// looks at frames on air now, a reception at frames overlapping one that ends now).
    pub(crate) fn push(&mut self, f: OnAir, now_ns: u64, slack_ns: u64) {
        assert_eq!(f.id, self.next_id(), "channel ids are pushed in order");
        assert!(f.start <= f.end && f.end - f.start <= self.max_air_ns, "a frame longer than the longest PSDU");
        assert!(f.start >= self.last_start_ns, "frames are pushed in order of their starts");
        self.last_start_ns = f.start;
        self.longest_ns = self.longest_ns.max(f.end - f.start);
        let keep_ns = now_ns.saturating_sub(2 * self.longest_ns + slack_ns);
        while let Some(g) = self.frames.front() {
            if g.start.saturating_add(self.longest_ns) >= keep_ns {
                break;
            }
            self.frames.pop_front();
            self.first_id += 1;
        }
        let (cx, cy) = self.cell_of(f.x_m, f.y_m);
        let first = self.first_id;
        let cell = &mut self.cells[cy * self.nx + cx];
        while cell.front().is_some_and(|g| g.id < first) {
            cell.pop_front();
        }
        cell.push_back(f);
        self.frames.push_back(f);
    }

    /// The frame with id `id`, if still kept.
    pub(crate) fn get(&self, id: u64) -> Option<&OnAir> {
        id.checked_sub(self.first_id).and_then(|k| self.frames.get(k as usize))
    }

    /// Appends to `out`, in id order, every kept frame whose transmitter lies within `radius_m` of
    /// `(x_m, y_m)` (by cell; callers apply the exact distance), that may still be on air after
    /// `ends_after_ns` (see [`Channel::live_newest_first`]), and that `keep` accepts.
    pub(crate) fn near(
        &mut self,
        x_m: f64,
        y_m: f64,
        radius_m: f64,
        ends_after_ns: u64,
        out: &mut Vec<OnAir>,
        mut keep: impl FnMut(&OnAir) -> bool,
    ) {
        // Offsets into `frames` (ids minus `first_id`), put in id order once at the end: cheaper than sorting
        // frames. Each frame sits in exactly one cell, so the offsets are distinct.
        let mut hits = std::mem::take(&mut self.scratch);
        hits.clear();
        let mut cells = 0usize;
        let (mut lo, mut hi) = (u32::MAX, 0u32);
        // Each cell's live frames newest first (one pass, no search for the first live one): the offsets are
        // put in id order below anyway.
        let by_cell = self.cells_near(x_m, y_m, radius_m, |c| {
            for g in self.live_newest_first(c, ends_after_ns) {
                if keep(g) {
                    let k = (g.id - self.first_id) as u32;
                    (lo, hi) = (lo.min(k), hi.max(k));
                    hits.push(k);
                }
            }
            cells += 1;
            true
        });
        match by_cell {
            None => out.extend(self.all_live(ends_after_ns).filter(|g| keep(g))),
            Some(_) if cells > 1 && hits.len() > 1 => {
                if self.bitmap_cheaper(hits.len(), lo, hi) {
                    self.extend_by_bitmap(&hits, lo, hi, out);
                } else {
                    hits.sort_unstable();
                    out.extend(hits.iter().map(|&k| self.frames[k as usize]));
                }
            }
            // One cell, newest first: reversed, its ids ascend.
            Some(_) => out.extend(hits.iter().rev().map(|&k| self.frames[k as usize])),
        }
        self.scratch = hits;
    }

    /// Whether putting `n` distinct offsets spanning `lo..=hi` in order through a bitmap costs less than
    /// sorting them: a bitmap costs one word per 64 offsets of the span, a sort about `log2 n` comparisons per
    /// offset (and mispredicted branches). In a busy city an overlap scan finds a hundred or more frames out of
    /// a few thousand kept, so the bitmap is a few dozen words.
    fn bitmap_cheaper(&self, n: usize, lo: u32, hi: u32) -> bool {
        let words = (hi - lo) as usize / 64 + 1;
        n >= 16 && words <= 2 * n
    }

    /// Appends the frames at the distinct offsets `hits` (all within `lo..=hi`) to `out` in id order, by
    /// setting their bits in a bitmap over the span and reading the set bits back in ascending order.
    fn extend_by_bitmap(&mut self, hits: &[u32], lo: u32, hi: u32, out: &mut Vec<OnAir>) {
        let mut bits = std::mem::take(&mut self.scratch_bits);
        bits.clear();
        bits.resize((hi - lo) as usize / 64 + 1, 0u64);
        for &k in hits {
            let b = (k - lo) as usize;
            bits[b / 64] |= 1 << (b % 64);
        }
        out.reserve(hits.len());
        for (w, &word) in bits.iter().enumerate() {
            let mut m = word;
            while m != 0 {
                let k = lo as usize + w * 64 + m.trailing_zeros() as usize;
                out.push(self.frames[k]);
                m &= m - 1;
            }
        }
        debug_assert_eq!(bits.iter().map(|w| w.count_ones() as usize).sum::<usize>(), hits.len(), "distinct offsets");
        self.scratch_bits = bits;
    }

    /// Calls `visit` on every kept frame whose transmitter lies within `radius_m` of `(x_m, y_m)` (by cell;
    /// callers apply the exact distance) and that may still be on air after `ends_after_ns`, in no particular
    /// order, until it returns `false`; returns whether the scan ran to the end. For callers whose answer does
    /// not depend on the order (or who fall back to [`Channel::near`] when it might): no sorting and no copy.
    pub(crate) fn visit_near(
        &self,
        x_m: f64,
        y_m: f64,
        radius_m: f64,
        ends_after_ns: u64,
        mut visit: impl FnMut(&OnAir) -> bool,
    ) -> bool {
        let by_cell = self.cells_near(x_m, y_m, radius_m, |c| self.live_newest_first(c, ends_after_ns).all(&mut visit));
        by_cell.unwrap_or_else(|| self.all_live(ends_after_ns).all(visit))
    }

    /// The earliest start a frame still on air after `ends_after_ns` can have: no frame lasts longer than
    /// `longest_ns`, so one that started before this has ended by then.
    fn start_min(&self, ends_after_ns: u64) -> u64 {
        ends_after_ns.saturating_sub(self.longest_ns)
    }

    /// Cell `c`'s kept frames that may still be on air after `ends_after_ns`, newest first (every scan either
    /// does not care about order or puts its hits in id order itself).
    ///
    /// Why a suffix: every frame is pushed at the time it is scheduled with a start one turnaround later, and
    /// pushes happen in time order, so starts never decrease along the ids, in a cell as in the whole channel.
    /// The frames a scan wants are therefore the cell's last ones, found by walking back from its end: a scan
    /// reads the frames it returns and one more, where a binary search over the cell's older frames (kept for
    /// the overlap scans of frames ending now, and stale ones not yet pruned) would take a mispredicted branch
    /// per step. The walk stops at the first frame that is stale or started too early, so each frame is read
    /// once.
    fn live_newest_first(&self, c: usize, ends_after_ns: u64) -> impl Iterator<Item = &OnAir> + '_ {
        let start_min = self.start_min(ends_after_ns);
        let first = self.first_id;
        self.cells[c].iter().rev().take_while(move |g| g.id >= first && g.start >= start_min)
    }

    /// Every kept frame that may still be on air after `ends_after_ns`, in id order.
    fn all_live(&self, ends_after_ns: u64) -> impl Iterator<Item = &OnAir> + '_ {
        let start_min = self.start_min(ends_after_ns);
        let from = self.frames.partition_point(|g| g.start < start_min);
        self.frames.range(from..)
    }

    /// Calls `cell` with the index of every cell within `radius_m` of `(x_m, y_m)`, ring by ring outward, until it
    /// returns `false`, and returns whether it ran to the end; `None` (no cell visited) when one pass over all
    /// frames is cheaper ([`Channel::one_pass_cheaper`]) or the radius is infinite.
    fn cells_near(&self, x_m: f64, y_m: f64, radius_m: f64, mut cell: impl FnMut(usize) -> bool) -> Option<bool> {
        if !radius_m.is_finite() {
            return None;
        }
        // Distance of the point outside the box, added to the ring so border-clamped cells stay covered.
        let outside = (self.x0_m - x_m).max(0.0)
            + (x_m - (self.x0_m + self.nx as f64 * self.cell_m)).max(0.0)
            + (self.y0_m - y_m).max(0.0)
            + (y_m - (self.y0_m + self.ny as f64 * self.cell_m)).max(0.0);
        let ring = ((radius_m + outside) / self.cell_m).ceil() as usize;
        let (cx, cy) = self.cell_of(x_m, y_m);
        let (gx0, gx1) = (cx.saturating_sub(ring), (cx + ring).min(self.nx - 1));
        let (gy0, gy1) = (cy.saturating_sub(ring), (cy + ring).min(self.ny - 1));
        if self.one_pass_cheaper(gx0, gx1, gy0, gy1) {
            return None;
        }
        let r2 = radius_m * radius_m;
        // Ring by ring outward from the point's cell: a carrier sense that finds the channel busy stops at the
        // first frames strong enough, and those are most often the nearest.
        for k in 0..=ring {
            let (ry0, ry1) = (cy.saturating_sub(k).max(gy0), (cy + k).min(gy1));
            for gy in ry0..=ry1 {
                // Distance from the point to the cell's rectangle, per axis (0 inside); border cells extend to
                // infinity outward because positions outside the box are clamped into them.
                let dy = self.axis_gap(y_m, self.y0_m, gy, self.ny);
                // On the ring's top and bottom rows every cell, on the rows between only its two ends.
                let step = if gy.abs_diff(cy) == k { 1 } else { 2 * k };
                let mut gx = cx as isize - k as isize;
                while gx <= (cx + k) as isize {
                    if gx >= gx0 as isize && gx <= gx1 as isize {
                        let gxu = gx as usize;
                        let dx = self.axis_gap(x_m, self.x0_m, gxu, self.nx);
                        if dx * dx + dy * dy <= r2 && !cell(gy * self.nx + gxu) {
                            return Some(false);
                        }
                    }
                    gx += step as isize;
                }
            }
        }
        Some(true)
    }

    /// Whether one pass over every kept frame (already in id order) costs less than visiting the cells
    /// `gx0..=gx1` x `gy0..=gy1` (each a search for its first live id, then its frames, then a sort): when
    /// the scan covers most of the grid (a district a few interference reaches wide), or when the channel is
    /// quiet (a city between bursts holds a few dozen frames, far fewer than the cells a scan visits).
    fn one_pass_cheaper(&self, gx0: usize, gx1: usize, gy0: usize, gy1: usize) -> bool {
        let cells = (gx1 - gx0 + 1) * (gy1 - gy0 + 1);
        2 * cells >= self.nx * self.ny || self.frames.len() <= 4 * cells
    }

    /// Distance along one axis from coordinate `v` to cell `g` of `n` (origin `v0`), 0 when inside; the first
    /// and last cells are open outward.
    fn axis_gap(&self, v: f64, v0: f64, g: usize, n: usize) -> f64 {
        let lo = if g == 0 { f64::NEG_INFINITY } else { v0 + g as f64 * self.cell_m };
        let hi = if g + 1 == n { f64::INFINITY } else { v0 + (g + 1) as f64 * self.cell_m };
        (lo - v).max(v - hi).max(0.0)
    }

    /// Whether any kept frame transmitted from `(x_m, y_m)` satisfies `pred` (the frames of one node).
    pub(crate) fn any_from(&self, x_m: f64, y_m: f64, pred: impl FnMut(&OnAir) -> bool) -> bool {
        let (cx, cy) = self.cell_of(x_m, y_m);
        self.live_newest_first(cy * self.nx + cx, 0).any(pred)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(id: u64, x: f64, y: f64, start: u64, end: u64) -> OnAir {
        OnAir { id, src: id as u32, x_m: x, y_m: y, dst: 0, start, end, psdu: 10, seq: 0, ack: false }
    }

    /// The indexed scan returns exactly what a filter over every kept frame returns, in the same order.
    #[test]
    fn near_equals_a_full_scan() {
        let xy: Vec<(f64, f64)> = (0..400).map(|k| ((k % 20) as f64 * 97.0, (k / 20) as f64 * 103.0)).collect();
        let mut ch = Channel::new(&xy, 250.0, 1_000);
        let mut all = Vec::new();
        let mut s = 12345u64;
        for id in 0..2_000u64 {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let (x, y) = xy[(s >> 33) as usize % xy.len()];
            let f = frame(id, x, y, id * 3, id * 3 + 1 + (s >> 40) % 1_000);
            ch.push(f, id * 3, 0);
            all.push(f);
            if id % 97 == 0 {
                let (px, py) = xy[(s >> 20) as usize % xy.len()];
                for radius in [0.0, 120.0, 400.0, 5_000.0] {
                    let mut got = Vec::new();
                    let now = id * 3;
                    ch.near(px, py, radius, now, &mut got, |g| g.start <= now && now < g.end);
                    got.retain(|g| (g.x_m - px).hypot(g.y_m - py) <= radius);
                    let want: Vec<u64> = all
                        .iter()
                        .filter(|g| g.start <= now && now < g.end && (g.x_m - px).hypot(g.y_m - py) <= radius)
                        .map(|g| g.id)
                        .collect();
                    assert_eq!(got.iter().map(|g| g.id).collect::<Vec<_>>(), want, "radius {radius} at {id}");
                    // The unordered visit sees the same frames, and stops when asked.
                    let mut seen = Vec::new();
                    assert!(ch.visit_near(px, py, radius, now, |g| {
                        if g.start <= now && now < g.end && (g.x_m - px).hypot(g.y_m - py) <= radius {
                            seen.push(g.id);
                        }
                        true
                    }));
                    seen.sort_unstable();
                    assert_eq!(seen, want, "visit, radius {radius} at {id}");
                    let mut visits = 0;
                    let complete = ch.visit_near(px, py, radius, 0, |_| {
                        visits += 1;
                        visits < 2
                    });
                    assert_eq!(complete, visits < 2, "early stop, radius {radius} at {id}");
                    // An overlap scan: the frames overlapping [a, b), skipping those ended before a.
                    let (a, b) = (now.saturating_sub(700), now + 40);
                    let mut got = Vec::new();
                    ch.near(px, py, radius, a, &mut got, |g| g.start < b && g.end > a);
                    got.retain(|g| (g.x_m - px).hypot(g.y_m - py) <= radius);
                    let kept = |g: &&OnAir| g.id >= ch.first_id;
                    let want: Vec<u64> = all
                        .iter()
                        .filter(kept)
                        .filter(|g| g.start < b && g.end > a && (g.x_m - px).hypot(g.y_m - py) <= radius)
                        .map(|g| g.id)
                        .collect();
                    assert_eq!(got.iter().map(|g| g.id).collect::<Vec<_>>(), want, "overlaps, radius {radius} at {id}");
                }
            }
            assert_eq!(ch.get(id).map(|g| g.id), Some(id));
        }
    }

    /// Cells are visited once each, the point's cell first and then ring by ring outward, and they are the
    /// cells within the radius, wherever the point lies (corners and edges of the grid included).
    #[test]
    fn cells_are_visited_once_ring_by_ring() {
        let xy: Vec<(f64, f64)> = (0..400).map(|k| ((k % 20) as f64 * 100.0, (k / 20) as f64 * 100.0)).collect();
        let mut ch = Channel::new(&xy, 100.0, 1_000);
        // Enough frames that the cells are visited one by one rather than in one pass over all frames.
        for id in 0..20_000u64 {
            ch.push(frame(id, 0.0, 0.0, id, id + 1), id, 1 << 40);
        }
        for &(px, py) in &[(0.0, 0.0), (950.0, 1_020.0), (1_900.0, 0.0), (1_900.0, 1_900.0), (400.0, 1_850.0)] {
            for radius in [0.0, 160.0, 330.0, 450.0] {
                let (cx, cy) = ch.cell_of(px, py);
                let mut seen = Vec::new();
                assert_eq!(
                    ch.cells_near(px, py, radius, |c| {
                        seen.push(c);
                        true
                    }),
                    Some(true)
                );
                let ring = |c: &usize| (c % ch.nx).abs_diff(cx).max((c / ch.nx).abs_diff(cy));
                assert_eq!(seen.first(), Some(&(cy * ch.nx + cx)), "the point's cell first");
                assert!(seen.windows(2).all(|w| ring(&w[0]) <= ring(&w[1])), "ring by ring at {px},{py} r {radius}");
                let mut sorted = seen.clone();
                sorted.sort_unstable();
                sorted.dedup();
                assert_eq!(sorted.len(), seen.len(), "each cell once");
                // Every cell reaching strictly inside the radius is visited, and none farther than the radius
                // (a cell merely touching it from a boundary the point lies on may go either way: a frame there
                // belongs to the point's cell).
                let gap2 = |c: usize| {
                    let dx = ch.axis_gap(px, ch.x0_m, c % ch.nx, ch.nx);
                    let dy = ch.axis_gap(py, ch.y0_m, c / ch.nx, ch.ny);
                    dx * dx + dy * dy
                };
                let r2 = radius * radius;
                for c in 0..ch.nx * ch.ny {
                    if gap2(c) < r2 {
                        assert!(sorted.binary_search(&c).is_ok(), "cell {c} within {radius} m of {px},{py}");
                    }
                }
                assert!(sorted.iter().all(|&c| gap2(c) <= r2), "a cell beyond {radius} m of {px},{py}");
            }
        }
    }

    /// A point outside the nodes' box still sees the frames within the radius.
    #[test]
    fn points_outside_the_box_are_covered() {
        let xy = [(0.0, 0.0), (1_000.0, 1_000.0)];
        let mut ch = Channel::new(&xy, 100.0, 10);
        ch.push(frame(0, 1_000.0, 1_000.0, 0, 5), 0, 0);
        let mut got = Vec::new();
        ch.near(1_250.0, 1_000.0, 300.0, 0, &mut got, |_| true);
        assert_eq!(got.len(), 1);
    }
}
