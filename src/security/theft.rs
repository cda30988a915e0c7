//! Energy-theft detection: an energy balance per line section between what the LMUs measure and what the
//! customers' meters report.
//!
//! Each LMU measures the power into its line (its periodic reading, through its sensor twin: gain error,
//! drift, ADC noise). A section is what lies between an LMU and the LMUs below it, so the energy consumed in
//! section `s` over an interval is `E_in(s) - sum E_in(d)` over its downstream LMUs `d`. The monitor (a
//! cloud-side service) subtracts the energy the section's customers' meters report (each meter integrates its
//! load exactly, with a fixed error within its accuracy class) and the section's technical losses (the
//! network model's line losses at the solved state, trusted to within `loss_model_error_pct`). What is left
//! is unmetered consumption plus measurement error. A section is flagged when its cumulative residual exceeds
//! `k_sigma` standard uncertainties of that residual (from the LMU sensor model, the meters' class and the
//! loss model's error; see [`TheftMonitor::sigma_wh`]), once at least `min_window` of data is in.
//!
//! The scenario's `theft` section also places the thefts the monitor must find: illegal taps (loads on the
//! grid that no meter sees, as constant-power consumers) and tampered meters (reporting a share of their
//! consumption). Readings are binned per LMU report interval; with `grid.profile_step` equal to
//! `lmus.report_every` the grid is constant within a bin and one reading per bin is exact up to the sensor's
//! errors. Units: W, Wh, kWh in reports, time in ns.

use crate::agents::{GwMsg, Msg};
use crate::engine::{Agent, AgentId, Ctx, Event, SimDuration, SimTime, Simulation, parse_duration, stream};
use crate::grid::GridMsg;
use crate::grid::agents::GridAgent;
use crate::grid::model::GridSnapshot;
use crate::report::{Report, Table, num};
use crate::scenario::{Dur, InputError, Loaded};
use crate::twin::agent::{LmuAgent, Uplink};
use crate::twin::sensor::SensorModel;
use crate::world::lmu::LmuPart;
use gridtwin_firmware::report::{ReportPacket, ReportRepr};
use rand::RngExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;

/// Most report intervals the monitor keeps (a year of 15-minute bins).
pub const MAX_BINS: usize = 366 * 96;

/// The `theft` section of a scenario.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TheftConfig {
    /// Illegal taps: constant loads at a bus that no meter sees.
    #[serde(default)]
    pub taps: Vec<Tap>,
    /// Tampered meters: the meter of the first customer at `bus` reports `reports_pct` % of the consumption.
    #[serde(default)]
    pub tampered: Vec<Tamper>,
    /// Meter accuracy class (percent; each meter's error is fixed, uniform within +-class).
    #[serde(default = "default_meter_class")]
    pub meter_accuracy_pct: f64,
    /// How far the loss model may be off (percent of the estimated technical losses).
    #[serde(default = "default_loss_error")]
    pub loss_model_error_pct: f64,
    /// Flag when the residual exceeds this many standard uncertainties.
    #[serde(default = "default_k")]
    pub k_sigma: f64,
    /// No section is judged on less data than this.
    #[serde(default = "default_min_window")]
    pub min_window: Dur,
}

fn default_meter_class() -> f64 {
    1.0
}
fn default_loss_error() -> f64 {
    20.0
}
fn default_k() -> f64 {
    5.0
}
fn default_min_window() -> Dur {
    Dur(SimDuration::from_secs(4 * 3600))
}

/// An illegal tap.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Tap {
    /// Bus file index.
    pub bus: i64,
    /// Constant active power drawn (kW, three-phase total).
    pub p_kw: f64,
}

/// A tampered meter.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Tamper {
    /// Bus file index of the customer.
    pub bus: i64,
    /// Share of the consumption the meter reports (percent).
    pub reports_pct: f64,
}

impl TheftConfig {
    /// Checks every field; the error names it.
    pub fn validate(&self) -> Result<(), String> {
        for (k, t) in self.taps.iter().enumerate() {
            if !(t.p_kw.is_finite() && t.p_kw > 0.0 && t.p_kw <= 100.0) {
                return Err(format!("theft.taps[{k}].p_kw: must be within (0, 100] (got {})", t.p_kw));
            }
        }
        for (k, t) in self.tampered.iter().enumerate() {
            if !(t.reports_pct.is_finite() && (0.0..100.0).contains(&t.reports_pct)) {
                return Err(format!(
                    "theft.tampered[{k}].reports_pct: must be within [0, 100) (got {})",
                    t.reports_pct
                ));
            }
        }
        if !(self.meter_accuracy_pct.is_finite() && (0.0..=10.0).contains(&self.meter_accuracy_pct)) {
            return Err(format!("theft.meter_accuracy_pct: must be within 0..=10 (got {})", self.meter_accuracy_pct));
        }
        if !(self.loss_model_error_pct.is_finite() && (0.0..=100.0).contains(&self.loss_model_error_pct)) {
            return Err(format!(
                "theft.loss_model_error_pct: must be within 0..=100 (got {})",
                self.loss_model_error_pct
            ));
        }
        if !(self.k_sigma.is_finite() && (1.0..=20.0).contains(&self.k_sigma)) {
            return Err(format!("theft.k_sigma: must be within 1..=20 (got {})", self.k_sigma));
        }
        Ok(())
    }

    /// The same section without thefts (an honest day).
    pub fn honest(&self) -> Self {
        TheftConfig { taps: Vec::new(), tampered: Vec::new(), ..self.clone() }
    }
}

/// One section of the balance.
#[derive(Clone, Debug)]
struct Section {
    peer: u16,
    /// LMU index (in the monitor's LMU list) of the section's own LMU and of those below it.
    lmu: usize,
    below: Vec<usize>,
    /// Customers (load positions) and lines (positions) of the section.
    loads: Vec<usize>,
    lines: Vec<usize>,
}

/// The monitor: takes the LMUs' readings and the solved states (for the meters and the losses).
pub struct TheftMonitor {
    every_ns: u64,
    /// LMU id -> index.
    lmu_index: BTreeMap<u32, usize>,
    sections: Vec<Section>,
    /// Per LMU, per bin: measured energy (Wh) and whether a reading came.
    lmu_wh: Vec<Vec<Option<f64>>>,
    /// Per customer, per bin: metered energy (Wh).
    meter_wh: Vec<Vec<f64>>,
    /// Per section, per bin: estimated technical losses (Wh).
    loss_wh: Vec<Vec<f64>>,
    /// Per customer: meter factor ((1 + error) x tamper share).
    meter_factor: Vec<f64>,
    /// Line (from bus, to bus) positions.
    line_buses: Vec<(usize, usize)>,
    last: Option<(SimTime, Vec<f64>, Vec<f64>)>,
    /// Relative standard uncertainty of an LMU energy (gain error and drift), and of one reading's energy
    /// from noise (Wh).
    u_lmu: f64,
    noise_wh: f64,
    u_meter: f64,
    u_loss: f64,
    k_sigma: f64,
    min_bins: usize,
    /// Sections holding a theft (peer ids).
    pub true_sections: Vec<u16>,
    /// Readings that did not parse.
    pub bad_readings: u64,
}

impl TheftMonitor {
    fn bin(&self, t: SimTime) -> usize {
        (t.as_nanos() / self.every_ns) as usize
    }

    fn accrue(&mut self, until: SimTime) {
        let Some((t0, p_load, p_loss)) = self.last.take() else { return };
        let mut t = t0;
        while t < until {
            let b = self.bin(t);
            if b >= MAX_BINS {
                break;
            }
            let edge = SimTime::from_nanos(((b as u64) + 1) * self.every_ns).min(until);
            let h = (edge.as_nanos() - t.as_nanos()) as f64 / 3.6e12;
            for (k, &p) in p_load.iter().enumerate() {
                let m = &mut self.meter_wh[k];
                if m.len() <= b {
                    m.resize(b + 1, 0.0);
                }
                m[b] += p * self.meter_factor[k] * h;
            }
            for (s, &p) in p_loss.iter().enumerate() {
                let m = &mut self.loss_wh[s];
                if m.len() <= b {
                    m.resize(b + 1, 0.0);
                }
                m[b] += p * h;
            }
            t = edge;
        }
        self.last = Some((until, p_load, p_loss));
    }

    fn observe(&mut self, now: SimTime, snap: &GridSnapshot) {
        self.accrue(now);
        let p_load: Vec<f64> = snap.load_p_mw.iter().map(|p| p * 1e6).collect();
        let mut line_loss = vec![0.0; self.line_buses.len()];
        for (k, &(f, t)) in self.line_buses.iter().enumerate() {
            let (Some(i), Some(vf), Some(vt)) = (snap.line_i_ka.get(k), snap.v_pu.get(f), snap.v_pu.get(t)) else {
                continue;
            };
            let bf = snap.bus_vn_kv[f] * 1000.0 / 3f64.sqrt();
            let bt = snap.bus_vn_kv[t] * 1000.0 / 3f64.sqrt();
            let mut p = 0.0;
            for ph in 0..3 {
                p += (vf[ph] * bf * (i[0][ph] * 1000.0).conj()).re + (vt[ph] * bt * (i[1][ph] * 1000.0).conj()).re;
            }
            line_loss[k] = if p.is_finite() { p.max(0.0) } else { 0.0 };
        }
        let p_loss = self.sections.iter().map(|s| s.lines.iter().map(|&l| line_loss[l]).sum()).collect();
        self.last = Some((now, p_load, p_loss));
    }

    fn on_reading(&mut self, now: SimTime, payload: &[u8]) {
        let Ok(p) = ReportPacket::new_checked(payload) else {
            self.bad_readings += 1;
            return;
        };
        let r = ReportRepr::parse(&p);
        let Some(&i) = self.lmu_index.get(&r.lmu_id) else {
            self.bad_readings += 1;
            return;
        };
        let b = self.bin(now);
        if b >= MAX_BINS {
            return;
        }
        let v = &mut self.lmu_wh[i];
        if v.len() <= b {
            v.resize(b + 1, None);
        }
        v[b] = Some(r.p_w as f64 * self.every_ns as f64 / 3.6e12);
    }

    /// Standard uncertainty (Wh) of a section's residual over bins with these energies: LMU gain error on
    /// every LMU energy, reading noise on every reading, each meter's class error, the loss model's error.
    pub fn sigma_wh(&self, lmu_wh: &[f64], readings: usize, meter_wh: &[f64], loss_wh: f64) -> f64 {
        let mut v = readings as f64 * self.noise_wh * self.noise_wh;
        v += lmu_wh.iter().map(|e| (self.u_lmu * e).powi(2)).sum::<f64>();
        v += meter_wh.iter().map(|e| (self.u_meter * e).powi(2)).sum::<f64>();
        v += (self.u_loss * loss_wh).powi(2);
        v.sqrt()
    }

    /// Judges every section over the bins so far: per section (peer, metered kWh, in kWh, below kWh, loss
    /// kWh, residual kWh, threshold kWh, flagged at (h)).
    pub fn judge(&self) -> Vec<Verdict> {
        let nbins = self.lmu_wh.iter().map(|v| v.len()).max().unwrap_or(0);
        let mut out = Vec::new();
        for s in &self.sections {
            let mut lmu_e = vec![0.0; 1 + s.below.len()];
            let mut meter_e = vec![0.0; s.loads.len()];
            let (mut loss, mut readings, mut used) = (0.0, 0usize, 0usize);
            let mut flagged_at = None;
            let mut last = (0.0, 0.0);
            for b in 0..nbins {
                let ids: Vec<usize> = std::iter::once(s.lmu).chain(s.below.iter().copied()).collect();
                let vals: Option<Vec<f64>> = ids.iter().map(|&i| self.lmu_wh[i].get(b).copied().flatten()).collect();
                // A bin counts only when every LMU of the balance reported in it and the meters covered it.
                let Some(vals) = vals else { continue };
                if s.loads.iter().any(|&l| self.meter_wh[l].len() <= b) {
                    continue;
                }
                for (k, v) in vals.iter().enumerate() {
                    lmu_e[k] += v;
                }
                readings += vals.len();
                for (k, &l) in s.loads.iter().enumerate() {
                    meter_e[k] += self.meter_wh[l][b];
                }
                loss += self.loss_wh[self.sections.iter().position(|x| x.peer == s.peer).unwrap_or(0)]
                    .get(b)
                    .copied()
                    .unwrap_or(0.0);
                used += 1;
                let consumed = lmu_e[0] - lmu_e[1..].iter().sum::<f64>();
                let residual = consumed - meter_e.iter().sum::<f64>() - loss;
                let sigma = self.sigma_wh(&lmu_e, readings, &meter_e, loss);
                last = (residual, self.k_sigma * sigma);
                if flagged_at.is_none() && used >= self.min_bins && residual > self.k_sigma * sigma {
                    flagged_at = Some((b as u64 + 1) * self.every_ns);
                }
            }
            out.push(Verdict {
                section: s.peer,
                bins: used,
                in_kwh: lmu_e[0] / 1000.0,
                below_kwh: lmu_e[1..].iter().sum::<f64>() / 1000.0,
                metered_kwh: meter_e.iter().sum::<f64>() / 1000.0,
                loss_kwh: loss / 1000.0,
                residual_kwh: last.0 / 1000.0,
                threshold_kwh: last.1 / 1000.0,
                flagged_at_h: flagged_at.map(|t| t as f64 / 3.6e12),
            });
        }
        out
    }
}

/// A section's balance.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub section: u16,
    pub bins: usize,
    pub in_kwh: f64,
    pub below_kwh: f64,
    pub metered_kwh: f64,
    pub loss_kwh: f64,
    pub residual_kwh: f64,
    pub threshold_kwh: f64,
    pub flagged_at_h: Option<f64>,
}

impl Agent<Msg> for TheftMonitor {
    fn handle(&mut self, ev: Event<Msg>, ctx: &mut Ctx<'_, Msg>) {
        match ev.msg {
            Msg::Grid(GridMsg::Solved(snap)) => self.observe(ctx.now(), &snap),
            Msg::Gw(GwMsg::Uplink(payload)) => self.on_reading(ctx.now(), &payload),
            _ => {}
        }
    }
    fn kind(&self) -> &'static str {
        "theft-monitor"
    }
}

/// The theft part of a world.
pub struct TheftPart {
    monitor: AgentId,
}

/// Places the taps on the grid, the tampering on the meters, and the monitor fed by the LMUs' readings.
pub fn add(
    sim: &mut Simulation<Msg>,
    loaded: &Loaded,
    cfg: &TheftConfig,
    lmus: Option<&LmuPart>,
    grid: Option<AgentId>,
    seed: u64,
) -> Result<TheftPart, InputError> {
    cfg.validate().map_err(|e| loaded.error_in("theft", e))?;
    let (Some(lp), Some(grid)) = (lmus, grid) else {
        return Err(loaded.error_at("theft", "needs `grid` and `lmus` sections (the LMUs measure the sections)", None));
    };
    let s = &loaded.scenario;
    if s.gateway.is_some() || s.mesh.is_some() {
        return Err(loaded.error_at(
            "theft",
            "takes the LMUs' readings straight from the LMUs: a scenario with `theft` has no `gateway` or `mesh`",
            None,
        ));
    }
    let sec = s.lmus.as_ref().ok_or_else(|| loaded.error_at("theft", "needs an `lmus` section", None))?;
    let every = parse_duration(&sec.report_every).map_err(|e| loaded.error_at("lmus.report_every", e, None))?;
    let spread = parse_duration(&sec.report_spread).map_err(|e| loaded.error_at("lmus.report_spread", e, None))?;
    let (sensor, _) = loaded.model::<SensorModel>(&sec.model)?;
    let build = lp.build();
    let c = &build.commissioning;
    let net = &c.network;
    let section_of_bus =
        |bus_pos: usize| c.lmus.iter().find(|l| !l.is_tie && l.section_buses.contains(&bus_pos)).map(|l| l.peer);
    let mut true_sections = Vec::new();
    let monitor = sim.next_agent_id();
    let g =
        sim.agent_mut::<GridAgent>(grid).ok_or_else(|| loaded.error_at("grid", "the grid agent is missing", None))?;
    for (k, t) in cfg.taps.iter().enumerate() {
        let at = format!("theft.taps[{k}].bus");
        let pos = net.bus(t.bus).ok_or_else(|| loaded.error_at(&at, format!("bus {} does not exist", t.bus), None))?;
        let sec = section_of_bus(pos).ok_or_else(|| {
            loaded.error_at(&at, format!("bus {} lies in no LMU section (upstream of every LMU)", t.bus), None)
        })?;
        g.model.add_sgen(t.bus, -t.p_kw / 1000.0, 0.0, "illegal-tap").map_err(|e| loaded.error_at(&at, e, None))?;
        true_sections.push(sec);
    }
    let mut meter_factor = Vec::new();
    for (k, &(bus_pos, _)) in build.loads.iter().enumerate() {
        let err = cfg.meter_accuracy_pct / 100.0 * (2.0 * stream(seed, k as u64, "meter-error").random::<f64>() - 1.0);
        meter_factor.push(1.0 + err);
        let _ = bus_pos;
    }
    for (k, t) in cfg.tampered.iter().enumerate() {
        let at = format!("theft.tampered[{k}].bus");
        let pos = net.bus(t.bus).ok_or_else(|| loaded.error_at(&at, format!("bus {} does not exist", t.bus), None))?;
        let l = build
            .loads
            .iter()
            .position(|l| l.0 == pos)
            .ok_or_else(|| loaded.error_at(&at, format!("bus {} has no customer", t.bus), None))?;
        let sec = section_of_bus(pos).ok_or_else(|| {
            loaded.error_at(&at, format!("bus {} lies in no LMU section (upstream of every LMU)", t.bus), None)
        })?;
        meter_factor[l] *= t.reports_pct / 100.0;
        true_sections.push(sec);
    }
    true_sections.sort();
    true_sections.dedup();
    g.subscribe(monitor);
    let lmu_index: BTreeMap<u32, usize> = lp.lmus.iter().enumerate().map(|(k, l)| (l.1, k)).collect();
    let peer_index = |p: u16| lmu_index.get(&(p as u32)).copied();
    let mut sections = Vec::new();
    for l in c.lmus.iter().filter(|l| !l.is_tie) {
        let (Some(lmu), Some(below)) =
            (peer_index(l.peer), l.downstream.iter().map(|&d| peer_index(d)).collect::<Option<Vec<_>>>())
        else {
            continue;
        };
        let loads = (0..build.loads.len()).filter(|&k| l.section_buses.contains(&build.loads[k].0)).collect();
        sections.push(Section { peer: l.peer, lmu, below, loads, lines: l.section_lines.clone() });
    }
    let line_buses =
        net.lines.iter().map(|l| (net.bus(l.from_bus).unwrap_or(0), net.bus(l.to_bus).unwrap_or(0))).collect();
    // Sensor uncertainty: gain error and drift on V and on I (rectangular within the stated bounds), and ADC
    // noise averaged over one cycle's DFT, on three phases at nominal voltage.
    let drift_pct = sensor.gain_drift_ppm_per_k * 1e-4 * (sec.temperature_c - 25.0).abs();
    let u_lmu = 2.0 * (sensor.gain_error_pct + drift_pct) / 100.0 / 3f64.sqrt();
    let lsb_a = sensor.adc_range_v / (1u64 << (sensor.adc_bits.saturating_sub(1).min(62))) as f64 / sensor.burden_ohm
        * sensor.ct_ratio;
    let n_cycle = (sensor.sample_rate_hz / sensor.nominal_hz.max(1)).max(1) as f64;
    let sigma_i_a = sensor.noise_lsb_rms * lsb_a * (2.0 / n_cycle).sqrt();
    let sigma_p_w = 3f64.sqrt() * 230.0 * sigma_i_a;
    let noise_wh = sigma_p_w * every.as_nanos() as f64 / 3.6e12;
    let n = lp.lmus.len();
    let monitor_agent = TheftMonitor {
        every_ns: every.as_nanos().max(1),
        lmu_index,
        loss_wh: vec![Vec::new(); sections.len()],
        sections,
        lmu_wh: vec![Vec::new(); n],
        meter_wh: vec![Vec::new(); build.loads.len()],
        meter_factor,
        line_buses,
        last: None,
        u_lmu,
        noise_wh,
        u_meter: cfg.meter_accuracy_pct / 100.0 / 3f64.sqrt(),
        u_loss: cfg.loss_model_error_pct / 100.0 / 3f64.sqrt(),
        k_sigma: cfg.k_sigma,
        min_bins: (cfg.min_window.0.as_nanos() / every.as_nanos().max(1)).max(1) as usize,
        true_sections,
        bad_readings: 0,
    };
    let agents: Vec<AgentId> = lp.lmus.iter().map(|l| l.0).collect();
    let id = sim.add_agent(Box::new(monitor_agent)).map_err(|e| loaded.error_at("theft", e.to_string(), None))?;
    debug_assert_eq!(id, monitor);
    for a in agents {
        if let Some(l) = sim.agent_mut::<LmuAgent>(a) {
            l.set_uplink(Uplink::Direct(monitor), every, spread);
        }
    }
    Ok(TheftPart { monitor })
}

impl TheftPart {
    /// The monitor's verdicts and the true sections.
    pub fn verdicts(&self, sim: &Simulation<Msg>) -> (Vec<Verdict>, Vec<u16>) {
        sim.agent::<TheftMonitor>(self.monitor)
            .map_or((Vec::new(), Vec::new()), |m| (m.judge(), m.true_sections.clone()))
    }
}

impl crate::world::Part for TheftPart {
    fn report(&self, sim: &Simulation<Msg>, r: &mut Report) {
        let (v, truth) = self.verdicts(sim);
        let name = |p: u16| format!("S{p}");
        let flagged: Vec<String> = v.iter().filter(|x| x.flagged_at_h.is_some()).map(|x| name(x.section)).collect();
        let true_s: Vec<String> = truth.iter().map(|&p| name(p)).collect();
        let hours: Vec<f64> = v.iter().filter_map(|x| x.flagged_at_h).collect();
        let mut t = Table::new(&[
            "section",
            "bins",
            "in_kwh",
            "below_kwh",
            "metered_kwh",
            "loss_kwh",
            "residual_kwh",
            "threshold_kwh",
            "flagged_at_h",
        ]);
        for x in &v {
            t.rows.push(vec![
                name(x.section),
                x.bins.to_string(),
                num(x.in_kwh),
                num(x.below_kwh),
                num(x.metered_kwh),
                num(x.loss_kwh),
                num(x.residual_kwh),
                num(x.threshold_kwh),
                x.flagged_at_h.map_or(String::new(), num),
            ]);
        }
        r.tables.push(("theft".into(), t));
        let bad = sim.agent::<TheftMonitor>(self.monitor).map_or(0, |m| m.bad_readings);
        r.summary.insert(
            "theft".into(),
            json!({
                "sections": v.len(),
                "flagged_sections": flagged,
                "true_sections": true_s,
                "latest_flag_h": hours.iter().copied().fold(None, |a: Option<f64>, h| Some(a.map_or(h, |a| a.max(h)))),
                "bad_readings": bad,
                "balance": v.iter().map(|x| json!({
                    "section": name(x.section),
                    "residual_kwh": x.residual_kwh,
                    "threshold_kwh": x.threshold_kwh,
                    "flagged_at_h": x.flagged_at_h,
                })).collect::<Vec<_>>(),
            }),
        );
        r.human.push(format!("theft: flagged {flagged:?}, true {true_s:?}"));
    }
}

/// The false-alarm measurement of a theft scenario on honest days.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FalseAlarms {
    pub days: u32,
    pub sections: usize,
    /// Sections flagged, summed over the days.
    pub flagged: u64,
    /// Days with at least one section flagged.
    pub days_with_alarm: u32,
    /// `flagged` over (days x sections), percent.
    pub rate_pct: f64,
    /// The largest residual over its threshold seen on any section and day (how close honest days come).
    pub worst_residual_over_threshold: f64,
}

/// Runs `loaded` (a scenario with a `theft` section) with its taps and tampered meters removed on `days`
/// seeded days (seeds 1..=days, in parallel, combined in seed order) and counts the sections flagged.
pub fn false_alarms(loaded: &Loaded, days: u32) -> Result<FalseAlarms, String> {
    use rayon::prelude::*;
    if loaded.scenario.theft.is_none() {
        return Err(format!("{}: has no `theft` section", loaded.file));
    }
    let mut text = crate::scenario::ron_path::replace(&loaded.text, "theft.taps", "[]").unwrap_or(loaded.text.clone());
    text = crate::scenario::ron_path::replace(&text, "theft.tampered", "[]").unwrap_or(text);
    let honest = Loaded::from_text(loaded.file.clone(), text, loaded.base_dir.clone()).map_err(|e| e.to_string())?;
    if honest.scenario.theft.as_ref().is_some_and(|t| !t.taps.is_empty() || !t.tampered.is_empty()) {
        return Err("could not remove the thefts from the scenario".into());
    }
    let runs: Vec<Result<serde_json::Value, String>> =
        (1..=days as u64).into_par_iter().map(|seed| crate::sweep::run_one(&honest, seed)).collect();
    let (mut flagged, mut days_with_alarm, mut sections, mut worst) = (0u64, 0u32, 0usize, f64::NEG_INFINITY);
    for r in runs {
        let v = r?;
        let balance = v["theft"]["balance"].as_array().cloned().unwrap_or_default();
        sections = balance.len();
        let f = balance.iter().filter(|x| x["flagged_at_h"].is_number()).count() as u64;
        flagged += f;
        days_with_alarm += (f > 0) as u32;
        for x in &balance {
            let (r, t) = (x["residual_kwh"].as_f64().unwrap_or(0.0), x["threshold_kwh"].as_f64().unwrap_or(0.0));
            if t > 0.0 {
                worst = worst.max(r / t);
            }
        }
    }
    let cells = (days as usize * sections).max(1) as f64;
    Ok(FalseAlarms {
        days,
        sections,
        flagged,
        days_with_alarm,
        rate_pct: 100.0 * flagged as f64 / cells,
        worst_residual_over_threshold: worst,
    })
}
