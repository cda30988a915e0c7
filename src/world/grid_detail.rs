//! Per-element grid outputs of a run (opt-in, `outputs.grid_detail`): every bus's voltage and every line's
//! and transformer's loading, sampled at a fixed interval, written as two wide CSV tables (one row per
//! sample, one column per element) that stay small: `grid_bus_voltage_pu.csv` (lowest phase-to-neutral
//! voltage, p.u., 5 decimals) and `grid_branch_loading_pct.csv` (highest phase current over both ends as % of
//! the rating: `max_i_ka x parallel` for lines, `sn_mva x parallel` at the end's rated voltage for
//! transformers, 2 decimals). A sample holds the state solved last at or before its time; an empty cell is
//! a de-energised bus, a line without a rating, or a time before the first solve.

use crate::grid::model::GridSnapshot;
use crate::grid::network::Network;
use crate::report::Table;
use std::sync::Arc;

/// Samples solved states at `k x every` (k = 0, 1, ...).
pub struct Sampler {
    every_ns: u64,
    next_k: u64,
    prev: Option<Arc<GridSnapshot>>,
    /// One row per sample: bus voltages (p.u.), then branch loadings (%); NaN where empty.
    rows: Vec<(Vec<f32>, Vec<f32>)>,
    line_rating_ka: Vec<f64>,
    trafo_rating_ka: Vec<[f64; 2]>,
    names_bus: Vec<String>,
    names_branch: Vec<String>,
}

impl Sampler {
    pub fn new(net: &Network, every_ns: u64) -> Sampler {
        let sqrt3 = 3f64.sqrt();
        Sampler {
            every_ns: every_ns.max(1),
            next_k: 0,
            prev: None,
            rows: Vec::new(),
            line_rating_ka: net.lines.iter().map(|l| l.max_i_ka.map_or(f64::NAN, |i| i * l.parallel)).collect(),
            trafo_rating_ka: net
                .trafos
                .iter()
                .map(|t| {
                    let s = t.sn_mva * t.parallel;
                    [s / (sqrt3 * t.vn_hv_kv), s / (sqrt3 * t.vn_lv_kv)]
                })
                .collect(),
            names_bus: net.buses.iter().map(|b| format!("b{}", b.index)).collect(),
            names_branch: net
                .lines
                .iter()
                .map(|l| format!("l{}", l.index))
                .chain(net.trafos.iter().map(|t| format!("t{}", t.index)))
                .collect(),
        }
    }

    fn row(&self, s: Option<&GridSnapshot>) -> (Vec<f32>, Vec<f32>) {
        let nb = self.names_bus.len();
        let nbr = self.names_branch.len();
        let Some(s) = s else { return (vec![f32::NAN; nb], vec![f32::NAN; nbr]) };
        let v = (0..nb)
            .map(|b| match (s.energised.get(b), s.v_pu.get(b)) {
                (Some(true), Some(v)) => v.iter().map(|p| p.norm()).fold(f64::INFINITY, f64::min) as f32,
                _ => f32::NAN,
            })
            .collect();
        let worst = |ends: &[[num_complex::Complex64; 3]; 2], rating: [f64; 2]| {
            let mut x = f64::NAN;
            for (e, rate) in ends.iter().zip(rating) {
                for c in e {
                    let pct = 100.0 * c.norm() / rate;
                    if pct.is_finite() {
                        x = if x.is_nan() { pct } else { x.max(pct) };
                    }
                }
            }
            x as f32
        };
        let mut br: Vec<f32> = Vec::with_capacity(nbr);
        for (k, r) in self.line_rating_ka.iter().enumerate() {
            br.push(s.line_i_ka.get(k).map_or(f32::NAN, |i| worst(i, [*r, *r])));
        }
        for (k, r) in self.trafo_rating_ka.iter().enumerate() {
            br.push(s.trafo_i_ka.get(k).map_or(f32::NAN, |i| worst(i, *r)));
        }
        (v, br)
    }

    /// A state solved at `t_ns`: samples before it take the previous state.
    pub fn solved(&mut self, t_ns: u64, snap: Arc<GridSnapshot>) {
        while self.next_k.saturating_mul(self.every_ns) < t_ns {
            let r = self.row(self.prev.as_deref());
            self.rows.push(r);
            self.next_k += 1;
        }
        self.prev = Some(snap);
    }

    /// The two tables, with the samples up to and including `end_ns` filled from the last state.
    pub fn tables(&self, end_ns: u64) -> [(String, Table); 2] {
        let mut rows = self.rows.clone();
        let mut k = self.next_k;
        while k.saturating_mul(self.every_ns) <= end_ns {
            rows.push(self.row(self.prev.as_deref()));
            k += 1;
        }
        let cell = |x: f32, digits: usize| if x.is_finite() { format!("{x:.digits$}") } else { String::new() };
        let mut header_v = vec!["t_s".to_string()];
        header_v.extend(self.names_bus.iter().cloned());
        let mut header_l = vec!["t_s".to_string()];
        header_l.extend(self.names_branch.iter().cloned());
        let mut tv = Table { header: header_v, rows: Vec::with_capacity(rows.len()) };
        let mut tl = Table { header: header_l, rows: Vec::with_capacity(rows.len()) };
        for (i, (v, l)) in rows.iter().enumerate() {
            let t = crate::report::secs_from_ns(i as u64 * self.every_ns);
            tv.rows.push(std::iter::once(t.clone()).chain(v.iter().map(|x| cell(*x, 5))).collect());
            tl.rows.push(std::iter::once(t).chain(l.iter().map(|x| cell(*x, 2))).collect());
        }
        [("grid_bus_voltage_pu".into(), tv), ("grid_branch_loading_pct".into(), tl)]
    }
}
