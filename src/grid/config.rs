//! [`GridConfig`]: the grid section of a scenario (network by file path relative to the scenario or inline,
//! household loads, generators, weather, profile step).

use super::model::{GridModel, LoadId};
use super::network::{Network, NetworkData};
use super::profiles::GeneratorKind;
use crate::engine::{SimDuration, parse_duration};
use std::path::Path;

/// Where the network comes from.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum NetworkSource {
    /// A `network.json` path, relative to the scenario file.
    File(String),
    /// The neutral format inline.
    Inline(Box<NetworkData>),
}

/// How loads vary over the day.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub enum LoadConfig {
    /// Constant at the powers of the network file.
    FromNetwork,
    /// Every load of the file is a household following BDEW H0 (`annual_kwh` per household), with a
    /// seeded per-household scale and time shift of relative size `jitter` (e.g. 0.15).
    H0 { annual_kwh: f64, jitter: f64 },
}

/// A generator at a bus (file index of the bus).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorConfig {
    pub bus: i64,
    pub kind: GeneratorKind,
}

/// The weather model: site, cloud cover and wind.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeatherConfig {
    pub lat_deg: f64,
    pub lon_deg: f64,
    /// Mean cloud cover (okta, 0..=8) the Markov chain reverts to.
    pub mean_okta: f64,
    /// Mean wind speed at 10 m (m/s).
    pub wind_mean_m_s: f64,
    /// Weather update interval, e.g. "10min".
    pub step: String,
}

impl Default for WeatherConfig {
    fn default() -> Self {
        WeatherConfig { lat_deg: 48.1, lon_deg: 11.6, mean_okta: 3.0, wind_mean_m_s: 4.5, step: "10min".into() }
    }
}

fn default_step() -> String {
    "1min".into()
}
fn default_day() -> u32 {
    172
}
fn default_loads() -> LoadConfig {
    LoadConfig::FromNetwork
}

/// The grid section of a scenario.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridConfig {
    pub network: NetworkSource,
    #[serde(default = "default_loads")]
    pub loads: LoadConfig,
    #[serde(default)]
    pub generators: Vec<GeneratorConfig>,
    /// Load and generation profile step, e.g. "1min" or "15min".
    #[serde(default = "default_step")]
    pub profile_step: String,
    /// Day of year (1..=365) the run starts at (simulation time 0 = midnight UTC of that day).
    #[serde(default = "default_day")]
    pub day_of_year: u32,
    /// Force per-phase (unbalanced) solves; by default unbalanced when the network has per-phase loads.
    #[serde(default)]
    pub unbalanced: Option<bool>,
    #[serde(default)]
    pub weather: WeatherConfig,
    /// Rooftop PV at every load bus, as a share of that load's base active power (percent, constant output,
    /// unity power factor); 0 for none.
    #[serde(default)]
    pub rooftop_pv_pct: f64,
    /// Solve the LV network's unbalanced state with the 4-wire model (explicit neutral conductor and its
    /// earthing, from the network's `earthing` section and optional line neutral data): customers' and LMUs'
    /// phase-to-neutral voltages include the neutral-point shift, LMUs measure the neutral current, and
    /// broken neutrals (`broken_neutral`) can be simulated. Off: the sequence model (ideal neutral).
    #[serde(default)]
    pub four_wire: bool,
    /// Lines (file indices) whose neutral conductor breaks, with the time it breaks (e.g. "2h"); needs
    /// `four_wire`.
    #[serde(default)]
    pub broken_neutral: Vec<BrokenNeutral>,
    /// Every generator's loss-of-mains protection (EN 50549-1): it disconnects when its bus has been
    /// islanded on a phase (an open conductor upstream, no other path to the source) for `trip_s`, or at once
    /// when its bus is cut off on every phase (de-energised), and reconnects after the bus has had its full
    /// supply back for `reconnect_s`.
    #[serde(default)]
    pub anti_islanding: AntiIslanding,
}

/// Generators' loss-of-mains protection (see [`GridConfig::anti_islanding`]).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AntiIslanding {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Disconnection time once islanded, s (IEC 62116 tests inverters against a 2 s limit).
    #[serde(default = "default_lom_trip_s")]
    pub trip_s: f64,
    /// Reconnection delay once the supply is back, s (EN 50549-1's default observation time, 60 s).
    #[serde(default = "default_lom_reconnect_s")]
    pub reconnect_s: f64,
    /// The interface protection's fast over-voltage stage U>>: a generator disconnects once a phase of its bus
    /// has been above `overvoltage_pu` for `overvoltage_s` (VDE-AR-N 4105:2018's setting, 1.25 Un for 0.1 s,
    /// as NA-protection relays such as ABB's CM-UFD.M31 ship it). What ends a half-islanded phase whose
    /// generation far exceeds its load: a current-controlled inverter would otherwise push it to any voltage.
    /// Watched on half-islanded buses only (a shunt fault's swell elsewhere does not trip generators here).
    #[serde(default = "default_ov_pu")]
    pub overvoltage_pu: f64,
    /// The U>> stage's time, s (see `overvoltage_pu`).
    #[serde(default = "default_ov_s")]
    pub overvoltage_s: f64,
}

fn default_ov_pu() -> f64 {
    1.25
}
fn default_ov_s() -> f64 {
    0.1
}

fn yes() -> bool {
    true
}
fn default_lom_trip_s() -> f64 {
    2.0
}
fn default_lom_reconnect_s() -> f64 {
    60.0
}

impl Default for AntiIslanding {
    fn default() -> Self {
        AntiIslanding {
            enabled: true,
            trip_s: default_lom_trip_s(),
            reconnect_s: default_lom_reconnect_s(),
            overvoltage_pu: default_ov_pu(),
            overvoltage_s: default_ov_s(),
        }
    }
}

/// A broken neutral: the neutral conductor of `line` (file index) opens at `onset` and stays open.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokenNeutral {
    pub line: i64,
    pub onset: String,
}

impl Default for GridConfig {
    fn default() -> Self {
        GridConfig {
            network: NetworkSource::File("networks/kerber_landnetz_freileitung_1.json".into()),
            loads: LoadConfig::FromNetwork,
            generators: Vec::new(),
            profile_step: default_step(),
            day_of_year: default_day(),
            unbalanced: None,
            weather: WeatherConfig::default(),
            rooftop_pv_pct: 0.0,
            four_wire: false,
            broken_neutral: Vec::new(),
            anti_islanding: AntiIslanding::default(),
        }
    }
}

impl GridConfig {
    /// Checks every field; errors name it.
    pub fn validate(&self) -> Result<(), String> {
        let step = parse_duration(&self.profile_step).map_err(|e| format!("grid.profile_step: {e}"))?;
        if step == SimDuration::ZERO {
            return Err("grid.profile_step must be positive".into());
        }
        let a = &self.anti_islanding;
        if !(a.trip_s.is_finite() && (0.0..=600.0).contains(&a.trip_s)) {
            return Err(format!("grid.anti_islanding.trip_s = {} must be within 0..=600 s", a.trip_s));
        }
        if !(a.reconnect_s.is_finite() && (0.0..=3600.0).contains(&a.reconnect_s)) {
            return Err(format!("grid.anti_islanding.reconnect_s = {} must be within 0..=3600 s", a.reconnect_s));
        }
        if !(a.overvoltage_pu.is_finite() && (1.0..=2.0).contains(&a.overvoltage_pu)) {
            return Err(format!("grid.anti_islanding.overvoltage_pu = {} must be within 1..=2", a.overvoltage_pu));
        }
        if !(a.overvoltage_s.is_finite() && (0.0..=60.0).contains(&a.overvoltage_s)) {
            return Err(format!("grid.anti_islanding.overvoltage_s = {} must be within 0..=60 s", a.overvoltage_s));
        }
        if !(self.rooftop_pv_pct.is_finite() && (0.0..=1000.0).contains(&self.rooftop_pv_pct)) {
            return Err(format!("grid.rooftop_pv_pct = {} must be within 0..=1000", self.rooftop_pv_pct));
        }
        if !self.broken_neutral.is_empty() && !self.four_wire {
            return Err("grid.broken_neutral needs grid.four_wire = true (the sequence model has no neutral)".into());
        }
        for (k, b) in self.broken_neutral.iter().enumerate() {
            parse_duration(&b.onset).map_err(|e| format!("grid.broken_neutral[{k}].onset: {e}"))?;
        }
        if !(1..=366).contains(&self.day_of_year) {
            return Err(format!("grid.day_of_year = {} must be within 1..=366", self.day_of_year));
        }
        if let LoadConfig::H0 { annual_kwh, jitter } = self.loads {
            if !(annual_kwh.is_finite() && annual_kwh > 0.0 && annual_kwh < 1e6) {
                return Err(format!("grid.loads.H0.annual_kwh = {annual_kwh} must be within 0..1e6 kWh"));
            }
            if !(0.0..=0.9).contains(&jitter) {
                return Err(format!("grid.loads.H0.jitter = {jitter} must be within 0..=0.9"));
            }
        }
        for (k, g) in self.generators.iter().enumerate() {
            g.kind.validate().map_err(|e| format!("grid.generators[{k}]: {e}"))?;
        }
        let w = &self.weather;
        if !(-90.0..=90.0).contains(&w.lat_deg) || !(-180.0..=180.0).contains(&w.lon_deg) {
            return Err("grid.weather: lat_deg must be within -90..=90 and lon_deg within -180..=180".into());
        }
        if !(0.0..=8.0).contains(&w.mean_okta) {
            return Err(format!("grid.weather.mean_okta = {} must be within 0..=8", w.mean_okta));
        }
        if !(w.wind_mean_m_s.is_finite() && w.wind_mean_m_s >= 0.0 && w.wind_mean_m_s < 50.0) {
            return Err(format!("grid.weather.wind_mean_m_s = {} must be within 0..50", w.wind_mean_m_s));
        }
        let ws = parse_duration(&w.step).map_err(|e| format!("grid.weather.step: {e}"))?;
        if ws == SimDuration::ZERO {
            return Err("grid.weather.step must be positive".into());
        }
        Ok(())
    }

    pub fn profile_step(&self) -> Result<SimDuration, String> {
        parse_duration(&self.profile_step).map_err(|e| format!("grid.profile_step: {e}"))
    }

    /// Loads the network (a file path is resolved against `scenario_dir`) and checks generator buses.
    pub fn load_network(&self, scenario_dir: &Path) -> Result<Network, String> {
        let net = match &self.network {
            NetworkSource::File(p) => Network::from_json_file(&scenario_dir.join(p))?,
            NetworkSource::Inline(d) => Network::from_data((**d).clone()).map_err(|e| format!("grid.network: {e}"))?,
        };
        for (k, g) in self.generators.iter().enumerate() {
            if net.bus(g.bus).is_none() {
                return Err(format!("grid.generators[{k}].bus = {}: no such bus in the network", g.bus));
            }
        }
        Ok(net)
    }

    /// Builds the model: network plus generators (at zero output until the first weather sample).
    pub fn build_model(&self, net: Network) -> Result<(GridModel, Vec<(usize, GeneratorKind)>), String> {
        let mut model = GridModel::new(net);
        if let Some(u) = self.unbalanced {
            model.unbalanced = u;
        }
        model.four_wire = self.four_wire;
        let mut gens = Vec::new();
        for g in &self.generators {
            let (name, rated_kva) = match g.kind {
                GeneratorKind::Pv { inverter_kva, .. } => ("pv", inverter_kva),
                GeneratorKind::Wind { rated_kw, .. } => ("wind", rated_kw),
                GeneratorKind::Hydro { rated_kw, .. } => ("hydro", rated_kw),
                GeneratorKind::Biogas { rated_kw, .. } => ("biogas", rated_kw),
            };
            let k = model.add_sgen_rated(g.bus, 0.0, 0.0, name, Some(rated_kva / 1000.0))?;
            gens.push((k, g.kind.clone()));
        }
        if self.rooftop_pv_pct > 0.0 {
            for (id, bus) in model.load_ids() {
                let p = model.load_base(id).map_or(0.0, |l| l.0);
                if p > 0.0 {
                    let p_pv_mw = p * self.rooftop_pv_pct / 100.0;
                    model.add_sgen_rated(bus, p_pv_mw, 0.0, "rooftop-pv", Some(p_pv_mw))?;
                }
            }
        }
        Ok((model, gens))
    }

    /// The loads that follow household profiles.
    pub fn household_loads(&self, model: &GridModel) -> Vec<LoadId> {
        match self.loads {
            LoadConfig::FromNetwork => Vec::new(),
            LoadConfig::H0 { .. } => model.load_ids().into_iter().map(|(id, _)| id).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_validates_ron() {
        let text = r#"(
            network: File("networks/kerber_landnetz_freileitung_1.json"),
            loads: H0(annual_kwh: 3500.0, jitter: 0.15),
            generators: [(bus: 7, kind: Pv(kwp: 9.8, inverter_kva: 8.0, performance_ratio: 0.85))],
            profile_step: "15min",
        )"#;
        let c: GridConfig = ron::from_str(text).unwrap();
        c.validate().unwrap();
        let bad = GridConfig { profile_step: "0s".into(), ..c.clone() };
        assert!(bad.validate().unwrap_err().contains("profile_step"));
        let bad =
            GridConfig { anti_islanding: AntiIslanding { trip_s: f64::NAN, ..AntiIslanding::default() }, ..c.clone() };
        assert!(bad.validate().unwrap_err().contains("grid.anti_islanding.trip_s"));
        let bad =
            GridConfig { anti_islanding: AntiIslanding { reconnect_s: -1.0, ..AntiIslanding::default() }, ..c.clone() };
        assert!(bad.validate().unwrap_err().contains("grid.anti_islanding.reconnect_s"));
        let bad = GridConfig { loads: LoadConfig::H0 { annual_kwh: -1.0, jitter: 0.1 }, ..c };
        assert!(bad.validate().unwrap_err().contains("annual_kwh"));
        assert!(ron::from_str::<GridConfig>("(network: File(\"x\"), bogus: 1)").is_err());
    }
}
