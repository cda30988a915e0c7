//! Digital twin of the LMU's switching device: a line contactor (IEC 60947-4-1) or a circuit breaker with a
//! shunt release and a motor operator (IEC 60947-2); coil (or release and motor), main contacts and auxiliary
//! contact.
//!
//! The model ([`ContactorModel`], `models/contactor-*.ron`, `models/lmu-breaker-*.ron`, each citing the
//! datasheet its ratings come from) gives operate (close) and release (contact separation) times, contact
//! bounce on closing, the breaking capacities, mechanical and electrical life. Failure modes (welded, stuck
//! open, coil failure) can be injected. Units: ms in the model, amperes RMS, ns for time.
//!
//! **Interruption at current zero.** Parting the contacts does not stop the current: an arc carries it until
//! a current zero at least `arcing_min_ms` after separation, in every phase that carries current. The twin
//! takes the phase-current phasors (the grid's reference, `i(t) = sqrt(2) |I| cos(2 pi f t + arg I)` with `t`
//! the simulation time) and reports the main contacts open when the last phase is interrupted; so does the
//! auxiliary contact (see [`Contactor::aux_closed`] below). The DC component of an asymmetrical fault current,
//! which shifts the zeros of the first cycles after the fault's inception, is not modelled; nor is the change
//! of the other phases' currents once the first pole has cleared.
//!
//! **Breaking capacity.** Above `breaking_capacity_a` (a contactor's rated breaking capacity; a breaker's
//! service short-circuit breaking capacity Ics) and up to `ultimate_breaking_a` (a breaker's Icu) the device
//! interrupts once and is then out of service (locked open: IEC 60947-2 does not require it to carry its
//! rated current after that duty). Above the ultimate capacity it does not interrupt: the arc is not
//! extinguished and the contacts weld, so the upstream fuse or breaker must clear ([`super::feeder_head`]);
//! the firmware does not open above the capacity it is given.
//!
//! The twin implements the firmware's [`Contactor`] HAL. Because HAL calls carry no time, the owner sets
//! the present time with [`ContactorTwin::set_now`] before the firmware runs, then asks for the next
//! mechanical transition ([`ContactorTwin::next_transition`]) and applies it with [`ContactorTwin::advance`].

use gridtwin_firmware::hal::contactor::Contactor;
use gridtwin_firmware::hal::{ErrorKind, ErrorType};

/// What the switching device is rated as.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DeviceKind {
    /// A contactor (IEC 60947-4-1): switches load currents, not short circuits.
    #[default]
    Contactor,
    /// A circuit breaker (IEC 60947-2) with a shunt release (opening) and a motor operator (closing).
    Breaker,
}

/// Datasheet of the LMU's switching device.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactorModel {
    /// What it is rated as.
    #[serde(default)]
    pub kind: DeviceKind,
    /// Where the ratings come from (manufacturer, type, document).
    #[serde(default)]
    pub datasheet: String,
    /// Rated operational current (A).
    pub rated_current_a: f64,
    /// Highest current it interrupts and stays fit for service (A RMS): a contactor's rated breaking capacity,
    /// a breaker's rated service short-circuit breaking capacity Ics.
    pub breaking_capacity_a: f64,
    /// Highest current it interrupts at all (A RMS): a breaker's rated ultimate short-circuit breaking
    /// capacity Icu. Absent: equal to `breaking_capacity_a`.
    #[serde(default)]
    pub ultimate_breaking_a: Option<f64>,
    /// Close command to main contacts closed (ms): coil operate time, or motor operator closing time.
    pub operate_ms: f64,
    /// Open command to contact separation (ms): coil release time, or shunt release response time.
    pub release_ms: f64,
    /// Shortest arc after contact separation that a current zero extinguishes (ms).
    #[serde(default)]
    pub arcing_min_ms: f64,
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
        if let Some(u) = self.ultimate_breaking_a
            && !(u.is_finite() && u >= self.breaking_capacity_a)
        {
            return Err(format!("ultimate_breaking_a: must be at least breaking_capacity_a (got {u})"));
        }
        if !(self.arcing_min_ms.is_finite() && (0.0..=20.0).contains(&self.arcing_min_ms)) {
            return Err(format!("arcing_min_ms: must be within 0..=20 (got {})", self.arcing_min_ms));
        }
        if self.mechanical_life_ops == 0 || self.electrical_life_ops == 0 {
            return Err("mechanical_life_ops/electrical_life_ops: must be > 0".into());
        }
        Ok(())
    }

    /// Highest current it interrupts at all (A RMS).
    pub fn ultimate_breaking_a(&self) -> f64 {
        self.ultimate_breaking_a.unwrap_or(self.breaking_capacity_a)
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
    phases: PhaseCurrents,
    /// Contact separation of the interruption under way (the arc burns until the pending transition).
    separated_ns: Option<u64>,
    arcs_ns: Vec<u64>,
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
            phases: PhaseCurrents::default(),
            separated_ns: None,
            arcs_ns: Vec::new(),
        })
    }

    pub fn model(&self) -> &ContactorModel {
        &self.m
    }
    pub fn set_now(&mut self, now_ns: u64) {
        self.now_ns = now_ns;
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
}

/// Phase-current phasors (A RMS: real, imaginary) and frequency (Hz) the device carries, for the current zeros.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PhaseCurrents {
    pub i: [(f64, f64); 3],
    pub freq_hz: f64,
}

impl PhaseCurrents {
    /// The first instant (ns) at or after `earliest_ns` by which every phase that carries current (more than
    /// 1 % of the largest, and at least 0.1 A) has passed a current zero. `earliest_ns` when none does.
    pub fn last_zero_after(&self, earliest_ns: u64) -> u64 {
        let mag = self.i.map(|(re, im)| re.hypot(im));
        let top = mag.iter().copied().fold(0.0, f64::max);
        if !(top.is_finite() && top >= 0.1 && self.freq_hz.is_finite() && self.freq_hz > 1.0) {
            return earliest_ns;
        }
        // Position of `earliest_ns` in cycles of the reference `cos(2 pi f t)`, split into whole seconds and
        // the rest so that days of simulation keep sub-nanosecond resolution.
        let (whole_s, rest_ns) = (earliest_ns / 1_000_000_000, earliest_ns % 1_000_000_000);
        let cycles = (whole_s as f64 * self.freq_hz).rem_euclid(1.0) + rest_ns as f64 * 1e-9 * self.freq_hz;
        let mut last = 0.0f64;
        for (p, &m) in mag.iter().enumerate() {
            if m < 0.01 * top || m < 0.1 {
                continue;
            }
            let (re, im) = self.i[p];
            // Zeros of cos(2 pi (f t) + theta): f t = 1/4 - theta / 2 pi + k / 2.
            let zero = 0.25 - im.atan2(re) / std::f64::consts::TAU;
            let wait = (zero - cycles).rem_euclid(0.5);
            last = last.max(wait);
        }
        earliest_ns + (last / self.freq_hz * 1e9).round() as u64
    }
}

impl ContactorTwin {
    /// The phase currents through the main contacts: the largest is the current it must break, and their
    /// zeros give the instant the arc goes out.
    pub fn set_phase_currents(&mut self, c: PhaseCurrents) {
        if c.i.iter().all(|(re, im)| re.is_finite() && im.is_finite()) && c.freq_hz.is_finite() {
            self.phases = c;
            self.current_a = c.i.iter().map(|(re, im)| re.hypot(*im)).fold(0.0, f64::max);
        }
    }
    /// Whether the contacts have parted and an arc still carries the current.
    pub fn arcing(&self) -> bool {
        self.separated_ns.is_some()
    }
    /// Arc durations of the interruptions so far (ns), in order.
    pub fn arcs_ns(&self) -> &[u64] {
        &self.arcs_ns
    }

    /// Injects a failure from now on.
    pub fn inject(&mut self, f: ContactorFailure) {
        self.failure = Some(f);
        if f != ContactorFailure::CoilFailure {
            self.separated_ns = None;
        }
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

    /// Applies transitions due at `now`; returns `Some(closed)` when the main contacts changed (opening: when
    /// the arc goes out at a current zero, not when the contacts part).
    pub fn advance(&mut self, now_ns: u64) -> Option<bool> {
        self.now_ns = now_ns;
        let (target, at) = self.pending?;
        if at > now_ns {
            return None;
        }
        self.pending = None;
        if target == self.main_closed {
            self.separated_ns = None;
            return None;
        }
        if !target {
            let Some(sep) = self.separated_ns else {
                // Contact separation. Above the ultimate breaking capacity the arc is not interrupted and
                // the contacts weld.
                if self.current_a > self.m.ultimate_breaking_a() {
                    self.failure = Some(ContactorFailure::Welded);
                    return None;
                }
                let out = if self.current_a < 0.1 {
                    now_ns
                } else {
                    self.phases.last_zero_after(now_ns + ms(self.m.arcing_min_ms))
                };
                if out > now_ns {
                    self.separated_ns = Some(now_ns);
                    self.pending = Some((false, out));
                    return None;
                }
                return Some(self.interrupted(now_ns, now_ns));
            };
            return Some(self.interrupted(sep, now_ns));
        }
        self.bounces_total += self.m.bounces as u64;
        self.operations += 1;
        self.main_closed = true;
        Some(true)
    }

    /// The arc went out at `now_ns` (contacts parted at `sep_ns`): the contacts are open.
    fn interrupted(&mut self, sep_ns: u64, now_ns: u64) -> bool {
        self.separated_ns = None;
        self.arcs_ns.push(now_ns - sep_ns);
        self.electrical_wear += (self.current_a / self.m.rated_current_a).powi(2).max(0.01);
        if self.current_a > self.m.breaking_capacity_a {
            // Beyond its service breaking capacity: interrupted once, then out of service.
            self.failure = Some(ContactorFailure::StuckOpen);
        }
        self.operations += 1;
        self.main_closed = false;
        if self.coil && self.failure.is_none() {
            // A close command came while the arc burned: the mechanism recloses now.
            self.pending = Some((true, now_ns + ms(self.m.operate_ms) + ms(self.m.bounce_ms)));
        }
        false
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
        if self.separated_ns.is_some() {
            // The contacts have parted; the arc goes out first (a close then follows, see `interrupted`).
            return Ok(());
        }
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
        // Read as "the switch conducts": open once the arc is out. (A real auxiliary contact follows the
        // mechanism and opens at separation, up to a half cycle earlier; the firmware takes its opening as
        // the interruption, so the twin reports the interruption itself.)
        Ok(self.main_closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> ContactorModel {
        ron::from_str(include_str!("../../models/contactor-lv400.ron")).unwrap()
    }

    fn balanced(a_rms: f64, angle_deg: f64) -> PhaseCurrents {
        let ph = |d: f64| {
            let r = (angle_deg + d).to_radians();
            (a_rms * r.cos(), a_rms * r.sin())
        };
        PhaseCurrents { i: [ph(0.0), ph(-120.0), ph(120.0)], freq_hz: 50.0 }
    }

    fn breaker(ics_a: f64, icu_a: f64) -> ContactorModel {
        let mut m: ContactorModel = ron::from_str(include_str!("../../models/lmu-breaker-lv400.ron")).unwrap();
        m.breaking_capacity_a = ics_a;
        m.ultimate_breaking_a = Some(icu_a);
        m
    }

    #[test]
    fn opens_at_the_last_current_zero_after_release_and_welds_above_capacity() {
        let mut c = ContactorTwin::new(model(), true).unwrap();
        c.set_now(0);
        c.set_phase_currents(balanced(300.0, 0.0));
        c.set_coil(false).unwrap();
        // Contacts part at 18 ms; the arc needs 1 ms, then each phase waits for its zero: A (0 deg) at
        // 25 ms, B (-120 deg) at 21.67 ms, C (+120 deg) at 28.33 ms. The last one opens the switch.
        assert_eq!(c.next_transition(), Some(18_000_000));
        assert_eq!(c.advance(18_000_000), None);
        assert!(c.arcing() && c.aux_closed().unwrap());
        let out = c.next_transition().unwrap();
        assert!((out as i64 - 28_333_333).abs() <= 1, "{out}");
        assert_eq!(c.advance(out - 1), None);
        assert_eq!(c.advance(out), Some(false));
        assert!(!c.aux_closed().unwrap() && !c.arcing());
        assert_eq!(c.arcs_ns().len(), 1);
        assert!((c.arcs_ns()[0] as i64 - 10_333_333).abs() <= 1);
        // No current: the contacts open at separation, no arc.
        let mut z = ContactorTwin::new(model(), true).unwrap();
        z.set_coil(false).unwrap();
        assert_eq!(z.advance(18_000_000), Some(false));
        // Above the contactor's 3.2 kA breaking capacity the arc is not interrupted: the contacts weld.
        let mut w = ContactorTwin::new(model(), true).unwrap();
        w.set_phase_currents(balanced(20_000.0, 30.0));
        w.set_coil(false).unwrap();
        assert_eq!(w.advance(50_000_000), None);
        assert_eq!(w.failure(), Some(ContactorFailure::Welded));
        assert!(w.aux_closed().unwrap());
    }

    #[test]
    fn current_zeros_hold_late_in_a_long_run_and_at_any_angle() {
        // Deep into a day the zero comes where the waveform says, not where rounding puts it.
        let day_ns = 86_400_000_000_000u64 + 1_234_567;
        for angle in [0.0f64, 17.0, 90.0, -45.0, 179.0] {
            let pc = PhaseCurrents {
                i: [(angle.to_radians().cos(), angle.to_radians().sin()), (0.0, 0.0), (0.0, 0.0)],
                freq_hz: 50.0,
            };
            let z = pc.last_zero_after(day_ns);
            assert!(z >= day_ns && z - day_ns <= 10_000_000, "{angle}: {}", z - day_ns);
            let t = z as f64 * 1e-9;
            let w = (std::f64::consts::TAU * 50.0 * (t - 86_400.0) + angle.to_radians()).cos();
            assert!(w.abs() < 1e-6, "{angle}: {w}");
        }
    }

    #[test]
    fn a_breaker_interrupts_up_to_icu_and_is_out_of_service_above_ics() {
        let open_at = |i_a: f64| {
            let mut c = ContactorTwin::new(breaker(25_000.0, 50_000.0), true).unwrap();
            c.set_phase_currents(balanced(i_a, 0.0));
            c.set_coil(false).unwrap();
            let sep = c.next_transition().unwrap();
            assert_eq!(sep, 50_000_000, "release time from the model");
            c.advance(sep);
            if let Some(out) = c.next_transition() {
                c.advance(out);
            }
            c
        };
        let ok = open_at(20_000.0);
        assert!(!ok.is_closed() && ok.failure().is_none());
        let spent = open_at(30_000.0);
        assert!(!spent.is_closed() && spent.failure() == Some(ContactorFailure::StuckOpen));
        let welded = open_at(60_000.0);
        assert!(welded.is_closed() && welded.failure() == Some(ContactorFailure::Welded));
        // A close command while the arc burns: the mechanism closes again once it is out.
        let mut c = ContactorTwin::new(breaker(25_000.0, 50_000.0), true).unwrap();
        c.set_phase_currents(balanced(1000.0, 0.0));
        c.set_coil(false).unwrap();
        c.advance(50_000_000);
        assert!(c.arcing());
        c.set_now(52_000_000);
        c.set_coil(true).unwrap();
        let out = c.next_transition().unwrap();
        assert_eq!(c.advance(out), Some(false));
        let close = c.next_transition().unwrap();
        assert_eq!(close, out + 80_000_000);
        assert_eq!(c.advance(close), Some(true));
        // Icu below Ics is refused by field.
        let mut bad = breaker(25_000.0, 50_000.0);
        bad.ultimate_breaking_a = Some(10_000.0);
        assert!(bad.validate().unwrap_err().starts_with("ultimate_breaking_a"));
    }

    #[test]
    fn missing_field_is_named() {
        let text = include_str!("../../models/contactor-lv400.ron").replace("release_ms: 18.0,", "");
        let err = ron::from_str::<ContactorModel>(&text).unwrap_err().to_string();
        assert!(err.contains("release_ms"), "{err}");
    }
}
