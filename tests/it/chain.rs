//! The private chain's contracts: safety at f Byzantine of n = 3f + 1 and an accountable violation at f + 1
//! (`chain fuzz`), tamper evidence of the stored ledger (single-bit flips in every file), and bad
//! transactions and validator sets refused with reasons.

use gridtwin::chain::fuzz::{fuzz, run_schedule};
use gridtwin::chain::store::verify_dir;
use gridtwin::cli::{Global, run_to_dir};
use gridtwin::engine::stream;
use gridtwin::scenario::Loaded;
use rand::RngExt;
use std::path::{Path, PathBuf};

#[test]
fn f_byzantine_of_3f_plus_1_never_commit_conflicting_blocks() {
    let s = fuzz(4, 1, 150, 7).unwrap();
    assert_eq!((s.schedules, s.conflicting_commits), (150, 0), "{:?}", s.violations);
    assert!(s.heights_committed >= 150 * 2, "too few heights: {}", s.heights_committed);
    let s = fuzz(7, 2, 40, 8).unwrap();
    assert_eq!(s.conflicting_commits, 0, "{:?}", s.violations);
    assert!(s.heights_committed > 0);
}

#[test]
fn f_plus_1_byzantine_break_safety_and_the_culprits_are_named_and_replay() {
    let s = fuzz(4, 2, 60, 3).unwrap();
    assert!(!s.violations.is_empty(), "no violation found with 2 Byzantine of 4");
    assert_eq!(s.conflicting_commits as usize, s.violations.len());
    for v in &s.violations {
        let r = run_schedule(4, 2, 3, v.schedule).unwrap();
        let byz: Vec<u32> = r.byzantine.iter().map(|b| b.0).collect();
        assert!(!v.culprits.is_empty(), "{v:?}");
        assert!(v.culprits.iter().all(|c| byz.contains(c)), "an honest validator blamed: {v:?} vs {byz:?}");
        // Replaying the schedule gives the same violation.
        assert!(r.conflicts.iter().any(|c| c.height == v.height && c.culprits == v.culprits));
    }
}

fn chain_day() -> Loaded {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/chain-day.ron");
    Loaded::from_file(&p).unwrap()
}

fn files_under(d: &Path, v: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(d).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() { files_under(&p, v) } else { v.push(p) }
    }
}

#[test]
fn every_single_bit_flip_in_every_ledger_file_is_detected_and_named() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let g = Global { out: Some(out.clone()), quiet: true, ..Global::default() };
    let (report, _, _) = run_to_dir(&g, &chain_day(), Some("3min")).unwrap();
    let v = verify_dir(&out).unwrap();
    assert!(v.blocks >= 10, "only {} blocks", v.blocks);
    assert_eq!(report.summary["ledger"]["blocks"], v.blocks);
    let mut files = Vec::new();
    files_under(&out.join("ledger"), &mut files);
    files.sort();
    assert_eq!(files.len() as u64, v.blocks + 2, "genesis, head and the blocks");
    let mut rng = stream(99, 0, "bit-flips");
    let mut flips = 0;
    for (k, f) in files.iter().enumerate() {
        let orig = std::fs::read(f).unwrap();
        // One flip in every file, more in genesis and the first and last blocks.
        let n = if k < 2 || k + 1 == files.len() { 12 } else { 1 };
        for _ in 0..n {
            let i = rng.random_range(0..orig.len());
            let mut b = orig.clone();
            b[i] ^= 1 << rng.random_range(0..8);
            std::fs::write(f, &b).unwrap();
            let e = verify_dir(&out).expect_err(&format!("flip at byte {i} of {} undetected", f.display()));
            let name = f.file_name().unwrap().to_string_lossy().to_string();
            // The first bad place is this file, or (for genesis, which every block hashes) block 1.
            assert!(e.contains(&name) || (name == "genesis.bin" && e.contains("00000001.bin")), "{e}");
            flips += 1;
        }
        std::fs::write(f, &orig).unwrap();
    }
    assert!(flips > files.len());
    verify_dir(&out).unwrap();
    // A truncated ledger (the last block removed) does not match its head record.
    let last = files.iter().rfind(|f| f.to_string_lossy().contains("blocks")).unwrap().clone();
    let kept = std::fs::read(&last).unwrap();
    std::fs::remove_file(&last).unwrap();
    let e = verify_dir(&out).unwrap_err();
    assert!(e.contains("head.bin"), "{e}");
    std::fs::write(&last, kept).unwrap();
    verify_dir(&out).unwrap();
    // A stray file is not part of an intact ledger.
    std::fs::write(out.join("ledger/blocks/notes.txt"), b"x").unwrap();
    assert!(verify_dir(&out).is_err());
}

#[test]
fn bad_transactions_are_refused_with_a_reason_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let g = Global { out: Some(tmp.path().join("r")), quiet: true, ..Global::default() };
    let (report, _, _) = run_to_dir(&g, &chain_day(), Some("3min")).unwrap();
    let l = &report.summary["ledger"];
    let by = l["refused_by_reason"].as_object().unwrap();
    for reason in [
        "bad signature",
        "unknown or revoked signer",
        "nonce not above the signer's last",
        "not permitted for the signer's role",
    ] {
        assert!(by.get(reason).and_then(|v| v.as_u64()).unwrap_or(0) > 0, "no `{reason}` refusal: {by:?}");
    }
    assert!(l["transactions"].as_u64().unwrap() > 0);
    let c = &report.summary["consensus"];
    assert_eq!(c["conflicting_commits"], 0);
    assert!(c["finality_ms_p99"].as_f64().unwrap() > 0.0);
}

#[test]
fn duplicate_validator_keys_and_zero_power_are_rejected_with_their_location() {
    let base = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/chain-day.ron")).unwrap();
    let dup = base.replace("(name: \"dso\")", "(name: \"dso\", key_seed: \"operator-a\")");
    let l = Loaded::from_text("dup.ron".into(), dup.clone(), None).unwrap();
    let e = l.validate().unwrap_err();
    assert!(e.message.contains("chain.validators[2].key_seed") && e.message.contains("same key"), "{e}");
    let line = dup.lines().position(|x| x.contains("key_seed: \"operator-a\"")).unwrap() + 1;
    assert_eq!(e.line, line, "{e}");
    let zero = base.replace("(name: \"coop-1\")", "(name: \"coop-1\", power: 0)");
    let e = Loaded::from_text("zero.ron".into(), zero, None).unwrap().validate().unwrap_err();
    assert!(e.message.contains("chain.validators[3].power") && e.message.contains("zero voting power"), "{e}");
}

fn finality_cluster(
    n: usize,
    loss: f64,
    protocol: gridtwin::chain::cluster::Protocol,
    seed: u64,
) -> gridtwin::chain::cluster::Cluster {
    use gridtwin::chain::cluster::{Behaviour, Cluster, ClusterSpec, NetModel};
    let spec = ClusterSpec {
        keys: (0..n).map(gridtwin::chain::fuzz::validator_key).collect(),
        powers: vec![1; n],
        behaviour: vec![Behaviour::Honest; n],
        net: NetModel { latency_min_ns: 50_000_000, latency_max_ns: 300_000_000, jitter_ns: 0, loss },
        partitions: Vec::new(),
        timeouts: gridtwin_firmware::consensus::Config::new([0; 32]),
        block_interval_ns: 0,
        delay_max_ns: 0,
        genesis: gridtwin_firmware::ledger::Genesis {
            chain_name: b"loss".to_vec(),
            app_name: b"null".to_vec(),
            validators: Vec::new(),
            app_state: Vec::new(),
        },
        seed,
        protocol,
    };
    Cluster::new(spec, None).unwrap()
}

#[test]
fn under_ten_percent_loss_laggards_catch_up_and_poa_keeps_finalising() {
    use gridtwin::chain::cluster::Protocol;
    // Tendermint: every validator decides every height within a few seconds (catch-up of commits).
    let mut c = finality_cluster(13, 0.1, Protocol::Tendermint, 5);
    c.run_heights(40, 120_000_000_000);
    assert_eq!(c.min_honest_height(), 40, "Tendermint stalled under loss");
    let mut f = c.finality_ns();
    f.sort_unstable();
    let p99 = f[(f.len() - 1) * 99 / 100];
    assert!(p99 < 5_000_000_000, "p99 finality {} ms", p99 / 1_000_000);
    // PoA: stale fork blocks do not hold back the honest chain.
    let mut c = finality_cluster(13, 0.1, Protocol::Poa { step_ms: 1000 }, 5);
    c.run_heights(40, 600_000_000_000);
    assert_eq!(c.min_honest_height(), 40, "PoA stalled under loss");
}

#[test]
fn verifying_ahead_on_a_second_thread_changes_no_decision() {
    use gridtwin::chain::cluster::Protocol;
    // The same lossy cluster with votes verified inline and ahead: every decision (block, time, round) equal.
    let run = |ahead: bool| {
        let mut c = finality_cluster(10, 0.05, Protocol::Tendermint, 9);
        if ahead {
            c.verify_ahead();
        }
        c.run_heights(15, 120_000_000_000);
        assert_eq!(c.min_honest_height(), 15);
        c.decisions
            .iter()
            .flat_map(|(h, ds)| ds.iter().map(move |d| (*h, d.node, d.hash, d.time_ns, d.round)))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(false), run(true));
}
