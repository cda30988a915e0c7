//! Power quality per IEC 61000-4-30 (class A concepts) and EN 50160: aggregation of 10-cycle values into
//! 150-cycle (3 s) and 10-minute values, 10-second frequency, voltage dips, swells and interruptions with
//! flagging of the aggregation intervals they overlap, and EN 50160 compliance counters.
//!
//! Units: volts (phase to neutral), hertz, percent of the declared voltage `u_din_v`; time in ns. The
//! aggregation is time-weighted (the mean of squares over the interval), which equals the standard's
//! root-mean-square of contiguous 10-cycle values and also serves the event-driven phasor fidelity, where a
//! measurement holds until the next one. 10-minute intervals are aligned to multiples of 10 min of `now`.
// Per-phase arrays (a, b, c) read most clearly with a phase index.
#![allow(clippy::needless_range_loop)]

use crate::hal::metering::BlockMeasurement;
use crate::lmu::SettingsError;
use crate::lmu::phasor::unbalance_pct;
use crate::time::Instant;
use alloc::collections::VecDeque;

const NS_PER_S: u64 = 1_000_000_000;
/// 150 cycles at 50 Hz.
pub const AGG_3S_NS: u64 = 3 * NS_PER_S;
pub const AGG_10S_NS: u64 = 10 * NS_PER_S;
pub const AGG_10MIN_NS: u64 = 600 * NS_PER_S;
/// Events kept for reporting (oldest dropped first).
pub const EVENT_LOG_LEN: usize = 64;

/// Power-quality settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PqSettings {
    /// Declared supply voltage, phase to neutral (V).
    pub u_din_v: f64,
    /// Nominal frequency (Hz).
    pub nominal_hz: f64,
    /// Dip threshold (percent of `u_din_v`), typically 90.
    pub dip_threshold_pct: f64,
    /// Swell threshold (percent), typically 110.
    pub swell_threshold_pct: f64,
    /// Interruption threshold (percent), typically 5.
    pub interruption_threshold_pct: f64,
    /// Hysteresis of all three detectors (percent), typically 2.
    pub hysteresis_pct: f64,
}

impl Default for PqSettings {
    fn default() -> Self {
        PqSettings {
            u_din_v: 230.0,
            nominal_hz: 50.0,
            dip_threshold_pct: 90.0,
            swell_threshold_pct: 110.0,
            interruption_threshold_pct: 5.0,
            hysteresis_pct: 2.0,
        }
    }
}

impl PqSettings {
    pub fn validate(&self) -> Result<(), SettingsError> {
        let in_range = |x: f64, lo: f64, hi: f64| x.is_finite() && x >= lo && x <= hi;
        if !in_range(self.u_din_v, 50.0, 1000.0) {
            return Err(SettingsError::new("u_din_v", "must be within 50..=1000 V"));
        }
        if !(self.nominal_hz == 50.0 || self.nominal_hz == 60.0) {
            return Err(SettingsError::new("nominal_hz", "must be 50 or 60"));
        }
        if !in_range(self.dip_threshold_pct, 50.0, 99.0) {
            return Err(SettingsError::new("dip_threshold_pct", "must be within 50..=99 %"));
        }
        if !in_range(self.swell_threshold_pct, 101.0, 200.0) {
            return Err(SettingsError::new("swell_threshold_pct", "must be within 101..=200 %"));
        }
        if !in_range(self.interruption_threshold_pct, 1.0, 20.0) {
            return Err(SettingsError::new("interruption_threshold_pct", "must be within 1..=20 %"));
        }
        if !in_range(self.hysteresis_pct, 0.0, 10.0) {
            return Err(SettingsError::new("hysteresis_pct", "must be within 0..=10 %"));
        }
        Ok(())
    }
}

/// Kind of a voltage event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PqEventKind {
    Dip,
    Swell,
    Interruption,
}

/// A finished voltage event.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PqEvent {
    pub kind: PqEventKind,
    pub start: Instant,
    pub duration_ns: u64,
    /// Residual (dips, interruptions: the lowest) or maximum (swells) voltage, percent of `u_din_v`.
    pub extreme_pct: f64,
}

/// A finished 10-minute value.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TenMinute {
    pub end: Instant,
    pub v_rms: [f64; 3],
    pub v_thd_pct: [f64; 3],
    pub unbalance_pct: f64,
    /// A dip, swell or interruption overlapped the interval (IEC 61000-4-30 flagging).
    pub flagged: bool,
}

/// EN 50160 counters over the observation period; fractions are of non-flagged 10-minute intervals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct En50160Counters {
    pub intervals_10min: u32,
    pub intervals_flagged: u32,
    pub voltage_within_10pct: u32,
    pub voltage_within_p10_m15: u32,
    pub thd_within_8pct: u32,
    pub unbalance_within_2pct: u32,
    pub freq_intervals_10s: u32,
    pub freq_within_1pct: u32,
    pub freq_within_p4_m6: u32,
    /// Dips by residual voltage (rows: 90-80, 80-70, 70-40, 40-5, <5 %) and duration
    /// (columns: 10-200 ms, 0.2-0.5 s, 0.5-1 s, 1-5 s, 5-60 s; longer ones count in the last column).
    pub dips: [[u32; 5]; 5],
    /// Swells by maximum (rows: >= 120 %, 110-120 %) and duration (10-500 ms, 0.5-5 s, 5-60 s+).
    pub swells: [[u32; 3]; 2],
    /// Interruptions shorter and longer than 3 minutes.
    pub interruptions_short: u32,
    pub interruptions_long: u32,
}

/// EN 50160 verdict from the counters.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct En50160Compliance {
    pub voltage_95pct_within_10pct: bool,
    pub voltage_all_within_p10_m15: bool,
    pub thd_95pct_within_8pct: bool,
    pub unbalance_95pct_within_2pct: bool,
    pub freq_995pct_within_1pct: bool,
    pub freq_all_within_p4_m6: bool,
    /// Share of non-flagged 10-minute intervals with all phases within +-10 % (percent).
    pub voltage_within_10pct_share: f64,
    /// All of the above hold (vacuously true before the first interval).
    pub compliant: bool,
}

impl En50160Counters {
    pub fn compliance(&self) -> En50160Compliance {
        let valid = self.intervals_10min.saturating_sub(self.intervals_flagged);
        let share = |n: u32, d: u32| if d == 0 { 100.0 } else { 100.0 * n as f64 / d as f64 };
        let mut c = En50160Compliance {
            voltage_95pct_within_10pct: share(self.voltage_within_10pct, valid) >= 95.0,
            voltage_all_within_p10_m15: self.voltage_within_p10_m15 == valid,
            thd_95pct_within_8pct: share(self.thd_within_8pct, valid) >= 95.0,
            unbalance_95pct_within_2pct: share(self.unbalance_within_2pct, valid) >= 95.0,
            freq_995pct_within_1pct: share(self.freq_within_1pct, self.freq_intervals_10s) >= 99.5,
            freq_all_within_p4_m6: self.freq_within_p4_m6 == self.freq_intervals_10s,
            voltage_within_10pct_share: share(self.voltage_within_10pct, valid),
            compliant: false,
        };
        c.compliant = c.voltage_95pct_within_10pct
            && c.voltage_all_within_p10_m15
            && c.thd_95pct_within_8pct
            && c.unbalance_95pct_within_2pct
            && c.freq_995pct_within_1pct
            && c.freq_all_within_p4_m6;
        c
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Acc {
    start: u64,
    dur_ns: u64,
    v_sq: [f64; 3],
    thd_sq: [f64; 3],
    unb: f64,
    flagged: bool,
}

impl Acc {
    fn add(&mut self, b: &BlockMeasurement, dt: u64) {
        let w = dt as f64;
        for p in 0..3 {
            self.v_sq[p] += b.v_rms[p] * b.v_rms[p] * w;
            self.thd_sq[p] += b.v_thd_pct[p] * b.v_thd_pct[p] * w;
        }
        self.unb += unbalance_pct(&b.v1) * w;
        self.dur_ns += dt;
    }
    fn rms(&self, x: &[f64; 3]) -> [f64; 3] {
        let d = self.dur_ns.max(1) as f64;
        [libm::sqrt(x[0] / d), libm::sqrt(x[1] / d), libm::sqrt(x[2] / d)]
    }
}

#[derive(Clone, Copy, Debug)]
struct Open {
    kind: PqEventKind,
    start: u64,
    extreme_pct: f64,
}

/// The power-quality state machine.
pub struct PowerQuality {
    s: PqSettings,
    current: Option<BlockMeasurement>,
    since: u64,
    agg_3s: Acc,
    agg_10min: Acc,
    freq_acc: (u64, u64, f64),
    last_3s: Option<[f64; 3]>,
    last_10min: Option<TenMinute>,
    events: VecDeque<PqEvent>,
    open: [Option<Open>; 3],
    counters: En50160Counters,
}

impl PowerQuality {
    pub fn new(s: PqSettings) -> Result<Self, SettingsError> {
        s.validate()?;
        Ok(PowerQuality {
            s,
            current: None,
            since: 0,
            agg_3s: Acc::default(),
            agg_10min: Acc::default(),
            freq_acc: (0, 0, 0.0),
            last_3s: None,
            last_10min: None,
            events: VecDeque::new(),
            open: [None; 3],
            counters: En50160Counters::default(),
        })
    }

    pub fn counters(&self) -> &En50160Counters {
        &self.counters
    }
    pub fn last_150_cycle_v_rms(&self) -> Option<[f64; 3]> {
        self.last_3s
    }
    pub fn last_10min(&self) -> Option<&TenMinute> {
        self.last_10min.as_ref()
    }
    /// Finished events, oldest first (bounded).
    pub fn events(&self) -> impl Iterator<Item = &PqEvent> {
        self.events.iter()
    }
    /// A dip, swell or interruption is in progress.
    pub fn event_in_progress(&self) -> bool {
        self.open.iter().any(|o| o.is_some())
    }

    /// Feeds the half-cycle RMS voltages (`Urms(1/2)`) for dip, swell and interruption detection.
    /// Non-finite values are ignored.
    pub fn on_half_cycle(&mut self, now: Instant, v_rms: [f64; 3]) {
        if v_rms.iter().any(|x| !x.is_finite()) {
            return;
        }
        self.advance(now);
        let pct = v_rms.map(|x| 100.0 * x / self.s.u_din_v);
        let min = pct.iter().cloned().fold(f64::INFINITY, f64::min);
        let max = pct.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let h = self.s.hysteresis_pct;
        let t = now.as_nanos();
        // Dip: starts when any channel falls below the threshold, ends when all are above threshold + hysteresis.
        self.detect(0, PqEventKind::Dip, min < self.s.dip_threshold_pct, min >= self.s.dip_threshold_pct + h, t, min);
        self.detect(
            1,
            PqEventKind::Swell,
            max > self.s.swell_threshold_pct,
            max <= self.s.swell_threshold_pct - h,
            t,
            max,
        );
        // Interruption: all channels below the threshold; ends when any is above threshold + hysteresis.
        let th = self.s.interruption_threshold_pct;
        self.detect(2, PqEventKind::Interruption, max < th, max >= th + h, t, max);
    }

    fn detect(&mut self, slot: usize, kind: PqEventKind, starts: bool, ends: bool, t: u64, value: f64) {
        match &mut self.open[slot] {
            None if starts => {
                self.open[slot] = Some(Open { kind, start: t, extreme_pct: value });
                self.agg_3s.flagged = true;
                self.agg_10min.flagged = true;
            }
            Some(o) => {
                o.extreme_pct =
                    if kind == PqEventKind::Swell { o.extreme_pct.max(value) } else { o.extreme_pct.min(value) };
                if ends {
                    let o = *o;
                    self.open[slot] = None;
                    self.finish(o, t);
                }
            }
            None => {}
        }
    }

    fn finish(&mut self, o: Open, end: u64) {
        let dur = end.saturating_sub(o.start);
        let ms = dur / 1_000_000;
        let dur_col5 = match ms {
            0..200 => 0,
            200..500 => 1,
            500..1000 => 2,
            1000..5000 => 3,
            _ => 4,
        };
        match o.kind {
            PqEventKind::Dip => {
                let row = match o.extreme_pct {
                    x if x >= 80.0 => 0,
                    x if x >= 70.0 => 1,
                    x if x >= 40.0 => 2,
                    x if x >= 5.0 => 3,
                    _ => 4,
                };
                self.counters.dips[row][dur_col5] += 1;
            }
            PqEventKind::Swell => {
                let row = if o.extreme_pct >= 120.0 { 0 } else { 1 };
                let col = match ms {
                    0..500 => 0,
                    500..5000 => 1,
                    _ => 2,
                };
                self.counters.swells[row][col] += 1;
            }
            PqEventKind::Interruption => {
                if dur < 180 * NS_PER_S {
                    self.counters.interruptions_short += 1;
                } else {
                    self.counters.interruptions_long += 1;
                }
            }
        }
        if self.events.len() >= EVENT_LOG_LEN {
            self.events.pop_front();
        }
        self.events.push_back(PqEvent {
            kind: o.kind,
            start: Instant(o.start),
            duration_ns: dur,
            extreme_pct: o.extreme_pct,
        });
    }

    /// Feeds a 10-cycle measurement; it holds from `now` until the next one.
    pub fn on_block(&mut self, now: Instant, b: &BlockMeasurement) {
        self.advance(now);
        let mut b = *b;
        // Garbage never reaches the aggregates.
        for p in 0..3 {
            if !b.v_rms[p].is_finite() {
                b.v_rms[p] = 0.0;
            }
            if !b.v_thd_pct[p].is_finite() {
                b.v_thd_pct[p] = 0.0;
            }
            if !b.i_rms[p].is_finite() {
                b.i_rms[p] = 0.0;
            }
            b.v1[p] = b.v1[p].finite_or_zero();
        }
        if !b.freq_hz.is_finite() {
            b.freq_hz = 0.0;
        }
        if self.current.is_none() {
            let t = now.as_nanos();
            self.agg_3s.start = t - t % AGG_3S_NS;
            self.agg_10min.start = t - t % AGG_10MIN_NS;
            self.freq_acc = (t - t % AGG_10S_NS, 0, 0.0);
        }
        self.current = Some(b);
        self.since = now.as_nanos();
    }

    /// Advances aggregation to `now`; returns the next deadline (the next 10-minute boundary).
    pub fn poll(&mut self, now: Instant) -> Instant {
        self.advance(now);
        let t = now.as_nanos();
        Instant(t - t % AGG_10MIN_NS).saturating_add(crate::time::Duration(AGG_10MIN_NS))
    }

    fn advance(&mut self, now: Instant) {
        let Some(b) = self.current else { return };
        let now = now.as_nanos();
        // Bounded: each step closes at least one interval or reaches `now`; long gaps close many empty ones
        // at once (the counters only count intervals with data).
        let mut guard = 0u32;
        while self.since < now && guard < 1_000_000 {
            guard += 1;
            let end3 = self.agg_3s.start + AGG_3S_NS;
            let end10 = self.agg_10min.start + AGG_10MIN_NS;
            let end_f = self.freq_acc.0 + AGG_10S_NS;
            let step_end = now.min(end3).min(end10).min(end_f);
            let dt = step_end - self.since;
            self.agg_3s.add(&b, dt);
            self.agg_10min.add(&b, dt);
            self.freq_acc.1 += dt;
            self.freq_acc.2 += b.freq_hz * dt as f64;
            self.since = step_end;
            if step_end == end3 {
                self.last_3s = Some(self.agg_3s.rms(&self.agg_3s.v_sq));
                let flagged = self.event_in_progress();
                self.agg_3s = Acc { start: end3, flagged, ..Default::default() };
            }
            if step_end == end_f {
                self.close_freq();
                // Skip whole empty 10 s intervals quickly when far behind.
                let t = self.since;
                self.freq_acc = (t - t % AGG_10S_NS, 0, 0.0);
            }
            if step_end == end10 {
                self.close_10min(end10);
            }
        }
    }

    fn close_freq(&mut self) {
        let (_, dur, sum) = self.freq_acc;
        if dur == 0 {
            return;
        }
        let f = sum / dur as f64;
        if f <= 0.0 {
            return; // no frequency measured (dead phases): not a valid 10 s value
        }
        let dev = 100.0 * (f - self.s.nominal_hz) / self.s.nominal_hz;
        self.counters.freq_intervals_10s += 1;
        if dev.abs() <= 1.0 {
            self.counters.freq_within_1pct += 1;
        }
        if (-6.0..=4.0).contains(&dev) {
            self.counters.freq_within_p4_m6 += 1;
        }
    }

    fn close_10min(&mut self, end: u64) {
        let a = self.agg_10min;
        let flagged = self.event_in_progress();
        self.agg_10min = Acc { start: end, flagged, ..Default::default() };
        if a.dur_ns == 0 {
            return;
        }
        let v = a.rms(&a.v_sq);
        let thd = a.rms(&a.thd_sq);
        let unb = a.unb / a.dur_ns as f64;
        let tm = TenMinute { end: Instant(end), v_rms: v, v_thd_pct: thd, unbalance_pct: unb, flagged: a.flagged };
        self.last_10min = Some(tm);
        let c = &mut self.counters;
        c.intervals_10min += 1;
        if a.flagged {
            c.intervals_flagged += 1;
            return;
        }
        let pct = v.map(|x| 100.0 * x / self.s.u_din_v);
        if pct.iter().all(|&p| (90.0..=110.0).contains(&p)) {
            c.voltage_within_10pct += 1;
        }
        if pct.iter().all(|&p| (85.0..=110.0).contains(&p)) {
            c.voltage_within_p10_m15 += 1;
        }
        if thd.iter().all(|&x| x <= 8.0) {
            c.thd_within_8pct += 1;
        }
        if unb <= 2.0 {
            c.unbalance_within_2pct += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lmu::phasor::Phasor;

    fn block(v: f64, thd: f64) -> BlockMeasurement {
        let a = 2.0 * core::f64::consts::PI / 3.0;
        BlockMeasurement {
            v_rms: [v; 3],
            i_rms: [10.0; 3],
            v_thd_pct: [thd; 3],
            v1: [Phasor::polar(v, 0.0), Phasor::polar(v, -a), Phasor::polar(v, a)],
            freq_hz: 50.0,
            quality: Default::default(),
        }
    }

    #[test]
    fn ten_minute_values_and_counters() {
        let mut pq = PowerQuality::new(PqSettings::default()).unwrap();
        pq.on_block(Instant(0), &block(230.0, 3.0));
        pq.on_block(Instant(300 * NS_PER_S), &block(260.0, 3.0));
        pq.poll(Instant(1200 * NS_PER_S));
        let c = pq.counters();
        assert_eq!(c.intervals_10min, 2);
        // First interval: half at 230 V, half at 260 V: 245.4 V, within +-10 %; the second (113 %) is not.
        assert_eq!(c.voltage_within_10pct, 1);
        assert_eq!(c.freq_intervals_10s, 120);
        assert_eq!(c.freq_within_1pct, 120);
        assert!(!c.compliance().compliant);
    }

    #[test]
    fn dip_is_classified_and_flags_the_interval() {
        let mut pq = PowerQuality::new(PqSettings::default()).unwrap();
        pq.on_block(Instant(0), &block(230.0, 1.0));
        let ms = 1_000_000u64;
        pq.on_half_cycle(Instant(1000 * ms), [230.0; 3]);
        pq.on_half_cycle(Instant(1010 * ms), [230.0, 100.0, 230.0]);
        pq.on_half_cycle(Instant(1300 * ms), [230.0, 228.0, 230.0]);
        pq.poll(Instant(600 * NS_PER_S));
        let c = pq.counters();
        assert_eq!(c.dips[2][1], 1, "43 % residual for 290 ms");
        assert_eq!(c.intervals_flagged, 1);
        assert_eq!(pq.events().count(), 1);
    }
}
