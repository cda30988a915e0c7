//! Run outputs: the summary (JSON), tables (CSV), time series (CSV) and plots (SVG and PNG), written atomically.
//!
//! Everything here is a pure function of the run except `timing.json` (wall-clock figures), which is kept in a
//! file of its own so every other file is byte-identical between equal runs. Files are written into a temporary
//! sibling directory that replaces the target only when complete, so a failed run never leaves half an output.

pub mod expect;
pub mod html;
pub mod plot;

use serde_json::{Map, Value};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A CSV table: a header and rows of already formatted cells.
#[derive(Clone, Debug, Default)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Table { header: header.iter().map(|s| s.to_string()).collect(), rows: Vec::new() }
    }
    pub fn push(&mut self, row: Vec<String>) {
        debug_assert_eq!(row.len(), self.header.len());
        self.rows.push(row);
    }
}

/// A time series for CSV and plotting: (time in seconds since start, value) per column.
#[derive(Clone, Debug, Default)]
pub struct Series {
    /// Plot title and file stem, e.g. `grid_voltage`.
    pub name: String,
    pub y_label: String,
    pub t_s: Vec<f64>,
    /// Named columns, each as long as `t_s`.
    pub columns: Vec<(String, Vec<f64>)>,
}

/// Everything a run reports.
#[derive(Debug, Default)]
pub struct Report {
    /// `summary.json`: run identity first, then one object per subsystem.
    pub summary: Map<String, Value>,
    /// `<name>.csv` files.
    pub tables: Vec<(String, Table)>,
    /// `<name>.csv` series files and `<name>.svg` plots.
    pub series: Vec<Series>,
    /// Short lines for the human summary on stdout.
    pub human: Vec<String>,
    /// Other files written verbatim, by path relative to the output directory (e.g. the chain's `ledger/...`, the
    /// scenario echoed as `scenario.ron`).
    pub files: Vec<(String, Vec<u8>)>,
}

/// Formats a float for CSV: shortest round-trip representation (so files are exact and stable).
pub fn num(v: f64) -> String {
    if v.is_finite() { format!("{v}") } else { String::new() }
}

/// Formats a time held as integer nanoseconds as seconds for CSV, exactly and without float artefacts:
/// `60`, `0.5`, `3600.000000001` (no exponent, no trailing zeros).
pub fn secs_from_ns(ns: u64) -> String {
    let (s, frac) = (ns / 1_000_000_000, ns % 1_000_000_000);
    if frac == 0 {
        format!("{s}")
    } else {
        let f = format!("{frac:09}");
        format!("{s}.{}", f.trim_end_matches('0'))
    }
}

fn write_csv(path: &Path, header: &[String], rows: impl Iterator<Item = Vec<String>>) -> std::io::Result<()> {
    let mut w = csv::Writer::from_path(path)?;
    w.write_record(header)?;
    for r in rows {
        w.write_record(&r)?;
    }
    w.flush()
}

/// Writes `report` (and `timing` as `timing.json`) into directory `out`, atomically: either the complete
/// new directory replaces `out`, or `out` is left as it was. Refuses to replace a directory that is not a
/// gridtwin output (no `summary.json` in it) unless it is empty.
pub fn write_output_dir(out: &Path, report: &Report, timing: &Value, plots: bool) -> Result<(), String> {
    check_out_dir(out)?;
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).map_or(PathBuf::from("."), Path::to_path_buf);
    std::fs::create_dir_all(&parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    let stem = out.file_name().map_or("out".into(), |n| n.to_string_lossy().to_string());
    let tmp = parent.join(format!(".{stem}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir(&tmp).map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
    let result = (|| -> Result<(), String> {
        let io = |p: &Path, e: std::io::Error| format!("cannot write {}: {e}", p.display());
        let p = tmp.join("summary.json");
        let mut text =
            serde_json::to_string_pretty(&Value::Object(report.summary.clone())).map_err(|e| e.to_string())?;
        text.push('\n');
        std::fs::write(&p, text).map_err(|e| io(&p, e))?;
        for (name, t) in &report.tables {
            let p = tmp.join(format!("{name}.csv"));
            write_csv(&p, &t.header, t.rows.iter().cloned()).map_err(|e| io(&p, e))?;
        }
        for s in &report.series {
            let p = tmp.join(format!("{}.csv", s.name));
            let mut header = vec!["t_s".to_string()];
            header.extend(s.columns.iter().map(|(n, _)| n.clone()));
            let rows = (0..s.t_s.len()).map(|i| {
                let mut r = vec![num(s.t_s[i])];
                r.extend(s.columns.iter().map(|(_, c)| num(c[i])));
                r
            });
            write_csv(&p, &header, rows).map_err(|e| io(&p, e))?;
        }
        for (rel, bytes) in &report.files {
            let p = tmp.join(rel);
            if let Some(d) = p.parent() {
                std::fs::create_dir_all(d).map_err(|e| io(d, e))?;
            }
            std::fs::write(&p, bytes).map_err(|e| io(&p, e))?;
        }
        if plots {
            // Plots are drawn from the files just written, as `gridtwin plot` would.
            plot::render_dir(&tmp, &[])?;
        }
        let p = tmp.join("timing.json");
        let mut f = std::fs::File::create(&p).map_err(|e| io(&p, e))?;
        writeln!(f, "{}", serde_json::to_string_pretty(timing).map_err(|e| e.to_string())?).map_err(|e| io(&p, e))?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if out.exists() {
        std::fs::remove_dir_all(out).map_err(|e| {
            let _ = std::fs::remove_dir_all(&tmp);
            format!("cannot replace {}: {e}", out.display())
        })?;
    }
    std::fs::rename(&tmp, out).map_err(|e| {
        let _ = std::fs::remove_dir_all(&tmp);
        format!("cannot move output into {}: {e}", out.display())
    })
}

/// Checks, before any work, that `out` can become an output directory: it is absent, empty or an earlier
/// gridtwin output (has `summary.json`), and no existing ancestor is a file.
pub fn check_out_dir(out: &Path) -> Result<(), String> {
    if out.exists() {
        let is_ours = out.join("summary.json").exists()
            || std::fs::read_dir(out).map(|mut d| d.next().is_none()).unwrap_or(false);
        if !out.is_dir() || !is_ours {
            return Err(format!(
                "--out {}: exists and is not a gridtwin output directory; choose another --out",
                out.display()
            ));
        }
        return Ok(());
    }
    check_parent(out)
}

/// Checks that no existing ancestor of `path` is a file (so its directory can be created).
pub fn check_parent(path: &Path) -> Result<(), String> {
    let mut p = path.parent();
    while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
        if d.exists() {
            return if d.is_dir() {
                Ok(())
            } else {
                Err(format!("{}: {} is a file, not a directory", path.display(), d.display()))
            };
        }
        p = d.parent();
    }
    Ok(())
}

/// Writes one file atomically (temp file beside it, then rename).
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).map_or(PathBuf::from("."), Path::to_path_buf);
    std::fs::create_dir_all(&parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    let name = path.file_name().map_or("out".into(), |n| n.to_string_lossy().to_string());
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write {}: {e}", path.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_from_integer_ns_are_exact() {
        assert_eq!(secs_from_ns(0), "0");
        assert_eq!(secs_from_ns(60_000_000_000), "60");
        assert_eq!(secs_from_ns(120_000_000_000), "120");
        assert_eq!(secs_from_ns(500_000_000), "0.5");
        assert_eq!(secs_from_ns(3_600_000_000_001), "3600.000000001");
        // The float route prints artefacts this helper avoids.
        assert_eq!(format!("{}", 1.0 * 60e9 * 1e-9), "60.00000000000001");
    }

    #[test]
    fn writes_a_complete_directory_and_replaces_it_atomically() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("run");
        let mut r = Report::default();
        r.summary.insert("scenario".into(), Value::from("t"));
        let mut t = Table::new(&["a", "b"]);
        t.push(vec!["1".into(), "x".into()]);
        r.tables.push(("events".into(), t));
        r.series.push(Series {
            name: "v".into(),
            y_label: "V".into(),
            t_s: vec![0.0, 3600.0, 7200.0],
            columns: vec![("a".into(), vec![230.0, 231.5, 229.0]), ("b".into(), vec![229.0, f64::NAN, 230.0])],
        });
        write_output_dir(&out, &r, &Value::Null, true).unwrap();
        let names: Vec<String> = {
            let mut v: Vec<String> =
                std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
            v.sort();
            v
        };
        assert_eq!(names, ["events.csv", "summary.json", "timing.json", "v.csv", "v.png", "v.svg"]);
        assert_eq!(
            std::fs::read_to_string(out.join("v.csv")).unwrap(),
            "t_s,a,b\n0,230,229\n3600,231.5,\n7200,229,230\n"
        );
        assert!(std::fs::read(out.join("v.png")).unwrap().starts_with(b"\x89PNG"));
        // Replacing an output directory works; replacing a foreign directory is refused.
        write_output_dir(&out, &r, &Value::Null, false).unwrap();
        assert!(!out.join("v.svg").exists());
        let foreign = tmp.path().join("home");
        std::fs::create_dir(&foreign).unwrap();
        std::fs::write(foreign.join("notes.txt"), "keep").unwrap();
        assert!(write_output_dir(&foreign, &r, &Value::Null, false).is_err());
        assert!(foreign.join("notes.txt").exists());
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 2, "no temporary directory left");
    }
}
