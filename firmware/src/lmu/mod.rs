//! LMU firmware: power quality, protection, fault location/isolation/restoration, joined into one device.
//!
//! [`Lmu`] owns the state machines and is driven sans-IO: feed it measurements (through a HAL
//! [`SampleSource`] and the DSP, or a
//! [`PhasorSource`]) and peer messages with the current time, call
//! [`Lmu::poll`] with the contactor HAL, send what [`Lmu::pop_outgoing`] yields to the named neighbours, and
//! call again at the returned deadline. Units: volts, amperes, hertz; time in ns.

pub mod dsp;
pub mod flisr;
pub mod nvm;
pub mod phasor;
pub mod pq;
pub mod protection;
pub mod selftest;

use crate::hal::contactor::Contactor;
use crate::hal::metering::{BlockMeasurement, CycleMeasurement, PhasorSource, RawSample, SampleSource};
use crate::report::ReportRepr;
use crate::time::{Duration, Instant};
use dsp::{Dsp, FrontEndSettings};
use flisr::{Flisr, FlisrSettings, PeerId, PeerMsg};
use pq::{PowerQuality, PqSettings};
use protection::{Protection, ProtectionSettings};

/// A setting that failed validation: which field and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SettingsError {
    pub field: &'static str,
    pub reason: &'static str,
}

impl SettingsError {
    pub const fn new(field: &'static str, reason: &'static str) -> Self {
        SettingsError { field, reason }
    }
}

impl core::fmt::Display for SettingsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// Everything an LMU is configured with.
#[derive(Clone, Debug, PartialEq)]
pub struct LmuSettings {
    /// Sampling front-end; `None` for a metering IC delivering phasors.
    pub front_end: Option<FrontEndSettings>,
    pub pq: PqSettings,
    pub protection: ProtectionSettings,
    pub flisr: FlisrSettings,
}

impl LmuSettings {
    /// Validates all parts; the error's field is prefixed by the part (`protection.delta_phase_a`).
    pub fn validate(&self) -> Result<(), (&'static str, SettingsError)> {
        if let Some(fe) = &self.front_end {
            fe.validate().map_err(|e| ("front_end", e))?;
        }
        self.pq.validate().map_err(|e| ("pq", e))?;
        self.protection.validate().map_err(|e| ("protection", e))?;
        self.flisr.validate().map_err(|e| ("flisr", e))?;
        Ok(())
    }
}

fn clamp_u(x: f64, max: f64) -> f64 {
    if x.is_finite() { libm::round(x).clamp(0.0, max) } else { 0.0 }
}

fn clamp_i(x: f64) -> i32 {
    if x.is_finite() { libm::round(x).clamp(i32::MIN as f64, i32::MAX as f64) as i32 } else { 0 }
}

/// A line whose highest phase voltage is below this share of nominal, with no current, is dead.
/// RMS over fundamental of a phase current beyond which a saturated reading is taken for a CT deep in
/// saturation (a sine is 1; a CT collapsing for most of each cycle gives a peaky secondary well above it).
pub const SATURATED_RMS_RATIO: f64 = 1.15;
pub const DEAD_VOLTAGE_SHARE: f64 = 0.1;
/// Largest current (A) on a dead line (measurement noise).
pub const DEAD_CURRENT_A: f64 = 5.0;

/// Samples read from the front-end per call at most (bounds the work of one poll).
pub const MAX_SAMPLES_PER_READ: usize = 4096;

/// One LMU's firmware.
pub struct Lmu {
    dsp: Option<Dsp>,
    pq: PowerQuality,
    protection: Protection,
    flisr: Flisr,
    i_max_a: f64,
    /// Nominal phase voltage (V), for telling a dead line.
    u_nom_v: f64,
    coil_error: bool,
    last: Option<CycleMeasurement>,
    buf: [RawSample; 64],
    /// An operator's command holding the contactor open (`Some(false)`) or closed (`Some(true)`).
    operator_hold: Option<bool>,
}

/// Flags of a report frame (bit set).
pub mod report_flags {
    /// The contactor is commanded open.
    pub const OPEN: u16 = 1;
    /// FLISR operated and waits for a reset.
    pub const LOCKED_OUT: u16 = 2;
    /// A phase is lost downstream of an open conductor.
    pub const LOSS_OF_PHASE: u16 = 4;
    /// A fault pickup is present.
    pub const PICKUP: u16 = 8;
    /// The last complete 10-minute interval broke an EN 50160 voltage limit.
    pub const PQ_VIOLATION: u16 = 16;
}

impl Lmu {
    pub fn new(s: LmuSettings) -> Result<Self, (&'static str, SettingsError)> {
        s.validate()?;
        let u_nom_v = s.pq.u_din_v;
        let dsp = match s.front_end {
            Some(fe) => Some(Dsp::new(fe).map_err(|e| ("front_end", e))?),
            None => None,
        };
        Ok(Lmu {
            dsp,
            pq: PowerQuality::new(s.pq).map_err(|e| ("pq", e))?,
            protection: {
                let mut p = Protection::new(s.protection).map_err(|e| ("protection", e))?;
                p.set_downstream_converters_a(s.flisr.der_downstream_a);
                p
            },
            flisr: Flisr::new(s.flisr).map_err(|e| ("flisr", e))?,
            i_max_a: 0.0,
            u_nom_v,
            coil_error: false,
            last: None,
            buf: [RawSample::default(); 64],
            operator_hold: None,
        })
    }

    pub fn pq(&self) -> &PowerQuality {
        &self.pq
    }
    pub fn protection(&self) -> &Protection {
        &self.protection
    }
    pub fn flisr(&self) -> &Flisr {
        &self.flisr
    }
    pub fn flisr_mut(&mut self) -> &mut Flisr {
        &mut self.flisr
    }

    /// A cycle measurement taken at `now` (half-cycle refresh in waveform fidelity, on change in phasor
    /// fidelity).
    pub fn on_cycle(&mut self, now: Instant, m: &CycleMeasurement) {
        self.pq.on_half_cycle(now, m.v_rms);
        self.protection.on_cycle(now, m);
        let i = m.i.iter().map(|p| p.abs()).fold(0.0, f64::max);
        if i.is_finite() && m.quality.missing == 0 {
            self.i_max_a = i;
            self.last = Some(*m);
            // A CT deep in saturation under-reads (its secondary collapses for most of each cycle), so its
            // fundamental alone may fall well below the range; its waveform is then peaky, RMS well above the
            // fundamental. Saturated with such a distortion counts as full scale like a reading at the range.
            let distorted = m.i.iter().zip(&m.i_rms).any(|(p, &r)| r > SATURATED_RMS_RATIO * p.abs());
            let full_scale = m.quality.saturated
                && (i >= flisr::FULL_SCALE_SHARE * self.flisr.settings().measuring_range_a || distorted);
            let v_max = m.v.iter().map(|p| p.abs()).fold(0.0, f64::max);
            let dead = v_max.is_finite() && v_max < DEAD_VOLTAGE_SHARE * self.u_nom_v && i < DEAD_CURRENT_A;
            self.flisr.set_line_state(full_scale, dead);
        }
    }

    /// What the continuity receiver decodes, per phase: `true` where the feeder-head signal is missing (see
    /// [`Protection::set_continuity_lost`]). Used from the next cycle measurement on.
    pub fn set_continuity_lost(&mut self, lost: [bool; 3]) {
        self.protection.set_continuity_lost(lost);
    }

    /// The newest valid cycle measurement.
    pub fn last_measurement(&self) -> Option<&CycleMeasurement> {
        self.last.as_ref()
    }

    /// A periodic reading for the report frame: RMS voltages and currents of the newest measurement, the
    /// active and reactive power through the LMU (downstream positive) and the state flags.
    pub fn reading(&self, lmu_id: u32, seq: u32, now: Instant) -> ReportRepr {
        let mut r = ReportRepr { lmu_id, seq, taken_at_ms: now.as_nanos() / 1_000_000, ..ReportRepr::default() };
        if let Some(m) = &self.last {
            let (mut p, mut q) = (0.0, 0.0);
            for k in 0..3 {
                r.v_cv[k] = clamp_u(m.v_rms[k] * 100.0, u16::MAX as f64) as u16;
                r.i_ma[k] = clamp_u(m.i_rms[k] * 1000.0, u32::MAX as f64) as u32;
                let s = m.v[k] * m.i[k].conj();
                p += s.re;
                q += s.im;
            }
            r.p_w = clamp_i(p);
            r.q_var = clamp_i(q);
        }
        let st = self.protection.status();
        let mut f = 0;
        if !self.operator_hold.unwrap_or(self.flisr.coil_closed()) {
            f |= report_flags::OPEN;
        }
        if self.flisr.locked_out() {
            f |= report_flags::LOCKED_OUT;
        }
        if st.loss_of_phase {
            f |= report_flags::LOSS_OF_PHASE;
        }
        if st.pickup {
            f |= report_flags::PICKUP;
        }
        if self.pq.counters().intervals_10min > 0 && !self.pq.counters().compliance().compliant {
            f |= report_flags::PQ_VIOLATION;
        }
        r.flags = f;
        r
    }

    /// A 10-cycle measurement ending at `now`.
    pub fn on_block(&mut self, now: Instant, b: &BlockMeasurement) {
        self.pq.on_block(now, b);
    }

    /// Reads all samples the front-end holds (at most [`MAX_SAMPLES_PER_READ`]); the newest was taken at
    /// `now`. Does nothing without a sampling front-end.
    pub fn read_samples<S: SampleSource>(&mut self, now: Instant, src: &mut S) -> Result<usize, S::Error> {
        let Some(fs) = self.dsp.as_ref().map(|d| d.settings().sample_rate_hz as u64) else { return Ok(0) };
        let mut total = 0;
        while total < MAX_SAMPLES_PER_READ {
            let n = src.read_samples(&mut self.buf)?.min(self.buf.len());
            if n == 0 {
                break;
            }
            for k in 0..n {
                let raw = self.buf[k];
                let Some(dsp) = self.dsp.as_mut() else { break };
                let out = dsp.push(&raw);
                // Time of this sample: samples are contiguous and the last of this chunk is the newest so far.
                let back = (n - 1 - k) as u64 * 1_000_000_000 / fs;
                let t = Instant(now.as_nanos().saturating_sub(back));
                if let Some(c) = out.cycle {
                    self.on_cycle(t, &c);
                }
                if let Some(b) = out.block {
                    self.on_block(t, &b);
                }
            }
            total += n;
            if n < self.buf.len() {
                break;
            }
        }
        Ok(total)
    }

    /// Reads the newest measurements of a metering IC.
    pub fn read_phasors<P: PhasorSource>(&mut self, now: Instant, src: &mut P) -> Result<(), P::Error> {
        if let Some(c) = src.read_cycle()? {
            self.on_cycle(now, &c);
        }
        if let Some(b) = src.read_block()? {
            self.on_block(now, &b);
        }
        Ok(())
    }

    /// A FLISR message from neighbour `from`.
    pub fn on_peer(&mut self, now: Instant, from: PeerId, msg: PeerMsg) {
        self.flisr.on_peer(now, from, msg);
        if self.flisr.take_rebaseline() {
            self.protection.rebaseline();
        }
    }

    /// A raw frame from neighbour `from`; frames that are not FLISR messages are ignored.
    pub fn on_frame(&mut self, now: Instant, from: PeerId, frame: &[u8]) {
        if let Ok(m) = PeerMsg::decode(frame) {
            self.on_peer(now, from, m);
        }
    }

    /// Runs the state machines at `now`, drives the contactor, returns the next deadline.
    pub fn poll<C: Contactor>(&mut self, now: Instant, contactor: &mut C) -> Instant {
        self.protection.tick(now);
        let status = self.protection.status();
        let aux = contactor.aux_closed().ok();
        let out = self.flisr.poll(now, &status, aux, self.i_max_a);
        self.coil_error = contactor.set_coil(self.operator_hold.unwrap_or(out.coil_closed)).is_err();
        if status.trip.is_some() && self.flisr.locked_out() {
            self.protection.reset_trip();
        }
        let mut next = self.pq.poll(now);
        if let Some(p) = self.protection.poll(now) {
            next = next.min(p);
        }
        if let Some(f) = out.next_deadline {
            next = next.min(f);
        }
        if self.coil_error {
            next = next.min(now + Duration::from_millis(1));
        }
        next.max(now + Duration::from_nanos(1)).min(Instant::MAX)
    }

    /// An operator command: hold the contactor closed (`Some(true)`) or open (`Some(false)`) whatever
    /// protection and FLISR decide, or hand it back to them (`None`). Takes effect at the next `poll`.
    pub fn set_operator_hold(&mut self, hold: Option<bool>) {
        self.operator_hold = hold;
    }

    /// The operator's hold, if any.
    pub fn operator_hold(&self) -> Option<bool> {
        self.operator_hold
    }

    /// The next message to send: (neighbour, message).
    pub fn pop_outgoing(&mut self) -> Option<(PeerId, PeerMsg)> {
        self.flisr.pop_outgoing()
    }
}
