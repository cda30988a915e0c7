//! The command line as a user meets it, through the built binary: the exit-code table, quiet ends on closed
//! pipes, every error of a file reported, honest fault scoring over a window without the fault, checks made
//! before a run, the generated scenario reference, and generated argument lists that never panic and always
//! exit with a documented code.

use gridtwin::cli::{EXIT_BAD_INPUT, EXIT_CODES_HELP, EXIT_FAILED, EXIT_OK};
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gridtwin"));
    c.env_remove("GRIDTWIN_LOG").stdin(Stdio::null());
    c
}

fn run_in(dir: &Path, args: &[&str]) -> Output {
    bin().args(args).current_dir(dir).output().unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn kerber() -> String {
    root().join("scenarios/networks/kerber_landnetz_freileitung_1.json").display().to_string()
}

/// A scenario with a misspelt field: bad input.
const MISSPELT: &str = "Scenario(\n name: \"x\",\n duraton: \"1h\",\n)\n";

#[test]
fn exit_codes_follow_the_documented_table() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    std::fs::write(t.join("bad.ron"), MISSPELT).unwrap();
    std::fs::write(t.join("existing.txt"), "").unwrap();
    let bad = t.join("bad.ron").display().to_string();
    let default = root().join("scenarios/default.ron").display().to_string();
    let net = kerber();
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["--help"], EXIT_OK, "Exit codes:"),
        (vec!["--version"], EXIT_OK, ""),
        (vec!["run", "--until", "2 hours"], EXIT_BAD_INPUT, "unknown unit `hours`"),
        (vec!["run", "--until=-1h"], EXIT_BAD_INPUT, "never negative"),
        (vec!["run", "--until", "-1h"], EXIT_BAD_INPUT, "never negative"),
        (vec!["--until", "-5h"], EXIT_BAD_INPUT, "never negative"),
        (vec!["run", &bad], EXIT_BAD_INPUT, "did you mean `duration`?"),
        (vec!["check", &bad], EXIT_BAD_INPUT, "bad.ron:3:"),
        (vec!["check"], EXIT_BAD_INPUT, "FILE"),
        (vec!["check", "no/such/file.ron"], EXIT_BAD_INPUT, "no/such/file.ron"),
        (vec!["check", "--out", "o", &default], EXIT_BAD_INPUT, "unexpected argument '--out'"),
        (vec!["--seed", "3", "grid", "solve", &net], EXIT_BAD_INPUT, "`--seed` is not an option of `grid`"),
        (vec!["grid", "solve", "--seed", "3", &net], EXIT_BAD_INPUT, "--seed"),
        (vec!["grid", "solve", &bad], EXIT_BAD_INPUT, "bad.ron"),
        (vec!["grid", "short-circuit", "no/such.json"], EXIT_BAD_INPUT, "no/such.json"),
        (vec!["run", &default, "--out", "existing.txt"], EXIT_BAD_INPUT, "not a gridtwin output directory"),
        (vec!["run", &default, "--out", "existing.txt/sub"], EXIT_BAD_INPUT, "is a file"),
        (vec!["sweep", &default], EXIT_BAD_INPUT, ""),
        (vec!["bench", "phold", "--lps", "0"], EXIT_BAD_INPUT, "--lps"),
        (vec!["frobnicate"], EXIT_BAD_INPUT, "unrecognized subcommand"),
        (vec!["run", "--threads", "0"], EXIT_BAD_INPUT, "--threads"),
        (vec!["--threads", "2", "grid", "solve", &net], EXIT_BAD_INPUT, "`--threads` is not an option of `grid`"),
        (vec!["--threads", "2", "run", "--threads", "1"], EXIT_BAD_INPUT, "`--threads` is given twice"),
        (vec!["check", "--threads", "2", &default], EXIT_BAD_INPUT, "unexpected argument '--threads'"),
        (vec!["grid", "solve", &net, "--out", "pf.csv"], EXIT_OK, ""),
    ];
    for (args, want, says) in cases {
        let o = run_in(t, &args);
        let err = text(&o.stderr);
        assert_eq!(code(&o), want, "gridtwin {args:?}: stderr {err}");
        assert!(err.contains(says) || text(&o.stdout).contains(says), "gridtwin {args:?} should say {says:?}: {err}");
        assert!(!err.contains("panicked"), "gridtwin {args:?} panicked: {err}");
    }
    assert!(t.join("pf.csv").exists());
    // Colour only on a terminal: an error into a pipe has no escape codes.
    let o = run_in(t, &["-v", "check", &bad]);
    assert!(!text(&o.stderr).contains('\u{1b}'), "ANSI codes in a pipe: {:?}", text(&o.stderr));
}

#[test]
fn the_readme_documents_the_exit_code_table() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(readme.contains(EXIT_CODES_HELP), "README.md must carry the exit-code table:\n{EXIT_CODES_HELP}");
    assert_eq!((EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT), (0, 1, 2));
}

#[test]
fn a_closed_pipe_is_a_quiet_normal_end() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("bad.ron"), MISSPELT).unwrap();
    // The reader of stderr (`run bad.ron 2>&1 | head -1`) goes away before the error is written.
    let mut c = bin().args(["run", "bad.ron"]).current_dir(tmp.path()).stderr(Stdio::piped()).spawn().unwrap();
    drop(c.stderr.take());
    assert_eq!(c.wait().unwrap().code(), Some(EXIT_BAD_INPUT), "closed stderr");
    // The reader of stdout goes away before the data is written (`grid short-circuit NET | head -1`,
    // `schema | head -1`): exit 0, nothing on stderr.
    for args in [vec!["grid".to_string(), "short-circuit".into(), kerber()], vec!["schema".into()]] {
        let mut c = bin().args(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        drop(c.stdout.take());
        let o = c.wait_with_output().unwrap();
        assert_eq!(code(&o), EXIT_OK, "{args:?}: {}", text(&o.stderr));
        assert!(o.stderr.is_empty(), "{args:?}: {}", text(&o.stderr));
    }
}

#[test]
fn every_error_of_a_file_is_reported_in_file_order() {
    let tmp = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(root().join("scenarios/default.ron")).unwrap();
    // The same unit mistake in `lmus` (a checked value) and in `gateway` (a parsed duration), plus a
    // misspelt field further down.
    let scenario = base
        .replacen("report_spread: \"10s\"", "report_spread: \"10 secs\"", 1)
        .replacen("uplink_latency: \"120ms\"", "uplink_latency: \"120 msec\"", 1)
        .replacen(
            "        wait_all_timeout: \"30s\",",
            "        wait_all_timeout: \"30s\",\n        uart_bauds: 9600,",
            1,
        );
    let path = tmp.path().join("networks");
    std::fs::create_dir(&path).unwrap();
    std::fs::copy(
        root().join("scenarios/networks/kerber_landnetz_freileitung_1.json"),
        path.join("kerber_landnetz_freileitung_1.json"),
    )
    .unwrap();
    std::fs::write(tmp.path().join("two.ron"), &scenario).unwrap();
    let o = run_in(tmp.path(), &["check", "two.ron"]);
    let err = text(&o.stderr);
    assert_eq!(code(&o), EXIT_BAD_INPUT, "{err}");
    let at = |needle: &str| err.find(needle).unwrap_or_else(|| panic!("{needle:?} not reported:\n{err}"));
    let (l, u, g) = (at("report_spread"), at("uart_bauds"), at("`gateway.uplink_latency`"));
    assert!(l < u && u < g, "errors not in file order:\n{err}");
    assert!(err.contains("3 errors"), "{err}");
}

#[test]
fn a_network_error_is_located_at_its_element_in_the_json() {
    let tmp = tempfile::tempdir().unwrap();
    let mut j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(kerber()).unwrap()).unwrap();
    j["lines"][3]["length_km"] = (-0.021).into();
    let pretty = serde_json::to_string_pretty(&j).unwrap();
    let line = pretty[..pretty.find("-0.021").unwrap()].matches('\n').count() + 1;
    std::fs::write(tmp.path().join("net.json"), pretty).unwrap();
    let o = run_in(tmp.path(), &["grid", "solve", "net.json"]);
    let err = text(&o.stderr);
    assert_eq!(code(&o), EXIT_BAD_INPUT, "{err}");
    assert!(err.contains(&format!("net.json:{line}:")) && err.contains("lines[3]"), "{err}");
}

#[test]
fn a_sweep_plan_error_is_located_at_the_plans_value() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(root().join("scenarios/default.ron"), tmp.path().join("base.ron")).unwrap();
    let net = tmp.path().join("networks");
    std::fs::create_dir(&net).unwrap();
    std::fs::copy(kerber(), net.join("kerber_landnetz_freileitung_1.json")).unwrap();
    let plan = "Sweep(\n name: \"p\",\n base: \"base.ron\",\n seed: 1,\n blocks: [[\n  Axis(path: \"gateway.uart_baud\", values: [\"9600\", \"0\"]),\n ]],\n)\n";
    std::fs::write(tmp.path().join("plan.ron"), plan).unwrap();
    let o = run_in(tmp.path(), &["check", "plan.ron"]);
    let err = text(&o.stderr);
    assert_eq!(code(&o), EXIT_BAD_INPUT, "{err}");
    assert!(err.contains("plan.ron:6:") && err.contains("point 1 of block 0"), "{err}");
    assert!(!err.contains("[block 0, point"), "{err}");
}

#[test]
fn a_run_that_ends_before_its_fault_scores_nothing_and_out_is_checked_first() {
    let tmp = tempfile::tempdir().unwrap();
    let o = run_in(tmp.path(), &["run", "--until", "2h", "--out", "short", "-q"]);
    let out = text(&o.stdout);
    assert_eq!(code(&o), EXIT_OK, "{}", text(&o.stderr));
    assert!(out.contains("located correctly n/a %") && out.contains("1 scheduled after the end"), "{out}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("short/summary.json")).unwrap()).unwrap();
    let f = &s["faults"];
    assert!(f["located_correct_pct"].is_null() && f["trip_ms_max"].is_null(), "{f}");
    assert_eq!(f["events"].as_array().unwrap().len(), 0);
    assert_eq!(f["scheduled_after_end"], 1);
    // Zero simulated time: no report was generated, so no delivery ratio either.
    let o = run_in(tmp.path(), &["run", "--until", "0s", "--out", "zero", "-q"]);
    assert_eq!(code(&o), EXIT_OK, "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("PDR n/a"), "{}", text(&o.stdout));
    // An unusable --out is refused before anything runs, and nothing is written.
    std::fs::write(tmp.path().join("taken"), "").unwrap();
    let o = run_in(tmp.path(), &["run", "--out", "taken"]);
    assert_eq!(code(&o), EXIT_BAD_INPUT);
    assert!(o.stdout.is_empty());
    assert_eq!(std::fs::read(tmp.path().join("taken")).unwrap(), b"");
}

#[test]
fn the_scenario_reference_is_current() {
    let path = root().join("docs/scenario.md");
    let generated = gridtwin::scenario::reference::MARKDOWN;
    if std::env::var_os("GRIDTWIN_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("{generated}\n")).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in.trim_end() == generated.trim_end(),
        "docs/scenario.md is stale: regenerate it with `GRIDTWIN_BLESS=1 cargo test --test it reference`"
    );
    let o = bin().arg("schema").output().unwrap();
    assert_eq!(text(&o.stdout).trim_end(), generated.trim_end());
}

/// Generated argument lists: every subcommand, unknown flags, bad durations and paths, in seeded random
/// combinations. None may panic; each must exit 0, 1 or 2.
#[test]
fn generated_argument_lists_never_panic_and_exit_with_a_documented_code() {
    use rand::RngExt;
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    std::fs::write(t.join("bad.ron"), MISSPELT).unwrap();
    std::fs::write(t.join("file.txt"), "not a scenario").unwrap();
    std::fs::create_dir(t.join("dir")).unwrap();
    let default = root().join("scenarios/default.ron").display().to_string();
    let net = kerber();
    let commands: Vec<Vec<String>> = vec![
        vec![],
        vec!["run".into()],
        vec!["run".into(), default.clone()],
        vec!["check".into()],
        vec!["check".into(), default.clone()],
        vec!["sweep".into()],
        vec!["bench".into(), "phold".into(), "--end-ns".into(), "1000000".into()],
        vec!["bench".into()],
        vec!["grid".into(), "solve".into(), net.clone()],
        vec!["grid".into(), "short-circuit".into(), net.clone()],
        vec!["grid".into()],
        vec!["schema".into()],
        vec!["help".into()],
    ];
    let paths = ["bad.ron", "file.txt", "dir", "no/such/thing.ron", "", "-", "dir/x/y.csv", "file.txt/x"];
    let durations = ["1s", "0s", "-1h", "2 hours", "", "h", "5", "1.5.2s", "99999999999999999999d", "1 fortnight"];
    let flags = ["--until", "--out", "--seed", "--threads", "--lps", "--repeat", "--timing-out", "--unbalanced"];
    let values = ["0", "-1", "x", "18446744073709551616", "3", "1"];
    let mut rng = gridtwin::engine::stream(7, 0, "cli-fuzz");
    let mut codes = [0usize; 3];
    for case in 0..100 {
        let mut args: Vec<String> = commands[rng.random_range(0..commands.len())].clone();
        for _ in 0..rng.random_range(0..4usize) {
            match rng.random_range(0..6u32) {
                0 => args.extend(["--until".into(), durations[rng.random_range(0..durations.len())].into()]),
                1 => args.extend(["--out".into(), paths[rng.random_range(0..paths.len())].into()]),
                2 => args.push(paths[rng.random_range(0..paths.len())].into()),
                3 => args.push(format!("--no-such-flag-{}", rng.random_range(0..3u32))),
                4 => args.extend([
                    flags[rng.random_range(0..flags.len())].into(),
                    values[rng.random_range(0..values.len())].into(),
                ]),
                _ => args.push(["-v", "-q", "-vv", "--quiet"][rng.random_range(0..4usize)].into()),
            }
        }
        // Keep real runs short: a scenario that parses runs a simulated second.
        let runs = args.first().is_none_or(|a| a == "run" || a.starts_with('-'));
        if runs && !args.iter().any(|a| a == "--until") {
            args.extend(["--until".into(), "1s".into()]);
        }
        let o = bin().args(&args).current_dir(t).output().unwrap();
        let err = text(&o.stderr);
        let c = code(&o);
        assert!((0..=2).contains(&c), "case {case}: gridtwin {args:?} exited {c}: {err}");
        assert!(!err.contains("panicked"), "case {case}: gridtwin {args:?} panicked: {err}");
        codes[c as usize] += 1;
    }
    // The generator reaches both successes and bad input.
    assert!(codes[0] > 0 && codes[2] > 0, "codes {codes:?}");
}

#[test]
fn grid_detail_and_cloud_readings_are_written_per_element() {
    let tmp = tempfile::tempdir().unwrap();
    let path = root().join("scenarios/default.ron");
    let text = std::fs::read_to_string(&path).unwrap().replacen(
        "    gateway: (",
        "    outputs: (grid_detail: (every: \"15min\")),\n    gateway: (",
        1,
    );
    let l = gridtwin::scenario::Loaded::from_text(path.display().to_string(), text, Some(root().join("scenarios")))
        .unwrap();
    let out = tmp.path().join("o");
    let g = gridtwin::cli::Global { out: Some(out.clone()), quiet: true, ..Default::default() };
    gridtwin::cli::run_to_dir(&g, &l, Some("1h")).unwrap();
    let read = |name: &str| {
        let mut r = csv::Reader::from_path(out.join(name)).unwrap();
        let h: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
        let rows: Vec<Vec<String>> = r.records().map(|x| x.unwrap().iter().map(String::from).collect()).collect();
        (h, rows)
    };
    let net = gridtwin::grid::network::Network::from_json_file(
        &root().join("scenarios/networks/kerber_landnetz_freileitung_1.json"),
    )
    .unwrap();
    let (h, rows) = read("grid_bus_voltage_pu.csv");
    assert_eq!(h.len(), 1 + net.buses.len());
    // Samples at 0, 15, 30, 45 and 60 min.
    assert_eq!(rows.iter().map(|r| r[0].as_str()).collect::<Vec<_>>(), ["0", "900", "1800", "2700", "3600"]);
    for r in &rows {
        for v in &r[1..] {
            let v: f64 = v.parse().unwrap();
            assert!((0.9..1.1).contains(&v), "bus voltage {v} p.u.");
        }
    }
    let (h, rows) = read("grid_branch_loading_pct.csv");
    assert_eq!(h.len(), 1 + net.lines.len() + net.trafos.len());
    assert!(h.iter().any(|c| c.starts_with('t')) && h.iter().any(|c| c.starts_with('l')));
    let trafo = h.iter().position(|c| c.starts_with('t') && c != "t_s").unwrap();
    let x: f64 = rows[2][trafo].parse().unwrap();
    assert!(x > 0.0 && x < 100.0, "transformer loading {x} %");
    // The cloud's readings: one per LMU per reporting interval, grouped by LMU.
    let (h, rows) = read("readings.csv");
    assert_eq!(h[..4], ["lmu_id", "seq", "taken_at_s", "received_at_s"]);
    assert!(!rows.is_empty());
    let lmus: Vec<u32> = rows.iter().map(|r| r[0].parse().unwrap()).collect();
    assert!(lmus.windows(2).all(|w| w[0] <= w[1]), "not grouped by LMU");
}

/// `grid solve --four-wire` prints the 4-wire solution per bus (the values the OpenDSS comparison in
/// `grid::fourwire` checks), and a broken neutral shifts the customers beyond it; a line that does not exist
/// is refused naming the option.
#[test]
fn grid_solve_four_wire_prints_phase_and_neutral_voltages() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let net = "tests/data/fourwire/kerber_landnetz_fourwire.network.json";
    let rows = |args: &[&str]| -> Vec<Vec<f64>> {
        let o = run_in(root, args);
        assert_eq!(code(&o), EXIT_OK, "{}", text(&o.stderr));
        let out = text(&o.stdout);
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some("index,u_an_pu,u_bn_pu,u_cn_pu,u_ne_pu"));
        lines.map(|l| l.split(',').skip(1).map(|v| v.parse::<f64>().unwrap()).collect()).collect()
    };
    let healthy = rows(&["grid", "solve", "--four-wire", net]);
    let broken = rows(&["grid", "solve", "--four-wire", "--broken-neutral", "5", net]);
    assert_eq!(healthy.len(), 15, "every bus gets a row");
    assert!(healthy[0].iter().all(|v| v.is_nan()), "the HV bus has no 4-wire voltages");
    let last = healthy.len() - 1;
    for r in &healthy[1..] {
        assert!(r[..3].iter().all(|u| (0.9..1.1).contains(u)) && r[3] < 0.05, "healthy row {r:?}");
    }
    // Beyond the break the neutral floats: one phase swells far above the band, the others sag.
    let b = &broken[last];
    assert!(b[1] > 1.3 && b[0] < 0.9 && b[2] < 0.9 && b[3] > 0.2, "broken neutral row {b:?}");
    // Before the break (bus 1) the voltages barely move.
    assert!((broken[1][1] - healthy[1][1]).abs() < 0.05, "{:?} vs {:?}", broken[1], healthy[1]);
    let o = run_in(root, &["grid", "solve", "--four-wire", "--broken-neutral", "99", net]);
    assert_eq!(code(&o), EXIT_BAD_INPUT);
    // (The report wraps long lines, so look for words that stay together.)
    let err = text(&o.stderr);
    assert!(err.contains("neutral 99") && err.contains("13 lines"), "{err}");
}

/// `timing.json` splits the run's wall time by simulated time: 200 slices from the first step to the end, the
/// simulated time, wall time and delivered events never decreasing, the last slice at the run's end with all
/// its events (the summary's count).
#[test]
fn timing_json_splits_the_run_by_simulated_time() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("o");
    let o = run_in(tmp.path(), &["run", "--until", "10min", "--out", out.to_str().unwrap()]);
    assert_eq!(code(&o), EXIT_OK, "{}", text(&o.stderr));
    let read = |f: &str| -> serde_json::Value { serde_json::from_slice(&std::fs::read(out.join(f)).unwrap()).unwrap() };
    let (timing, summary) = (read("timing.json"), read("summary.json"));
    let slices = timing["slices"].as_array().unwrap();
    assert_eq!(slices.len(), 200);
    let field = |s: &serde_json::Value, k: &str| s[k].as_f64().unwrap();
    assert!((field(&slices[0], "sim_s") - 3.0).abs() < 1e-9, "{}", slices[0]);
    for w in slices.windows(2) {
        for k in ["sim_s", "wall_s", "events"] {
            assert!(field(&w[1], k) >= field(&w[0], k), "{k} decreased: {} then {}", w[0], w[1]);
        }
    }
    let last = slices.last().unwrap();
    assert!((field(last, "sim_s") - 600.0).abs() < 1e-9, "{last}");
    assert_eq!(last["events"], summary["events"]);
    assert!(field(last, "wall_s") <= field(&timing, "run_s") + 1e-9);
}

/// A `nan` in the short-circuit table comes with its reason on stderr: behind a YNd transformer the LV buses have
/// no zero-sequence path to earth (no single-phase result), and a bus cut off by an open switch has no result at
/// all; each note names the first such bus.
#[test]
fn short_circuit_says_why_a_bus_has_no_result() {
    let tmp = tempfile::tempdir().unwrap();
    let mut j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(kerber()).unwrap()).unwrap();
    j["trafos"][0]["vector_group"] = "YNd5".into();
    std::fs::write(tmp.path().join("ynd.json"), j.to_string()).unwrap();
    let o = run_in(tmp.path(), &["grid", "short-circuit", "ynd.json", "--out", "sc.csv"]);
    let err = text(&o.stderr);
    assert_eq!(code(&o), 0, "{err}");
    let csv = std::fs::read_to_string(tmp.path().join("sc.csv")).unwrap();
    let lv = csv.lines().filter(|l| l.ends_with(",nan,nan")).count();
    assert!(lv > 0 && err.contains(&format!("{lv} bus(es) without a zero-sequence path to earth")), "{err}\n{csv}");
    assert!(!err.contains("reached by no source"), "{err}");
    // A SimBench grid with four switches opened (a random variant): its cut-off buses have no result at all.
    let cut = root().join("tests/data/grid/rand_10_8_groups/network.json");
    let o = run_in(tmp.path(), &["grid", "short-circuit", cut.to_str().unwrap(), "--out", "cut.csv"]);
    let csv = std::fs::read_to_string(tmp.path().join("cut.csv")).unwrap();
    let cut_off = csv.lines().filter(|l| l.ends_with(",nan,nan,nan,nan,nan,nan")).count();
    assert!(cut_off > 0, "{csv}");
    assert!(text(&o.stderr).contains(&format!("{cut_off} bus(es) reached by no source")), "{}", text(&o.stderr));
    let o = run_in(tmp.path(), &["grid", "solve", cut.to_str().unwrap(), "--out", "cut-pf.csv"]);
    let csv = std::fs::read_to_string(tmp.path().join("cut-pf.csv")).unwrap();
    let dark = csv.lines().filter(|l| l.ends_with(",nan,nan")).count();
    assert!(
        dark == cut_off && text(&o.stderr).contains(&format!("{dark} bus(es) reached by no slack")),
        "{}",
        text(&o.stderr)
    );
    // The Dyn original: every bus has every result, and nothing is said.
    let o = run_in(tmp.path(), &["grid", "short-circuit", &kerber(), "--out", "dyn.csv"]);
    assert!(!text(&o.stderr).contains("note:"), "{}", text(&o.stderr));
}
