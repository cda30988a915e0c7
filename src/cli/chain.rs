//! `gridtwin chain ...` (adversarial fuzzing, finality measurement) and `gridtwin ledger verify OUT_DIR`.

use crate::chain::cluster::{Behaviour, Cluster, ClusterSpec, NetModel, Protocol};
use crate::chain::fuzz::{self, validator_key};
use crate::chain::store;
use clap::{Args, Subcommand};
use gridtwin_firmware::consensus::Config;
use gridtwin_firmware::ledger::Genesis;
use serde_json::json;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum ChainCmd {
    /// Seeded adversarial schedules: prints {"schedules", "heights_committed", "conflicting_commits", "violations"}.
    Fuzz(FuzzArgs),
    /// Finality of n validators on links with latencies in [min, max] and a loss rate (JSON).
    Finality(FinalityArgs),
}

#[derive(Args, Debug)]
pub struct FuzzArgs {
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    #[arg(long, default_value_t = 1)]
    pub byzantine: usize,
    #[arg(long, default_value_t = 1000)]
    pub schedules: u64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print JSON (else a short human summary).
    #[arg(long)]
    pub json: bool,
    /// Run only schedule K and describe it (replays a violation exactly).
    #[arg(long)]
    pub replay: Option<u64>,
}

#[derive(Args, Debug)]
pub struct FinalityArgs {
    #[arg(long, default_value_t = 31)]
    pub validators: usize,
    #[arg(long, default_value_t = 50)]
    pub latency_min_ms: u64,
    #[arg(long, default_value_t = 300)]
    pub latency_max_ms: u64,
    #[arg(long, default_value_t = 0.0)]
    pub loss: f64,
    /// Heights to decide.
    #[arg(long, default_value_t = 200)]
    pub heights: u64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Run the proof-of-authority baseline with slots of this many ms instead of Tendermint.
    #[arg(long, default_value_t = 0)]
    pub poa_step_ms: u64,
}

#[derive(Subcommand, Debug)]
pub enum LedgerCmd {
    /// Re-checks every signature, hash, Merkle root and commit of OUT_DIR/ledger and re-executes it from
    /// genesis; exits 0 only on an intact ledger, else names the first bad block or transaction.
    Verify { out_dir: PathBuf },
}

pub fn run_chain(cmd: &ChainCmd) -> Result<(), String> {
    match cmd {
        ChainCmd::Fuzz(a) => run_fuzz(a),
        ChainCmd::Finality(a) => run_finality(a),
    }
}

fn run_fuzz(a: &FuzzArgs) -> Result<(), String> {
    if let Some(k) = a.replay {
        let r = fuzz::run_schedule(a.validators, a.byzantine, a.seed, k)?;
        let spec = fuzz::schedule_spec(a.validators, a.byzantine, a.seed, k);
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "schedule": k,
                "byzantine": r.byzantine.iter().map(|(i, b)| json!({"validator": i, "behaviour": format!("{b:?}")})).collect::<Vec<_>>(),
                "latency_ms": [spec.net.latency_min_ns / 1_000_000, spec.net.latency_max_ns / 1_000_000],
                "jitter_ms": spec.net.jitter_ns / 1_000_000,
                "loss": spec.net.loss,
                "partitions": spec.partitions.iter().map(|p| json!({"start_ms": p.start_ns / 1_000_000, "end_ms": p.end_ns / 1_000_000})).collect::<Vec<_>>(),
                "heights_committed": r.heights,
                "violations": r.conflicts,
            }))
            .map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    let s = fuzz::fuzz(a.validators, a.byzantine, a.schedules, a.seed)?;
    if a.json {
        println!("{}", serde_json::to_string(&s).map_err(|e| e.to_string())?);
    } else {
        println!(
            "{} schedules, n = {}, {} Byzantine: {} heights committed, {} conflicting commits",
            s.schedules, a.validators, a.byzantine, s.heights_committed, s.conflicting_commits
        );
        for v in s.violations.iter().take(10) {
            println!(
                "  schedule {} height {}: culprits {:?} (replay: --replay {})",
                v.schedule, v.height, v.culprits, v.schedule
            );
        }
    }
    // Conflicts with at most f Byzantine of n = 3f + 1 are a safety bug: fail.
    if s.conflicting_commits > 0 && 3 * a.byzantine < a.validators {
        return Err(format!(
            "{} conflicting commits with {} Byzantine of {}",
            s.conflicting_commits, a.byzantine, a.validators
        ));
    }
    Ok(())
}

fn run_finality(a: &FinalityArgs) -> Result<(), String> {
    let n = a.validators;
    let ms = 1_000_000;
    let spec = ClusterSpec {
        keys: (0..n).map(validator_key).collect(),
        powers: vec![1; n],
        behaviour: vec![Behaviour::Honest; n],
        net: NetModel {
            latency_min_ns: a.latency_min_ms * ms,
            latency_max_ns: a.latency_max_ms * ms,
            jitter_ns: 0,
            loss: a.loss,
        },
        partitions: Vec::new(),
        timeouts: Config::new([0; 32]),
        block_interval_ns: 0,
        delay_max_ns: 0,
        genesis: Genesis {
            chain_name: b"finality".to_vec(),
            app_name: b"null".to_vec(),
            validators: Vec::new(),
            app_state: Vec::new(),
        },
        seed: a.seed,
        protocol: if a.poa_step_ms > 0 { Protocol::Poa { step_ms: a.poa_step_ms } } else { Protocol::Tendermint },
    };
    let mut c = Cluster::new(spec, None)?;
    c.run_heights(a.heights, u64::MAX / 2);
    let mut f = c.finality_ns();
    f.sort_unstable();
    let q = |p: f64| if f.is_empty() { 0.0 } else { f[((f.len() - 1) as f64 * p).round() as usize] as f64 / 1e6 };
    let rounds = c.rounds_per_height();
    println!(
        "{}",
        json!({
            "protocol": if a.poa_step_ms > 0 { format!("poa-{}ms", a.poa_step_ms) } else { "tendermint".into() },
            "validators": n,
            "latency_ms": [a.latency_min_ms, a.latency_max_ms],
            "loss": a.loss,
            "heights": c.min_honest_height(),
            "finality_ms_p50": q(0.5),
            "finality_ms_p99": q(0.99),
            "rounds_per_height_mean": rounds.iter().map(|r| *r as f64).sum::<f64>() / rounds.len().max(1) as f64,
            "bytes_sent_per_validator": c.stats.bytes_sent.iter().sum::<u64>() / n.max(1) as u64,
            "sim_time_s": c.now_ns() as f64 / 1e9,
        })
    );
    Ok(())
}

pub fn run_ledger(cmd: &LedgerCmd) -> Result<(), String> {
    match cmd {
        LedgerCmd::Verify { out_dir } => {
            let v = store::verify_dir(out_dir)?;
            println!(
                "{}: ledger intact: {} blocks, {} transactions, {} evidence, state root {}",
                out_dir.display(),
                v.blocks,
                v.transactions,
                v.evidence,
                crate::chain::hex(&v.state_root)
            );
            Ok(())
        }
    }
}
