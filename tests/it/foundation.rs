//! The foundation's contracts: bad input that never panics, always names a location and never leaves a
//! partial output directory (determinism of every shipped scenario and sweep is in `determinism.rs`).

use gridtwin::cli::{Global, run_to_dir};
use gridtwin::engine::{SimRng, stream};
use gridtwin::scenario::{Loaded, assets};
use rand::RngExt;
use std::path::{Path, PathBuf};

/// Longest simulated time a fuzzed variant of a small scenario would get; variants run "1min" at most.
const TEST_UNTIL: &str = "6h";
/// Simulated time for the large mesh studies (thousands of nodes), which cost minutes per simulated day.
const TEST_UNTIL_LARGE: &str = "5min";
/// Scenarios above 50,000 mesh nodes (the city).
const TEST_UNTIL_CITY: &str = "20s";

/// How long to run a shipped scenario in tests: large meshes get a short window that still covers joining,
/// routing and first reports.
fn test_until(l: &Loaded) -> &'static str {
    let nodes = crate::layout_mesh_nodes(l);
    // The city (10^5 nodes) gets a window that covers building, joining and the first reports' start; the
    // district and the small scenarios longer ones.
    if nodes > 50_000 {
        TEST_UNTIL_CITY
    } else if nodes > 1000 {
        TEST_UNTIL_LARGE
    } else {
        TEST_UNTIL
    }
}

/// Mutations that turn a valid scenario into bad input of every kind.
fn mutate(text: &str, rng: &mut SimRng) -> String {
    let b = text.as_bytes();
    let pick = |rng: &mut SimRng| {
        let mut i = rng.random_range(0..b.len().max(1));
        while i > 0 && !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    match rng.random_range(0..8) {
        0 => text[..pick(rng)].to_string(), // truncated
        1 => {
            // a number replaced by an out-of-range or mistyped value
            let nums: Vec<usize> = text
                .char_indices()
                .filter(|(i, c)| c.is_ascii_digit() && (*i == 0 || !b[i - 1].is_ascii_alphanumeric()))
                .map(|(i, _)| i)
                .collect();
            if nums.is_empty() {
                return text.to_string();
            }
            let s = nums[rng.random_range(0..nums.len())];
            let e = s + text[s..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_'))
                .unwrap_or(text.len() - s);
            let repl =
                ["-1", "0", "1e400", "99999999999999999999999", "\"x\"", "NaN", "-0.5", "4294967296", "true", "()"]
                    [rng.random_range(0..10)];
            format!("{}{}{}", &text[..s], repl, &text[e..])
        }
        2 => {
            // a string value replaced by a number or a bad duration
            let quotes: Vec<usize> = text.match_indices(": \"").map(|(i, _)| i + 2).collect();
            if quotes.is_empty() {
                return text.to_string();
            }
            let s = quotes[rng.random_range(0..quotes.len())];
            let e = s + 1 + text[s + 1..].find('"').unwrap_or(0) + 1;
            let repl =
                ["42", "\"-5min\"", "\"\"", "\"10 parsecs\"", "\"0s\"", "\"9999999d\"", "[]"][rng.random_range(0..7)];
            format!("{}{}{}", &text[..s], repl, &text[e..])
        }
        3 => {
            // a field name misspelt
            let names: Vec<usize> = text.match_indices(": ").map(|(i, _)| i).collect();
            if names.is_empty() {
                return text.to_string();
            }
            let i = names[rng.random_range(0..names.len())];
            format!("{}x{}", &text[..i], &text[i..])
        }
        4 => {
            let i = pick(rng);
            let j = (i + rng.random_range(1..20)).min(text.len());
            let mut j2 = j;
            while !text.is_char_boundary(j2) {
                j2 += 1;
            }
            format!("{}{}", &text[..i], &text[j2..]) // a chunk deleted
        }
        5 => {
            let i = pick(rng);
            let junk = ["(", ")", "[", "]", ",", ":", "\"", "/*", "Some(", "\u{0}", "é", "}"][rng.random_range(0..12)];
            format!("{}{}{}", &text[..i], junk, &text[i..])
        }
        6 => {
            // a duplicated line
            let lines: Vec<&str> = text.lines().collect();
            let k = rng.random_range(0..lines.len().max(1));
            let mut out: Vec<&str> = lines.clone();
            if let Some(l) = lines.get(k) {
                out.insert(k, l);
            }
            out.join("\n")
        }
        _ => {
            // an enum variant or model name misspelt
            let caps: Vec<usize> = text
                .char_indices()
                .filter(|(i, c)| c.is_ascii_uppercase() && *i > 0 && !b[i - 1].is_ascii_alphanumeric())
                .map(|(i, _)| i)
                .collect();
            if caps.is_empty() {
                return text.to_string();
            }
            let i = caps[rng.random_range(0..caps.len())];
            format!("{}Q{}", &text[..i], &text[i + 1..])
        }
    }
}

#[test]
fn bad_input_never_panics_always_locates_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = stream(2024, 0, "scenario-fuzz");
    let scenarios: Vec<(&str, &str)> = assets::embedded_scenarios().collect();
    let (mut rejected, mut ran) = (0, 0);
    for k in 0..1200 {
        let (rel, base) = scenarios[k % scenarios.len()];
        let text = mutate(base, &mut rng);
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
        let file = format!("{}#{k}", path.display());
        let outcome =
            Loaded::from_text(file.clone(), text.clone(), path.parent().map(Path::to_path_buf)).and_then(|l| {
                // Large meshes are validated, not built, to keep the test quick.
                if test_until(&l) != TEST_UNTIL {
                    l.validate()?;
                } else {
                    gridtwin::world::build(&l, 1, None)?;
                }
                Ok(l)
            });
        match outcome {
            Err(e) => {
                rejected += 1;
                assert!(e.line >= 1 && e.col >= 1 && !e.message.is_empty(), "variant {k}: {e}");
                assert!(e.to_string().starts_with(&format!("{}:", e.file)), "variant {k}: {e}");
            }
            Ok(l) => {
                // Accepted variants must run; a run cut short keeps the test fast. Every 10th only.
                if k % 10 == 0 && test_until(&l) == TEST_UNTIL {
                    let out = tmp.path().join(format!("ok-{k}"));
                    let g = Global { out: Some(out.clone()), quiet: true, ..Global::default() };
                    run_to_dir(&g, &l, Some("1min"))
                        .unwrap_or_else(|e| panic!("variant {k} accepted but failed to run: {e}\n{text}"));
                    assert!(out.join("summary.json").exists());
                    ran += 1;
                }
            }
        }
    }
    assert!(rejected >= 600, "only {rejected} of 1200 variants were rejected: the mutations are too mild");
    // Bad input through `run`: no output directory, no temporary left behind.
    for k in 0..200 {
        let (rel, base) = scenarios[k % scenarios.len()];
        let text = mutate(base, &mut rng);
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
        let Ok(l) = Loaded::from_text(format!("{}#run{k}", path.display()), text, path.parent().map(Path::to_path_buf))
        else {
            continue;
        };
        if test_until(&l) != TEST_UNTIL {
            continue;
        }
        let out = tmp.path().join(format!("bad-{k}"));
        let g = Global { out: Some(out.clone()), quiet: true, ..Global::default() };
        if run_to_dir(&g, &l, Some("1min")).is_err() {
            assert!(!out.exists(), "variant run{k}: a failed run left {}", out.display());
        }
    }
    let leftovers: Vec<PathBuf> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary directories left behind: {leftovers:?}");
    assert!(ran > 0);
}

#[test]
fn the_binary_checks_runs_and_reports_located_errors() {
    let bin = env!("CARGO_BIN_EXE_gridtwin");
    let root = env!("CARGO_MANIFEST_DIR");
    let ok =
        std::process::Command::new(bin).args(["check", "scenarios/default.ron"]).current_dir(root).output().unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.ron");
    std::fs::write(&bad, "Scenario(\n  name: \"x\",\n  seed: 1,\n  duration: \"1h\",\n  gateway: (uart_baud: 115200, report_every: \"15min\", wait_all_timeout: \"20min\"),\n)\n").unwrap();
    let out = tmp.path().join("o");
    let r = std::process::Command::new(bin).arg("run").arg(&bad).arg("--out").arg(&out).output().unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(2), "{err}");
    assert!(err.contains("bad.ron:5:") && err.contains("wait_all_timeout"), "{err}");
    assert!(!out.exists());
    let phold = std::process::Command::new(bin)
        .args(["bench", "phold", "--lps", "64", "--events-per-lp", "4", "--end-ns", "5000000000", "--verify"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&phold.stdout).unwrap();
    assert_eq!(v["reference_agrees"], true);
    assert_eq!(v["checksum"].as_str().unwrap().len(), 16);
}
