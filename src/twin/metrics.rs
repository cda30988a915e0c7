//! Fault metrics of a run: per fault its kind, true and located section, the detection, trip, isolation and
//! restoration times, customers interrupted and customer minutes lost; aggregates (share located correctly,
//! healthy-section trips, worst times, SAIFI, SAIDI, CAIDI, energy not supplied) and EN 50160 compliance per
//! LMU. The lead puts [`FaultsReport`] into `summary.json` under `faults`.
//!
//! Units: times in ms or s as the field names say, energy in kWh, minutes for customer minutes.
//!
//! A KPI over nothing is not applicable, never a score: a fault scheduled after the end of the run is not
//! scored (it is counted in `scheduled_after_end`), a share or worst time over no faults is `null` in
//! summary.json, an empty cell in CSV and `n/a` on the console. A fault that did happen but was never
//! tripped, isolated or restored within the run has `null` for that time, and the aggregates count it
//! (`not_tripped`, `not_isolated`, `not_restored`) beside the worst time of those that were.

use gridtwin_firmware::lmu::pq::En50160Counters;

/// One fault as the run saw it.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct FaultEvent {
    pub kind: String,
    pub line: i64,
    pub r_ohm: f64,
    /// Section named by the peer id of its upstream LMU.
    pub true_section: String,
    pub located_section: String,
    pub onset_s: f64,
    /// Onset to the first pickup or open-conductor condition at any LMU (ms).
    pub detection_ms: Option<f64>,
    /// Onset to the fault current being interrupted (ms).
    pub trip_ms: Option<f64>,
    /// The trip was by the LMU at the upstream end of the faulted section (not backup).
    pub selective: bool,
    /// Onset to both sides of the section confirmed open (s).
    pub isolation_s: Option<f64>,
    /// Onset to the last interrupted healthy customer re-energised (s); 0 when none was interrupted.
    pub restore_s: Option<f64>,
    /// Estimated distance from the locating LMU (m), where the section's reactance allows.
    pub distance_m: Option<f64>,
    /// LMUs that opened although their opening was not part of isolating this fault, plus a feeder-head fuse
    /// or breaker that operated for a fault outside its feeder's first section.
    pub healthy_trips: u32,
    /// Onset to the first interruption by a feeder-head fuse or breaker (ms), if one operated.
    pub feeder_head_ms: Option<f64>,
    /// The line (file index) whose feeder-head device operated first, and the current it interrupted (A).
    pub feeder_head_line: Option<i64>,
    pub feeder_head_current_a: Option<f64>,
    pub customers_interrupted: u32,
    pub healthy_customers_not_restored: u32,
    pub customer_minutes_lost: f64,
    pub energy_not_supplied_kwh: f64,
}

/// EN 50160 verdict of one LMU.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LmuCompliance {
    pub lmu: u16,
    pub bus: i64,
    pub intervals_10min: u32,
    pub voltage_within_10pct_share: f64,
    pub dips: u32,
    pub swells: u32,
    pub interruptions: u32,
    /// Valid 10-minute intervals with every phase's THD within 8 % (percent of them).
    pub thd_within_8pct_share: f64,
    /// 10-second frequency values within 49.5..=50.5 Hz (percent of them); `None` before the first.
    pub freq_within_1pct_share: Option<f64>,
    /// 10-second frequency values measured.
    pub freq_intervals_10s: u32,
    pub compliant: bool,
    /// The EN 50160 criteria this LMU fails: `voltage_95pct_within_10pct`, `voltage_all_within_p10_m15`,
    /// `thd_95pct_within_8pct`, `unbalance_95pct_within_2pct`, `freq_995pct_within_1pct`,
    /// `freq_all_within_p4_m6`.
    pub failed: Vec<&'static str>,
}

impl LmuCompliance {
    pub fn from_counters(lmu: u16, bus: i64, c: &En50160Counters) -> Self {
        let v = c.compliance();
        LmuCompliance {
            lmu,
            bus,
            intervals_10min: c.intervals_10min,
            voltage_within_10pct_share: v.voltage_within_10pct_share,
            dips: c.dips.iter().flatten().sum(),
            swells: c.swells.iter().flatten().sum(),
            interruptions: c.interruptions_short + c.interruptions_long,
            thd_within_8pct_share: share(c.thd_within_8pct, c.intervals_10min.saturating_sub(c.intervals_flagged))
                .unwrap_or(100.0),
            freq_within_1pct_share: share(c.freq_within_1pct, c.freq_intervals_10s),
            freq_intervals_10s: c.freq_intervals_10s,
            compliant: v.compliant,
            failed: [
                ("voltage_95pct_within_10pct", v.voltage_95pct_within_10pct),
                ("voltage_all_within_p10_m15", v.voltage_all_within_p10_m15),
                ("thd_95pct_within_8pct", v.thd_95pct_within_8pct),
                ("unbalance_95pct_within_2pct", v.unbalance_95pct_within_2pct),
                ("freq_995pct_within_1pct", v.freq_995pct_within_1pct),
                ("freq_all_within_p4_m6", v.freq_all_within_p4_m6),
            ]
            .into_iter()
            .filter(|(_, ok)| !ok)
            .map(|(name, _)| name)
            .collect(),
        }
    }
}

/// `100 n / d`, `None` when `d` is 0.
fn share(n: u32, d: u32) -> Option<f64> {
    (d > 0).then(|| 100.0 * n as f64 / d as f64)
}

/// The console line of the EN 50160 verdicts: how many LMUs comply and, per failed criterion, which LMUs
/// fail it.
pub fn en50160_human(en: &[LmuCompliance]) -> String {
    let ok = en.iter().filter(|c| c.compliant).count();
    let mut s = format!("EN 50160: {ok} of {} LMUs compliant", en.len());
    let mut criteria: Vec<&'static str> = en.iter().flat_map(|c| c.failed.iter().copied()).collect();
    criteria.sort_unstable();
    criteria.dedup();
    for (k, crit) in criteria.iter().enumerate() {
        let lmus: Vec<String> = en.iter().filter(|c| c.failed.contains(crit)).map(|c| c.lmu.to_string()).collect();
        s.push_str(if k == 0 { "; failing " } else { ", " });
        s.push_str(&format!("{crit} at LMU {}", lmus.join(" ")));
    }
    s
}

/// `summary.json` → `faults`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct FaultsReport {
    /// The faults whose onset fell within the run, in onset order.
    pub events: Vec<FaultEvent>,
    /// Faults scheduled at or after the end of the run: not scored.
    pub scheduled_after_end: u32,
    /// Share of `events` located in their true section (%); `None` without events.
    pub located_correct_pct: Option<f64>,
    /// Share of `events` with a healthy-section trip (%); `None` without events.
    pub healthy_trips_pct: Option<f64>,
    /// Worst trip time over the events that tripped (ms); `None` if none did.
    pub trip_ms_max: Option<f64>,
    /// Events not tripped within the run.
    pub not_tripped: u32,
    /// Worst isolation time over the events isolated (s); `None` if none was.
    pub isolation_s_max: Option<f64>,
    /// Events not isolated within the run.
    pub not_isolated: u32,
    /// Worst restoration time over the events restored (s); `None` if none was.
    pub restore_s_max: Option<f64>,
    /// Events whose healthy customers were not all restored within the run.
    pub not_restored: u32,
    /// Interruptions per customer served.
    pub saifi: f64,
    /// Interruption minutes per customer served.
    pub saidi_min: f64,
    /// Minutes per interruption; `None` without interruptions.
    pub caidi_min: Option<f64>,
    pub energy_not_supplied_kwh: f64,
    pub en50160: Vec<LmuCompliance>,
    /// The switching devices' coordination as commissioning computed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coordination: Option<Coordination>,
}

/// Coordination of the switching devices, computed at commissioning from the feeder's own IEC 60909
/// maximum short-circuit currents (currents in A RMS, times in ms).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Coordination {
    /// The LMUs' switching device: "contactor" or "breaker".
    pub lmu_device: &'static str,
    /// Its ultimate breaking capacity.
    pub lmu_breaking_a: f64,
    /// Largest prospective current at any LMU (three-phase or line-to-earth, at its bus).
    pub lmu_prospective_max_a: f64,
    /// LMUs whose prospective current exceeds their device's breaking capacity: above it they leave the
    /// fault to the feeder head.
    pub lmus_beyond_capacity: Vec<u16>,
    /// Longest time an LMU at the head of a feeder takes to clear a fault beyond it on its own (graded
    /// time, logic delay, one cycle to measure, release, the arc to the last current zero).
    pub lmu_clear_ms_max: f64,
    pub heads: Vec<HeadCoordination>,
    /// LMUs whose bus normally runs so low that commissioning lowered their healthy-voltage threshold below
    /// the settings file's (see `twin::build::commissioned_healthy_pu`); empty on most feeders.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub healthy_pu_lowered: Vec<HealthyThreshold>,
    /// LMUs whose sag threshold commissioning raised above the settings file's, because a break upstream
    /// moves their other phases by that much (see `twin::build::commissioned_sag_swing_pu`); empty on most
    /// feeders.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sag_swing_raised: Vec<SagThreshold>,
}

/// One LMU's shunt-sag threshold as commissioning set it (p.u. of the phase base).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct SagThreshold {
    pub lmu: u16,
    /// Largest swing of its healthy phases over the breaks upstream that take one of its phases (heaviest
    /// normal load, no generation).
    pub break_swing_pu: f64,
    pub sag_swing_pu: f64,
}

/// One LMU's healthy-voltage threshold as commissioning set it (p.u. of the phase base).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct HealthyThreshold {
    pub lmu: u16,
    /// Lowest phase voltage at its bus at the heaviest normal load (set-point loads, no generation).
    pub normal_min_pu: f64,
    pub healthy_pu: f64,
}

/// One feeder-head device's coordination with the first LMUs of its feeder.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct HeadCoordination {
    /// Line file index.
    pub line: i64,
    /// "gG fuse" or "breaker".
    pub device: &'static str,
    /// Prospective current at the head's terminals.
    pub head_fault_max_a: f64,
    /// Largest current the feeder's LMUs interrupt themselves (their prospective currents, up to their
    /// switch's breaking capacity); 0 without LMUs.
    pub through_fault_max_a: f64,
    /// The breaker's instantaneous pickup in use; `None` for a fuse or when it is off.
    pub instantaneous_a: Option<f64>,
    /// Time the device takes to operate at `through_fault_max_a`; `None`: it does not.
    pub operate_ms_at_through_fault: Option<f64>,
    /// Whether it leaves every fault beyond the first LMUs to them even when no FLISR message arrives: every
    /// LMU of the feeder can interrupt its prospective current, and the head does not operate at that
    /// current within the LMU's clearing time without messages (its graded time, see `lmu_clear_ms_max`)
    /// plus 50 ms. False where a lost message would let the head's short-time element act first.
    pub selective_without_messages: bool,
}

impl FaultsReport {
    /// Aggregates `events` (the faults whose onset fell within the run) over `customers_served` customers.
    pub fn aggregate(events: Vec<FaultEvent>, customers_served: u32, en50160: Vec<LmuCompliance>) -> Self {
        let n = events.len() as f64;
        let share = |count: usize| (!events.is_empty()).then(|| 100.0 * count as f64 / n);
        let correct = events.iter().filter(|e| e.located_section == e.true_section).count();
        let healthy = events.iter().filter(|e| e.healthy_trips > 0).count();
        let max = |f: &dyn Fn(&FaultEvent) -> Option<f64>| events.iter().filter_map(f).reduce(f64::max);
        let missing = |f: &dyn Fn(&FaultEvent) -> Option<f64>| events.iter().filter(|e| f(e).is_none()).count() as u32;
        // `+ 0.0`: an empty float sum is -0.0, which would print as "-0.000".
        let interrupted: f64 = events.iter().map(|e| e.customers_interrupted as f64).sum::<f64>() + 0.0;
        let minutes: f64 = events.iter().map(|e| e.customer_minutes_lost).sum::<f64>() + 0.0;
        let served = customers_served.max(1) as f64;
        let saifi = interrupted / served;
        let saidi = minutes / served;
        FaultsReport {
            scheduled_after_end: 0,
            located_correct_pct: share(correct),
            healthy_trips_pct: share(healthy),
            trip_ms_max: max(&|e| e.trip_ms),
            not_tripped: missing(&|e| e.trip_ms),
            isolation_s_max: max(&|e| e.isolation_s),
            not_isolated: missing(&|e| e.isolation_s),
            restore_s_max: max(&|e| e.restore_s),
            not_restored: missing(&|e| e.restore_s),
            saifi,
            saidi_min: saidi,
            caidi_min: (saifi > 0.0).then(|| saidi / saifi),
            energy_not_supplied_kwh: events.iter().map(|e| e.energy_not_supplied_kwh).sum::<f64>() + 0.0,
            events,
            en50160,
            coordination: None,
        }
    }

    /// The console line: `n/a` for what does not apply, counts of what did not happen within the run.
    pub fn human(&self) -> String {
        let na = |x: Option<f64>, digits: usize| x.map_or("n/a".to_string(), |v| format!("{v:.digits$}"));
        let not = |n: u32, what: &str| if n > 0 { format!(" ({n} {what})") } else { String::new() };
        let mut s = format!(
            "faults: {} located correctly {} %, trip max {} ms{}, isolation max {} s{}, restore max {} s{}, SAIDI {:.3} min",
            self.events.len(),
            na(self.located_correct_pct, 1),
            na(self.trip_ms_max, 0),
            not(self.not_tripped, "not tripped"),
            na(self.isolation_s_max, 3),
            not(self.not_isolated, "not isolated"),
            na(self.restore_s_max, 3),
            not(self.not_restored, "not restored"),
            self.saidi_min
        );
        if self.scheduled_after_end > 0 {
            s.push_str(&format!("; {} scheduled after the end, not scored", self.scheduled_after_end));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kpi_over_nothing_is_not_applicable() {
        let r = FaultsReport::aggregate(Vec::new(), 10, Vec::new());
        assert_eq!((r.located_correct_pct, r.trip_ms_max, r.caidi_min), (None, None, None));
        let v = serde_json::to_value(&r).unwrap();
        assert!(v["located_correct_pct"].is_null() && v["trip_ms_max"].is_null());
        assert!(r.human().contains("located correctly n/a %"), "{}", r.human());
        assert!(r.human().contains("SAIDI 0.000 min"), "{}", r.human());
    }

    #[test]
    fn an_untripped_fault_is_counted_not_infinite() {
        let ok = FaultEvent { trip_ms: Some(50.0), isolation_s: Some(0.1), restore_s: Some(0.2), ..Default::default() };
        let r = FaultsReport::aggregate(vec![ok, FaultEvent::default()], 10, Vec::new());
        assert_eq!((r.trip_ms_max, r.not_tripped), (Some(50.0), 1));
        assert_eq!(r.located_correct_pct, Some(100.0));
        assert!(r.human().contains("trip max 50 ms (1 not tripped)"), "{}", r.human());
    }
}
