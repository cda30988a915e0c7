//! A finished run's output directory (what `gridtwin run`/`bridge` write), read for `gridtwin serve` and for
//! the market, mesh and fault panels: CSV tables become lists of JSON objects (numbers where a cell parses as
//! one), `readings.csv` becomes readings in the store's units.

use crate::store::Reading;
use serde_json::{Map, Value};
use std::path::Path;

/// Most rows read from one CSV file.
pub const MAX_CSV_ROWS: usize = 2_000_000;

/// The tables of one run.
#[derive(Default)]
pub struct RunFiles {
    pub summary: Option<Value>,
    pub faults: Vec<Map<String, Value>>,
    pub mesh_nodes: Vec<Map<String, Value>>,
    pub market_prices: Vec<Map<String, Value>>,
    pub market_volumes: Vec<Map<String, Value>>,
    pub market_dr: Vec<Map<String, Value>>,
    pub wallets: Vec<Map<String, Value>>,
    pub channels: Vec<Map<String, Value>>,
    /// `market_origin_{wallet}.csv`, by wallet.
    pub origin: std::collections::BTreeMap<String, Vec<Map<String, Value>>>,
}

/// Reads a CSV table; a missing file is an empty table.
pub fn read_table(path: &Path) -> Result<Vec<Map<String, Value>>, String> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let mut rd = csv::Reader::from_path(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let header: Vec<String> =
        rd.headers().map_err(|e| format!("{}: {e}", path.display()))?.iter().map(String::from).collect();
    let mut out = Vec::new();
    for (i, rec) in rd.records().enumerate() {
        if i >= MAX_CSV_ROWS {
            return Err(format!("{}: more than {MAX_CSV_ROWS} rows", path.display()));
        }
        let rec = rec.map_err(|e| format!("{}: row {}: {e}", path.display(), i + 2))?;
        let mut m = Map::new();
        for (h, cell) in header.iter().zip(rec.iter()) {
            let v = if let Ok(n) = cell.parse::<i64>() {
                Value::from(n)
            } else if let Some(f) = cell.parse::<f64>().ok().filter(|f| f.is_finite()) {
                Value::from(f)
            } else if cell == "true" || cell == "false" {
                Value::Bool(cell == "true")
            } else if cell.is_empty() {
                Value::Null
            } else {
                Value::from(cell)
            };
            m.insert(h.clone(), v);
        }
        out.push(m);
    }
    Ok(out)
}

impl RunFiles {
    /// Reads what exists in `dir`.
    pub fn read(dir: &Path) -> Result<RunFiles, String> {
        if !dir.is_dir() {
            return Err(format!("{}: not a directory (give a run's output directory)", dir.display()));
        }
        let summary = match std::fs::read_to_string(dir.join("summary.json")) {
            Ok(t) => {
                Some(serde_json::from_str(&t).map_err(|e| format!("{}: {e}", dir.join("summary.json").display()))?)
            }
            Err(_) => None,
        };
        let mut origin = std::collections::BTreeMap::new();
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        names.sort();
        for n in names {
            if let Some(w) = n.strip_prefix("market_origin_").and_then(|r| r.strip_suffix(".csv")) {
                origin.insert(w.to_string(), read_table(&dir.join(&n))?);
            }
        }
        Ok(RunFiles {
            summary,
            faults: read_table(&dir.join("faults.csv"))?,
            mesh_nodes: read_table(&dir.join("mesh_nodes.csv"))?,
            market_prices: read_table(&dir.join("market_prices.csv"))?,
            market_volumes: read_table(&dir.join("market_volumes.csv"))?,
            market_dr: read_table(&dir.join("market_dr.csv"))?,
            wallets: read_table(&dir.join("market_wallets.csv"))?,
            channels: read_table(&dir.join("market_channels.csv"))?,
            origin,
        })
    }

    pub fn has_market(&self) -> bool {
        !self.market_prices.is_empty() || !self.wallets.is_empty() || !self.channels.is_empty()
    }
}

/// Reads `readings.csv` (seconds, volts, amperes) into readings (ms, cV, mA) of gateway `gateway`.
pub fn read_readings(path: &Path, gateway: &str) -> Result<Vec<Reading>, String> {
    let mut out = Vec::new();
    for (i, row) in read_table(path)?.into_iter().enumerate() {
        let at = |k: &str| -> Result<f64, String> {
            row.get(k)
                .and_then(Value::as_f64)
                .ok_or_else(|| format!("{}: row {}: column `{k}` is missing or not a number", path.display(), i + 2))
        };
        out.push(Reading {
            gateway: gateway.to_string(),
            lmu: at("lmu_id")? as u32,
            seq: at("seq")? as u32,
            generated_ms: (at("taken_at_s")? * 1000.0).round() as u64,
            received_ms: (at("received_at_s")? * 1000.0).round() as u64,
            v_cv: [
                (at("v_a_v")? * 100.0).round() as u16,
                (at("v_b_v")? * 100.0).round() as u16,
                (at("v_c_v")? * 100.0).round() as u16,
            ],
            i_ma: [
                (at("i_a_a")? * 1000.0).round() as u32,
                (at("i_b_a")? * 1000.0).round() as u32,
                (at("i_c_a")? * 1000.0).round() as u32,
            ],
            p_w: at("p_w")? as i32,
            q_var: at("q_var")? as i32,
            flags: at("flags")? as u16,
        });
    }
    Ok(out)
}
