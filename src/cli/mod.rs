//! The command-line interface (clap derive): `run`, `check`, `sweep`, `bench`, `grid`, `market`, `wallet`.
//!
//! Only the CLI touches files and the wall clock: it loads inputs, times runs, shows progress on stderr
//! (hidden when stderr is not a terminal), logs through `tracing` to stderr, and writes outputs atomically.

pub mod bridge;
pub mod chain;
pub mod cloud;
pub mod error;
pub mod grid;
pub mod market;
pub mod outputs;
pub mod plan;
pub mod security;
pub mod sweep;

pub use error::{CliError, EXIT_BAD_INPUT, EXIT_CODES_HELP, EXIT_FAILED, EXIT_OK};

use crate::engine::{SimDuration, format_duration, parse_duration, phold};
use crate::report::{Report, check_out_dir, write_file_atomic, write_output_dir};
use crate::scenario::{InputError, Loaded};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use serde_json::json;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// gridtwin: a deterministic simulator and digital twin of smart low-voltage grids.
///
/// Without a command it runs the default scenario (as `gridtwin run` does).
#[derive(Parser, Debug)]
#[command(name = "gridtwin", version, about, long_about = None, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub log: LogArgs,
    /// Options of the default run (no command given); also accepted before `run` and `sweep`.
    #[command(flatten)]
    pub run: RunArgs,
    /// Worker threads (default: all cores). Never changes a result. For `run` and `sweep`.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Logging options every command takes.
#[derive(Args, Debug, Clone, Default)]
pub struct LogArgs {
    /// More log output on stderr (-v: debug, -vv: trace). GRIDTWIN_LOG=<filter> overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr, and no progress bar.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

/// Options of a run.
#[derive(Args, Debug, Clone, Default)]
pub struct RunArgs {
    /// Master seed (overrides the scenario's).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Output directory (default: out/<scenario name>); replaced atomically, and only if it is empty or an
    /// earlier gridtwin output.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Stop after this much simulated time instead of the scenario's duration (e.g. "2h", "90min", "30s").
    #[arg(long, value_name = "DURATION", value_parser = parse_until, allow_hyphen_values = true)]
    pub until: Option<SimDuration>,
}

/// Options of a sweep.
#[derive(Args, Debug, Clone, Default)]
pub struct SweepArgs {
    /// Master seed of the sweep (overrides the plan's); every point's seed derives from it.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Output directory (default: out/<sweep name>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Worker threads (default: all cores). Never changes a result.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
}

/// What a run takes, whichever way it was given (the command line or a test).
#[derive(Debug, Clone, Default)]
pub struct Global {
    /// Master seed (overrides the scenario's or plan's).
    pub seed: Option<u64>,
    /// Output directory (default: out/<scenario name>).
    pub out: Option<PathBuf>,
    /// More log output (1: debug, 2: trace).
    pub verbose: u8,
    /// Only errors on stderr, no progress.
    pub quiet: bool,
    /// Threads a run or a sweep may use (default: all cores).
    pub threads: Option<usize>,
}

/// `--until`: a non-negative duration with a unit.
fn parse_until(s: &str) -> Result<SimDuration, String> {
    parse_duration(s)
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a scenario (default: the embedded scenarios/default.ron) and write its outputs.
    Run {
        /// Scenario file (RON); default: the embedded scenarios/default.ron.
        scenario: Option<PathBuf>,
        #[command(flatten)]
        opts: RunArgs,
        /// Threads the run may use (default: all cores); with two or more, a mesh of 2,000 nodes or more
        /// weighs its broadcasts on a second thread. Never changes a result.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
        threads: Option<u16>,
        /// Compare the summary's KPIs with this file (RON) and fail (exit 1) on a regression.
        #[arg(long, value_name = "FILE")]
        expect: Option<PathBuf>,
        /// Record the summary's KPIs (with default tolerances) in this file.
        #[arg(long, value_name = "FILE")]
        write_expect: Option<PathBuf>,
    },
    /// Run a scenario with its gateway connected to a real MQTT broker (mqtt://HOST:PORT).
    Bridge(bridge::BridgeArgs),
    /// The cloud service: broker subscriber, readings database, dashboard and per-user API.
    Cloud(cloud::CloudArgs),
    /// Show a finished run's output directory in the dashboard (no broker).
    Serve(cloud::ServeArgs),
    /// Validate scenarios or sweep plans (and the models and networks they name) without running them;
    /// reports every error of each file.
    Check {
        /// Scenario or sweep-plan files (RON).
        #[arg(required = true, value_name = "FILE")]
        scenarios: Vec<PathBuf>,
    },
    /// Run a sweep plan: a base scenario over a grid of overrides and replications, in parallel.
    Sweep {
        /// Sweep plan (RON).
        plan: PathBuf,
        #[command(flatten)]
        opts: SweepArgs,
        #[command(flatten)]
        scale: sweep::ScaleArgs,
    },
    /// Merge sweep shard directories into the whole result (give the target with --out).
    Merge {
        /// Shard output directories (each with its manifest.json).
        #[arg(required = true)]
        shards: Vec<PathBuf>,
        /// Directory for the merged result.
        #[arg(long, value_name = "DIR", required = true)]
        out: PathBuf,
    },
    /// Mesh planning tools.
    #[command(subcommand)]
    Mesh(plan::MeshCmd),
    /// Redraw the plots of an output directory from its CSV files.
    Plot {
        /// Output directory of a run or sweep.
        dir: PathBuf,
        /// Plot kinds to draw (default: all): series, voltage-profile, lmu-series, mesh-map, fault-timeline,
        /// mesh-distributions, accounting, sweep.
        #[arg(long)]
        kind: Vec<String>,
        /// LMUs whose readings `lmu-series` draws (repeatable; default: the three that saw the lowest voltage).
        #[arg(long)]
        lmu: Vec<u32>,
    },
    /// Write a self-contained report.html (plots inline, KPI tables, the scenario) into an output directory.
    Report {
        /// Output directory of a run.
        dir: PathBuf,
    },
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCmd),
    /// Power flow and short circuits on a network file.
    Grid(grid::GridArgs),
    /// Print the scenario reference (every section and field, with units and defaults) as Markdown; the same
    /// text as docs/scenario.md.
    Schema,
    /// The energy market: clear an order book.
    #[command(subcommand)]
    Market(market::MarketCmd),
    /// Electricity wallets: trace every kWh to its origin.
    #[command(subcommand)]
    Wallet(market::WalletCmd),
    /// The private chain: adversarial fuzzing of consensus, finality measurements.
    #[command(subcommand)]
    Chain(chain::ChainCmd),
    /// The ledger of a run's output directory.
    #[command(subcommand)]
    Ledger(chain::LedgerCmd),
    /// Energy-theft detection: the false-alarm rate of a theft scenario on honest days.
    #[command(subcommand)]
    Theft(security::TheftCmd),
}

#[derive(Subcommand, Debug)]
pub enum BenchCmd {
    /// PHOLD-ns through the engine: prints one JSON object (events, checksum, events_per_s).
    Phold {
        /// Logical processes.
        #[arg(long, default_value_t = 1024)]
        lps: u32,
        /// Events each LP starts with (the population stays constant).
        #[arg(long, default_value_t = 16)]
        events_per_lp: u32,
        /// Master seed of the random streams.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Fixed part of every event's delay (ns).
        #[arg(long, default_value_t = 100_000_000)]
        lookahead_ns: u64,
        /// Mean of the exponential part of every event's delay (ns).
        #[arg(long, default_value_t = 900_000_000)]
        mean_ns: u64,
        /// Simulated end time (ns).
        #[arg(long, default_value_t = 200_000_000_000)]
        end_ns: u64,
        /// Also run the bare reference loop and check it agrees.
        #[arg(long)]
        verify: bool,
    },
}

fn init_logging(g: &LogArgs) {
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
    // Colour only on a terminal: a pipe or file gets plain text.
    let colour = std::io::stderr().is_terminal();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .without_time()
        .with_target(false)
        .try_init();
    let _ = miette::set_hook(Box::new(move |_| {
        Box::new(miette::MietteHandlerOpts::new().color(colour).unicode(colour).build())
    }));
}

/// Remaining time, shown only once the rate is known: at least 2 % done and one second elapsed (a
/// first-tick estimate from the build's start-up is far off).
fn eta(state: &ProgressState, w: &mut dyn std::fmt::Write) {
    let f = state.fraction() as f64;
    let elapsed = state.elapsed().as_secs_f64();
    if f < 0.02 || elapsed < 1.0 {
        let _ = write!(w, "-");
        return;
    }
    let left_s = (elapsed * (1.0 - f) / f).round() as u64;
    let _ = write!(w, "{}", format_duration(SimDuration::from_secs(left_s)));
}

fn progress_bar(len: u64, quiet: bool, what: &str) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{prefix} [{bar:40}] {percent:>3}% {elapsed_precise} eta {myeta}")
            .expect("static template")
            .with_key("myeta", eta)
            .progress_chars("=> "),
    );
    pb.set_prefix(what.to_string());
    pb
}

/// Runs the CLI; returns the process exit code (see [`error`] for the table).
pub fn main() -> i32 {
    error::install_closed_pipe_hook();
    let parsed = Cli::command().try_get_matches().and_then(|m| Cli::from_arg_matches(&m).map(|c| (c, m)));
    let (cli, matches) = match parsed {
        Ok(c) => c,
        Err(e) => {
            // --help and --version are "errors" that exit 0; a closed pipe while printing them is fine too.
            let _ = e.print();
            return if e.use_stderr() { EXIT_BAD_INPUT } else { EXIT_OK };
        }
    };
    init_logging(&cli.log);
    let name = matches.subcommand_name().unwrap_or("run").to_string();
    error::report(dispatch(cli, &name))
}

/// Merges the top-level run options into a command's (an option given in both places is a mistake) and
/// refuses them for commands they mean nothing to.
fn merge(top: &RunArgs, threads: Option<u16>, cmd: &Command, name: &str) -> Result<(), CliError> {
    let given: Vec<&str> = [
        top.seed.map(|_| "--seed"),
        top.out.as_ref().map(|_| "--out"),
        top.until.map(|_| "--until"),
        threads.map(|_| "--threads"),
    ]
    .into_iter()
    .flatten()
    .collect();
    let allowed: &[&str] = match cmd {
        Command::Run { .. } => &["--seed", "--out", "--until", "--threads"],
        Command::Sweep { .. } => &["--seed", "--out", "--threads"],
        _ => &[],
    };
    if let Some(bad) = given.iter().find(|g| !allowed.contains(g)) {
        return Err(CliError::usage(format!("`{bad}` is not an option of `{name}`")));
    }
    Ok(())
}

fn either<T: Clone>(a: &Option<T>, b: &Option<T>, name: &str) -> Result<Option<T>, CliError> {
    match (a, b) {
        (Some(_), Some(_)) => Err(CliError::usage(format!("`{name}` is given twice"))),
        (Some(x), None) | (None, Some(x)) => Ok(Some(x.clone())),
        (None, None) => Ok(None),
    }
}

/// Runs the parsed command line (`name`: the subcommand's name, for messages).
fn dispatch(cli: Cli, name: &str) -> Result<(), CliError> {
    let log = cli.log.clone();
    let global = |r: &RunArgs| Global {
        seed: r.seed,
        out: r.out.clone(),
        verbose: log.verbose,
        quiet: log.quiet,
        threads: None,
    };
    let Some(cmd) = cli.command else {
        let g = Global { threads: cli.threads.map(usize::from), ..global(&cli.run) };
        return cmd_run(&g, None, cli.run.until, None, None);
    };
    merge(&cli.run, cli.threads, &cmd, name)?;
    match cmd {
        Command::Run { scenario, opts, threads, expect, write_expect } => {
            let r = RunArgs {
                seed: either(&cli.run.seed, &opts.seed, "--seed")?,
                out: either(&cli.run.out, &opts.out, "--out")?,
                until: either(&cli.run.until, &opts.until, "--until")?,
            };
            let g = Global { threads: either(&cli.threads, &threads, "--threads")?.map(usize::from), ..global(&r) };
            cmd_run(&g, scenario.as_deref(), r.until, expect.as_deref(), write_expect.as_deref())
        }
        Command::Check { scenarios } => cmd_check(&scenarios),
        Command::Sweep { plan, opts, scale } => {
            let r = RunArgs {
                seed: either(&cli.run.seed, &opts.seed, "--seed")?,
                out: either(&cli.run.out, &opts.out, "--out")?,
                until: None,
            };
            let mut g = global(&r);
            g.threads = either(&cli.threads, &opts.threads, "--threads")?.map(usize::from);
            sweep::run(&g, &plan, &scale)
        }
        Command::Bench(b) => cmd_bench(b),
        Command::Grid(args) => grid::run(&args),
        Command::Schema => error::print(crate::scenario::reference::MARKDOWN),
        Command::Market(m) => market::market(&m),
        Command::Wallet(w) => market::wallet(&w),
        Command::Bridge(args) => bridge::run(&global(&cli.run), &args),
        Command::Cloud(args) => cloud::run_cloud(&args),
        Command::Serve(args) => cloud::run_serve(&args),
        Command::Chain(c) => chain::run_chain(&c).map_err(CliError::from),
        Command::Ledger(c) => chain::run_ledger(&c).map_err(CliError::from),
        Command::Theft(c) => security::run(&c),
        Command::Merge { shards, out } => {
            let mut g = global(&cli.run);
            g.out = Some(out);
            sweep::merge(&g, &shards)
        }
        Command::Mesh(m) => plan::run(&global(&cli.run), &m),
        Command::Plot { dir, kind, lmu } => outputs::plot(&dir, &kind, &lmu),
        Command::Report { dir } => outputs::report(&dir),
    }
}

fn load(path: Option<&Path>) -> Result<Loaded, InputError> {
    match path {
        Some(p) => Loaded::from_file(p),
        None => Ok(Loaded::default_embedded()),
    }
}

fn cmd_check(paths: &[PathBuf]) -> Result<(), CliError> {
    let mut errors = Vec::new();
    for p in paths {
        match check_one(p) {
            Ok(line) => error::println(&line)?,
            Err(e) => errors.push(e),
        }
    }
    match InputError::collect(errors) {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

fn check_one(p: &Path) -> Result<String, InputError> {
    let text =
        crate::scenario::assets::read_text(p).map_err(|e| InputError::file(&p.display().to_string(), e, None))?;
    if crate::scenario::assets::top_level_name(&text) == Some("Sweep") {
        let exp = crate::sweep::load(p)?;
        return Ok(format!(
            "{}: ok (sweep `{}`: {} points x {} replications)",
            p.display(),
            exp.plan.name,
            exp.points.len(),
            exp.plan.replications
        ));
    }
    let l = Loaded::from_file(p)?;
    // Building the world resolves every model and network the scenario names.
    crate::world::build(&l, l.scenario.seed, None)?;
    Ok(format!("{}: ok ({})", p.display(), l.scenario.name))
}

fn cmd_run(
    g: &Global,
    path: Option<&Path>,
    until: Option<SimDuration>,
    expect: Option<&Path>,
    write_expect: Option<&Path>,
) -> Result<(), CliError> {
    // Everything that can be checked before the run is: the output directory first, then the scenario.
    if let Some(out) = &g.out {
        check_out_dir(out).map_err(CliError::usage)?;
    }
    let loaded = load(path)?;
    let (report, out, run_s) = run_for(g, &loaded, until)?;
    print_human(&report, &out, run_s)?;
    outputs::check_expect(&report.summary, expect, write_expect)
}

/// `gridtwin run`: builds and runs `loaded`, writes the output directory atomically; returns the report,
/// the directory and the wall time of the run. Nothing is written unless the run succeeds.
pub fn run_to_dir(g: &Global, loaded: &Loaded, until: Option<&str>) -> Result<(Report, PathBuf, f64), CliError> {
    let until = until.map(|u| parse_until(u).map_err(|e| CliError::usage(format!("--until: {e}")))).transpose()?;
    run_for(g, loaded, until)
}

/// Steps of simulated time a run is cut into for its progress bar and the slices of `timing.json`.
const TIMING_SLICES: u32 = 200;

fn run_for(g: &Global, loaded: &Loaded, until: Option<SimDuration>) -> Result<(Report, PathBuf, f64), CliError> {
    let t0 = Instant::now();
    let seed = g.seed.unwrap_or(loaded.scenario.seed);
    let out = g.out.clone().unwrap_or_else(|| PathBuf::from("out").join(sanitize(&loaded.scenario.name)));
    check_out_dir(&out).map_err(CliError::usage)?;
    let mut world = crate::world::build(loaded, seed, until)?;
    world.use_cores(g.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from)));
    let build_s = t0.elapsed().as_secs_f64();
    tracing::info!(scenario = %loaded.scenario.name, seed, agents = world.sim.agent_count(), "built");
    let pb = progress_bar(1000, g.quiet, &loaded.scenario.name);
    let t1 = Instant::now();
    // Wall time and events at each 1/TIMING_SLICES of the simulated time, for `timing.json`: where a run's time
    // goes (a mesh's formation against its steady state, a fault's burst) from one run.
    let end_s = world.until.as_secs_f64();
    let mut slices = Vec::with_capacity(TIMING_SLICES as usize);
    world.run(TIMING_SLICES, |f, events| {
        pb.set_position((f * 1000.0) as u64);
        slices.push(json!({"sim_s": f * end_s, "wall_s": t1.elapsed().as_secs_f64(), "events": events}));
    })?;
    pb.finish_and_clear();
    let run_s = t1.elapsed().as_secs_f64();
    let t2 = Instant::now();
    let mut report = world.report();
    report.files.push(("scenario.ron".into(), loaded.text.clone().into_bytes()));
    let events = world.sim.stats().delivered;
    let timing = json!({
        "build_s": build_s,
        "run_s": run_s,
        "report_s": t2.elapsed().as_secs_f64(),
        "events_per_s": if run_s > 0.0 { events as f64 / run_s } else { 0.0 },
        "slices": slices,
    });
    write_output_dir(&out, &report, &timing, loaded.scenario.outputs.plots)?;
    Ok((report, out, run_s))
}

fn print_human(r: &Report, out: &Path, run_s: f64) -> Result<(), CliError> {
    let s = &r.summary;
    let mut text = format!(
        "{}: {} events over {} s simulated in {:.2} s wall (seed {}, digest {})\n",
        s["scenario"].as_str().unwrap_or("?"),
        s["events"],
        s["sim_time_s"],
        run_s,
        s["seed"],
        s["digest"].as_str().unwrap_or("?")
    );
    for line in &r.human {
        text.push_str(&format!("  {line}\n"));
    }
    text.push_str(&format!("  outputs in {}\n", out.display()));
    error::print(&text)
}

fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

fn cmd_bench(b: BenchCmd) -> Result<(), CliError> {
    match b {
        BenchCmd::Phold { lps, events_per_lp, seed, lookahead_ns, mean_ns, end_ns, verify } => {
            let cfg = phold::PholdConfig { lps, events_per_lp, seed, lookahead_ns, mean_ns, end_ns };
            phold::validate(&cfg).map_err(CliError::usage)?;
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
                    error::println(&out.to_string())?;
                    return Err(format!("engine gave {r:?}, reference loop {reference:?}").into());
                }
            }
            error::println(&out.to_string())
        }
    }
}

/// Writes `bytes` to `path` atomically (for commands that write one file).
pub fn write_out(path: &Path, bytes: &[u8]) -> Result<(), String> {
    write_file_atomic(path, bytes)
}
