//! Simulation time: integer nanoseconds since the start of the run ([`SimTime`]) and spans ([`SimDuration`]).
//!
//! Never f64 seconds on the simulation path: f64 loses nanoseconds after about 104 days and makes event
//! order depend on rounding. Conversions to f64 exist only for reporting.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A point in simulated time, in nanoseconds since the start of the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SimTime(pub u64);

/// A span of simulated time in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SimDuration(pub u64);

pub const NS_PER_US: u64 = 1_000;
pub const NS_PER_MS: u64 = 1_000_000;
pub const NS_PER_S: u64 = 1_000_000_000;

impl SimTime {
    pub const ZERO: SimTime = SimTime(0);
    pub const MAX: SimTime = SimTime(u64::MAX);
    pub const fn from_nanos(ns: u64) -> Self {
        SimTime(ns)
    }
    pub const fn from_secs(s: u64) -> Self {
        SimTime(s.saturating_mul(NS_PER_S))
    }
    pub const fn as_nanos(self) -> u64 {
        self.0
    }
    /// Seconds as f64, for reports only.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / NS_PER_S as f64
    }
    pub const fn saturating_add(self, d: SimDuration) -> SimTime {
        SimTime(self.0.saturating_add(d.0))
    }
    pub const fn saturating_since(self, earlier: SimTime) -> SimDuration {
        SimDuration(self.0.saturating_sub(earlier.0))
    }
    /// The firmware's view of this instant (same epoch, same unit).
    pub const fn to_fw(self) -> gridtwin_firmware::Instant {
        gridtwin_firmware::Instant(self.0)
    }
    pub const fn from_fw(t: gridtwin_firmware::Instant) -> Self {
        SimTime(t.0)
    }
}

impl SimDuration {
    pub const ZERO: SimDuration = SimDuration(0);
    pub const fn from_nanos(ns: u64) -> Self {
        SimDuration(ns)
    }
    pub const fn from_micros(us: u64) -> Self {
        SimDuration(us.saturating_mul(NS_PER_US))
    }
    pub const fn from_millis(ms: u64) -> Self {
        SimDuration(ms.saturating_mul(NS_PER_MS))
    }
    pub const fn from_secs(s: u64) -> Self {
        SimDuration(s.saturating_mul(NS_PER_S))
    }
    pub const fn from_mins(m: u64) -> Self {
        SimDuration(m.saturating_mul(60 * NS_PER_S))
    }
    pub const fn as_nanos(self) -> u64 {
        self.0
    }
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / NS_PER_S as f64
    }
    pub fn as_millis_f64(self) -> f64 {
        self.0 as f64 / NS_PER_MS as f64
    }
    /// Rounds a non-negative, finite number of seconds to the nearest nanosecond; `None` otherwise.
    pub fn try_from_secs_f64(s: f64) -> Option<Self> {
        if s.is_finite() && s >= 0.0 && s < (u64::MAX / NS_PER_S) as f64 {
            Some(SimDuration((s * NS_PER_S as f64).round() as u64))
        } else {
            None
        }
    }
}

impl std::ops::Add<SimDuration> for SimTime {
    type Output = SimTime;
    fn add(self, d: SimDuration) -> SimTime {
        self.saturating_add(d)
    }
}

impl std::ops::Add for SimDuration {
    type Output = SimDuration;
    fn add(self, d: SimDuration) -> SimDuration {
        SimDuration(self.0.saturating_add(d.0))
    }
}

impl fmt::Display for SimTime {
    /// `HH:MM:SS.mmm` after the start (days counted in hours), the stamp used in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0 / NS_PER_MS;
        let (h, m, s, milli) = (ms / 3_600_000, (ms / 60_000) % 60, (ms / 1000) % 60, ms % 1000);
        write!(f, "{h:02}:{m:02}:{s:02}.{milli:03}")
    }
}

impl fmt::Display for SimDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", format_duration(*self))
    }
}

/// Parses a duration such as `"24h"`, `"15min"`, `"30s"`, `"250ms"`, `"10us"`, `"5ns"`, `"1h30min"` or
/// `"1.5s"` into integer nanoseconds. Fractions are exact to the nanosecond (parsed as decimal, not f64).
pub fn parse_duration(text: &str) -> Result<SimDuration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration; expected e.g. \"24h\", \"15min\", \"30s\", \"250ms\"".into());
    }
    if let Some(rest) = s.strip_prefix('-') {
        return Err(format!("`{text}`: durations are never negative (did you mean \"{}\"?)", rest.trim()));
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total: u128 = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.' || bytes[i] == b'_') {
            i += 1;
        }
        let num = &s[start..i];
        while i < bytes.len() && bytes[i] == b' ' {
            i += 1;
        }
        let ustart = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &s[ustart..i];
        while i < bytes.len() && bytes[i] == b' ' {
            i += 1;
        }
        if num.is_empty() {
            return Err(match (unit, s[i..].chars().next()) {
                ("", Some(c)) => {
                    format!("`{text}`: unexpected `{c}`; expected e.g. \"24h\", \"15min\", \"30s\", \"250ms\"")
                }
                ("", None) => format!("`{text}`: expected a number with a unit, e.g. \"24h\" or \"15min\""),
                _ => format!("`{text}`: expected a number before `{unit}`, e.g. \"2{unit}\""),
            });
        }
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" | "sec" => 1_000_000_000,
            "min" | "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "d" => 86_400_000_000_000,
            "" => return Err(format!("`{text}`: missing unit after `{num}` (use ns, us, ms, s, min, h or d)")),
            other => return Err(format!("`{text}`: unknown unit `{other}` (use ns, us, ms, s, min, h or d)")),
        };
        let num = num.replace('_', "");
        let (int, frac) = match num.split_once('.') {
            Some((a, b)) => (a, b),
            None => (num.as_str(), ""),
        };
        if frac.contains('.') || (int.is_empty() && frac.is_empty()) {
            return Err(format!("`{text}`: `{num}` is not a number"));
        }
        let int_v: u128 =
            if int.is_empty() { 0 } else { int.parse().map_err(|_| format!("`{text}`: `{int}` is too large"))? };
        let mut value = int_v.checked_mul(scale).ok_or_else(|| format!("`{text}` is too long"))?;
        let mut place = scale;
        for c in frac.bytes() {
            place /= 10;
            if place == 0 {
                if c != b'0' {
                    return Err(format!("`{text}`: finer than one nanosecond"));
                }
                continue;
            }
            value += (c - b'0') as u128 * place;
        }
        total = total.checked_add(value).ok_or_else(|| format!("`{text}` is too long"))?;
    }
    u64::try_from(total).map(SimDuration).map_err(|_| format!("`{text}` is longer than 584 years"))
}

/// Formats a duration in the largest units that keep it exact, e.g. `1h30min`, `250ms`, `0s`.
pub fn format_duration(d: SimDuration) -> String {
    if d.0 == 0 {
        return "0s".into();
    }
    const UNITS: [(&str, u64); 6] = [
        ("h", 3_600 * NS_PER_S),
        ("min", 60 * NS_PER_S),
        ("s", NS_PER_S),
        ("ms", NS_PER_MS),
        ("us", NS_PER_US),
        ("ns", 1),
    ];
    let mut rest = d.0;
    let mut out = String::new();
    for (name, scale) in UNITS {
        if rest >= scale {
            out.push_str(&format!("{}{name}", rest / scale));
            rest %= scale;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_durations() {
        for (text, ns) in [
            ("24h", 86_400 * NS_PER_S),
            ("15min", 900 * NS_PER_S),
            ("1h30min", 5_400 * NS_PER_S),
            ("1.5s", 1_500_000_000),
            ("250ms", 250 * NS_PER_MS),
            ("0.000000001s", 1),
            ("7ns", 7),
        ] {
            assert_eq!(parse_duration(text).unwrap().0, ns, "{text}");
            assert_eq!(parse_duration(&format_duration(SimDuration(ns))).unwrap().0, ns);
        }
        for bad in ["", "10", "h", "1.2.3s", "5 parsecs", "0.0000000001s", "99999999999999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
