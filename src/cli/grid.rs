//! `gridtwin grid ...`: power flow and short circuits from the command line.
//!
//! `grid solve NETWORK.json [--unbalanced] [--out FILE.csv] [--repeat K]` writes one row per bus
//! (`index,vm_pu,va_degree`, or per phase with `--unbalanced`); `grid short-circuit NETWORK.json [--out
//! FILE.csv] [--repeat K]` writes the IEC 60909 currents per bus. Angles are in degrees and include
//! transformer phase shifts. Files are written atomically (temporary file in the same directory, then
//! renamed), so a failed run never leaves a half-written file. `--repeat K` times K solves and prints a
//! JSON line on stderr (or to `--timing-out FILE`).

use super::CliError;
use crate::grid::fourwire::{FourWire, NeutralFaults};
use crate::grid::model::GridModel;
use crate::grid::network::Network;
use crate::grid::powerflow::PowerFlow;
use crate::grid::shortcircuit::short_circuit;
use crate::grid::topology::{Purpose, Topology};
use crate::report::check_parent;
use crate::scenario::InputError;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Arguments of `gridtwin grid`.
#[derive(clap::Args, Debug, Clone)]
pub struct GridArgs {
    #[command(subcommand)]
    pub command: GridCommand,
}

/// The `grid` subcommands.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum GridCommand {
    /// Power flow: one row per bus with voltage magnitude (p.u.) and angle (degrees).
    Solve {
        /// Network in the neutral `network.json` format.
        network: PathBuf,
        /// Three-phase unbalanced power flow (per-phase loads, sequence networks).
        #[arg(long)]
        unbalanced: bool,
        /// 4-wire power flow of the LV part with its neutral conductor and earthing (the network's `earthing`
        /// section; phase-domain Newton): one row per LV bus with the phase-to-neutral voltages and the
        /// neutral-to-earth voltage, p.u. of the bus's nominal phase voltage.
        #[arg(long, conflicts_with_all = ["unbalanced", "repeat"])]
        four_wire: bool,
        /// With `--four-wire`: the neutral conductor of this line (its position in the network's `lines`)
        /// is open, a broken neutral. Repeatable.
        #[arg(long, value_name = "LINE", requires = "four_wire")]
        broken_neutral: Vec<usize>,
        /// Output CSV file (default: stdout).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Time K solves and print per-solve timings as JSON (stderr, or `--timing-out`).
        #[arg(long, value_name = "K")]
        repeat: Option<u32>,
        /// Write the timing JSON to this file instead of stderr.
        #[arg(long, value_name = "FILE")]
        timing_out: Option<PathBuf>,
    },
    /// IEC 60909 initial symmetrical short-circuit currents per bus (kA).
    ShortCircuit {
        /// Network in the neutral `network.json` format.
        network: PathBuf,
        /// Output CSV file (default: stdout).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Time K calculations and print per-calculation timings as JSON (stderr, or `--timing-out`).
        #[arg(long, value_name = "K")]
        repeat: Option<u32>,
        /// Write the timing JSON to this file instead of stderr.
        #[arg(long, value_name = "FILE")]
        timing_out: Option<PathBuf>,
    },
}

/// Reads and validates a network file; errors are located at the element in the JSON (exit 2).
fn load_network(path: &Path) -> Result<Network, CliError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| InputError::file(&file, e.to_string(), Some("check the path".into())))?;
    Network::from_json_str(&text).map_err(|e| crate::scenario::json_path::error(&file, &text, &e).into())
}

/// Checks, before any work, that an output file can be written: not a directory, parent not a file.
fn check_out_file(path: Option<&Path>, what: &str) -> Result<(), CliError> {
    let Some(p) = path else { return Ok(()) };
    if p.is_dir() {
        return Err(CliError::usage(format!("{what} {}: is a directory; give a file name", p.display())));
    }
    check_parent(p).map_err(|e| CliError::usage(format!("{what} {e}")))
}

/// Writes `text` to `path` atomically, or to stdout when `path` is `None`.
fn write_output(path: Option<&Path>, text: &str) -> Result<(), CliError> {
    match path {
        None => super::error::print(text),
        Some(p) => {
            let dir = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            let name = p.file_name().ok_or_else(|| format!("{}: not a file path", p.display()))?;
            let tmp = dir.join(format!(".{}.tmp{}", name.to_string_lossy(), std::process::id()));
            let res = std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, p));
            if let Err(e) = res {
                let _ = std::fs::remove_file(&tmp);
                return Err(CliError::failed(format!("{}: {e}", p.display())));
            }
            Ok(())
        }
    }
}

/// Says on stderr how many buses a table leaves without results, and why, naming the first (so that a `nan`
/// there is not taken for a failure).
fn note_buses(path: &Path, buses: &[i64], why: &str) {
    if let Some(first) = buses.first() {
        eprintln!("note: {}: {} bus(es) {why} (bus {first} first)", path.display(), buses.len());
    }
}

/// The short-circuit table's missing results: a bus no source reaches has none at all, and one whose zero
/// sequence has no path to earth (behind a delta or unearthed star winding) has no single-phase result.
fn note_missing_results(path: &Path, res: &[crate::grid::shortcircuit::ScBus]) {
    let buses = |keep: &dyn Fn(&crate::grid::shortcircuit::ScBus) -> bool| -> Vec<i64> {
        res.iter().filter(|r| keep(r)).map(|r| r.index).collect()
    };
    note_buses(path, &buses(&|r| r.ikss_ka_3ph_max.is_nan()), "reached by no source: no short-circuit results there");
    note_buses(
        path,
        &buses(&|r| r.ikss_ka_3ph_max.is_finite() && r.ikss_ka_1ph_max.is_nan()),
        "without a zero-sequence path to earth (behind a delta or unearthed star winding): no single-phase \
         result there",
    );
}

/// Prints the network's import warnings on stderr, each naming the file and the element.
fn warn_network(path: &Path, net: &Network) {
    for w in &net.warnings {
        eprintln!("warning: {}: {w}", path.display());
    }
}

fn fmt_f(v: f64) -> String {
    if v.is_finite() { format!("{v:.12}") } else { "nan".to_string() }
}

/// Timing summary of `samples` (seconds) as a JSON object.
fn timing_json(what: &str, network: &Path, extra: &[(&str, serde_json::Value)], samples: &mut [f64]) -> String {
    samples.sort_by(|a, b| a.total_cmp(b));
    let n = samples.len().max(1);
    let mean = samples.iter().sum::<f64>() / n as f64;
    let med = samples.get(samples.len() / 2).copied().unwrap_or(0.0);
    let mut obj = serde_json::Map::new();
    obj.insert("command".into(), what.into());
    obj.insert("network".into(), network.display().to_string().into());
    obj.insert("solves".into(), samples.len().into());
    obj.insert("mean_us_per_solve".into(), (mean * 1e6).into());
    obj.insert("median_us_per_solve".into(), (med * 1e6).into());
    obj.insert("min_us_per_solve".into(), (samples.first().copied().unwrap_or(0.0) * 1e6).into());
    for (k, v) in extra {
        obj.insert((*k).into(), v.clone());
    }
    serde_json::Value::Object(obj).to_string()
}

fn emit_timing(path: Option<&Path>, json: &str) -> Result<(), CliError> {
    match path {
        Some(p) => write_output(Some(p), &format!("{json}\n")),
        None => {
            use std::io::Write;
            // A closed stderr loses only the timing line.
            let _ = writeln!(std::io::stderr(), "{json}");
            Ok(())
        }
    }
}

/// The power-flow table as CSV, the solver's iterations, and the buses no slack reaches (their rows read `nan`).
fn solve_csv(net: &Network, unbalanced: bool) -> Result<(String, u64, Vec<i64>), String> {
    let mut model = GridModel::new(net.clone());
    model.unbalanced = unbalanced;
    let snap = model.solve().map_err(|e| e.to_string())?;
    let mut s = String::new();
    let mut unsupplied = Vec::new();
    if unbalanced {
        s.push_str("index,vm_a_pu,va_a_degree,vm_b_pu,va_b_degree,vm_c_pu,va_c_degree\n");
    } else {
        s.push_str("index,vm_pu,va_degree\n");
    }
    for (b, bus) in net.buses.iter().enumerate() {
        if !snap.energised[b] {
            unsupplied.push(bus.index);
            if unbalanced {
                s.push_str(&format!("{},nan,nan,nan,nan,nan,nan\n", bus.index));
            } else {
                s.push_str(&format!("{},nan,nan\n", bus.index));
            }
            continue;
        }
        let v = snap.v_pu[b];
        if unbalanced {
            s.push_str(&format!("{}", bus.index));
            for p in v {
                s.push_str(&format!(",{},{}", fmt_f(p.norm()), fmt_f(p.arg().to_degrees())));
            }
            s.push('\n');
        } else {
            let v1 = snap.v1_pu(b);
            s.push_str(&format!("{},{},{}\n", bus.index, fmt_f(v1.norm()), fmt_f(v1.arg().to_degrees())));
        }
    }
    Ok((s, snap.iterations as u64, unsupplied))
}

/// `grid solve --four-wire`: the 4-wire power flow's voltages per LV bus as CSV.
fn four_wire_csv(path: &Path, net: &Network, broken_neutral: &[usize]) -> Result<String, CliError> {
    let file = path.display().to_string();
    for &l in broken_neutral {
        if l >= net.lines.len() {
            return Err(InputError::file(
                &file,
                match net.lines.len() {
                    0 => format!("--broken-neutral {l}: the network has no lines"),
                    n => format!("--broken-neutral {l}: the network has {n} lines (positions 0..={})", n - 1),
                },
                Some("give a line's position in the network's `lines`".into()),
            )
            .into());
        }
    }
    let faults = NeutralFaults { open_neutral: broken_neutral.to_vec(), neutral_earth: Vec::new() };
    let mut fw = FourWire::new(net, &faults).map_err(|e| e.to_string())?;
    let inj = fw.network_injections(net);
    let st = fw.solve(&inj).map_err(|e| e.to_string())?;
    // Rows in the network's bus order, keyed by its `index` like `grid solve`; buses outside the LV part
    // (the transformers' HV side) have no 4-wire voltages and read nan.
    let mut s = String::from("index,u_an_pu,u_bn_pu,u_cn_pu,u_ne_pu\n");
    for (b, bus) in net.buses.iter().enumerate() {
        match (fw.phase_neutral_pu(b), fw.neutral_shift_pu(b)) {
            (Some(u), Some(n)) => {
                s.push_str(&format!("{},{},{},{},{}\n", bus.index, fmt_f(u[0]), fmt_f(u[1]), fmt_f(u[2]), fmt_f(n)))
            }
            _ => s.push_str(&format!("{},nan,nan,nan,nan\n", bus.index)),
        }
    }
    tracing::info!(iterations = st.iterations, "4-wire power flow solved");
    Ok(s)
}

/// Runs `gridtwin grid ...`.
pub fn run(args: &GridArgs) -> Result<(), CliError> {
    match &args.command {
        GridCommand::Solve { network, unbalanced, four_wire, broken_neutral, out, repeat, timing_out } => {
            check_out_file(out.as_deref(), "--out")?;
            check_out_file(timing_out.as_deref(), "--timing-out")?;
            let net = load_network(network)?;
            warn_network(network, &net);
            if *four_wire {
                let csv = four_wire_csv(network, &net, broken_neutral)?;
                return write_output(out.as_deref(), &csv);
            }
            let (csv, iterations, unsupplied) = solve_csv(&net, *unbalanced)?;
            note_buses(network, &unsupplied, "reached by no slack: no voltages there");
            if let Some(k) = repeat {
                let k = (*k).max(1) as usize;
                // Full: compile + factorise + flat-start solve. Resolve: reused factorisation, flat start.
                let names: Vec<String> = (0..net.buses.len()).map(|b| net.bus_label(b)).collect();
                let closed: Vec<bool> = net.switches.iter().map(|s| s.closed).collect();
                let lis: Vec<bool> = net.lines.iter().map(|l| l.in_service).collect();
                let mut model = GridModel::new(net.clone());
                model.unbalanced = *unbalanced;
                model.solve().map_err(|e| e.to_string())?;
                let mut pf: PowerFlow = model.power_flow().cloned().ok_or("no solver")?;
                let mut full = Vec::with_capacity(k);
                for _ in 0..k.min(200) {
                    let t0 = Instant::now();
                    let topo = Topology::build(&net, &closed, &lis, Purpose::PowerFlow)?;
                    let mut p = PowerFlow::new(topo, names.clone()).map_err(|e| e.to_string())?;
                    p.loads = pf.loads.clone();
                    if *unbalanced {
                        p.solve_unbalanced().map_err(|e| e.to_string())?;
                    } else {
                        p.solve_balanced().map_err(|e| e.to_string())?;
                    }
                    full.push(t0.elapsed().as_secs_f64());
                }
                let mut resolve = Vec::with_capacity(k);
                let mut iters = 0;
                for _ in 0..k {
                    pf.reset_flat();
                    let t0 = Instant::now();
                    let st = if *unbalanced { pf.solve_unbalanced() } else { pf.solve_balanced() }
                        .map_err(|e| e.to_string())?;
                    resolve.push(t0.elapsed().as_secs_f64());
                    iters = st.iterations;
                }
                full.sort_by(|a, b| a.total_cmp(b));
                let full_med = full[full.len() / 2] * 1e6;
                let json = timing_json(
                    if *unbalanced { "grid solve --unbalanced" } else { "grid solve" },
                    network,
                    &[
                        ("buses", net.buses.len().into()),
                        ("iterations", iters.into()),
                        ("factor", format!("{:?}", pf.factor_size()).into()),
                        ("full_median_us", full_med.into()),
                        (
                            "note",
                            "per solve: flat start on the reused factorisation; full_median_us adds compile and factorisation"
                                .into(),
                        ),
                    ],
                    &mut resolve,
                );
                emit_timing(timing_out.as_deref(), &json)?;
            }
            let _ = iterations;
            write_output(out.as_deref(), &csv)
        }
        GridCommand::ShortCircuit { network, out, repeat, timing_out } => {
            check_out_file(out.as_deref(), "--out")?;
            check_out_file(timing_out.as_deref(), "--timing-out")?;
            let net = load_network(network)?;
            warn_network(network, &net);
            let res = short_circuit(&net)?;
            note_missing_results(network, &res);
            if let Some(k) = repeat {
                let mut samples = Vec::new();
                for _ in 0..(*k).max(1) {
                    let t0 = Instant::now();
                    let r = short_circuit(&net)?;
                    samples.push(t0.elapsed().as_secs_f64());
                    std::hint::black_box(r);
                }
                let json =
                    timing_json("grid short-circuit", network, &[("buses", net.buses.len().into())], &mut samples);
                emit_timing(timing_out.as_deref(), &json)?;
            }
            let mut s = String::from(
                "index,ikss_ka_3ph_max,ikss_ka_3ph_min,ikss_ka_2ph_max,ikss_ka_2ph_min,ikss_ka_1ph_max,ikss_ka_1ph_min\n",
            );
            for r in &res {
                s.push_str(&format!(
                    "{},{},{},{},{},{},{}\n",
                    r.index,
                    fmt_f(r.ikss_ka_3ph_max),
                    fmt_f(r.ikss_ka_3ph_min),
                    fmt_f(r.ikss_ka_2ph_max),
                    fmt_f(r.ikss_ka_2ph_min),
                    fmt_f(r.ikss_ka_1ph_max),
                    fmt_f(r.ikss_ka_1ph_min)
                ));
            }
            write_output(out.as_deref(), &s)
        }
    }
}
