//! Complex phasors (RMS-scaled: the magnitude is the RMS value of the sinusoid, in volts or amperes) and
//! symmetrical components.

use core::ops::{Add, Mul, Neg, Sub};

/// A complex number used as an RMS phasor (`re + j im`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Phasor {
    pub re: f64,
    pub im: f64,
}

impl Phasor {
    pub const ZERO: Phasor = Phasor { re: 0.0, im: 0.0 };
    pub const fn new(re: f64, im: f64) -> Self {
        Phasor { re, im }
    }
    /// From magnitude and angle in radians.
    pub fn polar(mag: f64, angle_rad: f64) -> Self {
        Phasor { re: mag * libm::cos(angle_rad), im: mag * libm::sin(angle_rad) }
    }
    pub fn abs(self) -> f64 {
        libm::hypot(self.re, self.im)
    }
    pub fn norm_sqr(self) -> f64 {
        self.re * self.re + self.im * self.im
    }
    pub fn arg(self) -> f64 {
        libm::atan2(self.im, self.re)
    }
    pub fn conj(self) -> Self {
        Phasor { re: self.re, im: -self.im }
    }
    pub fn scale(self, k: f64) -> Self {
        Phasor { re: self.re * k, im: self.im * k }
    }
    /// Rotated by `angle_rad`.
    pub fn rotate(self, angle_rad: f64) -> Self {
        self * Phasor::polar(1.0, angle_rad)
    }
    /// True when both parts are finite.
    pub fn is_finite(self) -> bool {
        self.re.is_finite() && self.im.is_finite()
    }
    /// The phasor, or zero if it is not finite (garbage never propagates into protection decisions).
    pub fn finite_or_zero(self) -> Self {
        if self.is_finite() { self } else { Phasor::ZERO }
    }
}

impl Add for Phasor {
    type Output = Phasor;
    fn add(self, o: Phasor) -> Phasor {
        Phasor { re: self.re + o.re, im: self.im + o.im }
    }
}
impl Sub for Phasor {
    type Output = Phasor;
    fn sub(self, o: Phasor) -> Phasor {
        Phasor { re: self.re - o.re, im: self.im - o.im }
    }
}
impl Neg for Phasor {
    type Output = Phasor;
    fn neg(self) -> Phasor {
        Phasor { re: -self.re, im: -self.im }
    }
}
impl Mul for Phasor {
    type Output = Phasor;
    fn mul(self, o: Phasor) -> Phasor {
        Phasor { re: self.re * o.re - self.im * o.im, im: self.re * o.im + self.im * o.re }
    }
}

/// The operator a = 1 /120°.
pub fn op_a() -> Phasor {
    Phasor::new(-0.5, 0.866_025_403_784_438_6)
}

/// Symmetrical components (zero, positive, negative) of a phase set a, b, c.
pub fn sequence(p: &[Phasor; 3]) -> [Phasor; 3] {
    let a = op_a();
    let a2 = a * a;
    let third = 1.0 / 3.0;
    let zero = (p[0] + p[1] + p[2]).scale(third);
    let pos = (p[0] + a * p[1] + a2 * p[2]).scale(third);
    let neg = (p[0] + a2 * p[1] + a * p[2]).scale(third);
    [zero, pos, neg]
}

/// Negative-sequence unbalance |U2|/|U1| in percent (0 when there is no positive sequence).
pub fn unbalance_pct(p: &[Phasor; 3]) -> f64 {
    let s = sequence(p);
    let u1 = s[1].abs();
    if u1 > 1e-9 && u1.is_finite() { 100.0 * s[2].abs() / u1 } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_set_has_only_positive_sequence() {
        let p = [Phasor::polar(230.0, 0.0), Phasor::polar(230.0, -2.094_395_102), Phasor::polar(230.0, 2.094_395_102)];
        let s = sequence(&p);
        assert!(s[0].abs() < 1e-6 && s[2].abs() < 1e-6);
        assert!((s[1].abs() - 230.0).abs() < 1e-6);
        assert!(unbalance_pct(&p) < 1e-6);
    }
}
