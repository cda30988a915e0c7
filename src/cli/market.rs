//! `gridtwin market clear ORDERS.json` (clear one order book, print JSON) and
//! `gridtwin wallet trace OUT_DIR --wallet ID [--kwh CODE]` (where every kWh a wallet consumed came from).

use super::CliError;
use super::error;
use crate::market::{clearing, orders};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum MarketCmd {
    /// Clear one order book (JSON) to maximum welfare; prints the matches, the welfare, the optimality
    /// certificate and the baselines' welfare as JSON on stdout.
    Clear {
        /// Order book: {"bids": [...], "asks": [...], "fees": [...]}.
        orders: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum WalletCmd {
    /// Print where every kWh a wallet consumed came from (plant, technology, location, slot, trades), by
    /// re-executing the run's ledger and checking its state roots.
    Trace(TraceArgs),
}

#[derive(Args, Debug)]
pub struct TraceArgs {
    /// Output directory of a run with a market.
    pub out_dir: PathBuf,
    /// Wallet id (a customer or producer of the scenario's contracts).
    #[arg(long)]
    pub wallet: String,
    /// Only this kWh: `{domain}-{plant}-{slot}-{serial}`.
    #[arg(long)]
    pub kwh: Option<String>,
    /// On a private ledger: the participant whose key opens the sealed readings and claims (default the
    /// wallet's owner, `owner/ID`; the grid operator's is `grid-operator-supply`, an auditor's `auditor/NAME`).
    #[arg(long = "as", value_name = "PARTICIPANT")]
    pub reader: Option<String>,
}

/// Runs `gridtwin market ...`.
pub fn market(cmd: &MarketCmd) -> Result<(), CliError> {
    match cmd {
        MarketCmd::Clear { orders: path } => {
            let file = path.display().to_string();
            let text = crate::scenario::assets::read_text(path).map_err(|e| CliError::usage(format!("{file}: {e}")))?;
            // A malformed book is bad input (exit 2); the message names the item.
            let book = orders::parse_book(&file, &text).map_err(CliError::usage)?;
            let (c, d) = clearing::clear(&book).map_err(|e| format!("{file}: {e}"))?;
            clearing::verify(&book, &c, &d).map_err(|e| format!("{file}: clearing failed its own check: {e}"))?;
            let g = clearing::greedy(&book);
            let a = clearing::cda(&book, 0);
            let out = orders::clearing_json(&book, &c, &d, &g, &a);
            error::println(&serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?)
        }
    }
}

/// Runs `gridtwin wallet ...`.
pub fn wallet(cmd: &WalletCmd) -> Result<(), CliError> {
    match cmd {
        WalletCmd::Trace(a) => {
            let text = crate::market::trace::trace(&a.out_dir, &a.wallet, a.kwh.as_deref(), a.reader.as_deref())?;
            error::print(&text)
        }
    }
}
