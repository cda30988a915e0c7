//! The network model: buses, lines, transformers, external grids, loads, static generators and switches,
//! with the import of the neutral `network.json` format (pandapower's tables as JSON arrays).
//!
//! Units are in the field names as in the neutral format: kV line-to-line, ohm, nF, uS, MW, Mvar, MVA, km,
//! degrees. Element references use the file's own `index` values; errors name the element by table, index
//! and name. Validation catches dangling buses, non-physical values and typical unit mistakes (kW given as
//! MW, volts given as kV, metres given as km) before anything is solved.

use serde::Deserialize;
use std::collections::BTreeMap;

fn default_true() -> bool {
    true
}
fn one() -> f64 {
    1.0
}
fn default_f_hz() -> f64 {
    50.0
}
fn default_sn_mva() -> f64 {
    1.0
}
fn default_endtemp() -> f64 {
    // IEC 60909 minimum case: conductor temperature at the end of the short circuit (assumed as in the
    // reference data when the file gives none).
    80.0
}
fn default_vg() -> String {
    "Dyn".to_string()
}
fn default_si0() -> f64 {
    0.9
}
fn default_mag0() -> f64 {
    100.0
}
fn default_wye() -> String {
    "wye".to_string()
}

/// A bus (node). `vn_kv` is the line-to-line nominal voltage and the per-unit base.
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq)]
pub struct Bus {
    pub index: i64,
    #[serde(default)]
    pub name: Option<String>,
    pub vn_kv: f64,
    #[serde(default = "default_true")]
    pub in_service: bool,
    #[serde(default)]
    pub x: Option<f64>,
    #[serde(default)]
    pub y: Option<f64>,
}

/// A line (pi model). Positive and zero sequence per km; `parallel` identical systems.
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq)]
pub struct Line {
    pub index: i64,
    #[serde(default)]
    pub name: Option<String>,
    pub from_bus: i64,
    pub to_bus: i64,
    pub length_km: f64,
    pub r_ohm_per_km: f64,
    pub x_ohm_per_km: f64,
    #[serde(default)]
    pub c_nf_per_km: f64,
    #[serde(default)]
    pub g_us_per_km: f64,
    #[serde(default)]
    pub r0_ohm_per_km: Option<f64>,
    #[serde(default)]
    pub x0_ohm_per_km: Option<f64>,
    #[serde(default)]
    pub c0_nf_per_km: Option<f64>,
    #[serde(default)]
    pub max_i_ka: Option<f64>,
    #[serde(default = "one")]
    pub parallel: f64,
    #[serde(default = "default_true")]
    pub in_service: bool,
    #[serde(default = "default_endtemp")]
    pub endtemp_degree: f64,
    /// Derived total series resistance (checked against the per-km data when present).
    #[serde(default)]
    pub r_ohm: Option<f64>,
    /// 4-wire model only: series resistance of the neutral conductor in ohm/km. With the sequence data it fixes
    /// the mutual coupling (see `grid::fourwire::line_z4_ohm_per_km`); absent, the neutral follows from the
    /// zero-sequence data with no mutual coupling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rn_ohm_per_km: Option<f64>,
    /// 4-wire model only: series reactance of the neutral conductor in ohm/km (with `rn_ohm_per_km`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xn_ohm_per_km: Option<f64>,
    /// 4-wire model only: the full series resistance matrix in ohm/km, rows and columns phases a, b, c and
    /// the neutral n (symmetric). Takes precedence over the sequence data; give `x4_ohm_per_km` with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r4_ohm_per_km: Option<[[f64; 4]; 4]>,
    /// 4-wire model only: the full series reactance matrix in ohm/km (a, b, c, n; symmetric).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x4_ohm_per_km: Option<[[f64; 4]; 4]>,
}

/// How the LV neutral is earthed (4-wire model only; the sequence model takes the neutral as ideal).
#[derive(Clone, Copy, Debug, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
pub enum EarthingSystem {
    /// The distribution neutral is a PEN conductor earthed at the transformer's star point and, where
    /// `customer_r_ohm` is given, at every customer's connection (protective multiple earthing).
    #[default]
    #[serde(rename = "TN-C-S")]
    TnCS,
    /// The neutral is earthed at the transformer's star point (and at any `electrodes`) only; customers'
    /// own earth electrodes serve their protective conductors and do not touch the neutral.
    #[serde(rename = "TT")]
    Tt,
}

/// An earth electrode on the neutral at one bus.
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq)]
pub struct Electrode {
    pub bus: i64,
    /// Resistance to remote earth, ohm (> 0).
    pub r_ohm: f64,
}

/// Earthing of the neutral for the 4-wire model. Without it: TN-C-S, star point solidly earthed, no other
/// electrodes.
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize, PartialEq)]
pub struct Earthing {
    #[serde(default)]
    pub system: EarthingSystem,
    /// Resistance from every source's star point (the transformer's LV neutral) to earth, ohm; 0 = solid.
    #[serde(default)]
    pub source_r_ohm: f64,
    /// TN-C-S only: an electrode of this resistance (ohm) on the PEN at every bus with a load or generator.
    #[serde(default)]
    pub customer_r_ohm: Option<f64>,
    /// Further electrodes on the neutral (e.g. at cable cabinets and line ends).
    #[serde(default)]
    pub electrodes: Vec<Electrode>,
}

/// A two-winding transformer; nameplate data as in the neutral format.
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq)]
pub struct Trafo {
    pub index: i64,
    #[serde(default)]
    pub name: Option<String>,
    pub hv_bus: i64,
    pub lv_bus: i64,
    pub sn_mva: f64,
    pub vn_hv_kv: f64,
    pub vn_lv_kv: f64,
    pub vk_percent: f64,
    pub vkr_percent: f64,
    #[serde(default)]
    pub pfe_kw: f64,
    #[serde(default)]
    pub i0_percent: f64,
    #[serde(default)]
    pub shift_degree: f64,
    #[serde(default = "default_vg")]
    pub vector_group: String,
    #[serde(default)]
    pub tap_side: Option<String>,
    #[serde(default)]
    pub tap_neutral: Option<f64>,
    #[serde(default)]
    pub tap_pos: Option<f64>,
    #[serde(default)]
    pub tap_step_percent: Option<f64>,
    #[serde(default)]
    pub tap_step_degree: Option<f64>,
    #[serde(default)]
    pub vk0_percent: Option<f64>,
    #[serde(default)]
    pub vkr0_percent: Option<f64>,
    #[serde(default = "default_mag0")]
    pub mag0_percent: f64,
    #[serde(default)]
    pub mag0_rx: f64,
    #[serde(default = "default_si0")]
    pub si0_hv_partial: f64,
    #[serde(default = "one")]
    pub parallel: f64,
    #[serde(default = "default_true")]
    pub in_service: bool,
}

/// The slack: an ideal voltage source in power flow, a source impedance in short-circuit calculations.
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq)]
pub struct ExtGrid {
    #[serde(default)]
    pub index: i64,
    #[serde(default)]
    pub name: Option<String>,
    pub bus: i64,
    #[serde(default = "one")]
    pub vm_pu: f64,
    #[serde(default)]
    pub va_degree: f64,
    #[serde(default)]
    pub s_sc_max_mva: Option<f64>,
    #[serde(default)]
    pub s_sc_min_mva: Option<f64>,
    #[serde(default)]
    pub rx_max: Option<f64>,
    #[serde(default)]
    pub rx_min: Option<f64>,
    #[serde(default)]
    pub r0x0_max: Option<f64>,
    #[serde(default)]
    pub x0x_max: Option<f64>,
    #[serde(default)]
    pub r0x0_min: Option<f64>,
    #[serde(default)]
    pub x0x_min: Option<f64>,
    #[serde(default = "default_true")]
    pub in_service: bool,
}

/// A balanced load (three-phase total), ZIP voltage dependence by percentages.
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq)]
pub struct Load {
    #[serde(default)]
    pub index: i64,
    #[serde(default)]
    pub name: Option<String>,
    pub bus: i64,
    pub p_mw: f64,
    #[serde(default)]
    pub q_mvar: f64,
    #[serde(default)]
    pub const_z_p_percent: f64,
    #[serde(default)]
    pub const_i_p_percent: f64,
    #[serde(default)]
    pub const_z_q_percent: f64,
    #[serde(default)]
    pub const_i_q_percent: f64,
    /// Older exports give one `const_z_percent`/`const_i_percent` for both P and Q.
    #[serde(default)]
    pub const_z_percent: Option<f64>,
    #[serde(default)]
    pub const_i_percent: Option<f64>,
    #[serde(default = "one")]
    pub scaling: f64,
    #[serde(default = "default_true")]
    pub in_service: bool,
    /// How the three-phase load is connected: "wye" (phase to neutral; also when absent, as SimBench leaves
    /// it) or "delta" (a third of the power across each pair of phases). The balanced flow cannot tell them
    /// apart; the unbalanced flow draws a delta load's constant-power share across the phase pairs. Its
    /// constant-current and constant-impedance shares stay per phase to neutral (exact while the voltages
    /// are balanced).
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

/// A per-phase load: wye (phase to neutral) or delta (a-b, b-c, c-a for phases a, b, c).
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq)]
pub struct AsymLoad {
    #[serde(default)]
    pub index: i64,
    #[serde(default)]
    pub name: Option<String>,
    pub bus: i64,
    #[serde(default)]
    pub p_a_mw: f64,
    #[serde(default)]
    pub q_a_mvar: f64,
    #[serde(default)]
    pub p_b_mw: f64,
    #[serde(default)]
    pub q_b_mvar: f64,
    #[serde(default)]
    pub p_c_mw: f64,
    #[serde(default)]
    pub q_c_mvar: f64,
    #[serde(default = "one")]
    pub scaling: f64,
    #[serde(default = "default_wye", rename = "type")]
    pub kind: String,
    #[serde(default = "default_true")]
    pub in_service: bool,
}

/// A static generator (PV, wind, hydro, biogas inverter or machine) as a negative balanced PQ load.
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq)]
pub struct Sgen {
    #[serde(default)]
    pub index: i64,
    #[serde(default)]
    pub name: Option<String>,
    pub bus: i64,
    pub p_mw: f64,
    #[serde(default)]
    pub q_mvar: f64,
    #[serde(default)]
    pub sn_mva: Option<f64>,
    /// Ratio of the short-circuit current a full-converter unit delivers to its rated current (IEC 60909-0:2016,
    /// 6.2 and 7.1: `I_sk = k * I_rG`); `None` takes [`DEFAULT_SGEN_K`] with a warning.
    #[serde(default)]
    pub k: Option<f64>,
    #[serde(default = "one")]
    pub scaling: f64,
    #[serde(default = "default_true")]
    pub in_service: bool,
    /// pandapower's `type`: the technology ("PV", "WP", ...) in most data, the connection in three-phase
    /// studies. "delta" puts a third of the power across each phase pair in the unbalanced flows; anything
    /// else is wye (pandapower's `runpp_3ph` leaves out generators whose type is neither "wye" nor "delta").
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

/// The k factor taken for a static generator whose data gives none (typical for PV inverters: 1.1 to 1.5).
pub const DEFAULT_SGEN_K: f64 = 1.2;

impl Trafo {
    /// The winding connections of `vector_group`, lower case, without an IEC clock number ("Dyn5" and "DYN11"
    /// are both "dyn"): what the zero-sequence model depends on. The phase shift is `shift_degree`'s.
    pub fn windings(&self) -> String {
        self.vector_group.trim().trim_end_matches(|c: char| c.is_ascii_digit()).to_ascii_lowercase()
    }

    /// The IEC clock number written after the windings ("Dyn5": 5, i.e. 150 degrees lagging), if any.
    pub fn clock_number(&self) -> Option<u32> {
        let vg = self.vector_group.trim();
        let digits = &vg[vg.trim_end_matches(|c: char| c.is_ascii_digit()).len()..];
        digits.parse().ok()
    }

    /// Tap steps off the neutral position (0 without a tap changer or a usable position).
    pub fn tap_steps(&self) -> f64 {
        match (self.tap_pos, self.tap_neutral) {
            (Some(p), Some(n)) if p.is_finite() && n.is_finite() => p - n,
            (Some(p), None) if p.is_finite() => p,
            _ => 0.0,
        }
    }

    /// Rated voltages (HV, LV; kV) with the tap changer `steps` steps off neutral, on its side.
    pub fn rated_kv_at_tap(&self, steps: f64) -> (f64, f64) {
        let tap = 1.0 + steps * self.tap_step_percent.filter(|v| v.is_finite()).unwrap_or(0.0) / 100.0;
        match self.tap_side.as_deref() {
            Some("hv") => (self.vn_hv_kv * tap, self.vn_lv_kv),
            Some("lv") => (self.vn_hv_kv, self.vn_lv_kv * tap),
            _ => (self.vn_hv_kv, self.vn_lv_kv),
        }
    }

    /// Phase shift (degrees) with the tap changer `steps` steps off neutral.
    pub fn shift_degree_at_tap(&self, steps: f64) -> f64 {
        self.shift_degree + steps * self.tap_step_degree.filter(|v| v.is_finite()).unwrap_or(0.0)
    }
}

impl Sgen {
    /// Rated apparent power in MVA: `sn_mva`, else the magnitude of its scheduled output (|p + jq| x scaling).
    pub fn rating_mva(&self) -> f64 {
        match self.sn_mva {
            Some(s) if s.is_finite() && s > 0.0 => s,
            _ => (self.p_mw.hypot(self.q_mvar) * self.scaling).abs(),
        }
    }

    /// The k factor (short-circuit over rated current).
    pub fn k_factor(&self) -> f64 {
        self.k.filter(|k| k.is_finite() && *k >= 0.0).unwrap_or(DEFAULT_SGEN_K)
    }
}

/// A switch: `et` = "b" (bus-bus), "l" (at the `bus` end of line `element`), "t" (at a transformer terminal).
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq)]
pub struct Switch {
    #[serde(default)]
    pub index: i64,
    #[serde(default)]
    pub name: Option<String>,
    pub bus: i64,
    pub element: i64,
    pub et: String,
    #[serde(default = "default_true")]
    pub closed: bool,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Impedance of a closed bus-bus switch, ohm (at R/X = 2, as pandapower's `switch_rx_ratio`); 0 or absent
    /// joins the two buses into one node. Ignored on line and transformer switches, as pandapower does.
    #[serde(default)]
    pub z_ohm: Option<f64>,
}

/// R/X of a switch's impedance `z_ohm` (pandapower's default `switch_rx_ratio`).
pub const SWITCH_RX: f64 = 2.0;

impl Switch {
    /// A bus-bus switch that is an impedance when closed.
    pub fn has_impedance(&self) -> bool {
        self.et == "b" && self.z_ohm.is_some_and(|z| z > 0.0)
    }

    /// Its series impedance per conductor, ohm: `z_ohm` at R/X = [`SWITCH_RX`] (zero without one).
    pub fn impedance_ohm(&self) -> num_complex::Complex64 {
        let z = self.z_ohm.unwrap_or(0.0) / SWITCH_RX.hypot(1.0);
        num_complex::Complex64::new(SWITCH_RX * z, z)
    }
}

impl Sgen {
    /// Whether the generator is connected in delta (its `type`; any other type is wye).
    pub fn is_delta(&self) -> bool {
        self.kind.as_deref() == Some("delta")
    }
}

#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq)]
pub struct Meta {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default = "default_f_hz")]
    pub f_hz: f64,
    #[serde(default = "default_sn_mva")]
    pub sn_mva: f64,
}

impl Default for Meta {
    fn default() -> Self {
        Meta { name: None, f_hz: default_f_hz(), sn_mva: default_sn_mva() }
    }
}

/// The neutral format as data (what `network.json` holds; also usable inline in a scenario).
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize, PartialEq)]
pub struct NetworkData {
    #[serde(default)]
    pub meta: Option<Meta>,
    #[serde(default)]
    pub buses: Vec<Bus>,
    #[serde(default)]
    pub lines: Vec<Line>,
    #[serde(default)]
    pub trafos: Vec<Trafo>,
    #[serde(default)]
    pub ext_grid: Vec<ExtGrid>,
    #[serde(default)]
    pub loads: Vec<Load>,
    #[serde(default)]
    pub asymmetric_loads: Vec<AsymLoad>,
    #[serde(default)]
    pub sgens: Vec<Sgen>,
    #[serde(default)]
    pub switches: Vec<Switch>,
    /// Earthing of the neutral (4-wire model only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earthing: Option<Earthing>,
}

/// A validated network. Element vectors keep file order; `bus_pos` maps a bus `index` to its position.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Network {
    pub name: String,
    pub f_hz: f64,
    pub buses: Vec<Bus>,
    pub lines: Vec<Line>,
    pub trafos: Vec<Trafo>,
    pub ext_grids: Vec<ExtGrid>,
    pub loads: Vec<Load>,
    pub asym_loads: Vec<AsymLoad>,
    pub sgens: Vec<Sgen>,
    pub switches: Vec<Switch>,
    /// Earthing of the neutral for the 4-wire model (the default when the file gives none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub earthing: Option<Earthing>,
    #[serde(skip)]
    pub bus_pos: BTreeMap<i64, usize>,
    /// Plausibility findings that did not stop the import: each names the element, the value and what is
    /// assumed (e.g. a magnetising branch clamped to pure iron losses). Shown on stderr and in the summary.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

fn label(name: &Option<String>) -> String {
    match name {
        Some(n) if !n.is_empty() => format!(" ('{n}')"),
        _ => String::new(),
    }
}

/// How errors name an element: its place in the JSON (`lines[2]`), then its `index` and name, e.g.
/// `lines[2] (index 3 'line_1_4')`. The CLI locates the leading path in the file.
fn element(array: &str, k: usize, index: i64, name: &Option<String>) -> String {
    format!("{array}[{k}] (index {index}{})", label(name))
}

impl Network {
    /// Set points of the balanced loads as in the file, scaling applied: (MW, Mvar) per load.
    pub fn load_set_points(&self) -> Vec<(f64, f64)> {
        self.loads.iter().map(|l| (l.p_mw * l.scaling, l.q_mvar * l.scaling)).collect()
    }

    /// Set points of the asymmetric loads as in the file, scaling applied: (MW, Mvar) per phase a, b, c.
    pub fn asym_set_points(&self) -> Vec<[(f64, f64); 3]> {
        self.asym_loads
            .iter()
            .map(|l| {
                let s = l.scaling;
                [(l.p_a_mw * s, l.q_a_mvar * s), (l.p_b_mw * s, l.q_b_mvar * s), (l.p_c_mw * s, l.q_c_mvar * s)]
            })
            .collect()
    }

    /// Set points of the static generators as in the file, scaling applied: (MW, Mvar) per generator.
    pub fn sgen_set_points(&self) -> Vec<(f64, f64)> {
        self.sgens.iter().map(|g| (g.p_mw * g.scaling, g.q_mvar * g.scaling)).collect()
    }

    /// Reads and validates a `network.json` file.
    pub fn from_json_file(path: &std::path::Path) -> Result<Network, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Network::from_json_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses and validates the neutral JSON format. Python's `NaN`, `Infinity` and `-Infinity` outside
    /// strings, which its `json` module writes and JSON does not allow (pandapower-export puts them in `meta`
    /// for a network without LV buses), are read as `null`: pandapower's "missing". An error's line and column
    /// are those of the file as given.
    pub fn from_json_str(text: &str) -> Result<Network, String> {
        let fixed = python_words_as_null(text);
        let raw: NetworkData = match &fixed {
            None => serde_json::from_str(text).map_err(|e| format!("invalid network JSON: {e}"))?,
            Some(fixed) => serde_json::from_str(&fixed.text).map_err(|e| {
                let (line, col, word) = fixed.original_line_col(text, e.line(), e.column());
                let msg = e.to_string();
                let head = msg.rfind(" at line ").map_or(msg.as_str(), |k| &msg[..k]);
                // The parser saw the `null` a word became; name the word the file has.
                let head = match word {
                    Some(w) if head.starts_with("invalid type: null") => {
                        head.replacen("null", &format!("{w} (a missing value)"), 1)
                    }
                    _ => head.to_string(),
                };
                format!("invalid network JSON: {head} at line {line} column {col}")
            })?,
        };
        let mut net = Network::from_data(raw)?;
        net.warnings.extend(unread_tables(fixed.as_ref().map_or(text, |f| f.text.as_str())));
        Ok(net)
    }

    /// Validates network data (e.g. an inline network of a scenario).
    pub fn from_data(raw: NetworkData) -> Result<Network, String> {
        let meta = raw.meta.unwrap_or_default();
        let net = Network {
            name: meta.name.unwrap_or_else(|| "network".into()),
            f_hz: meta.f_hz,
            buses: raw.buses,
            lines: raw.lines,
            trafos: raw.trafos,
            ext_grids: raw.ext_grid,
            loads: raw.loads,
            asym_loads: raw.asymmetric_loads,
            sgens: raw.sgens,
            switches: raw.switches,
            earthing: raw.earthing,
            bus_pos: BTreeMap::new(),
            warnings: Vec::new(),
        };
        net.validated()
    }

    /// Checks the network and builds the bus index map. Errors (the impossible, and clear unit slips) name the
    /// element; values a real standard type may well have but that fail a plausibility check become
    /// [`Network::warnings`] naming the element, the value and what is assumed.
    pub fn validated(mut self) -> Result<Network, String> {
        let mut warnings: Vec<String> = Vec::new();
        if !(self.f_hz > 0.0 && self.f_hz < 1000.0) {
            return Err(format!("meta.f_hz = {} must be a mains frequency in Hz (e.g. 50)", self.f_hz));
        }
        if self.buses.is_empty() {
            return Err("network has no buses".into());
        }
        let mut pos = BTreeMap::new();
        for (k, b) in self.buses.iter().enumerate() {
            let w = element("buses", k, b.index, &b.name);
            if pos.insert(b.index, k).is_some() {
                return Err(format!("{w}: duplicate index"));
            }
            if !(b.vn_kv.is_finite() && b.vn_kv > 0.0) {
                return Err(format!("{w}: vn_kv = {} must be positive", b.vn_kv));
            }
            if b.vn_kv > 800.0 {
                return Err(format!("{w}: vn_kv = {} is not a plausible voltage in kV (given in volts?)", b.vn_kv));
            }
        }
        let bus = |idx: i64, what: &str| -> Result<usize, String> {
            pos.get(&idx).copied().ok_or_else(|| format!("{what} refers to bus {idx}, which does not exist"))
        };
        let mut degree = vec![0usize; self.buses.len()];
        let mut line_ids = BTreeMap::new();
        for (k, l) in self.lines.iter().enumerate() {
            let w = element("lines", k, l.index, &l.name);
            if line_ids.insert(l.index, ()).is_some() {
                return Err(format!("{w}: duplicate index"));
            }
            let f = bus(l.from_bus, &format!("{w} from_bus"))?;
            let t = bus(l.to_bus, &format!("{w} to_bus"))?;
            if f == t {
                return Err(format!("{w}: from_bus and to_bus are both bus {}", l.from_bus));
            }
            if !(l.length_km.is_finite() && l.length_km > 0.0) {
                return Err(format!("{w}: length_km = {} must be positive", l.length_km));
            }
            if l.length_km > 500.0 {
                return Err(format!(
                    "{w}: length_km = {} is implausible for a line (metres given as km?)",
                    l.length_km
                ));
            }
            for (field, v) in [("r_ohm_per_km", l.r_ohm_per_km), ("x_ohm_per_km", l.x_ohm_per_km)] {
                if !(v.is_finite() && v >= 0.0) {
                    return Err(format!("{w}: {field} = {v} must be >= 0"));
                }
                if v > 50.0 {
                    warnings.push(format!(
                        "{w}: {field} = {v} is unusually high for a line (milliohm given as ohm?); used as given"
                    ));
                }
            }
            if l.r_ohm_per_km == 0.0 && l.x_ohm_per_km == 0.0 {
                return Err(format!("{w}: zero impedance (r_ohm_per_km and x_ohm_per_km are 0); use a switch"));
            }
            for (field, v) in [("c_nf_per_km", l.c_nf_per_km), ("g_us_per_km", l.g_us_per_km)] {
                if !(v.is_finite() && v >= 0.0) {
                    return Err(format!("{w}: {field} = {v} must be >= 0"));
                }
            }
            for (field, v) in [
                ("r0_ohm_per_km", l.r0_ohm_per_km),
                ("x0_ohm_per_km", l.x0_ohm_per_km),
                ("c0_nf_per_km", l.c0_nf_per_km),
            ] {
                if let Some(v) = v
                    && !(v.is_finite() && v >= 0.0)
                {
                    return Err(format!("{w}: {field} = {v} must be >= 0"));
                }
            }
            if !(l.parallel.is_finite() && l.parallel >= 1.0) {
                return Err(format!("{w}: parallel = {} must be >= 1", l.parallel));
            }
            validate_neutral_data(&w, l)?;
            if let Some(r) = l.r_ohm {
                let expect = l.r_ohm_per_km * l.length_km / l.parallel;
                if (r - expect).abs() > 1e-6 * expect.abs().max(1e-6) + 1e-12 {
                    return Err(format!(
                        "{w}: r_ohm = {r} does not equal r_ohm_per_km * length_km / parallel = {expect} (unit mistake?)"
                    ));
                }
            }
            let (vf, vt) = (self.buses[f].vn_kv, self.buses[t].vn_kv);
            if (vf / vt).max(vt / vf) > 2.0 {
                return Err(format!(
                    "{w}: connects bus {} ({vf} kV) to bus {} ({vt} kV); use a transformer",
                    l.from_bus, l.to_bus
                ));
            }
            if (vf / vt - 1.0).abs() > 0.1 {
                warnings.push(format!(
                    "{w}: connects bus {} ({vf} kV) to bus {} ({vt} kV); per-unit values are taken on each bus's \
                     own base (an ideal 1:1 per-unit link)",
                    l.from_bus, l.to_bus
                ));
            }
            if l.in_service {
                degree[f] += 1;
                degree[t] += 1;
            }
        }
        for (k, t) in self.trafos.iter().enumerate() {
            let w = element("trafos", k, t.index, &t.name);
            let h = bus(t.hv_bus, &format!("{w} hv_bus"))?;
            let lv = bus(t.lv_bus, &format!("{w} lv_bus"))?;
            if h == lv {
                return Err(format!("{w}: hv_bus and lv_bus are the same bus"));
            }
            for (field, v) in
                [("sn_mva", t.sn_mva), ("vn_hv_kv", t.vn_hv_kv), ("vn_lv_kv", t.vn_lv_kv), ("vk_percent", t.vk_percent)]
            {
                if !(v.is_finite() && v > 0.0) {
                    return Err(format!("{w}: {field} = {v} must be positive"));
                }
            }
            if !(t.vkr_percent >= 0.0 && t.vkr_percent <= t.vk_percent) {
                return Err(format!(
                    "{w}: vkr_percent = {} must be within 0..=vk_percent ({})",
                    t.vkr_percent, t.vk_percent
                ));
            }
            if t.vk_percent > 50.0 {
                warnings.push(format!(
                    "{w}: vk_percent = {} is unusually high for a distribution transformer; used as given",
                    t.vk_percent
                ));
            }
            if !(t.pfe_kw.is_finite() && t.pfe_kw >= 0.0 && t.i0_percent.is_finite() && t.i0_percent >= 0.0) {
                return Err(format!("{w}: pfe_kw = {} and i0_percent = {} must be >= 0", t.pfe_kw, t.i0_percent));
            }
            // Distribution transformers draw 0.1 to 3 % of their rated current at no load; tens of percent is
            // most often a per-unit value or a current in A typed as a percentage.
            if t.i0_percent > 10.0 {
                warnings.push(format!(
                    "{w}: i0_percent = {} is unusually high for a distribution transformer (per-unit or amperes \
                     typed as percent?); used as given",
                    t.i0_percent
                ));
            }
            // A clock number ("Dyn5") is read as documentation: `shift_degree` sets the phase shift, and a
            // clock number that disagrees with it is named (a shift taken from one and a group from the other
            // is a classic slip in hand-made data).
            if let Some(clock) = t.clock_number() {
                let says = (f64::from(clock) * 30.0).rem_euclid(360.0);
                let off = (says - t.shift_degree.rem_euclid(360.0)).rem_euclid(360.0);
                if clock > 11 {
                    warnings.push(format!(
                        "{w}: vector_group = '{}' has clock number {clock}, beyond 0..11; the windings '{}' are \
                         used, and shift_degree = {} sets the phase shift",
                        t.vector_group,
                        t.windings(),
                        t.shift_degree
                    ));
                } else if off.min(360.0 - off) > 1e-6 {
                    warnings.push(format!(
                        "{w}: vector_group = '{}' says a phase shift of {says} degrees, but shift_degree = {}; \
                         shift_degree is used",
                        t.vector_group, t.shift_degree
                    ));
                }
            }
            let s0_kva = t.i0_percent / 100.0 * t.sn_mva * 1000.0;
            if t.pfe_kw > 1000.0 * t.sn_mva {
                return Err(format!(
                    "{w}: pfe_kw = {} exceeds the rating sn_mva = {} MVA (kW vs W?)",
                    t.pfe_kw, t.sn_mva
                ));
            }
            // Real standard types do this (pandapower's "0.1 MVA 10/0.4 kV": pfe 0.45 kW, i0 0.25 % = 0.25 kVA);
            // like pandapower, keep the iron losses and take the magnetising susceptance as zero. Within 0.1 % it
            // is the rounding of published data (SimBench's 0.63 MVA type: pfe 1.65 kW, i0 0.2619 % = 1.64997
            // kVA), and the susceptance is zero without a word.
            if t.pfe_kw > s0_kva * 1.001 + 1e-12 {
                let by = if s0_kva > 0.0 {
                    format!(" by {:.1} %", (t.pfe_kw / s0_kva - 1.0) * 100.0)
                } else {
                    String::new()
                };
                warnings.push(format!(
                    "{w}: pfe_kw = {} exceeds the no-load apparent power i0_percent x sn_mva = {} kVA{by}; \
                     magnetising susceptance taken as 0 (iron-loss conductance kept)",
                    t.pfe_kw,
                    (s0_kva * 1e6).round() / 1e6,
                ));
            }
            for (field, rated, b) in [("vn_hv_kv", t.vn_hv_kv, h), ("vn_lv_kv", t.vn_lv_kv, lv)] {
                let vb = self.buses[b].vn_kv;
                let r = (rated / vb).max(vb / rated);
                if r > 3.0 {
                    return Err(format!(
                        "{w}: {field} = {rated} does not match its bus {} at {vb} kV (unit mistake?)",
                        self.buses[b].index
                    ));
                }
                if (rated / vb - 1.0).abs() > 0.3 {
                    warnings.push(format!(
                        "{w}: {field} = {rated} kV is far from its bus {} at {vb} kV; the off-nominal ratio is \
                         used as given",
                        self.buses[b].index
                    ));
                }
            }
            if !(0.0..=1.0).contains(&t.si0_hv_partial) {
                return Err(format!("{w}: si0_hv_partial = {} must be within 0..=1", t.si0_hv_partial));
            }
            if !(t.parallel.is_finite() && t.parallel >= 1.0) {
                return Err(format!("{w}: parallel = {} must be >= 1", t.parallel));
            }
            if t.in_service {
                degree[h] += 1;
                degree[lv] += 1;
            }
        }
        if let Some(e) = &self.earthing {
            if !(e.source_r_ohm.is_finite() && e.source_r_ohm >= 0.0) {
                return Err(format!("earthing.source_r_ohm = {} must be >= 0 (0 = solidly earthed)", e.source_r_ohm));
            }
            if let Some(r) = e.customer_r_ohm {
                if e.system == EarthingSystem::Tt {
                    return Err("earthing.customer_r_ohm: in a TT system customers' electrodes do not earth the \
                                neutral; use system \"TN-C-S\" or list neutral electrodes in earthing.electrodes"
                        .into());
                }
                if !(r.is_finite() && r > 0.0) {
                    return Err(format!("earthing.customer_r_ohm = {r} must be a resistance > 0 in ohm"));
                }
            }
            for (k, el) in e.electrodes.iter().enumerate() {
                let w = format!("earthing.electrodes[{k}] (bus {})", el.bus);
                bus(el.bus, &w)?;
                if !(el.r_ohm.is_finite() && el.r_ohm > 0.0) {
                    return Err(format!("{w}: r_ohm = {} must be a resistance > 0 in ohm", el.r_ohm));
                }
            }
        }
        let mut slack = 0;
        for (k, e) in self.ext_grids.iter().enumerate() {
            let w = element("ext_grid", k, e.index, &e.name);
            let b = bus(e.bus, &w)?;
            if !(e.vm_pu.is_finite() && e.vm_pu > 0.5 && e.vm_pu < 1.5) {
                return Err(format!("{w}: vm_pu = {} must be a per-unit voltage near 1", e.vm_pu));
            }
            for (field, v) in [("s_sc_max_mva", e.s_sc_max_mva), ("s_sc_min_mva", e.s_sc_min_mva)] {
                if let Some(v) = v
                    && !(v.is_finite() && v > 0.0)
                {
                    return Err(format!("{w}: {field} = {v} must be positive"));
                }
            }
            if e.in_service {
                slack += 1;
                degree[b] += 1;
            }
        }
        if slack == 0 {
            return Err("no slack: the network needs an in-service ext_grid".into());
        }
        for (k, s) in self.switches.iter().enumerate() {
            let w = element("switches", k, s.index, &s.name);
            let b = bus(s.bus, &w)?;
            if let Some(z) = s.z_ohm
                && !(z.is_finite() && z >= 0.0)
            {
                return Err(format!("{w}: z_ohm = {z} must be >= 0"));
            }
            match s.et.as_str() {
                "b" => {
                    let e = bus(s.element, &format!("{w} element"))?;
                    degree[b] += 1;
                    degree[e] += 1;
                }
                "l" => {
                    let line = self.lines.iter().find(|l| l.index == s.element);
                    match line {
                        Some(l) if l.from_bus == s.bus || l.to_bus == s.bus => {}
                        Some(_) => return Err(format!("{w}: bus {} is not an end of line {}", s.bus, s.element)),
                        None => return Err(format!("{w}: refers to line {}, which does not exist", s.element)),
                    }
                }
                "t" => {
                    let tr = self.trafos.iter().find(|t| t.index == s.element);
                    match tr {
                        Some(t) if t.hv_bus == s.bus || t.lv_bus == s.bus => {}
                        Some(_) => return Err(format!("{w}: bus {} is not a terminal of trafo {}", s.bus, s.element)),
                        None => return Err(format!("{w}: refers to trafo {}, which does not exist", s.element)),
                    }
                }
                other => return Err(format!("{w}: et = '{other}' must be 'b', 'l' or 't'")),
            }
        }
        for (k, b) in self.buses.iter().enumerate() {
            if b.in_service && degree[k] == 0 {
                warnings.push(format!(
                    "bus {}{} is dangling: no line, transformer, switch or ext_grid connects it; it stays \
                     unsupplied (no results)",
                    b.index,
                    label(&b.name)
                ));
            }
        }
        // Islands: buses no source can reach even with every switch closed.
        {
            let n = self.buses.len();
            let mut adj: Vec<Vec<usize>> = vec![Vec::new(); n];
            for l in self.lines.iter().filter(|l| l.in_service) {
                let (f, t) = (pos[&l.from_bus], pos[&l.to_bus]);
                adj[f].push(t);
                adj[t].push(f);
            }
            for t in self.trafos.iter().filter(|t| t.in_service) {
                let (h, l) = (pos[&t.hv_bus], pos[&t.lv_bus]);
                adj[h].push(l);
                adj[l].push(h);
            }
            for s in self.switches.iter().filter(|s| s.et == "b") {
                let (a, b) = (pos[&s.bus], pos[&s.element]);
                adj[a].push(b);
                adj[b].push(a);
            }
            let mut seen = vec![false; n];
            let mut stack: Vec<usize> = self.ext_grids.iter().filter(|e| e.in_service).map(|e| pos[&e.bus]).collect();
            while let Some(k) = stack.pop() {
                if !seen[k] && self.buses[k].in_service {
                    seen[k] = true;
                    stack.extend(adj[k].iter().copied());
                }
            }
            let island: Vec<usize> =
                (0..n).filter(|&k| self.buses[k].in_service && !seen[k] && degree[k] > 0).collect();
            if !island.is_empty() {
                let named: Vec<String> = island
                    .iter()
                    .take(10)
                    .map(|&k| format!("bus {}{}", self.buses[k].index, label(&self.buses[k].name)))
                    .collect();
                let more = if island.len() > 10 { format!(" and {} more", island.len() - 10) } else { String::new() };
                warnings.push(format!(
                    "island without a source (no path to an ext_grid): {}{more}; left unsupplied (no results)",
                    named.join(", ")
                ));
            }
        }
        let check_s = |w: &str, b: usize, field: &str, v: f64| -> Result<(), String> {
            if !v.is_finite() {
                return Err(format!("{w}: {field} = {v} must be finite"));
            }
            // A single LV connection above 10 MW is a unit mistake (kW written into an MW field).
            let vn = self.buses[b].vn_kv;
            if vn < 1.0 && v.abs() > 10.0 {
                return Err(format!("{w}: {field} = {v} MW at a {vn} kV bus is implausible (kW given as MW?)"));
            }
            Ok(())
        };
        let mut odd_types: Vec<(String, String, usize)> = Vec::new();
        for (k, l) in self.loads.iter().enumerate() {
            let w = element("loads", k, l.index, &l.name);
            let b = bus(l.bus, &w)?;
            check_s(&w, b, "p_mw", l.p_mw)?;
            check_s(&w, b, "q_mvar", l.q_mvar)?;
            let (zp, ip, zq, iq) = l.zip_percent();
            for (f, v) in [
                ("const_z_p_percent", zp),
                ("const_i_p_percent", ip),
                ("const_z_q_percent", zq),
                ("const_i_q_percent", iq),
            ] {
                if !(0.0..=100.0).contains(&v) {
                    return Err(format!("{w}: {f} = {v} must be within 0..=100"));
                }
            }
            if zp + ip > 100.0 || zq + iq > 100.0 {
                return Err(format!("{w}: constant-impedance plus constant-current share exceeds 100 %"));
            }
            if let Some(t) = l.kind.as_deref().filter(|t| !matches!(*t, "" | "wye" | "delta")) {
                match odd_types.iter_mut().find(|(k, _, _)| k == t) {
                    Some((_, _, n)) => *n += 1,
                    None => odd_types.push((t.to_string(), w.clone(), 0)),
                }
            }
        }
        // One warning per odd type (real data labels thousands of loads "HH"), naming the first load.
        for (t, first, more) in odd_types {
            let others = if more > 0 { format!(" and {more} more loads") } else { String::new() };
            warnings
                .push(format!("{first}{others}: type = '{t}' is not a connection ('wye' or 'delta'); taken as wye"));
        }
        for (k, l) in self.asym_loads.iter().enumerate() {
            let w = element("asymmetric_loads", k, l.index, &l.name);
            let b = bus(l.bus, &w)?;
            for (f, v) in [
                ("p_a_mw", l.p_a_mw),
                ("q_a_mvar", l.q_a_mvar),
                ("p_b_mw", l.p_b_mw),
                ("q_b_mvar", l.q_b_mvar),
                ("p_c_mw", l.p_c_mw),
                ("q_c_mvar", l.q_c_mvar),
            ] {
                check_s(&w, b, f, v)?;
            }
            if l.kind != "wye" && l.kind != "delta" {
                return Err(format!("{w}: type = '{}' must be 'wye' or 'delta'", l.kind));
            }
        }
        let (mut no_k, mut no_sn) = (Vec::new(), Vec::new());
        for (k, s) in self.sgens.iter().enumerate() {
            let w = element("sgens", k, s.index, &s.name);
            let b = bus(s.bus, &w)?;
            check_s(&w, b, "p_mw", s.p_mw)?;
            check_s(&w, b, "q_mvar", s.q_mvar)?;
            if let Some(sn) = s.sn_mva
                && !(sn.is_finite() && sn >= 0.0)
            {
                return Err(format!("{w}: sn_mva = {sn} must be >= 0"));
            }
            if let Some(k) = s.k
                && !(k.is_finite() && k >= 0.0)
            {
                return Err(format!("{w}: k = {k} must be >= 0"));
            }
            if s.in_service && s.k.is_none() {
                no_k.push(s.index);
            }
            if s.in_service && !s.sn_mva.is_some_and(|v| v > 0.0) {
                no_sn.push(s.index);
            }
        }
        let list = |v: &[i64]| {
            let head: Vec<String> = v.iter().take(5).map(|i| i.to_string()).collect();
            if v.len() > 5 { format!("{} and {} more", head.join(", "), v.len() - 5) } else { head.join(", ") }
        };
        if !no_k.is_empty() {
            warnings.push(format!(
                "sgen {}: no k factor; k = {DEFAULT_SGEN_K} assumed for their short-circuit contribution",
                list(&no_k)
            ));
        }
        if !no_sn.is_empty() {
            warnings
                .push(format!("sgen {}: no sn_mva; the rating is taken as |p_mw + j q_mvar| x scaling", list(&no_sn)));
        }
        self.bus_pos = pos;
        self.warnings = warnings;
        Ok(self)
    }

    /// Position of the bus with file index `index`.
    pub fn bus(&self, index: i64) -> Option<usize> {
        self.bus_pos.get(&index).copied()
    }

    /// A readable name for the bus at position `k`: "bus 12 ('name')".
    pub fn bus_label(&self, k: usize) -> String {
        let b = &self.buses[k];
        format!("bus {}{}", b.index, label(&b.name))
    }
}

/// Checks a line's optional 4-wire data: a neutral conductor given in full, an explicit matrix pair that is
/// finite, symmetric and has positive self resistances.
// Index loops mirror the matrix they check (symmetry needs both [i][j] and [j][i]).
#[allow(clippy::needless_range_loop)]
fn validate_neutral_data(w: &str, l: &Line) -> Result<(), String> {
    match (l.rn_ohm_per_km, l.xn_ohm_per_km) {
        (None, None) => {}
        (Some(r), Some(x)) => {
            if !(r.is_finite() && r >= 0.0 && x.is_finite() && x >= 0.0) || r == 0.0 && x == 0.0 {
                return Err(format!(
                    "{w}: rn_ohm_per_km = {r} and xn_ohm_per_km = {x} must be >= 0 and not both 0 (neutral conductor)"
                ));
            }
        }
        _ => return Err(format!("{w}: give rn_ohm_per_km and xn_ohm_per_km together (neutral conductor)")),
    }
    match (&l.r4_ohm_per_km, &l.x4_ohm_per_km) {
        (None, None) => Ok(()),
        (Some(r), Some(x)) => {
            for (field, m) in [("r4_ohm_per_km", r), ("x4_ohm_per_km", x)] {
                for i in 0..4 {
                    for j in 0..4 {
                        let v = m[i][j];
                        if !v.is_finite() {
                            return Err(format!("{w}: {field}[{i}][{j}] = {v} must be finite"));
                        }
                        let t = m[j][i];
                        if (v - t).abs() > 1e-9 * v.abs().max(t.abs()).max(1e-12) {
                            return Err(format!(
                                "{w}: {field} is not symmetric: [{i}][{j}] = {v} but [{j}][{i}] = {t}"
                            ));
                        }
                    }
                }
            }
            for i in 0..4 {
                if r[i][i].is_nan() || r[i][i] <= 0.0 {
                    return Err(format!(
                        "{w}: r4_ohm_per_km[{i}][{i}] = {} must be > 0 (self resistance of {})",
                        r[i][i],
                        ["phase a", "phase b", "phase c", "the neutral"][i]
                    ));
                }
            }
            Ok(())
        }
        _ => Err(format!("{w}: give r4_ohm_per_km and x4_ohm_per_km together (4x4 series impedance)")),
    }
}

impl Load {
    /// Whether the load is connected in delta (its `type`).
    pub fn is_delta(&self) -> bool {
        self.kind.as_deref() == Some("delta")
    }

    /// (const_z_p, const_i_p, const_z_q, const_i_q) in percent, falling back to the older shared fields.
    pub fn zip_percent(&self) -> (f64, f64, f64, f64) {
        let zp =
            if self.const_z_p_percent != 0.0 { self.const_z_p_percent } else { self.const_z_percent.unwrap_or(0.0) };
        let ip =
            if self.const_i_p_percent != 0.0 { self.const_i_p_percent } else { self.const_i_percent.unwrap_or(0.0) };
        let zq =
            if self.const_z_q_percent != 0.0 { self.const_z_q_percent } else { self.const_z_percent.unwrap_or(0.0) };
        let iq =
            if self.const_i_q_percent != 0.0 { self.const_i_q_percent } else { self.const_i_percent.unwrap_or(0.0) };
        (zp, ip, zq, iq)
    }
}

/// Parses JSON as Python's `json` writes it: bare `NaN`, `Infinity` and `-Infinity` outside strings read as
/// `null` (for reading a network file's `meta`, where pandapower-export leaves them).
pub fn python_json_value(text: &str) -> Result<serde_json::Value, String> {
    let fixed = python_words_as_null(text);
    serde_json::from_str(fixed.as_ref().map_or(text, |f| f.text.as_str())).map_err(|e| e.to_string())
}

/// A JSON text with Python's bare `NaN`, `Infinity` and `-Infinity` replaced by `null`, and where.
struct PythonWordsAsNull {
    text: String,
    /// (offset in the original text, the word there, offset in `text`) of each replaced word, in order.
    replaced: Vec<(usize, &'static str, usize)>,
}

impl PythonWordsAsNull {
    /// The original text's 1-based line and column of the 1-based (`line`, `column`) of `self.text` (as
    /// serde_json counts them: column in bytes); a position inside a replaced word maps to its start. The third
    /// value is the word, when the position is one.
    fn original_line_col(&self, original: &str, line: usize, column: usize) -> (usize, usize, Option<&'static str>) {
        let line_start = if line <= 1 {
            0
        } else {
            self.text.match_indices('\n').nth(line - 2).map_or(self.text.len(), |(k, _)| k + 1)
        };
        let at = (line_start + column.saturating_sub(1)).min(self.text.len());
        let mut orig = at;
        for &(o, word, f) in &self.replaced {
            if f >= at {
                break;
            }
            orig = if at < f + 4 { o } else { at - f - 4 + o + word.len() };
        }
        let orig = orig.min(original.len());
        let before = &original.as_bytes()[..orig];
        let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
        let col = 1 + orig - before.iter().rposition(|&b| b == b'\n').map_or(0, |k| k + 1);
        (line, col, self.replaced.iter().find(|r| r.0 == orig).map(|r| r.1))
    }
}

/// The words Python's `json` writes for non-finite floats (the longest first, so `-Infinity` is not read as `-`
/// and `Infinity`).
const PYTHON_WORDS: [&str; 3] = ["-Infinity", "Infinity", "NaN"];

/// The top-level keys of the neutral format that gridtwin reads.
const TABLES_READ: [&str; 10] =
    ["meta", "buses", "lines", "trafos", "ext_grid", "loads", "asymmetric_loads", "sgens", "switches", "earthing"];

/// A warning for every top-level key of a network file that gridtwin does not read (a `shunts` or `storage`
/// table from another tool, say): its data is left out of every calculation, so it is named rather than
/// dropped without a word. `text` has already parsed as the neutral format.
fn unread_tables(text: &str) -> Vec<String> {
    let Ok(doc) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text) else {
        return Vec::new();
    };
    doc.iter()
        .filter(|(k, _)| !TABLES_READ.contains(&k.as_str()))
        .map(|(k, v)| {
            let what = match v {
                serde_json::Value::Array(a) => format!("a table of {} element(s)", a.len()),
                serde_json::Value::Object(_) => "an object".to_string(),
                _ => "a value".to_string(),
            };
            format!(
                "'{k}' ({what}) is not part of the network format gridtwin reads ({}); ignored",
                TABLES_READ.join(", ")
            )
        })
        .collect()
}

/// `text` with every `NaN`, `Infinity` and `-Infinity` outside strings replaced by `null`; `None` when it has
/// none (the common case: the text is parsed as it is).
fn python_words_as_null(text: &str) -> Option<PythonWordsAsNull> {
    let b = text.as_bytes();
    let word_byte = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'+' || c == b'-';
    let (mut in_string, mut escaped) = (false, false);
    let mut hits: Vec<(usize, &'static str)> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if c == b'"' {
            in_string = true;
            i += 1;
            continue;
        }
        let starts_word = i == 0 || !word_byte(b[i - 1]);
        if starts_word
            && let Some(w) = PYTHON_WORDS.iter().copied().find(|w| b[i..].starts_with(w.as_bytes()))
            && b.get(i + w.len()).is_none_or(|&n| !word_byte(n))
        {
            hits.push((i, w));
            i += w.len();
            continue;
        }
        i += 1;
    }
    if hits.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len() + hits.len());
    let mut replaced = Vec::with_capacity(hits.len());
    let mut last = 0;
    for (o, word) in hits {
        out.push_str(&text[last..o]);
        replaced.push((o, word, out.len()));
        out.push_str("null");
        last = o + word.len();
    }
    out.push_str(&text[last..]);
    Some(PythonWordsAsNull { text: out, replaced })
}
