//! `gridtwin chain fuzz`: seeded adversarial schedules against the consensus firmware.
//!
//! Schedule `k` of a fuzz run with seed `S` is a pure function of (n, f, S, k): its own seed is
//! `derive_seed(S, [k])`, from which come the Byzantine validators and their behaviours (most often one
//! equivocating coalition, else a mix of equivocation, withheld votes, delays, invalid proposals and forged
//! signatures), the network (per-link latency, jitter that reorders messages, loss up to 20 %) and up to two
//! partitions that heal. Each schedule runs in process until every honest validator decided
//! [`HEIGHTS_PER_SCHEDULE`] heights or [`SCHEDULE_LIMIT_NS`] of simulated time passed; any violation replays
//! exactly with `--replay k`.

use super::cluster::{Behaviour, Cluster, ClusterSpec, Conflict, NetModel, Partition, Protocol};
use crate::engine::{derive_seed, stream};
use gridtwin_firmware::app::Key;
use gridtwin_firmware::consensus::Config;
use gridtwin_firmware::ledger::Genesis;
use gridtwin_firmware::time::Duration;
use rand::RngExt;
use rayon::prelude::*;
use serde::Serialize;

/// Heights each schedule tries to decide.
pub const HEIGHTS_PER_SCHEDULE: u64 = 3;
/// Simulated time after which a schedule stops.
pub const SCHEDULE_LIMIT_NS: u64 = 120_000_000_000;

/// A safety violation found by a schedule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub schedule: u64,
    pub height: u64,
    pub culprits: Vec<u32>,
}

/// The outcome of a fuzz run (printed as JSON, exactly these keys).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FuzzSummary {
    pub schedules: u64,
    pub heights_committed: u64,
    pub conflicting_commits: u64,
    pub violations: Vec<Violation>,
}

/// One schedule's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleResult {
    pub index: u64,
    /// Highest height decided by an honest validator.
    pub heights: u64,
    pub conflicts: Vec<Conflict>,
    pub byzantine: Vec<(u32, Behaviour)>,
}

/// Deterministic validator key `i` of a fuzz cluster.
pub fn validator_key(i: usize) -> Key {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&derive_seed(0x0063_6861_696e, &[i as u64]).to_le_bytes());
    s[8] = 0xc4;
    Key::from_bytes(&s)
}

/// The cluster of schedule `index`.
pub fn schedule_spec(n: usize, f: usize, seed: u64, index: u64) -> ClusterSpec {
    let s = derive_seed(seed, &[index]);
    let mut rng = stream(s, 0, "chain-fuzz");
    let mut ids: Vec<usize> = (0..n).collect();
    for k in (1..n).rev() {
        let j = rng.random_range(0..=k);
        ids.swap(k, j);
    }
    let mut behaviour = vec![Behaviour::Honest; n];
    let coalition = rng.random::<f64>() < 0.6;
    for &b in ids.iter().take(f.min(n)) {
        behaviour[b] = if coalition {
            Behaviour::Equivocate
        } else {
            [
                Behaviour::Equivocate,
                Behaviour::WithholdVotes,
                Behaviour::Delay,
                Behaviour::ProposeInvalid,
                Behaviour::ForgeSignatures,
            ][rng.random_range(0..5)]
        };
    }
    let ms = 1_000_000u64;
    let lo = rng.random_range(1..=50) * ms;
    let net = NetModel {
        latency_min_ns: lo,
        latency_max_ns: lo + rng.random_range(0..=400) * ms,
        jitter_ns: rng.random_range(0..=300) * ms,
        loss: if rng.random::<f64>() < 0.5 { 0.0 } else { rng.random_range(0.0..0.2) },
    };
    let mut partitions = Vec::new();
    for _ in 0..rng.random_range(0..=2) {
        let start_ns = rng.random_range(0..20_000) * ms;
        let group = (0..n).map(|_| rng.random::<bool>()).collect();
        partitions.push(Partition { start_ns, end_ns: start_ns + rng.random_range(500..15_000) * ms, group });
    }
    let mut timeouts = Config::new([0; 32]);
    timeouts.timeout_propose = Duration::from_millis(1_000);
    ClusterSpec {
        keys: (0..n).map(validator_key).collect(),
        powers: vec![1; n],
        behaviour,
        net,
        partitions,
        timeouts,
        block_interval_ns: rng.random_range(0..=1_000) * ms,
        delay_max_ns: rng.random_range(100..=5_000) * ms,
        genesis: Genesis {
            chain_name: b"fuzz".to_vec(),
            app_name: b"null".to_vec(),
            validators: Vec::new(),
            app_state: Vec::new(),
        },
        seed: s,
        protocol: Protocol::Tendermint,
    }
}

/// Runs schedule `index`.
pub fn run_schedule(n: usize, f: usize, seed: u64, index: u64) -> Result<ScheduleResult, String> {
    let spec = schedule_spec(n, f, seed, index);
    let byzantine = spec
        .behaviour
        .iter()
        .enumerate()
        .filter(|(_, b)| **b != Behaviour::Honest)
        .map(|(i, b)| (i as u32, *b))
        .collect();
    let mut c = Cluster::new(spec, None)?;
    c.run_heights(HEIGHTS_PER_SCHEDULE, SCHEDULE_LIMIT_NS);
    Ok(ScheduleResult { index, heights: c.max_honest_height(), conflicts: c.conflicts(), byzantine })
}

/// Runs `schedules` schedules in parallel (results combined in schedule order, so threads change nothing).
pub fn fuzz(n: usize, f: usize, schedules: u64, seed: u64) -> Result<FuzzSummary, String> {
    if !(1..=256).contains(&n) {
        return Err(format!("--validators {n}: must be 1..=256"));
    }
    if f > n {
        return Err(format!("--byzantine {f}: more than the {n} validators"));
    }
    let results: Vec<Result<ScheduleResult, String>> =
        (0..schedules).into_par_iter().map(|k| run_schedule(n, f, seed, k)).collect();
    let mut s = FuzzSummary { schedules, heights_committed: 0, conflicting_commits: 0, violations: Vec::new() };
    for r in results {
        let r = r?;
        s.heights_committed += r.heights;
        s.conflicting_commits += r.conflicts.len() as u64;
        for c in r.conflicts {
            s.violations.push(Violation { schedule: r.index, height: c.height, culprits: c.culprits });
        }
    }
    Ok(s)
}
