//! Security of the field: the attack scenario with frame security on and off, bad keys at `check`, and the
//! theft scenario with its false-alarm rate on honest days.

use gridtwin::scenario::Loaded;
use serde_json::Value;

fn load(file: &str, edit: &[(&str, &str)]) -> Loaded {
    let base = Loaded::from_file(std::path::Path::new(file)).unwrap();
    let mut text = base.text.clone();
    for (path, v) in edit {
        text = gridtwin::scenario::ron_path::replace(&text, path, v).unwrap();
    }
    Loaded::from_text(file.into(), text, base.base_dir.clone()).unwrap()
}

fn run(file: &str, edit: &[(&str, &str)]) -> Value {
    gridtwin::sweep::run_one(&load(file, edit), 16).unwrap()
}

fn run_seed(file: &str, seed: u64) -> Value {
    gridtwin::sweep::run_one(&load(file, &[]), seed).unwrap()
}

#[test]
fn attack_is_refused_with_security_and_does_damage_without() {
    let on = run("scenarios/attack.ron", &[]);
    let s = &on["security"];
    assert!(s["frames_forged"].as_u64().unwrap() > 50, "{s}");
    assert!(s["frames_replayed"].as_u64().unwrap() > 10, "{s}");
    assert_eq!(s["forged_accepted"], 0, "{s}");
    assert_eq!(s["replayed_accepted"], 0, "{s}");
    assert_eq!(s["contactor_ops_by_attacker"], 0, "{s}");
    assert_eq!(s["customers_interrupted_by_attack"], 0, "{s}");
    assert_eq!(on["faults"]["located_correct_pct"], 100.0, "{}", on["faults"]);
    // Every refused frame is counted by reason.
    let refused: u64 = s["refused"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(refused, s["frames_refused"].as_u64().unwrap(), "{s}");
    assert!(s["flisr_bytes_sent"].as_u64().unwrap() > s["flisr_bytes_plain"].as_u64().unwrap());

    let off = run("scenarios/attack.ron", &[("security.enabled", "false")]);
    let s = &off["security"];
    assert!(s["forged_accepted"].as_u64().unwrap() > 0, "{s}");
    assert!(s["contactor_ops_by_attacker"].as_u64().unwrap() > 0, "{s}");
    assert!(s["customers_interrupted_by_attack"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(s["flisr_bytes_sent"], s["flisr_bytes_plain"], "{s}");
}

#[test]
fn misconfigured_keys_are_rejected_naming_the_field() {
    for (edit, needle) in [
        (("security.keys", r#"Group(index: 0, key: "3f9a1c7e")"#), "security.keys.key"),
        (("security.keys", r#"Group(index: 0, key: "00000000000000000000000000000000")"#), "trivial"),
        (("security.keys", r#"Group(index: 0, key: "zz9a1c7e5b2d48a6c0e1f2d3b4a59687")"#), "hex digit"),
    ] {
        let l = load("scenarios/attack.ron", &[edit]);
        let err = l.validate().expect_err("bad key rejected");
        let text = format!("{err:?}");
        assert!(text.contains(needle), "{needle}: {text}");
    }
    let l = load("scenarios/attack.ron", &[("security.removed", "[(lmu: 99, at: \"1s\")]")]);
    let err = gridtwin::world::build(&l, 1, None).err().expect("unknown LMU rejected");
    assert!(err.message.contains("security.removed[0].lmu"), "{}", err.message);
}

#[test]
fn a_compromised_broker_and_lmu_move_no_contactor_with_security_and_do_damage_without() {
    let on = run("scenarios/attack-insider.ron", &[]);
    let s = &on["security"];
    let c = &s["commands"];
    assert_eq!(c["signed"], true, "{c}");
    assert!(c["injected"].as_u64().unwrap() > 10 && c["altered"].as_u64().unwrap() > 0, "{c}");
    assert!(c["replayed"].as_u64().unwrap() > 0, "{c}");
    assert_eq!(c["malicious_accepted"], 0, "{c}");
    assert_eq!(s["injected_commands_accepted"], 0, "{s}");
    // Every injected and altered command reached an LMU and was refused, by reason.
    let by = &c["refused_by"];
    assert!(by["unsigned"].as_u64().unwrap() > 0 && by["bad_signature"].as_u64().unwrap() > 0, "{c}");
    assert!(by["replayed"].as_u64().unwrap() > 0, "{c}");
    assert_eq!(c["genuine_accepted"], c["issued"], "{c}");
    let x = &s["insider"];
    assert_eq!(x["opens_obeyed"], 0, "{x}");
    assert!(x["opens_refused_no_evidence"].as_u64().unwrap() > 0, "{x}");
    assert!(x["frames_refused_after_revocation"].as_u64().unwrap() > 0, "{x}");
    assert!(x["readings_faked"].as_u64().unwrap() > 0, "{x}");
    assert_eq!(s["contactor_ops_by_attacker"], 0, "{s}");
    assert_eq!(s["customers_interrupted_by_attack"], 0, "{s}");
    assert_eq!(on["faults"]["located_correct_pct"], 100.0, "{}", on["faults"]);
    // The revoked LMU is left on the old key; the rejoined one seals with the new.
    assert_eq!(s["tx_key_index"]["3"], 0, "{s}");
    assert_eq!(s["tx_key_index"]["12"], 1, "{s}");
    assert_eq!(s["tx_key_index"]["4"], 1, "{s}");

    let off = run("scenarios/attack-insider.ron", &[("security.enabled", "false")]);
    let s = &off["security"];
    assert!(s["commands"]["malicious_accepted"].as_u64().unwrap() > 10, "{s}");
    assert!(s["insider"]["opens_obeyed"].as_u64().unwrap() > 0, "{s}");
    assert!(s["contactor_ops_by_attacker"].as_u64().unwrap() > 0, "{s}");
    assert!(s["customers_interrupted_by_attack"].as_u64().unwrap() > 0, "{s}");
}

#[test]
fn misconfigured_operator_and_rotation_keys_are_rejected_at_check_naming_the_field() {
    let pk = "077d5941e6276d7ab0a6ec05eb0533251091f3af29bc11a6a563d5f2bddb9b4d";
    let sk = "6b1f0c2e9d8a7b3c4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a7b8c9d0e1f";
    let other = "1b1f0c2e9d8a7b3c4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a7b8c9d0e1f";
    let op = |s: &str, p: &str| format!(r#"(secret_key: "{s}", public_key: "{p}")"#);
    for (edit, needle) in [
        (("security.operator", op(other, pk)), "security.operator.public_key: is not the public key"),
        (("security.operator", op(sk, &pk[..60])), "security.operator.public_key: must be 64 hex digits"),
        (("security.operator", op(&"11".repeat(32), pk)), "security.operator.secret_key: is a trivial key"),
        (("security.operator", op(&sk.replace('6', "g"), pk)), "security.operator.secret_key: `g` is not a hex digit"),
        (
            ("security.rotations[0].key", r#""3f9a1c7e5b2d48a6c0e1f2d3b4a59687""#.to_string()),
            "security.rotations[0].key: reuses an earlier key",
        ),
        (("security.rotations[0].index", "0".to_string()), "security.rotations[0].index"),
        (("security.removed[0].rejoin", r#""10s""#.to_string()), "security.removed[0].rejoin"),
    ] {
        let l = load("scenarios/attack-insider.ron", &[(edit.0, &edit.1)]);
        let err = l.validate().expect_err("bad key rejected");
        let text = format!("{err:?}");
        assert!(text.contains(needle), "{needle}: {text}");
    }
    for (edit, needle) in [
        (("security.rotations[0].exclude", "[99]"), "security.rotations[0].exclude[0]"),
        (("security.attackers[1].lmu", "99"), "security.attackers[1].lmu"),
        (("security.attackers[0].targets", "[2, 77]"), "security.attackers[0].targets[1]"),
        (("security.removed[0].lmu", "3"), "security.removed[0].rejoin"),
    ] {
        let l = load("scenarios/attack-insider.ron", &[edit]);
        let err = gridtwin::world::build(&l, 1, None).err().expect("rejected");
        assert!(err.message.contains(needle), "{needle}: {}", err.message);
    }
}

#[test]
fn theft_flags_exactly_the_true_sections_within_a_day() {
    let s = run("scenarios/theft.ron", &[]);
    let t = &s["theft"];
    assert_eq!(t["flagged_sections"], t["true_sections"], "{t}");
    assert_eq!(t["true_sections"].as_array().unwrap().len(), 3, "{t}");
    assert!(t["latest_flag_h"].as_f64().unwrap() <= 24.0, "{t}");
}

#[test]
fn theft_false_alarm_rate_on_100_honest_days() {
    let l = load("scenarios/theft.ron", &[]);
    let f = gridtwin::security::theft::false_alarms(&l, 100).unwrap();
    println!("{f:?}");
    assert_eq!(f.days, 100);
    assert_eq!(f.sections, 4);
    assert_eq!(f.flagged, 0, "{f:?}");
    assert!(f.worst_residual_over_threshold < 1.0, "{f:?}");
}

/// A small standalone mesh (one coordinator, 300 LMUs on a 100 m grid, a reading every 5 minutes) with the
/// given `security` section (empty: none).
fn mesh_scenario(security: &str, hours: u32) -> Loaded {
    let text = format!(
        r#"Scenario(
    name: "mesh-security",
    seed: 5,
    duration: "{hours}h",
    mesh: (
        radio: "sun-fsk-868",
        propagation: LogDistance(exponent: 3.0, shadowing_db: 4.0),
        layout: Some(Grid(nodes: 300, spacing_m: 100.0, jitter_m: 30.0, coordinators: 1)),
        traffic: (report_every: Some("5min"), report_bytes: 40, start: "1min", command_every: Some("1min")),
    ),
    {security}
)"#
    );
    Loaded::from_text("mesh-security.ron".into(), text, Some("scenarios".into())).unwrap()
}

const KEYS: &str = r#"keys: Group(index: 0, key: "3f9a1c7e5b2d48a6c0e1f2d3b4a59687")"#;

#[test]
fn every_mesh_frame_is_sealed_opened_and_paid_for_in_airtime() {
    let off = gridtwin::sweep::run_one(&mesh_scenario("", 2), 5).unwrap();
    let on_text = format!("security: (enabled: true, {KEYS}),");
    let on = gridtwin::sweep::run_one(&mesh_scenario(&on_text, 2), 5).unwrap();
    let s = &on["security"]["mesh"];
    assert!(s["frames_sealed"].as_u64().unwrap() > 10_000, "{s}");
    assert!(
        s["frames_opened"].as_u64().unwrap() > s["frames_sealed"].as_u64().unwrap(),
        "broadcasts open at many: {s}"
    );
    // Nothing legitimate is refused for a bad MIC, an unknown key or a weak level; every refusal has a reason.
    for r in ["bad_mic", "unknown_key", "level_too_low", "malformed", "table_full"] {
        assert_eq!(s["refused"][r], 0, "{r}: {s}");
    }
    let refused: u64 = s["refused"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(refused, s["frames_refused"].as_u64().unwrap(), "{s}");
    // Routing frames carry 10 bytes (Mic32), readings 10 (EncMic32), commands 14 (EncMic64).
    let per = s["overhead_bytes_per_frame"].as_f64().unwrap();
    assert!((10.0..=14.0).contains(&per), "{s}");
    let (m_on, m_off) = (&on["mesh"], &off["mesh"]);
    let psdu = |m: &serde_json::Value| m["tx_psdu_bytes_per_frame"].as_f64().unwrap();
    assert!(psdu(m_on) > psdu(m_off) + 9.0, "{} vs {}", psdu(m_on), psdu(m_off));
    assert!(s["security_airtime_pct"].as_f64().unwrap() > 5.0, "{s}");
    assert!(m_on["pdr"].as_f64().unwrap() > 0.95, "{m_on}");
    assert!(off["security"].is_null());
}

fn jammer(mode: &str) -> String {
    format!(
        r#"security: (enabled: true, {KEYS}, attackers: [
        Jammer(at: Xy(850.0, 850.0), eirp_dbm: 14.0, start: "40min", stop: "80min", mode: {mode}),
    ]),"#
    )
}

#[test]
fn a_jammer_cuts_mesh_delivery_in_its_period_and_delivery_restores_after() {
    for mode in ["Continuous", r#"Reactive(burst: "5ms")"#] {
        let s = gridtwin::sweep::run_one(&mesh_scenario(&jammer(mode), 2), 5).unwrap();
        let j = &s["security"]["jamming"];
        let m = &j["mesh"];
        assert!(s["security"]["frames_lost_to_jamming"].as_u64().unwrap() > 0, "{mode}: {j}");
        let (during, outside, after) = (
            m["pdr_in_period"].as_f64().unwrap(),
            m["pdr_outside"].as_f64().unwrap(),
            m["pdr_after"].as_f64().unwrap(),
        );
        assert!(during < outside - 0.2, "{mode}: {j}");
        assert!(after > 0.95 && outside > 0.95, "{mode}: {j}");
        if mode != "Continuous" {
            assert!(m["bursts"].as_u64().unwrap() > 100, "{j}");
        }
    }
    // Out of range, the same jammer changes nothing it could not: no frame lost to it.
    let far = jammer("Continuous").replace("Xy(850.0, 850.0)", "Xy(60000.0, 60000.0)");
    let s = gridtwin::sweep::run_one(&mesh_scenario(&far, 2), 5).unwrap();
    assert_eq!(s["security"]["frames_lost_to_jamming"], 0, "{}", s["security"]);
}

#[test]
fn the_attack_scenario_jams_flisr_frames_and_still_locates_the_fault() {
    let s = run("scenarios/attack.ron", &[]);
    let j = &s["security"]["jamming"]["flisr"];
    assert!(j["frames_lost"].as_u64().unwrap() > 0, "{j}");
    assert!(j["pdr_in_period"].as_f64().unwrap() < 0.95, "{j}");
    let f = &s["faults"];
    assert_eq!(f["located_correct_pct"], 100.0, "{f}");
    assert!(f["events"][0]["isolation_s"].as_f64().is_some() && f["events"][0]["restore_s"].as_f64().is_some(), "{f}");
}

#[test]
fn a_strong_jammer_over_the_fault_slows_the_trip_to_its_graded_time_but_keeps_it_selective() {
    let s = run("scenarios/attack.ron", &[("security.attackers[1].eirp_dbm", "14.0")]);
    let j = &s["security"]["jamming"]["flisr"];
    assert!(j["pdr_in_period"].as_f64().unwrap() < 0.7, "{j}");
    let e = &s["faults"]["events"][0];
    // LMU 6 and its upstream neighbour both find the channel jammed: neither trips on a missing block, they
    // grade by height (LMU 6, height 7: 30 + 7 x 100 ms, then its breaker), so only LMU 6 trips.
    assert_eq!(e["located_section"], "S6", "{e}");
    let trip = e["trip_ms"].as_f64().unwrap();
    assert!((730.0..900.0).contains(&trip), "{e}");
    assert_eq!(e["healthy_trips"], 0, "{e}");
    // The far end's confirmation and the tie's restoration wait for the jammer to stop (at 150 s, 30 s after
    // the fault): asked again, not given up, and nothing beyond opened.
    let iso = e["isolation_s"].as_f64().unwrap();
    assert!((30.0..40.0).contains(&iso), "{e}");
    assert_eq!(e["healthy_customers_not_restored"], 0, "{e}");
}

/// Seeds of `attack.ron` (as `gridtwin run --seed` takes them) on which the jammer beside LMU 6 cost the
/// location (1, 8, 11: every `Block` from LMU 6 lost at LMU 5) or a healthy section and its restoration
/// (3, 5: LMU 6 went past a far end whose `Opened` it could not hear) before jammed LMUs graded by height and
/// kept asking.
#[test]
fn the_attack_scenario_keeps_its_fault_located_isolated_and_restored_on_seeds_the_jammer_once_beat() {
    for seed in [1u64, 3, 5, 8, 11] {
        let s = run_seed("scenarios/attack.ron", seed);
        let e = &s["faults"]["events"][0];
        assert_eq!(e["located_section"], "S6", "seed {seed}: {e}");
        assert_eq!(e["healthy_trips"], 0, "seed {seed}: {e}");
        assert!(e["restore_s"].as_f64().is_some(), "seed {seed}: {e}");
        assert_eq!(e["healthy_customers_not_restored"], 0, "seed {seed}: {e}");
        let sec = &s["security"];
        for k in ["forged_accepted", "replayed_accepted", "contactor_ops_by_attacker"] {
            assert_eq!(sec[k], 0, "seed {seed}: {k} in {sec}");
        }
        assert!(sec["jamming"]["flisr"]["frames_lost"].as_u64().unwrap() > 0, "seed {seed}");
    }
}

#[test]
fn over_the_radio_mesh_the_attack_is_refused_and_the_jammed_fault_still_isolated_once_the_jammer_stops() {
    let s = run("scenarios/attack-mesh.ron", &[]);
    assert!(s["mesh"]["neighbour_sent"].as_u64().unwrap() > 0, "{}", s["mesh"]);
    let sec = &s["security"];
    for k in ["forged_accepted", "replayed_accepted", "contactor_ops_by_attacker", "customers_interrupted_by_attack"] {
        assert_eq!(sec[k], 0, "{k} in {sec}");
    }
    assert!(sec["mesh"]["frames_sealed"].as_u64().unwrap() > 0, "{sec}");
    // The jammer holds LMU 6's clear-channel assessment busy: it cannot send while the jammer is on.
    assert!(sec["jamming"]["mesh"]["cca_busy"].as_u64().unwrap() > 100, "{sec}");
    let e = &s["faults"]["events"][0];
    assert_eq!(e["located_section"], "S6", "{e}");
    assert_eq!(e["healthy_trips"], 0, "{e}");
    // Cleared by time grading alone, isolated and restored once the jammer stops (150 s, 30 s after it).
    assert!((730.0..900.0).contains(&e["trip_ms"].as_f64().unwrap()), "{e}");
    let (iso, rest) = (e["isolation_s"].as_f64().unwrap(), e["restore_s"].as_f64().unwrap());
    assert!((30.0..35.0).contains(&iso) && rest >= iso && rest < 35.0, "{e}");
    assert_eq!(e["healthy_customers_not_restored"], 0, "{e}");
    let off = run("scenarios/attack-mesh.ron", &[("security.enabled", "false")]);
    assert!(off["security"]["contactor_ops_by_attacker"].as_u64().unwrap() > 0, "{}", off["security"]);
}

/// A reactive jammer (a 2 ms burst after every frame start it senses) leaves an idle channel quiet, so no LMU
/// senses its energy; the frames it corrupts at a strong signal are the evidence instead. Seeds of
/// `attack.ron` with that jammer on which, before, the fault was located one section up (the first three) or
/// a healthy section beyond the far end was opened (the other two).
#[test]
fn a_reactive_jammer_is_sensed_by_the_frames_it_corrupts_and_the_fault_stays_selective() {
    for seed in
        [15570816459285843912u64, 4466195961715251753, 13392946579461809341, 9292265775313335780, 14846000579670975586]
    {
        let l = load("scenarios/attack.ron", &[("security.attackers[1].mode", "Reactive(burst: \"2ms\")")]);
        let s = gridtwin::sweep::run_one(&l, seed).unwrap();
        let e = &s["faults"]["events"][0];
        assert_eq!(e["located_section"], "S6", "seed {seed}: {e}");
        assert_eq!(e["healthy_trips"], 0, "seed {seed}: {e}");
        let sec = &s["security"];
        for k in ["forged_accepted", "replayed_accepted", "contactor_ops_by_attacker"] {
            assert_eq!(sec[k], 0, "seed {seed}: {k} in {sec}");
        }
    }
}
