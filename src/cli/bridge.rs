//! `gridtwin bridge SCENARIO --broker mqtt://HOST:PORT|mqtts://HOST:PORT [--ca FILE [--client-cert FILE
//! --client-key FILE]] [--username U --password P] [--speed 1|10|max]`: runs
//! the scenario with its gateway connected to a real MQTT broker (see [`crate::bridge`]) and writes the usual
//! outputs (`--out`), whose `mqtt.messages_published` and `mqtt.payload_bytes` count what reached the broker.

use super::{CliError, Global, load, print_human, progress_bar, sanitize};
use crate::bridge::{BridgeOptions, Speed, parse_broker_url, tls_files, with_credentials};
use crate::report::{check_out_dir, write_output_dir};
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Arguments of `gridtwin bridge`.
#[derive(Args, Debug)]
pub struct BridgeArgs {
    /// Scenario file (RON) with a `gateway` section.
    pub scenario: PathBuf,
    /// The broker: mqtt://HOST:PORT (plain MQTT over TCP) or mqtts://HOST:PORT (over TLS, with --ca).
    #[arg(long)]
    pub broker: String,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// MQTT user name (default: the scenario's).
    #[arg(long)]
    pub username: Option<String>,
    /// MQTT password (default: the scenario's).
    #[arg(long)]
    pub password: Option<String>,
    /// Simulated seconds per wall-clock second (1, 10, ...) or `max`.
    #[arg(long, default_value = "1")]
    pub speed: String,
    /// Stop after this much simulated time instead of the scenario's duration (e.g. "2h").
    #[arg(long)]
    pub until: Option<String>,
    /// Master seed (overrides the scenario's).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Output directory (default: out/<scenario name>/bridge); replaced atomically, and only if it is empty or
    /// an earlier gridtwin output.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// The TLS files of an `mqtts://` broker connection (`gridtwin bridge` and `gridtwin cloud`).
#[derive(Args, Debug)]
pub struct TlsArgs {
    /// PEM file of the CA that signed the broker's certificate (mqtts://).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// PEM client certificate chain this client presents (mqtts://, with --client-key).
    #[arg(long, value_name = "FILE")]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of --client-cert.
    #[arg(long, value_name = "FILE")]
    pub client_key: Option<PathBuf>,
}

/// Runs the bridge.
pub fn run(g: &Global, a: &BridgeArgs) -> Result<(), CliError> {
    let t0 = Instant::now();
    // Argument mistakes are bad input (exit 2) and are found before anything connects or runs.
    let broker = parse_broker_url(&a.broker).map_err(|e| CliError::usage(format!("--broker: {e}")))?;
    let tls = tls_files(&broker, a.tls.ca.as_deref(), a.tls.client_cert.as_deref(), a.tls.client_key.as_deref())
        .map_err(CliError::usage)?;
    let speed: Speed = a.speed.parse().map_err(|e| CliError::usage(format!("--speed: {e}")))?;
    let g = &Global { seed: a.seed.or(g.seed), out: a.out.clone().or_else(|| g.out.clone()), ..g.clone() };
    if let Some(out) = &g.out {
        check_out_dir(out).map_err(CliError::usage)?;
    }
    let o = BridgeOptions {
        broker,
        username: a.username.clone(),
        password: a.password.clone(),
        speed,
        response_timeout: Duration::from_secs(10),
        tls,
    };
    let loaded = with_credentials(&load(Some(&a.scenario))?, &o)?;
    let until = a
        .until
        .as_deref()
        .map(|u| crate::engine::parse_duration(u).map_err(|e| CliError::usage(format!("--until: {e}"))))
        .transpose()?;
    let seed = g.seed.unwrap_or(loaded.scenario.seed);
    let mut world = crate::world::build_with(&loaded, seed, until, true)?;
    let out =
        g.out.clone().unwrap_or_else(|| PathBuf::from("out").join(sanitize(&loaded.scenario.name)).join("bridge"));
    let pb = progress_bar(1000, g.quiet, &loaded.scenario.name);
    let t1 = Instant::now();
    let r = crate::bridge::run(&mut world, &o, |f| pb.set_position((f * 1000.0) as u64));
    pb.finish_and_clear();
    r.map_err(|e| format!("bridge: {e}"))?;
    let run_s = t1.elapsed().as_secs_f64();
    let report = world.report();
    let timing = json!({"build_s": (t1 - t0).as_secs_f64(), "run_s": run_s, "speed": a.speed});
    write_output_dir(&out, &report, &timing, loaded.scenario.outputs.plots)?;
    print_human(&report, &out, run_s)
}
