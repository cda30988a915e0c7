//! `gridtwin theft false-alarms SCENARIO [--days N]`: the false-alarm rate of a theft scenario's section
//! balance on honest days (its taps and tampered meters removed), one seeded day per run.

use crate::scenario::Loaded;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum TheftCmd {
    /// Runs the scenario without its thefts on seeds 1..=DAYS and prints one JSON object: days, sections,
    /// sections flagged, days with an alarm, the rate (percent of section-days) and the largest honest
    /// residual over its threshold.
    FalseAlarms {
        /// Scenario file (RON) with a `theft` section.
        scenario: PathBuf,
        /// Honest days (seeds 1..=DAYS).
        #[arg(long, default_value_t = 100)]
        days: u32,
    },
}

pub fn run(cmd: &TheftCmd) -> Result<(), super::error::CliError> {
    match cmd {
        TheftCmd::FalseAlarms { scenario, days } => {
            if *days == 0 || *days > 100_000 {
                return Err(super::error::CliError::usage(format!("--days must be within 1..=100000 (got {days})")));
            }
            let l = Loaded::from_file(scenario).map_err(super::error::CliError::input)?;
            let f = crate::security::theft::false_alarms(&l, *days)?;
            let text = serde_json::to_string(&f).map_err(|e| e.to_string())?;
            super::error::println(&text)
        }
    }
}
