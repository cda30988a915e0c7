//! A compromised LMU: a device in the field whose firmware the attacker controls. It holds the network's valid
//! keys, so frame security accepts everything it sends; what limits it is what the honest LMUs check against
//! their own measurements.
//!
//! From `start` to `stop` it lies, in the ways the scenario enables:
//! - **valid-but-malicious commands**: every `open_every` it sends `Open` for its own section to each of its
//!   FLISR neighbours, sealed under the network key like any genuine request (honest LMUs with
//!   `open_evidence_ms` obey only with local evidence of a fault);
//! - **no fault passage**: it never sends `Block`, so during a real fault downstream of it its upstream
//!   neighbour takes the fault for its own section (nothing local tells that neighbour otherwise);
//! - **fake readings**: its periodic reports show nominal voltage and no load;
//! - **its own contactor**: it opens it and holds it open (no scheme can stop a device switching itself;
//!   what the others limit is the spread).
//!
//! The operator removes it by rotating the network key to one it is not given (`rotations[].exclude`); once
//! the old key is retired its frames are refused. Units: ns.

use crate::engine::{SimDuration, SimTime};
use gridtwin_firmware::report::ReportRepr;

/// What a compromised LMU does, and counts of what it did.
#[derive(Clone, Debug)]
pub struct Insider {
    pub start: SimTime,
    pub stop: SimTime,
    pub open_every: Option<SimDuration>,
    pub suppress_block: bool,
    pub fake_readings: bool,
    pub open_own: bool,
    pub opens_sent: u64,
    pub blocks_suppressed: u64,
    pub readings_faked: u64,
}

impl Insider {
    pub fn new(
        start: SimTime,
        stop: SimTime,
        open_every: Option<SimDuration>,
        suppress_block: bool,
        fake_readings: bool,
        open_own: bool,
    ) -> Self {
        Insider {
            start,
            stop,
            open_every,
            suppress_block,
            fake_readings,
            open_own,
            opens_sent: 0,
            blocks_suppressed: 0,
            readings_faked: 0,
        }
    }

    /// Whether it lies at `t`.
    pub fn active(&self, t: SimTime) -> bool {
        t >= self.start && t < self.stop
    }

    /// The reading it reports instead of `r`: nominal voltage, no current, no power.
    pub fn fake(&mut self, r: ReportRepr) -> ReportRepr {
        self.readings_faked += 1;
        ReportRepr { v_cv: [23_000; 3], i_ma: [0; 3], p_w: 0, q_var: 0, ..r }
    }
}
