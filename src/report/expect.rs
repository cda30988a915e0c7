//! KPI regression for CI: `gridtwin run SCENARIO --expect EXPECT.ron` compares the run's `summary.json` with
//! expected values and tolerances and fails on a regression; `--write-expect FILE` records the current values.
//!
//! ```ron
//! Expect(
//!     scenario: Some("rural-feeder-day"),
//!     kpis: {
//!         "mesh.pdr": Num(value: 0.998, abs: 0.002),
//!         "grid.v_min_pu": Num(value: 0.951, rel: 0.001),
//!         "faults.located_correct_pct": Num(value: 100.0),
//!         "digest": Text("5f0c..."),
//!     },
//! )
//! ```
//! A number passes when |got - value| <= abs + rel * |value| (both default 0: exact). Paths are dotted
//! (`a.b[2].c`) into the summary.

use crate::scenario::{InputError, parse_ron};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Default relative tolerance written by `--write-expect`.
pub const DEFAULT_REL: f64 = 1e-3;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename = "Expect")]
pub struct Expect {
    /// The scenario these values belong to (checked when given).
    #[serde(default)]
    pub scenario: Option<String>,
    pub kpis: BTreeMap<String, Kpi>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub enum Kpi {
    Num {
        value: f64,
        #[serde(default)]
        abs: f64,
        #[serde(default)]
        rel: f64,
    },
    Text(String),
}

/// One compared KPI.
#[derive(Clone, Debug)]
pub struct Line {
    pub path: String,
    pub expected: String,
    pub got: String,
    pub tolerance: String,
    pub ok: bool,
}

pub fn parse(file: &str, text: &str) -> Result<Expect, InputError> {
    let e: Expect = parse_ron(file, text)?;
    for (k, v) in &e.kpis {
        if let Kpi::Num { value, abs, rel } = v
            && !(value.is_finite() && *abs >= 0.0 && *rel >= 0.0 && abs.is_finite() && rel.is_finite())
        {
            let pos = text.find(&format!("\"{k}\"")).unwrap_or(0);
            return Err(InputError::at(
                file,
                text,
                pos,
                format!("KPI `{k}`: value must be finite and tolerances >= 0"),
                None,
            ));
        }
    }
    Ok(e)
}

/// Compares `summary` with `e`.
pub fn compare(summary: &Map<String, Value>, e: &Expect) -> Vec<Line> {
    let s = Value::Object(summary.clone());
    let mut out = Vec::new();
    if let Some(name) = &e.scenario {
        let got = s.get("scenario").and_then(Value::as_str).unwrap_or("");
        out.push(Line {
            path: "scenario".into(),
            expected: name.clone(),
            got: got.into(),
            tolerance: "exact".into(),
            ok: got == name,
        });
    }
    for (path, kpi) in &e.kpis {
        let got = crate::sweep::json_path(&s, path);
        let line = match kpi {
            Kpi::Num { value, abs, rel } => {
                let g = got.and_then(Value::as_f64);
                let tol = abs + rel * value.abs();
                Line {
                    path: path.clone(),
                    expected: format!("{value}"),
                    got: g.map_or_else(|| got.map_or("(missing)".into(), |v| v.to_string()), |x| format!("{x}")),
                    tolerance: if tol == 0.0 { "exact".into() } else { format!("± {tol:.3e}") },
                    ok: g.is_some_and(|x| (x - value).abs() <= tol),
                }
            }
            Kpi::Text(t) => {
                let g = got.map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string));
                Line {
                    path: path.clone(),
                    expected: t.clone(),
                    got: g.clone().unwrap_or_else(|| "(missing)".into()),
                    tolerance: "exact".into(),
                    ok: g.as_deref() == Some(t.as_str()),
                }
            }
        };
        out.push(line);
    }
    out
}

/// A readable diff: one line per KPI, regressions marked.
pub fn render(lines: &[Line]) -> String {
    let w = lines.iter().map(|l| l.path.len()).max().unwrap_or(4).max(4);
    let mut s = format!("{:<w$}  {:>14}  {:>14}  {:>12}  status\n", "kpi", "expected", "got", "tolerance");
    for l in lines {
        s.push_str(&format!(
            "{:<w$}  {:>14}  {:>14}  {:>12}  {}\n",
            l.path,
            l.expected,
            l.got,
            l.tolerance,
            if l.ok { "ok" } else { "REGRESSION" }
        ));
    }
    s
}

/// Records the numeric KPIs of `summary` (scalars at the top two levels, run identity and engine internals
/// left out) with relative tolerance [`DEFAULT_REL`], as RON text.
pub fn record(summary: &Map<String, Value>) -> String {
    let mut kpis = BTreeMap::new();
    let skip_top = ["version", "digest", "seed", "scenario", "events", "agents", "engine", "sim_time_s"];
    for (k, v) in summary {
        if skip_top.contains(&k.as_str()) {
            continue;
        }
        match v {
            Value::Object(m) => {
                for (k2, v2) in m {
                    if let Some(x) = v2.as_f64() {
                        kpis.insert(format!("{k}.{k2}"), Kpi::Num { value: x, abs: 1e-9, rel: DEFAULT_REL });
                    }
                }
            }
            v => {
                if let Some(x) = v.as_f64() {
                    kpis.insert(k.clone(), Kpi::Num { value: x, abs: 1e-9, rel: DEFAULT_REL });
                }
            }
        }
    }
    let e = Expect { scenario: summary.get("scenario").and_then(Value::as_str).map(str::to_string), kpis };
    let pretty = ron::ser::PrettyConfig::new().depth_limit(3).struct_names(true);
    let mut s = String::from("// Expected KPIs (gridtwin run --expect): |got - value| <= abs + rel * |value|.\n");
    s.push_str(&ron::ser::to_string_pretty(&e, pretty).unwrap_or_default());
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_compares() {
        let s: Map<String, Value> =
            serde_json::from_str(r#"{"scenario":"x","mesh":{"pdr":0.99,"nodes":10},"digest":"ab"}"#).unwrap();
        let text = record(&s);
        let e = parse("e.ron", &text).unwrap();
        assert!(compare(&s, &e).iter().all(|l| l.ok), "{text}");
        let mut worse = s.clone();
        worse["mesh"]["pdr"] = Value::from(0.9);
        let lines = compare(&worse, &e);
        let bad: Vec<&Line> = lines.iter().filter(|l| !l.ok).collect();
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].path, "mesh.pdr");
        assert!(render(&lines).contains("REGRESSION"));
        assert!(parse("e.ron", "Expect(kpis: {\"a\": Num(value: 1.0, rel: -1.0)})").is_err());
    }
}
