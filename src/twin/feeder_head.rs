//! Digital twin of the protective device at the head of each outgoing feeder: an IEC 60269 gG fuse or an
//! IEC 60947-2 circuit breaker with an electronic trip unit, at the substation end of every line that leaves
//! the transformer's LV bus (normally-open ties excluded: they come from elsewhere).
//!
//! It is the upstream half of the coordination with the LMUs' switches: faults between it and the first LMUs,
//! and currents an LMU's switch may not interrupt (above its breaking capacity, or a full-scale reading
//! where commissioning could not bound the current within that capacity) are this device's job; faults
//! beyond the first LMUs are theirs, which commissioning checks, and for a breaker sets, from the feeder's
//! own IEC 60909 currents (`faults.coordination` in the summary). The twin watches the solved current into each feeder-head line through
//! the grid agent's snapshots (`GridMsg::Solved`), accumulates its time-current characteristic (a share
//! `dt / t(I)` per interval of constant current, Miner's rule) and, when the share reaches one, interrupts
//! after its arcing (fuse) or break (breaker) time by opening its own switch on the line
//! (`GridMsg::SetSwitch`). A blown fuse or a tripped breaker stays open (replacement or reclosing is manual);
//! every operation is kept in [`FeederHeadAgent::operations`] for the faults report.
//!
//! Characteristics ([`FeederDeviceModel`], `models/*.ron`):
//! - **gG fuse**: melting time from a published-shape curve (log-log interpolation of (A, s) points), and
//!   `pre_arcing_i2t_a2s / I^2` above its last point (adiabatic melting); never below the first point (the
//!   conventional non-fusing current). Pre-arcing damage is not forgotten when the current falls.
//! - **Breaker**: long-time `t = long_time_s * (6 Ir / I)^2` above 1.2 Ir, definite short-time delay above
//!   `short_time_a`, instantaneous above `instantaneous_a` (set per feeder at commissioning with
//!   `selectivity_margin`: see [`FeederDeviceModel::coordinated_instantaneous_a`]); the trip unit resets
//!   when the current falls below every pickup.
//!
//! Units: A RMS (the largest phase), s and ms as named; time in ns on the queue.

use crate::agents::Msg;
use crate::engine::{Agent, AgentId, Ctx, Event, EventId, SimDuration, SimTime, class};
use crate::grid::GridMsg;

/// Datasheet of a feeder-head protective device.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub enum FeederDeviceModel {
    /// IEC 60269 gG fuse link.
    GgFuse {
        /// Rated current In (A).
        rated_current_a: f64,
        /// Pre-arcing (melting) time-current curve: (prospective current A RMS, melting time s), currents
        /// rising and times falling; no melting below the first current.
        melting_curve: Vec<(f64, f64)>,
        /// Pre-arcing I^2 t (A^2 s), for currents above the curve's last point.
        pre_arcing_i2t_a2s: f64,
        /// Arcing time from melting to interruption (ms).
        arcing_ms: f64,
    },
    /// Circuit breaker with an electronic trip unit (long-time, short-time, instantaneous).
    Breaker {
        /// Rated current In (A).
        rated_current_a: f64,
        /// Long-time pickup Ir (A).
        long_time_a: f64,
        /// Long-time delay at 6 Ir (s).
        long_time_s: f64,
        /// Short-time pickup Isd (A).
        short_time_a: f64,
        /// Short-time delay (ms).
        short_time_ms: f64,
        /// Instantaneous pickup Ii (A); with `selectivity_margin`, the trip unit's highest setting.
        instantaneous_a: f64,
        /// Trip to arc extinguished (ms).
        break_ms: f64,
        /// Set Ii at commissioning, per feeder: this factor times the largest current through the feeder's
        /// first LMUs for a fault beyond them (IEC 60909 maximum), so that the breaker leaves those faults to
        /// the LMUs; the factor covers the trip unit's pickup tolerance (1.1 for +-10 %). When that exceeds
        /// `instantaneous_a` the instantaneous element is off and the short-time delay grades the breaker
        /// after the LMUs. Absent: `instantaneous_a` as set, on every feeder.
        #[serde(default)]
        selectivity_margin: Option<f64>,
    },
}

fn positive(name: &str, x: f64, hi: f64) -> Result<(), String> {
    if x.is_finite() && x > 0.0 && x <= hi { Ok(()) } else { Err(format!("{name}: must be > 0 and <= {hi} (got {x})")) }
}

impl FeederDeviceModel {
    /// Checks every field; the error names it.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            FeederDeviceModel::GgFuse { rated_current_a, melting_curve, pre_arcing_i2t_a2s, arcing_ms } => {
                positive("rated_current_a", *rated_current_a, 10_000.0)?;
                positive("pre_arcing_i2t_a2s", *pre_arcing_i2t_a2s, 1e12)?;
                positive("arcing_ms", *arcing_ms, 100.0)?;
                if melting_curve.len() < 2 {
                    return Err("melting_curve: needs at least two (A, s) points".into());
                }
                for (k, &(i, t)) in melting_curve.iter().enumerate() {
                    positive(&format!("melting_curve[{k}].0"), i, 1e7)?;
                    positive(&format!("melting_curve[{k}].1"), t, 1e6)?;
                    if k > 0 && !(i > melting_curve[k - 1].0 && t < melting_curve[k - 1].1) {
                        return Err(format!("melting_curve[{k}]: currents must rise and times fall"));
                    }
                }
                if melting_curve[0].0 <= *rated_current_a {
                    return Err("melting_curve[0]: the first current must exceed rated_current_a".into());
                }
            }
            FeederDeviceModel::Breaker {
                rated_current_a,
                long_time_a,
                long_time_s,
                short_time_a,
                short_time_ms,
                instantaneous_a,
                break_ms,
                selectivity_margin,
            } => {
                if let Some(m) = selectivity_margin
                    && !(m.is_finite() && (1.0..=3.0).contains(m))
                {
                    return Err(format!("selectivity_margin: must be within 1..=3 (got {m})"));
                }
                positive("rated_current_a", *rated_current_a, 10_000.0)?;
                positive("long_time_a", *long_time_a, *rated_current_a)?;
                positive("long_time_s", *long_time_s, 1000.0)?;
                positive("short_time_ms", *short_time_ms, 10_000.0)?;
                positive("break_ms", *break_ms, 200.0)?;
                if !(short_time_a.is_finite() && *short_time_a > *long_time_a) {
                    return Err("short_time_a: must exceed long_time_a".into());
                }
                if !(instantaneous_a.is_finite() && *instantaneous_a > *short_time_a) {
                    return Err("instantaneous_a: must exceed short_time_a".into());
                }
            }
        }
        Ok(())
    }

    /// Time to operate (melt or trip) at a constant current `i` (A), or `None` if it never operates.
    pub fn operate_s(&self, i: f64) -> Option<f64> {
        self.operate_s_with(i, None)
    }

    /// The instantaneous pickup commissioning sets for a feeder whose first LMUs carry at most
    /// `through_fault_a` for a fault beyond them: `Some(Ii)`, `Some(INFINITY)` when no setting of the trip
    /// unit is selective (instantaneous off), or `None` for a fuse or a breaker set by hand.
    pub fn coordinated_instantaneous_a(&self, through_fault_a: f64) -> Option<f64> {
        match self {
            FeederDeviceModel::Breaker { short_time_a, instantaneous_a, selectivity_margin: Some(m), .. }
                if through_fault_a.is_finite() =>
            {
                let want = (m * through_fault_a).max(short_time_a * 1.001);
                Some(if want <= *instantaneous_a { want } else { f64::INFINITY })
            }
            _ => None,
        }
    }

    /// [`Self::operate_s`] with the breaker's instantaneous pickup replaced by `instantaneous_a` (A; infinite:
    /// off), as commissioning sets it per feeder.
    pub fn operate_s_with(&self, i: f64, instantaneous_a: Option<f64>) -> Option<f64> {
        if !(i.is_finite() && i > 0.0) {
            return None;
        }
        match self {
            FeederDeviceModel::GgFuse { melting_curve: c, pre_arcing_i2t_a2s, .. } => {
                let (first, last) = (c[0], c[c.len() - 1]);
                if i < first.0 {
                    return None;
                }
                if i >= last.0 {
                    return Some((pre_arcing_i2t_a2s / (i * i)).min(last.1));
                }
                let k = c.windows(2).position(|w| i < w[1].0).unwrap_or(c.len() - 2);
                let ((i0, t0), (i1, t1)) = (c[k], c[k + 1]);
                let s = (i / i0).ln() / (i1 / i0).ln();
                Some((t0.ln() + s * (t1.ln() - t0.ln())).exp())
            }
            FeederDeviceModel::Breaker {
                long_time_a,
                long_time_s,
                short_time_a,
                short_time_ms,
                instantaneous_a: ii_model,
                ..
            } => {
                let ii = instantaneous_a.unwrap_or(*ii_model);
                if i >= ii {
                    Some(0.0)
                } else if i >= *short_time_a {
                    // Above its pickup the short-time element's definite delay governs: the long-time
                    // curve extended to tens of kA would trip sooner and undo the time grading.
                    Some(short_time_ms / 1000.0)
                } else if i > 1.2 * long_time_a {
                    Some(long_time_s * (6.0 * long_time_a / i).powi(2))
                } else {
                    None
                }
            }
        }
    }

    /// Melting/trip to interruption (ms).
    pub fn interrupt_ms(&self) -> f64 {
        match self {
            FeederDeviceModel::GgFuse { arcing_ms, .. } => *arcing_ms,
            FeederDeviceModel::Breaker { break_ms, .. } => *break_ms,
        }
    }

    fn resets(&self) -> bool {
        matches!(self, FeederDeviceModel::Breaker { .. })
    }

    /// "gG fuse" or "breaker", for reports.
    pub fn label(&self) -> &'static str {
        match self {
            FeederDeviceModel::GgFuse { .. } => "gG fuse",
            FeederDeviceModel::Breaker { .. } => "breaker",
        }
    }
}

/// One feeder-head device: where it sits and its state.
#[derive(Clone, Debug)]
pub struct FeederHead {
    /// Line position in the network.
    pub line_pos: usize,
    /// Line file index.
    pub line: i64,
    /// The device sits at the line's from end (0) or to end (1).
    pub end: usize,
    /// Its switch position in the grid model.
    pub switch: usize,
    /// The breaker's instantaneous pickup set at commissioning for this feeder (A; infinite: off), or `None`
    /// for the model's own.
    pub instantaneous_a: Option<f64>,
    /// Accumulated share of the time-current characteristic (operates at 1).
    damage: f64,
    /// Current since `since` (A).
    i_a: f64,
    since: SimTime,
    timer: Option<(SimTime, EventId)>,
    operated: bool,
}

impl FeederHead {
    pub fn new(line_pos: usize, line: i64, end: usize, switch: usize) -> Self {
        FeederHead {
            line_pos,
            line,
            end,
            switch,
            instantaneous_a: None,
            damage: 0.0,
            i_a: 0.0,
            since: SimTime::ZERO,
            timer: None,
            operated: false,
        }
    }
}

/// An operation of a feeder-head device.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct FeederOperation {
    /// Line file index.
    pub line: i64,
    /// When it melted or tripped (ns).
    pub operated_ns: u64,
    /// When the current was interrupted (ns).
    pub interrupted_ns: u64,
    /// Current at the operation (A RMS, largest phase).
    pub current_a: f64,
}

/// The feeder-head devices of one feeder on the event queue.
pub struct FeederHeadAgent {
    model: FeederDeviceModel,
    grid: AgentId,
    pub heads: Vec<FeederHead>,
    pub operations: Vec<FeederOperation>,
}

impl FeederHeadAgent {
    pub fn new(model: FeederDeviceModel, grid: AgentId, heads: Vec<FeederHead>) -> Result<Self, String> {
        model.validate()?;
        Ok(FeederHeadAgent { model, grid, heads, operations: Vec::new() })
    }

    pub fn model(&self) -> &FeederDeviceModel {
        &self.model
    }

    /// Accumulates head `k`'s characteristic up to `now` at its present current.
    fn integrate(&mut self, k: usize, now: SimTime) {
        let h = &mut self.heads[k];
        let dt = now.as_nanos().saturating_sub(h.since.as_nanos()) as f64 * 1e-9;
        match self.model.operate_s_with(h.i_a, h.instantaneous_a) {
            Some(t) if t <= 0.0 => h.damage = 1.0,
            Some(t) => h.damage += dt / t,
            None if self.model.resets() => h.damage = 0.0,
            None => {}
        }
        h.since = now;
    }

    fn operate(&mut self, k: usize, ctx: &mut Ctx<'_, Msg>) {
        let now = ctx.now();
        let h = &mut self.heads[k];
        h.operated = true;
        if let Some((_, id)) = h.timer.take() {
            ctx.cancel(id);
        }
        let at = now.saturating_add(SimDuration::from_nanos((self.model.interrupt_ms() * 1e6).round() as u64));
        ctx.digest(0x4648_0000_0000 | h.line_pos as u64);
        ctx.send_at(self.grid, at, class::GRID, Msg::Grid(GridMsg::SetSwitch { switch: h.switch, closed: false }));
        self.operations.push(FeederOperation {
            line: h.line,
            operated_ns: now.as_nanos(),
            interrupted_ns: at.as_nanos(),
            current_a: h.i_a,
        });
    }

    /// After a change of current or a timer: operate, or (re)arm the timer for the operating instant.
    fn review(&mut self, k: usize, ctx: &mut Ctx<'_, Msg>) {
        if self.heads[k].operated {
            return;
        }
        if self.heads[k].damage >= 1.0 - 1e-12 {
            self.operate(k, ctx);
            return;
        }
        let now = ctx.now();
        let due = self.model.operate_s_with(self.heads[k].i_a, self.heads[k].instantaneous_a).map(|t| {
            let left_ns = ((1.0 - self.heads[k].damage) * t * 1e9).ceil().max(1.0);
            now.saturating_add(SimDuration::from_nanos(left_ns.min(u64::MAX as f64 / 2.0) as u64))
        });
        let h = &mut self.heads[k];
        if h.timer.map(|(t, _)| t) == due {
            return;
        }
        if let Some((_, id)) = h.timer.take() {
            ctx.cancel(id);
        }
        if let Some(t) = due {
            let id = ctx.schedule_at(t, class::SENSE, Msg::Timer(k as u64));
            self.heads[k].timer = Some((t, id));
        }
    }
}

impl Agent<Msg> for FeederHeadAgent {
    fn handle(&mut self, ev: Event<Msg>, ctx: &mut Ctx<'_, Msg>) {
        let now = ctx.now();
        match ev.msg {
            Msg::Grid(GridMsg::Solved(snap)) => {
                for k in 0..self.heads.len() {
                    self.integrate(k, now);
                    let h = &self.heads[k];
                    let i = snap.line_i_ka.get(h.line_pos).map_or(0.0, |e| {
                        e[h.end].iter().map(|p| p.norm() * 1000.0).filter(|x| x.is_finite()).fold(0.0, f64::max)
                    });
                    self.heads[k].i_a = i;
                    self.review(k, ctx);
                }
            }
            Msg::Timer(k) => {
                let k = k as usize;
                if k < self.heads.len() {
                    self.heads[k].timer = None;
                    self.integrate(k, now);
                    if !self.heads[k].operated && self.model.operate_s(self.heads[k].i_a).is_some() {
                        // The timer was armed for the instant the share reaches one.
                        self.heads[k].damage = self.heads[k].damage.max(1.0);
                    }
                    self.review(k, ctx);
                }
            }
            _ => {}
        }
    }

    fn kind(&self) -> &'static str {
        "feeder-head"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fuse() -> FeederDeviceModel {
        FeederDeviceModel::GgFuse {
            rated_current_a: 400.0,
            melting_curve: vec![(640.0, 3600.0), (2200.0, 10.0), (5200.0, 0.1), (8000.0, 0.02)],
            pre_arcing_i2t_a2s: 7.5e5,
            arcing_ms: 4.0,
        }
    }

    fn breaker() -> FeederDeviceModel {
        FeederDeviceModel::Breaker {
            rated_current_a: 630.0,
            long_time_a: 630.0,
            long_time_s: 10.0,
            short_time_a: 4000.0,
            short_time_ms: 500.0,
            instantaneous_a: 8200.0,
            break_ms: 15.0,
            selectivity_margin: None,
        }
    }

    #[test]
    fn fuse_curve_is_monotonic_and_never_melts_at_load() {
        let f = fuse();
        f.validate().unwrap();
        assert_eq!(f.operate_s(400.0), None);
        assert_eq!(f.operate_s(600.0), None);
        assert!((f.operate_s(2200.0).unwrap() - 10.0).abs() < 1e-9);
        let mut prev = f64::INFINITY;
        for i in [700.0, 1000.0, 3000.0, 6000.0, 9000.0, 29_000.0] {
            let t = f.operate_s(i).unwrap();
            assert!(t < prev, "{i} A: {t} s");
            prev = t;
        }
        // Adiabatic above the curve: 29 kA melts in under a millisecond (current-limiting).
        assert!(f.operate_s(29_000.0).unwrap() < 1e-3);
    }

    #[test]
    fn breaker_elements_and_bad_models_are_named() {
        let b = breaker();
        b.validate().unwrap();
        assert_eq!(b.operate_s(600.0), None);
        assert_eq!(b.operate_s(9000.0), Some(0.0));
        assert_eq!(b.operate_s(5000.0), Some(0.5));
        assert!((b.operate_s(3780.0).unwrap() - 10.0).abs() < 1e-9);
        let FeederDeviceModel::Breaker {
            rated_current_a,
            long_time_a,
            long_time_s,
            short_time_a,
            short_time_ms,
            break_ms,
            ..
        } = b
        else {
            unreachable!()
        };
        let with = |instantaneous_a: f64, selectivity_margin: Option<f64>| FeederDeviceModel::Breaker {
            rated_current_a,
            long_time_a,
            long_time_s,
            short_time_a,
            short_time_ms,
            instantaneous_a,
            break_ms,
            selectivity_margin,
        };
        assert!(with(1000.0, None).validate().unwrap_err().starts_with("instantaneous_a"));
        let bad = with(8200.0, Some(0.8));
        assert!(bad.validate().unwrap_err().starts_with("selectivity_margin"));
        let FeederDeviceModel::GgFuse { rated_current_a, pre_arcing_i2t_a2s, arcing_ms, .. } = fuse() else {
            unreachable!()
        };
        let bad = FeederDeviceModel::GgFuse {
            rated_current_a,
            melting_curve: vec![(640.0, 1.0), (700.0, 2.0)],
            pre_arcing_i2t_a2s,
            arcing_ms,
        };
        assert!(bad.validate().unwrap_err().starts_with("melting_curve[1]"));
    }

    #[test]
    fn commissioning_sets_the_instantaneous_pickup_above_the_lmus_currents_or_switches_it_off() {
        let shipped: FeederDeviceModel = ron::from_str(include_str!("../../models/breaker-lv630.ron")).unwrap();
        shipped.validate().unwrap();
        // 7.7 kA through the first LMU: Ii = 1.1 x 7.7 kA; the breaker then leaves 7.7 kA to the short-time
        // element (500 ms) and trips at once only above Ii.
        let ii = shipped.coordinated_instantaneous_a(7700.0).unwrap();
        assert!((ii - 8470.0).abs() < 1e-6, "{ii}");
        assert_eq!(shipped.operate_s_with(7700.0, Some(ii)), Some(0.5));
        assert_eq!(shipped.operate_s_with(8500.0, Some(ii)), Some(0.0));
        // Beyond the trip unit's highest setting (15 In): off, graded by the short-time delay alone.
        let off = shipped.coordinated_instantaneous_a(9000.0).unwrap();
        assert!(off.is_infinite());
        assert_eq!(shipped.operate_s_with(29_000.0, Some(off)), Some(0.5));
        // Low through-fault currents: never below the short-time pickup.
        assert!(shipped.coordinated_instantaneous_a(1000.0).unwrap() > 4000.0);
        // A fuse, or a breaker set by hand, has nothing to set.
        assert_eq!(fuse().coordinated_instantaneous_a(7700.0), None);
        assert_eq!(breaker().coordinated_instantaneous_a(7700.0), None);
    }
}
