//! Sample-level DSP of the LMU: ADC counts in, one-cycle phasors (refreshed every half cycle) and 10-cycle
//! RMS, harmonics up to h40, THD and frequency out.
//!
//! Units: sample rate in Hz, scale factors in volts and amperes per ADC count. The one-cycle DFT uses the
//! absolute sample index as phase reference, so successive measurements share one reference frame (rotating
//! only with a frequency deviation). Harmonic `h` of a 10-cycle window lies in DFT bin `10 h`
//! (5 Hz resolution at 50 Hz, as in IEC 61000-4-7). Missing samples (sequence gaps) are replaced by zeros and
//! counted; samples at or beyond full scale are clamped and flagged as saturated.
// Per-phase arrays (a, b, c) read most clearly with a phase index.
#![allow(clippy::needless_range_loop)]

use crate::hal::metering::{BlockMeasurement, CycleMeasurement, Quality, RawSample};
use crate::lmu::SettingsError;
use crate::lmu::phasor::Phasor;
use alloc::vec;
use alloc::vec::Vec;

/// Cycles in one power-quality block (10 at 50 Hz per IEC 61000-4-30; 12 would be used at 60 Hz).
pub const BLOCK_CYCLES: usize = 10;
/// Highest harmonic order evaluated.
pub const MAX_HARMONIC: usize = 40;

/// Calibration and timing of the sampling front-end as the firmware knows it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FrontEndSettings {
    /// ADC sample rate (Hz); must be an even multiple of the nominal frequency.
    pub sample_rate_hz: u32,
    /// Nominal system frequency (Hz), 50 or 60.
    pub nominal_hz: u32,
    /// Primary volts per ADC count (VT ratio and ADC reference folded in).
    pub v_per_count: f64,
    /// Primary amperes per ADC count (CT ratio, burden and ADC reference folded in).
    pub a_per_count: f64,
    /// Full-scale count of the ADC (2^(bits-1) - 1 for a bipolar converter).
    pub full_scale_counts: i32,
}

impl FrontEndSettings {
    pub fn samples_per_cycle(&self) -> usize {
        self.sample_rate_hz.checked_div(self.nominal_hz).unwrap_or(0) as usize
    }
    pub fn validate(&self) -> Result<(), SettingsError> {
        if !(self.nominal_hz == 50 || self.nominal_hz == 60) {
            return Err(SettingsError::new("nominal_hz", "must be 50 or 60"));
        }
        let n = self.samples_per_cycle();
        if !self.sample_rate_hz.is_multiple_of(self.nominal_hz) || !n.is_multiple_of(2) {
            return Err(SettingsError::new("sample_rate_hz", "must be an even multiple of nominal_hz"));
        }
        if !(2 * MAX_HARMONIC + 2..=1024).contains(&n) {
            return Err(SettingsError::new("sample_rate_hz", "needs 82..=1024 samples per cycle (h40 below Nyquist)"));
        }
        if !(self.v_per_count.is_finite() && self.v_per_count > 0.0) {
            return Err(SettingsError::new("v_per_count", "must be finite and > 0"));
        }
        if !(self.a_per_count.is_finite() && self.a_per_count > 0.0) {
            return Err(SettingsError::new("a_per_count", "must be finite and > 0"));
        }
        if !(1..=(1 << 30)).contains(&self.full_scale_counts) {
            return Err(SettingsError::new("full_scale_counts", "must be in 1..=2^30"));
        }
        Ok(())
    }
}

/// What one pushed sample produced.
#[derive(Clone, Copy, Debug, Default)]
pub struct DspOutput {
    pub cycle: Option<CycleMeasurement>,
    pub block: Option<BlockMeasurement>,
}

/// The sample-to-measurement pipeline. Construct with validated settings.
pub struct Dsp {
    s: FrontEndSettings,
    n: usize,
    m: usize,
    cos: Vec<f64>,
    sin: Vec<f64>,
    /// One cycle of scaled samples (va, vb, vc, ia, ib, ic, in) with their index mod `m`.
    ring: Vec<([f64; 7], u32)>,
    ring_pos: usize,
    filled: usize,
    since_emit: usize,
    abs_mod: u32,
    last_seq: Option<u32>,
    /// The current 10-cycle block.
    block_v: Vec<[f64; 3]>,
    block_i_sq: [f64; 3],
    block_len: usize,
    block_quality: Quality,
    cycle_sat: [bool; 2],
    cycle_missing: [u16; 2],
    prev_v: [f64; 3],
    crossings: [(u32, f64, f64); 3],
}

impl Dsp {
    /// A pipeline for `settings`, which must have passed [`FrontEndSettings::validate`].
    pub fn new(settings: FrontEndSettings) -> Result<Self, SettingsError> {
        settings.validate()?;
        let n = settings.samples_per_cycle();
        let m = n * BLOCK_CYCLES;
        let mut cos = Vec::with_capacity(m);
        let mut sin = Vec::with_capacity(m);
        for k in 0..m {
            let a = 2.0 * core::f64::consts::PI * k as f64 / m as f64;
            cos.push(libm::cos(a));
            sin.push(libm::sin(a));
        }
        Ok(Dsp {
            s: settings,
            n,
            m,
            cos,
            sin,
            ring: vec![([0.0; 7], 0); n],
            ring_pos: 0,
            filled: 0,
            since_emit: 0,
            abs_mod: 0,
            last_seq: None,
            block_v: vec![[0.0; 3]; m],
            block_i_sq: [0.0; 3],
            block_len: 0,
            block_quality: Quality::default(),
            cycle_sat: [false; 2],
            cycle_missing: [0; 2],
            prev_v: [0.0; 3],
            crossings: [(0, 0.0, 0.0); 3],
        })
    }

    pub fn settings(&self) -> &FrontEndSettings {
        &self.s
    }

    /// Samples per nominal cycle.
    pub fn samples_per_cycle(&self) -> usize {
        self.n
    }

    /// Forgets all history (after a long gap): the next measurements wait for a full window again.
    pub fn reset(&mut self) {
        self.filled = 0;
        self.since_emit = 0;
        self.block_len = 0;
        self.block_i_sq = [0.0; 3];
        self.block_quality = Quality::default();
        self.cycle_sat = [false; 2];
        self.cycle_missing = [0; 2];
        self.crossings = [(0, 0.0, 0.0); 3];
    }

    /// Feeds one raw sample; sequence gaps are filled with zeros (up to one block) and flagged.
    pub fn push(&mut self, raw: &RawSample) -> DspOutput {
        let mut out = DspOutput::default();
        if let Some(last) = self.last_seq {
            let gap = raw.seq.wrapping_sub(last).wrapping_sub(1) as usize;
            if gap > self.m {
                self.reset();
                self.block_quality.missing = u16::MAX;
            } else {
                for _ in 0..gap {
                    let o = self.ingest([0; 3], [0; 4], true);
                    merge(&mut out, o);
                }
            }
        }
        self.last_seq = Some(raw.seq);
        let o = self.ingest(raw.v, raw.i, false);
        merge(&mut out, o);
        out
    }

    fn ingest(&mut self, v: [i32; 3], i: [i32; 4], missing: bool) -> DspOutput {
        let fs = self.s.full_scale_counts;
        let mut sat = false;
        let mut x = [0.0f64; 7];
        for (k, &c) in v.iter().chain(i.iter()).enumerate() {
            let clamped = c.clamp(-fs, fs);
            sat |= clamped.unsigned_abs() >= fs as u32;
            let scale = if k < 3 { self.s.v_per_count } else { self.s.a_per_count };
            x[k] = clamped as f64 * scale;
        }
        for h in 0..2 {
            self.cycle_sat[h] |= sat;
            if missing {
                self.cycle_missing[h] = self.cycle_missing[h].saturating_add(1);
            }
        }
        self.block_quality.saturated |= sat;
        if missing {
            self.block_quality.missing = self.block_quality.missing.saturating_add(1);
        }
        self.ring[self.ring_pos] = (x, self.abs_mod);
        self.ring_pos = (self.ring_pos + 1) % self.n;
        self.filled = (self.filled + 1).min(self.n);
        // Frequency: upward zero crossings of each voltage, with linear interpolation inside the block.
        let pos = self.block_len as f64;
        for p in 0..3 {
            let (prev, cur) = (self.prev_v[p], x[p]);
            if self.block_len > 0 && prev < 0.0 && cur >= 0.0 {
                let t = pos - 1.0 + prev / (prev - cur);
                let c = &mut self.crossings[p];
                if c.0 == 0 {
                    c.1 = t;
                }
                c.2 = t;
                c.0 += 1;
            }
            self.prev_v[p] = cur;
        }
        self.block_v[self.block_len] = [x[0], x[1], x[2]];
        for p in 0..3 {
            self.block_i_sq[p] += x[3 + p] * x[3 + p];
        }
        self.block_len += 1;
        self.abs_mod = (self.abs_mod + BLOCK_CYCLES as u32) % self.m as u32;
        self.since_emit += 1;

        let mut out = DspOutput::default();
        if self.since_emit >= self.n / 2 {
            self.since_emit = 0;
            if self.filled >= self.n {
                out.cycle = Some(self.cycle());
            }
            self.cycle_sat = [self.cycle_sat[1], false];
            self.cycle_missing = [self.cycle_missing[1], 0];
        }
        if self.block_len >= self.m {
            out.block = Some(self.block());
            self.block_len = 0;
            self.block_i_sq = [0.0; 3];
            self.block_quality = Quality::default();
            self.crossings = [(0, 0.0, 0.0); 3];
        }
        out
    }

    fn cycle(&self) -> CycleMeasurement {
        let mut acc = [Phasor::ZERO; 7];
        let mut sq = [0.0f64; 7];
        for (x, idx) in &self.ring {
            let (c, s) = (self.cos[*idx as usize], self.sin[*idx as usize]);
            for k in 0..7 {
                acc[k].re += x[k] * c;
                acc[k].im -= x[k] * s;
                sq[k] += x[k] * x[k];
            }
        }
        let g = core::f64::consts::SQRT_2 / self.n as f64;
        let inv = 1.0 / self.n as f64;
        CycleMeasurement {
            v: [acc[0].scale(g), acc[1].scale(g), acc[2].scale(g)],
            i: [acc[3].scale(g), acc[4].scale(g), acc[5].scale(g)],
            i_n: acc[6].scale(g),
            v_rms: [libm::sqrt(sq[0] * inv), libm::sqrt(sq[1] * inv), libm::sqrt(sq[2] * inv)],
            i_rms: [libm::sqrt(sq[3] * inv), libm::sqrt(sq[4] * inv), libm::sqrt(sq[5] * inv)],
            quality: Quality { saturated: self.cycle_sat[0], missing: self.cycle_missing[0] },
        }
    }

    /// Amplitude spectrum (RMS per harmonic 1..=40, index 0 unused) of one voltage over the current block.
    fn harmonics(&self, phase: usize) -> [f64; MAX_HARMONIC + 1] {
        let mut out = [0.0; MAX_HARMONIC + 1];
        let g = core::f64::consts::SQRT_2 / self.m as f64;
        for (h, slot) in out.iter_mut().enumerate().skip(1) {
            let bin = h * BLOCK_CYCLES;
            let (mut re, mut im) = (0.0, 0.0);
            let mut idx = 0usize;
            for v in &self.block_v {
                re += v[phase] * self.cos[idx];
                im -= v[phase] * self.sin[idx];
                idx += bin;
                if idx >= self.m {
                    idx -= self.m;
                }
            }
            *slot = g * libm::hypot(re, im);
        }
        out
    }

    fn block(&self) -> BlockMeasurement {
        let inv = 1.0 / self.m as f64;
        let mut b = BlockMeasurement { quality: self.block_quality, ..Default::default() };
        let g = core::f64::consts::SQRT_2 / self.m as f64;
        for p in 0..3 {
            let sq: f64 = self.block_v.iter().map(|v| v[p] * v[p]).sum();
            b.v_rms[p] = libm::sqrt(sq * inv);
            b.i_rms[p] = libm::sqrt(self.block_i_sq[p] * inv);
            let h = self.harmonics(p);
            let hsq: f64 = h[2..].iter().map(|x| x * x).sum();
            b.v_thd_pct[p] = if h[1] > 1e-9 { 100.0 * libm::sqrt(hsq) / h[1] } else { 0.0 };
            // Fundamental phasor over the block (bin 10), same reference as the block start.
            let (mut re, mut im) = (0.0, 0.0);
            let mut idx = 0usize;
            for v in &self.block_v {
                re += v[p] * self.cos[idx];
                im -= v[p] * self.sin[idx];
                idx = (idx + BLOCK_CYCLES) % self.m;
            }
            b.v1[p] = Phasor::new(re * g, im * g);
        }
        // Frequency from the phase with the most zero crossings (a dead phase has none).
        let best = (0..3).max_by_key(|&p| self.crossings[p].0).unwrap_or(0);
        let (count, first, last) = self.crossings[best];
        if count >= 2 && last > first {
            b.freq_hz = (count - 1) as f64 * self.s.sample_rate_hz as f64 / (last - first);
        }
        b
    }
}

fn merge(into: &mut DspOutput, o: DspOutput) {
    if o.cycle.is_some() {
        into.cycle = o.cycle;
    }
    if o.block.is_some() {
        into.block = o.block;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> FrontEndSettings {
        FrontEndSettings {
            sample_rate_hz: 6400,
            nominal_hz: 50,
            v_per_count: 0.05,
            a_per_count: 0.01,
            full_scale_counts: 32767,
        }
    }

    fn synth(n: u32, f: f64, amp_v: f64, h5_pct: f64) -> RawSample {
        let t = n as f64 / 6400.0;
        let w = 2.0 * core::f64::consts::PI * f * t;
        let mut v = [0; 3];
        for (p, slot) in v.iter_mut().enumerate() {
            let ph = -(p as f64) * 2.0 * core::f64::consts::PI / 3.0;
            let x = amp_v * (libm::sin(w + ph) + h5_pct / 100.0 * libm::sin(5.0 * (w + ph)));
            *slot = libm::round(x / 0.05) as i32;
        }
        RawSample { seq: n, v, i: [0; 4] }
    }

    #[test]
    fn rms_thd_and_frequency_of_a_clean_block() {
        let mut d = Dsp::new(settings()).unwrap();
        let mut last = None;
        for n in 0..1280 {
            if let Some(b) = d.push(&synth(n, 50.0, 325.27, 4.0)).block {
                last = Some(b);
            }
        }
        let b = last.expect("a block after 10 cycles");
        let expect_rms = 325.27 / core::f64::consts::SQRT_2 * libm::sqrt(1.0 + 0.0016);
        assert!((b.v_rms[0] - expect_rms).abs() < 0.05, "{}", b.v_rms[0]);
        assert!((b.v_thd_pct[1] - 4.0).abs() < 0.05, "{}", b.v_thd_pct[1]);
        assert!((b.freq_hz - 50.0).abs() < 0.01, "{}", b.freq_hz);
    }

    #[test]
    fn gaps_are_counted_and_garbage_clamped() {
        let mut d = Dsp::new(settings()).unwrap();
        let mut s = RawSample { seq: 0, v: [i32::MAX, i32::MIN, 0], i: [i32::MIN; 4] };
        let mut any = None;
        for n in 0..200u32 {
            s.seq = n * 3;
            if let Some(c) = d.push(&s).cycle {
                any = Some(c);
            }
        }
        let c = any.unwrap();
        assert!(c.quality.saturated && c.quality.missing > 0);
        assert!(c.v_rms.iter().all(|x| x.is_finite()));
    }

    #[test]
    fn bad_settings_name_the_field() {
        let mut s = settings();
        s.sample_rate_hz = 1000;
        assert_eq!(Dsp::new(s).err().unwrap().field, "sample_rate_hz");
    }
}
