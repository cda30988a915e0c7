//! Scenarios as data: the RON schema of a run, its loading with located errors, and the files it names.
//!
//! A scenario names hardware models (`models/<name>.ron`) and networks by name or relative path; they resolve
//! beside the scenario first and then to the copies embedded in the binary ([`assets`]). Every struct denies
//! unknown fields; every error names file:line:column and the field, and suggests a fix.

pub mod assets;
mod error;
pub mod json_path;
pub mod reference;
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
    /// The energy market: contracts, settlement slot, demand response (needs `grid`).
    #[serde(default)]
    pub market: Option<crate::market::world::MarketConfig>,
    /// The private permissioned chain: validators, their links, Byzantine behaviours.
    #[serde(default)]
    pub chain: Option<crate::chain::ChainConfig>,
    /// Frame security of the LMUs' FLISR frames and of every mesh frame, key provisioning and rotation, and
    /// attackers (needs `lmus` or `mesh`).
    #[serde(default)]
    pub security: Option<crate::security::SecurityConfig>,
    /// Energy-theft detection: illegal taps and tampered meters to place, and the section balance that finds
    /// them (needs `grid` and `lmus`).
    #[serde(default)]
    pub theft: Option<crate::security::theft::TheftConfig>,
    /// Grid frequency over the run and harmonic current sources the LMUs measure (needs `grid` and `lmus`).
    #[serde(default)]
    pub power_quality: Option<crate::twin::scenario::PowerQualitySection>,
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
    /// Per-bus voltages and per-line and per-transformer loading, sampled at a fixed interval
    /// (`grid_bus_voltage_pu.csv`, `grid_branch_loading_pct.csv`). Off by default: a big network makes wide
    /// files.
    #[serde(default)]
    pub grid_detail: Option<GridDetail>,
}

/// Sampled per-element grid outputs: one row per sample time, one column per bus (`b<index>`, the lowest
/// phase-to-neutral voltage in p.u., 5 decimals) or per line and transformer (`l<index>`, `t<index>`: the
/// highest phase current over both ends as % of the rating, 2 decimals). Each sample is the state solved
/// last at or before its time; an empty cell is a de-energised bus or a line without a rating.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GridDetail {
    /// Sampling interval.
    #[serde(default = "default_detail_every")]
    pub every: Dur,
}

fn default_detail_every() -> Dur {
    Dur(SimDuration::from_secs(900))
}

fn yes() -> bool {
    true
}
fn default_max_log_rows() -> usize {
    1_000_000
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig { plots: true, max_log_rows: default_max_log_rows(), grid_detail: None }
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

/// Top-level fields of a scenario whose absence changes how the others validate.
const SECTIONS: &[&str] = &["name", "seed", "duration", "grid", "lmus", "faults", "mesh", "gateway", "outputs"];

/// Longest scenario file accepted (guards against feeding a huge file by mistake).
pub const MAX_SCENARIO_BYTES: usize = 16 << 20;

/// The RON options every input file is read with: `Some(..)` may be omitted around optional sections.
pub fn ron_options() -> ron::Options {
    ron::Options::default().with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME)
}

/// Parses RON text into `T`, turning `ron`'s errors into located [`InputError`]s with a suggestion.
///
/// It reports every error it can find in the file, in file order (the first carries the rest as
/// [`InputError::related`]): after an error it blanks out the innermost field or element holding it (so
/// positions stay put) and parses again, up to [`MAX_ERRORS`] times. A field that is missing only because a
/// broken one was blanked is not reported.
pub fn parse_ron<T: serde::de::DeserializeOwned>(file: &str, text: &str) -> Result<T, InputError> {
    parse_recovering(file, text).map_err(|(e, _)| e)
}

/// The value parsed with broken items blanked, and the paths of those items.
pub type Recovered<T> = Option<(T, Vec<String>)>;

/// [`parse_ron`], also giving back on error the value parsed from the text with the broken items blanked
/// (when that parses), so its values can be validated too and those errors reported alongside.
pub fn parse_recovering<T: serde::de::DeserializeOwned>(
    file: &str,
    text: &str,
) -> Result<T, (InputError, Recovered<T>)> {
    if text.len() > MAX_SCENARIO_BYTES {
        return Err((
            InputError::file(file, format!("file is {} bytes; the limit is {MAX_SCENARIO_BYTES}", text.len()), None),
            None,
        ));
    }
    let first = match ron_options().from_str::<T>(text) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let mut recovered = None;
    let mut errors = Vec::new();
    let mut work = text.to_string();
    let mut blanked: Vec<String> = Vec::new();
    let mut next = Some(first);
    for _ in 0..MAX_ERRORS * 2 {
        let Some(e) = next.take() else { break };
        let items = ron_path::items(&work);
        let pos = byte_offset(&work, e.span.start.line, e.span.start.col);
        let here = ron_path::item_at(&items, pos);
        let consequence = matches!(&e.code, ron::Error::MissingStructField { field, .. }
            if blanked.iter().any(|b| b.rsplit(['.', ']']).next() == Some(*field)));
        if !consequence {
            errors.push(ron_error(file, text, &e, here.map(|i| i.path.as_str())));
            if errors.len() >= MAX_ERRORS {
                break;
            }
        }
        // Blank the innermost field or sequence element around the error (for a field missing because of an
        // earlier blank, the struct that misses it) and look for the next error.
        let Some(target) = items
            .iter()
            .filter(|i| i.item.start <= pos && pos < i.item.end.max(i.item.start + 1) && (i.named || i.in_seq))
            .filter(|i| !consequence || !blanked.contains(&i.path))
            .min_by_key(|i| i.item.len())
        else {
            break;
        };
        if blanked.contains(&target.path) {
            break;
        }
        blanked.push(target.path.clone());
        let blank: String = work[target.item.clone()].chars().map(|c| if c == '\n' { '\n' } else { ' ' }).collect();
        work.replace_range(target.item.clone(), &blank);
        match ron_options().from_str::<T>(&work) {
            Ok(v) => {
                recovered = Some((v, blanked));
                break;
            }
            Err(e) => next = Some(e),
        }
    }
    if errors.is_empty() {
        errors.push(ron_error(file, text, &first_error(text), None));
    }
    Err((InputError::collect(errors).expect("at least one error"), recovered))
}

/// Most errors reported for one file.
pub const MAX_ERRORS: usize = 20;

fn first_error(text: &str) -> ron::error::SpannedError {
    match ron_options().from_str::<ron::Value>(text) {
        Err(e) => e,
        Ok(_) => ron::error::SpannedError {
            code: ron::Error::Message("invalid input".into()),
            span: ron::error::Span {
                start: ron::error::Position { line: 1, col: 1 },
                end: ron::error::Position { line: 1, col: 1 },
            },
        },
    }
}

fn byte_offset(text: &str, line: usize, col: usize) -> usize {
    let mut pos = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            return pos + l.char_indices().nth(col.saturating_sub(1)).map_or(l.len(), |(b, _)| b);
        }
        pos += l.len();
    }
    text.len()
}

/// A `ron` error as a located [`InputError`]; value errors (a bad duration, a wrong type) are prefixed with
/// the path of the field they are in.
fn ron_error(file: &str, text: &str, e: &ron::error::SpannedError, path: Option<&str>) -> InputError {
    let help = suggestion(&e.code);
    let about_the_key = matches!(
        e.code,
        ron::Error::NoSuchStructField { .. }
            | ron::Error::MissingStructField { .. }
            | ron::Error::DuplicateStructField { .. }
            | ron::Error::NoSuchEnumVariant { .. }
    );
    let message = match path {
        Some(p) if !about_the_key && !p.is_empty() => format!("`{p}`: {}", e.code),
        _ => e.code.to_string(),
    };
    InputError::at_line_col(file, text, e.span.start.line, e.span.start.col, message, help)
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

    /// Parses scenario text. On a parse error, the values of the rest of the file are still checked (as
    /// [`Loaded::validate`] does) so that every error is reported at once, in file order.
    pub fn from_text(file: String, text: String, base_dir: Option<PathBuf>) -> Result<Loaded, InputError> {
        match parse_recovering::<Scenario>(&file, &text) {
            Ok(scenario) => Ok(Loaded { scenario, file, text, base_dir }),
            Err((e, None)) => Err(e),
            // Blanking a whole section, or an element of a list, changes what the rest means (LMUs without a
            // grid, shifted fault indices): then only the parse errors are reported.
            Err((e, Some((_, blanked))))
                if blanked.iter().any(|p| p.contains('[') || SECTIONS.contains(&p.as_str())) =>
            {
                Err(e)
            }
            Err((e, Some((scenario, _)))) => {
                let rest = Loaded { scenario, file, text, base_dir };
                match rest.validate() {
                    Ok(()) => Err(e),
                    Err(more) => Err(InputError::collect(vec![e, more]).expect("two errors")),
                }
            }
        }
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
    /// Reports every section's error, in file order (the first error carries the rest as `related`).
    pub fn validate(&self) -> Result<(), InputError> {
        let s = &self.scenario;
        let mut errors = Vec::new();
        if s.name.trim().is_empty() {
            errors.push(self.error_at("name", "must not be empty", Some("give the scenario a short name".into())));
        }
        if s.duration.0 == SimDuration::ZERO {
            errors.push(self.error_at("duration", "must be longer than zero", Some("e.g. duration: \"24h\"".into())));
        }
        if s.duration.0 > SimDuration::from_secs(366 * 86_400) {
            errors.push(self.error_at(
                "duration",
                "is longer than a year",
                Some("split long studies into runs".into()),
            ));
        }
        if s.outputs.max_log_rows == 0 {
            errors.push(self.error_at("outputs.max_log_rows", "must be at least 1", None));
        }
        if let Some(d) = &s.outputs.grid_detail {
            if d.every.0 < SimDuration::from_secs(1) {
                errors.push(self.error_at("outputs.grid_detail.every", "must be at least 1s", None));
            } else if s.duration.0.as_nanos() / d.every.0.as_nanos() > 100_000 {
                errors.push(self.error_at(
                    "outputs.grid_detail.every",
                    "gives more than 100000 samples over the run",
                    Some("sample less often".into()),
                ));
            }
            if s.grid.is_none() {
                errors.push(self.error_at("outputs.grid_detail", "needs a `grid` section", None));
            }
        }
        if let Some(g) = &s.grid
            && let Err(e) = g.validate()
        {
            errors.push(self.error_in("grid", e));
        }
        if s.lmus.is_some() && s.grid.is_none() {
            errors.push(self.error_at("lmus", "LMUs need a `grid` section to sit on", None));
        }
        if let Some(l) = &s.lmus
            && let Err(e) = l.validate()
        {
            errors.push(self.error_in("lmus", e));
        }
        if let Some(pq) = &s.power_quality {
            if let Err(e) = pq.plan() {
                errors.push(self.error_in("power_quality", e));
            }
            if s.lmus.is_none() {
                errors.push(self.error_at("power_quality", "needs an `lmus` section to measure it", None));
            }
        }
        if !s.faults.is_empty() && s.grid.is_none() {
            errors.push(self.error_at("faults", "faults need a `grid` section", None));
        }
        for (k, f) in s.faults.iter().enumerate() {
            if let Err(e) = f.plan() {
                errors.push(self.error_in(&format!("faults[{k}]"), e));
            }
        }
        if let Some(sec) = &s.security {
            if let Err(e) = sec.validate() {
                errors.push(self.error_in("security", e));
            }
            if s.lmus.is_none() && s.mesh.is_none() {
                errors.push(self.error_at("security", crate::security::NEEDS_LMUS_OR_MESH, None));
            }
        }
        if let Some(t) = &s.theft
            && let Err(e) = t.validate()
        {
            errors.push(self.error_in("theft", e));
        }
        if let Some(m) = &s.mesh
            && let Err(e) = m.validate()
        {
            errors.push(self.error_in("mesh", e.clone()));
        }
        if let Some(g) = &s.gateway
            && let Err((field, msg)) = g.validate()
        {
            errors.push(self.error_at(&format!("gateway.{field}"), msg, None));
        }
        if let Some(m) = &s.market {
            if s.grid.is_none() {
                errors.push(self.error_at("market", "the market needs a `grid` section to meter", None));
            }
            if let Err(e) = m.validate() {
                errors.push(self.error_in("market", e));
            }
        }
        if let Some(c) = &s.chain
            && let Err(e) = c.validate()
        {
            errors.push(self.error_in("chain", e));
        }
        match InputError::collect(errors) {
            Some(e) => Err(e),
            None => Ok(()),
        }
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
