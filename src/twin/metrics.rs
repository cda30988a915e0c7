//! Fault metrics of a run: per fault its kind, true and located section, the detection, trip, isolation and
//! restoration times, customers interrupted and customer minutes lost; aggregates (share located correctly,
//! healthy-section trips, worst times, SAIFI, SAIDI, CAIDI, energy not supplied) and EN 50160 compliance per
//! LMU. The lead puts [`FaultsReport`] into `summary.json` under `faults`.
//!
//! Units: times in ms or s as the field names say, energy in kWh, minutes for customer minutes.

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
    pub compliant: bool,
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
            compliant: v.compliant,
        }
    }
}

/// `summary.json` → `faults`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct FaultsReport {
    pub events: Vec<FaultEvent>,
    pub located_correct_pct: f64,
    pub healthy_trips_pct: f64,
    pub trip_ms_max: Option<f64>,
    pub isolation_s_max: Option<f64>,
    pub restore_s_max: Option<f64>,
    /// Interruptions per customer served.
    pub saifi: f64,
    /// Interruption minutes per customer served.
    pub saidi_min: f64,
    /// Minutes per interruption.
    pub caidi_min: f64,
    pub energy_not_supplied_kwh: f64,
    pub en50160: Vec<LmuCompliance>,
}

impl FaultsReport {
    /// Aggregates `events` over `customers_served` customers.
    pub fn aggregate(events: Vec<FaultEvent>, customers_served: u32, en50160: Vec<LmuCompliance>) -> Self {
        let n = events.len().max(1) as f64;
        let correct = events.iter().filter(|e| e.located_section == e.true_section).count() as f64;
        let healthy = events.iter().filter(|e| e.healthy_trips > 0).count() as f64;
        let max = |f: &dyn Fn(&FaultEvent) -> Option<f64>| {
            events.iter().map(f).fold(None, |a: Option<f64>, x| match (a, x) {
                (_, None) => Some(f64::INFINITY),
                (None, Some(x)) => Some(x),
                (Some(a), Some(x)) => Some(a.max(x)),
            })
        };
        let interrupted: f64 = events.iter().map(|e| e.customers_interrupted as f64).sum();
        let minutes: f64 = events.iter().map(|e| e.customer_minutes_lost).sum();
        let served = customers_served.max(1) as f64;
        let saifi = interrupted / served;
        let saidi = minutes / served;
        FaultsReport {
            located_correct_pct: if events.is_empty() { 100.0 } else { 100.0 * correct / n },
            healthy_trips_pct: if events.is_empty() { 0.0 } else { 100.0 * healthy / n },
            trip_ms_max: max(&|e| e.trip_ms),
            isolation_s_max: max(&|e| e.isolation_s),
            restore_s_max: max(&|e| e.restore_s),
            saifi,
            saidi_min: saidi,
            caidi_min: if saifi > 0.0 { saidi / saifi } else { 0.0 },
            energy_not_supplied_kwh: events.iter().map(|e| e.energy_not_supplied_kwh).sum(),
            events,
            en50160,
        }
    }
}
