//! Digital twin of the LMU's sensor front-end: voltage and current transformers into a bipolar ADC.
//!
//! The model ([`SensorModel`], `models/lmu-*.ron`) is datasheet-like: VT and CT ratios, divider and burden
//! (ADC volts per secondary volt or ampere), ADC bits, input range and sample rate, gain and offset error,
//! noise (LSB RMS, from a seeded stream), temperature drift of the gain, CT saturation (a soft knee on the
//! primary current) and ADC clipping. Two fidelities share the same error model:
//! - [`Fidelity::Phasor`]: the twin computes what a metering IC would report ([`CycleMeasurement`],
//!   [`BlockMeasurement`]) directly from the solved phasors, with the error model applied analytically.
//! - [`Fidelity::Waveform`]: the twin synthesises ADC samples from the phasors plus configured harmonics, so
//!   the firmware computes RMS, frequency and THD from samples as on hardware.
//!
//! Units: volts (phase to neutral) and amperes primary, hertz, ns for time; phasors are RMS-scaled.

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
    /// Primary current (A peak) above which the CT saturates (soft knee).
    pub ct_knee_a_peak: f64,
    /// A neutral CT is fitted.
    pub neutral_ct: bool,
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

/// Soft CT saturation on the instantaneous primary current (A): linear below the knee, logarithmic above.
fn ct_saturate(i: f64, knee: f64) -> f64 {
    let a = i.abs();
    if a <= knee { i } else { i.signum() * knee * (1.0 + (a / knee).ln()) }
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
}

impl SensorTwin {
    pub fn new(model: SensorModel, fidelity: Fidelity, temperature_c: f64, rng: SimRng) -> Result<Self, String> {
        model.validate()?;
        Ok(SensorTwin {
            m: model,
            fidelity,
            temperature_c,
            rng,
            state: PrimaryState { freq_hz: 50.0, ..Default::default() },
            dirty_cycle: false,
            dirty_block: false,
            next_n: 0,
            queue: VecDeque::new(),
            drop_every: None,
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
        }
        self.state = s;
        self.dirty_cycle = true;
        self.dirty_block = true;
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
        let a = 2.0 * PI / 3.0;
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
                let y = ct_saturate(SQRT_2 * ip.abs() * (w + ip.arg()).cos(), self.m.ct_knee_a_peak);
                i[p] = self.count(y * g / apc, fsc);
            }
            if self.m.neutral_ct {
                let y = ct_saturate(
                    SQRT_2 * self.state.i_n.abs() * (w + self.state.i_n.arg()).cos(),
                    self.m.ct_knee_a_peak,
                );
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
        let peak = SQRT_2 * mag;
        if ct && peak > self.m.ct_knee_a_peak {
            // Fundamental of the soft-saturated sine, approximated by its peak compression.
            mag *= ct_saturate(peak, self.m.ct_knee_a_peak) / peak;
            q.saturated = true;
        }
        let peak_counts = SQRT_2 * mag * g / per_count;
        if peak_counts >= fsc {
            mag *= clipped_fundamental(fsc / peak_counts);
            q.saturated = true;
        }
        let sigma = self.m.noise_lsb_rms * per_count / n.sqrt();
        let (nr, ni) = if sigma > 0.0 { (sigma * self.gauss(), sigma * self.gauss()) } else { (0.0, 0.0) };
        let p = Phasor::polar(mag * g, x.arg()) + Phasor::new(nr, ni);
        let rms = p.abs();
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
}
