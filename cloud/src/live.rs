//! What the dashboard shows live: the latest state of every LMU, per-LMU reliability and power-quality
//! counters, the fault timeline and the service's counters, updated from each stored batch.

use crate::store::Reading;
use gridtwin_firmware::gateway::batch;
use std::collections::{BTreeMap, VecDeque};

/// Report flag bits (as the LMU firmware sets them).
pub mod flags {
    pub const OPEN: u16 = 1;
    pub const LOCKED_OUT: u16 = 2;
    pub const LOSS_OF_PHASE: u16 = 4;
    pub const PICKUP: u16 = 8;
    pub const PQ_VIOLATION: u16 = 16;
}

/// Nominal phase voltage, centivolts (230 V).
pub const U_NOM_CV: u32 = 23_000;
/// EN 50160 band for 95 % of 10-minute means: 230 V +/- 10 %, centivolts.
pub const EN50160_CV: (u16, u16) = (20_700, 25_300);
/// A phase below this is dead (10 % of nominal), centivolts.
pub const DEAD_CV: u16 = 2_300;
/// Fault events kept for the timeline.
pub const MAX_FAULTS: usize = 2_000;

/// Is the supply at this reading interrupted (contactor open or every phase dead)?
pub fn interrupted(r: &Reading) -> bool {
    r.flags & flags::OPEN != 0 || r.v_cv.iter().all(|&v| v < DEAD_CV)
}

/// Within the EN 50160 voltage band and not flagged by the LMU?
pub fn pq_ok(r: &Reading) -> bool {
    r.flags & flags::PQ_VIOLATION == 0 && r.v_cv.iter().all(|&v| (EN50160_CV.0..=EN50160_CV.1).contains(&v))
}

/// One LMU's state as the dashboard shows it (volts, amperes, minutes).
#[derive(Clone, Debug, serde::Serialize)]
pub struct LmuView {
    pub gateway: String,
    pub lmu: u32,
    pub seq: u32,
    pub generated_ms: u64,
    pub received_ms: u64,
    pub v_v: [f64; 3],
    pub i_a: [f64; 3],
    pub p_w: i32,
    pub q_var: i32,
    pub flags: u16,
    pub open: bool,
    pub readings: u64,
    pub interruptions: u32,
    pub minutes_lost: f64,
    pub pq_ok_pct: f64,
    pub en50160_ok: bool,
}

#[derive(Clone, Debug)]
struct LmuLive {
    last: Reading,
    readings: u64,
    interrupted: bool,
    interruptions: u32,
    lost_ms: u64,
    pq_ok: u64,
}

impl LmuLive {
    fn view(&self) -> LmuView {
        let r = &self.last;
        let pct = if self.readings == 0 { 100.0 } else { 100.0 * self.pq_ok as f64 / self.readings as f64 };
        LmuView {
            gateway: r.gateway.clone(),
            lmu: r.lmu,
            seq: r.seq,
            generated_ms: r.generated_ms,
            received_ms: r.received_ms,
            v_v: r.v_cv.map(|v| v as f64 / 100.0),
            i_a: r.i_ma.map(|i| i as f64 / 1000.0),
            p_w: r.p_w,
            q_var: r.q_var,
            flags: r.flags,
            open: r.flags & flags::OPEN != 0,
            readings: self.readings,
            interruptions: self.interruptions,
            minutes_lost: self.lost_ms as f64 / 60_000.0,
            pq_ok_pct: pct,
            en50160_ok: self.pq_ok * 100 >= self.readings * 95,
        }
    }
}

/// One entry of the fault timeline.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FaultEvent {
    pub generated_ms: u64,
    pub gateway: String,
    pub lmu: u32,
    pub what: &'static str,
}

/// Service counters.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Counters {
    pub messages: u64,
    pub readings_received: u64,
    pub readings_inserted: u64,
    pub duplicates_ignored: u64,
    pub malformed: u64,
    pub commands_sent: u64,
    pub connects: u64,
}

/// The operator's headline figures, recomputed after every stored batch and pushed with it.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Kpis {
    /// LMUs that have reported.
    pub lmus: usize,
    /// Interruptions per LMU.
    pub saifi: f64,
    /// Minutes lost per LMU.
    pub saidi_min: f64,
    /// LMUs within EN 50160 (at least 95 % of readings in band).
    pub en50160_compliant: usize,
}

/// What one stored batch changed (pushed to browsers).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Update {
    pub lmus: Vec<LmuView>,
    pub faults: Vec<FaultEvent>,
    pub counters: Counters,
    pub kpis: Kpis,
}

/// The live state.
#[derive(Default)]
pub struct Live {
    lmus: BTreeMap<(String, u32), LmuLive>,
    faults: VecDeque<FaultEvent>,
    pub counters: Counters,
}

const FLAG_EVENTS: [(u16, &str, &str); 4] = [
    (flags::LOCKED_OUT, "locked out (FLISR)", "lock-out reset"),
    (flags::LOSS_OF_PHASE, "loss of phase", "phases restored"),
    (flags::PICKUP, "fault pickup", "pickup cleared"),
    (flags::PQ_VIOLATION, "EN 50160 violation", "voltage back in band"),
];

impl Live {
    fn push_fault(&mut self, f: FaultEvent, out: &mut Vec<FaultEvent>) {
        if self.faults.len() >= MAX_FAULTS {
            self.faults.pop_front();
        }
        self.faults.push_back(f.clone());
        out.push(f);
    }

    /// Applies readings in generated order (older ones than an LMU's latest only count as readings).
    pub fn apply(&mut self, readings: &[Reading]) -> Update {
        let mut faults = Vec::new();
        let mut changed = BTreeMap::new();
        let mut sorted: Vec<&Reading> = readings.iter().collect();
        sorted.sort_by_key(|r| (r.generated_ms, r.lmu));
        for r in sorted {
            let key = (r.gateway.clone(), r.lmu);
            let now_int = interrupted(r);
            let ev = |what| FaultEvent { generated_ms: r.generated_ms, gateway: r.gateway.clone(), lmu: r.lmu, what };
            let mut new_faults = Vec::new();
            match self.lmus.get_mut(&key) {
                None => {
                    if now_int {
                        new_faults.push(ev("supply interrupted"));
                    }
                    for (bit, on, _) in FLAG_EVENTS {
                        if r.flags & bit != 0 {
                            new_faults.push(ev(on));
                        }
                    }
                    self.lmus.insert(
                        key.clone(),
                        LmuLive {
                            last: r.clone(),
                            readings: 1,
                            interrupted: now_int,
                            interruptions: now_int as u32,
                            lost_ms: 0,
                            pq_ok: pq_ok(r) as u64,
                        },
                    );
                }
                Some(l) => {
                    l.readings += 1;
                    l.pq_ok += pq_ok(r) as u64;
                    if r.generated_ms <= l.last.generated_ms {
                        continue;
                    }
                    if l.interrupted {
                        l.lost_ms += r.generated_ms - l.last.generated_ms;
                    }
                    if now_int && !l.interrupted {
                        l.interruptions += 1;
                        new_faults.push(ev("supply interrupted"));
                    } else if !now_int && l.interrupted {
                        new_faults.push(ev("supply restored"));
                    }
                    for (bit, on, off) in FLAG_EVENTS {
                        match (l.last.flags & bit != 0, r.flags & bit != 0) {
                            (false, true) => new_faults.push(ev(on)),
                            (true, false) => new_faults.push(ev(off)),
                            _ => {}
                        }
                    }
                    l.interrupted = now_int;
                    l.last = r.clone();
                }
            }
            for f in new_faults {
                self.push_fault(f, &mut faults);
            }
            changed.insert(key, ());
        }
        let lmus = changed.keys().filter_map(|k| self.lmus.get(k)).map(LmuLive::view).collect();
        Update { lmus, faults, counters: self.counters, kpis: self.kpis() }
    }

    pub fn lmus(&self) -> Vec<LmuView> {
        self.lmus.values().map(LmuLive::view).collect()
    }

    pub fn lmu(&self, lmu: u32) -> Vec<LmuView> {
        self.lmus.values().filter(|l| l.last.lmu == lmu).map(LmuLive::view).collect()
    }

    pub fn gateway_of(&self, lmu: u32) -> Option<String> {
        self.lmus.keys().find(|(_, l)| *l == lmu).map(|(g, _)| g.clone())
    }

    pub fn faults(&self, lmu: Option<u32>) -> Vec<FaultEvent> {
        self.faults.iter().filter(|f| lmu.is_none_or(|l| f.lmu == l)).cloned().collect()
    }

    /// The headline figures (SAIFI, SAIDI, EN 50160 compliance) over every LMU.
    pub fn kpis(&self) -> Kpis {
        let (saifi, saidi_min) = self.reliability();
        let en50160_compliant = self.lmus.values().filter(|l| l.pq_ok * 100 >= l.readings * 95).count();
        Kpis { lmus: self.lmus.len(), saifi, saidi_min, en50160_compliant }
    }

    /// SAIFI (interruptions per LMU) and SAIDI (minutes lost per LMU), each LMU standing for its customers.
    pub fn reliability(&self) -> (f64, f64) {
        let n = self.lmus.len().max(1) as f64;
        let i: u64 = self.lmus.values().map(|l| l.interruptions as u64).sum();
        let m: u64 = self.lmus.values().map(|l| l.lost_ms).sum();
        (i as f64 / n, m as f64 / 60_000.0 / n)
    }
}

/// Why a payload was not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Malformed {
    Topic(String),
    Batch(String),
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Malformed::Topic(t) => write!(f, "topic `{t}` is not grid/GATEWAY/events"),
            Malformed::Batch(e) => write!(f, "batch payload: {e}"),
        }
    }
}

/// Decodes one event message with the gateway's own batch codec.
pub fn decode_event(topic: &str, payload: &[u8], received_ms: u64) -> Result<Vec<Reading>, Malformed> {
    let mut parts = topic.split('/');
    let gateway = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("grid"), Some(g), Some("events"), None) if !g.is_empty() => g,
        _ => return Err(Malformed::Topic(topic.chars().take(200).collect())),
    };
    let rs = batch::decode(payload).map_err(|e| Malformed::Batch(e.to_string()))?;
    Ok(rs
        .into_iter()
        .map(|r| Reading {
            gateway: gateway.to_string(),
            lmu: r.lmu_id,
            seq: r.seq,
            generated_ms: r.taken_at_ms,
            received_ms,
            v_cv: r.v_cv,
            i_ma: r.i_ma,
            p_w: r.p_w,
            q_var: r.q_var,
            flags: r.flags,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridtwin_firmware::report::ReportRepr;

    fn rep(lmu: u32, seq: u32, t: u64, flags: u16, v: u16) -> ReportRepr {
        ReportRepr { lmu_id: lmu, seq, taken_at_ms: t, v_cv: [v; 3], i_ma: [1, 2, 3], p_w: 5, q_var: -6, flags }
    }

    #[test]
    fn decodes_with_the_gateway_codec_and_refuses_garbage() {
        let mut b = Vec::new();
        batch::encode(&[rep(1, 0, 1000, 0, 23_000), rep(2, 0, 1200, 0, 23_100)], &mut b).unwrap();
        let rs = decode_event("grid/gw1/events", &b, 99).unwrap();
        assert_eq!(rs.len(), 2);
        assert_eq!((rs[1].gateway.as_str(), rs[1].lmu, rs[1].generated_ms, rs[1].received_ms), ("gw1", 2, 1200, 99));
        assert!(matches!(decode_event("grid/gw1/other", &b, 0), Err(Malformed::Topic(_))));
        assert!(matches!(decode_event("grid/gw1/events", &b[..b.len() - 1], 0), Err(Malformed::Batch(_))));
        assert!(matches!(decode_event("grid/gw1/events", &[7, 1, 2], 0), Err(Malformed::Batch(_))));
    }

    #[test]
    fn interruptions_minutes_and_timeline() {
        let mut live = Live::default();
        let r = |seq: u32, t: u64, fl: u16| {
            decode_event(
                "grid/g/events",
                &{
                    let mut b = Vec::new();
                    batch::encode(&[rep(7, seq, t, fl, 23_000)], &mut b).unwrap();
                    b
                },
                0,
            )
            .unwrap()
        };
        live.apply(&r(0, 0, 0));
        let u = live.apply(&r(1, 60_000, flags::OPEN | flags::LOCKED_OUT));
        assert_eq!(
            u.faults.iter().map(|f| f.what).collect::<Vec<_>>(),
            vec!["supply interrupted", "locked out (FLISR)"]
        );
        live.apply(&r(2, 180_000, 0));
        let v = &live.lmus()[0];
        assert_eq!((v.interruptions, v.minutes_lost, v.readings), (1, 2.0, 3));
        assert_eq!(live.reliability(), (1.0, 2.0));
        assert_eq!(live.kpis(), Kpis { lmus: 1, saifi: 1.0, saidi_min: 2.0, en50160_compliant: 1 });
        assert_eq!(live.faults(Some(7)).len(), 4);
        assert!(live.faults(Some(8)).is_empty());
    }
}
