//! The command-line interface (clap derive): `run`, `check`, `sweep`, `bench`, `grid`.
//!
//! Only the CLI touches files and the wall clock: it loads inputs, times runs, shows progress on stderr
//! (hidden when stderr is not a terminal), logs through `tracing` to stderr, and writes outputs atomically.

pub mod bridge;
pub mod cloud;
pub mod grid;

use crate::engine::{parse_duration, phold};
use crate::report::{Report, write_file_atomic, write_output_dir};
use crate::scenario::{InputError, Loaded};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// gridtwin: a deterministic simulator and digital twin of smart low-voltage grids.
#[derive(Parser, Debug)]
#[command(name = "gridtwin", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options every command takes.
#[derive(Args, Debug, Clone, Default)]
pub struct Global {
    /// Master seed (overrides the scenario's or plan's).
    #[arg(long, global = true)]
    pub seed: Option<u64>,
    /// Output directory (default: out/<scenario name>).
    #[arg(long, global = true)]
    pub out: Option<PathBuf>,
    /// More log output on stderr (-v: debug, -vv: trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Worker threads for sweeps (default: all cores). Never changes a result.
    #[arg(long, global = true)]
    pub threads: Option<usize>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a scenario (default: the embedded scenarios/default.ron) and write its outputs.
    Run {
        /// Scenario file (RON).
        scenario: Option<PathBuf>,
        /// Stop after this much simulated time instead of the scenario's duration (e.g. "2h").
        #[arg(long)]
        until: Option<String>,
    },
    /// Run a scenario with its gateway connected to a real MQTT broker (mqtt://HOST:PORT).
    Bridge(bridge::BridgeArgs),
    /// The cloud service: broker subscriber, readings database, dashboard and per-user API.
    Cloud(cloud::CloudArgs),
    /// Show a finished run's output directory in the dashboard (no broker).
    Serve(cloud::ServeArgs),
    /// Validate scenarios or sweep plans (and the models and networks they name) without running them.
    Check {
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
    },
    /// Run a sweep plan: a base scenario over a grid of overrides and replications, in parallel.
    Sweep {
        /// Sweep plan (RON).
        plan: PathBuf,
    },
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCmd),
    /// Power flow and short circuits on a network file.
    Grid(grid::GridArgs),
}

#[derive(Subcommand, Debug)]
pub enum BenchCmd {
    /// PHOLD-ns through the engine: prints one JSON object (events, checksum, events_per_s).
    Phold {
        #[arg(long, default_value_t = 1024)]
        lps: u32,
        #[arg(long, default_value_t = 16)]
        events_per_lp: u32,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, default_value_t = 100_000_000)]
        lookahead_ns: u64,
        #[arg(long, default_value_t = 900_000_000)]
        mean_ns: u64,
        #[arg(long, default_value_t = 200_000_000_000)]
        end_ns: u64,
        /// Also run the bare reference loop and check it agrees.
        #[arg(long)]
        verify: bool,
    },
}

/// An error for the user: printed by `main`, exit code 1 (2 for bad input).
#[derive(Debug)]
pub enum CliError {
    /// Bad input, located in its file.
    Input(Box<InputError>),
    /// Anything else (I/O, a failed run).
    Other(String),
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Input(e) => write!(f, "{e}"),
            CliError::Other(e) => write!(f, "{e}"),
        }
    }
}

impl From<InputError> for CliError {
    fn from(e: InputError) -> Self {
        CliError::Input(Box::new(e))
    }
}
impl From<String> for CliError {
    fn from(e: String) -> Self {
        CliError::Other(e)
    }
}

fn init_logging(g: &Global) {
    let level = if g.quiet {
        "error"
    } else {
        match g.verbose {
            0 => "warn",
            1 => "debug",
            _ => "trace",
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("GRIDTWIN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .try_init();
}

fn progress_bar(len: u64, quiet: bool, what: &str) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    // indicatif draws only when stderr is a terminal.
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{prefix} [{bar:40}] {percent:>3}% {elapsed_precise} eta {eta}")
            .expect("static template")
            .progress_chars("=> "),
    );
    pb.set_prefix(what.to_string());
    pb
}

/// Runs the CLI; returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    init_logging(&cli.global);
    let result = match cli.command {
        None => cmd_run(&cli.global, None, None),
        Some(Command::Run { scenario, until }) => cmd_run(&cli.global, scenario.as_deref(), until.as_deref()),
        Some(Command::Check { scenarios }) => cmd_check(&scenarios),
        Some(Command::Sweep { plan }) => cmd_sweep(&cli.global, &plan),
        Some(Command::Bench(b)) => cmd_bench(b),
        Some(Command::Grid(args)) => grid::run(&args).map_err(CliError::Other),
        Some(Command::Bridge(args)) => bridge::run(&cli.global, &args),
        Some(Command::Cloud(args)) => cloud::run_cloud(&args),
        Some(Command::Serve(args)) => cloud::run_serve(&args),
    };
    match result {
        Ok(()) => 0,
        Err(CliError::Input(e)) => {
            eprintln!("{:?}", miette::Report::new(*e));
            2
        }
        Err(CliError::Other(e)) => {
            eprintln!("error: {e}");
            1
        }
    }
}

fn load(path: Option<&Path>) -> Result<Loaded, InputError> {
    match path {
        Some(p) => Loaded::from_file(p),
        None => Ok(Loaded::default_embedded()),
    }
}

fn cmd_check(paths: &[PathBuf]) -> Result<(), CliError> {
    for p in paths {
        let text =
            crate::scenario::assets::read_text(p).map_err(|e| InputError::file(&p.display().to_string(), e, None))?;
        if crate::scenario::assets::top_level_name(&text) == Some("Sweep") {
            let exp = crate::sweep::load(p)?;
            println!(
                "{}: ok (sweep `{}`: {} points x {} replications)",
                p.display(),
                exp.plan.name,
                exp.points.len(),
                exp.plan.replications
            );
            continue;
        }
        let l = Loaded::from_file(p)?;
        // Building the world resolves every model and network the scenario names.
        crate::world::build(&l, l.scenario.seed, None)?;
        println!("{}: ok ({})", p.display(), l.scenario.name);
    }
    Ok(())
}

fn cmd_run(g: &Global, path: Option<&Path>, until: Option<&str>) -> Result<(), CliError> {
    let loaded = load(path)?;
    let (report, out, run_s) = run_to_dir(g, &loaded, until)?;
    print_human(&report, &out, run_s);
    Ok(())
}

/// `gridtwin run`: builds and runs `loaded`, writes the output directory atomically; returns the report,
/// the directory and the wall time of the run. Nothing is written unless the run succeeds.
pub fn run_to_dir(g: &Global, loaded: &Loaded, until: Option<&str>) -> Result<(Report, PathBuf, f64), CliError> {
    let t0 = Instant::now();
    let until = until.map(|u| parse_duration(u).map_err(|e| format!("--until: {e}"))).transpose()?;
    let seed = g.seed.unwrap_or(loaded.scenario.seed);
    let mut world = crate::world::build(loaded, seed, until)?;
    let out = g.out.clone().unwrap_or_else(|| PathBuf::from("out").join(sanitize(&loaded.scenario.name)));
    let build_s = t0.elapsed().as_secs_f64();
    tracing::info!(scenario = %loaded.scenario.name, seed, agents = world.sim.agent_count(), "built");
    let pb = progress_bar(1000, g.quiet, &loaded.scenario.name);
    let t1 = Instant::now();
    world.run(200, |f| pb.set_position((f * 1000.0) as u64))?;
    pb.finish_and_clear();
    let run_s = t1.elapsed().as_secs_f64();
    let t2 = Instant::now();
    let report = world.report();
    let events = world.sim.stats().delivered;
    let timing = json!({
        "build_s": build_s,
        "run_s": run_s,
        "report_s": t2.elapsed().as_secs_f64(),
        "events_per_s": if run_s > 0.0 { events as f64 / run_s } else { 0.0 },
    });
    write_output_dir(&out, &report, &timing, loaded.scenario.outputs.plots)?;
    Ok((report, out, run_s))
}

fn print_human(r: &Report, out: &Path, run_s: f64) {
    let s = &r.summary;
    println!(
        "{}: {} events over {} s simulated in {:.2} s wall (seed {}, digest {})",
        s["scenario"].as_str().unwrap_or("?"),
        s["events"],
        s["sim_time_s"],
        run_s,
        s["seed"],
        s["digest"].as_str().unwrap_or("?")
    );
    for line in &r.human {
        println!("  {line}");
    }
    println!("  outputs in {}", out.display());
}

fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

fn cmd_sweep(g: &Global, plan_path: &Path) -> Result<(), CliError> {
    let t0 = Instant::now();
    let mut exp = crate::sweep::load(plan_path)?;
    if let Some(seed) = g.seed {
        exp.plan.seed = seed;
    }
    let out = g.out.clone().unwrap_or_else(|| PathBuf::from("out").join(sanitize(&exp.plan.name)));
    let total = exp.points.len() as u64 * exp.plan.replications as u64;
    let pb = progress_bar(total, g.quiet, &exp.plan.name);
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(n) = g.threads {
        builder = builder.num_threads(n.max(1));
    }
    let pool = builder.build().map_err(|e| format!("cannot start {} threads: {e}", g.threads.unwrap_or(0)))?;
    let table = pool.install(|| crate::sweep::run(&exp, &|| pb.inc(1)))?;
    pb.finish_and_clear();
    let mut report = Report::default();
    report.summary.insert("sweep".into(), json!(exp.plan.name));
    report.summary.insert("plan".into(), json!(exp.file));
    report.summary.insert("seed".into(), json!(exp.plan.seed));
    report.summary.insert("version".into(), json!(env!("CARGO_PKG_VERSION")));
    report.summary.insert("points".into(), json!(exp.points.len()));
    report.summary.insert("replications".into(), json!(exp.plan.replications));
    let rows = table.rows.len();
    report.tables.push((sanitize(&exp.plan.name), table));
    let wall = t0.elapsed().as_secs_f64();
    let timing = json!({"wall_s": wall, "threads": pool.current_num_threads()});
    write_output_dir(&out, &report, &timing, false)?;
    println!(
        "{}: {rows} runs in {wall:.2} s; results in {}",
        exp.plan.name,
        out.join(format!("{}.csv", sanitize(&exp.plan.name))).display()
    );
    Ok(())
}

fn cmd_bench(b: BenchCmd) -> Result<(), CliError> {
    match b {
        BenchCmd::Phold { lps, events_per_lp, seed, lookahead_ns, mean_ns, end_ns, verify } => {
            let cfg = phold::PholdConfig { lps, events_per_lp, seed, lookahead_ns, mean_ns, end_ns };
            phold::validate(&cfg)?;
            let t = Instant::now();
            let r = phold::run_engine(&cfg)?;
            let wall = t.elapsed().as_secs_f64();
            let mut out = json!({
                "lps": lps, "events_per_lp": events_per_lp, "seed": seed, "lookahead_ns": lookahead_ns,
                "mean_ns": mean_ns, "end_ns": end_ns,
                "events": r.events, "checksum": r.checksum_hex(),
                "wall_s": wall, "events_per_s": if wall > 0.0 { r.events as f64 / wall } else { 0.0 },
            });
            if verify {
                let reference = phold::run_reference(&cfg);
                out["reference_agrees"] = json!(reference == r);
                if reference != r {
                    println!("{out}");
                    return Err(format!("engine gave {r:?}, reference loop {reference:?}").into());
                }
            }
            println!("{out}");
            Ok(())
        }
    }
}

/// Writes `bytes` to `path` atomically (for commands that write one file).
pub fn write_out(path: &Path, bytes: &[u8]) -> Result<(), String> {
    write_file_atomic(path, bytes)
}
