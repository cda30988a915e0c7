//! Harmonic voltages from harmonic current sources (EV chargers, PV inverters, heat pumps) by the current
//! injection method on the network's harmonic impedances, for the power quality the LMUs measure.
//!
//! A device is a [`HarmonicModel`] (`models/harmonics-*.ron`): its rated power and its current spectrum, in
//! percent of its rated current or in amperes per order, each model citing where its spectrum comes from.
//! At harmonic order `h` every reactance of the network is `h` times its 50 Hz value (lines, transformers,
//! the external grid's `Zq`), resistances are kept and shunt capacitances, magnetising branches and loads are
//! neglected (series impedances as in IEC 60909, [`Purpose::ScPrefault`]), so levels are those of an undamped
//! network and no parallel resonance is modelled. Devices are balanced over the three phases (a fleet of
//! single-phase units spread over the phases counts the same): orders that are not multiples of 3 flow in
//! the positive/negative-sequence network, triplen orders in the zero-sequence network.
//!
//! The phases of many devices' harmonics are not known, so contributions combine by the general summation
//! law of IEC TR 61000-3-6:2008 (clause 6.3): `U_h = (sum_i U_h,i^a)^(1/a)` with `a = 1` below the 5th order,
//! `a = 1.4` from the 5th to the 10th and `a = 2` above. Levels are percent of the nominal phase voltage;
//! THD is over orders 2..=40 (EN 50160).

use super::network::Network;
use super::shortcircuit::thevenin_diagonal;
use super::topology::{Purpose, S_BASE_MVA, Topology};
use num_complex::Complex64 as C64;

/// Highest order EN 50160 counts in THD.
pub const MAX_ORDER: u32 = 40;

/// One line of a device's current spectrum.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HarmonicEntry {
    /// Harmonic order (2..=40).
    pub order: u32,
    pub level: HarmonicLevel,
}

/// A harmonic current level.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum HarmonicLevel {
    /// Percent of the device's rated fundamental current.
    Pct(f64),
    /// Amperes per phase.
    Amps(f64),
}

/// A harmonic source device (`models/harmonics-*.ron`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HarmonicModel {
    pub description: String,
    /// Where the spectrum comes from (standard and table, or datasheet).
    pub source: String,
    /// Rated apparent power, three-phase total (kVA).
    pub rated_kva: f64,
    pub spectrum: Vec<HarmonicEntry>,
}

impl HarmonicModel {
    /// Checks every field; the error names it.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.rated_kva.is_finite() && self.rated_kva > 0.0 && self.rated_kva <= 10_000.0) {
            return Err(format!("rated_kva = {} must be within 0..=10000", self.rated_kva));
        }
        if self.spectrum.is_empty() {
            return Err("spectrum is empty".into());
        }
        for (k, e) in self.spectrum.iter().enumerate() {
            if !(2..=MAX_ORDER).contains(&e.order) {
                return Err(format!("spectrum[{k}].order = {} must be within 2..={MAX_ORDER}", e.order));
            }
            if self.spectrum[..k].iter().any(|p| p.order == e.order) {
                return Err(format!("spectrum[{k}].order = {} is given twice", e.order));
            }
            let (v, hi) = match e.level {
                HarmonicLevel::Pct(p) => (p, 100.0),
                HarmonicLevel::Amps(a) => (a, 1000.0),
            };
            if !(v.is_finite() && (0.0..=hi).contains(&v)) {
                return Err(format!("spectrum[{k}].level = {v} must be within 0..={hi}"));
            }
        }
        Ok(())
    }

    /// Harmonic current per phase (A) of order `h` at a bus of `vn_kv` (line to line).
    pub fn current_a(&self, h: u32, vn_kv: f64) -> f64 {
        let rated_a = self.rated_kva / (3f64.sqrt() * vn_kv);
        self.spectrum.iter().find(|e| e.order == h).map_or(0.0, |e| match e.level {
            HarmonicLevel::Pct(p) => p / 100.0 * rated_a,
            HarmonicLevel::Amps(a) => a,
        })
    }
}

/// `count` devices of one model at bus position `bus`.
#[derive(Clone, Copy, Debug)]
pub struct HarmonicSource<'a> {
    pub bus: usize,
    pub model: &'a HarmonicModel,
    pub count: u32,
}

/// Exponent of IEC TR 61000-3-6's general summation law at order `h`.
pub fn summation_exponent(h: u32) -> f64 {
    match h {
        0..=4 => 1.0,
        5..=10 => 1.4,
        _ => 2.0,
    }
}

/// Total harmonic distortion (percent) of levels (order, percent of the fundamental), orders 2..=40.
pub fn thd_pct(levels: &[(u32, f64)]) -> f64 {
    levels.iter().filter(|(h, _)| (2..=MAX_ORDER).contains(h)).map(|(_, p)| p * p).sum::<f64>().sqrt()
}

/// The network at harmonic order `h`: reactances (lines, transformers, external grids, in every sequence)
/// times `h`, resistances kept.
pub fn network_at_order(net: &Network, h: u32) -> Network {
    let hf = h as f64;
    let mut n = net.clone();
    for l in &mut n.lines {
        l.x_ohm_per_km *= hf;
        l.x0_ohm_per_km = l.x0_ohm_per_km.map(|x| x * hf);
    }
    let scale_vk = |vk: f64, vkr: f64| {
        let vkx = (vk * vk - vkr * vkr).max(0.0).sqrt();
        vkr.hypot(hf * vkx)
    };
    for t in &mut n.trafos {
        t.vk_percent = scale_vk(t.vk_percent, t.vkr_percent);
        if let (Some(vk0), Some(vkr0)) = (t.vk0_percent, t.vkr0_percent) {
            t.vk0_percent = Some(scale_vk(vk0, vkr0));
        }
    }
    for e in &mut n.ext_grids {
        // |Zq| = c / S''kQ with R/X: keep R, multiply X by h.
        for (s, rx) in [(&mut e.s_sc_max_mva, e.rx_max), (&mut e.s_sc_min_mva, e.rx_min)] {
            let rx0 = rx.unwrap_or(0.1);
            if let Some(s) = s {
                *s /= ((rx0 * rx0 + hf * hf) / (rx0 * rx0 + 1.0)).sqrt();
            }
        }
        e.rx_max = Some(e.rx_max.unwrap_or(0.1) / hf);
        e.rx_min = Some(e.rx_min.unwrap_or(0.1) / hf);
        e.r0x0_max = e.r0x0_max.or(e.rx_max.map(|r| r * hf)).map(|r| r / hf);
        e.r0x0_min = e.r0x0_min.or(e.rx_min.map(|r| r * hf)).map(|r| r / hf);
    }
    n
}

/// Harmonic voltage levels at the buses `at` (positions) from `sources`: per bus the (order, percent of the
/// nominal phase voltage) of every order some source emits, in order.
pub fn harmonic_voltages(
    net: &Network,
    sources: &[HarmonicSource<'_>],
    at: &[usize],
) -> Result<Vec<Vec<(u32, f64)>>, String> {
    let mut orders: Vec<u32> = sources.iter().flat_map(|s| s.model.spectrum.iter().map(|e| e.order)).collect();
    orders.sort_unstable();
    orders.dedup();
    let closed: Vec<bool> = net.switches.iter().map(|s| s.closed).collect();
    let in_service: Vec<bool> = net.lines.iter().map(|l| l.in_service).collect();
    let mut out = vec![Vec::with_capacity(orders.len()); at.len()];
    for &h in &orders {
        let nh = network_at_order(net, h);
        let topo = Topology::build(&nh, &closed, &in_service, Purpose::ScPrefault)
            .map_err(|e| format!("harmonic order {h}: {e}"))?;
        let (_, sys1) = thevenin_diagonal(&topo, 1);
        let (z0, sys0) = thevenin_diagonal(&topo, 0);
        // Triplen orders flow in the zero sequence where the network carries it, else (no zero-sequence data)
        // in the positive sequence.
        let zero_ok = sources.iter().all(|s| topo.bus_node[s.bus].is_some_and(|k| z0[k].is_some()));
        let mut sys = if h % 3 == 0 && zero_ok { sys0 } else { sys1 };
        let Some(sys) = sys.as_mut() else { return Err(format!("harmonic order {h}: no path to a source")) };
        let a = summation_exponent(h);
        let mut acc = vec![0.0f64; at.len()];
        for s in sources {
            let vn = nh.buses[s.bus].vn_kv;
            let i_ka = s.model.current_a(h, vn) / 1000.0;
            if i_ka == 0.0 || s.count == 0 {
                continue;
            }
            let Some(node) = topo.bus_node[s.bus] else { continue };
            let i_pu = i_ka / (S_BASE_MVA / (3f64.sqrt() * vn));
            let v = sys.response(&[(node, C64::new(i_pu, 0.0))], topo.n_nodes);
            for (k, &b) in at.iter().enumerate() {
                if let Some(Some(vb)) = topo.bus_node[b].map(|m| v[m]) {
                    // Percent of the nominal phase voltage, `count` equal devices by the summation law.
                    acc[k] += s.count as f64 * (100.0 * vb.norm()).powf(a);
                }
            }
        }
        for (k, x) in acc.into_iter().enumerate() {
            out[k].push((h, x.powf(1.0 / a)));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summation_law_and_thd() {
        assert_eq!(summation_exponent(3), 1.0);
        assert_eq!(summation_exponent(5), 1.4);
        assert_eq!(summation_exponent(11), 2.0);
        assert!((thd_pct(&[(5, 3.0), (7, 4.0), (41, 100.0)]) - 5.0).abs() < 1e-12);
    }

    #[test]
    fn bad_models_are_refused_naming_the_field() {
        let ok = HarmonicModel {
            description: String::new(),
            source: String::new(),
            rated_kva: 11.0,
            spectrum: vec![HarmonicEntry { order: 5, level: HarmonicLevel::Pct(10.7) }],
        };
        ok.validate().unwrap();
        let mut bad = ok.clone();
        bad.spectrum.push(HarmonicEntry { order: 5, level: HarmonicLevel::Pct(1.0) });
        assert!(bad.validate().unwrap_err().contains("spectrum[1].order"));
        let mut bad = ok.clone();
        bad.spectrum[0].order = 1;
        assert!(bad.validate().unwrap_err().contains("spectrum[0].order"));
        let bad = HarmonicModel { rated_kva: -1.0, ..ok };
        assert!(bad.validate().unwrap_err().contains("rated_kva"));
    }
}
