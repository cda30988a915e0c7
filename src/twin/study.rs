//! The FLISR study: one fault case end to end (feeder, LMUs, fault, PV penetration) on the event queue, and
//! the protection-settings file format (`models/protection-*.ron`).
//!
//! [`run_flisr_case`] puts one feeder on a grid agent, builds the LMUs with the world's code
//! ([`super::build`]), runs the fault and scores it as [`FaultEvent`]; [`CaseRow`] is the study CSV row.
//! Units: ms and s as named, ohm, percent.

use super::build::{AttachOptions, Commissioning, LmuHardware, attach, score};
use super::contactor::ContactorModel;
use super::feeder_head::FeederDeviceModel;
use super::link::LinkModel;
use super::metrics::FaultEvent;
use super::placement::PlacementRule;
use super::scenario::{FaultPlan, FaultType, TieRule};
use super::sensor::{Fidelity, SensorModel};
use crate::agents::Msg;
use crate::engine::{SimDuration, SimTime, Simulation, Stop};
use crate::grid::GridConfig;
use crate::grid::agents::GridAgent;
use crate::grid::network::Network;
use gridtwin_firmware::lmu::flisr::FlisrSettings;
use gridtwin_firmware::lmu::protection::{Curve, OvercurrentStage, ProtectionSettings};

/// Characteristic names in settings files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CurveName {
    DT,
    SI,
    VI,
    EI,
    LTI,
}

/// One overcurrent stage in a settings file.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageFile {
    pub enabled: bool,
    pub curve: CurveName,
    pub pickup_a: f64,
    pub tms: f64,
    pub delay_ms: u32,
}

impl StageFile {
    fn to_fw(self) -> OvercurrentStage {
        OvercurrentStage {
            enabled: self.enabled,
            curve: match self.curve {
                CurveName::DT => Curve::DefiniteTime,
                CurveName::SI => Curve::StandardInverse,
                CurveName::VI => Curve::VeryInverse,
                CurveName::EI => Curve::ExtremelyInverse,
                CurveName::LTI => Curve::LongTimeInverse,
            },
            pickup_a: self.pickup_a,
            tms: self.tms,
            delay_ms: self.delay_ms,
        }
    }
}

/// `models/protection-<name>.ron`: protection and FLISR settings of an LMU.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtectionFile {
    pub phase: StageFile,
    pub phase_high: StageFile,
    pub earth: StageFile,
    pub delta_phase_a: f64,
    pub delta_earth_a: f64,
    pub delta_power_w: f64,
    pub directional: bool,
    pub char_angle_deg: f64,
    pub open_conductor: bool,
    pub loss_pu: f64,
    pub healthy_pu: f64,
    pub neutral_shift_pu: f64,
    pub open_conductor_delay_ms: u32,
    pub current_drop_ratio: f64,
    pub current_drop_min_a: f64,
    /// Negative-sequence voltage step of a series fault held up by DER (per unit), see the firmware.
    pub unbalance_step_pu: f64,
    /// Least swing of a lost phase's healthy phases (p.u.) that marks a shunt fault's sag rather than a break;
    /// commissioning raises it per LMU above what a break upstream gives (see the firmware's `sag_swing_pu`).
    #[serde(default = "default_sag_swing_pu")]
    pub sag_swing_pu: f64,
    pub logic_delay_ms: u32,
    pub backup_delay_ms: u32,
    pub block_repeat_ms: u32,
    pub block_hold_ms: u32,
    pub contactor_confirm_ms: u32,
    pub open_conductor_logic_ms: u32,
    pub retry_ms: u32,
    pub retries: u8,
    pub sotf_current_a: f64,
    /// Time grading step of the graded scheme (ms); 0 (the default) selects the blocking scheme (see the
    /// firmware's `FlisrSettings::grading_ms`).
    #[serde(default)]
    pub grading_ms: u32,
    /// Blocking scheme: time grading step (ms) of the episodes an LMU decides by time because its channel is
    /// jammed (see the firmware's `FlisrSettings::jam_grading_ms`); 0 turns that fallback off.
    #[serde(default = "default_jam_grading_ms")]
    pub jam_grading_ms: u32,
    /// Loss-of-mains detection by power-line signalling: the secondary substation injects a continuity
    /// signal on every phase conductor and every LMU has a receiver (see the twin's `ContinuityReceiver`);
    /// `None` (the default): neither is fitted.
    #[serde(default)]
    pub continuity_signal: Option<ContinuitySignal>,
}

/// The continuity signal of [`ProtectionFile::continuity_signal`].
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContinuitySignal {
    /// Time the receiver takes to decode a change (the signal lost, or found again), ms: the symbols it must
    /// miss or see, one per few mains cycles.
    pub decode_ms: u32,
}

/// Bounds of [`ContinuitySignal::decode_ms`]: at least one mains cycle, at most the 2 s within which the
/// generators' own loss-of-mains protection acts anyway.
pub const CONTINUITY_DECODE_MS: core::ops::RangeInclusive<u32> = 20..=2000;

fn default_jam_grading_ms() -> u32 {
    FlisrSettings::new(0).jam_grading_ms
}

fn default_sag_swing_pu() -> f64 {
    gridtwin_firmware::lmu::protection::SHUNT_SWING_PU
}

impl ProtectionFile {
    /// The firmware's protection settings at nominal phase voltage `u_nominal_v`.
    pub fn protection(&self, u_nominal_v: f64) -> ProtectionSettings {
        ProtectionSettings {
            u_nominal_v,
            phase: self.phase.to_fw(),
            phase_high: self.phase_high.to_fw(),
            earth: self.earth.to_fw(),
            delta_phase_a: self.delta_phase_a,
            delta_earth_a: self.delta_earth_a,
            delta_power_w: self.delta_power_w,
            directional: self.directional,
            char_angle_deg: self.char_angle_deg,
            open_conductor: self.open_conductor,
            loss_pu: self.loss_pu,
            healthy_pu: self.healthy_pu,
            neutral_shift_pu: self.neutral_shift_pu,
            open_conductor_delay_ms: self.open_conductor_delay_ms,
            current_drop_ratio: self.current_drop_ratio,
            current_drop_min_a: self.current_drop_min_a,
            unbalance_step_pu: self.unbalance_step_pu,
            sag_swing_pu: self.sag_swing_pu,
        }
    }

    /// The FLISR timing applied to commissioning data.
    pub fn flisr(&self, me: u16) -> FlisrSettings {
        let mut f = FlisrSettings::new(me);
        f.logic_delay_ms = self.logic_delay_ms;
        f.backup_delay_ms = self.backup_delay_ms;
        f.block_repeat_ms = self.block_repeat_ms;
        f.block_hold_ms = self.block_hold_ms;
        f.contactor_confirm_ms = self.contactor_confirm_ms;
        f.open_conductor_logic_ms = self.open_conductor_logic_ms;
        f.retry_ms = self.retry_ms;
        f.retries = self.retries;
        f.sotf_current_a = self.sotf_current_a;
        f.grading_ms = self.grading_ms;
        f.jam_grading_ms = self.jam_grading_ms;
        f
    }

    /// Checks every field through the firmware's validation; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        self.protection(230.0).validate().map_err(|e| format!("{}: {}", e.field, e.reason))?;
        let mut f = self.flisr(1);
        f.upstream = Some(2);
        f.validate().map_err(|e| format!("{}: {}", e.field, e.reason))?;
        if let Some(c) = self.continuity_signal
            && !CONTINUITY_DECODE_MS.contains(&c.decode_ms)
        {
            return Err(format!(
                "continuity_signal.decode_ms: {} must be within {}..={} ms",
                c.decode_ms,
                CONTINUITY_DECODE_MS.start(),
                CONTINUITY_DECODE_MS.end()
            ));
        }
        Ok(())
    }
}

/// Everything one FLISR case needs.
#[derive(Clone, Debug)]
pub struct CaseInput {
    pub feeder: String,
    pub network: Network,
    pub placement: PlacementRule,
    pub ties: TieRule,
    pub sensor: SensorModel,
    pub contactor: ContactorModel,
    /// Fuse or breaker at the head of every outgoing feeder line.
    pub feeder_head: Option<FeederDeviceModel>,
    pub protection: ProtectionFile,
    pub link: LinkModel,
    pub fidelity: Fidelity,
    pub fault: FaultPlan,
    /// PV at every load bus as a share of that bus's load (percent).
    pub pv_pct: f64,
    pub seed: u64,
    /// How long to watch after the onset.
    pub observe: SimDuration,
}

/// The study CSV row.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct CaseRow {
    pub feeder: String,
    pub true_section: String,
    pub located_section: String,
    pub kind: String,
    pub r_ohm: f64,
    pub pv_pct: f64,
    /// `inf` when no trip happened.
    pub trip_ms: String,
    pub isolation_s: String,
    pub restore_s: String,
}

fn fmt_opt(x: Option<f64>, digits: usize) -> String {
    match x {
        Some(v) if v.is_finite() => format!("{v:.digits$}"),
        _ => "inf".into(),
    }
}

/// The result of one case.
#[derive(Clone, Debug)]
pub struct CaseResult {
    pub row: CaseRow,
    pub event: FaultEvent,
    pub digest: u64,
    pub solve_errors: Vec<String>,
    /// Events the run delivered.
    pub events: u64,
}

pub use super::build::add_ties;

/// Runs one fault case end to end: the feeder on a [`GridAgent`] with constant loads, the LMUs built by
/// [`super::build::attach`] (the same code the world builder uses) and the fault scored by
/// [`super::build::score`].
pub fn run_flisr_case(input: &CaseInput) -> Result<CaseResult, String> {
    let hw = LmuHardware {
        sensor: input.sensor.clone(),
        contactor: input.contactor.clone(),
        protection: input.protection.clone(),
        link: input.link,
        fidelity: input.fidelity,
        temperature_c: 25.0,
        feeder_head: input.feeder_head.clone(),
    };
    hw.validate()?;
    let c = Commissioning::new(&input.network, &input.placement, &input.ties)?;
    let fault = c.resolve(&input.fault)?;
    let cfg = GridConfig { rooftop_pv_pct: input.pv_pct, unbalanced: Some(true), ..GridConfig::default() };
    let (model, gens) = cfg.build_model(c.network.clone())?;
    let end = SimTime::ZERO + fault.onset + input.observe;
    // Constant loads: one profile step longer than the run.
    let step = end.as_nanos().saturating_add(1);
    let mut agent = GridAgent::new(model, gens, None, SimDuration::from_nanos(step), cfg.day_of_year);
    // The generators' interface protection, as in a world run (`world::grid`).
    agent.plan_anti_islanding(&cfg);
    let mut sim: Simulation<Msg> = Simulation::new(input.seed);
    let grid = sim.add_agent(Box::new(agent)).map_err(|e| e.to_string())?;
    let o = AttachOptions { hw: &hw, faults: &[fault], contactor_faults: &[], seed: input.seed, uplink: None };
    let built = attach(&mut sim, grid, c, &o)?;
    // A generous event budget: a case that exceeds it is reported, never left spinning.
    let budget = 200_000 + 20_000 * built.agents.len() as u64 * (1 + input.observe.as_nanos() / 1_000_000_000);
    let stats = sim.run(Stop { until: end, max_events: budget }).map_err(|e| e.to_string())?;
    if stats.delivered >= budget {
        return Err(format!("case exceeded its event budget of {budget} at {:?}", sim.now()));
    }
    let report = score(&sim, &built, end);
    let event = report.events.into_iter().next().ok_or("the case has no fault")?;
    let row = CaseRow {
        feeder: input.feeder.clone(),
        true_section: event.true_section.clone(),
        located_section: event.located_section.clone(),
        kind: event.kind.clone(),
        r_ohm: input.fault.r_ohm,
        pv_pct: input.pv_pct,
        trip_ms: fmt_opt(event.trip_ms, 1),
        isolation_s: fmt_opt(event.isolation_s, 3),
        restore_s: fmt_opt(event.restore_s, 3),
    };
    let g = sim.agent::<GridAgent>(grid).ok_or("grid agent missing")?;
    Ok(CaseResult {
        row,
        event,
        digest: sim.digest().value(),
        solve_errors: g.last_error.iter().cloned().collect(),
        events: sim.stats().delivered,
    })
}

/// All cases of the study for one feeder: every section (a fault halfway along its first line) x
/// `kinds` x `r_ohm` x `pv_pct`, in a fixed order.
pub fn study_cases(
    base: &CaseInput,
    kinds: &[FaultType],
    r_ohm: &[f64],
    pv_pct: &[f64],
) -> Result<Vec<CaseInput>, String> {
    let cm = Commissioning::new(&base.network, &base.placement, &base.ties)?;
    let mut out = Vec::new();
    for c in cm.lmus.iter().filter(|c| !c.is_tie) {
        let line = cm.network.lines[c.section_lines[0]].index;
        for &kind in kinds {
            for &r in r_ohm {
                for &pv in pv_pct {
                    let mut ci = base.clone();
                    ci.fault = FaultPlan { line, section: None, at: 0.5, kind, r_ohm: r, ..base.fault };
                    ci.pv_pct = pv;
                    out.push(ci);
                }
            }
        }
    }
    Ok(out)
}
