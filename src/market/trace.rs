//! `gridtwin wallet trace`: re-executes a run's market ledger (`market_ledger.csv`: genesis, then every
//! ordered transaction) from genesis, checks every block's state root against `market_blocks.csv`, and prints
//! where each kWh a wallet claimed came from: plant, technology, location, slot, and every movement (mint,
//! P2P trade with its price and fee, transfer, grid import) it passed through before the claim.
//!
//! On a private ledger the claims are sealed: the trace opens them with the key of the reader (by default the
//! wallet's owner), takes the consumed part of what each claim retired, and adds the grid import (the reading
//! less the claim) split over the supplier's mix. A reader with no box for the wallet gets an error, not a
//! trace.

use super::app::{CHANNEL_NAMES, Genesis, MarketApp, MoveKind, Movement};
use super::certs::Range;
use super::view;
use gridtwin_firmware::app::{Application, BlockInfo};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

fn unhex(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err("odd-length hex".into());
    }
    (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())).collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Replays the ledger of `out_dir`; returns the application after the last block.
pub fn replay(out_dir: &Path) -> Result<MarketApp, String> {
    replay_with_txs(out_dir).map(|x| x.0)
}

/// [`replay`], with the transactions the ledger accepted, in order.
pub fn replay_with_txs(out_dir: &Path) -> Result<(MarketApp, Vec<Vec<u8>>), String> {
    let lp = out_dir.join("market_ledger.csv");
    let bp = out_dir.join("market_blocks.csv");
    let mut lr = csv::Reader::from_path(&lp)
        .map_err(|e| format!("{}: {e} (a run with a `market` section writes it)", lp.display()))?;
    let mut br = csv::Reader::from_path(&bp).map_err(|e| format!("{}: {e}", bp.display()))?;
    let mut roots: BTreeMap<u64, (u64, String)> = BTreeMap::new();
    for (k, rec) in br.records().enumerate() {
        let rec = rec.map_err(|e| format!("{}: row {}: {e}", bp.display(), k + 2))?;
        let h: u64 =
            rec.get(0).unwrap_or("").parse().map_err(|_| format!("{}: row {}: bad height", bp.display(), k + 2))?;
        let t: u64 =
            rec.get(1).unwrap_or("").parse().map_err(|_| format!("{}: row {}: bad time", bp.display(), k + 2))?;
        roots.insert(h, (t, rec.get(4).unwrap_or("").to_string()));
    }
    let mut app: Option<MarketApp> = None;
    let mut accepted: Vec<Vec<u8>> = Vec::new();
    let mut block: Vec<Vec<u8>> = Vec::new();
    let mut height = 0u64;
    let finish = |app: &mut MarketApp, height: u64, block: &mut Vec<Vec<u8>>| -> Result<(), String> {
        let (t, root) = roots.get(&height).cloned().ok_or(format!("block {height} missing from market_blocks.csv"))?;
        let refs: Vec<&[u8]> = block.iter().map(|b| b.as_slice()).collect();
        app.execute_block(&BlockInfo { height, time_ns: t, proposer: 0 }, &refs);
        let got = hex(&app.commit());
        if got != root {
            return Err(format!(
                "block {height}: state root {got} differs from the recorded {root}: the ledger was altered"
            ));
        }
        block.clear();
        Ok(())
    };
    for (k, rec) in lr.records().enumerate() {
        let row = k + 2;
        let rec = rec.map_err(|e| format!("{}: row {row}: {e}", lp.display()))?;
        let h: u64 =
            rec.get(0).unwrap_or("").parse().map_err(|_| format!("{}: row {row}: bad height", lp.display()))?;
        let bytes = unhex(rec.get(4).unwrap_or("")).map_err(|e| format!("{}: row {row}: {e}", lp.display()))?;
        if h == 0 {
            let g = Genesis::decode(&bytes).map_err(|e| format!("{}: row {row}: genesis: {e}", lp.display()))?;
            let a = MarketApp::new(g);
            let want = roots.get(&0).map(|r| r.1.clone()).unwrap_or_default();
            if hex(&a.root()) != want {
                return Err("genesis root differs from the recorded one: the ledger was altered".into());
            }
            app = Some(a);
            continue;
        }
        let a = app.as_mut().ok_or(format!("{}: no genesis row before block {h}", lp.display()))?;
        if h != height {
            if height > 0 {
                finish(a, height, &mut block)?;
            }
            height = h;
        }
        if rec.get(3) == Some("0") {
            accepted.push(bytes.clone());
        }
        block.push(bytes);
    }
    let mut a = app.ok_or(format!("{}: no genesis row", lp.display()))?;
    if height > 0 {
        finish(&mut a, height, &mut block)?;
    }
    Ok((a, accepted))
}

fn describe(app: &MarketApp, m: &Movement) -> String {
    let g = &app.genesis;
    let w = |x: u32| g.wallets.get(x as usize).map_or("?".to_string(), |w| w.id.clone());
    match m.kind {
        MoveKind::Mint => format!("minted to {} (block {})", w(m.to), m.height),
        MoveKind::Import => format!("grid import minted to {} from the supplier mix (block {})", w(m.to), m.height),
        MoveKind::Trade { price, fee } => format!(
            "P2P trade {} -> {} at {:.3} ct/kWh + fee {:.3} ct/kWh (block {})",
            w(m.from),
            w(m.to),
            price as f64 / 1000.0,
            fee as f64 / 1000.0,
            m.height
        ),
        MoveKind::Transfer => format!("transfer {} -> {} (block {})", w(m.from), w(m.to), m.height),
        MoveKind::Offtake { channel, price } => format!(
            "sold {} -> {} via {} at {:.3} ct/kWh (block {})",
            w(m.from),
            w(m.to),
            CHANNEL_NAMES.get(channel as usize).unwrap_or(&"?"),
            price as f64 / 1000.0,
            m.height
        ),
        MoveKind::Claim => format!("claimed by {} (block {})", w(m.to), m.height),
        MoveKind::SealedClaim => format!("consumed by {} under its sealed claim (block {})", w(m.to), m.height),
    }
}

/// Parses a kWh code `{domain}-{plant}-{slot}-{serial}` into (plant, slot, Wh range).
fn parse_code(app: &MarketApp, code: &str) -> Result<(u32, u32, u64, u64), String> {
    let parts: Vec<&str> = code.split('-').collect();
    let bad = || format!("kWh code \"{code}\": expected {{domain}}-{{plant}}-{{slot}}-{{serial}}");
    if parts.len() != 4 {
        return Err(bad());
    }
    if parts[0] != app.genesis.domain {
        return Err(format!("kWh code \"{code}\": domain is \"{}\" in this ledger", app.genesis.domain));
    }
    let plant = app
        .genesis
        .plants
        .iter()
        .position(|p| p.id == parts[1])
        .ok_or_else(|| format!("kWh code \"{code}\": no plant \"{}\"", parts[1]))? as u32;
    let slot: u32 = parts[2].parse().map_err(|_| bad())?;
    let serial: u64 = parts[3].parse().map_err(|_| bad())?;
    Ok((plant, slot, serial * 1000, serial * 1000 + 1000))
}

/// The trace of `wallet` (optionally one kWh) as text; on a private ledger as `reader` reads it (a participant
/// name; default the wallet's owner).
pub fn trace(out_dir: &Path, wallet: &str, kwh: Option<&str>, reader: Option<&str>) -> Result<String, String> {
    let (app, txs) = replay_with_txs(out_dir)?;
    let g = &app.genesis;
    let w = g.wallets.iter().position(|x| x.id == wallet).ok_or_else(|| {
        let known: Vec<&str> = g.wallets.iter().map(|w| w.id.as_str()).collect();
        format!("no wallet \"{wallet}\" in this ledger (known: {})", known.join(", "))
    })? as u32;
    // A private ledger: what the reader can open of this wallet.
    let sealed = match &g.privacy {
        None => None,
        Some(_) => {
            let name = reader.map_or_else(|| format!("owner/{wallet}"), str::to_string);
            let v = view::open_as(g, txs.iter().map(|t| t.as_slice()), &name).ok_or_else(|| {
                format!("\"{name}\" is not a participant of this ledger, so it holds no key to its sealed readings")
            })?;
            let mine = |m: &BTreeMap<(u32, u32), u64>| m.keys().filter(|k| k.0 == w).count();
            let sealed_here = app.state.sealed.keys().filter(|k| k.0 == w).count();
            if sealed_here > 0 && mine(&v.consumed_wh) == 0 {
                return Err(format!(
                    "wallet {wallet}'s readings are sealed and \"{name}\" opens none of them ({} sealed transactions \
                     not addressed to it{})",
                    v.not_addressed,
                    if v.unreadable > 0 {
                        format!(", {} that do not open with its key", v.unreadable)
                    } else {
                        String::new()
                    }
                ));
            }
            Some((name, v))
        }
    };
    if reader.is_some() && sealed.is_none() {
        return Err("--as reads a private ledger; this ledger's readings are in clear".into());
    }
    // The consumed part of each sealed claim as claim movements, each with the log position of its retirement
    // (its history is every movement before that), on a private ledger.
    let consumed: Vec<(usize, Movement)> = sealed.as_ref().map_or(Vec::new(), |(_, v)| {
        v.claimed_wh
            .iter()
            .filter(|(k, _)| k.0 == w)
            .flat_map(|(&(_, slot), &k)| {
                let at = app
                    .log
                    .iter()
                    .position(|m| m.kind == MoveKind::SealedClaim && m.to == w && m.range.slot == slot)
                    .unwrap_or(app.log.len());
                let height = app.log.get(at).map_or(0, |m| m.height);
                view::consumed_ranges(&app, w, slot, k)
                    .into_iter()
                    .map(move |range| (at, Movement { height, kind: MoveKind::SealedClaim, from: w, to: w, range }))
            })
            .collect()
    });
    let filter = kwh.map(|c| parse_code(&app, c)).transpose()?;
    // Movements per (plant, slot), in ledger order.
    let mut by_ps: BTreeMap<(u32, u32), Vec<usize>> = BTreeMap::new();
    for (i, m) in app.log.iter().enumerate() {
        by_ps.entry((m.range.plant, m.range.slot)).or_default().push(i);
    }
    let mut out = String::new();
    let mut total = 0u64;
    let mut by_tech: BTreeMap<&str, u64> = BTreeMap::new();
    let mut lines = 0usize;
    let claims: Vec<(usize, &Movement)> = if sealed.is_some() {
        consumed.iter().map(|(at, c)| (*at, c)).collect()
    } else {
        app.log.iter().enumerate().filter(|(_, c)| c.kind == MoveKind::Claim && c.to == w).collect()
    };
    for (i, c) in claims {
        let mut r = c.range;
        if let Some((p, s, a, b)) = filter {
            if r.plant != p || r.slot != s || r.end() <= a || r.start >= b {
                continue;
            }
            let (lo, hi) = (r.start.max(a), r.end().min(b));
            r = Range { start: lo, len: hi - lo, ..r };
        }
        // Cut the claimed range where earlier movements of the same (plant, slot) begin or end.
        let history: Vec<&Movement> = by_ps[&(r.plant, r.slot)]
            .iter()
            .filter(|&&j| j < i)
            .map(|&j| &app.log[j])
            .filter(|m| m.range.start < r.end() && r.start < m.range.end())
            .collect();
        let mut cuts = vec![r.start, r.end()];
        for m in &history {
            cuts.extend([m.range.start.max(r.start), m.range.end().min(r.end())]);
        }
        cuts.sort_unstable();
        cuts.dedup();
        let p = &g.plants[r.plant as usize];
        for win in cuts.windows(2) {
            let (a, b) = (win[0], win[1]);
            let steps: Vec<String> = history
                .iter()
                .filter(|m| m.range.start <= a && b <= m.range.end())
                .map(|m| describe(&app, m))
                .collect();
            total += b - a;
            *by_tech.entry(p.tech.name()).or_insert(0) += b - a;
            let place = if p.supplier {
                "grid import (supplier mix)".to_string()
            } else {
                format!("at ({} m, {} m) on feeder {}", p.x_m, p.y_m, p.feeder)
            };
            let slot_min = r.slot as u64 * g.slot_ns / 60_000_000_000;
            let _ = writeln!(
                out,
                "{} Wh {}..{} ({} Wh): plant {} ({}) {place}, slot {} ({:02}:{:02}): {}; {}",
                g.kwh_code(r.plant, r.slot, a),
                a,
                b,
                b - a,
                p.id,
                p.tech.name(),
                r.slot,
                (slot_min / 60) % 24,
                slot_min % 60,
                steps.join("; "),
                describe(&app, c)
            );
            lines += 1;
        }
    }
    // Grid import of a private ledger: the reading less the claim, over the supplier's mix.
    let mut imported = 0u64;
    if let Some((_, v)) = &sealed
        && filter.is_none()
    {
        let wi = &g.wallets[w as usize];
        for (&(_, slot), _) in v.claimed_wh.iter().filter(|(k, _)| k.0 == w) {
            let Some(u) = v.import_wh(w, slot).filter(|&u| u > 0) else { continue };
            imported += u;
            let parts: Vec<String> = g
                .import_shares(wi, u)
                .into_iter()
                .filter(|&(_, q)| q > 0)
                .map(|(p, q)| {
                    *by_tech.entry(g.plants[p as usize].tech.name()).or_insert(0) += q;
                    format!("{} {q} Wh", g.plants[p as usize].id)
                })
                .collect();
            let slot_min = slot as u64 * g.slot_ns / 60_000_000_000;
            let _ = writeln!(
                out,
                "grid import {u} Wh, slot {slot} ({:02}:{:02}): supplier mix {} (sealed: the reading less the claim)",
                (slot_min / 60) % 24,
                slot_min % 60,
                parts.join(", ")
            );
            lines += 1;
        }
    }
    total += imported;
    let metered: u64 = match &sealed {
        None => app.state.metered.iter().filter(|((x, _), _)| *x == w).map(|(_, v)| v).sum(),
        Some((_, v)) => v.consumed_wh.iter().filter(|((x, _), _)| *x == w).map(|(_, v)| v).sum(),
    };
    let mut head = String::new();
    let _ = writeln!(head, "wallet {wallet}: {total} Wh traced in {lines} pieces");
    if let Some((name, v)) = &sealed {
        let _ = writeln!(
            head,
            "private ledger: {} sealed readings and {} sealed claims of this wallet opened with {name}'s key",
            v.consumed_wh.keys().filter(|k| k.0 == w).count(),
            v.claimed_wh.keys().filter(|k| k.0 == w).count(),
        );
    }
    if filter.is_none() {
        let _ = writeln!(
            head,
            "metered consumption {metered} Wh, claimed {} Wh{} ({})",
            total,
            if sealed.is_some() {
                format!(" ({} from certificates, {imported} grid import)", total - imported)
            } else {
                String::new()
            },
            if total == metered {
                "every consumed Wh has an origin".to_string()
            } else {
                format!("{} Wh unclaimed (slots not yet settled)", metered.saturating_sub(total))
            }
        );
        let mix: Vec<String> = by_tech
            .iter()
            .map(|(t, v)| {
                format!("{t} {v} Wh ({:.1} %)", if total > 0 { 100.0 * *v as f64 / total as f64 } else { 0.0 })
            })
            .collect();
        let _ = writeln!(head, "origin: {}", mix.join(", "));
    }
    Ok(head + &out)
}
