//! The JSON order-book format of `gridtwin market clear` (input and output), with errors that name the item.
//!
//! Input: `{"bids": [{"id", "wh", "price", "accept"?}], "asks": [{"id", "wh", "price", "tech"}],
//! "fees"?: [{"bid", "ask", "fee"}]}`: volumes are positive integers (Wh), prices and fees integers per kWh
//! (fees >= 0), `accept` absent = any technology, a missing fee = 0. Output:
//! `{"matches": [{"bid", "ask", "wh", "price"}], "welfare"}` plus the certificate and the baselines.

use super::clearing::{ACCEPT_ANY, Ask, Bid, Book, Clearing, Duals, MAX_ORDERS, MAX_PRICE, MAX_WH, Tech};
use serde::Deserialize;
use serde_json::{Number, Value, json};
use std::collections::BTreeMap;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBook {
    bids: Vec<RawBid>,
    asks: Vec<RawAsk>,
    #[serde(default)]
    fees: Vec<RawFee>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBid {
    id: String,
    wh: Number,
    price: Number,
    #[serde(default)]
    accept: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAsk {
    id: String,
    wh: Number,
    price: Number,
    tech: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFee {
    bid: String,
    ask: String,
    fee: Number,
}

fn volume(item: &str, n: &Number) -> Result<u64, String> {
    match n.as_u64() {
        Some(v) if (1..=MAX_WH).contains(&v) => Ok(v),
        _ => Err(format!("{item}: wh = {n} must be a positive whole number of Wh (at most {MAX_WH})")),
    }
}

fn integer(item: &str, field: &str, n: &Number, min: i64) -> Result<i64, String> {
    match n.as_i64() {
        Some(v) if (min..=MAX_PRICE).contains(&v) => Ok(v),
        _ => Err(format!("{item}: {field} = {n} must be a whole number within {min}..={MAX_PRICE} per kWh")),
    }
}

/// Parses an order book from JSON text; `file` names the source in errors. Every error names the item.
pub fn parse_book(file: &str, text: &str) -> Result<Book, String> {
    let raw: RawBook = serde_json::from_str(text).map_err(|e| format!("{file}: malformed order book: {e}"))?;
    if raw.bids.len() > MAX_ORDERS || raw.asks.len() > MAX_ORDERS {
        return Err(format!("{file}: at most {MAX_ORDERS} bids and {MAX_ORDERS} asks per book"));
    }
    let mut bid_ix = BTreeMap::new();
    let mut bids = Vec::with_capacity(raw.bids.len());
    for (k, b) in raw.bids.iter().enumerate() {
        let item = format!("{file}: bids[{k}] (id \"{}\")", b.id);
        if b.id.is_empty() || bid_ix.insert(b.id.clone(), k).is_some() {
            return Err(format!("{item}: ids must be non-empty and unique among bids"));
        }
        let accept = match &b.accept {
            None => ACCEPT_ANY,
            Some(list) if list.is_empty() => return Err(format!("{item}: accept is empty (omit it to accept any)")),
            Some(list) => {
                let mut m = 0u8;
                for t in list {
                    m |= Tech::parse(t).map_err(|e| format!("{item}: accept: {e}"))?.bit();
                }
                m
            }
        };
        bids.push(Bid {
            id: b.id.clone(),
            wh: volume(&item, &b.wh)?,
            price: integer(&item, "price", &b.price, -MAX_PRICE)?,
            accept,
        });
    }
    let mut ask_ix = BTreeMap::new();
    let mut asks = Vec::with_capacity(raw.asks.len());
    for (k, a) in raw.asks.iter().enumerate() {
        let item = format!("{file}: asks[{k}] (id \"{}\")", a.id);
        if a.id.is_empty() || ask_ix.insert(a.id.clone(), k).is_some() {
            return Err(format!("{item}: ids must be non-empty and unique among asks"));
        }
        asks.push(Ask {
            id: a.id.clone(),
            wh: volume(&item, &a.wh)?,
            price: integer(&item, "price", &a.price, -MAX_PRICE)?,
            tech: Tech::parse(&a.tech).map_err(|e| format!("{item}: tech: {e}"))?,
        });
    }
    let mut fees = Vec::new();
    if !raw.fees.is_empty() {
        fees = vec![0i64; bids.len() * asks.len()];
        let mut seen = BTreeMap::new();
        for (k, f) in raw.fees.iter().enumerate() {
            let item = format!("{file}: fees[{k}] (bid \"{}\", ask \"{}\")", f.bid, f.ask);
            let i = *bid_ix.get(&f.bid).ok_or_else(|| format!("{item}: no bid with id \"{}\"", f.bid))?;
            let j = *ask_ix.get(&f.ask).ok_or_else(|| format!("{item}: no ask with id \"{}\"", f.ask))?;
            if seen.insert((i, j), k).is_some() {
                return Err(format!("{item}: this pair already has a fee"));
            }
            fees[i * asks.len() + j] = integer(&item, "fee", &f.fee, 0)?;
        }
    }
    Ok(Book { bids, asks, fees })
}

fn i128_json(x: i128) -> Value {
    i64::try_from(x).map_or_else(|_| json!(x.to_string()), |v| json!(v))
}

/// The JSON answer of `market clear`: the clearing, its certificate and the baselines' welfare.
pub fn clearing_json(book: &Book, c: &Clearing, d: &Duals, greedy: &Clearing, cda: &Clearing) -> Value {
    let matches: Vec<Value> = c
        .matches
        .iter()
        .map(|m| json!({"bid": book.bids[m.bid].id, "ask": book.asks[m.ask].id, "wh": m.wh, "price": m.price}))
        .collect();
    let volume: u64 = c.matches.iter().map(|m| m.wh).sum();
    json!({
        "matches": matches,
        "welfare": i128_json(c.welfare),
        "volume_wh": volume,
        "certificate": {
            "bid_duals": book.bids.iter().zip(&d.u).map(|(b, u)| json!({"id": b.id, "u": u})).collect::<Vec<_>>(),
            "ask_duals": book.asks.iter().zip(&d.v).map(|(a, v)| json!({"id": a.id, "v": v})).collect::<Vec<_>>(),
        },
        "baselines": {"greedy_welfare": i128_json(greedy.welfare), "cda_welfare": i128_json(cda.welfare)},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_example_parses() {
        let text = r#"{"bids": [{"id": "h1", "wh": 3000, "price": 250, "accept": ["solar", "wind"]}], "asks": [{"id": "pv7", "wh": 2000, "price": 120, "tech": "solar"}], "fees": [{"bid": "h1", "ask": "pv7", "fee": 10}]}"#;
        let b = parse_book("o.json", text).unwrap();
        assert_eq!(b.fee(0, 0), 10);
        assert_eq!(b.bids[0].accept, Tech::Solar.bit() | Tech::Wind.bit());
    }

    #[test]
    fn bad_items_are_named() {
        let cases = [
            (r#"{"bids": [{"id": "h1", "wh": -5, "price": 1}], "asks": []}"#, "bids[0] (id \"h1\"): wh = -5"),
            (r#"{"bids": [{"id": "h1", "wh": 2.5, "price": 1}], "asks": []}"#, "wh = 2.5"),
            (
                r#"{"bids": [], "asks": [{"id": "a", "wh": 5, "price": 1, "tech": "coal"}]}"#,
                "unknown technology \"coal\"",
            ),
            (r#"{"bids": [{"id": "h1", "wh": 5, "price": 1, "accept": ["sun"]}], "asks": []}"#, "(id \"h1\"): accept"),
            (r#"{"bids": [], "asks": [], "fees": [{"bid": "x", "ask": "y", "fee": 1}]}"#, "no bid with id \"x\""),
            (r#"{"bids": [, "asks": []}"#, "malformed order book"),
            (r#"{"bids": [], "asks": [], "extra": 1}"#, "unknown field `extra`"),
        ];
        for (text, want) in cases {
            let e = parse_book("o.json", text).unwrap_err();
            assert!(e.contains(want), "{e} should contain {want}");
        }
    }
}
