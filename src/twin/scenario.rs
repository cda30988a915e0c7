//! Scenario sections the LMU subsystem owns: where LMUs sit and with which hardware and settings, and the
//! faults and hardware failures to inject. Durations are strings ("250ms", "10:00" style is not accepted
//! here: use "1s", "15min") parsed with [`crate::engine::parse_duration`].

use super::contactor::ContactorFailure;
use super::link::LinkModel;
use super::placement::PlacementRule;
use super::sensor::Fidelity;
use crate::engine::{SimDuration, parse_duration};

/// What carries the LMUs' FLISR frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PeerFrames {
    /// Neighbour frames on the scenario's radio mesh (the `link` stand-in when there is no mesh).
    #[default]
    Mesh,
    /// The `link` stand-in (fixed latency, jitter and loss), even with a mesh.
    Link,
}

/// `lmus: (...)` in a scenario.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LmuSection {
    /// Sensor front-end model name (`models/<name>.ron`).
    pub model: String,
    /// The LMU's switching device (`models/<name>.ron`): a contactor (IEC 60947-4-1, switches load
    /// currents only, e.g. `contactor-lv400`) or a breaker with shunt release and motor operator
    /// (IEC 60947-2, interrupts fault currents, e.g. `lmu-breaker-lv400`).
    pub contactor: String,
    /// Protection settings name (`models/<name>.ron`, a [`crate::twin::study::ProtectionFile`]).
    pub protection: String,
    #[serde(default)]
    pub fidelity: Fidelity,
    pub at: PlacementRule,
    /// Normally-open ties at feeder ends back to the source bus, so FLISR can restore downstream parts.
    #[serde(default)]
    pub ties: TieRule,
    /// The stand-in link for FLISR frames where they do not ride the mesh (see `peer_frames`).
    #[serde(default)]
    pub link: LinkModel,
    /// What carries the LMUs' FLISR frames: the scenario's radio mesh (the default; the `link` stand-in when
    /// the scenario has no `mesh`), or always the `link` stand-in.
    #[serde(default)]
    pub peer_frames: PeerFrames,
    /// Ambient temperature of the sensor electronics (degC).
    #[serde(default = "default_temp")]
    pub temperature_c: f64,
    /// Interval of each LMU's reading to the coordinator (e.g. "15min").
    #[serde(default = "default_report_every")]
    pub report_every: String,
    /// Each LMU sends its reading this long at most after the interval boundary, at an offset of its own
    /// (drawn once from its random stream), so a feeder's LMUs do not all contend for the channel at once.
    #[serde(default = "default_report_spread")]
    pub report_spread: String,
    /// Protective device at the head of every outgoing feeder (a `FeederDeviceModel` in
    /// `models/<name>.ron`: gG fuse or breaker), coordinated at commissioning with the LMUs' switches
    /// (`faults.coordination` in the summary); `None` for none.
    #[serde(default = "default_feeder_head")]
    pub feeder_head: Option<String>,
}

fn default_feeder_head() -> Option<String> {
    Some("breaker-lv630".into())
}

fn default_temp() -> f64 {
    25.0
}

fn default_report_every() -> String {
    "15min".into()
}

fn default_report_spread() -> String {
    "10s".into()
}

/// Where normally-open ties are added.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum TieRule {
    /// No ties (downstream parts stay dark until repair).
    #[default]
    None,
    /// One tie from the far end of every leaf section back to the source bus, `length_m` long.
    LeafEnds { length_m: f64 },
}

/// Fault kinds of the study (the grid's fault states on phase A, or A and B).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum FaultType {
    ThreePhase,
    TwoPhase,
    LineToEarth,
    OpenConductor,
}

impl FaultType {
    pub const ALL: [FaultType; 4] =
        [FaultType::ThreePhase, FaultType::TwoPhase, FaultType::LineToEarth, FaultType::OpenConductor];
    pub fn label(self) -> &'static str {
        match self {
            FaultType::ThreePhase => "3ph",
            FaultType::TwoPhase => "2ph",
            FaultType::LineToEarth => "1ph-e",
            FaultType::OpenConductor => "open",
        }
    }
}

/// One entry of `faults: [...]`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub enum FaultSpec {
    /// A shunt fault or open conductor on a line (file index) at `at` (0..=1 of its length).
    Line { line: i64, at: f64, kind: FaultType, r_ohm: f64, onset: String, duration: Option<String> },
    /// The same on the first line of section `section` (the peer id of the LMU at its upstream end, 1..=the
    /// number of line LMUs as commissioned): lets a study sweep the sections of a feeder by number.
    Section { section: u16, at: f64, kind: FaultType, r_ohm: f64, onset: String, duration: Option<String> },
    /// A hardware failure of the LMU at bus `bus` (file index) from `onset`.
    Contactor { bus: i64, failure: ContactorFailure, onset: String },
}

/// A validated fault with times resolved.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaultPlan {
    /// Line (file index); resolved from `section` when that is given.
    pub line: i64,
    /// Section named in the scenario (resolved to its first line when the LMUs are commissioned).
    pub section: Option<u16>,
    pub at: f64,
    pub kind: FaultType,
    pub r_ohm: f64,
    pub onset: SimDuration,
    /// `None` for a permanent fault.
    pub duration: Option<SimDuration>,
}

impl FaultSpec {
    /// Checks the fields and resolves durations; the error names the field.
    pub fn plan(&self) -> Result<Option<FaultPlan>, String> {
        let (line, section, at, kind, r_ohm, onset, duration, what) = match self {
            FaultSpec::Line { line, at, kind, r_ohm, onset, duration } => {
                (*line, None, at, kind, r_ohm, onset, duration, format!("line {line}"))
            }
            FaultSpec::Section { section, at, kind, r_ohm, onset, duration } => {
                if *section == 0 {
                    return Err("faults: section = 0: sections are numbered from 1".into());
                }
                (-1, Some(*section), at, kind, r_ohm, onset, duration, format!("section {section}"))
            }
            FaultSpec::Contactor { onset, bus, .. } => {
                parse_duration(onset).map_err(|e| format!("faults: contactor at bus {bus}: onset: {e}"))?;
                return Ok(None);
            }
        };
        if !(at.is_finite() && (0.0..=1.0).contains(at)) {
            return Err(format!("faults: {what}: at = {at} must be within 0..=1"));
        }
        if !(r_ohm.is_finite() && (0.0..=1000.0).contains(r_ohm)) {
            return Err(format!("faults: {what}: r_ohm = {r_ohm} must be within 0..=1000"));
        }
        let onset = parse_duration(onset).map_err(|e| format!("faults: {what}: onset: {e}"))?;
        let duration = match duration {
            Some(d) => Some(parse_duration(d).map_err(|e| format!("faults: {what}: duration: {e}"))?),
            None => None,
        };
        Ok(Some(FaultPlan { line, section, at: *at, kind: *kind, r_ohm: *r_ohm, onset, duration }))
    }
}

impl LmuSection {
    pub fn validate(&self) -> Result<(), String> {
        self.link.validate().map_err(|e| format!("lmus.link.{e}"))?;
        if !(self.temperature_c.is_finite() && (-50.0..=100.0).contains(&self.temperature_c)) {
            return Err(format!("lmus.temperature_c: {} must be within -50..=100", self.temperature_c));
        }
        if let TieRule::LeafEnds { length_m } = self.ties
            && !(length_m.is_finite() && length_m > 0.0 && length_m <= 5000.0)
        {
            return Err(format!("lmus.ties.length_m: {length_m} must be within 0..=5000"));
        }
        let every = match parse_duration(&self.report_every) {
            Ok(d) if d >= SimDuration::from_secs(1) => d,
            Ok(_) => return Err("lmus.report_every: must be at least 1s".into()),
            Err(e) => return Err(format!("lmus.report_every: {e}")),
        };
        match parse_duration(&self.report_spread) {
            Ok(d) if d < every => {}
            Ok(_) => {
                return Err(format!(
                    "lmus.report_spread: {} must be shorter than report_every ({})",
                    self.report_spread, self.report_every
                ));
            }
            Err(e) => return Err(format!("lmus.report_spread: {e}")),
        }
        Ok(())
    }
}

/// `power_quality: (...)` in a scenario: the disturbances the LMUs measure beyond the power flow's fundamental
/// phasors (needs `grid` and `lmus`): the grid frequency over the run and harmonic current sources, whose
/// voltages ([`crate::grid::harmonics`]) reach every LMU's sensor, so EN 50160's frequency and THD criteria are
/// evaluated on something that can fail.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerQualitySection {
    /// Grid frequency as steps `(from, hz)`, from times after the start in increasing order (e.g.
    /// `("13h", 49.3)`); each holds until the next, and the nominal 50 Hz holds before the first.
    #[serde(default)]
    pub frequency: Vec<(String, f64)>,
    /// Harmonic current sources (EV chargers, PV inverters, heat pumps).
    #[serde(default)]
    pub harmonic_sources: Vec<HarmonicSourceSpec>,
}

/// One group of harmonic sources.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HarmonicSourceSpec {
    /// Device model name (`models/<name>.ron`, a [`crate::grid::harmonics::HarmonicModel`]).
    pub model: String,
    /// Where the devices are.
    pub at: HarmonicAt,
    /// Devices per bus (1..=1000), all running at rated current while on.
    #[serde(default = "one_device")]
    pub count: u32,
    /// When they start (after the start of the run, e.g. "17h"); from the start if absent.
    #[serde(default)]
    pub on: Option<String>,
    /// When they stop; never if absent.
    #[serde(default)]
    pub off: Option<String>,
}

fn one_device() -> u32 {
    1
}

/// Buses of a harmonic source group.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum HarmonicAt {
    /// These buses (file indices).
    Buses(Vec<i64>),
    /// Every bus with a load of the network file.
    LoadBuses,
}

/// A validated `power_quality` section: frequency steps and source groups with resolved times.
#[derive(Clone, Debug, PartialEq)]
pub struct PowerQualityPlan {
    pub frequency: Vec<(SimDuration, f64)>,
    /// Per source group: (on, off).
    pub windows: Vec<(SimDuration, Option<SimDuration>)>,
}

impl PowerQualitySection {
    /// Checks every field and resolves the times; the error names the field.
    pub fn plan(&self) -> Result<PowerQualityPlan, String> {
        let mut frequency = Vec::with_capacity(self.frequency.len());
        for (k, (at, hz)) in self.frequency.iter().enumerate() {
            let t = parse_duration(at).map_err(|e| format!("frequency[{k}]: {e}"))?;
            if !(hz.is_finite() && (40.0..=70.0).contains(hz)) {
                return Err(format!("frequency[{k}]: {hz} Hz must be within 40..=70"));
            }
            if frequency.last().is_some_and(|&(p, _)| p >= t) {
                return Err(format!("frequency[{k}]: {at} is not after the step before it"));
            }
            frequency.push((t, *hz));
        }
        let mut windows = Vec::with_capacity(self.harmonic_sources.len());
        for (k, h) in self.harmonic_sources.iter().enumerate() {
            if !(1..=1000).contains(&h.count) {
                return Err(format!("harmonic_sources[{k}].count = {} must be within 1..=1000", h.count));
            }
            if let HarmonicAt::Buses(b) = &h.at
                && b.is_empty()
            {
                return Err(format!("harmonic_sources[{k}].at: no bus given"));
            }
            let on = match &h.on {
                Some(s) => parse_duration(s).map_err(|e| format!("harmonic_sources[{k}].on: {e}"))?,
                None => SimDuration::ZERO,
            };
            let off = match &h.off {
                Some(s) => Some(parse_duration(s).map_err(|e| format!("harmonic_sources[{k}].off: {e}"))?),
                None => None,
            };
            if off.is_some_and(|off| off <= on) {
                return Err(format!("harmonic_sources[{k}].off must be after on"));
            }
            windows.push((on, off));
        }
        Ok(PowerQualityPlan { frequency, windows })
    }
}
