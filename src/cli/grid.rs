//! `gridtwin grid ...`: power flow and short circuits from the command line.

/// Arguments of `gridtwin grid` (filled in with the grid physics).
#[derive(clap::Args, Debug)]
pub struct GridArgs {}

/// Runs a `grid` subcommand.
pub fn run(_args: &GridArgs) -> Result<(), String> {
    Err("grid commands are not available in this build".into())
}
