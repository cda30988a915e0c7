//! The scenario's `mesh` section: radio model name, propagation, layout of a standalone district, traffic,
//! routing tunables and the failure/join schedule. Durations are strings (`"15min"`), distances metres.

use super::propagation::{Fading, Propagation};
use crate::engine::{AgentId, SimDuration, SimTime, derive_seed, parse_duration};
use gridtwin_firmware::mesh::{ETX_ONE, RouterConfig};
use serde::{Deserialize, Serialize};

/// The `mesh` section of a scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeshConfig {
    /// Radio model name (`models/radio-<name>.ron`).
    pub radio: String,
    #[serde(default)]
    pub propagation: Propagation,
    #[serde(default)]
    pub fading: Fading,
    /// Generated node positions for a district without a grid model; `None` when the world builder supplies nodes.
    #[serde(default)]
    pub layout: Option<Layout>,
    #[serde(default)]
    pub traffic: Traffic,
    #[serde(default)]
    pub routing: Routing,
    /// Scheduled failures, recoveries, joins and global repairs.
    #[serde(default)]
    pub events: Vec<MeshEvent>,
    /// Random node failures (exponential up and down times).
    #[serde(default)]
    pub random_failures: Option<RandomFailures>,
    /// Extra loss: every unicast data-frame transmission is additionally lost with this probability (acks and
    /// broadcasts are not), independent of SINR, so delivery can be compared with closed forms and protection
    /// traffic studied under loss (the MAC retries each lost frame).
    #[serde(default)]
    pub fixed_per: Option<f64>,
    /// Width of the delivery-ratio time bins (by generation time).
    #[serde(default = "default_bin")]
    pub metrics_bin: String,
    /// Most nodes in one PAN (16-bit short addresses: at most 65,534, the default). A mesh with more nodes is
    /// split into several PANs, each headed by a strip of coordinators (see `mesh::build::assign_pans`).
    #[serde(default)]
    pub pan_max_nodes: Option<u32>,
}

fn default_bin() -> String {
    "60s".into()
}

impl Default for MeshConfig {
    fn default() -> Self {
        MeshConfig {
            radio: "sun-fsk-868".into(),
            propagation: Propagation::default(),
            fading: Fading::None,
            layout: None,
            traffic: Traffic::default(),
            routing: Routing::default(),
            events: Vec::new(),
            random_failures: None,
            fixed_per: None,
            metrics_bin: default_bin(),
            pan_max_nodes: None,
        }
    }
}

/// Generated positions for a standalone district.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Layout {
    /// `nodes` LMUs on a square grid of pitch `spacing_m`, each moved by up to `jitter_m` in x and y, with
    /// `coordinators` coordinators in the rows of a near-square grid, spread evenly along each row (rows
    /// differ by at most one coordinator when the count does not fill the grid).
    Grid { nodes: u32, spacing_m: f64, jitter_m: f64, coordinators: u32 },
    /// `nodes` in a straight line `spacing_m` apart; node 0 is the coordinator.
    Line { nodes: u32, spacing_m: f64 },
    /// Explicit sites (as `gridtwin mesh plan` writes them), in the order given.
    Sites(Vec<SiteSpec>),
}

/// One explicitly placed node of [`Layout::Sites`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteSpec {
    pub id: u32,
    pub x_m: f64,
    pub y_m: f64,
    #[serde(default)]
    pub coordinator: bool,
}

/// Traffic the mesh generates by itself (for nodes without an application agent).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Traffic {
    /// Each LMU reports to its coordinator this often; `None` for no self-generated reports.
    pub report_every: Option<String>,
    /// Application payload of a report, bytes.
    pub report_bytes: u16,
    /// First reports are spread uniformly over one period starting at this time.
    pub start: String,
    /// Each coordinator sends a command down to a random node of its DODAG this often.
    #[serde(default)]
    pub command_every: Option<String>,
}

impl Default for Traffic {
    fn default() -> Self {
        Traffic { report_every: Some("15min".into()), report_bytes: 40, start: "0s".into(), command_every: None }
    }
}

/// Routing tunables (see `gridtwin_firmware::mesh::RouterConfig`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Routing {
    pub trickle_imin: String,
    pub trickle_doublings: u8,
    pub trickle_k: u8,
    pub parent_switch_threshold_etx: f64,
    pub max_link_etx: f64,
    pub neighbors_max: u8,
    pub dao_delay: String,
    pub dao_refresh: String,
    pub max_fail_streak: u8,
    pub hop_limit: u8,
    pub child_hold: String,
    /// A node without a parent solicits DIOs this often.
    pub dis_interval: String,
    /// Roots bump the DODAG version this often (global repair); `None` = only on scheduled events.
    pub global_repair_every: Option<String>,
    /// Peer (FLISR) frames between two nodes whose mean link margin (the weaker direction, dB above the
    /// radio's sensitivity) is below this go over relays chosen at commissioning: the path of fewest expected
    /// transmissions whose every hop has at least this margin (where none has, the margin asked is lowered
    /// 2 dB at a time while it stays above the direct link's). Links at or above it go one hop.
    pub peer_relay_margin_db: f64,
    /// A peer link routed over relays also gets a second route through none of the first one's relays (the
    /// direct link where no such relay path exists and the direct link is heard at all; else the path through
    /// the fewest of them, so a failure of any relay it avoids still leaves a path); every message goes over
    /// both, and the destination keeps the first copy. One failed relay then costs nothing, unless the
    /// radio graph has no path around it.
    pub peer_alternate_routes: bool,
}

/// Default of [`Routing::peer_relay_margin_db`], dB.
pub const PEER_RELAY_MARGIN_DB: f64 = 6.0;

impl Default for Routing {
    fn default() -> Self {
        let d = RouterConfig::default();
        Routing {
            trickle_imin: format!("{}ms", d.trickle_imin_ms),
            trickle_doublings: d.trickle_doublings,
            trickle_k: d.trickle_k,
            parent_switch_threshold_etx: d.parent_switch_threshold as f64 / ETX_ONE as f64,
            max_link_etx: d.max_link_etx as f64 / ETX_ONE as f64,
            neighbors_max: d.neighbors_max,
            dao_delay: format!("{}ms", d.dao_delay_ms),
            dao_refresh: format!("{}s", d.dao_refresh_s),
            max_fail_streak: d.max_fail_streak,
            hop_limit: d.hop_limit,
            child_hold: format!("{}s", d.child_hold_s),
            dis_interval: format!("{}ms", d.dis_interval_ms),
            global_repair_every: None,
            peer_relay_margin_db: PEER_RELAY_MARGIN_DB,
            peer_alternate_routes: true,
        }
    }
}

/// A scheduled change of the mesh.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum MeshEvent {
    /// Node `node` (its id) powers off.
    Fail { node: u32, at: String },
    /// Node `node` powers on again and rejoins.
    Recover { node: u32, at: String },
    /// A `fraction` of the nodes currently relaying traffic for others (chosen by seed) power off at once.
    FailRelays { fraction: f64, at: String },
    /// A new node with id `node` at (`x_m`, `y_m`) powers on and joins.
    Join { node: u32, x_m: f64, y_m: f64, at: String },
    /// Every coordinator starts a new DODAG version. Every node then chooses its parent afresh, among neighbours
    /// on the newest version heard of their own DODAG: a node that hears one coordinator's new version before
    /// another's may change DODAG, but never goes back to an abandoned version.
    GlobalRepair { at: String },
    /// The link between nodes `a` and `b` (ids) loses `loss_db` more than its path loss and shadowing say, both
    /// ways (a new building, foliage, a damaged antenna); `loss_db: 0.0` restores it. Lasts until changed.
    DegradeLink { a: u32, b: u32, loss_db: f64, at: String },
}

/// Random failures of LMUs (coordinators never fail randomly).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomFailures {
    /// Mean time between failures of one node.
    pub mtbf: String,
    /// Mean time to repair.
    pub mttr: String,
}

/// One mesh node as the world builder (or a [`Layout`]) describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeSpec {
    /// Identity in the scenario (the LMU or coordinator id); must be unique.
    pub id: u32,
    pub x_m: f64,
    pub y_m: f64,
    pub coordinator: bool,
    /// The application agent that sends through this node and receives its deliveries, if any. Nodes without
    /// one generate the configured reports themselves.
    pub app: Option<AgentId>,
    /// The node powers on at this time instead of at the start.
    pub join_at: Option<SimTime>,
}

impl NodeSpec {
    pub fn lmu(id: u32, x_m: f64, y_m: f64) -> NodeSpec {
        NodeSpec { id, x_m, y_m, coordinator: false, app: None, join_at: None }
    }
    pub fn coordinator(id: u32, x_m: f64, y_m: f64) -> NodeSpec {
        NodeSpec { id, x_m, y_m, coordinator: true, app: None, join_at: None }
    }
}

pub(crate) fn dur(field: &str, s: &str) -> Result<SimDuration, String> {
    parse_duration(s).map_err(|e| format!("mesh.{field}: {e}"))
}

impl Routing {
    /// The firmware configuration these tunables describe.
    pub fn router_config(&self, sensitivity_dbm: f64) -> Result<RouterConfig, String> {
        let ms = |f: &str, s: &str| -> Result<u32, String> {
            let d = dur(f, s)?;
            u32::try_from(d.0 / 1_000_000).map_err(|_| format!("mesh.{f} = `{s}` is too long"))
        };
        let secs = |f: &str, s: &str| -> Result<u32, String> {
            let d = dur(f, s)?;
            u32::try_from(d.0 / 1_000_000_000).map_err(|_| format!("mesh.{f} = `{s}` is too long"))
        };
        if !(self.peer_relay_margin_db.is_finite() && (0.0..=60.0).contains(&self.peer_relay_margin_db)) {
            return Err(format!(
                "mesh.routing.peer_relay_margin_db = {} is outside 0 ..= 60 dB",
                self.peer_relay_margin_db
            ));
        }
        let etx = |f: &str, v: f64| -> Result<u16, String> {
            if !(0.0..=100.0).contains(&v) {
                return Err(format!("mesh.routing.{f} = {v} is outside 0 ..= 100"));
            }
            Ok((v * ETX_ONE as f64).round() as u16)
        };
        let cfg = RouterConfig {
            trickle_imin_ms: ms("routing.trickle_imin", &self.trickle_imin)?,
            trickle_doublings: self.trickle_doublings,
            trickle_k: self.trickle_k,
            parent_switch_threshold: etx("parent_switch_threshold_etx", self.parent_switch_threshold_etx)?,
            max_link_etx: etx("max_link_etx", self.max_link_etx)?,
            neighbors_max: self.neighbors_max,
            dao_delay_ms: ms("routing.dao_delay", &self.dao_delay)?,
            dao_refresh_s: secs("routing.dao_refresh", &self.dao_refresh)?.max(1),
            max_fail_streak: self.max_fail_streak,
            hop_limit: self.hop_limit,
            pending_max: 8,
            sensitivity_dbm: sensitivity_dbm.round().clamp(-200.0, 0.0) as i16,
            child_hold_s: secs("routing.child_hold", &self.child_hold)?,
            global_repair_s: match &self.global_repair_every {
                Some(s) => secs("routing.global_repair_every", s)?.max(1),
                None => 0,
            },
            max_reroutes: 2,
            dis_interval_ms: ms("routing.dis_interval", &self.dis_interval)?,
            ..RouterConfig::default()
        };
        cfg.validate().map_err(|e| format!("mesh.routing: {e}"))?;
        Ok(cfg)
    }
}

impl MeshConfig {
    /// Checks every field, naming the first bad one.
    pub fn validate(&self) -> Result<(), String> {
        if self.radio.trim().is_empty() {
            return Err("mesh.radio: empty model name".into());
        }
        if let Some(m) = self.pan_max_nodes
            && !(1..=super::build::PAN_MAX_NODES as u32).contains(&m)
        {
            return Err(format!("mesh.pan_max_nodes = {m} must be within 1 ..= {}", super::build::PAN_MAX_NODES));
        }
        self.propagation.validate()?;
        if let Some(p) = self.fixed_per
            && !(0.0..1.0).contains(&p)
        {
            return Err(format!("mesh.fixed_per = {p} must be in [0, 1)"));
        }
        if dur("metrics_bin", &self.metrics_bin)?.0 == 0 {
            return Err("mesh.metrics_bin must be > 0".into());
        }
        if let Some(s) = &self.traffic.report_every
            && dur("traffic.report_every", s)?.0 == 0
        {
            return Err("mesh.traffic.report_every must be > 0".into());
        }
        if let Some(s) = &self.traffic.command_every
            && dur("traffic.command_every", s)?.0 == 0
        {
            return Err("mesh.traffic.command_every must be > 0".into());
        }
        dur("traffic.start", &self.traffic.start)?;
        if self.traffic.report_bytes > 1000 {
            return Err("mesh.traffic.report_bytes must be <= 1000".into());
        }
        self.routing.router_config(-100.0)?;
        if let Some(rf) = &self.random_failures {
            for (f, s) in [("random_failures.mtbf", &rf.mtbf), ("random_failures.mttr", &rf.mttr)] {
                if dur(f, s)?.0 == 0 {
                    return Err(format!("mesh.{f} must be > 0"));
                }
            }
        }
        for (i, e) in self.events.iter().enumerate() {
            let at = match e {
                MeshEvent::Fail { at, .. }
                | MeshEvent::Recover { at, .. }
                | MeshEvent::Join { at, .. }
                | MeshEvent::GlobalRepair { at } => at,
                MeshEvent::DegradeLink { a, b, loss_db, at } => {
                    if a == b {
                        return Err(format!("mesh.events[{i}]: DegradeLink from node {a} to itself"));
                    }
                    if !(0.0..=200.0).contains(loss_db) {
                        return Err(format!(
                            "mesh.events[{i}].loss_db = {loss_db} must be within 0 ..= 200 dB (0 restores the link)"
                        ));
                    }
                    at
                }
                MeshEvent::FailRelays { fraction, at } => {
                    if !(0.0..=1.0).contains(fraction) {
                        return Err(format!("mesh.events[{i}].fraction = {fraction} must be within 0 ..= 1"));
                    }
                    at
                }
            };
            dur(&format!("events[{i}].at"), at)?;
            if let MeshEvent::Join { x_m, y_m, node, .. } = e
                && !(x_m.is_finite() && y_m.is_finite())
            {
                return Err(format!("mesh.events[{i}]: node {node} has a non-finite position"));
            }
        }
        if let Some(l) = &self.layout {
            match *l {
                Layout::Grid { nodes, spacing_m, jitter_m, coordinators } => {
                    if nodes == 0 || nodes as usize > super::build::MAX_NODES {
                        return Err(format!("mesh.layout.Grid.nodes must be within 1 ..= {}", super::build::MAX_NODES));
                    }
                    if coordinators == 0 || coordinators > nodes {
                        return Err("mesh.layout.Grid.coordinators must be within 1 ..= nodes".into());
                    }
                    if !(spacing_m > 0.0 && spacing_m.is_finite()) {
                        return Err("mesh.layout.Grid.spacing_m must be > 0".into());
                    }
                    if !(jitter_m >= 0.0 && jitter_m < spacing_m) {
                        return Err("mesh.layout.Grid.jitter_m must be >= 0 and < spacing_m".into());
                    }
                }
                Layout::Sites(ref sites) => {
                    if sites.is_empty() || sites.len() > super::build::MAX_NODES {
                        return Err(format!("mesh.layout.Sites must list 1 ..= {} sites", super::build::MAX_NODES));
                    }
                    if !sites.iter().any(|s| s.coordinator) {
                        return Err("mesh.layout.Sites needs at least one site with `coordinator: true`".into());
                    }
                    if let Some(s) = sites.iter().find(|s| !(s.x_m.is_finite() && s.y_m.is_finite())) {
                        return Err(format!("mesh.layout.Sites: site {} has a non-finite position", s.id));
                    }
                }
                Layout::Line { nodes, spacing_m } => {
                    if !(2..=super::build::MAX_NODES as u32).contains(&nodes) {
                        return Err(format!("mesh.layout.Line.nodes must be within 2 ..= {}", super::build::MAX_NODES));
                    }
                    if !(spacing_m > 0.0 && spacing_m.is_finite()) {
                        return Err("mesh.layout.Line.spacing_m must be > 0".into());
                    }
                }
            }
        }
        Ok(())
    }
}

impl Layout {
    /// The nodes of this layout (ids 1..; coordinators first), deterministic in `seed`, plus the `Join` events
    /// of `events` as late-joining nodes.
    pub fn nodes(&self, seed: u64) -> Vec<NodeSpec> {
        match *self {
            Layout::Sites(ref sites) => sites
                .iter()
                .map(|s| NodeSpec { coordinator: s.coordinator, ..NodeSpec::lmu(s.id, s.x_m, s.y_m) })
                .collect(),
            Layout::Line { nodes, spacing_m } => (0..nodes)
                .map(|i| NodeSpec {
                    id: i + 1,
                    x_m: i as f64 * spacing_m,
                    y_m: 0.0,
                    coordinator: i == 0,
                    app: None,
                    join_at: None,
                })
                .collect(),
            Layout::Grid { nodes, spacing_m, jitter_m, coordinators } => {
                let side = (nodes as f64).sqrt().ceil() as u32;
                let width = side as f64 * spacing_m;
                let rows = (nodes as f64 / side as f64).ceil() as u32;
                let height = rows as f64 * spacing_m;
                // Coordinators in `cy` rows of a near-square grid, each row spread evenly over the width. A count
                // that does not fill the grid leaves rows one coordinator short, spread over the height: a partly
                // filled last row would leave a strip along one edge two rows from any coordinator (in a city of
                // 160, a 20 km strip whose LMUs took 9 to 11 hops where the rest take 2 to 6).
                let cx = (coordinators as f64).sqrt().ceil() as u32;
                let cy = coordinators.div_ceil(cx);
                let mut out = Vec::with_capacity((nodes + coordinators) as usize);
                let mut c = 0;
                for j in 0..cy {
                    let in_row = coordinator_row_len(coordinators, cy, j);
                    for i in 0..in_row {
                        c += 1;
                        out.push(NodeSpec::coordinator(
                            c,
                            (i as f64 + 0.5) * width / in_row as f64,
                            (j as f64 + 0.5) * height / cy as f64,
                        ));
                    }
                }
                debug_assert_eq!(c, coordinators, "every coordinator placed once");
                let u = |k: u32, axis: u64| {
                    let h = derive_seed(seed, &[0x4C41_594F_5554, k as u64, axis]);
                    (h >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
                };
                for k in 0..nodes {
                    let (i, j) = (k % side, k / side);
                    out.push(NodeSpec::lmu(
                        coordinators + 1 + k,
                        (i as f64 + 0.5) * spacing_m + jitter_m * u(k, 0),
                        (j as f64 + 0.5) * spacing_m + jitter_m * u(k, 1),
                    ));
                }
                out
            }
        }
    }
}

/// Coordinators in row `j` of `rows` when `count` of them are spread over the rows: `count / rows` each, and
/// one more in `count % rows` rows spaced evenly over the height (every row the same when they divide).
fn coordinator_row_len(count: u32, rows: u32, j: u32) -> u32 {
    let (each, extra) = (count / rows, count % rows);
    let more = |k: u32| (k as u64 * extra as u64 / rows as u64) as u32;
    each + (more(j + 1) - more(j))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A coordinator count that does not fill its grid leaves rows one short, spread over the height, and
    /// every row spread over the width: no edge strip is left two rows from a coordinator. A count that fills
    /// the grid (the district's 16) keeps the cells' centres.
    #[test]
    fn grid_coordinators_cover_every_row_evenly() {
        for (count, rows) in [(160u32, 13u32), (48, 7), (3, 2), (16, 4), (2, 1), (1, 1), (7, 3)] {
            let lens: Vec<u32> = (0..rows).map(|j| coordinator_row_len(count, rows, j)).collect();
            assert_eq!(lens.iter().sum::<u32>(), count, "{count} in {rows} rows: {lens:?}");
            let (lo, hi) = (*lens.iter().min().unwrap(), *lens.iter().max().unwrap());
            assert!(hi - lo <= 1 && lo >= 1, "{count} in {rows} rows: {lens:?}");
        }
        let layout = |nodes, coordinators| Layout::Grid { nodes, spacing_m: 100.0, jitter_m: 30.0, coordinators };
        let district = layout(10_000, 16).nodes(42);
        let c: Vec<(f64, f64)> = district.iter().filter(|n| n.coordinator).map(|n| (n.x_m, n.y_m)).collect();
        assert_eq!(c.len(), 16);
        assert_eq!((c[0], c[5], c[15]), ((1250.0, 1250.0), (3750.0, 3750.0), (8750.0, 8750.0)));
        // 160 over 13 rows: the top row is as full as the others, and the farthest LMU from its nearest
        // coordinator is within about one cell's half-diagonal.
        let city = layout(100_000, 160).nodes(42);
        let c: Vec<(f64, f64)> = city.iter().filter(|n| n.coordinator).map(|n| (n.x_m, n.y_m)).collect();
        assert_eq!(c.len(), 160);
        let top = c.iter().map(|p| p.1).fold(f64::MIN, f64::max);
        assert!(c.iter().filter(|p| p.1 == top).count() >= 12);
        let worst = city
            .iter()
            .filter(|n| !n.coordinator)
            .map(|n| c.iter().map(|p| (p.0 - n.x_m).hypot(p.1 - n.y_m)).fold(f64::MAX, f64::min))
            .fold(0.0, f64::max);
        // 317 columns by 316 rows of LMUs, 100 m apart.
        let (w, h) = (31_700.0f64, 31_600.0f64);
        assert!(worst < 0.8 * (w / 12.0).hypot(h / 13.0), "farthest LMU {worst} m from a coordinator");
    }

    #[test]
    fn parses_a_section_and_rejects_unknown_fields() {
        let text = r#"(
            radio: "sun-fsk-868",
            propagation: LogDistance(exponent: 3.0, shadowing_db: 4.0),
            layout: Some(Grid(nodes: 100, spacing_m: 120.0, jitter_m: 20.0, coordinators: 2)),
            traffic: (report_every: Some("15min"), report_bytes: 40, start: "1min"),
            events: [FailRelays(fraction: 0.1, at: "6h"), Join(node: 999, x_m: 5.0, y_m: 5.0, at: "12h")],
        )"#;
        let c: MeshConfig = ron::from_str(text).unwrap();
        c.validate().unwrap();
        assert_eq!(c.layout.unwrap().nodes(1).len(), 102);
        assert!(ron::from_str::<MeshConfig>(r#"(radio: "x", bogus: 1)"#).is_err());
        let bad = MeshConfig { fixed_per: Some(1.5), ..MeshConfig::default() };
        assert!(bad.validate().unwrap_err().contains("fixed_per"));
        let bad = MeshConfig { events: vec![MeshEvent::Fail { node: 3, at: "soon".into() }], ..MeshConfig::default() };
        assert!(bad.validate().unwrap_err().contains("events[0].at"));
    }

    /// Explicit sites reach the same node count as the generated layouts: a city's pole list (more than one
    /// PAN's 65,534 short addresses) is accepted, and only a list beyond the mesh's node limit is refused.
    #[test]
    fn explicit_sites_reach_a_city_and_stop_at_the_node_limit() {
        let sites = |n: usize| {
            let spec = |k: usize| SiteSpec {
                id: k as u32 + 1,
                x_m: (k % 1000) as f64 * 100.0,
                y_m: (k / 1000) as f64 * 100.0,
                coordinator: k.is_multiple_of(625),
            };
            MeshConfig { layout: Some(Layout::Sites((0..n).map(spec).collect())), ..MeshConfig::default() }
        };
        let city = sites(100_160);
        city.validate().unwrap();
        assert_eq!(city.layout.as_ref().unwrap().nodes(1).len(), 100_160);
        let err = sites(super::super::build::MAX_NODES + 1).validate().unwrap_err();
        assert!(err.contains("Sites must list 1 ..= 1000000 sites"), "{err}");
        assert!(sites(0).validate().unwrap_err().contains("Sites must list"));
    }
}
