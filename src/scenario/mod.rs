//! Scenarios as data: the RON schema of a run, its loading with located errors, and the files it names.
//!
//! A scenario names hardware models (`models/<name>.ron`) and networks by name or relative path; they resolve
//! beside the scenario first and then to the copies embedded in the binary ([`assets`]). Every struct denies
//! unknown fields; every error names file:line:column and the field, and suggests a fix.

pub mod assets;
mod error;
pub mod ron_path;

pub use error::InputError;

use crate::engine::{SimDuration, format_duration, parse_duration};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::path::{Path, PathBuf};

/// A duration written as text in a scenario (`"24h"`, `"15min"`, `"250ms"`), held as integer nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub SimDuration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s).map(Dur).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(self.0))
    }
}

/// One simulated system and how long to run it.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name, used in reports and file names.
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Master seed: every random stream derives from it.
    pub seed: u64,
    /// Simulated time to run.
    pub duration: Dur,
    /// Grid physics: network, loads, generation, weather.
    #[serde(default)]
    pub grid: Option<crate::grid::GridConfig>,
    /// LMUs on the feeder's poles: hardware models, protection settings, placement (needs `grid`).
    #[serde(default)]
    pub lmus: Option<crate::twin::scenario::LmuSection>,
    /// Faults and hardware failures to inject (needs `grid`; contactor failures need `lmus`).
    #[serde(default)]
    pub faults: Vec<crate::twin::scenario::FaultSpec>,
    /// Radio mesh between LMUs and coordinators.
    #[serde(default)]
    pub mesh: Option<crate::mesh::MeshConfig>,
    /// Coordinator, UART, gateway and cloud.
    #[serde(default)]
    pub gateway: Option<crate::agents::GatewayConfig>,
    /// The private permissioned chain: validators, their links, Byzantine behaviours.
    #[serde(default)]
    pub chain: Option<crate::chain::ChainConfig>,
    /// What the run writes.
    #[serde(default)]
    pub outputs: OutputConfig,
}

/// Output settings.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// Write SVG plots of the main time series.
    #[serde(default = "yes")]
    pub plots: bool,
    /// Most rows per CSV event log (older rows are kept, the rest counted as dropped).
    #[serde(default = "default_max_log_rows")]
    pub max_log_rows: usize,
}

fn yes() -> bool {
    true
}
fn default_max_log_rows() -> usize {
    1_000_000
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig { plots: true, max_log_rows: default_max_log_rows() }
    }
}

/// A scenario with the source it came from (for located errors and for resolving relative names).
#[derive(Clone, Debug)]
pub struct Loaded {
    pub scenario: Scenario,
    /// File name as given (or `<embedded>/scenarios/default.ron`).
    pub file: String,
    pub text: String,
    /// Directory that relative names resolve against; `None` for embedded scenarios.
    pub base_dir: Option<PathBuf>,
}

/// Longest scenario file accepted (guards against feeding a huge file by mistake).
pub const MAX_SCENARIO_BYTES: usize = 16 << 20;

/// The RON options every input file is read with: `Some(..)` may be omitted around optional sections.
pub fn ron_options() -> ron::Options {
    ron::Options::default().with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME)
}

/// Parses RON text into `T`, turning `ron`'s errors into located [`InputError`]s with a suggestion.
pub fn parse_ron<T: serde::de::DeserializeOwned>(file: &str, text: &str) -> Result<T, InputError> {
    if text.len() > MAX_SCENARIO_BYTES {
        return Err(InputError::file(
            file,
            format!("file is {} bytes; the limit is {MAX_SCENARIO_BYTES}", text.len()),
            None,
        ));
    }
    ron_options().from_str::<T>(text).map_err(|e| {
        let help = suggestion(&e.code);
        InputError::at_line_col(file, text, e.span.start.line, e.span.start.col, e.code.to_string(), help)
    })
}

fn suggestion(code: &ron::Error) -> Option<String> {
    match code {
        ron::Error::NoSuchStructField { expected, found, .. } => {
            let best = expected.iter().min_by_key(|c| edit_distance(c, found)).filter(|c| edit_distance(c, found) <= 3);
            Some(match best {
                Some(c) => format!("did you mean `{c}`?"),
                None => format!("known fields: {}", expected.join(", ")),
            })
        }
        ron::Error::NoSuchEnumVariant { expected, found, .. } => {
            let best = expected.iter().min_by_key(|c| edit_distance(c, found)).filter(|c| edit_distance(c, found) <= 3);
            Some(match best {
                Some(c) => format!("did you mean `{c}`?"),
                None => format!("known variants: {}", expected.join(", ")),
            })
        }
        ron::Error::MissingStructField { field, .. } => Some(format!("add `{field}: ...` to this section")),
        _ => None,
    }
}

/// Levenshtein distance, for "did you mean" hints.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

impl Loaded {
    /// Reads and parses a scenario file (validation is separate: [`Loaded::validate`]).
    pub fn from_file(path: &Path) -> Result<Loaded, InputError> {
        let file = path.display().to_string();
        let text = assets::read_text(path).map_err(|e| InputError::file(&file, e, Some("check the path".into())))?;
        let base_dir =
            path.parent().map(|p| if p.as_os_str().is_empty() { PathBuf::from(".") } else { p.to_path_buf() });
        Self::from_text(file, text, base_dir)
    }

    /// The scenario `cargo run --release` runs: `scenarios/default.ron`, embedded in the binary.
    pub fn default_embedded() -> Loaded {
        let text = assets::embedded("scenarios/default.ron").expect("scenarios/default.ron is embedded at build time");
        Self::from_text("<embedded>/scenarios/default.ron".into(), text.to_string(), None)
            .expect("the embedded default scenario parses (checked by tests)")
    }

    /// Parses scenario text.
    pub fn from_text(file: String, text: String, base_dir: Option<PathBuf>) -> Result<Loaded, InputError> {
        let scenario = parse_ron::<Scenario>(&file, &text)?;
        Ok(Loaded { scenario, file, text, base_dir })
    }

    /// An error located at the value of `path` (e.g. `"gateway.report_every"`), or at the start if absent.
    pub fn error_at(&self, path: &str, message: impl Into<String>, help: Option<String>) -> InputError {
        let pos = ron_path::parse_path(path).ok().and_then(|p| ron_path::find(&self.text, &p)).map_or(0, |r| r.start);
        InputError::at(&self.file, &self.text, pos, format!("`{path}`: {}", message.into()), help)
    }

    /// An error from a section's own validation, whose message starts with a path such as
    /// `grid.weather.step: ...` or `lmus.link.loss: ...`: located at that path when the text has it, else at
    /// `section`.
    pub fn error_in(&self, section: &str, message: String) -> InputError {
        let head: String = message.chars().take_while(|c| !matches!(c, ':' | ' ' | '=')).collect();
        let mut path = head.trim_end_matches('.').to_string();
        if !path.starts_with(section) {
            path = section.to_string();
        }
        while !path.is_empty() {
            let found = ron_path::parse_path(&path).ok().and_then(|p| ron_path::find(&self.text, &p)).is_some();
            if found {
                break;
            }
            match path.rfind(['.', '[']) {
                Some(k) => path.truncate(k),
                None => path.clear(),
            }
        }
        let pos = ron_path::parse_path(&path).ok().and_then(|p| ron_path::find(&self.text, &p)).map_or(0, |r| r.start);
        InputError::at(&self.file, &self.text, pos, message, None)
    }

    /// Checks values the schema cannot: ranges, consistency, and that every named file and model resolves.
    pub fn validate(&self) -> Result<(), InputError> {
        let s = &self.scenario;
        if s.name.trim().is_empty() {
            return Err(self.error_at("name", "must not be empty", Some("give the scenario a short name".into())));
        }
        if s.duration.0 == SimDuration::ZERO {
            return Err(self.error_at("duration", "must be longer than zero", Some("e.g. duration: \"24h\"".into())));
        }
        if s.duration.0 > SimDuration::from_secs(366 * 86_400) {
            return Err(self.error_at(
                "duration",
                "is longer than a year",
                Some("split long studies into runs".into()),
            ));
        }
        if s.outputs.max_log_rows == 0 {
            return Err(self.error_at("outputs.max_log_rows", "must be at least 1", None));
        }
        if let Some(g) = &s.grid {
            g.validate().map_err(|e| self.error_in("grid", e))?;
        }
        if s.lmus.is_some() && s.grid.is_none() {
            return Err(self.error_at("lmus", "LMUs need a `grid` section to sit on", None));
        }
        if let Some(l) = &s.lmus {
            l.validate().map_err(|e| self.error_in("lmus", e))?;
        }
        if !s.faults.is_empty() && s.grid.is_none() {
            return Err(self.error_at("faults", "faults need a `grid` section", None));
        }
        for (k, f) in s.faults.iter().enumerate() {
            f.plan().map_err(|e| self.error_in(&format!("faults[{k}]"), e))?;
        }
        if let Some(m) = &s.mesh {
            m.validate().map_err(|e| self.error_in("mesh", e.clone()))?;
        }
        if let Some(g) = &s.gateway {
            g.validate().map_err(|(field, msg)| self.error_at(&format!("gateway.{field}"), msg, None))?;
        }
        if let Some(c) = &s.chain {
            c.validate().map_err(|e| self.error_in("chain", e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_parses_and_validates() {
        let l = Loaded::default_embedded();
        l.validate().unwrap();
    }

    #[test]
    fn unknown_field_is_located_with_a_suggestion() {
        let text = "Scenario(\n  name: \"x\",\n  seed: 1,\n  duraton: \"1h\",\n)";
        let e = Loaded::from_text("t.ron".into(), text.into(), None).unwrap_err();
        assert_eq!((e.line, e.file.as_str()), (4, "t.ron"));
        assert_eq!(e.help.as_deref(), Some("did you mean `duration`?"));
    }

    #[test]
    fn bad_duration_is_located() {
        let text = "Scenario(name: \"x\", seed: 1,\n duration: \"1 fortnight\")";
        let e = Loaded::from_text("t.ron".into(), text.into(), None).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("unknown unit"), "{}", e.message);
    }
}
