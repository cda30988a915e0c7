//! Path-loss models, dB, between nodes at positions in metres, plus static shadowing and per-packet fading.
//!
//! Every reference loss is derived from the radio's carrier frequency (free space at the reference distance),
//! never a fixed constant, so a 868 MHz and a 2.4 GHz radio see different losses on the same link.
//! Shadowing is a zero-mean Gaussian in dB drawn deterministically from (seed, link): symmetric by default
//! (the unordered pair), per direction if `asymmetric`.

use crate::engine::{derive_seed, derive_seed_next, derive_seed_start};
use serde::{Deserialize, Serialize};

/// Speed of light, m/s.
pub const C_M_PER_S: f64 = 299_792_458.0;

/// A large-scale path-loss model (scenario field `mesh.propagation`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Propagation {
    /// Friis free space.
    FreeSpace,
    /// Log-distance: free space up to `ref_distance_m`, then `10 * exponent * log10(d / d0)` more, plus static
    /// Gaussian shadowing with standard deviation `shadowing_db`.
    LogDistance {
        exponent: f64,
        #[serde(default)]
        shadowing_db: f64,
        #[serde(default = "one")]
        ref_distance_m: f64,
        #[serde(default)]
        asymmetric: bool,
    },
    /// Two-ray ground reflection: free space below the crossover distance `4 pi ht hr / lambda`, then
    /// `40 log10 d - 20 log10 ht - 20 log10 hr`.
    TwoRay { tx_height_m: f64, rx_height_m: f64 },
    /// Okumura-Hata, suburban correction, small/medium-city mobile antenna factor. Valid for 150-1500 MHz,
    /// base antenna 30-200 m, mobile 1-10 m, 1-20 km; used outside that it is flagged, not refused.
    OkumuraHata { base_height_m: f64, mobile_height_m: f64 },
}

fn one() -> f64 {
    1.0
}

impl Default for Propagation {
    /// Suburban pole-to-pole links: exponent 3 from 1 m with 4 dB shadowing.
    fn default() -> Self {
        Propagation::LogDistance { exponent: 3.0, shadowing_db: 4.0, ref_distance_m: 1.0, asymmetric: false }
    }
}

/// Small-scale fading drawn per packet and receiver (scenario field `mesh.fading`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub enum Fading {
    #[default]
    None,
    /// Rayleigh: received power scaled by an exponential variate of mean 1.
    Rayleigh,
}

/// Free-space path loss at `d_m` metres and `f_mhz`, dB.
pub fn fspl_db(d_m: f64, f_mhz: f64) -> f64 {
    let lambda = C_M_PER_S / (f_mhz * 1e6);
    20.0 * (4.0 * std::f64::consts::PI * d_m / lambda).log10()
}

/// Crossover distance of the two-ray model, m.
pub fn two_ray_crossover_m(ht: f64, hr: f64, f_mhz: f64) -> f64 {
    let lambda = C_M_PER_S / (f_mhz * 1e6);
    4.0 * std::f64::consts::PI * ht * hr / lambda
}

/// Okumura-Hata suburban loss, dB (d in m).
pub fn hata_suburban_db(d_m: f64, f_mhz: f64, hb: f64, hm: f64) -> f64 {
    let lf = f_mhz.log10();
    let a_hm = (1.1 * lf - 0.7) * hm - (1.56 * lf - 0.8);
    let urban = 69.55 + 26.16 * lf - 13.82 * hb.log10() - a_hm + (44.9 - 6.55 * hb.log10()) * (d_m / 1000.0).log10();
    urban - 2.0 * (f_mhz / 28.0).log10().powi(2) - 5.4
}

/// Distances below this are treated as this (co-located antennas still have some coupling loss).
pub const MIN_DISTANCE_M: f64 = 0.1;

impl Propagation {
    /// Checks parameters, naming the bad field.
    pub fn validate(&self) -> Result<(), String> {
        match *self {
            Propagation::FreeSpace => Ok(()),
            Propagation::LogDistance { exponent, shadowing_db, ref_distance_m, .. } => {
                if !(1.0..=8.0).contains(&exponent) {
                    return Err(format!("mesh.propagation.LogDistance.exponent = {exponent} is outside 1 ..= 8"));
                }
                if !(0.0..=20.0).contains(&shadowing_db) {
                    return Err(format!(
                        "mesh.propagation.LogDistance.shadowing_db = {shadowing_db} is outside 0 ..= 20 dB"
                    ));
                }
                if !(ref_distance_m > 0.0 && ref_distance_m <= 1000.0) {
                    return Err(format!(
                        "mesh.propagation.LogDistance.ref_distance_m = {ref_distance_m} must be > 0 and <= 1000 m"
                    ));
                }
                Ok(())
            }
            Propagation::TwoRay { tx_height_m, rx_height_m } => {
                for (f, h) in [("tx_height_m", tx_height_m), ("rx_height_m", rx_height_m)] {
                    if !(h > 0.0 && h <= 1000.0) {
                        return Err(format!("mesh.propagation.TwoRay.{f} = {h} must be > 0 and <= 1000 m"));
                    }
                }
                Ok(())
            }
            Propagation::OkumuraHata { base_height_m, mobile_height_m } => {
                for (f, h) in [("base_height_m", base_height_m), ("mobile_height_m", mobile_height_m)] {
                    if !(h > 0.0 && h <= 1000.0) {
                        return Err(format!("mesh.propagation.OkumuraHata.{f} = {h} must be > 0 and <= 1000 m"));
                    }
                }
                Ok(())
            }
        }
    }

    /// Median path loss (no shadowing) at `d_m`, dB.
    pub fn median_loss_db(&self, d_m: f64, f_mhz: f64) -> f64 {
        let d = d_m.max(MIN_DISTANCE_M);
        match *self {
            Propagation::FreeSpace => fspl_db(d, f_mhz),
            Propagation::LogDistance { exponent, ref_distance_m, .. } => {
                if d <= ref_distance_m {
                    fspl_db(d, f_mhz)
                } else {
                    fspl_db(ref_distance_m, f_mhz) + 10.0 * exponent * (d / ref_distance_m).log10()
                }
            }
            Propagation::TwoRay { tx_height_m, rx_height_m } => {
                if d < two_ray_crossover_m(tx_height_m, rx_height_m, f_mhz) {
                    fspl_db(d, f_mhz)
                } else {
                    40.0 * d.log10() - 20.0 * tx_height_m.log10() - 20.0 * rx_height_m.log10()
                }
            }
            Propagation::OkumuraHata { base_height_m, mobile_height_m } => {
                // Hata's fit has no meaning at very short range; never report less than free space.
                hata_suburban_db(d, f_mhz, base_height_m, mobile_height_m).max(fspl_db(d, f_mhz))
            }
        }
    }

    /// Standard deviation of the static shadowing, dB.
    pub fn shadowing_db(&self) -> f64 {
        match *self {
            Propagation::LogDistance { shadowing_db, .. } => shadowing_db,
            _ => 0.0,
        }
    }

    /// The static shadowing of the link `a -> b`, dB (symmetric unless the model says otherwise).
    pub fn shadow_db(&self, seed: u64, a: u32, b: u32) -> f64 {
        self.shadow_db_keyed(Self::shadow_key(seed), a, b)
    }

    /// [`Propagation::shadow_db`] from the seed's [`Propagation::shadow_key`].
    #[inline]
    pub fn shadow_db_keyed(&self, key: u64, a: u32, b: u32) -> f64 {
        self.shadow_db_from_hash(self.shadow_hash_keyed(key, a, b))
    }

    /// Shadowing of a link whose hash ([`Propagation::shadow_hash_keyed`]) is already drawn, dB: the same
    /// value as [`Propagation::shadow_db_keyed`].
    #[inline]
    pub fn shadow_db_from_hash(&self, h: u64) -> f64 {
        let sigma = self.shadowing_db();
        if sigma == 0.0 {
            return 0.0;
        }
        sigma * std_normal(h)
    }

    /// The part of [`Propagation::shadow_hash`] that depends on the seed alone: a mesh computes it once,
    /// and each link's hash then costs two mixing rounds instead of five (the value is the same).
    pub const fn shadow_key(seed: u64) -> u64 {
        derive_seed_next(derive_seed_start(seed), SHADOW_PURPOSE)
    }

    /// The hash that draws the link `a -> b`'s shadowing: its top 53 bits are the uniform variate whose normal
    /// quantile, times the standard deviation, is the shadowing ([`std_normal`]), so the shadowing grows with
    /// them.
    #[inline]
    pub fn shadow_hash(&self, seed: u64, a: u32, b: u32) -> u64 {
        let asym = matches!(*self, Propagation::LogDistance { asymmetric: true, .. });
        let (x, y) = if asym || a <= b { (a, b) } else { (b, a) };
        derive_seed(seed, &[SHADOW_PURPOSE, ((x as u64) << 32) | y as u64])
    }

    /// [`Propagation::shadow_hash`] from the seed's [`Propagation::shadow_key`].
    #[inline]
    pub fn shadow_hash_keyed(&self, key: u64, a: u32, b: u32) -> u64 {
        let asym = matches!(*self, Propagation::LogDistance { asymmetric: true, .. });
        let (x, y) = if asym || a <= b { (a, b) } else { (b, a) };
        derive_seed_next(key, ((x as u64) << 32) | y as u64)
    }

    /// Path loss of the link `a -> b` at `d_m`, shadowing included, dB.
    pub fn loss_db(&self, seed: u64, a: u32, b: u32, d_m: f64, f_mhz: f64) -> f64 {
        self.median_loss_db(d_m, f_mhz) + self.shadow_db(seed, a, b)
    }

    /// Distance at which the median loss reaches `loss_db` (bisection; the models are monotone in distance), m.
    pub fn range_for_loss_m(&self, loss_db: f64, f_mhz: f64) -> f64 {
        let (mut lo, mut hi) = (MIN_DISTANCE_M, 1e6);
        if self.median_loss_db(hi, f_mhz) < loss_db {
            return hi;
        }
        if self.median_loss_db(lo, f_mhz) > loss_db {
            return 0.0;
        }
        for _ in 0..200 {
            let mid = (lo * hi).sqrt();
            if self.median_loss_db(mid, f_mhz) < loss_db {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Why this model is outside its validity for these values, if it is (Okumura-Hata only).
    pub fn validity_issue(&self, f_mhz: f64, min_d_m: f64, max_d_m: f64) -> Option<String> {
        let Propagation::OkumuraHata { base_height_m, mobile_height_m } = *self else { return None };
        let mut why = Vec::new();
        if !(150.0..=1500.0).contains(&f_mhz) {
            why.push(format!("frequency {f_mhz} MHz outside 150-1500 MHz"));
        }
        if !(30.0..=200.0).contains(&base_height_m) {
            why.push(format!("base_height_m {base_height_m} outside 30-200 m"));
        }
        if !(1.0..=10.0).contains(&mobile_height_m) {
            why.push(format!("mobile_height_m {mobile_height_m} outside 1-10 m"));
        }
        if min_d_m < 1000.0 || max_d_m > 20_000.0 {
            why.push(format!("link distances {min_d_m:.0}-{max_d_m:.0} m outside 1-20 km"));
        }
        (!why.is_empty()).then(|| format!("Okumura-Hata used outside its validity: {}", why.join("; ")))
    }
}

/// A standard normal variate from a 64-bit hash: the inverse normal CDF of the uniform its top 53 bits make.
///
/// One uniform per variate, and no transcendental function for the central 95 % (a rational approximation,
/// P. J. Acklam's, |error| < 5e-10); the tails start from Acklam's tail approximation and take one Halley step
/// on the exact CDF (`erfc`), which brings them to double precision. Shadowing draws one of these per link and
/// the mesh evaluates links on every overlapping transmission, so this is on the hot path.
/// The first word every link's shadowing hash derives from ("SHADOW").
const SHADOW_PURPOSE: u64 = 0x5348_4144_4F57;

pub fn std_normal(h: u64) -> f64 {
    let p = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    inverse_normal_cdf(p)
}

/// The standard normal quantile of `p` in (0, 1).
pub fn inverse_normal_cdf(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e+01,
        2.209460984245205e+02,
        -2.759285104469687e+02,
        1.38357751867269e+02,
        -3.066479806614716e+01,
        2.506628277459239e+00,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e+01,
        1.615858368580409e+02,
        -1.556989798598866e+02,
        6.680131188771972e+01,
        -1.328068155288572e+01,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-03,
        -3.223964580411365e-01,
        -2.400758277161838e+00,
        -2.549671010331224e+00,
        4.374664141464968e+00,
        2.938163982698783e+00,
    ];
    const D: [f64; 4] = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00];
    const P_LOW: f64 = 0.02425;
    debug_assert!(p > 0.0 && p < 1.0, "quantile of {p}");
    if (P_LOW..=1.0 - P_LOW).contains(&p) {
        let q = p - 0.5;
        let r = q * q;
        return (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0);
    }
    let tail = |pt: f64| {
        let q = (-2.0 * pt.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    let x = if p < P_LOW { tail(p) } else { -tail(1.0 - p) };
    // One Halley step on F(x) - p = 0 with F(x) = erfc(-x / sqrt 2) / 2.
    let e = 0.5 * libm::erfc(-x / std::f64::consts::SQRT_2) - p;
    let u = e * (2.0 * std::f64::consts::PI).sqrt() * (0.5 * x * x).exp();
    x - u / (1.0 + 0.5 * x * u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_normal_cdf_matches_reference_quantiles() {
        // Quantiles from Python's statistics.NormalDist().inv_cdf (Wichura's AS 241, double precision).
        let reference = [
            (1e-9, -5.9978070150076865),
            (1e-4, -3.71901648545568),
            (0.001, -3.090232306167813),
            (0.02, -2.0537489106318225),
            (0.3, -0.5244005127080407),
            (0.5, 0.0),
            (0.8, 0.8416212335729144),
            (0.99, 2.3263478740408408),
            (0.9999, 3.7190164854557084),
        ];
        for (p, z) in reference {
            let got = inverse_normal_cdf(p);
            assert!((got - z).abs() < 1e-9, "p {p}: {got} vs {z}");
        }
        // Shadowing draws: mean 0, variance 1, symmetric tails.
        let n = 200_000u64;
        let xs: Vec<f64> = (0..n).map(|i| std_normal(crate::engine::mix64(i))).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        let beyond2 = xs.iter().filter(|x| x.abs() > 2.0).count() as f64 / n as f64;
        assert!(mean.abs() < 0.01 && (var - 1.0).abs() < 0.01, "mean {mean} var {var}");
        assert!((beyond2 - 0.0455).abs() < 0.002, "P(|z| > 2) = {beyond2}");
    }

    #[test]
    fn free_space_750_m_at_915_mhz_is_89_2_db() {
        assert!((fspl_db(750.0, 915.0) - 89.2).abs() < 0.05, "{}", fspl_db(750.0, 915.0));
        // Reference loss follows the frequency: 1 m at 868.3 MHz is 31.2 dB, at 2450 MHz 40.2 dB.
        assert!((fspl_db(1.0, 868.3) - 31.2).abs() < 0.05);
        assert!((fspl_db(1.0, 2450.0) - 40.2).abs() < 0.05);
    }

    #[test]
    fn log_distance_matches_free_space_at_exponent_two_and_shadowing_is_symmetric_gaussian() {
        let ld = Propagation::LogDistance { exponent: 2.0, shadowing_db: 0.0, ref_distance_m: 1.0, asymmetric: false };
        assert!((ld.median_loss_db(750.0, 915.0) - fspl_db(750.0, 915.0)).abs() < 1e-9);
        let sh = Propagation::LogDistance { exponent: 3.0, shadowing_db: 4.0, ref_distance_m: 1.0, asymmetric: false };
        assert_eq!(sh.shadow_db(7, 3, 9), sh.shadow_db(7, 9, 3));
        // The keyed form is the same hash.
        for (seed, a, b) in [(0u64, 0u32, 0u32), (7, 3, 9), (u64::MAX, 100_000, 17), (42, 99_999, 100_001)] {
            let key = Propagation::shadow_key(seed);
            assert_eq!(sh.shadow_hash_keyed(key, a, b), sh.shadow_hash(seed, a, b));
            assert_eq!(sh.shadow_db_keyed(key, a, b).to_bits(), sh.shadow_db(seed, a, b).to_bits());
        }
        assert_ne!(sh.shadow_db(7, 3, 9), sh.shadow_db(8, 3, 9));
        let xs: Vec<f64> = (0..20_000u32).map(|i| sh.shadow_db(1, i, i + 1)).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64).sqrt();
        assert!(mean.abs() < 0.1 && (sd - 4.0).abs() < 0.1, "mean {mean} sd {sd}");
        let asym = Propagation::LogDistance { exponent: 3.0, shadowing_db: 4.0, ref_distance_m: 1.0, asymmetric: true };
        assert_ne!(asym.shadow_db(7, 3, 9), asym.shadow_db(7, 9, 3));
    }

    #[test]
    fn two_ray_switches_at_the_crossover() {
        let m = Propagation::TwoRay { tx_height_m: 8.0, rx_height_m: 8.0 };
        let dc = two_ray_crossover_m(8.0, 8.0, 868.3);
        assert!((dc - 2328.0).abs() < 5.0, "{dc}");
        assert_eq!(m.median_loss_db(dc * 0.99, 868.3), fspl_db(dc * 0.99, 868.3));
        let beyond = m.median_loss_db(2.0 * dc, 868.3);
        assert!((beyond - (40.0 * (2.0 * dc).log10() - 40.0 * 8f64.log10())).abs() < 1e-9);
        // 12 dB per doubling beyond the crossover.
        assert!((m.median_loss_db(4.0 * dc, 868.3) - beyond - 12.04).abs() < 0.01);
    }

    #[test]
    fn okumura_hata_reference_value_and_validity_flag() {
        // 900 MHz, hb 30 m, hm 1.5 m, 5 km: urban 151.0 dB, minus the suburban correction 2 (log f/28)^2 + 5.4
        // = 9.94 dB.
        let l = hata_suburban_db(5000.0, 900.0, 30.0, 1.5);
        assert!((l - 141.09).abs() < 0.05, "{l}");
        let m = Propagation::OkumuraHata { base_height_m: 30.0, mobile_height_m: 1.5 };
        assert!(m.validity_issue(900.0, 1500.0, 8000.0).is_none());
        assert!(m.validity_issue(2450.0, 100.0, 800.0).unwrap().contains("2450"));
    }

    #[test]
    fn default_sun_radio_reaches_750_m() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/models/radio-sun-fsk-868.ron"));
        let r: crate::mesh::RadioModel = ron::from_str(&text.unwrap()).unwrap();
        let d = Propagation::default().range_for_loss_m(r.max_path_loss_db(), r.frequency_mhz);
        assert!((d - 750.0).abs() < 10.0, "median range {d} m");
    }
}
