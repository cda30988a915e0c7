//! Plots from real output directories: every kind renders, files are valid SVG and PNG with the expected
//! series, PNG lines stay inside the chart (the title band carries no series colour), `gridtwin plot`
//! regenerates the same files from the CSVs, and `gridtwin report` writes one self-contained HTML page.

use gridtwin::cli::{Global, run_to_dir};
use gridtwin::scenario::Loaded;
use std::path::Path;

fn svg_ok(p: &Path, expect: &[&str]) {
    let t = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let start = t.find("<svg").unwrap_or_else(|| panic!("{}: no <svg", p.display()));
    assert!(t[start..].contains("xmlns=\"http://www.w3.org/2000/svg\""), "{}", p.display());
    assert!(t.trim_end().ends_with("</svg>"), "{}: not closed", p.display());
    for e in expect {
        assert!(t.contains(e), "{}: no `{e}`", p.display());
    }
}

/// Decodes a PNG; returns (width, height, RGB(A) bytes, bytes per pixel).
fn png(p: &Path) -> (u32, u32, Vec<u8>, usize) {
    let d = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(p).unwrap()));
    let mut r = d.read_info().unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let mut buf = vec![0; r.output_buffer_size()];
    let info = r.next_frame(&mut buf).unwrap();
    let bpp = info.color_type.samples();
    (info.width, info.height, buf, bpp)
}

#[test]
fn every_plot_kind_renders_from_a_real_run() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let g = Global { out: Some(out.clone()), quiet: true, ..Global::default() };
    // The default scenario through its 10:00 earth fault.
    run_to_dir(&g, &Loaded::default_embedded(), Some("11h")).unwrap();
    let seed_title = "rural-feeder-day (seed 42)";
    svg_ok(
        &out.join("grid_power.svg"),
        &[seed_title, "active power at the transformer", "kvar", "time since start (h)"],
    );
    svg_ok(&out.join("grid_voltage.svg"), &["EN 50160 limits", "lowest LV bus voltage", "voltage (p.u.)"]);
    svg_ok(&out.join("voltage_profile.svg"), &["distance from the transformer", "EN 50160 limits", seed_title]);
    svg_ok(&out.join("mesh_map.svg"), &["gateway / coordinator", "route, ETX", "east (m)"]);
    svg_ok(
        &out.join("fault_timeline.svg"),
        &["time after fault onset", "detection", "trip", "isolation", "restoration"],
    );
    svg_ok(&out.join("mesh_distributions.svg"), &["delivery ratio per LMU (%)", "latency per LMU (ms)"]);
    let csv = std::fs::read_to_string(out.join("grid_buses.csv")).unwrap();
    assert!(csv.starts_with("bus,name,distance_m,v_min_pu,v_max_pu\n") && csv.lines().count() > 10, "{csv}");
    // PNGs: right size, and nothing in a series colour above the chart (lines are clipped).
    for stem in ["grid_power", "grid_voltage", "voltage_profile", "mesh_map", "fault_timeline", "mesh_distributions"] {
        let (w, h, px, bpp) = png(&out.join(format!("{stem}.png")));
        assert_eq!((w, h), (960, 540), "{stem}");
        let series = [[31u8, 119, 180], [255, 127, 14]];
        let title_band = &px[..(w as usize * 30 * bpp)];
        let hits = title_band.chunks(bpp).filter(|c| series.iter().any(|s| c[..3] == *s)).count();
        assert_eq!(hits, 0, "{stem}.png: series colour in the title band");
    }
    // Readings of chosen LMUs: by default three informative ones (lowest supplied voltage, highest current,
    // one that lost supply: the 10:00 fault isolates a section); `--lmu` picks them; an unknown one is named.
    let lmu_svgs: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter(|n| n.starts_with("lmu_") && n.ends_with("_readings.svg"))
        .collect();
    assert_eq!(lmu_svgs.len(), 3, "{lmu_svgs:?}");
    for n in &lmu_svgs {
        svg_ok(&out.join(n), &["phase-A voltage", "phase-C current", "active power", "EN 50160 limits", seed_title]);
    }
    let bin = env!("CARGO_BIN_EXE_gridtwin");
    let dir = out.to_str().unwrap();
    let o = std::process::Command::new(bin).args(["plot", dir, "--kind", "lmu-series", "--lmu", "1"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    svg_ok(&out.join("lmu_1_readings.svg"), &["Readings of LMU 1"]);
    let o =
        std::process::Command::new(bin).args(["plot", dir, "--kind", "lmu-series", "--lmu", "999"]).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("no readings of LMU 999"));
    // `gridtwin plot` regenerates the same files from the CSVs.
    let before = std::fs::read(out.join("grid_power.svg")).unwrap();
    std::fs::remove_file(out.join("grid_power.svg")).unwrap();
    let o = std::process::Command::new(bin).args(["plot", out.to_str().unwrap(), "--kind", "series"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(out.join("grid_power.svg")).unwrap(), before);
    let bad = std::process::Command::new(bin).args(["plot", out.to_str().unwrap(), "--kind", "pie"]).output().unwrap();
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("unknown plot kind `pie`"));
    // The report: self-contained, every plot inline, identity and scenario echoed.
    let o = std::process::Command::new(bin).args(["report", out.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    let svgs = std::fs::read_dir(&out)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "svg"))
        .count();
    assert_eq!(html.matches("<svg").count(), svgs);
    for s in ["rural-feeder-day", "digest", "Scenario(", "<h3>mesh</h3>", "faults.csv"] {
        assert!(html.contains(s), "report.html lacks {s}");
    }
    for s in ["http://", "https://", "<script", "<link", "src="] {
        let n =
            html.matches(s).count() - html.matches("xmlns=\"http://www.w3.org").count() * usize::from(s == "http://");
        assert_eq!(n, 0, "report.html refers outside itself: {s}");
    }
}

#[test]
fn accounting_waterfall_renders_where_present() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(
        d.join("summary.json"),
        r#"{"scenario":"acc","seed":3,"accounting":{"generated":1000,"stored":940,"dropped":{"mesh_loss":40,"uart_overflow":15,"cellular_timeout":5}}}"#,
    )
    .unwrap();
    let files = gridtwin::report::plot::render_dir(d, &["accounting".into()]).unwrap();
    assert_eq!(files.len(), 2);
    svg_ok(&d.join("reading_accounting.svg"), &["dropped: mesh loss", "stored", "readings (count)", "acc (seed 3)"]);
}
