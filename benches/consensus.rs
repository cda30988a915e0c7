//! Consensus and ledger benchmarks (`cargo bench --bench consensus`).
//!
//! - `fuzz_schedule_n7_f2`: one adversarial `chain fuzz` schedule of 7 validators, 2 Byzantine (what bounds
//!   fuzz throughput: schedules per second per core).
//! - `height_n31`: 31 honest validators on 50-300 ms links deciding 5 heights.
//! - `verify_commit_n31`: checking a commit of 21 precommit signatures over 31 validators.

use criterion::Criterion;
use gridtwin::chain::cluster::{Behaviour, Cluster, ClusterSpec, NetModel, Protocol};
use gridtwin::chain::fuzz::{run_schedule, validator_key};
use gridtwin_firmware::consensus::Config;
use gridtwin_firmware::ledger::{Block, Commit, CommitSig, Genesis, Header, Validator, ValidatorSet, Vote, VoteKind};
use std::hint::black_box;

fn cluster31(seed: u64) -> Cluster {
    let n = 31;
    let spec = ClusterSpec {
        keys: (0..n).map(validator_key).collect(),
        powers: vec![1; n],
        behaviour: vec![Behaviour::Honest; n],
        net: NetModel { latency_min_ns: 50_000_000, latency_max_ns: 300_000_000, jitter_ns: 0, loss: 0.0 },
        partitions: Vec::new(),
        timeouts: Config::new([0; 32]),
        block_interval_ns: 0,
        delay_max_ns: 0,
        genesis: Genesis {
            chain_name: b"bench".to_vec(),
            app_name: b"null".to_vec(),
            validators: Vec::new(),
            app_state: Vec::new(),
        },
        seed,
        protocol: Protocol::Tendermint,
    };
    Cluster::new(spec, None).expect("cluster")
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let mut k = 0u64;
    c.bench_function("fuzz_schedule_n7_f2", |b| {
        b.iter(|| {
            k += 1;
            black_box(run_schedule(7, 2, 1, k).expect("schedule"))
        })
    });
    c.bench_function("height_n31", |b| {
        b.iter(|| {
            let mut cl = cluster31(1);
            cl.run_heights(5, u64::MAX / 2);
            black_box(cl.min_honest_height())
        })
    });
    let keys: Vec<_> = (0..31).map(validator_key).collect();
    let vals =
        ValidatorSet::new(keys.iter().map(|k| Validator { key: k.verifying_key().to_bytes(), power: 1 }).collect())
            .unwrap();
    let chain = [1u8; 32];
    let block = Block::build(
        Header { height: 1, validators_hash: vals.hash(), ..Header::default() },
        vec![vec![1; 200]; 50],
        Vec::new(),
    );
    let sigs = (0..21u32)
        .map(|i| CommitSig {
            validator: i,
            signature: Vote::sign(&chain, &keys[i as usize], VoteKind::Precommit, 1, 0, Some(block.hash()), i)
                .signature,
        })
        .collect();
    let commit = Commit { height: 1, round: 0, block_hash: block.hash(), sigs };
    c.bench_function("verify_commit_n31", |b| b.iter(|| black_box(commit.verify(&chain, &vals).is_ok())));
    c.final_summary();
}
