//! Files a scenario names: looked up on disk beside the scenario first, then among the copies of `scenarios/`
//! and `models/` embedded in the binary at build time. This is the only place the simulation reads files.

use super::{InputError, Loaded};
use std::path::{Path, PathBuf};

include!(concat!(env!("OUT_DIR"), "/embedded.rs"));

/// Largest input file read (networks included).
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// Reads a UTF-8 text file with a size limit.
pub fn read_text(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!("{} is {} bytes; the limit is {MAX_FILE_BYTES}", path.display(), meta.len()));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    String::from_utf8(bytes)
        .map_err(|e| format!("{} is not UTF-8 text (byte {})", path.display(), e.utf8_error().valid_up_to()))
}

/// An embedded file by its path relative to the repository root (`models/lmu-v4.ron`).
pub fn embedded(rel: &str) -> Option<&'static str> {
    EMBEDDED.iter().find(|(p, _)| *p == rel).map(|(_, t)| *t)
}

/// The embedded scenarios (`scenarios/**/*.ron` whose top-level value is a `Scenario(...)`, not a sweep plan),
/// as (path, text).
pub fn embedded_scenarios() -> impl Iterator<Item = (&'static str, &'static str)> {
    EMBEDDED
        .iter()
        .copied()
        .filter(|(p, t)| p.starts_with("scenarios/") && p.ends_with(".ron") && top_level_name(t) == Some("Scenario"))
}

/// The embedded sweep plans (`Sweep(...)` files under `scenarios/`), as (path, text).
pub fn embedded_plans() -> impl Iterator<Item = (&'static str, &'static str)> {
    EMBEDDED
        .iter()
        .copied()
        .filter(|(p, t)| p.starts_with("scenarios/") && p.ends_with(".ron") && top_level_name(t) == Some("Sweep"))
}

/// The struct name a RON document starts with, after comments and attributes.
pub fn top_level_name(text: &str) -> Option<&str> {
    let mut rest = text;
    loop {
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix("//") {
            rest = r.split_once('\n').map_or("", |x| x.1);
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.split_once("*/").map_or("", |x| x.1);
        } else if let Some(r) = rest.strip_prefix("#!") {
            rest = r.split_once(']').map_or("", |x| x.1);
        } else {
            break;
        }
    }
    let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

/// A file named by a scenario, resolved: its display name and contents.
pub struct Resolved {
    pub file: String,
    pub text: String,
}

impl Loaded {
    /// Resolves `rel` (a path relative to the scenario, like `networks/feeder.json`): beside the scenario on
    /// disk, else the embedded copy under `scenarios/`.
    pub fn resolve(&self, rel: &str) -> Result<Resolved, String> {
        if let Some(dir) = &self.base_dir {
            let p = dir.join(rel);
            if p.exists() {
                return read_text(&p).map(|text| Resolved { file: p.display().to_string(), text });
            }
        }
        let key = normalise(&PathBuf::from("scenarios").join(rel));
        match embedded(&key) {
            Some(t) => Ok(Resolved { file: format!("<embedded>/{key}"), text: t.to_string() }),
            None => Err(format!(
                "file `{rel}` not found beside the scenario{}",
                self.base_dir.as_ref().map_or(String::new(), |d| format!(" (looked in {})", d.display()))
            )),
        }
    }

    /// Loads hardware model `name` (`models/<name>.ron`) as `T`: beside the scenario (`models/` next to it or
    /// one level up), else embedded. Parse errors are located in the model file.
    pub fn model<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<(T, Resolved), InputError> {
        if name.is_empty() || name.contains(['/', '\\']) || name.contains("..") {
            return Err(InputError::file(
                &self.file,
                format!("model name `{name}` must be a plain name like `lmu-v4`"),
                None,
            ));
        }
        let file = format!("{name}.ron");
        let mut found = None;
        if let Some(dir) = &self.base_dir {
            for cand in [dir.join("models").join(&file), dir.join("..").join("models").join(&file)] {
                if cand.exists() {
                    let text = read_text(&cand).map_err(|e| InputError::file(&cand.display().to_string(), e, None))?;
                    found = Some(Resolved { file: cand.display().to_string(), text });
                    break;
                }
            }
        }
        if found.is_none() {
            found = embedded(&format!("models/{file}"))
                .map(|t| Resolved { file: format!("<embedded>/models/{file}"), text: t.to_string() });
        }
        let Some(res) = found else {
            let known: Vec<&str> = EMBEDDED
                .iter()
                .filter_map(|(p, _)| p.strip_prefix("models/").and_then(|p| p.strip_suffix(".ron")))
                .collect();
            let best = known
                .iter()
                .min_by_key(|k| super::edit_distance(k, name))
                .filter(|k| super::edit_distance(k, name) <= 3);
            let help = match best {
                Some(b) => format!("did you mean `{b}`?"),
                None => format!("known models: {}", known.join(", ")),
            };
            return Err(InputError::file(
                &self.file,
                format!("no hardware model `{name}` (models/{file})"),
                Some(help),
            ));
        };
        let v = super::parse_ron::<T>(&res.file, &res.text)?;
        Ok((v, res))
    }
}

fn normalise(p: &Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                parts.pop();
            }
            std::path::Component::Normal(s) => parts.push(s.to_string_lossy().to_string()),
            _ => {}
        }
    }
    parts.join("/")
}
