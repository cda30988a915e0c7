//! Protection of the LMU: IEC 60255-151 inverse-time (SI, VI, EI, LTI) and definite-time overcurrent on the
//! phases and on the residual (earth-fault) current, superimposed-quantity fault detection with direction
//! (for fault-passage flags where DER back-feeds), and open-conductor / broken-neutral detection from loss of
//! phase voltage, neutral displacement and sudden loss of a phase current.
//!
//! A broken neutral upstream shows here as a displaced star point: a large zero-sequence voltage (one phase
//! high, the others low) while the line-to-line voltages, which the transformer holds, stay near normal and
//! balanced ([`ProtectionStatus::neutral_displaced`]). Upstream of the break the same event only moves load
//! current between the phases (the part beyond the break has no neutral return): the per-phase powers change
//! but their three-phase sum does not, so it raises no forward fault flag (a shunt fault draws power of its
//! own, which shows in the three-phase sum).
//!
//! The superimposed elements compare with a pre-fault memory (the newest unfaulted measurement at least
//! 40 ms old). Forward needs the extra current to look like a load along the pre-fault voltage, a rise of
//! power (or a current far above the pre-fault one) and, where the voltage change is measurable, a voltage
//! change opposing the current change (source behind). A phase that lost both voltage and current adds no
//! superimposed current; a de-energised LMU drops its pickup and restarts its memory from the dead state;
//! [`Protection::rebaseline`] forgets the memory when a downstream device reports the fault cleared. A
//! current drop shortly after a forward pickup is the fault's clearing, not an open conductor; the
//! unbalance step must grow the negative-sequence voltage and hold still while it is timed.
//!
//! Units: amperes, volts, milliseconds in settings; time in ns. Inverse-time elements integrate
//! `1 / t(I)` over time (the IEC 60255 operate condition `integral dt / t(I) >= 1`), so they work both with
//! measurements every half cycle and with event-driven measurements that hold until the next one; the
//! element returns its operate instant as the next deadline.
// Per-phase arrays (a, b, c) read most clearly with a phase index.
#![allow(clippy::needless_range_loop)]

use crate::hal::metering::CycleMeasurement;
use crate::lmu::SettingsError;
use crate::lmu::phasor::{Phasor, sequence};
use crate::time::{Duration, Instant};

const SQRT_3: f64 = 1.732_050_807_568_877_2;

/// IEC 60255-151 characteristic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    /// Operates `delay_ms` after pickup.
    DefiniteTime,
    /// Standard inverse: k = 0.14, alpha = 0.02.
    StandardInverse,
    /// Very inverse: k = 13.5, alpha = 1.
    VeryInverse,
    /// Extremely inverse: k = 80, alpha = 2.
    ExtremelyInverse,
    /// Long-time inverse: k = 120, alpha = 1.
    LongTimeInverse,
}

impl Curve {
    fn k_alpha(self) -> (f64, f64) {
        match self {
            Curve::DefiniteTime => (0.0, 0.0),
            Curve::StandardInverse => (0.14, 0.02),
            Curve::VeryInverse => (13.5, 1.0),
            Curve::ExtremelyInverse => (80.0, 2.0),
            Curve::LongTimeInverse => (120.0, 1.0),
        }
    }

    /// Operate time in seconds at `multiple` times the pickup (infinite at or below pickup).
    pub fn operate_s(self, multiple: f64, tms: f64, delay_ms: u32) -> f64 {
        if multiple.is_nan() || multiple <= 1.0 || !multiple.is_finite() {
            return f64::INFINITY;
        }
        match self {
            Curve::DefiniteTime => delay_ms as f64 * 1e-3,
            _ => {
                let (k, alpha) = self.k_alpha();
                let d = libm::pow(multiple, alpha) - 1.0;
                if d <= 1e-12 { f64::INFINITY } else { tms * k / d }
            }
        }
    }
}

/// One overcurrent stage.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OvercurrentStage {
    pub enabled: bool,
    pub curve: Curve,
    /// Pickup current (A, primary).
    pub pickup_a: f64,
    /// Time multiplier of inverse curves.
    pub tms: f64,
    /// Delay of the definite-time curve (ms).
    pub delay_ms: u32,
}

impl OvercurrentStage {
    pub const fn disabled() -> Self {
        OvercurrentStage { enabled: false, curve: Curve::DefiniteTime, pickup_a: 1000.0, tms: 0.1, delay_ms: 100 }
    }
    fn validate(&self, field: &'static str, max_pickup_a: f64) -> Result<(), SettingsError> {
        if !self.enabled {
            return Ok(());
        }
        if !(self.pickup_a.is_finite() && self.pickup_a >= 1.0 && self.pickup_a <= max_pickup_a) {
            return Err(SettingsError::new(field, "pickup_a out of range"));
        }
        if self.curve != Curve::DefiniteTime && !(self.tms.is_finite() && (0.025..=1.5).contains(&self.tms)) {
            return Err(SettingsError::new(field, "tms must be within 0.025..=1.5"));
        }
        if self.curve == Curve::DefiniteTime && self.delay_ms > 60_000 {
            return Err(SettingsError::new(field, "delay_ms must be <= 60000"));
        }
        Ok(())
    }
}

/// Least gap between `healthy_pu` and `loss_pu` (p.u.): a phase between the two is neither lost nor healthy.
pub const HEALTHY_ABOVE_LOSS_MIN_PU: f64 = 0.05;

/// All protection settings of one LMU.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProtectionSettings {
    /// Nominal phase-to-neutral voltage (V).
    pub u_nominal_v: f64,
    /// Phase overcurrent, inverse or definite time (I>).
    pub phase: OvercurrentStage,
    /// Phase high-set, normally definite time (I>>).
    pub phase_high: OvercurrentStage,
    /// Earth fault on the residual current Ia + Ib + Ic + In (IE>).
    pub earth: OvercurrentStage,
    /// Superimposed phase current that raises a fault-passage flag (A).
    pub delta_phase_a: f64,
    /// Superimposed residual current that raises a fault-passage flag (A).
    pub delta_earth_a: f64,
    /// Extra active power drawn downstream on a phase that confirms a forward fault (W): constant-power
    /// loads behind a sagging voltage change their current but not their power, a fault draws power.
    pub delta_power_w: f64,
    /// Use direction: only forward (downstream) faults raise the forward flag.
    pub directional: bool,
    /// Angle by which forward fault current lags the pre-fault voltage (degrees, LV cables ~ 0..60).
    pub char_angle_deg: f64,
    /// Open-conductor and broken-neutral detection.
    pub open_conductor: bool,
    /// A phase below this (per unit) while another is healthy counts as lost.
    pub loss_pu: f64,
    /// A phase above this (per unit) counts as healthy.
    pub healthy_pu: f64,
    /// Neutral displacement: one phase above `1 + shift_pu` and one below `1 - shift_pu`, or a zero-sequence
    /// voltage above `shift_pu` with near-normal, balanced line-to-line voltages (a broken neutral).
    pub neutral_shift_pu: f64,
    /// How long loss of phase or a current drop must last (ms); twice this for a negative-sequence step alone
    /// or a loss of two phases with the third healthy (a phase-to-phase fault upstream sags two phases).
    pub open_conductor_delay_ms: u32,
    /// A phase current falling below this share of its pre-fault value counts as a drop.
    pub current_drop_ratio: f64,
    /// Smallest pre-drop phase current that makes a drop meaningful (A).
    pub current_drop_min_a: f64,
    /// Series-fault signature without loss of voltage (an open conductor whose downstream part is held up by
    /// back-feeding DER): a step of the negative-sequence voltage above this (per unit of `u_nominal_v`)
    /// with healthy voltages and no superimposed current here, lasting twice the open-conductor delay (shunt
    /// faults elsewhere are cleared by then). Location stays with FLISR: the upstream neighbour that sees
    /// neither the step nor fault current bounds the break.
    pub unbalance_step_pu: f64,
    /// A lost phase whose healthy phases moved by more than this against the pre-event memory (p.u. of
    /// `u_nominal_v`) is a shunt fault's sag, not a break (see [`SHUNT_SWING_PU`], the default). Commissioning
    /// raises it per LMU above the largest swing a break upstream gives that LMU (a weak line's breaks move
    /// the other phases too).
    pub sag_swing_pu: f64,
}

impl Default for ProtectionSettings {
    fn default() -> Self {
        ProtectionSettings {
            u_nominal_v: 230.0,
            phase: OvercurrentStage {
                enabled: true,
                curve: Curve::StandardInverse,
                pickup_a: 400.0,
                tms: 0.2,
                delay_ms: 0,
            },
            phase_high: OvercurrentStage::disabled(),
            earth: OvercurrentStage {
                enabled: true,
                curve: Curve::DefiniteTime,
                pickup_a: 100.0,
                tms: 0.1,
                delay_ms: 1000,
            },
            delta_phase_a: 12.0,
            delta_earth_a: 8.0,
            delta_power_w: 2000.0,
            directional: true,
            char_angle_deg: 30.0,
            open_conductor: true,
            loss_pu: 0.6,
            healthy_pu: 0.8,
            neutral_shift_pu: 0.12,
            open_conductor_delay_ms: 300,
            current_drop_ratio: 0.1,
            current_drop_min_a: 3.0,
            unbalance_step_pu: 0.01,
            sag_swing_pu: SHUNT_SWING_PU,
        }
    }
}

impl ProtectionSettings {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let in_range = |x: f64, lo: f64, hi: f64| x.is_finite() && x >= lo && x <= hi;
        if !in_range(self.u_nominal_v, 50.0, 1000.0) {
            return Err(SettingsError::new("u_nominal_v", "must be within 50..=1000 V"));
        }
        self.phase.validate("phase", 100_000.0)?;
        self.phase_high.validate("phase_high", 100_000.0)?;
        self.earth.validate("earth", 100_000.0)?;
        if !in_range(self.delta_phase_a, 0.5, 10_000.0) {
            return Err(SettingsError::new("delta_phase_a", "must be within 0.5..=10000 A"));
        }
        if !in_range(self.delta_earth_a, 0.5, 10_000.0) {
            return Err(SettingsError::new("delta_earth_a", "must be within 0.5..=10000 A"));
        }
        if !in_range(self.delta_power_w, 10.0, 1.0e7) {
            return Err(SettingsError::new("delta_power_w", "must be within 10..=1e7 W"));
        }
        if !in_range(self.char_angle_deg, -90.0, 90.0) {
            return Err(SettingsError::new("char_angle_deg", "must be within -90..=90 degrees"));
        }
        if !in_range(self.loss_pu, 0.05, 0.9) {
            return Err(SettingsError::new("loss_pu", "must be within 0.05..=0.9"));
        }
        if !in_range(self.healthy_pu, self.loss_pu + HEALTHY_ABOVE_LOSS_MIN_PU, 1.0) {
            return Err(SettingsError::new("healthy_pu", "must be within loss_pu + 0.05..=1.0"));
        }
        if !in_range(self.neutral_shift_pu, 0.03, 0.5) {
            return Err(SettingsError::new("neutral_shift_pu", "must be within 0.03..=0.5"));
        }
        if !(20..=10_000).contains(&self.open_conductor_delay_ms) {
            return Err(SettingsError::new("open_conductor_delay_ms", "must be within 20..=10000 ms"));
        }
        if !in_range(self.current_drop_ratio, 0.01, 0.5) {
            return Err(SettingsError::new("current_drop_ratio", "must be within 0.01..=0.5"));
        }
        if !in_range(self.current_drop_min_a, 0.1, 10_000.0) {
            return Err(SettingsError::new("current_drop_min_a", "must be within 0.1..=10000 A"));
        }
        if !in_range(self.unbalance_step_pu, 0.002, 0.2) {
            return Err(SettingsError::new("unbalance_step_pu", "must be within 0.002..=0.2"));
        }
        if !in_range(self.sag_swing_pu, SAG_SWING_MIN_PU, SAG_SWING_MAX_PU) {
            return Err(SettingsError::new("sag_swing_pu", "must be within 0.02..=0.5"));
        }
        Ok(())
    }
}

/// What a fault looks like from the measured phases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    ThreePhase,
    TwoPhase,
    SinglePhaseEarth,
    OpenConductor,
    /// A broken neutral upstream of the LMUs that saw the displaced star point (a series fault, like an open
    /// conductor, but with overvoltage on the lightly loaded phases instead of a lost phase).
    BrokenNeutral,
    Unknown,
}

/// Why a standalone (time-graded) element operated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TripCause {
    PhaseOvercurrent,
    PhaseHighSet,
    EarthFault,
}

/// Snapshot of the protection state.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProtectionStatus {
    /// A superimposed fault current is present (either direction).
    pub pickup: bool,
    /// ... and it flows downstream (toward the fault): the fault-passage flag.
    pub forward: bool,
    /// When the present pickup began.
    pub pickup_since: Option<Instant>,
    pub kind: Option<FaultKind>,
    /// Largest superimposed phase current of the present pickup (A).
    pub fault_current_a: f64,
    /// Apparent loop impedance to the fault (ohm), from the faulted loop's voltage and current.
    pub loop_impedance: Option<Phasor>,
    /// A standalone element operated (latched until [`Protection::reset_trip`]).
    pub trip: Option<TripCause>,
    /// Loss of a phase voltage, neutral displacement or a negative-sequence voltage step without
    /// superimposed current lasted the set delay: this LMU is downstream of an open conductor or broken
    /// neutral.
    pub loss_of_phase: bool,
    /// The present (or last) loss-of-phase condition is the negative-sequence step alone (voltages healthy).
    pub unbalance_step: bool,
    /// One phase turned with its magnitude healthy and the others still (see `VECTOR_SHIFT_MIN_DEG`): it is
    /// islanded beyond a break; counts as a lost phase.
    pub vector_shift: bool,
    /// A phase whose voltage is healthy has lost the feeder-head continuity signal (see
    /// [`Protection::set_continuity_lost`]): it is islanded beyond a break, held up by generators; counts as a
    /// lost phase.
    pub continuity_lost: bool,
    /// The star point is displaced: zero-sequence voltage above `neutral_shift_pu` with the line-to-line
    /// voltages above `healthy_pu` and within [`LL_SPREAD_MAX`] of each other (a broken neutral upstream;
    /// a shunt fault sags the faulted phases' line-to-line voltages instead).
    pub neutral_displaced: bool,
    /// All phase voltages are above `healthy_pu` and the star point is not displaced.
    pub voltage_healthy: bool,
    /// A negative-sequence voltage step of at least half `unbalance_step_pu` was seen here within the last
    /// second (a step shared with this LMU's bus did not come from a break downstream of it).
    pub unbalance_seen_here: bool,
    /// A phase current dropped to near zero (for the set delay) while voltages stayed healthy: an open
    /// conductor lies downstream.
    pub current_drop: bool,
    /// When the superimposed current of the present forward pickup last fell in one step with the voltages
    /// holding (see [`INTERRUPTION_FALL_SHARE`]): a device below interrupted the fault.
    pub interrupted_below: Option<Instant>,
    /// ... and, against the measurement after that step, no superimposed current above the dropout remains:
    /// what still holds the pickup is the load or export that the interruption took away, not a fault.
    pub explained_by_interruption: bool,
}

#[derive(Clone, Copy, Debug, Default)]
struct Timed {
    acc: f64,
    last_ns: u64,
    multiple: f64,
    dt_since: Option<u64>,
}

/// The protection state machine.
pub struct Protection {
    s: ProtectionSettings,
    history: [(u64, CycleMeasurement); 8],
    history_len: usize,
    history_pos: usize,
    memory: Option<CycleMeasurement>,
    status: ProtectionStatus,
    elements: [Timed; 3],
    loss_since: Option<u64>,
    /// Pre-event phase voltages of a loss that came with its healthy phases swung (see [`SHUNT_SWING_PU`]),
    /// kept while the swing lasts.
    swing_ref: Option<[Phasor; 3]>,
    drop_since: Option<(u64, usize, f64)>,
    /// Pre-event reference of the unbalance-step element: (U2/U1, |U1|), latched while the step lasts.
    ub_ref: Option<(Phasor, f64)>,
    /// U2/U1 when the present step was first seen: a series break is one step and then holds.
    ub_first: Option<Phasor>,
    /// Last measurement whose negative-sequence step reached half the setting.
    ub_seen_at: Option<u64>,
    /// Pre-event phase voltages of the vector-shift element, latched while the shift lasts.
    vs_ref: Option<[Phasor; 3]>,
    /// When the last vector shift ended (the phase turned back): the element waits [`QUIET_NS`] after it.
    vs_ended_at: Option<u64>,
    /// Delay of the present loss-of-phase condition (ns).
    loss_delay_ns: u64,
    /// Per phase, whether the continuity receiver misses the feeder-head signal (see
    /// [`Protection::set_continuity_lost`]).
    continuity_lost: [bool; 3],
    /// Last measurement with a pickup or an unhealthy voltage: the unbalance step is not judged for
    /// [`QUIET_NS`] after it (switching after a fault reshapes the unbalance; that is no open conductor).
    disturbed_at: Option<u64>,
    /// Last measurement with a forward pickup: a current drop soon after it is the fault being cleared
    /// downstream (the faulted part's load went with it), not an open conductor.
    forward_at: Option<u64>,
    /// Largest current the converters below this LMU can feed into a fault (A RMS, commissioning).
    der_downstream_a: f64,
    /// The previous measurement's superimposed phase currents and phase voltage magnitudes (V) while a forward
    /// pickup lasts, to see the step of an interruption below.
    sup_prev: Option<([Phasor; 3], [f64; 3])>,
    /// The measurement after the last interruption step of the present pickup (see
    /// [`ProtectionStatus::interrupted_below`]).
    step_ref: Option<CycleMeasurement>,
    last_ns: u64,
}

/// Memory depth: the pre-fault reference is at least this old, so a window straddling the onset is not used.
const MEMORY_AGE_NS: u64 = 40_000_000;
/// Quiet time after a disturbance before the unbalance-step element judges again.
const QUIET_NS: u64 = 1_000_000_000;
/// Vector shift of one phase (against the pre-event memory) that marks it as islanded: the loss-of-mains
/// relays' vector-shift element is set at 6-12 degrees; the upper end keeps load steps out.
const VECTOR_SHIFT_MIN_DEG: f64 = 10.0;
/// ... while the other two phases stay within this of their pre-event angle (a supplied phase does not turn;
/// all three turning together is a frequency change or the whole feeder's reference, not a break).
const VECTOR_SHIFT_OTHERS_MAX_DEG: f64 = 2.0;
/// A lost phase whose healthy phases moved by more than this against the pre-event memory (the change of their
/// voltage phasors, p.u. of nominal: see `Protection::healthy_swing_pu`) is a shunt fault's sag, not a break: the
/// fault current drags the healthy phases through the feeder's zero-sequence impedance, while beyond a break they
/// keep their voltage. Measured at the LMUs that lose a phase (sections 1, 3, 5 and 7 of the five feeders of the
/// FLISR studies, and Kabel 2's section 16; PV 0 and 50 %): open conductors 0.002-0.038 p.u., bolted
/// line-to-earth faults 0.001-0.44 p.u. (small only near the transformer, whose stiffness holds the healthy
/// phases, and there the reports stay as before). Such a loss waits `SWING_HOLD_NS` more before it counts, or
/// until the swing ends with a phase still lost (a single-phase fuse that cleared the fault leaves a lost phase
/// behind): the LMUs beyond a shunt fault then keep their reports, which its handling does not use, off the
/// channel that handling needs. This is the default of `ProtectionSettings::sag_swing_pu`; not among the sampled,
/// on the long Dickert overhead line (0.78-0.85 p.u. at full load), a break at 0 % PV moves the other phases by
/// more than this, so commissioning raises the threshold of each LMU above the largest swing that a break
/// upstream gives it (`twin::build::commissioned_sag_swing_pu`).
pub const SHUNT_SWING_PU: f64 = 0.08;
/// Bounds of `ProtectionSettings::sag_swing_pu` (p.u.): below the lower one, measurement noise and load steps
/// would hold real breaks back; above the upper one, no shunt fault's sag is told from a break.
pub const SAG_SWING_MIN_PU: f64 = 0.02;
pub const SAG_SWING_MAX_PU: f64 = 0.5;
/// See [`SHUNT_SWING_PU`] (ns): longer than every shunt trip of the shipped FLISR studies (at most 811 ms, next
/// to a dead radio), short enough that a break taken for a sag is still located within about a second more.
const SWING_HOLD_NS: u64 = 1_000_000_000;
/// A forward pickup's superimposed phase current that falls within one measurement by more than
/// `delta_phase_a` and by more than this share of its size, with no phase voltage falling by more than
/// `INTERRUPTION_V_FALL_PU`, is a device below interrupting the fault. The pickup may hold on after it: the
/// section beyond that device exported (PV) before the fault, and from here a lost export and a fault of the
/// same size are the same superimposed current. Without this, a graded LMU above would wait for the `Cleared`
/// of the device below over a busy channel and, when it is late, trip a healthy section.
pub const INTERRUPTION_FALL_SHARE: f64 = 1.0 / 3.0;
/// See [`INTERRUPTION_FALL_SHARE`] (p.u. of nominal): a phase gone dead or sagging further (a fuse upstream
/// clearing one phase of a fault, a fault evolving) is no interruption below.
const INTERRUPTION_V_FALL_PU: f64 = 0.05;
/// For this long after an interruption step the reference follows the measurements, so a measurement window
/// that straddled the interruption is not taken as the state after it (ns; one and a half cycles).
const INTERRUPTION_SETTLE_NS: u64 = 30_000_000;
/// A pickup drops out below this share of its thresholds (hysteresis).
const DROPOUT_SHARE: f64 = 0.7;
/// A pickup longer than this re-baselines the memory (a persistent load change is not a fault).
const MAX_PICKUP_NS: u64 = 5_000_000_000;
/// Largest spread of the three line-to-line voltages (max - min, share of their mean) that still counts as
/// balanced for a displaced neutral: the transformer holds them; a shunt fault sags two of them by far more.
pub const LL_SPREAD_MAX: f64 = 0.1;
/// Share of the superimposed apparent power (sum over the phases of |V| |dI|, and at least
/// [`ProtectionSettings::delta_power_w`]) by which the three-phase active power must rise to confirm a
/// forward fault. A fault's current is drawn by a mostly resistive loop, so the power it draws is most of
/// that (a phase-to-phase fault about 0.8 of it); load moved between the phases by a broken neutral downstream
/// raises one phase's power and lowers the others', a small share in all (below 0.2 on the Kerber feeders).
const TOTAL_POWER_SHARE: f64 = 0.5;
/// A dip below this share of nominal voltage (the lowest phase) is deep: converters ride through it feeding
/// their fault current instead of their export.
const DEEP_DIP_SHARE: f64 = 0.5;
/// Margin on the current converters and the pre-fault flow below could give before a forward fault is taken.
const CONVERTER_MARGIN: f64 = 1.5;

impl Protection {
    pub fn new(s: ProtectionSettings) -> Result<Self, SettingsError> {
        s.validate()?;
        Ok(Protection {
            s,
            history: [(0, CycleMeasurement::default()); 8],
            history_len: 0,
            history_pos: 0,
            memory: None,
            status: ProtectionStatus::default(),
            elements: [Timed::default(); 3],
            loss_since: None,
            swing_ref: None,
            drop_since: None,
            ub_ref: None,
            ub_first: None,
            ub_seen_at: None,
            vs_ref: None,
            vs_ended_at: None,
            loss_delay_ns: 0,
            continuity_lost: [false; 3],
            disturbed_at: None,
            forward_at: None,
            der_downstream_a: 0.0,
            sup_prev: None,
            step_ref: None,
            last_ns: 0,
        })
    }

    /// Sets the largest current the converters (inverters) below this LMU can feed into a fault (A RMS: the
    /// sum of their `k` x rated current, from commissioning; 0 for none, the default). Under a deep voltage
    /// dip from a fault anywhere they drop their export and feed reactive current instead (fault ride-through),
    /// a change in the current here that the superimposed direction element takes for a fault ahead; a
    /// forward fault under such a dip must draw more than they and the pre-fault current could give.
    pub fn set_downstream_converters_a(&mut self, a: f64) {
        self.der_downstream_a = if a.is_finite() { a.max(0.0) } else { 0.0 };
    }

    /// Per phase, whether the LMU's continuity receiver misses the signal that the secondary substation
    /// injects on every phase conductor (power-line signalling for loss-of-mains detection: the signal
    /// travels only along closed conductors from the source, and generators do not reproduce it). A phase
    /// that keeps a healthy voltage without the signal is islanded beyond a break, held up by generators,
    /// however well they match its load: the case no passive measurement can tell from a healthy supply. It
    /// counts as a lost phase at the next measurement (after the open-conductor delay, as any other).
    /// All false where no receiver is fitted (the default).
    pub fn set_continuity_lost(&mut self, lost: [bool; 3]) {
        self.continuity_lost = lost;
    }

    pub fn settings(&self) -> &ProtectionSettings {
        &self.s
    }
    pub fn status(&self) -> ProtectionStatus {
        self.status
    }
    /// Clears a latched standalone trip (after the contactor opened and the event was logged).
    pub fn reset_trip(&mut self) {
        self.status.trip = None;
        self.elements = [Timed::default(); 3];
    }

    /// Feeds one cycle measurement taken at `now`; it holds until the next one. Measurements with non-finite
    /// values or missing samples are ignored (the state holds), so garbage never raises or clears a flag.
    pub fn on_cycle(&mut self, now: Instant, m: &CycleMeasurement) {
        let t = now.as_nanos().max(self.last_ns);
        let finite = m.v.iter().chain(m.i.iter()).all(|p| p.is_finite())
            && m.i_n.is_finite()
            && m.v_rms.iter().chain(m.i_rms.iter()).all(|x| x.is_finite());
        if !finite || m.quality.missing > 0 {
            self.advance(t);
            return;
        }
        self.advance(t);
        self.last_ns = t;
        // De-energised here (no voltage and no current, not a close-in fault): whatever was picked up is
        // over, and the memory restarts from the dead state, so re-energisation (by a tie) is judged as a
        // switch onto a dead section, not as a superimposed current against the flows before the outage.
        let dead_v = 0.2 * self.s.u_nominal_v;
        let dead_i = 0.5 * self.s.delta_phase_a;
        if m.v.iter().all(|v| v.abs() < dead_v) && m.i.iter().all(|i| i.abs() < dead_i) {
            let was_dead = self.history_len > 0 && {
                let last = (self.history_pos + self.history.len() - 1) % self.history.len();
                self.history[last].1.v.iter().all(|v| v.abs() < dead_v)
            };
            if self.status.pickup || !was_dead {
                self.clear_pickup();
                self.clear_history();
            }
        }
        // Pre-fault memory: the newest unfaulted measurement at least MEMORY_AGE_NS old.
        if !self.status.pickup {
            self.memory = self.reference(t);
        }
        let was_forward = self.status.pickup && self.status.forward;
        self.detect_fault(t, m);
        if was_forward || (self.status.pickup && self.status.forward) {
            self.forward_at = Some(t);
        }
        if !self.status.pickup {
            self.push_history(t, m);
        } else if let Some(since) = self.status.pickup_since
            && t.saturating_sub(since.as_nanos()) > MAX_PICKUP_NS
        {
            self.clear_pickup();
            self.clear_history();
            self.push_history(t, m);
        }
        self.detect_open_conductor(t, m);
        self.update_elements(t, m);
    }

    /// Forgets the pre-fault memory and any pickup: the fault current was interrupted elsewhere and the
    /// flows that follow (lost load and DER, re-routed supply) are the new normal. Detection resumes once
    /// the new memory is `MEMORY_AGE_NS` old.
    pub fn rebaseline(&mut self) {
        if self.status.pickup {
            self.clear_pickup();
        }
        self.clear_history();
        self.memory = None;
        self.drop_since = None;
        self.status.current_drop = false;
    }

    fn reference(&self, t: u64) -> Option<CycleMeasurement> {
        let mut best: Option<(u64, CycleMeasurement)> = None;
        for k in 0..self.history_len {
            let (ht, hm) = self.history[k];
            if ht + MEMORY_AGE_NS <= t && best.is_none_or(|(bt, _)| ht > bt) {
                best = Some((ht, hm));
            }
        }
        best.map(|(_, m)| m)
    }

    /// Empties the history ring (the next entry goes to slot 0, so no stale slot is read as valid).
    fn clear_history(&mut self) {
        self.history_len = 0;
        self.history_pos = 0;
    }

    fn push_history(&mut self, t: u64, m: &CycleMeasurement) {
        self.history[self.history_pos] = (t, *m);
        self.history_pos = (self.history_pos + 1) % self.history.len();
        self.history_len = (self.history_len + 1).min(self.history.len());
    }

    fn clear_pickup(&mut self) {
        self.status.pickup = false;
        self.status.forward = false;
        self.status.pickup_since = None;
        self.status.kind = None;
        self.status.fault_current_a = 0.0;
        self.status.loop_impedance = None;
        self.status.interrupted_below = None;
        self.status.explained_by_interruption = false;
        self.sup_prev = None;
        self.step_ref = None;
    }

    fn detect_fault(&mut self, t: u64, m: &CycleMeasurement) {
        let Some(pre) = self.memory else { return };
        // A phase that lost both voltage and current here lost its supply (an open conductor upstream, or
        // an upstream device opened): its vanished load or DER current is no fault current.
        let dead_v = 0.2 * self.s.u_nominal_v;
        let dead_i = 0.5 * self.s.delta_phase_a;
        let dead = |p: usize| m.v[p].abs() < dead_v && m.i[p].abs() < dead_i;
        let d = [0, 1, 2].map(|p| if dead(p) { Phasor::ZERO } else { m.i[p] - pre.i[p] });
        let d_res = d[0] + d[1] + d[2] + (m.i_n - pre.i_n);
        let mags = d.map(|x| x.abs());
        let (mut worst, mut worst_mag) = (0usize, mags[0]);
        for (p, &mg) in mags.iter().enumerate() {
            if mg > worst_mag {
                worst = p;
                worst_mag = mg;
            }
        }
        let k = if self.status.pickup { DROPOUT_SHARE } else { 1.0 };
        let phase_pick = worst_mag > k * self.s.delta_phase_a;
        let earth_pick = d_res.abs() > k * self.s.delta_earth_a;
        let absolute = self.s.phase.enabled && m.i.iter().any(|i| i.abs() > self.s.phase.pickup_a);
        if !(phase_pick || earth_pick || absolute) {
            if self.status.pickup {
                self.clear_pickup();
                // Start a fresh memory after the fault: the post-fault state differs from the pre-fault one.
                self.clear_history();
            }
            return;
        }
        let rot = Phasor::polar(1.0, -self.s.char_angle_deg.to_radians());
        // Superimposed direction: with the source behind, the voltage change opposes the current change
        // (dV = -Z_source dI, so Re(-dV conj(dI)) > 0). Loads and DER downstream that merely follow a voltage
        // change (the healthy phases swelling under an earth fault's neutral shift) draw dI along dV: that is
        // no fault ahead. Judged only where the voltage change is measurable (1 % of nominal).
        let behind = |p: usize, di: Phasor| {
            let dv = m.v[p] - pre.v[p];
            dv.abs() < 0.01 * self.s.u_nominal_v || (-dv * di.conj()).re > 0.0
        };
        let torque = |di: Phasor, v: Phasor| (di * (v * rot).conj()).re;
        // Power confirmation: the extra active power drawn downstream, or a current far above the pre-fault one
        // (a close-in fault collapses the voltage, so its power is small).
        // Per phase: loads behind a sag draw less (or, at constant power, the same) power; a fault adds its own.
        let mut power_rise = false;
        let (mut total_rise, mut s_sup) = (0.0, 0.0);
        for p in 0..3 {
            let s_now = (m.v[p] * m.i[p].conj()).re;
            let s_pre = (pre.v[p] * pre.i[p].conj()).re;
            if s_now - s_pre > k * self.s.delta_power_w {
                power_rise = true;
            }
            total_rise += s_now - s_pre;
            s_sup += m.v[p].abs() * mags[p];
        }
        // The three-phase sum is the power really drawn downstream: a phase rising while the others fall
        // about as much is load moved between the phases (a broken neutral downstream), not a fault's power.
        let power_rise = power_rise && total_rise > TOTAL_POWER_SHARE * s_sup.max(k * self.s.delta_power_w);
        let big = worst_mag > (4.0 * pre.i[worst].abs() + self.s.delta_phase_a).max(10.0 * self.s.delta_phase_a);
        let power_ok = power_rise || big || absolute;
        // A section that was dead before (energisation by a tie or a reclosing) has no pre-fault voltage to
        // polarise with: only a current above the phase pickup counts as a fault (switch onto fault).
        let was_dead = pre.v.iter().all(|v| v.abs() < 0.2 * self.s.u_nominal_v);
        let forward = if was_dead {
            absolute
        } else if !self.s.directional {
            true
        } else if earth_pick && d_res.abs() >= 0.5 * worst_mag {
            // (A residual small beside the phase currents is the load's share under a phase-to-phase fault:
            // the phase element judges that one.)
            // Earth fault: polarise the residual with the pre-fault voltage of the phases that carry it, each
            // weighted by how much of its superimposed current lies along the residual (balanced load changes
            // cancel in the residual). One faulted phase: its own voltage. A step shared by two phases (load
            // or generation on them, as when a three-phase inverter leaves a bus with one phase islanded) has
            // its residual between their voltages: polarised with either one alone it sits 60 degrees off,
            // and the characteristic angle tips it either way.
            let (mut v_pol, mut dv_pol, mut w_sum) = (Phasor::ZERO, Phasor::ZERO, 0.0);
            for (p, dp) in d.iter().enumerate() {
                let w = (*dp * d_res.conj()).re.max(0.0);
                v_pol = v_pol + pre.v[p].scale(w);
                dv_pol = dv_pol + (m.v[p] - pre.v[p]).scale(w);
                w_sum += w;
            }
            let behind_pol =
                w_sum <= 0.0 || dv_pol.abs() < 0.01 * self.s.u_nominal_v * w_sum || (-dv_pol * d_res.conj()).re > 0.0;
            w_sum > 0.0 && torque(d_res, v_pol) > 0.0 && power_ok && behind_pol
        } else {
            torque(d[worst], pre.v[worst]) > 0.0 && power_ok && behind(worst, d[worst])
        };
        // Converters below, answering a deep dip: no fault ahead unless the current exceeds what they and the
        // pre-fault load flow could give (with a margin of half again).
        let v_min = m.v.iter().map(|v| v.abs()).fold(f64::INFINITY, f64::min);
        let pre_max = pre.i.iter().map(|i| i.abs()).fold(0.0, f64::max);
        let converters_explain = self.der_downstream_a > 0.0
            && v_min < DEEP_DIP_SHARE * self.s.u_nominal_v
            && m.i.iter().all(|i| i.abs() <= CONVERTER_MARGIN * (self.der_downstream_a + pre_max));
        let forward = forward && !converters_explain;
        let picked: usize = mags.iter().filter(|&&x| x > k * self.s.delta_phase_a).count();
        let kind = match (picked, earth_pick) {
            (3, _) => FaultKind::ThreePhase,
            (2, false) => FaultKind::TwoPhase,
            (2, true) => FaultKind::TwoPhase,
            (_, true) => FaultKind::SinglePhaseEarth,
            _ => FaultKind::Unknown,
        };
        // Apparent impedance of the faulted loop, for a distance estimate.
        let z = match kind {
            FaultKind::TwoPhase => {
                let mut ph = [0usize, 1, 2];
                ph.sort_by(|a, b| mags[*b].partial_cmp(&mags[*a]).unwrap_or(core::cmp::Ordering::Equal));
                let (a, b) = (ph[0], ph[1]);
                div(m.v[a] - m.v[b], m.i[a] - m.i[b])
            }
            _ => div(m.v[worst], m.i[worst]),
        };
        let held = self.status.pickup;
        if !self.status.pickup {
            self.status.pickup = true;
            self.status.pickup_since = Some(Instant(t));
        }
        self.watch_interruption(t, m, &d, held, forward);
        self.status.forward = forward;
        self.status.kind = Some(kind);
        self.status.fault_current_a = worst_mag.max(self.status.fault_current_a);
        self.status.loop_impedance = z;
    }

    /// Sees a device below interrupt the fault this forward pickup saw (see [`INTERRUPTION_FALL_SHARE`]) and
    /// judges what is left against the state after it. `d`: this measurement's superimposed phase currents.
    /// `held`: the pickup was on before this measurement; `forward`: this measurement looks ahead.
    fn watch_interruption(&mut self, t: u64, m: &CycleMeasurement, d: &[Phasor; 3], held: bool, forward: bool) {
        let v_mag = m.v.map(|v| v.abs());
        let old_enough = self.status.pickup_since.is_some_and(|s| t.saturating_sub(s.as_nanos()) >= MEMORY_AGE_NS);
        if !(held && forward && old_enough) {
            // Only a pickup that has lasted (the onset's own windows ramp up and down) and looks ahead.
            self.sup_prev = if forward { Some((*d, v_mag)) } else { None };
            return;
        }
        let u = self.s.u_nominal_v;
        if let Some((d_prev, v_prev)) = self.sup_prev {
            let fell = (0..3).any(|p| {
                let change = (d[p] - d_prev[p]).abs();
                d[p].abs() < d_prev[p].abs()
                    && change > self.s.delta_phase_a
                    && change > INTERRUPTION_FALL_SHARE * d_prev[p].abs()
            });
            let v_held = (0..3).all(|p| v_mag[p] >= v_prev[p] - INTERRUPTION_V_FALL_PU * u);
            let settling =
                self.status.interrupted_below.is_some_and(|s| t.saturating_sub(s.as_nanos()) <= INTERRUPTION_SETTLE_NS);
            if fell && v_held {
                self.status.interrupted_below = Some(Instant(t));
                self.step_ref = Some(*m);
            } else if settling {
                self.step_ref = Some(*m);
            }
        }
        self.sup_prev = Some((*d, v_mag));
        self.status.explained_by_interruption = match self.step_ref {
            None => false,
            Some(r) => {
                let dead_v = 0.2 * u;
                let left =
                    (0..3).map(|p| if v_mag[p] < dead_v { 0.0 } else { (m.i[p] - r.i[p]).abs() }).fold(0.0, f64::max);
                let left_res = (m.i[0] + m.i[1] + m.i[2] + m.i_n - (r.i[0] + r.i[1] + r.i[2] + r.i_n)).abs();
                left <= DROPOUT_SHARE * self.s.delta_phase_a && left_res <= DROPOUT_SHARE * self.s.delta_earth_a
            }
        };
    }

    fn detect_open_conductor(&mut self, t: u64, m: &CycleMeasurement) {
        if !self.s.open_conductor {
            return;
        }
        let u = self.s.u_nominal_v;
        let pu = m.v.map(|v| v.abs() / u);
        let max = pu.iter().cloned().fold(0.0, f64::max);
        let min = pu.iter().cloned().fold(f64::INFINITY, f64::min);
        let mid = pu[0] + pu[1] + pu[2] - max - min;
        let lost = min < self.s.loss_pu && max > self.s.healthy_pu;
        let shifted = max > 1.0 + self.s.neutral_shift_pu && min < 1.0 - self.s.neutral_shift_pu;
        let displaced = self.neutral_displaced(m);
        self.status.neutral_displaced = displaced;
        let step = self.unbalance_step(m, min);
        // One phase turned while its magnitude stayed healthy and the others held still: the phase is held up
        // by generators beyond a break (an island whose loads draw reactive power that the inverters do not
        // give keeps its magnitude but turns by their power-factor angle). Its supply is lost.
        let shifted_phase = self.vector_shift(m, min);
        self.status.vector_shift = shifted_phase;
        // A phase held up without the continuity signal is islanded as surely as one that turned, and so is one
        // that generators hold between `loss_pu` and `healthy_pu`, a band no voltage element judges (a shunt
        // fault's sag keeps the signal: its conductors still reach the source). Below `loss_pu` the phase is
        // lost on its voltage alone.
        let no_signal = (0..3).any(|p| self.continuity_lost[p] && pu[p] >= self.s.loss_pu);
        self.status.continuity_lost = no_signal;
        let jumped = shifted_phase || no_signal;
        self.status.unbalance_seen_here = self.ub_seen_at.is_some_and(|s| t < s + QUIET_NS);
        self.status.unbalance_step = step && !lost && !shifted && !displaced && !jumped;
        let delay = self.s.open_conductor_delay_ms as u64 * 1_000_000;
        // An open conductor looks like lost load from upstream (a reverse pickup): only a forward fault masks it.
        if (lost || shifted || displaced || step || jumped) && !(self.status.pickup && self.status.forward) {
            if self.loss_since.is_none() {
                self.loss_since = Some(t);
                // A shunt fault's swell on the healthy phases can look shifted; a displaced star point (its
                // line-to-line voltages kept) and an islanded phase are no shunt fault.
                let plain_loss = (lost || shifted || step) && !displaced && !jumped;
                self.swing_ref = self
                    .memory
                    .map(|pre| pre.v)
                    .filter(|pre| plain_loss && self.healthy_swing_pu(&m.v, pre) > self.s.sag_swing_pu);
            } else if let Some(pre) = self.swing_ref
                && self.healthy_swing_pu(&m.v, &pre) <= 0.5 * self.s.sag_swing_pu
            {
                // The sag's cause is gone and a phase is still lost: from here on, a lost phase.
                self.swing_ref = None;
                self.loss_since = Some(t);
            }
            let since = self.loss_since.unwrap_or(t);
            // The step alone waits twice as long: a shunt fault elsewhere is cleared (even by backup) first.
            // So does a loss on two phases with one healthy: one open conductor leaves two phases healthy,
            // while a phase-to-phase fault upstream sags both faulted phases here until it is cleared.
            let one_phase = lost && mid > self.s.healthy_pu;
            let base = if one_phase || shifted || displaced || jumped { delay } else { 2 * delay };
            // Two phases lost is a phase-to-phase (or three-phase) fault's sag far more often than two broken
            // conductors, and such a sag shows no swing on the healthy phase to hold it by (no zero-sequence
            // current): it waits out the same hold, so the LMUs beside a graded fault, which all see it, keep
            // their reports off the channel while the fault's own queries and answers need it.
            let two_phases = lost && mid <= self.s.healthy_pu;
            self.loss_delay_ns = if self.swing_ref.is_some() || two_phases { base + SWING_HOLD_NS } else { base };
            self.status.loss_of_phase = t.saturating_sub(since) >= self.loss_delay_ns;
        } else {
            self.loss_since = None;
            self.swing_ref = None;
            self.status.loss_of_phase = false;
        }
        // Sudden loss of one phase current with healthy voltages (open conductor further downstream). A
        // displaced star point is no healthy supply (a phase may be far above nominal).
        let healthy_v = min > self.s.healthy_pu && !displaced && !jumped;
        self.status.voltage_healthy = healthy_v;
        match self.drop_since {
            Some((since, p, pre_a)) => {
                if healthy_v && m.i[p].abs() < self.s.current_drop_ratio * pre_a {
                    self.status.current_drop = t.saturating_sub(since) >= delay;
                } else {
                    self.drop_since = None;
                    self.status.current_drop = false;
                }
            }
            None => {
                // Fault current passed here lately: the drop is its clearing by a downstream device.
                let after_fault = self.forward_at.is_some_and(|f| t < f + QUIET_NS);
                if let (Some(pre), true, false) = (self.memory, healthy_v, after_fault) {
                    for p in 0..3 {
                        let pre_a = pre.i[p].abs();
                        let others_kept = (0..3).filter(|&q| q != p).all(|q| {
                            m.i[q].abs() >= 0.5 * pre.i[q].abs() || pre.i[q].abs() < self.s.current_drop_min_a
                        });
                        if pre_a >= self.s.current_drop_min_a
                            && m.i[p].abs() < self.s.current_drop_ratio * pre_a
                            && others_kept
                        {
                            self.drop_since = Some((t, p, pre_a));
                            break;
                        }
                    }
                }
            }
        }
    }

    /// How far the phases that should have kept their voltage moved against `pre` (p.u. of nominal): the
    /// largest change of a phase phasor among those healthy now, leaving out the one that moved most when all
    /// three are healthy (an unbalance step moves one phase beyond a break). 0 with none left.
    fn healthy_swing_pu(&self, v: &[Phasor; 3], pre: &[Phasor; 3]) -> f64 {
        let u = self.s.u_nominal_v;
        let mut d = [0.0f64; 3];
        let mut n = 0;
        for (&now, &before) in v.iter().zip(pre) {
            if now.abs() / u > self.s.healthy_pu {
                d[n] = (now - before).abs() / u;
                n += 1;
            }
        }
        let d = &mut d[..n];
        d.sort_by(f64::total_cmp);
        match n {
            3 => d[1],
            0 => 0.0,
            _ => d[n - 1],
        }
    }

    /// Whether the star point is displaced (see [`ProtectionStatus::neutral_displaced`]).
    fn neutral_displaced(&self, m: &CycleMeasurement) -> bool {
        let u = self.s.u_nominal_v;
        let u0 = sequence(&m.v)[0].abs() / u;
        let ll = [0, 1, 2].map(|p| (m.v[p] - m.v[(p + 1) % 3]).abs() / (SQRT_3 * u));
        let ll_max = ll.iter().cloned().fold(0.0, f64::max);
        let ll_min = ll.iter().cloned().fold(f64::INFINITY, f64::min);
        let ll_mean = (ll[0] + ll[1] + ll[2]) / 3.0;
        u0.is_finite()
            && u0 > self.s.neutral_shift_pu
            && ll_min > self.s.healthy_pu
            && ll_max - ll_min <= LL_SPREAD_MAX * ll_mean
    }

    /// The negative-sequence voltage step of a series fault (see [`ProtectionSettings::unbalance_step_pu`]),
    /// against the pre-event memory, latched while it lasts. Needs healthy voltages now and before, and no
    /// superimposed current: a dip or a dead interval re-baselines it.
    /// The vector-shift element: exactly one phase turned by [`VECTOR_SHIFT_MIN_DEG`] or more against the
    /// pre-event memory, the others within [`VECTOR_SHIFT_OTHERS_MAX_DEG`], every magnitude healthy, not in the
    /// quiet time after a forward pickup; latched while it lasts.
    fn vector_shift(&mut self, m: &CycleMeasurement, min_pu: f64) -> bool {
        let u = self.s.u_nominal_v;
        // Not within the quiet time after a forward pickup (a fault ahead and its clearing turn phases). A
        // pickup that is not forward does not hold it off: the island's own currents rearrange at the break.
        // Nor within it after a shift that ended: a phase that turned and turned back was a passing disturbance
        // (a shunt fault on another branch turns the faulted phase here too, and its clearing turns it back),
        // and the memory is then still of the disturbed state, against which the return reads as a new shift.
        let quiet = self.forward_at.is_none_or(|f| self.last_ns >= f + QUIET_NS)
            && self.vs_ended_at.is_none_or(|e| self.last_ns >= e + QUIET_NS);
        if !(min_pu > self.s.healthy_pu && quiet) {
            if self.vs_ref.take().is_some() {
                self.vs_ended_at = Some(self.last_ns);
            }
            return false;
        }
        let reference = self
            .vs_ref
            .or_else(|| self.memory.map(|pre| pre.v).filter(|v| v.iter().all(|x| x.abs() / u > self.s.healthy_pu)));
        let Some(r) = reference else { return false };
        let turn_deg = |p: usize| libm::fabs((m.v[p] * r[p].conj()).arg()).to_degrees();
        let turned = (0..3).filter(|&p| turn_deg(p) >= VECTOR_SHIFT_MIN_DEG).count();
        let still = (0..3).filter(|&p| turn_deg(p) <= VECTOR_SHIFT_OTHERS_MAX_DEG).count();
        let jumped = turned == 1 && still == 2;
        if !jumped && self.vs_ref.is_some() {
            self.vs_ended_at = Some(self.last_ns);
        }
        self.vs_ref = if jumped { Some(r) } else { None };
        jumped
    }

    fn unbalance_step(&mut self, m: &CycleMeasurement, min_pu: f64) -> bool {
        let u = self.s.u_nominal_v;
        let ratio_of = |v: &[Phasor; 3]| -> Option<(Phasor, f64)> {
            let s = sequence(v);
            let u1 = s[1].abs();
            if u1 < 0.5 * u || !u1.is_finite() {
                return None;
            }
            div(s[2], s[1]).map(|r| (r, u1))
        };
        let healthy = min_pu > self.s.healthy_pu;
        if !healthy || self.status.pickup {
            self.disturbed_at = Some(self.last_ns);
        }
        let quiet = self.disturbed_at.is_none_or(|d| self.last_ns >= d + QUIET_NS);
        let now = if quiet { ratio_of(&m.v) } else { None };
        let Some((r_now, u1_now)) = now else {
            self.ub_ref = None;
            self.ub_first = None;
            return false;
        };
        let reference = match self.ub_ref {
            Some(r) => Some(r),
            None => self.memory.and_then(|pre| {
                let pre_min = pre.v.iter().map(|v| v.abs() / u).fold(f64::INFINITY, f64::min);
                if pre_min > self.s.healthy_pu { ratio_of(&pre.v) } else { None }
            }),
        };
        let Some((r_pre, u1_pre)) = reference else { return false };
        let d2 = (r_now - r_pre).abs() * u1_now;
        if d2 > 0.5 * self.s.unbalance_step_pu * u {
            self.ub_seen_at = Some(self.last_ns);
        }
        // A series break adds negative-sequence voltage; a feeder that got more balanced (load switched away
        // elsewhere) shows a step too, but downward.
        let step = d2 > self.s.unbalance_step_pu * u && r_now.abs() > r_pre.abs();
        // The unbalance moved again while the step lasted (a fault's onset, then its clearing elsewhere):
        // a sequence of switching, not a break; judge again after the quiet time.
        let moved =
            step && self.ub_first.is_some_and(|f| (r_now - f).abs() * u1_now > 0.5 * self.s.unbalance_step_pu * u);
        if moved {
            self.disturbed_at = Some(self.last_ns);
            self.ub_ref = None;
            self.ub_first = None;
            return false;
        }
        self.ub_ref = if step { Some((r_pre, u1_pre)) } else { None };
        self.ub_first = if step { Some(self.ub_first.unwrap_or(r_now)) } else { None };
        step
    }

    fn update_elements(&mut self, t: u64, m: &CycleMeasurement) {
        let i_max = m.i.iter().map(|p| p.abs()).fold(0.0, f64::max);
        let i_res = (m.i[0] + m.i[1] + m.i[2] + m.i_n).abs();
        let stages = [self.s.phase, self.s.phase_high, self.s.earth];
        let current = [i_max, i_max, i_res];
        for k in 0..3 {
            let st = stages[k];
            let e = &mut self.elements[k];
            e.last_ns = t;
            if !st.enabled {
                continue;
            }
            e.multiple = current[k] / st.pickup_a;
            if e.multiple > 1.0 {
                e.dt_since.get_or_insert(t);
            } else {
                // Instantaneous reset below pickup.
                e.acc = 0.0;
                e.dt_since = None;
            }
        }
        self.check_trip(t);
    }

    fn advance(&mut self, t: u64) {
        let stages = [self.s.phase, self.s.phase_high, self.s.earth];
        for k in 0..3 {
            let st = stages[k];
            let e = &mut self.elements[k];
            if st.enabled && st.curve != Curve::DefiniteTime && e.multiple > 1.0 && t > e.last_ns {
                let op = st.curve.operate_s(e.multiple, st.tms, st.delay_ms);
                if op.is_finite() && op > 0.0 {
                    e.acc += (t - e.last_ns) as f64 * 1e-9 / op;
                }
            }
            e.last_ns = e.last_ns.max(t);
        }
        self.check_trip(t);
    }

    fn check_trip(&mut self, t: u64) {
        if self.status.trip.is_some() {
            return;
        }
        let stages = [self.s.phase, self.s.phase_high, self.s.earth];
        let causes = [TripCause::PhaseOvercurrent, TripCause::PhaseHighSet, TripCause::EarthFault];
        for k in 0..3 {
            let (st, e) = (stages[k], &self.elements[k]);
            if !st.enabled || e.multiple <= 1.0 {
                continue;
            }
            let operated = match (st.curve, e.dt_since) {
                (Curve::DefiniteTime, Some(since)) => t.saturating_sub(since) >= st.delay_ms as u64 * 1_000_000,
                (Curve::DefiniteTime, None) => false,
                _ => e.acc >= 1.0 - 1e-9,
            };
            if operated {
                self.status.trip = Some(causes[k]);
                return;
            }
        }
    }

    /// Advances timed elements to `now`; returns the next instant at which something may operate.
    pub fn poll(&mut self, now: Instant) -> Option<Instant> {
        let t = now.as_nanos().max(self.last_ns);
        self.advance(t);
        if self.status.trip.is_some() {
            return None;
        }
        let mut next: Option<u64> = None;
        let mut take = |x: u64| next = Some(next.map_or(x, |n: u64| n.min(x)));
        let stages = [self.s.phase, self.s.phase_high, self.s.earth];
        for k in 0..3 {
            let (st, e) = (stages[k], &self.elements[k]);
            if !st.enabled || e.multiple <= 1.0 {
                continue;
            }
            match (st.curve, e.dt_since) {
                (Curve::DefiniteTime, Some(since)) => take(since.saturating_add(st.delay_ms as u64 * 1_000_000)),
                (Curve::DefiniteTime, None) => {}
                _ => {
                    let op = st.curve.operate_s(e.multiple, st.tms, st.delay_ms);
                    if op.is_finite() {
                        let left_ns = libm::ceil((1.0 - e.acc).max(0.0) * op * 1e9) as u64 + 1;
                        take(t.saturating_add(left_ns.max(1)));
                    }
                }
            }
        }
        let delay = self.s.open_conductor_delay_ms as u64 * 1_000_000;
        if let (Some(since), false) = (self.loss_since, self.status.loss_of_phase) {
            take(since.saturating_add(self.loss_delay_ns.max(delay)));
        }
        if let (Some((since, _, _)), false) = (self.drop_since, self.status.current_drop) {
            take(since.saturating_add(delay));
        }
        next.filter(|&n| n > t).map(Instant)
    }

    /// Re-evaluates the delayed open-conductor conditions at `now` without a new measurement (event-driven
    /// fidelity: the last measurement still holds).
    pub fn tick(&mut self, now: Instant) {
        let t = now.as_nanos();
        let delay = self.s.open_conductor_delay_ms as u64 * 1_000_000;
        if let Some(since) = self.loss_since {
            self.status.loss_of_phase = t.saturating_sub(since) >= self.loss_delay_ns.max(delay);
        }
        if let Some((since, _, _)) = self.drop_since {
            self.status.current_drop = t.saturating_sub(since) >= delay;
        }
        self.advance(t.max(self.last_ns));
    }
}

fn div(a: Phasor, b: Phasor) -> Option<Phasor> {
    let d = b.norm_sqr();
    if d > 1e-12 && d.is_finite() {
        let z = a * b.conj();
        Some(Phasor::new(z.re / d, z.im / d))
    } else {
        None
    }
}

/// Operate time of `curve` at `current_a` for a stage (for tests and coordination studies).
pub fn operate_time(stage: &OvercurrentStage, current_a: f64) -> Option<Duration> {
    let s = stage.curve.operate_s(current_a / stage.pickup_a, stage.tms, stage.delay_ms);
    if s.is_finite() { Some(Duration((s * 1e9) as u64)) } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meas(v: f64, i: [f64; 3]) -> CycleMeasurement {
        let a = 2.0 * core::f64::consts::PI / 3.0;
        let ang = [0.0, -a, a];
        let mut m = CycleMeasurement::default();
        for p in 0..3 {
            m.v[p] = Phasor::polar(v, ang[p]);
            m.i[p] = Phasor::polar(i[p], ang[p] - 0.2);
            m.v_rms[p] = v;
            m.i_rms[p] = i[p];
        }
        m
    }

    #[test]
    fn cleared_fault_rebaselines_and_the_new_flows_raise_nothing() {
        let mut p = Protection::new(ProtectionSettings::default()).unwrap();
        for k in 0..4 {
            p.on_cycle(Instant(k * 20_000_000), &meas(230.0, [20.0; 3]));
        }
        let mut f = meas(180.0, [20.0; 3]);
        f.i[0] = f.i[0] + Phasor::polar(300.0, -0.3);
        p.on_cycle(Instant(100_000_000), &f);
        assert!(p.status().pickup && p.status().forward);
        // Cleared downstream: lost load changes the flows for good; after the re-baseline that is normal.
        p.rebaseline();
        assert!(!p.status().pickup);
        for k in 0..20 {
            p.on_cycle(Instant(120_000_000 + k * 20_000_000), &meas(230.0, [5.0, 20.0, 20.0]));
            let s = p.status();
            assert!(!s.pickup && !s.current_drop, "cycle {k}: {s:?}");
        }
    }

    /// An LMU above a section that exports 12 A per phase (PV beyond a device below it), a 24 A resistive
    /// three-phase fault beyond that device, and then the measurement `after` from 120 ms on.
    fn export_fault_then(after: CycleMeasurement) -> Protection {
        let mut p = Protection::new(ProtectionSettings::default()).unwrap();
        for k in 0..4 {
            p.on_cycle(Instant(k * 20_000_000), &meas(230.0, [-12.0; 3]));
        }
        let mut f = meas(228.0, [-12.0; 3]);
        for (q, ang) in [0.0, -2.0 * core::f64::consts::PI / 3.0, 2.0 * core::f64::consts::PI / 3.0].iter().enumerate()
        {
            f.i[q] = f.i[q] + Phasor::polar(24.0, *ang);
        }
        p.on_cycle(Instant(80_000_000), &f);
        p.on_cycle(Instant(100_000_000), &f);
        assert!(p.status().pickup && p.status().forward && p.status().interrupted_below.is_none());
        for k in 0..5 {
            p.on_cycle(Instant(120_000_000 + k * 20_000_000), &after);
        }
        p
    }

    #[test]
    fn an_interruption_below_that_leaves_a_lost_export_behind_is_told_from_a_fault_that_persists() {
        // The device below opens: its section's export is gone with the fault. Against the pre-fault memory
        // that is still 12 A ahead (the pickup holds), but against the state after the step nothing is left.
        let p = export_fault_then(meas(229.0, [0.0; 3]));
        let s = p.status();
        assert!(s.pickup && s.forward, "{s:?}");
        assert_eq!(s.interrupted_below, Some(Instant(120_000_000)), "{s:?}");
        assert!(s.explained_by_interruption, "{s:?}");
        // The fault persists: no step, nothing explained.
        let mut f = meas(228.0, [-12.0; 3]);
        for (q, ang) in [0.0, -2.0 * core::f64::consts::PI / 3.0, 2.0 * core::f64::consts::PI / 3.0].iter().enumerate()
        {
            f.i[q] = f.i[q] + Phasor::polar(24.0, *ang);
        }
        let s = export_fault_then(f).status();
        assert!(s.pickup && s.forward && s.interrupted_below.is_none() && !s.explained_by_interruption, "{s:?}");
        // A phase gone dead at the step (a fuse upstream clearing it) is no interruption below.
        let mut dead = meas(229.0, [0.0; 3]);
        dead.v[0] = Phasor::ZERO;
        let s = export_fault_then(dead).status();
        assert!(s.interrupted_below.is_none() && !s.explained_by_interruption, "{s:?}");
    }

    #[test]
    fn a_dead_phase_adds_no_superimposed_current_and_a_dead_lmu_restarts_its_memory() {
        let mut p = Protection::new(ProtectionSettings::default()).unwrap();
        for k in 0..4 {
            p.on_cycle(Instant(k * 20_000_000), &meas(230.0, [20.0; 3]));
        }
        // Phase a lost supply upstream (no voltage, no current): no fault ahead.
        let mut m = meas(230.0, [0.0, 20.0, 20.0]);
        m.v[0] = Phasor::ZERO;
        p.on_cycle(Instant(100_000_000), &m);
        assert!(!(p.status().pickup && p.status().forward), "{:?}", p.status());
        // All dead, then re-energised with the old load: a switch onto a dead section, not a forward fault.
        let mut q = Protection::new(ProtectionSettings::default()).unwrap();
        for k in 0..4 {
            q.on_cycle(Instant(k * 20_000_000), &meas(230.0, [20.0; 3]));
        }
        for k in 0..4 {
            q.on_cycle(Instant(100_000_000 + k * 20_000_000), &meas(0.0, [0.0; 3]));
        }
        assert!(!q.status().pickup);
        q.on_cycle(Instant(300_000_000), &meas(230.0, [60.0; 3]));
        assert!(!(q.status().pickup && q.status().forward), "{:?}", q.status());
    }

    /// Phase-to-neutral voltages of a balanced 230 V set whose star point moved by `shift` (V).
    fn displaced(shift: Phasor) -> CycleMeasurement {
        let mut m = meas(230.0, [20.0; 3]);
        for p in 0..3 {
            m.v[p] = m.v[p] - shift;
            m.v_rms[p] = m.v[p].abs();
        }
        m
    }

    /// A phase held up beyond a break by inverters that give no reactive power turns by the loads' power-factor
    /// angle with its magnitude nearly kept: a lost phase after the open-conductor delay, and no current drop
    /// of its own to locate on. Three phases turning together (the reference or the frequency moved) and a
    /// small turn of one phase are nothing.
    #[test]
    fn one_phase_turned_with_its_magnitude_healthy_is_islanded() {
        let run = |turn_deg: [f64; 3], mag: f64| {
            let mut p = Protection::new(ProtectionSettings::default()).unwrap();
            for k in 0..4 {
                p.on_cycle(Instant(k * 20_000_000), &meas(230.0, [20.0; 3]));
            }
            let mut m = meas(230.0, [20.0; 3]);
            m.i[0] = Phasor::polar(1.0, 0.0);
            for (ph, d) in turn_deg.iter().enumerate() {
                let v = m.v[ph] * Phasor::polar(1.0, d.to_radians());
                m.v[ph] = if ph == 0 { v.scale(mag) } else { v };
            }
            for k in 0..20 {
                p.on_cycle(Instant(100_000_000 + k * 20_000_000), &m);
            }
            p.status()
        };
        let s = run([18.0, 0.0, 0.0], 0.95);
        assert!(s.vector_shift && s.loss_of_phase && !s.voltage_healthy && !s.current_drop, "{s:?}");
        assert!(!s.unbalance_step, "{s:?}");
        let s = run([-12.0, 0.0, 0.0], 1.0);
        assert!(s.vector_shift && s.loss_of_phase, "{s:?}");
        let s = run([18.0, 18.0, 18.0], 1.0);
        assert!(!s.vector_shift, "{s:?}");
        let s = run([5.0, 0.0, 0.0], 1.0);
        assert!(!s.vector_shift, "{s:?}");
    }

    /// A phase held up beyond a break by generators that match its load exactly: no measured value moves, so
    /// only the missing continuity signal tells. It counts as a lost phase after the open-conductor delay (not
    /// before), is no healthy supply, and ends with the signal. A phase without the signal whose voltage is
    /// gone is the plain lost phase it always was; with no receiver (the flags never set), nothing happens.
    #[test]
    fn a_phase_with_healthy_voltage_but_no_continuity_signal_is_islanded() {
        let s = ProtectionSettings::default();
        let delay_ns = s.open_conductor_delay_ms as u64 * 1_000_000;
        let mut p = Protection::new(s).unwrap();
        let m = meas(230.0, [20.0; 3]);
        let mut t = 0;
        for _ in 0..10 {
            p.on_cycle(Instant(t), &m);
            t += 20_000_000;
        }
        assert!(p.status().voltage_healthy && !p.status().loss_of_phase);
        p.set_continuity_lost([false, true, false]);
        let lost_at = t;
        p.on_cycle(Instant(t), &m);
        assert!(p.status().continuity_lost && !p.status().voltage_healthy, "{:?}", p.status());
        assert!(!p.status().loss_of_phase, "not before the open-conductor delay");
        p.tick(Instant(lost_at + delay_ns - 1));
        assert!(!p.status().loss_of_phase);
        // Nothing else arrives (the state does not change): the delay runs out on the clock alone.
        p.tick(Instant(lost_at + delay_ns));
        assert!(p.status().loss_of_phase && !p.status().current_drop, "{:?}", p.status());
        // Found again: the phase is supplied.
        p.set_continuity_lost([false; 3]);
        p.on_cycle(Instant(lost_at + delay_ns + 20_000_000), &m);
        assert!(!p.status().continuity_lost && !p.status().loss_of_phase && p.status().voltage_healthy);
        // Held by generators at 0.7 p.u., between `loss_pu` and `healthy_pu`, where no voltage element judges:
        // without the signal it is islanded; with it (a shunt fault's sag) it is nothing of the kind.
        let mut band = m;
        band.v[1] = band.v[1].scale(0.7);
        let mut r = Protection::new(ProtectionSettings::default()).unwrap();
        for k in 0..10 {
            r.on_cycle(Instant(k * 20_000_000), &m);
        }
        r.on_cycle(Instant(200_000_000), &band);
        assert!(!r.status().continuity_lost, "{:?}", r.status());
        r.set_continuity_lost([false, true, false]);
        r.on_cycle(Instant(220_000_000), &band);
        assert!(r.status().continuity_lost, "{:?}", r.status());
        // A dead phase without the signal: lost on its voltage, the flag adds nothing.
        let mut dead = m;
        dead.v[1] = Phasor::ZERO;
        dead.i[1] = Phasor::ZERO;
        p.set_continuity_lost([false, true, false]);
        p.on_cycle(Instant(lost_at + 2 * delay_ns), &dead);
        assert!(!p.status().continuity_lost, "{:?}", p.status());
        // No receiver: the same healthy measurements never count as a loss.
        let mut q = Protection::new(ProtectionSettings::default()).unwrap();
        for k in 0..40 {
            q.on_cycle(Instant(k * 20_000_000), &m);
        }
        assert!(!q.status().loss_of_phase && !q.status().continuity_lost);
    }

    /// A shunt fault on another branch turns and sags the faulted phase here, and its clearing turns it back:
    /// the memory taken during the sag must not make the return read as a second shift (it once located a
    /// break in a healthy section on the long Dickert cable). A shift that ended holds the element off for
    /// `QUIET_NS`; after that, a real one counts again.
    #[test]
    fn a_phase_that_turned_and_turned_back_is_no_island() {
        let mut p = Protection::new(ProtectionSettings { healthy_pu: 0.7, ..ProtectionSettings::default() }).unwrap();
        let base = meas(230.0, [20.0; 3]);
        for k in 0..4 {
            p.on_cycle(Instant(k * 20_000_000), &base);
        }
        let turned = |deg: f64, mag: f64| {
            let mut m = base;
            m.v[0] = m.v[0].scale(mag) * Phasor::polar(1.0, deg.to_radians());
            m
        };
        // The fault: phase a sagged to 0.83 and turned by 12 degrees, held for 140 ms (memory follows it).
        let mut t = 100_000_000;
        for _ in 0..8 {
            p.on_cycle(Instant(t), &turned(-12.0, 0.83));
            t += 20_000_000;
        }
        // Cleared: back to the pre-fault phasor, for longer than the memory's age.
        for _ in 0..10 {
            p.on_cycle(Instant(t), &base);
            assert!(!p.status().vector_shift, "the return is no shift at {t} ns: {:?}", p.status());
            t += 20_000_000;
        }
        // A second and real island after the quiet time is seen again.
        t += QUIET_NS;
        for _ in 0..4 {
            p.on_cycle(Instant(t), &base);
            t += 20_000_000;
        }
        p.on_cycle(Instant(t), &turned(18.0, 0.97));
        assert!(p.status().vector_shift, "{:?}", p.status());
    }

    /// A phase lost with the others kept is a break beyond this LMU and counts after the open-conductor delay;
    /// lost while the others swung (a shunt fault elsewhere drags them) it waits until the swing ends, or at
    /// most `SWING_HOLD_NS`; a phase still lost once the swing is over (a single-phase fuse cleared the fault)
    /// counts from then.
    #[test]
    fn a_phase_lost_while_the_others_swung_is_a_shunt_faults_sag_and_waits_for_it_to_end() {
        let delay = ProtectionSettings::default().open_conductor_delay_ms as u64 * 1_000_000;
        let start = || {
            let mut p = Protection::new(ProtectionSettings::default()).unwrap();
            for k in 0..4 {
                p.on_cycle(Instant(k * 20_000_000), &meas(230.0, [20.0; 3]));
            }
            p
        };
        let lost = |swing: Phasor| {
            let mut m = meas(230.0, [20.0; 3]);
            m.v[0] = m.v[0].scale(0.05);
            m.i[0] = m.i[0].scale(0.05);
            m.v[1] = m.v[1] * swing;
            m.v[2] = m.v[2] * swing;
            m
        };
        let t0 = 100_000_000;
        // Beyond a break: the healthy phases keep their voltage.
        let mut p = start();
        p.on_cycle(Instant(t0), &lost(Phasor::polar(1.01, 0.01)));
        p.tick(Instant(t0 + delay));
        assert!(p.status().loss_of_phase, "{:?}", p.status());
        // Beside a shunt fault: the others swing by 0.2 p.u. (10 % up, 10 degrees).
        let mut p = start();
        p.on_cycle(Instant(t0), &lost(Phasor::polar(1.1, 10f64.to_radians())));
        p.tick(Instant(t0 + delay));
        assert!(!p.status().loss_of_phase, "{:?}", p.status());
        p.tick(Instant(t0 + delay + SWING_HOLD_NS));
        assert!(p.status().loss_of_phase, "held at most SWING_HOLD_NS");
        // The fault cleared with the phase still lost: counts from the end of the swing.
        let mut p = start();
        p.on_cycle(Instant(t0), &lost(Phasor::polar(1.1, 10f64.to_radians())));
        let t1 = t0 + 200_000_000;
        p.on_cycle(Instant(t1), &lost(Phasor::polar(1.0, 0.0)));
        p.tick(Instant(t1 + delay - 1));
        assert!(!p.status().loss_of_phase);
        p.tick(Instant(t1 + delay));
        assert!(p.status().loss_of_phase, "{:?}", p.status());
    }

    #[test]
    fn a_displaced_star_point_is_a_broken_neutral_and_a_sagged_phase_is_not() {
        let mut p = Protection::new(ProtectionSettings::default()).unwrap();
        p.on_cycle(Instant(0), &meas(230.0, [20.0; 3]));
        // The star point moved 0.5 p.u. towards phase c's opposite: a and b high and low, line-to-line intact.
        let m = displaced(Phasor::polar(115.0, 1.0));
        p.on_cycle(Instant(100_000_000), &m);
        let s = p.status();
        assert!(s.neutral_displaced && !s.voltage_healthy && !s.loss_of_phase, "{s:?}");
        p.tick(Instant(400_000_000));
        assert!(p.status().loss_of_phase && p.status().neutral_displaced);
        // A small shift (unbalanced load on an intact neutral) is normal.
        let mut q = Protection::new(ProtectionSettings::default()).unwrap();
        q.on_cycle(Instant(0), &displaced(Phasor::polar(15.0, 0.3)));
        assert!(!q.status().neutral_displaced && q.status().voltage_healthy);
        // An earth fault sags one phase (zero-sequence voltage too) but also two line-to-line voltages.
        let mut r = Protection::new(ProtectionSettings::default()).unwrap();
        let mut sag = meas(230.0, [20.0; 3]);
        sag.v[0] = Phasor::polar(0.6 * 230.0, 0.0);
        r.on_cycle(Instant(0), &sag);
        assert!(!r.status().neutral_displaced);
    }

    #[test]
    fn load_moved_between_the_phases_raises_no_forward_flag_but_a_fault_of_that_size_does() {
        // Upstream of a broken neutral: the part beyond has no neutral return, its load current moves between
        // the phases (per-phase power up on one phase, down on the others, about the same in sum).
        let pre = |p: &mut Protection| {
            for k in 0..4 {
                p.on_cycle(Instant(k * 20_000_000), &meas(230.0, [54.0, 29.0, 54.0]));
            }
        };
        let mut p = Protection::new(ProtectionSettings::default()).unwrap();
        pre(&mut p);
        // Phase a's current turns onto its voltage (+2.5 kW), c's away from it (-3 kW), b's falls (-2 kW).
        let mut m = meas(230.0, [54.0, 29.0, 54.0]);
        m.i[0] = Phasor::polar(64.0, 0.0);
        m.i[1] = Phasor::polar(20.0, -2.094_395_102 - 0.2);
        m.i[2] = Phasor::polar(64.0, 2.094_395_102 - 0.9);
        p.on_cycle(Instant(100_000_000), &m);
        assert!(!(p.status().pickup && p.status().forward), "{:?}", p.status());
        // A resistive fault of 30 A on phase a draws its power: forward.
        let mut q = Protection::new(ProtectionSettings::default()).unwrap();
        pre(&mut q);
        let mut f = meas(228.0, [54.0, 29.0, 54.0]);
        f.i[0] = f.i[0] + Phasor::polar(30.0, 0.0);
        q.on_cycle(Instant(100_000_000), &f);
        assert!(q.status().pickup && q.status().forward, "{:?}", q.status());
    }

    #[test]
    fn iec_curves_match_the_standard_formula() {
        // SI at 10x, TMS 1: 0.14 / (10^0.02 - 1) = 2.97 s.
        assert!((Curve::StandardInverse.operate_s(10.0, 1.0, 0) - 2.971).abs() < 0.001);
        assert!((Curve::VeryInverse.operate_s(10.0, 1.0, 0) - 1.5).abs() < 1e-9);
        assert!((Curve::ExtremelyInverse.operate_s(10.0, 1.0, 0) - 80.0 / 99.0).abs() < 1e-9);
        assert!((Curve::LongTimeInverse.operate_s(10.0, 1.0, 0) - 120.0 / 9.0).abs() < 1e-9);
        assert!(Curve::StandardInverse.operate_s(1.0, 1.0, 0).is_infinite());
    }

    #[test]
    fn inverse_time_trips_at_the_integrated_time() {
        let mut p = Protection::new(ProtectionSettings::default()).unwrap();
        p.on_cycle(Instant(0), &meas(230.0, [50.0; 3]));
        p.on_cycle(Instant(1_000_000_000), &meas(200.0, [4000.0; 3]));
        let dl = p.poll(Instant(1_000_000_000)).unwrap();
        // 10x pickup, SI, TMS 0.2: 0.594 s.
        let expect = 1_000_000_000 + (0.2 * 0.14 / (libm::pow(10.0, 0.02) - 1.0) * 1e9) as u64;
        assert!((dl.as_nanos() as i64 - expect as i64).abs() < 1_000, "{dl:?}");
        p.poll(Instant(expect - 1_000_000));
        assert!(p.status().trip.is_none());
        p.poll(dl);
        assert_eq!(p.status().trip, Some(TripCause::PhaseOvercurrent));
    }

    #[test]
    fn forward_and_reverse_faults_by_superimposed_current() {
        let mut p = Protection::new(ProtectionSettings::default()).unwrap();
        p.on_cycle(Instant(0), &meas(230.0, [20.0; 3]));
        let mut f = meas(180.0, [20.0; 3]);
        f.i[0] = f.i[0] + Phasor::polar(300.0, -0.3);
        p.on_cycle(Instant(50_000_000), &f);
        let s = p.status();
        assert!(s.pickup && s.forward);
        assert_eq!(s.kind, Some(FaultKind::SinglePhaseEarth));
        // A downstream device sees its load current fall and DER current flowing back: reverse.
        let mut q = Protection::new(ProtectionSettings::default()).unwrap();
        q.on_cycle(Instant(0), &meas(230.0, [20.0; 3]));
        let mut r = meas(150.0, [20.0; 3]);
        r.i[0] = Phasor::polar(30.0, core::f64::consts::PI);
        q.on_cycle(Instant(50_000_000), &r);
        assert!(q.status().pickup && !q.status().forward);
    }

    /// A three-phase measurement with phase voltages `v` (V) and phase currents `i_a` (A) at `i_rad` from
    /// each phase's voltage.
    fn meas_at(v: f64, i_a: f64, i_rad: f64) -> CycleMeasurement {
        let a = 2.0 * core::f64::consts::PI / 3.0;
        let mut m = CycleMeasurement::default();
        for (p, ang) in [0.0, -a, a].into_iter().enumerate() {
            m.v[p] = Phasor::polar(v, ang);
            m.i[p] = Phasor::polar(i_a, ang + i_rad);
            m.v_rms[p] = v;
            m.i_rms[p] = i_a;
        }
        m
    }

    #[test]
    fn converters_riding_through_a_deep_dip_are_no_fault_ahead_but_a_larger_current_is() {
        use core::f64::consts::{FRAC_PI_2, PI};
        // Pre-fault: PV below exports 49 A at unity power factor. A bolted fault elsewhere collapses the
        // voltage to 20 V; the inverters drop their export and feed 70 A of reactive current (k x rated).
        let run = |der_a: f64, i_fault_a: f64, i_rad: f64| {
            let mut p = Protection::new(ProtectionSettings::default()).unwrap();
            p.set_downstream_converters_a(der_a);
            p.on_cycle(Instant(0), &meas_at(230.0, 49.0, PI));
            p.on_cycle(Instant(50_000_000), &meas_at(20.0, i_fault_a, i_rad));
            p.status()
        };
        // Without knowing the converters, that change looks like a fault ahead.
        let s = run(0.0, 70.0, FRAC_PI_2);
        assert!(s.pickup && s.forward, "{s:?}");
        // Knowing them (70 A of k x rated below), it is not one.
        let s = run(70.0, 70.0, FRAC_PI_2);
        assert!(s.pickup && !s.forward, "{s:?}");
        // A fault ahead draws far more than they could give: forward still.
        let s = run(70.0, 2000.0, -0.5);
        assert!(s.pickup && s.forward, "{s:?}");
        // Nonsense from commissioning is taken as no converters.
        let s = run(f64::NAN, 70.0, FRAC_PI_2);
        assert!(s.forward, "{s:?}");
    }

    #[test]
    fn loss_of_phase_after_delay() {
        let mut p = Protection::new(ProtectionSettings::default()).unwrap();
        p.on_cycle(Instant(0), &meas(230.0, [0.0; 3]));
        let mut m = meas(230.0, [0.0; 3]);
        m.v[1] = Phasor::ZERO;
        p.on_cycle(Instant(100_000_000), &m);
        assert!(!p.status().loss_of_phase);
        assert_eq!(p.poll(Instant(100_000_000)), Some(Instant(400_000_000)));
        p.tick(Instant(400_000_000));
        assert!(p.status().loss_of_phase);
        // Two phases sagged with one healthy (a phase-to-phase fault upstream, not one open conductor): twice
        // the delay and the sag hold, so the fault is cleared before every LMU beside or beyond it reports a
        // lost phase (a graded fault deep on a feeder takes half a second and more).
        let mut p = Protection::new(ProtectionSettings::default()).unwrap();
        p.on_cycle(Instant(0), &meas(230.0, [0.0; 3]));
        let mut m = meas(230.0, [0.0; 3]);
        m.v[1] = Phasor::polar(230.0 * 0.45, m.v[1].arg());
        m.v[2] = Phasor::polar(230.0 * 0.5, m.v[2].arg());
        p.on_cycle(Instant(100_000_000), &m);
        let due = 100_000_000 + 600_000_000 + SWING_HOLD_NS;
        assert_eq!(p.poll(Instant(100_000_000)), Some(Instant(due)));
        p.tick(Instant(due - 1));
        assert!(!p.status().loss_of_phase);
        p.tick(Instant(due));
        assert!(p.status().loss_of_phase);
        // The fault cleared: the phases come back and nothing is reported.
        let mut p = Protection::new(ProtectionSettings::default()).unwrap();
        p.on_cycle(Instant(0), &meas(230.0, [0.0; 3]));
        p.on_cycle(Instant(100_000_000), &m);
        p.on_cycle(Instant(600_000_000), &meas(230.0, [0.0; 3]));
        p.tick(Instant(due));
        assert!(!p.status().loss_of_phase);
    }

    #[test]
    fn out_of_range_setting_names_the_field() {
        let s = ProtectionSettings { delta_phase_a: -1.0, ..Default::default() };
        assert_eq!(s.validate().unwrap_err().field, "delta_phase_a");
        let mut s = ProtectionSettings::default();
        s.phase.tms = 5.0;
        assert_eq!(s.validate().unwrap_err().field, "phase");
        for bad in [0.01, 0.6, f64::NAN] {
            let s = ProtectionSettings { sag_swing_pu: bad, ..Default::default() };
            assert_eq!(s.validate().unwrap_err().field, "sag_swing_pu");
        }
    }
}
