//! Digital twin of the LMU's sensor front-end: voltage and current transformers into a bipolar ADC.
//!
//! The model ([`SensorModel`], `models/lmu-*.ron`) is datasheet-like: VT and CT ratios, divider and burden
//! (ADC volts per secondary volt or ampere), ADC bits, input range and sample rate, gain and offset error,
//! noise (LSB RMS, from a seeded stream), temperature drift of the gain, the CT's core (below) and ADC
//! clipping. Two fidelities share the same error model:
//! - [`Fidelity::Phasor`]: the twin computes what a metering IC would report ([`CycleMeasurement`],
//!   [`BlockMeasurement`]) directly from the solved phasors, with the error model applied analytically.
//! - [`Fidelity::Waveform`]: the twin synthesises ADC samples from the phasors plus configured harmonics, so
//!   the firmware computes RMS, frequency and THD from samples as on hardware.
//!
//! Units: volts (phase to neutral) and amperes primary, hertz, ns for time; phasors are RMS-scaled.
//!
//! # The CT core
//!
//! Each current channel's CT is a flux model of its core, stepped once per sample in waveform fidelity:
//! - secondary current `i_s = i_p / N - i_m` (`N` = `ct_ratio`, `i_m` the magnetising current);
//! - flux linkage `dlambda/dt = (R_b + R_ct) i_s` (`burden_ohm`, `ct_winding_ohm`; the burden is resistive),
//!   integrated by backward Euler at the sample rate and solved for the new flux by Newton's method (the
//!   equation is monotone with a bracketed root; the iteration is bounded);
//! - saturation curve `i_m = i_mk (lambda / lambda_k)^S` (odd, smooth, monotone): `lambda_k` is the knee flux
//!   ([`SensorModel::ct_knee_flux_vs`]), the peak flux of a symmetrical secondary current of peak
//!   `ct_knee_a_peak / N` through `R_b + R_ct` at the nominal frequency; `i_mk` = `ct_knee_excitation_pct` of
//!   that peak and `S` = `ct_sat_exponent`. There is no linear magnetising branch: well below the knee
//!   `i_m` is below the last bit of the primary current, so the CT is exactly linear there.
//! - memory: the flux persists across samples and state changes. Its DC part relaxes, with time constant
//!   `ct_flux_decay_s`, toward a remanent flux (standing in for the magnetising branch and the hysteresis
//!   loop without drawing their current, an error of about `1 / (omega T)` in phase, 0.2 degree at 1 s).
//!   When a phase's primary current falls after it drove the core beyond the knee (a fault interrupted or
//!   cleared), the flux at that instant, bounded by `ct_remanence_pct` of the knee flux, becomes the
//!   remanent flux, which biases the next saturation.
//! - DC offset: when a phase's current rises at a state change (a fault's inception), the instantaneous
//!   primary current is kept continuous by a DC component (old instantaneous value minus the new one at the
//!   switching sample) decaying with the time constant `X / (omega R)`. The X/R is taken from the angle
//!   between the new voltage and current phasors of that phase (the impedance the LMU sees downstream, which
//!   stands for the whole fault loop), capped at 30, and 2 when the voltage is below 1 V (a bolted fault at
//!   the LMU's bus). The twin's first state has none (the twin starts in steady state). The neutral CT gets
//!   no DC component. A falling current (an interruption, which a breaker
//!   makes at a current zero) gets none either.
//!
//! The phasor fidelity cannot integrate flux; it takes the flux model's steady state instead: a describing
//! function computed once per model (shared by the model's clones) by running the same core with a
//! sinusoidal primary from a centred flux for 12 cycles and taking the fundamental (a complex gain: the
//! saturated fundamental leads), the RMS and the peak of the last cycle, ADC clipping at nominal gain
//! included. It is tabulated at 193 log-spaced primary peaks from 0.25 to 64 times the knee and interpolated
//! linearly; below 0.25 the gain is exactly 1, above 64 the secondary's fundamental and RMS stay constant.
//! The phasor fidelity ignores DC offsets and remanence (steady state).
//!
//! Default parameters (for a model file that does not give them): `S` = 20 (grain-oriented steel above the
//! knee), `i_mk` = 5 % (the composite error limit of an IEC 61869-2 class 5P protection CT at its accuracy
//! limit current, taken as the knee), `R_ct` = 0.3 ohm, remanence 40 % of the knee flux (IEC 61869-2 sets no
//! limit for class P cores, gapless cores keep up to about 80 %; PR cores at most 10 %) and 1 s for the DC
//! flux relaxation (the order of a class P core's secondary time constant). The knee itself stays
//! `ct_knee_a_peak`, at the fitted burden: in IEC 61869-2 terms it is the limiting secondary EMF
//! `E = ALF I_sn (R_ct + R_bn)` over `R_ct + R_b`, times `sqrt(2) N`.

use gridtwin_firmware::hal::metering::{
    BlockMeasurement, CycleMeasurement, PhasorSource, Quality, RawSample, SampleSource,
};
use gridtwin_firmware::hal::{ErrorKind, ErrorType};
use gridtwin_firmware::lmu::dsp::FrontEndSettings;
use gridtwin_firmware::lmu::phasor::Phasor;
use rand::RngExt;
use std::collections::VecDeque;
use std::f64::consts::{PI, SQRT_2};

use crate::engine::SimRng;

/// Datasheet of a sensor front-end.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorModel {
    /// Voltage transformer ratio (primary V per secondary V); 1 for a direct resistive divider input.
    pub vt_ratio: f64,
    /// ADC input volts per secondary volt (divider).
    pub v_divider: f64,
    /// Current transformer ratio (primary A per secondary A), e.g. 600 for 600/1.
    pub ct_ratio: f64,
    /// Burden resistor (ohm): ADC input volts per secondary ampere.
    pub burden_ohm: f64,
    /// ADC resolution (bits, bipolar).
    pub adc_bits: u8,
    /// ADC input range (+- volts).
    pub adc_range_v: f64,
    /// Sample rate (Hz), an even multiple of the nominal frequency.
    pub sample_rate_hz: u32,
    /// Nominal frequency (Hz).
    pub nominal_hz: u32,
    /// Gain error of all channels (percent).
    pub gain_error_pct: f64,
    /// Offset of all channels (LSB).
    pub offset_lsb: f64,
    /// White noise (LSB RMS).
    pub noise_lsb_rms: f64,
    /// Gain drift (ppm per kelvin from 25 degC).
    pub gain_drift_ppm_per_k: f64,
    /// Primary current (A peak) of a symmetrical sine whose steady-state core flux reaches the knee flux
    /// with the fitted burden: it fixes the knee flux linkage (see [`SensorModel::ct_knee_flux_vs`]).
    pub ct_knee_a_peak: f64,
    /// A neutral CT is fitted.
    pub neutral_ct: bool,
    /// Secondary winding resistance (ohm), in series with the burden in the flux integral.
    #[serde(default = "default_ct_winding_ohm")]
    pub ct_winding_ohm: f64,
    /// Exponent `S` of the saturation curve `i_m = i_mk * (lambda / lambda_k)^S` (the excitation curve's
    /// log-log slope above the knee is `1 / S`).
    #[serde(default = "default_ct_sat_exponent")]
    pub ct_sat_exponent: f64,
    /// Magnetising current at the knee flux (percent of the secondary peak current at the knee).
    #[serde(default = "default_ct_knee_excitation_pct")]
    pub ct_knee_excitation_pct: f64,
    /// Remanent flux left when a current that saturated the core falls (percent of the knee flux, at most).
    #[serde(default = "default_ct_remanence_pct")]
    pub ct_remanence_pct: f64,
    /// Time constant (s) with which the core's DC flux relaxes toward its remanent flux.
    #[serde(default = "default_ct_flux_decay_s")]
    pub ct_flux_decay_s: f64,
    /// The steady-state describing function of the CT, computed once and shared by the model's clones.
    #[serde(skip)]
    pub ct_table_cache: CtTableCache,
}

fn default_ct_winding_ohm() -> f64 {
    0.3
}
fn default_ct_sat_exponent() -> f64 {
    20.0
}
fn default_ct_knee_excitation_pct() -> f64 {
    5.0
}
fn default_ct_remanence_pct() -> f64 {
    40.0
}
fn default_ct_flux_decay_s() -> f64 {
    1.0
}

impl SensorModel {
    /// Checks every field; the error names it.
    pub fn validate(&self) -> Result<(), String> {
        let pos = |name: &str, x: f64| {
            if x.is_finite() && x > 0.0 { Ok(()) } else { Err(format!("{name}: must be finite and > 0 (got {x})")) }
        };
        pos("vt_ratio", self.vt_ratio)?;
        pos("v_divider", self.v_divider)?;
        pos("ct_ratio", self.ct_ratio)?;
        pos("burden_ohm", self.burden_ohm)?;
        pos("adc_range_v", self.adc_range_v)?;
        pos("ct_knee_a_peak", self.ct_knee_a_peak)?;
        for (name, x, lo, hi) in [
            ("ct_winding_ohm", self.ct_winding_ohm, 0.0, 1000.0),
            ("ct_sat_exponent", self.ct_sat_exponent, 2.0, 60.0),
            ("ct_knee_excitation_pct", self.ct_knee_excitation_pct, 0.01, 50.0),
            ("ct_remanence_pct", self.ct_remanence_pct, 0.0, 95.0),
            ("ct_flux_decay_s", self.ct_flux_decay_s, 0.01, 1000.0),
        ] {
            if !(x.is_finite() && (lo..=hi).contains(&x)) {
                return Err(format!("{name}: must be within {lo}..={hi} (got {x})"));
            }
        }
        if !(8..=24).contains(&self.adc_bits) {
            return Err(format!("adc_bits: must be within 8..=24 (got {})", self.adc_bits));
        }
        for (name, x, lim) in [
            ("gain_error_pct", self.gain_error_pct, 10.0),
            ("offset_lsb", self.offset_lsb, 1000.0),
            ("gain_drift_ppm_per_k", self.gain_drift_ppm_per_k, 10_000.0),
        ] {
            if !(x.is_finite() && x.abs() <= lim) {
                return Err(format!("{name}: must be within -{lim}..={lim} (got {x})"));
            }
        }
        if !(self.noise_lsb_rms.is_finite() && (0.0..=1000.0).contains(&self.noise_lsb_rms)) {
            return Err(format!("noise_lsb_rms: must be within 0..=1000 (got {})", self.noise_lsb_rms));
        }
        self.front_end().validate().map_err(|e| format!("sample_rate_hz/nominal_hz: {e}"))?;
        Ok(())
    }

    /// ADC full-scale count.
    pub fn full_scale_counts(&self) -> i32 {
        (1i32 << (self.adc_bits.clamp(2, 30) - 1)) - 1
    }
    /// Primary volts per count as the firmware is calibrated (nominal, without the gain error).
    pub fn v_per_count(&self) -> f64 {
        self.adc_range_v / self.full_scale_counts() as f64 * self.vt_ratio / self.v_divider
    }
    /// Primary amperes per count as the firmware is calibrated.
    pub fn a_per_count(&self) -> f64 {
        self.adc_range_v / self.full_scale_counts() as f64 * self.ct_ratio / self.burden_ohm
    }
    /// RMS primary current of a sine whose peak reaches the ADC's full scale (A): the current channel's
    /// measuring range.
    pub fn current_range_a_rms(&self) -> f64 {
        self.a_per_count() * self.full_scale_counts() as f64 / std::f64::consts::SQRT_2
    }
    /// Knee flux linkage of the CT core (V s, secondary turns): the peak flux of the steady-state symmetrical
    /// secondary current at the knee through the burden and winding resistance, at the nominal frequency.
    pub fn ct_knee_flux_vs(&self) -> f64 {
        (self.burden_ohm + self.ct_winding_ohm) * (self.ct_knee_a_peak / self.ct_ratio)
            / (2.0 * PI * self.nominal_hz.max(1) as f64)
    }
    /// The firmware's front-end settings for this hardware.
    pub fn front_end(&self) -> FrontEndSettings {
        FrontEndSettings {
            sample_rate_hz: self.sample_rate_hz,
            nominal_hz: self.nominal_hz,
            v_per_count: self.v_per_count(),
            a_per_count: self.a_per_count(),
            full_scale_counts: self.full_scale_counts(),
        }
    }
}

/// How the twin presents measurements to the firmware.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Fidelity {
    /// Measurements computed from the phasors (fast, event-driven).
    #[default]
    Phasor,
    /// ADC samples synthesised from the phasors plus harmonics.
    Waveform,
}

/// The primary quantities the sensor sees: fundamental phasors (RMS) plus voltage harmonics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PrimaryState {
    /// Phase-to-neutral voltages (V).
    pub v: [Phasor; 3],
    /// Phase currents (A), positive downstream.
    pub i: [Phasor; 3],
    /// Neutral current (A).
    pub i_n: Phasor,
    /// Voltage harmonics: (order, percent of the fundamental, angle in degrees), same on all phases
    /// (shifted by the harmonic's own sequence).
    pub v_harmonics: Vec<(u32, f64, f64)>,
    /// System frequency (Hz).
    pub freq_hz: f64,
}

/// Largest primary current (A) the CT model takes; beyond it (or for a non-finite input) the input is clamped.
const CT_MAX_PRIMARY_A: f64 = 1e9;
/// Newton iterations per sample, at most.
const CT_MAX_ITER: usize = 60;
/// X/R assumed when the phase's voltage is too small to give the impedance angle (bolted fault at the bus).
const FALLBACK_X_OVER_R: f64 = 2.0;
/// Largest X/R taken from the voltage-current angle.
const MAX_X_OVER_R: f64 = 30.0;

/// The CT core's constants in normalised units: flux in units of the knee flux, current in units of the
/// knee's primary peak (so that a secondary flux linkage `lambda_k` is 1 and `ct_knee_a_peak` is 1).
#[derive(Clone, Copy, Debug, PartialEq)]
struct CtParams {
    /// Primary amperes per unit of current (the knee's primary peak).
    knee_a: f64,
    /// omega_nominal * dt: flux (in knee flux) gained per sample by one unit of secondary current.
    wdt: f64,
    /// Magnetising current at the knee flux, in units of the knee current.
    e: f64,
    /// Saturation exponent.
    s: f64,
    /// Per-sample factor of the DC flux relaxation toward the remanent flux.
    decay: f64,
    /// Remanence, in knee flux.
    rem: f64,
}

impl CtParams {
    fn new(m: &SensorModel) -> Self {
        let fs = m.sample_rate_hz.max(1) as f64;
        CtParams {
            knee_a: m.ct_knee_a_peak,
            wdt: 2.0 * PI * m.nominal_hz.max(1) as f64 / fs,
            e: m.ct_knee_excitation_pct / 100.0,
            s: m.ct_sat_exponent,
            decay: (-1.0 / (fs * m.ct_flux_decay_s)).exp(),
            rem: m.ct_remanence_pct / 100.0,
        }
    }
    /// Magnetising current (knee units) at flux `x` (knee flux): odd, monotone, zero at zero.
    fn mag(&self, x: f64) -> f64 {
        self.e * x.signum() * x.abs().powf(self.s)
    }
}

/// The state of one CT core: its flux linkage and remanence (both in knee flux).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct CtCore {
    /// Flux linkage after the last sample.
    x: f64,
    /// Remanent flux the DC flux relaxes toward.
    x_r: f64,
    /// The flux exceeded the knee since the last state change.
    saturated: bool,
}

impl CtCore {
    /// One sample of primary current `u` (knee units): integrates the flux by backward Euler and returns the
    /// primary-referred magnetising current (knee units); the secondary is `u` minus it.
    fn step(&mut self, p: &CtParams, u: f64) -> f64 {
        let u = if u.is_finite() { u.clamp(-CT_MAX_PRIMARY_A, CT_MAX_PRIMARY_A) } else { 0.0 };
        let x0 = self.x_r + (self.x - self.x_r) * p.decay;
        // x + a p(x) = c, with a = wdt e: odd, strictly increasing, convex for x > 0, so Newton from a point
        // above the root (|c| and (|c| / a)^(1/S) both are) falls monotonically onto it.
        let c = x0 + p.wdt * u;
        let a = p.wdt * p.e;
        let mut x = c.abs().min((c.abs() / a).powf(1.0 / p.s));
        let sign = c.signum();
        let target = c.abs();
        for _ in 0..CT_MAX_ITER {
            let xs = x.powf(p.s - 1.0);
            let f = x + a * xs * x - target;
            let d = 1.0 + a * p.s * xs;
            let nx = (x - f / d).max(0.0);
            let done = (x - nx).abs() <= 1e-14 * x.max(1e-300) || f.is_nan() || f <= 0.0;
            x = nx;
            if done {
                break;
            }
        }
        let x = if x.is_finite() { sign * x } else { 0.0 };
        debug_assert!(x.abs() <= target.abs() + 1e-9, "flux {x} beyond its bound {target}");
        self.x = x;
        if x.abs() > 1.0 {
            self.saturated = true;
        }
        p.mag(x)
    }

    /// The primary current fell after it saturated the core: the flux at this instant, bounded by the
    /// remanence, stays as the remanent flux.
    fn interrupt(&mut self, p: &CtParams) {
        if self.saturated {
            self.x_r = p.rem * self.x.clamp(-1.0, 1.0);
        }
        self.saturated = false;
    }
}

/// One point of the describing function: for a sinusoidal primary of peak `m` knee currents, the
/// fundamental of the secondary (primary-referred, ADC-clipped) as a complex gain, its RMS over the
/// primary's RMS, and its peak (knee units).
#[derive(Clone, Copy, Debug, PartialEq)]
struct CtPoint {
    g_re: f64,
    g_im: f64,
    rms: f64,
    peak: f64,
}

/// Lowest primary peak (knee units) of the table; below it the CT is linear (gain exactly 1).
const CT_TABLE_MIN: f64 = 0.25;
/// Highest primary peak (knee units) of the table; above it the secondary's fundamental and RMS stay.
const CT_TABLE_MAX: f64 = 64.0;
/// Points of the table, log-spaced.
const CT_TABLE_LEN: usize = 193;
/// Cycles run before the cycle measured.
const CT_TABLE_SETTLE_CYCLES: u32 = 12;

/// The CT's steady-state describing function: primary peak (log-spaced) to the secondary's fundamental.
#[derive(Debug, PartialEq)]
pub struct CtTable {
    key: [f64; 8],
    points: Vec<CtPoint>,
}

fn ct_key(m: &SensorModel) -> [f64; 8] {
    [
        m.ct_knee_a_peak,
        m.ct_sat_exponent,
        m.ct_knee_excitation_pct,
        m.ct_remanence_pct,
        m.ct_flux_decay_s,
        m.sample_rate_hz as f64,
        m.nominal_hz as f64,
        m.a_per_count() * m.full_scale_counts() as f64,
    ]
}

impl CtTable {
    /// Runs the flux model with a sinusoidal primary at every point of the table until it is periodic and
    /// takes the fundamental of its last cycle (ADC clipping at nominal gain included).
    pub fn new(m: &SensorModel) -> CtTable {
        Self::with_clip(m, m.a_per_count() * m.full_scale_counts() as f64 / m.ct_knee_a_peak)
    }

    /// The table with the ADC clipping at `clip` knee currents (infinite: the CT alone).
    fn with_clip(m: &SensorModel, clip: f64) -> CtTable {
        let p = CtParams::new(m);
        let nc = (m.sample_rate_hz / m.nominal_hz.max(1)).max(4) as usize;
        let step = (CT_TABLE_MAX / CT_TABLE_MIN).ln() / (CT_TABLE_LEN - 1) as f64;
        let d = 2.0 * PI / nc as f64;
        let points = (0..CT_TABLE_LEN)
            .map(|k| {
                let amp = CT_TABLE_MIN * (step * k as f64).exp();
                // The flux of the linear core for u = amp sin(n d) under backward Euler, centred.
                let mut core =
                    CtCore { x: -p.wdt * amp * (d / 2.0).cos() / (2.0 * (d / 2.0).sin()), ..Default::default() };
                let (mut re, mut im, mut sq, mut peak) = (0.0, 0.0, 0.0, 0.0f64);
                for n in 0..nc * (CT_TABLE_SETTLE_CYCLES as usize + 1) {
                    let th = d * (n % nc) as f64;
                    let u = amp * th.sin();
                    let y = (u - core.step(&p, u)).clamp(-clip, clip);
                    if n >= nc * CT_TABLE_SETTLE_CYCLES as usize {
                        re += y * th.cos();
                        im -= y * th.sin();
                        sq += y * y;
                        peak = peak.max(y.abs());
                    }
                }
                let (re, im) = (2.0 * re / nc as f64, 2.0 * im / nc as f64);
                // The primary's phasor is -j amp: gain = (re + j im) / (-j amp).
                CtPoint { g_re: -im / amp, g_im: re / amp, rms: (sq / nc as f64).sqrt() / (amp / SQRT_2), peak }
            })
            .collect();
        CtTable { key: ct_key(m), points }
    }

    /// (complex gain of the fundamental, RMS over the primary's RMS, secondary peak in knee units) for a
    /// sinusoidal primary of peak `m` knee currents.
    fn response(&self, m: f64) -> (Phasor, f64, f64) {
        if m.is_nan() || m <= CT_TABLE_MIN || self.points.is_empty() {
            return (Phasor::new(1.0, 0.0), 1.0, m.max(0.0));
        }
        let last = self.points.len() - 1;
        if m >= CT_TABLE_MAX {
            let q = self.points[last];
            let k = CT_TABLE_MAX / m;
            return (Phasor::new(q.g_re * k, q.g_im * k), q.rms * k, q.peak);
        }
        let step = (CT_TABLE_MAX / CT_TABLE_MIN).ln() / last as f64;
        let l = ((m / CT_TABLE_MIN).ln() / step).clamp(0.0, last as f64);
        let i = (l.floor() as usize).min(last - 1);
        let f = l - i as f64;
        let (a, b) = (self.points[i], self.points[i + 1]);
        let lerp = |x: f64, y: f64| x + (y - x) * f;
        (Phasor::new(lerp(a.g_re, b.g_re), lerp(a.g_im, b.g_im)), lerp(a.rms, b.rms), lerp(a.peak, b.peak))
    }
}

/// The CT table a model's clones share: filled by the first twin that needs it. A clone whose CT fields were
/// changed does not use it (the table carries the fields it was computed from).
#[derive(Clone, Default)]
pub struct CtTableCache(std::sync::Arc<std::sync::OnceLock<std::sync::Arc<CtTable>>>);

impl CtTableCache {
    fn get_or_compute(&self, m: &SensorModel) -> std::sync::Arc<CtTable> {
        let key = ct_key(m);
        if let Some(t) = self.0.get().filter(|t| t.key == key) {
            return t.clone();
        }
        let t = std::sync::Arc::new(CtTable::new(m));
        let _ = self.0.set(t.clone());
        t
    }
}

impl std::fmt::Debug for CtTableCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CtTableCache")
    }
}

/// A cache is not part of the model's value.
impl PartialEq for CtTableCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// The decaying DC component of one channel's primary current (A, per-sample decay).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct DcOffset {
    a: f64,
    decay: f64,
}

/// Fundamental of a sine of amplitude 1 clipped at `c` (0 < c < 1): exact closed form.
fn clipped_fundamental(c: f64) -> f64 {
    if c >= 1.0 { 1.0 } else { (2.0 / PI) * (c.asin() + c * (1.0 - c * c).sqrt()) }
}

/// The sensor front-end twin.
pub struct SensorTwin {
    m: SensorModel,
    fidelity: Fidelity,
    temperature_c: f64,
    rng: SimRng,
    state: PrimaryState,
    /// Phasor fidelity: a new measurement is pending.
    dirty_cycle: bool,
    dirty_block: bool,
    /// Waveform fidelity: next sample index and the samples synthesised but not read.
    next_n: u64,
    queue: VecDeque<RawSample>,
    /// Sample indices to drop (missing-sample injection), sorted.
    drop_every: Option<u64>,
    /// Waveform fidelity: the CT cores (phases a, b, c, neutral), their constants, and the decaying DC
    /// components of the phase currents.
    cores: [CtCore; 4],
    ct: CtParams,
    dc: [DcOffset; 3],
    /// Phasor fidelity: the CT's describing function, once a current needs it.
    ct_table: Option<std::sync::Arc<CtTable>>,
    /// Waveform fidelity: a state was set; the first one starts in steady state, with no switching transient.
    primed: bool,
}

impl SensorTwin {
    pub fn new(model: SensorModel, fidelity: Fidelity, temperature_c: f64, rng: SimRng) -> Result<Self, String> {
        model.validate()?;
        Ok(SensorTwin {
            fidelity,
            temperature_c,
            rng,
            state: PrimaryState { freq_hz: 50.0, ..Default::default() },
            dirty_cycle: false,
            dirty_block: false,
            next_n: 0,
            queue: VecDeque::new(),
            drop_every: None,
            cores: [CtCore::default(); 4],
            ct: CtParams::new(&model),
            dc: [DcOffset::default(); 3],
            ct_table: None,
            primed: false,
            m: model,
        })
    }

    pub fn model(&self) -> &SensorModel {
        &self.m
    }
    pub fn fidelity(&self) -> Fidelity {
        self.fidelity
    }
    /// Drops every `n`-th sample (fault injection of a flaky ADC link); `None` for none.
    pub fn set_drop_every(&mut self, n: Option<u64>) {
        self.drop_every = n.filter(|&n| n > 0);
    }
    pub fn set_temperature(&mut self, c: f64) {
        if c.is_finite() {
            self.temperature_c = c;
        }
    }

    /// Effective gain of the chain relative to the calibration.
    fn gain(&self) -> f64 {
        (1.0 + self.m.gain_error_pct / 100.0) * (1.0 + self.m.gain_drift_ppm_per_k * 1e-6 * (self.temperature_c - 25.0))
    }

    /// Sets the primary state from `now` on. In waveform fidelity, samples up to `now` are synthesised with
    /// the previous state first.
    pub fn set_state(&mut self, now_ns: u64, s: PrimaryState) {
        if self.fidelity == Fidelity::Waveform {
            // Samples strictly before `now` still see the old state.
            let x = now_ns as u128 * self.m.sample_rate_hz as u128;
            let first_new = x.div_ceil(1_000_000_000) as u64;
            if first_new > 0 {
                self.synthesise_to(first_new - 1);
            }
            if self.primed {
                self.switch_transients(first_new.max(self.next_n), &s);
            }
            self.primed = true;
        }
        self.state = s;
        self.dirty_cycle = true;
        self.dirty_block = true;
    }

    /// Phasor fidelity: delivers a fresh cycle measurement of the unchanged state at the next read (the metering
    /// IC refreshes every half cycle; the twin otherwise delivers one per change).
    pub fn remeasure(&mut self) {
        self.dirty_cycle = true;
    }

    /// Waveform fidelity, at a state change whose first sample is `n`: a phase current that rises keeps its
    /// instantaneous value across the switching instant through a DC component decaying with the X/R
    /// seen from the new voltage-current angle; a current that falls after it saturated its core leaves
    /// remanent flux.
    fn switch_transients(&mut self, n: u64, s: &PrimaryState) {
        let fs = self.m.sample_rate_hz.max(1) as f64;
        let t = n as f64 / fs;
        let old_w = 2.0 * PI * self.state.freq_hz * t;
        let f_new = if s.freq_hz.is_finite() && s.freq_hz > 0.0 { s.freq_hz } else { self.m.nominal_hz as f64 };
        let new_w = 2.0 * PI * f_new * t;
        for p in 0..3 {
            let (io, inew) = (self.state.i[p], s.i[p]);
            if inew.abs() > io.abs() {
                let old = SQRT_2 * io.abs() * (old_w + io.arg()).cos() + self.dc[p].a;
                let new = SQRT_2 * inew.abs() * (new_w + inew.arg()).cos();
                let x_over_r = if s.v[p].abs() > 1.0 && inew.abs() > 0.0 {
                    let phi = s.v[p].arg() - inew.arg();
                    (phi.sin() / phi.cos()).abs().min(MAX_X_OVER_R)
                } else {
                    FALLBACK_X_OVER_R
                };
                let tau_samples = x_over_r / (2.0 * PI * f_new) * fs;
                let a = old - new;
                self.dc[p] = if tau_samples >= 0.5 && a.is_finite() {
                    DcOffset { a, decay: (-1.0 / tau_samples).exp() }
                } else {
                    DcOffset::default()
                };
            } else if inew.abs() < io.abs() {
                self.cores[p].interrupt(&self.ct);
            }
        }
        if s.i_n.abs() < self.state.i_n.abs() {
            self.cores[3].interrupt(&self.ct);
        }
    }

    /// Waveform fidelity: the flux linkage of the phase and neutral CT cores (V s).
    pub fn ct_flux_vs(&self) -> [f64; 4] {
        let k = self.m.ct_knee_flux_vs();
        self.cores.map(|c| c.x * k)
    }

    pub fn state(&self) -> &PrimaryState {
        &self.state
    }

    fn gauss(&mut self) -> f64 {
        // Box-Muller from two uniform draws of the seeded stream.
        let u1: f64 = self.rng.random::<f64>().max(1e-300);
        let u2: f64 = self.rng.random::<f64>();
        (-2.0 * u1.ln()).sqrt() * (2.0 * PI * u2).cos()
    }

    /// Waveform fidelity: synthesises all samples with index `n / fs <= now`.
    pub fn synthesise_until(&mut self, now_ns: u64) {
        let last = (now_ns as u128 * self.m.sample_rate_hz as u128 / 1_000_000_000) as u64;
        self.synthesise_to(last);
    }

    /// Synthesises samples up to index `last` inclusive.
    fn synthesise_to(&mut self, last: u64) {
        let fs = self.m.sample_rate_hz as u64;
        // Bounded: at most one second of samples is kept; older ones are dropped like an ADC FIFO overrun.
        let cap = fs as usize;
        let fsc = self.m.full_scale_counts();
        let g = self.gain();
        let (vpc, apc) = (self.m.v_per_count(), self.m.a_per_count());
        let start = self.next_n.max(last.saturating_sub(fs));
        if start > self.next_n {
            // Samples lost to the FIFO bound are not integrated: the DC components and the flux relax over the gap.
            let gap = (start - self.next_n).min(i32::MAX as u64) as i32;
            for d in &mut self.dc {
                d.a *= d.decay.powi(gap);
            }
            let k = self.ct.decay.powi(gap);
            for c in &mut self.cores {
                c.x = c.x_r + (c.x - c.x_r) * k;
            }
            self.next_n = start;
        }
        let a = 2.0 * PI / 3.0;
        let knee = self.ct.knee_a;
        for n in start..=last {
            if n < self.next_n {
                continue;
            }
            let t = n as f64 / fs as f64;
            let w = 2.0 * PI * self.state.freq_hz * t;
            let mut v = [0i32; 3];
            let mut i = [0i32; 4];
            for p in 0..3 {
                let ph = self.state.v[p];
                let mut x = SQRT_2 * ph.abs() * (w + ph.arg()).cos();
                let fund_ang = ph.arg() + a * p as f64; // phase a reference angle of this phase's fundamental
                for &(h, pct, ang) in &self.state.v_harmonics {
                    let hh = h as f64;
                    let seq_shift = -(p as f64) * a * hh;
                    x += SQRT_2 * ph.abs() * pct / 100.0 * (hh * (w + fund_ang) + seq_shift + ang.to_radians()).cos();
                }
                v[p] = self.count(x * g / vpc, fsc);
                let ip = self.state.i[p];
                let prim = SQRT_2 * ip.abs() * (w + ip.arg()).cos() + self.dc[p].a;
                self.dc[p].a *= self.dc[p].decay;
                if self.dc[p].a.abs() < 1e-9 {
                    self.dc[p] = DcOffset::default();
                }
                let y = self.secondary(p, prim, knee);
                i[p] = self.count(y * g / apc, fsc);
            }
            if self.m.neutral_ct {
                let y = self.secondary(3, SQRT_2 * self.state.i_n.abs() * (w + self.state.i_n.arg()).cos(), knee);
                i[3] = self.count(y * g / apc, fsc);
            }
            self.next_n = n + 1;
            if self.drop_every.is_some_and(|k| n % k == k - 1) {
                continue;
            }
            if self.queue.len() >= cap {
                self.queue.pop_front();
            }
            self.queue.push_back(RawSample { seq: n as u32, v, i });
        }
    }

    /// One sample of CT `c` with primary current `prim` (A): the primary-referred secondary current (A). Exactly
    /// `prim` while the magnetising current is below the last bit of `prim`.
    fn secondary(&mut self, c: usize, prim: f64, knee: f64) -> f64 {
        let prim = if prim.is_finite() { prim.clamp(-CT_MAX_PRIMARY_A, CT_MAX_PRIMARY_A) } else { 0.0 };
        prim - knee * self.cores[c].step(&self.ct, prim / knee)
    }

    fn count(&mut self, ideal_counts: f64, fsc: i32) -> i32 {
        let noise = if self.m.noise_lsb_rms > 0.0 { self.m.noise_lsb_rms * self.gauss() } else { 0.0 };
        let x = (ideal_counts + self.m.offset_lsb + noise).round();
        x.clamp(-(fsc as f64), fsc as f64) as i32
    }

    /// Phasor fidelity: what the metering IC reports for the present state (noise drawn per call).
    pub fn cycle_measurement(&mut self) -> CycleMeasurement {
        let g = self.gain();
        let fsc = self.m.full_scale_counts() as f64;
        let (vpc, apc) = (self.m.v_per_count(), self.m.a_per_count());
        let n = (self.m.sample_rate_hz / self.m.nominal_hz.max(1)) as f64;
        let mut q = Quality::default();
        let mut out = CycleMeasurement::default();
        let harm_sq: f64 = self.state.v_harmonics.iter().map(|&(_, p, _)| (p / 100.0).powi(2)).sum();
        let off = self.m.offset_lsb;
        for p in 0..3 {
            let (v, sv) = self.channel(self.state.v[p], g, vpc, fsc, n, false, &mut q);
            out.v[p] = v;
            out.v_rms[p] = ((sv * sv) * (1.0 + harm_sq) + (off * vpc).powi(2)).sqrt();
            let (i, si) = self.channel(self.state.i[p], g, apc, fsc, n, true, &mut q);
            out.i[p] = i;
            out.i_rms[p] = (si * si + (off * apc).powi(2)).sqrt();
        }
        if self.m.neutral_ct {
            out.i_n = self.channel(self.state.i_n, g, apc, fsc, n, true, &mut q).0;
        }
        out.quality = q;
        out
    }

    /// One channel: returns the measured fundamental phasor and its RMS, quantised to the ADC resolution.
    #[allow(clippy::too_many_arguments)]
    fn channel(
        &mut self,
        x: Phasor,
        g: f64,
        per_count: f64,
        fsc: f64,
        n: f64,
        ct: bool,
        q: &mut Quality,
    ) -> (Phasor, f64) {
        let mut mag = x.abs();
        let mut arg = x.arg();
        let mut rms_over_fund = 1.0;
        let peak = SQRT_2 * mag;
        let knee = self.m.ct_knee_a_peak;
        if ct && peak > CT_TABLE_MIN * knee {
            // The steady-state fundamental of the flux model's secondary, ADC clipping included.
            let table = match &self.ct_table {
                Some(t) => t.clone(),
                None => {
                    let t = self.m.ct_table_cache.get_or_compute(&self.m);
                    self.ct_table = Some(t.clone());
                    t
                }
            };
            let (gain, rms, out_peak) = table.response(peak / knee);
            let gm = gain.abs();
            if gm > 0.0 && gm.is_finite() {
                mag *= gm;
                arg += gain.arg();
                rms_over_fund = (rms / gm).max(1.0);
            }
            if peak > knee || out_peak * knee * g / per_count >= fsc {
                q.saturated = true;
            }
        } else {
            let peak_counts = SQRT_2 * mag * g / per_count;
            if peak_counts >= fsc {
                mag *= clipped_fundamental(fsc / peak_counts);
                q.saturated = true;
            }
        }
        let sigma = self.m.noise_lsb_rms * per_count / n.sqrt();
        let (nr, ni) = if sigma > 0.0 { (sigma * self.gauss(), sigma * self.gauss()) } else { (0.0, 0.0) };
        let p = Phasor::polar(mag * g, arg) + Phasor::new(nr, ni);
        let rms = p.abs() * rms_over_fund;
        (p, rms)
    }

    /// Phasor fidelity: the 10-cycle measurement for the present state.
    pub fn block_measurement(&mut self) -> BlockMeasurement {
        let c = self.cycle_measurement();
        let h_sq: f64 =
            self.state.v_harmonics.iter().filter(|&&(h, _, _)| (2..=40).contains(&h)).map(|&(_, p, _)| p * p).sum();
        BlockMeasurement {
            v_rms: c.v_rms,
            i_rms: c.i_rms,
            v_thd_pct: [h_sq.sqrt(); 3],
            v1: c.v,
            freq_hz: self.state.freq_hz,
            quality: c.quality,
        }
    }
}

impl ErrorType for SensorTwin {
    type Error = ErrorKind;
}

impl SampleSource for SensorTwin {
    fn read_samples(&mut self, buf: &mut [RawSample]) -> Result<usize, ErrorKind> {
        if self.fidelity != Fidelity::Waveform {
            return Err(ErrorKind::Invalid);
        }
        let n = buf.len().min(self.queue.len());
        for slot in buf.iter_mut().take(n) {
            *slot = self.queue.pop_front().unwrap_or_default();
        }
        Ok(n)
    }
}

impl PhasorSource for SensorTwin {
    fn read_cycle(&mut self) -> Result<Option<CycleMeasurement>, ErrorKind> {
        if self.fidelity != Fidelity::Phasor {
            return Err(ErrorKind::Invalid);
        }
        if !std::mem::take(&mut self.dirty_cycle) {
            return Ok(None);
        }
        Ok(Some(self.cycle_measurement()))
    }
    fn read_block(&mut self) -> Result<Option<BlockMeasurement>, ErrorKind> {
        if self.fidelity != Fidelity::Phasor {
            return Err(ErrorKind::Invalid);
        }
        if !std::mem::take(&mut self.dirty_block) {
            return Ok(None);
        }
        Ok(Some(self.block_measurement()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn model() -> SensorModel {
        ron::from_str(include_str!("../../models/lmu-v1.ron")).expect("shipped model parses")
    }

    #[test]
    fn shipped_model_is_valid_and_missing_field_is_named() {
        model().validate().unwrap();
        let text = include_str!("../../models/lmu-v1.ron").replace("burden_ohm", "burden");
        let err = ron::from_str::<SensorModel>(&text).unwrap_err().to_string();
        assert!(err.contains("burden"), "{err}");
        let mut m = model();
        m.adc_bits = 40;
        assert!(m.validate().unwrap_err().starts_with("adc_bits"));
    }

    #[test]
    fn clipped_sine_fundamental_closed_form() {
        assert!((clipped_fundamental(1.0) - 1.0).abs() < 1e-12);
        // Numerical check at c = 0.5.
        let n = 100_000;
        let mut acc = 0.0;
        for k in 0..n {
            let t = 2.0 * PI * k as f64 / n as f64;
            acc += t.sin().clamp(-0.5, 0.5) * t.sin();
        }
        assert!((2.0 * acc / n as f64 - clipped_fundamental(0.5)).abs() < 1e-4);
    }

    #[test]
    fn ct_fields_default_for_old_files_and_bad_values_are_named() {
        let m = model();
        assert_eq!(
            (m.ct_winding_ohm, m.ct_sat_exponent, m.ct_knee_excitation_pct, m.ct_remanence_pct, m.ct_flux_decay_s),
            (0.3, 20.0, 5.0, 40.0, 1.0)
        );
        type Edit = fn(&mut SensorModel);
        let cases: [(&str, Edit); 7] = [
            ("ct_winding_ohm", |m| m.ct_winding_ohm = -0.1),
            ("ct_sat_exponent", |m| m.ct_sat_exponent = 1.0),
            ("ct_sat_exponent", |m| m.ct_sat_exponent = f64::NAN),
            ("ct_knee_excitation_pct", |m| m.ct_knee_excitation_pct = 0.0),
            ("ct_remanence_pct", |m| m.ct_remanence_pct = 100.0),
            ("ct_flux_decay_s", |m| m.ct_flux_decay_s = f64::INFINITY),
            ("ct_knee_a_peak", |m| m.ct_knee_a_peak = 0.0),
        ];
        for (field, edit) in cases {
            let mut m = model();
            edit(&mut m);
            let err = m.validate().unwrap_err();
            assert!(err.starts_with(field), "{field}: {err}");
        }
        // The knee flux of the shipped CT: (0.1 + 0.3) ohm * 3.2 A / (2 pi 50) = 4.07 mV s.
        assert!((m.ct_knee_flux_vs() - 0.4 * 3.2 / (2.0 * PI * 50.0)).abs() < 1e-12);
    }

    #[test]
    fn ct_describing_function_is_monotone_and_linear_below_the_knee() {
        let m = model();
        let t = CtTable::new(&m);
        assert_eq!(t.points.len(), CT_TABLE_LEN);
        let step = (CT_TABLE_MAX / CT_TABLE_MIN).ln() / (CT_TABLE_LEN - 1) as f64;
        // The CT alone: its fundamental rises with the primary. With the ADC's clipping (at 1.5625 times the
        // knee) the peaky saturated secondary loses part of its fundamental once its peak is clipped, more
        // the deeper the saturation: never above the CT alone, and above 0.45 knee up to 64 times the knee.
        let alone = CtTable::with_clip(&m, f64::INFINITY);
        let fund = |q: &CtPoint, k: usize| CT_TABLE_MIN * (step * k as f64).exp() * q.g_re.hypot(q.g_im);
        let mut prev = 0.0;
        for (k, (q, c)) in alone.points.iter().zip(&t.points).enumerate() {
            let (fa, fc) = (fund(q, k), fund(c, k));
            assert!(fa.is_finite() && q.rms.is_finite() && q.peak.is_finite(), "{k}: {q:?}");
            assert!(fc.is_finite() && c.rms.is_finite() && c.peak.is_finite(), "{k}: {c:?}");
            assert!(fa >= prev, "the CT's fundamental falls at point {k}: {fa} < {prev}");
            assert!(fc <= fa + 1e-12 && (fc > 0.45 || k < 48), "point {k}: clipped {fc}, CT alone {fa}");
            prev = fa;
        }
        for (m_knee, lo, hi) in [(0.25, 1.0 - 1e-9, 1.0 + 1e-9), (0.5, 0.9999, 1.0001), (2.0, 0.3, 0.95)] {
            let g = t.response(m_knee).0.abs();
            assert!((lo..=hi).contains(&g), "gain {g} at {m_knee} knee outside {lo}..={hi}");
        }
        assert_eq!(t.response(0.1), (Phasor::new(1.0, 0.0), 1.0, 0.1));
        // Beyond the table the fundamental stays; NaN and negative inputs are linear.
        let (g64, _, _) = t.response(64.0);
        let (g128, _, _) = t.response(128.0);
        assert!((g128.abs() * 128.0 - g64.abs() * 64.0).abs() < 1e-9);
        assert_eq!(t.response(f64::NAN).0, Phasor::new(1.0, 0.0));
    }

    #[test]
    fn ct_core_is_bounded_and_nan_free_on_any_input() {
        let m = model();
        let p = CtParams::new(&m);
        let mut c = CtCore::default();
        let inputs = [0.0, 1.0, -1.0, 1e3, -1e6, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e300, -5e-320, 3.0];
        for k in 0..2000 {
            let u = inputs[k % inputs.len()] * if k % 7 == 0 { -1.0 } else { 1.0 };
            let im = c.step(&p, u);
            assert!(im.is_finite() && c.x.is_finite() && c.x_r.is_finite(), "{k}: u {u}, i_m {im}, {c:?}");
        }
        // Zero primary current from a saturated core: the flux falls back below the knee, and the
        // magnetising (subsidence) current decays.
        let mut c = CtCore { x: 3.0, ..Default::default() };
        let first = c.step(&p, 0.0);
        for _ in 0..640 {
            c.step(&p, 0.0);
        }
        let last = c.step(&p, 0.0);
        assert!(c.x.abs() < 1.0 && last.abs() < first.abs() * 1e-3, "{c:?} {first} {last}");
    }

    /// A phase-a-only state: current `i_rms` at angle `ang`, voltage leading it by atan(x_over_r).
    fn fault_state(i_rms: f64, ang: f64, x_over_r: f64) -> PrimaryState {
        let mut s = PrimaryState { freq_hz: 50.0, ..Default::default() };
        s.v = [Phasor::polar(60.0, ang + x_over_r.atan()), Phasor::polar(230.0, -2.0), Phasor::polar(230.0, 2.0)];
        s.i[0] = Phasor::polar(i_rms, ang);
        s
    }

    /// Phase-a samples (primary A) of `faults` (start ns, state), the current interrupted `dur_ns` after each
    /// start, read until `until_ns`. A noiseless front end; `knee` overrides the CT knee, `rem` (percent) and
    /// `decay_s` the remanence and the DC flux relaxation.
    fn phase_a(
        (knee, rem, decay_s): (f64, f64, f64),
        faults: &[(u64, PrimaryState)],
        dur_ns: u64,
        until_ns: u64,
    ) -> (Vec<f64>, [f64; 4]) {
        let mut m = model();
        (m.noise_lsb_rms, m.offset_lsb, m.gain_error_pct) = (0.0, 0.0, 0.0);
        (m.ct_knee_a_peak, m.ct_remanence_pct, m.ct_flux_decay_s) = (knee, rem, decay_s);
        let mut t = SensorTwin::new(m.clone(), Fidelity::Waveform, 25.0, crate::engine::stream(1, 1, "t")).unwrap();
        let mut flux = [0.0; 4];
        t.set_state(0, fault_state(0.0, 0.0, 1.0));
        for (t0, s) in faults {
            t.set_state(*t0, s.clone());
            t.set_state(t0 + dur_ns, fault_state(0.0, 0.0, 1.0));
            t.synthesise_until(t0 + dur_ns + 1);
            flux = t.ct_flux_vs();
        }
        t.synthesise_until(until_ns);
        let out = t.queue.iter().map(|r| r.i[0] as f64 * m.a_per_count()).collect();
        (out, flux)
    }

    /// Per-cycle error of `y` against the linear CT's `x` from sample `n0`: RMS of the difference over the
    /// RMS of the linear reading, per cycle.
    fn cycle_errors(x: &[f64], y: &[f64], n0: usize, cycles: usize) -> Vec<f64> {
        (0..cycles)
            .map(|k| {
                let r = n0 + 128 * k..n0 + 128 * (k + 1);
                let d: f64 = r.clone().map(|n| (x[n] - y[n]).powi(2)).sum();
                let e: f64 = r.map(|n| x[n].powi(2)).sum();
                (d / e).sqrt()
            })
            .collect()
    }

    #[test]
    fn offset_fault_saturates_more_and_sooner_than_a_symmetrical_one() {
        // 0.6 times the knee (4.8 kA peak, 3394 A RMS), X/R 10, switched at 100 ms (sample 640, a cycle start):
        // angle pi puts the new current at its negative peak (full offset, DC = +peak), -pi/2 at its zero.
        let (t0, until, i) = (100_000_000, 200_000_000, 0.6 * 8000.0 / SQRT_2);
        let mut errs = Vec::new();
        for (name, ang) in [("offset", PI), ("symmetrical", -PI / 2.0)] {
            let f = [(t0, fault_state(i, ang, 10.0))];
            let (x, _) = phase_a((1e12, 40.0, 1.0), &f, 60_000_000, until);
            let (y, _) = phase_a((8000.0, 40.0, 1.0), &f, 60_000_000, until);
            let e = cycle_errors(&x, &y, 640, 3);
            eprintln!("{name}: per-cycle error {e:.4?}");
            errs.push(e);
        }
        let worst = |e: &[f64]| e.iter().cloned().fold(0.0, f64::max);
        assert!(worst(&errs[0]) > 0.2, "the offset fault barely saturates: {:?}", errs[0]);
        assert!(worst(&errs[0]) > 5.0 * worst(&errs[1]), "offset {:?} vs symmetrical {:?}", errs[0], errs[1]);
        assert!(errs[0][0] > 0.05, "no saturation in the offset fault's first cycle: {:?}", errs[0]);
    }

    #[test]
    fn remanent_flux_changes_the_next_fault() {
        // The same offset fault twice, 300 ms apart, each interrupted after 50 ms; against the second fault
        // alone on a fresh core. The DC flux relaxes in 50 ms here, so what is left at the second fault is the
        // remanent flux alone: none without remanence.
        let (i, xr) = (0.35 * 8000.0 / SQRT_2, 5.0);
        let f1 = (100_000_000, fault_state(i, PI, xr));
        let f2 = (400_000_000, fault_state(i, PI, xr));
        let until = 460_000_000;
        let n0 = 2560; // 400 ms
        // (remanence percent, the first cycle's error changes by more than this share)
        for (rem, changes) in [(40.0, true), (0.0, false)] {
            let ct = (8000.0, rem, 0.05);
            let (x, _) = phase_a((1e12, rem, 0.05), std::slice::from_ref(&f2), 50_000_000, until);
            let (fresh, _) = phase_a(ct, std::slice::from_ref(&f2), 50_000_000, until);
            let (twice, flux) = phase_a(ct, &[f1.clone(), f2.clone()], 50_000_000, until);
            let e_fresh = cycle_errors(&x, &fresh, n0, 2);
            let e_twice = cycle_errors(&x, &twice, n0, 2);
            eprintln!(
                "remanence {rem} %: flux after the faults {flux:?} V s; second fault on a fresh core {e_fresh:.4?}, \
                 after the first {e_twice:.4?}"
            );
            let d = (e_twice[0] - e_fresh[0]).abs() / e_fresh[0].max(0.01);
            assert_eq!(d > 0.25, changes, "remanence {rem} %: {e_fresh:?} vs {e_twice:?}");
        }
    }
}
