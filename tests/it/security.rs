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
