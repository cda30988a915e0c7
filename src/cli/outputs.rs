//! `gridtwin plot OUT_DIR [--kind ...]`, `gridtwin report OUT_DIR`, and the `--expect` / `--write-expect` KPI
//! check of `gridtwin run` (see [`crate::report::plot`], [`crate::report::html`], [`crate::report::expect`]).

use super::CliError;
use crate::report::expect;
use crate::scenario::InputError;
use std::path::Path;

/// Redraws the plots of an output directory from its files.
pub fn plot(dir: &Path, kinds: &[String]) -> Result<(), CliError> {
    if !dir.join("summary.json").exists() {
        return Err(format!("{} is not a gridtwin output directory (no summary.json)", dir.display()).into());
    }
    let files = crate::report::plot::render_dir(dir, kinds)?;
    println!("{} plot files written in {}", files.len(), dir.display());
    Ok(())
}

/// Writes `report.html` into an output directory.
pub fn report(dir: &Path) -> Result<(), CliError> {
    let p = crate::report::html::write_report(dir)?;
    println!("report: {}", p.display());
    Ok(())
}

/// After a run: records the KPIs (`write`) and/or compares them with `expect`; a regression is an error.
pub fn check_expect(
    summary: &serde_json::Map<String, serde_json::Value>,
    expect_file: Option<&Path>,
    write: Option<&Path>,
) -> Result<(), CliError> {
    if let Some(w) = write {
        crate::report::write_file_atomic(w, expect::record(summary).as_bytes())?;
        println!("  expected KPIs recorded in {}", w.display());
    }
    if let Some(f) = expect_file {
        let name = f.display().to_string();
        let text = crate::scenario::assets::read_text(f).map_err(|e| InputError::file(&name, e, None))?;
        let e = expect::parse(&name, &text)?;
        let lines = expect::compare(summary, &e);
        let bad = lines.iter().filter(|l| !l.ok).count();
        if bad > 0 {
            eprint!("{}", expect::render(&lines));
            return Err(format!("{bad} of {} KPIs regressed against {name}", lines.len()).into());
        }
        println!("  {} KPIs within tolerance of {name}", lines.len());
    }
    Ok(())
}
