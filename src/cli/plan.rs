//! `gridtwin mesh plan POLES.csv --gateway ID ...`: placement planning from pole data (see [`crate::plan`]).
//!
//! Prints a short summary (or, with `--json`, `{"sites": [{"id", "hops", "disjoint_paths", ...}], ...}` on
//! stdout) and writes the output directory (`--out`, default `out/plan-<file stem>`) atomically: `summary.json`,
//! `plan_sites.csv` (per site: node id, position, neighbours, hops, disjoint paths, single-failure cut data),
//! `plan_links.csv`, `plan_relays.csv`, `plan_cuts.csv` (failing site, site cut off), `scenario.ron` (a
//! mesh-only scenario over sites and relays, ready for `gridtwin run`) and the mesh map (`mesh_map.svg/png`).

use super::{CliError, Global, sanitize};
use crate::plan::{self, RangeRule};
use crate::report::{Report, Table, num};
use crate::scenario::{InputError, Loaded};
use clap::{Args, Subcommand};
use serde_json::json;
use std::path::PathBuf;

/// Mesh tools.
#[derive(Subcommand, Debug)]
pub enum MeshCmd {
    /// Plan a deployment from candidate sites: hops, disjoint paths and single points of failure per site,
    /// relays for k disjoint paths, and a scenario ready to simulate.
    Plan(PlanArgs),
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    /// Candidate sites: CSV with `id,x_m,y_m` or `id,lat,lon` (optional `height_m`, `feeder_bus`).
    pub poles: PathBuf,
    /// Id of the site where the gateway (coordinator) stands.
    #[arg(long)]
    pub gateway: String,
    /// Radio model (`models/radio-<MODEL>.ron`, e.g. `sun-fsk-868`): the range is where its median path loss
    /// (log-distance) reaches its link budget less the fade margin. Without it, `--range-m` (default 750).
    #[arg(long)]
    pub radio: Option<String>,
    /// Plain radio range, m (used when no `--radio` is given).
    #[arg(long)]
    pub range_m: Option<f64>,
    /// Fade margin kept below the radio model's link budget, dB (90 % of links with 4 dB shadowing: 5.1 dB).
    #[arg(long, default_value_t = 5.0)]
    pub fade_margin_db: f64,
    /// Log-distance path-loss exponent for `--radio`.
    #[arg(long, default_value_t = 3.0)]
    pub exponent: f64,
    /// Disjoint paths every site should have to the gateway.
    #[arg(long, default_value_t = 2)]
    pub k: u32,
    /// Print the per-site results as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Output directory (default: out/plan-<file stem>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

pub fn run(g: &Global, cmd: &MeshCmd) -> Result<(), CliError> {
    match cmd {
        MeshCmd::Plan(a) => run_plan(g, a),
    }
}

fn run_plan(g: &Global, a: &PlanArgs) -> Result<(), CliError> {
    let file = a.poles.display().to_string();
    let text = crate::scenario::assets::read_text(&a.poles).map_err(|e| InputError::file(&file, e, None))?;
    let sites = plan::sites::parse(&file, &text)?;
    let gateway = sites.index_of(&a.gateway).ok_or_else(|| {
        let best = sites
            .sites
            .iter()
            .map(|s| &s.id)
            .min_by_key(|id| crate::scenario::edit_distance(id, &a.gateway))
            .cloned()
            .unwrap_or_default();
        InputError::file(
            &file,
            format!("--gateway `{}` is not a site id in this file", a.gateway),
            Some(format!("did you mean `{best}`?")),
        )
    })?;
    let (rule, radio_name) = match &a.radio {
        Some(m) => {
            let mut l = Loaded::default_embedded();
            l.base_dir =
                a.poles.parent().map(|p| if p.as_os_str().is_empty() { PathBuf::from(".") } else { p.to_path_buf() });
            let name = format!("radio-{}", m.trim_start_matches("radio-"));
            let (r, res) = l.model::<crate::mesh::RadioModel>(&name)?;
            r.validate().map_err(|e| InputError::file(&res.file, e, None))?;
            if !(1.0..=8.0).contains(&a.exponent) || !(0.0..=60.0).contains(&a.fade_margin_db) {
                return Err("--exponent must be within 1..=8 and --fade-margin-db within 0..=60".to_string().into());
            }
            (
                RangeRule::Radio {
                    model: r.name.clone(),
                    max_path_loss_db: r.max_path_loss_db(),
                    frequency_mhz: r.frequency_mhz,
                    exponent: a.exponent,
                    fade_margin_db: a.fade_margin_db,
                },
                r.name,
            )
        }
        None => (RangeRule::Plain { range_m: a.range_m.unwrap_or(750.0) }, "sun-fsk-868".to_string()),
    };
    let p = plan::plan(sites, gateway, rule, a.k, true)?;
    let stem = a.poles.file_stem().map_or("poles".into(), |s| s.to_string_lossy().to_string());
    let out = a
        .out
        .clone()
        .or_else(|| g.out.clone())
        .unwrap_or_else(|| PathBuf::from("out").join(format!("plan-{}", sanitize(&stem))));
    let summary = p.summary();
    write_plan_dir(&out, &p, &summary, &radio_name, &stem)?;
    if a.json {
        let relays: Vec<_> =
            p.placement.relays.iter().map(|((x, y), ph)| json!({"x_m": x, "y_m": y, "phase": ph.name()})).collect();
        let v = json!({"sites": p.results, "summary": summary, "relays": relays});
        println!("{}", serde_json::to_string(&v).map_err(|e| e.to_string())?);
    } else {
        println!(
            "{}: {} sites, {} links (range {:.1} m); {} reachable from `{}`, {} below k = {}, {} single points of failure",
            file,
            summary["sites"],
            summary["links"],
            p.range_m,
            summary["reachable"],
            a.gateway,
            summary["below_k"],
            a.k,
            summary["articulation_points"]
        );
        println!(
            "  relays proposed: {} (lower bound {}, so at most {} over the optimum){}",
            summary["relays"],
            summary["relays_lower_bound"],
            p.placement.relays.len() as i64 - p.placement.lower_bound as i64,
            if p.placement.unresolved.is_empty() {
                String::new()
            } else {
                format!("; {} sites unresolved", p.placement.unresolved.len())
            }
        );
        println!("  outputs in {} (scenario.ron is ready for `gridtwin run`)", out.display());
    }
    Ok(())
}

fn write_plan_dir(
    out: &std::path::Path,
    p: &plan::Plan,
    summary: &serde_json::Value,
    radio: &str,
    stem: &str,
) -> Result<(), CliError> {
    let mut r = Report::default();
    if let serde_json::Value::Object(m) = summary {
        r.summary.insert("plan".into(), json!(stem));
        r.summary.insert("version".into(), json!(env!("CARGO_PKG_VERSION")));
        r.summary.extend(m.clone());
    }
    let ids = p.node_ids();
    let mut t = Table::new(&[
        "id",
        "node_id",
        "x_m",
        "y_m",
        "neighbours",
        "hops",
        "disjoint_paths",
        "cuts_off",
        "cut_by",
        "single_points_of_failure",
        "paths_after_relays",
    ]);
    for (i, s) in p.results.iter().enumerate() {
        let st = &p.sites.sites[i];
        t.push(vec![
            s.id.clone(),
            ids[i].to_string(),
            num(st.x_m),
            num(st.y_m),
            s.neighbours.to_string(),
            s.hops.map_or(String::new(), |h| h.to_string()),
            s.disjoint_paths.map_or(String::new(), |h| h.to_string()),
            s.cuts_off.to_string(),
            s.cut_by.clone().unwrap_or_default(),
            s.single_points_of_failure.to_string(),
            p.placement.paths_after.get(i).map_or(String::new(), |v| v.to_string()),
        ]);
    }
    r.tables.push(("plan_sites".into(), t));
    let mut links = Table::new(&["a", "b", "distance_m"]);
    for a in 0..p.graph.n() {
        for &b in p.graph.neighbours(a) {
            if (b as usize) > a {
                links.push(vec![
                    p.sites.sites[a].id.clone(),
                    p.sites.sites[b as usize].id.clone(),
                    format!("{:.2}", p.sites.distance_m(a, b as usize)),
                ]);
            }
        }
    }
    r.tables.push(("plan_links".into(), links));
    let mut relays = Table::new(&["node_id", "x_m", "y_m", "phase"]);
    let base = p.sites.sites.len() as u32 + 1;
    for (j, ((x, y), ph)) in p.placement.relays.iter().enumerate() {
        relays.push(vec![(base + j as u32).to_string(), format!("{x:.2}"), format!("{y:.2}"), ph.name().into()]);
    }
    r.tables.push(("plan_relays".into(), relays));
    // Cut sets: for every articulation point, the sites its failure cuts off (capped).
    let mut cuts = Table::new(&["failing_site", "cut_off_site"]);
    'outer: for (i, s) in p.results.iter().enumerate() {
        if s.hops.is_none() || i == p.gateway {
            continue;
        }
        // Walk this site's chain of single points of failure via cut_by.
        let mut cur = p.cut_by_idx[i];
        while let Some(c) = cur {
            if cuts.rows.len() >= 1_000_000 {
                break 'outer;
            }
            cuts.push(vec![p.sites.sites[c as usize].id.clone(), s.id.clone()]);
            cur = p.cut_by_idx[c as usize];
        }
    }
    cuts.rows.sort();
    r.tables.push(("plan_cuts".into(), cuts));
    r.files.push(("scenario.ron".into(), p.scenario_ron(radio, &format!("plan-{stem}")).into_bytes()));
    crate::report::write_output_dir(out, &r, &json!({}), true).map_err(CliError::failed)
}
