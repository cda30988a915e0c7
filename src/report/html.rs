//! `gridtwin report OUT_DIR`: one self-contained `report.html` from an output directory, readable offline: the
//! run's identity (scenario, seed, version, digest), KPI tables from `summary.json`, every SVG plot inline, small
//! CSV tables, the scenario echoed (`scenario.ron`) and a list of the directory's files. No scripts, no
//! external fonts, styles or images: it opens the same without a network.

use serde_json::Value;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Largest SVG inlined, bytes (a bigger one is linked by file name instead).
const MAX_INLINE_SVG: u64 = 8 << 20;
/// Most rows of a CSV shown as a table.
const MAX_TABLE_ROWS: usize = 40;

pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::Null => Some("—".into()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(match n.as_f64() {
            Some(f) if n.is_f64() => {
                if f.abs() >= 1e6 || (f != 0.0 && f.abs() < 1e-3) {
                    format!("{f:.4e}")
                } else {
                    format!("{}", (f * 1e4).round() / 1e4)
                }
            }
            _ => n.to_string(),
        }),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

fn kv_table(out: &mut String, rows: &[(String, String)]) {
    out.push_str("<table class=\"kv\"><tbody>\n");
    for (k, v) in rows {
        let _ = writeln!(out, "<tr><th>{}</th><td>{}</td></tr>", escape(k), escape(v));
    }
    out.push_str("</tbody></table>\n");
}

fn array_table(out: &mut String, arr: &[Value]) {
    let mut cols: Vec<String> = Vec::new();
    for v in arr {
        if let Value::Object(m) = v {
            for (k, x) in m {
                if scalar(x).is_some() && !cols.contains(k) {
                    cols.push(k.clone());
                }
            }
        }
    }
    if cols.is_empty() {
        return;
    }
    out.push_str("<table><thead><tr>");
    for c in &cols {
        let _ = write!(out, "<th>{}</th>", escape(c));
    }
    out.push_str("</tr></thead><tbody>\n");
    for v in arr.iter().take(MAX_TABLE_ROWS) {
        out.push_str("<tr>");
        for c in &cols {
            let cell = v.get(c).and_then(scalar).unwrap_or_default();
            let _ = write!(out, "<td>{}</td>", escape(&cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table>\n");
    if arr.len() > MAX_TABLE_ROWS {
        let _ = writeln!(out, "<p class=\"note\">first {MAX_TABLE_ROWS} of {} rows</p>", arr.len());
    }
}

/// Writes `dir/report.html` (atomically) and returns its path.
pub fn write_report(dir: &Path) -> Result<PathBuf, String> {
    let summary_path = dir.join("summary.json");
    let text = std::fs::read_to_string(&summary_path)
        .map_err(|e| format!("{}: {e} (is {} a gridtwin output directory?)", summary_path.display(), dir.display()))?;
    let summary: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: not valid JSON: {e}", summary_path.display()))?;
    let ctx = super::plot::Context::read(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    // Plots missing (a run with plots off): draw them first, from the CSVs.
    if !files.iter().any(|p| p.extension().is_some_and(|x| x == "svg")) {
        super::plot::render_dir(dir, &[])?;
        files = std::fs::read_dir(dir).map_err(|e| e.to_string())?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
    }
    let mut h = String::new();
    let title = format!("gridtwin report — {}", ctx.scenario);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n<style>\n{}</style></head><body>\n",
        escape(&title),
        CSS
    );
    let _ = writeln!(h, "<h1>{}</h1>", escape(&title));
    let ident: Vec<(String, String)> =
        ["scenario", "sweep", "plan", "seed", "version", "digest", "events", "sim_time_s", "points", "replications"]
            .iter()
            .filter_map(|k| summary.get(*k).and_then(scalar).map(|v| (k.replace('_', " "), v)))
            .collect();
    kv_table(&mut h, &ident);
    if let Some(desc) = description(dir) {
        let _ = writeln!(h, "<p>{}</p>", escape(&desc));
    }
    // Contents.
    let svgs: Vec<&PathBuf> = files.iter().filter(|p| p.extension().is_some_and(|x| x == "svg")).collect();
    h.push_str("<nav><a href=\"#kpis\">KPIs</a> · <a href=\"#plots\">Plots</a> · <a href=\"#tables\">Tables</a> · <a href=\"#scenario\">Scenario</a> · <a href=\"#files\">Files</a></nav>\n");
    // KPIs.
    h.push_str("<h2 id=\"kpis\">KPIs</h2>\n");
    if let Value::Object(m) = &summary {
        let top: Vec<(String, String)> = m
            .iter()
            .filter(|(k, v)| scalar(v).is_some() && !ident.iter().any(|(i, _)| *i == k.replace('_', " ")))
            .map(|(k, v)| (k.clone(), scalar(v).unwrap_or_default()))
            .collect();
        if !top.is_empty() {
            kv_table(&mut h, &top);
        }
        for (k, v) in m {
            match v {
                Value::Object(inner) => {
                    let _ = writeln!(h, "<h3>{}</h3>", escape(k));
                    let rows: Vec<(String, String)> =
                        inner.iter().filter_map(|(k2, v2)| scalar(v2).map(|s| (k2.clone(), s))).collect();
                    kv_table(&mut h, &rows);
                    for (k2, v2) in inner {
                        if let Value::Array(a) = v2
                            && a.iter().any(Value::is_object)
                        {
                            let _ = writeln!(h, "<h4>{} — {}</h4>", escape(k), escape(k2));
                            array_table(&mut h, a);
                        }
                    }
                }
                Value::Array(a) if a.iter().any(Value::is_object) => {
                    let _ = writeln!(h, "<h3>{}</h3>", escape(k));
                    array_table(&mut h, a);
                }
                _ => {}
            }
        }
    }
    // Plots.
    h.push_str("<h2 id=\"plots\">Plots</h2>\n");
    if svgs.is_empty() {
        h.push_str("<p class=\"note\">no plots in this directory</p>\n");
    }
    for p in &svgs {
        let name = p.file_name().map_or(String::new(), |n| n.to_string_lossy().to_string());
        let size = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        h.push_str("<figure>\n");
        if size <= MAX_INLINE_SVG {
            let svg = std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            let body = svg.find("<svg").map_or(svg.as_str(), |i| &svg[i..]);
            h.push_str(body);
        } else {
            let _ =
                write!(h, "<p class=\"note\">{} is {} MB; open it beside this report</p>", escape(&name), size >> 20);
        }
        let _ = writeln!(
            h,
            "<figcaption>{} (PNG beside it; regenerate with <code>gridtwin plot</code>)</figcaption>\n</figure>",
            escape(&name)
        );
    }
    // Small CSV tables.
    h.push_str("<h2 id=\"tables\">Tables</h2>\n");
    for p in files.iter().filter(|p| p.extension().is_some_and(|x| x == "csv")) {
        let Some(csv) = super::plot::Csv::read(p) else { continue };
        if csv.header.first().map(String::as_str) == Some("t_s") {
            continue;
        }
        let name = p.file_name().map_or(String::new(), |n| n.to_string_lossy().to_string());
        let _ = writeln!(h, "<h3>{}</h3>", escape(&name));
        h.push_str("<div class=\"scroll\"><table><thead><tr>");
        for c in &csv.header {
            let _ = write!(h, "<th>{}</th>", escape(c));
        }
        h.push_str("</tr></thead><tbody>\n");
        for r in csv.rows.iter().take(MAX_TABLE_ROWS) {
            h.push_str("<tr>");
            for c in r {
                let _ = write!(h, "<td>{}</td>", escape(c));
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</tbody></table></div>\n");
        if csv.rows.len() > MAX_TABLE_ROWS {
            let _ = writeln!(
                h,
                "<p class=\"note\">first {MAX_TABLE_ROWS} of {} rows; the full table is {}</p>",
                csv.rows.len(),
                escape(&name)
            );
        }
    }
    // Scenario.
    h.push_str("<h2 id=\"scenario\">Scenario</h2>\n");
    match std::fs::read_to_string(dir.join("scenario.ron")) {
        Ok(s) => {
            let _ = writeln!(h, "<pre>{}</pre>", escape(&s));
        }
        Err(_) => h.push_str("<p class=\"note\">no scenario.ron in this directory</p>\n"),
    }
    // Files.
    h.push_str("<h2 id=\"files\">Files</h2>\n<ul>\n");
    for p in &files {
        let name = p.file_name().map_or(String::new(), |n| n.to_string_lossy().to_string());
        if name == "report.html" || name.starts_with('.') {
            continue;
        }
        let size = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let _ = writeln!(h, "<li>{} ({} bytes)</li>", escape(&name), size);
    }
    let _ = writeln!(
        h,
        "</ul>\n<footer>gridtwin {} · every figure here is regenerated from the files listed above</footer>\n</body></html>",
        env!("CARGO_PKG_VERSION")
    );
    let out = dir.join("report.html");
    super::write_file_atomic(&out, h.as_bytes())?;
    Ok(out)
}

fn description(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("scenario.ron")).ok()?;
    let i = text.find("description:")?;
    let rest = &text[i + "description:".len()..];
    let a = rest.find('"')?;
    let b = rest[a + 1..].find('"')?;
    Some(rest[a + 1..a + 1 + b].to_string())
}

const CSS: &str = "body{font-family:'DejaVu Sans',Verdana,sans-serif;max-width:1040px;margin:2em auto;padding:0 1em;color:#222;line-height:1.4}
h1{font-size:1.6em;border-bottom:2px solid #1f77b4;padding-bottom:.2em}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left}
table.kv th{background:#f4f6f8;font-weight:normal;color:#555}thead th{background:#f4f6f8}
figure{margin:1.5em 0}figure svg{max-width:100%;height:auto;border:1px solid #eee}figcaption{color:#666;font-size:.85em}
pre{background:#f7f7f7;padding:1em;overflow:auto;font-size:.85em}.note{color:#777;font-size:.85em}.scroll{overflow-x:auto}
nav{margin:1em 0}footer{margin-top:3em;color:#888;font-size:.8em}
";
