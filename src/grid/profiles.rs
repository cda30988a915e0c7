//! Load and generation profiles: household demand (BDEW H0 shape with its day-of-year dynamisation),
//! PV from a clear-sky model and cloud cover, wind turbines from a power curve, small hydro from flow,
//! and near-constant biogas. Powers are in kW, time is seconds since midnight of day `day_of_year`
//! (1..=365), irradiance in W/m^2, wind speed in m/s, flow in m^3/s.
//!
//! The H0 day shapes here are a smooth fit (sums of Gaussian bumps over a base load) of the published
//! BDEW H0 curves for the three seasons and three day types, normalised so that a year of the profile
//! integrates to the household's annual energy; the day-of-year factor is the BDEW dynamisation polynomial.
//! Per-household variation is a seeded scale factor and a seeded time shift, drawn once per household.

use rand::RngExt;
use std::f64::consts::PI;

/// BDEW dynamisation factor for day of year `d` (1..=366).
pub fn h0_dynamisation(d: f64) -> f64 {
    -3.92e-10 * d.powi(4) + 3.2e-7 * d.powi(3) - 7.02e-5 * d * d + 2.1e-3 * d + 1.24
}

/// Season of the H0 profile: winter (1 Nov - 20 Mar), summer (15 May - 14 Sep), transition otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Season {
    Winter,
    Summer,
    Transition,
}

pub fn season(day_of_year: u32) -> Season {
    match day_of_year {
        0..=79 | 305..=366 => Season::Winter,
        135..=257 => Season::Summer,
        _ => Season::Transition,
    }
}

/// Day type: 0 weekday, 1 Saturday, 2 Sunday/holiday (day 1 of the year taken as a Monday).
pub fn day_type(day_of_year: u32) -> usize {
    match (day_of_year.max(1) - 1) % 7 {
        5 => 1,
        6 => 2,
        _ => 0,
    }
}

/// Parameters of the H0 day shape: a base level and four (centre hour, width h, height) Gaussian bumps; the
/// evening peak is higher in winter and flatter in summer.
type H0Params = (f64, [(f64, f64, f64); 4]);

fn h0_params(season: Season, day_type: usize) -> H0Params {
    match (season, day_type) {
        (Season::Winter, 0) => (0.55, [(7.5, 1.2, 0.75), (12.5, 1.6, 0.75), (18.5, 2.0, 1.35), (22.5, 1.2, 0.35)]),
        (Season::Winter, 1) => (0.55, [(9.5, 1.6, 0.85), (12.5, 1.5, 1.0), (18.3, 2.0, 1.25), (22.5, 1.2, 0.4)]),
        (Season::Winter, _) => (0.55, [(10.0, 1.8, 0.9), (12.3, 1.2, 1.2), (18.3, 2.0, 1.15), (22.0, 1.2, 0.35)]),
        (Season::Summer, 0) => (0.5, [(7.5, 1.2, 0.6), (12.5, 1.8, 0.7), (19.5, 2.2, 0.95), (22.5, 1.2, 0.45)]),
        (Season::Summer, 1) => (0.5, [(9.5, 1.8, 0.75), (12.5, 1.6, 0.9), (19.0, 2.2, 0.9), (22.5, 1.2, 0.45)]),
        (Season::Summer, _) => (0.5, [(10.0, 1.8, 0.8), (12.3, 1.3, 1.05), (19.0, 2.2, 0.85), (22.0, 1.2, 0.4)]),
        (Season::Transition, 0) => (0.52, [(7.5, 1.2, 0.7), (12.5, 1.7, 0.72), (19.0, 2.1, 1.15), (22.5, 1.2, 0.4)]),
        (Season::Transition, 1) => (0.52, [(9.5, 1.7, 0.8), (12.5, 1.5, 0.95), (18.7, 2.1, 1.05), (22.5, 1.2, 0.42)]),
        (Season::Transition, _) => (0.52, [(10.0, 1.8, 0.85), (12.3, 1.2, 1.1), (18.7, 2.1, 1.0), (22.0, 1.2, 0.38)]),
    }
}

/// Night trough around 3-5 h: depth and its centre and width (hours).
const H0_NIGHT: (f64, f64, f64) = (0.25, 4.0, 2.0);

/// Un-normalised H0 day shape (relative power) at hour `h` (0..24).
fn h0_shape(season: Season, day_type: usize, h: f64) -> f64 {
    let (base, bumps) = h0_params(season, day_type);
    let (depth, centre, width) = H0_NIGHT;
    let mut v = base - depth * (-((h - centre) / width).powi(2)).exp();
    for (c, w, a) in bumps {
        // Periodic distance so the curve joins at midnight.
        let d = ((h - c + 12.0).rem_euclid(24.0)) - 12.0;
        v += a * (-(d / w).powi(2) / 2.0).exp();
    }
    v
}

/// erf(2), for the night trough's integral over the day.
const ERF_2: f64 = 0.995_322_265_018_952_7;

/// Mean of the shape over a day (for normalisation), in closed form: each periodic bump integrates to
/// `a w sqrt(2 pi)` (its tails beyond +-12 h are below 1e-6 of it), the night trough over 0..24 h to
/// `depth width sqrt(pi) (erf(centre / width) + erf((24 - centre) / width))`, with erf(10) = 1 to double precision.
fn h0_shape_mean(season: Season, day_type: usize) -> f64 {
    let (base, bumps) = h0_params(season, day_type);
    let (depth, centre, width) = H0_NIGHT;
    debug_assert!(centre == 4.0 && width == 2.0, "ERF_2 belongs to centre / width = 2");
    let night = depth * width * PI.sqrt() * (ERF_2 + 1.0) / 2.0;
    let bumps: f64 = bumps.iter().map(|&(_, w, a)| a * w * (2.0 * PI).sqrt()).sum();
    base + (bumps - night) / 24.0
}

/// Household demand in kW at `t_s` seconds into day `day_of_year` for `annual_kwh` per year.
pub fn h0_kw(annual_kwh: f64, day_of_year: u32, t_s: f64) -> f64 {
    let s = season(day_of_year);
    let dt = day_type(day_of_year);
    let shape = h0_shape(s, dt, (t_s / 3600.0).rem_euclid(24.0)) / h0_shape_mean(s, dt);
    // Mean power of the year times the relative shape and the seasonal dynamisation.
    annual_kwh / 8760.0 * shape * h0_dynamisation(day_of_year as f64)
}

/// Per-household variation, drawn once from a seeded stream: scale and time shift.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Household {
    pub annual_kwh: f64,
    pub scale: f64,
    pub shift_s: f64,
    /// Power factor of the household (inductive).
    pub cos_phi: f64,
}

impl Household {
    /// Draws a household: scale uniform in 1 +- jitter, shift uniform in +- 30 min * jitter / 0.15.
    pub fn draw(annual_kwh: f64, jitter: f64, rng: &mut crate::engine::SimRng) -> Household {
        let j = jitter.clamp(0.0, 0.9);
        let scale = 1.0 + j * (2.0 * rng.random::<f64>() - 1.0);
        let shift_s = (2.0 * rng.random::<f64>() - 1.0) * 1800.0 * (j / 0.15).min(4.0);
        let cos_phi = 0.95 + 0.04 * rng.random::<f64>();
        Household { annual_kwh, scale, shift_s, cos_phi }
    }

    /// (P kW, Q kvar) at time `t_s` of day `day_of_year`.
    pub fn power_kw(&self, day_of_year: u32, t_s: f64) -> (f64, f64) {
        let p = h0_kw(self.annual_kwh, day_of_year, t_s - self.shift_s) * self.scale;
        let q = p * (1.0 / (self.cos_phi * self.cos_phi) - 1.0).max(0.0).sqrt();
        (p, q)
    }
}

/// Cosine of the solar zenith angle at latitude/longitude (degrees), day of year, UTC seconds of day.
pub fn cos_zenith(lat_deg: f64, lon_deg: f64, day_of_year: u32, t_utc_s: f64) -> f64 {
    let d = day_of_year as f64;
    let decl = (23.44f64).to_radians() * (2.0 * PI * (284.0 + d) / 365.0).sin();
    // Equation of time (minutes), Spencer-style approximation.
    let b = 2.0 * PI * (d - 81.0) / 364.0;
    let eot_min = 9.87 * (2.0 * b).sin() - 7.53 * b.cos() - 1.5 * b.sin();
    let solar_h = t_utc_s / 3600.0 + lon_deg / 15.0 + eot_min / 60.0;
    let hour_angle = (15.0 * (solar_h - 12.0)).to_radians();
    let lat = lat_deg.to_radians();
    lat.sin() * decl.sin() + lat.cos() * decl.cos() * hour_angle.cos()
}

/// Clear-sky global horizontal irradiance (Haurwitz model), W/m^2.
pub fn clear_sky_ghi(cos_z: f64) -> f64 {
    if cos_z <= 0.0 { 0.0 } else { 1098.0 * cos_z * (-0.059 / cos_z).exp() }
}

/// Irradiance under cloud cover `okta` (0..=8), Kasten-Czeplak.
pub fn cloudy_ghi(clear: f64, okta: f64) -> f64 {
    clear * (1.0 - 0.75 * (okta.clamp(0.0, 8.0) / 8.0).powf(3.4))
}

/// A generator model. Powers in kW; inverter (or machine) rating limits the output.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub enum GeneratorKind {
    /// PV array: peak power (kWp), inverter rating (kVA), system efficiency (performance ratio).
    Pv { kwp: f64, inverter_kva: f64, performance_ratio: f64 },
    /// Wind turbine: rated kW, cut-in, rated and cut-out speeds (m/s) at hub height, hub height (m).
    Wind { rated_kw: f64, cut_in_m_s: f64, rated_m_s: f64, cut_out_m_s: f64, hub_height_m: f64 },
    /// Small hydro: head (m), turbine efficiency, rated kW, river flow (m^3/s).
    Hydro { head_m: f64, efficiency: f64, rated_kw: f64, flow_m3_s: f64 },
    /// Biogas CHP: rated kW, availability (0..1), relative fluctuation (e.g. 0.02).
    Biogas { rated_kw: f64, availability: f64, fluctuation: f64 },
}

/// The weather the generators see.
#[derive(Clone, Copy, Debug, PartialEq, Default, serde::Serialize)]
pub struct WeatherSample {
    /// Global horizontal irradiance, W/m^2.
    pub ghi_w_m2: f64,
    /// Cloud cover in okta (0..=8).
    pub okta: f64,
    /// Wind speed at 10 m, m/s.
    pub wind_10m_m_s: f64,
}

impl GeneratorKind {
    pub fn validate(&self) -> Result<(), String> {
        let pos = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 { Ok(()) } else { Err(format!("{name} = {v} must be positive")) }
        };
        let frac = |name: &str, v: f64| {
            if (0.0..=1.0).contains(&v) { Ok(()) } else { Err(format!("{name} = {v} must be within 0..=1")) }
        };
        match *self {
            GeneratorKind::Pv { kwp, inverter_kva, performance_ratio } => {
                pos("Pv.kwp", kwp)?;
                pos("Pv.inverter_kva", inverter_kva)?;
                frac("Pv.performance_ratio", performance_ratio)
            }
            GeneratorKind::Wind { rated_kw, cut_in_m_s, rated_m_s, cut_out_m_s, hub_height_m } => {
                pos("Wind.rated_kw", rated_kw)?;
                pos("Wind.hub_height_m", hub_height_m)?;
                if !(0.0 <= cut_in_m_s && cut_in_m_s < rated_m_s && rated_m_s < cut_out_m_s) {
                    return Err("Wind: need 0 <= cut_in_m_s < rated_m_s < cut_out_m_s".into());
                }
                Ok(())
            }
            GeneratorKind::Hydro { head_m, efficiency, rated_kw, flow_m3_s } => {
                pos("Hydro.head_m", head_m)?;
                pos("Hydro.rated_kw", rated_kw)?;
                frac("Hydro.efficiency", efficiency)?;
                if flow_m3_s.is_finite() && flow_m3_s >= 0.0 {
                    Ok(())
                } else {
                    Err("Hydro.flow_m3_s must be >= 0".into())
                }
            }
            GeneratorKind::Biogas { rated_kw, availability, fluctuation } => {
                pos("Biogas.rated_kw", rated_kw)?;
                frac("Biogas.availability", availability)?;
                frac("Biogas.fluctuation", fluctuation)
            }
        }
    }

    /// Output in kW for the weather; `noise` is a uniform draw in [0, 1) (used by biogas only).
    pub fn power_kw(&self, w: &WeatherSample, noise: f64) -> f64 {
        match *self {
            GeneratorKind::Pv { kwp, inverter_kva, performance_ratio } => {
                (kwp * w.ghi_w_m2 / 1000.0 * performance_ratio).clamp(0.0, inverter_kva)
            }
            GeneratorKind::Wind { rated_kw, cut_in_m_s, rated_m_s, cut_out_m_s, hub_height_m } => {
                // Power-law shear from 10 m to hub height (alpha = 1/7).
                let v = w.wind_10m_m_s * (hub_height_m / 10.0).powf(1.0 / 7.0);
                if v < cut_in_m_s || v >= cut_out_m_s {
                    0.0
                } else if v >= rated_m_s {
                    rated_kw
                } else {
                    let num = v.powi(3) - cut_in_m_s.powi(3);
                    let den = rated_m_s.powi(3) - cut_in_m_s.powi(3);
                    rated_kw * num / den
                }
            }
            GeneratorKind::Hydro { head_m, efficiency, rated_kw, flow_m3_s } => {
                (efficiency * 1000.0 * 9.81 * flow_m3_s * head_m / 1000.0).clamp(0.0, rated_kw)
            }
            GeneratorKind::Biogas { rated_kw, availability, fluctuation } => {
                rated_kw * availability * (1.0 + fluctuation * (2.0 * noise - 1.0))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h0_year_integrates_to_annual_energy() {
        // Daily energy summed over a year, 15-minute steps.
        let mut kwh = 0.0;
        for d in 1..=365u32 {
            for q in 0..96 {
                kwh += h0_kw(1000.0, d, q as f64 * 900.0 + 450.0) * 0.25;
            }
        }
        // The dynamisation polynomial averages to about 1 over the year.
        assert!((kwh / 1000.0 - 1.0).abs() < 0.03, "annual energy {kwh} kWh");
    }

    #[test]
    fn closed_form_day_mean_matches_fine_quadrature() {
        for season in [Season::Winter, Season::Summer, Season::Transition] {
            for dt in 0..3 {
                let n = 24 * 3600;
                let q = (0..n).map(|k| h0_shape(season, dt, (k as f64 + 0.5) / 3600.0)).sum::<f64>() / n as f64;
                let c = h0_shape_mean(season, dt);
                assert!((q - c).abs() < 1e-6 * c, "{season:?} {dt}: quadrature {q} vs closed form {c}");
            }
        }
    }

    #[test]
    fn dynamisation_is_higher_in_winter() {
        assert!(h0_dynamisation(15.0) > 1.15 && h0_dynamisation(190.0) < 0.85);
    }

    #[test]
    fn pv_is_zero_at_night_and_peaks_near_noon() {
        let noon_utc = 12.0 * 3600.0 - 11.6 / 15.0 * 3600.0;
        let cz = cos_zenith(48.1, 11.6, 172, noon_utc);
        // At solar noon near the June solstice the zenith angle is latitude minus declination.
        assert!((cz - (48.1f64 - 23.44).to_radians().cos()).abs() < 0.02, "{cz}");
        assert_eq!(clear_sky_ghi(cos_zenith(48.1, 11.6, 172, 0.0)), 0.0);
        let pv = GeneratorKind::Pv { kwp: 10.0, inverter_kva: 8.0, performance_ratio: 0.85 };
        let w = WeatherSample { ghi_w_m2: clear_sky_ghi(cz), okta: 0.0, wind_10m_m_s: 0.0 };
        assert!(pv.power_kw(&w, 0.5) <= 8.0 && pv.power_kw(&w, 0.5) > 7.0);
        assert!(cloudy_ghi(1000.0, 8.0) < 300.0);
    }

    #[test]
    fn wind_power_curve() {
        let wt = GeneratorKind::Wind {
            rated_kw: 50.0,
            cut_in_m_s: 3.0,
            rated_m_s: 12.0,
            cut_out_m_s: 25.0,
            hub_height_m: 10.0,
        };
        let at = |v: f64| wt.power_kw(&WeatherSample { wind_10m_m_s: v, ..Default::default() }, 0.0);
        assert_eq!(at(2.0), 0.0);
        assert_eq!(at(13.0), 50.0);
        assert_eq!(at(26.0), 0.0);
        assert!(at(8.0) > 0.0 && at(8.0) < 50.0);
        assert!(wt.validate().is_ok());
    }
}
