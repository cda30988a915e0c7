//! Digital twin of the LMU's line contactor: coil, main contacts and auxiliary contact.
//!
//! The model ([`ContactorModel`], `models/contactor-*.ron`) gives operate (close) and release (open) times,
//! contact bounce on closing, the breaking capacity (opening above it welds the contacts: coordination with the
//! upstream fuse or breaker matters, see [`super::feeder_head`]; the firmware does not open above it),
//! mechanical and electrical life. Failure modes (welded, stuck open, coil
//! failure) can be injected. Units: ms in the model, amperes, ns for time.
//!
//! The twin implements the firmware's [`Contactor`] HAL. Because HAL calls carry no time, the owner sets
//! the present time with [`ContactorTwin::set_now`] before the firmware runs, then asks for the next
//! mechanical transition ([`ContactorTwin::next_transition`]) and applies it with [`ContactorTwin::advance`].

use gridtwin_firmware::hal::contactor::Contactor;
use gridtwin_firmware::hal::{ErrorKind, ErrorType};

/// Datasheet of a contactor.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactorModel {
    /// Rated operational current (A).
    pub rated_current_a: f64,
    /// Highest current it can interrupt (A RMS).
    pub breaking_capacity_a: f64,
    /// Coil energised to main contacts closed (ms).
    pub operate_ms: f64,
    /// Coil de-energised to main contacts open (ms).
    pub release_ms: f64,
    /// Duration of contact bounce after closing (ms).
    pub bounce_ms: f64,
    /// Number of bounces on closing.
    pub bounces: u32,
    /// Operations before mechanical wear-out.
    pub mechanical_life_ops: u64,
    /// Operations at rated current before electrical wear-out.
    pub electrical_life_ops: u64,
}

impl ContactorModel {
    /// Checks every field; the error names it.
    pub fn validate(&self) -> Result<(), String> {
        for (name, x, hi) in [
            ("rated_current_a", self.rated_current_a, 100_000.0),
            ("breaking_capacity_a", self.breaking_capacity_a, 1_000_000.0),
            ("operate_ms", self.operate_ms, 10_000.0),
            ("release_ms", self.release_ms, 10_000.0),
        ] {
            if !(x.is_finite() && x > 0.0 && x <= hi) {
                return Err(format!("{name}: must be within 0..={hi} and > 0 (got {x})"));
            }
        }
        if !(self.bounce_ms.is_finite() && (0.0..=100.0).contains(&self.bounce_ms)) {
            return Err(format!("bounce_ms: must be within 0..=100 (got {})", self.bounce_ms));
        }
        if self.breaking_capacity_a < self.rated_current_a {
            return Err("breaking_capacity_a: must be at least rated_current_a".into());
        }
        if self.mechanical_life_ops == 0 || self.electrical_life_ops == 0 {
            return Err("mechanical_life_ops/electrical_life_ops: must be > 0".into());
        }
        Ok(())
    }
}

/// An injected or acquired failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ContactorFailure {
    /// Main contacts welded closed (also the result of breaking above capacity).
    Welded,
    /// Mechanism jammed open.
    StuckOpen,
    /// Coil open circuit: the contacts drop open and cannot be closed.
    CoilFailure,
}

/// The contactor twin.
#[derive(Clone, Debug)]
pub struct ContactorTwin {
    m: ContactorModel,
    now_ns: u64,
    coil: bool,
    main_closed: bool,
    /// Pending mechanical transition: (target state, instant).
    pending: Option<(bool, u64)>,
    failure: Option<ContactorFailure>,
    operations: u64,
    /// Electrical wear in rated-current operations (I/Ir squared per break).
    electrical_wear: f64,
    bounces_total: u64,
    current_a: f64,
}

impl ContactorTwin {
    /// A contactor with its coil and contacts in the given state.
    pub fn new(model: ContactorModel, closed: bool) -> Result<Self, String> {
        model.validate()?;
        Ok(ContactorTwin {
            m: model,
            now_ns: 0,
            coil: closed,
            main_closed: closed,
            pending: None,
            failure: None,
            operations: 0,
            electrical_wear: 0.0,
            bounces_total: 0,
            current_a: 0.0,
        })
    }

    pub fn model(&self) -> &ContactorModel {
        &self.m
    }
    pub fn set_now(&mut self, now_ns: u64) {
        self.now_ns = now_ns;
    }
    /// The current through the main contacts (A RMS), for the breaking-capacity check.
    pub fn set_current(&mut self, a: f64) {
        if a.is_finite() {
            self.current_a = a.abs();
        }
    }
    pub fn is_closed(&self) -> bool {
        self.main_closed
    }
    pub fn failure(&self) -> Option<ContactorFailure> {
        self.failure
    }
    pub fn operations(&self) -> u64 {
        self.operations
    }
    pub fn bounces(&self) -> u64 {
        self.bounces_total
    }
    /// Remaining life as a share of the worse of mechanical and electrical life (percent).
    pub fn life_left_pct(&self) -> f64 {
        let mech = self.operations as f64 / self.m.mechanical_life_ops as f64;
        let elec = self.electrical_wear / self.m.electrical_life_ops as f64;
        (100.0 * (1.0 - mech.max(elec))).max(0.0)
    }

    /// Injects a failure from now on.
    pub fn inject(&mut self, f: ContactorFailure) {
        self.failure = Some(f);
        match f {
            ContactorFailure::Welded => {
                self.main_closed = true;
                self.pending = None;
            }
            ContactorFailure::StuckOpen => {
                self.main_closed = false;
                self.pending = None;
            }
            ContactorFailure::CoilFailure => {
                // The coil holds nothing: a closed contactor drops open after its release time.
                if self.main_closed {
                    self.pending = Some((false, self.now_ns + ms(self.m.release_ms)));
                }
            }
        }
    }

    /// Instant of the next mechanical transition, if one is under way.
    pub fn next_transition(&self) -> Option<u64> {
        self.pending.map(|(_, t)| t)
    }

    /// Applies transitions due at `now`; returns `Some(closed)` when the main contacts changed.
    pub fn advance(&mut self, now_ns: u64) -> Option<bool> {
        self.now_ns = now_ns;
        let (target, at) = self.pending?;
        if at > now_ns {
            return None;
        }
        self.pending = None;
        if target == self.main_closed {
            return None;
        }
        if !target {
            // Breaking: above the breaking capacity the arc is not interrupted and the contacts weld.
            if self.current_a > self.m.breaking_capacity_a {
                self.failure = Some(ContactorFailure::Welded);
                return None;
            }
            self.electrical_wear += (self.current_a / self.m.rated_current_a).powi(2).max(0.01);
        } else {
            self.bounces_total += self.m.bounces as u64;
        }
        self.operations += 1;
        self.main_closed = target;
        Some(target)
    }
}

fn ms(x: f64) -> u64 {
    (x * 1e6).round() as u64
}

impl ErrorType for ContactorTwin {
    type Error = ErrorKind;
}

impl Contactor for ContactorTwin {
    fn set_coil(&mut self, energised: bool) -> Result<(), ErrorKind> {
        if energised == self.coil {
            return Ok(());
        }
        self.coil = energised;
        match self.failure {
            Some(ContactorFailure::Welded) | Some(ContactorFailure::StuckOpen) => return Ok(()),
            Some(ContactorFailure::CoilFailure) => return Err(ErrorKind::NotResponding),
            None => {}
        }
        if energised {
            // Closed (after bounce) once the operate time and the bounce have passed.
            let t = self.now_ns + ms(self.m.operate_ms) + ms(self.m.bounce_ms);
            self.pending = Some((true, t));
        } else {
            self.pending = Some((false, self.now_ns + ms(self.m.release_ms)));
        }
        Ok(())
    }

    fn aux_closed(&mut self) -> Result<bool, ErrorKind> {
        Ok(self.main_closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> ContactorModel {
        ron::from_str(include_str!("../../models/contactor-lv400.ron")).unwrap()
    }

    #[test]
    fn opens_after_release_time_and_welds_above_capacity() {
        let mut c = ContactorTwin::new(model(), true).unwrap();
        c.set_now(1_000);
        c.set_current(300.0);
        c.set_coil(false).unwrap();
        assert_eq!(c.next_transition(), Some(1_000 + 18_000_000));
        assert_eq!(c.advance(1_000 + 17_000_000), None);
        assert_eq!(c.advance(1_000 + 18_000_000), Some(false));
        assert!(!c.aux_closed().unwrap());
        let mut w = ContactorTwin::new(model(), true).unwrap();
        w.set_current(20_000.0);
        w.set_coil(false).unwrap();
        assert_eq!(w.advance(50_000_000), None);
        assert_eq!(w.failure(), Some(ContactorFailure::Welded));
        assert!(w.aux_closed().unwrap());
    }

    #[test]
    fn missing_field_is_named() {
        let text = include_str!("../../models/contactor-lv400.ron").replace("release_ms: 18.0,", "");
        let err = ron::from_str::<ContactorModel>(&text).unwrap_err().to_string();
        assert!(err.contains("release_ms"), "{err}");
    }
}
