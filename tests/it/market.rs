//! The energy market: clearing against an exact reference on thousands of random books, the certificate check,
//! certificate invariants after every slot of random days (property test), bad input, and the shipped
//! market-day scenario.

use gridtwin::market::app::{
    CH_FEED_IN, CH_P2P, Genesis, MarketApp, MoveKind, Participant, PlantInfo, Role, Tx, WalletInfo, code,
};
use gridtwin::market::clearing::{
    ACCEPT_ANY, Ask, Bid, Book, Clearing, Tech, cda, check_feasible, clear, greedy, reference_welfare, verify, welfare,
};
use gridtwin::market::orders::parse_book;
use gridtwin::market::sim::{OfftakePrices, Sequencer, Signer, key_for};
use gridtwin_firmware::app::{Application, BlockInfo};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};
use std::collections::BTreeMap;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A random book: 1..=8 orders a side, preferences on 60 % of bids, fees on 70 % of pairs (in 4 of 5 books),
/// prices from narrow ranges in some books so that ties are common.
fn random_book(r: &mut Rng) -> Book {
    let (n, m) = (1 + r.below(8) as usize, 1 + r.below(8) as usize);
    let narrow = r.below(3) == 0;
    let price = |r: &mut Rng, lo: i64, hi: i64| {
        if narrow { lo + 10 * r.below(4) as i64 } else { lo + r.below((hi - lo) as u64) as i64 }
    };
    let bids = (0..n)
        .map(|i| {
            let accept = if r.below(10) < 6 {
                (0..1 + r.below(3)).fold(0u8, |a, _| a | Tech::ALL[r.below(7) as usize].bit())
            } else {
                ACCEPT_ANY
            };
            Bid { id: format!("b{i}"), wh: 250 * (1 + r.below(40)), price: price(r, 150, 400), accept }
        })
        .collect();
    let asks = (0..m)
        .map(|j| Ask {
            id: format!("a{j}"),
            wh: 250 * (1 + r.below(40)),
            price: price(r, 20, 300),
            tech: Tech::ALL[r.below(7) as usize],
        })
        .collect();
    let fees = if r.below(5) == 0 {
        Vec::new()
    } else {
        (0..n * m)
            .map(|_| if r.below(10) < 7 { if narrow { 10 * r.below(3) as i64 } else { r.below(61) as i64 } } else { 0 })
            .collect()
    };
    Book { bids, asks, fees }
}

#[test]
fn clearing_equals_the_exact_reference_and_the_certificate_separates_optimal_from_not() {
    let mut r = Rng(2024);
    let (mut greedy_short, mut cda_short) = (0, 0);
    for case in 0..3000 {
        let book = random_book(&mut r);
        let (c, d) = clear(&book).unwrap();
        check_feasible(&book, &c.matches).unwrap();
        assert_eq!(c.welfare, reference_welfare(&book), "book {case}: welfare differs from the reference");
        verify(&book, &c, &d).unwrap_or_else(|e| panic!("book {case}: optimal clearing refused: {e}"));
        // Perturbed clearings: one Wh less on a match, or a dual changed, are refused.
        if let Some(k) = (0..c.matches.len()).find(|&k| c.matches[k].wh > 1) {
            let mut worse = c.clone();
            worse.matches[k].wh -= 1;
            worse.welfare = welfare(&book, &worse.matches).unwrap();
            assert!(verify(&book, &worse, &d).is_err(), "book {case}: suboptimal clearing accepted");
        }
        if let Some(i) = d.u.iter().position(|&u| u > 0) {
            let mut bad = d.clone();
            bad.u[i] -= 1;
            assert!(verify(&book, &c, &bad).is_err(), "book {case}: wrong dual accepted");
        }
        // The baselines are feasible and never beat the optimum; a shortfall is caught by the check.
        for (name, b) in [("greedy", greedy(&book)), ("cda", cda(&book, case))] {
            check_feasible(&book, &b.matches).unwrap();
            assert!(b.welfare <= c.welfare, "book {case}: {name} beat the optimum");
            if b.welfare < c.welfare {
                assert!(verify(&book, &b, &d).is_err());
                if name == "greedy" { greedy_short += 1 } else { cda_short += 1 }
            }
        }
        // Input order does not change the clearing (canonical order by id).
        let mut rev = book.clone();
        rev.bids.reverse();
        rev.asks.reverse();
        if !book.fees.is_empty() {
            let (n, m) = (book.bids.len(), book.asks.len());
            rev.fees = (0..n * m).map(|k| book.fees[(n - 1 - k / m) * m + (m - 1 - k % m)]).collect();
        }
        let (c2, _) = clear(&rev).unwrap();
        let key = |b: &Book, c: &Clearing| {
            let mut v: Vec<(String, String, u64, i64)> =
                c.matches.iter().map(|x| (b.bids[x.bid].id.clone(), b.asks[x.ask].id.clone(), x.wh, x.price)).collect();
            v.sort();
            v
        };
        assert_eq!(key(&book, &c), key(&rev, &c2), "book {case}: input order changed the clearing");
    }
    // The baselines do fall short on some books (so the comparison means something).
    assert!(greedy_short > 0 && cda_short > 0, "greedy short {greedy_short}, cda short {cda_short}");
}

#[test]
fn bad_order_books_are_refused_naming_the_item_and_nothing_is_printed() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("malformed", r#"{"bids": [{"id": "h1", "wh": 10, "price": 1}], "asks": [}"#, "malformed order book"),
        (
            "unknown-tech",
            r#"{"bids": [], "asks": [{"id": "pv7", "wh": 10, "price": 1, "tech": "coal"}]}"#,
            "asks[0] (id \"pv7\"): tech: unknown technology \"coal\"",
        ),
        (
            "negative",
            r#"{"bids": [{"id": "h1", "wh": -3000, "price": 1}], "asks": []}"#,
            "bids[0] (id \"h1\"): wh = -3000",
        ),
        (
            "fractional",
            r#"{"bids": [{"id": "h1", "wh": 2.5, "price": 1}], "asks": []}"#,
            "bids[0] (id \"h1\"): wh = 2.5",
        ),
    ];
    for (name, text, want) in cases {
        let p = dir.path().join(format!("{name}.json"));
        std::fs::write(&p, text).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_gridtwin"))
            .args(["market", "clear"])
            .arg(&p)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: accepted");
        assert!(err.contains(want), "{name}: {err}");
        assert!(out.stdout.is_empty(), "{name}: printed output on error");
        assert!(parse_book("x", text).is_err());
    }
    // A good book clears to the issue's example answer.
    let p = dir.path().join("good.json");
    std::fs::write(&p, r#"{"bids": [{"id": "h1", "wh": 3000, "price": 250, "accept": ["solar", "wind"]}], "asks": [{"id": "pv7", "wh": 2000, "price": 120, "tech": "solar"}], "fees": [{"bid": "h1", "ask": "pv7", "fee": 10}]}"#).unwrap();
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_gridtwin")).args(["market", "clear"]).arg(&p).output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["welfare"], 2000 * (250 - 120 - 10));
    assert_eq!(v["matches"][0]["wh"], 2000);
}

/// A degenerate book: 0..=5 orders a side (so one-sided and empty books), prices from two or three values and
/// fees from {0, 10, forbidden}, so that zero margins, equal gains and equal volumes are the rule.
fn degenerate_book(n: usize, m: usize, seed: u64) -> Book {
    let mut r = Rng(seed);
    let techs = [Tech::Solar, Tech::Wind];
    let bids = (0..n)
        .map(|i| Bid {
            id: format!("b{i}"),
            wh: [1, 250, 500][r.below(3) as usize],
            price: [100, 110][r.below(2) as usize],
            accept: if r.below(2) == 0 { ACCEPT_ANY } else { techs[r.below(2) as usize].bit() },
        })
        .collect();
    let asks = (0..m)
        .map(|j| Ask {
            id: format!("a{j}"),
            wh: [1, 250, 500][r.below(3) as usize],
            price: [90, 100, 110][r.below(3) as usize],
            tech: techs[r.below(2) as usize],
        })
        .collect();
    let fees = if r.below(2) == 0 {
        Vec::new()
    } else {
        (0..n * m).map(|_| [0, 0, 10, gridtwin::market::clearing::FORBIDDEN][r.below(4) as usize]).collect()
    };
    Book { bids, asks, fees }
}

proptest! {
    #![proptest_config(Config { cases: 512, failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))), ..Config::default() })]

    /// Degenerate books (ties, zero margins, one-sided or empty books) clear to the reference optimum with a
    /// certificate that is accepted, that refuses a clearing one Wh short and a dual one unit too high, and the
    /// clearing does not depend on the input order.
    #[test]
    fn degenerate_books_clear_to_the_optimum_with_a_sharp_certificate(n in 0usize..6, m in 0usize..6, seed in any::<u64>()) {
        let book = degenerate_book(n, m, seed);
        let (c, d) = clear(&book).unwrap();
        check_feasible(&book, &c.matches).unwrap();
        prop_assert_eq!(c.welfare, reference_welfare(&book));
        prop_assert!(verify(&book, &c, &d).is_ok());
        if n == 0 || m == 0 {
            prop_assert!(c.matches.is_empty() && c.welfare == 0);
            prop_assert!(d.u.iter().chain(&d.v).all(|&x| x == 0));
        }
        let no_gain = (0..n).all(|i| (0..m).all(|j| book.gain(i, j).is_none_or(|g| g <= 0)));
        prop_assert_eq!(no_gain, c.matches.is_empty());
        if let Some(k) = (0..c.matches.len()).find(|&k| c.matches[k].wh > 1) {
            let mut worse = c.clone();
            worse.matches[k].wh -= 1;
            worse.welfare = welfare(&book, &worse.matches).unwrap();
            prop_assert!(verify(&book, &worse, &d).is_err());
        }
        for j in 0..m {
            let mut bad = d.clone();
            bad.v[j] += 1;
            prop_assert!(verify(&book, &c, &bad).is_err());
        }
        let mut rev = book.clone();
        rev.bids.reverse();
        rev.asks.reverse();
        if !book.fees.is_empty() {
            rev.fees = (0..n * m).map(|k| book.fees[(n - 1 - k / m) * m + (m - 1 - k % m)]).collect();
        }
        let (c2, d2) = clear(&rev).unwrap();
        let key = |b: &Book, c: &Clearing| {
            let mut v: Vec<(String, String, u64, i64)> =
                c.matches.iter().map(|x| (b.bids[x.bid].id.clone(), b.asks[x.ask].id.clone(), x.wh, x.price)).collect();
            v.sort();
            v
        };
        prop_assert_eq!(key(&book, &c), key(&rev, &c2));
        let mut u2 = d2.u.clone();
        u2.reverse();
        prop_assert_eq!(&d.u, &u2);
    }
}

/// A small market: `nc` customers on one feeder, `np` plants (some owned by customers), a two-share supplier mix.
fn genesis(nc: usize, owners: &[Option<usize>], techs: &[Tech], prefs: &[u8]) -> Genesis {
    let domain = "t".to_string();
    let mut wallets: Vec<WalletInfo> = (0..nc)
        .map(|k| WalletInfo {
            id: format!("c{k}"),
            x_m: 30 * k as i64,
            y_m: 0,
            feeder: 0,
            accept: prefs[k],
            max_distance_m: None,
            same_feeder: false,
            plants: Vec::new(),
            price_cap: 25_000,
            renewable_only: k % 3 == 2,
            dr: None,
        })
        .collect();
    let blank = |id: String| WalletInfo {
        id,
        x_m: 0,
        y_m: 0,
        feeder: u32::MAX,
        accept: ACCEPT_ANY,
        max_distance_m: None,
        same_feeder: false,
        plants: vec![],
        price_cap: 0,
        renewable_only: false,
        dr: None,
    };
    let mut plants = Vec::new();
    let mut participants = Vec::new();
    let key = |n: &str| key_for(&domain, n).verifying_key().to_bytes();
    for k in 0..nc {
        participants.push(Participant {
            name: format!("owner/c{k}"),
            key: key(&format!("owner/c{k}")),
            role: Role::Owner(k as u32),
        });
        participants.push(Participant {
            name: format!("meter/c{k}"),
            key: key(&format!("meter/c{k}")),
            role: Role::Meter(k as u32),
        });
    }
    for (p, o) in owners.iter().enumerate() {
        let owner = match o {
            Some(c) => *c as u32,
            None => {
                wallets.push(blank(format!("p{p}")));
                wallets.len() as u32 - 1
            }
        };
        plants.push(PlantInfo {
            id: format!("p{p}"),
            tech: techs[p],
            owner,
            x_m: 45 * p as i64,
            y_m: 10,
            feeder: 0,
            self_consume: o.is_some() && p % 2 == 0,
            channels: vec![(CH_P2P, 5_000 + 1_000 * p as i64), (CH_FEED_IN, 0)],
            supplier: false,
        });
        participants.push(Participant {
            name: format!("meter/p{p}"),
            key: key(&format!("meter/p{p}")),
            role: Role::PlantMeter(p as u32),
        });
    }
    let op = wallets.len() as u32;
    for id in ["op", "trader", "exchange", "feed_in"] {
        wallets.push(blank(id.into()));
    }
    let mix = vec![(plants.len() as u32, 60), (plants.len() as u32 + 1, 40)];
    for t in [Tech::Nuclear, Tech::Wind] {
        plants.push(PlantInfo {
            id: format!("mix_{}", t.name()),
            tech: t,
            owner: op,
            x_m: 0,
            y_m: 0,
            feeder: u32::MAX,
            self_consume: false,
            channels: vec![],
            supplier: true,
        });
    }
    participants.push(Participant { name: "market-operator".into(), key: key("market-operator"), role: Role::Market });
    participants.push(Participant {
        name: "grid-operator-supply".into(),
        key: key("grid-operator-supply"),
        role: Role::Operator,
    });
    Genesis {
        domain,
        slot_ns: 900_000_000_000,
        participants,
        wallets,
        plants,
        mix,
        operator_wallet: op,
        channel_wallets: [op + 1, op + 2, op + 3],
        fee_base: 500,
        fee_per_km: 4000,
        trader_cap_wh: 2000,
        retail: 30_000,
        privacy: None,
    }
}

/// Runs one day of `slots` through the application the way the sequencer does (readings, back-office
/// settlement, claims) and checks the invariants after every slot.
fn run_day(
    nc: usize,
    owners: &[Option<usize>],
    techs: &[Tech],
    prefs: &[u8],
    cons: &[Vec<u64>],
    prod: &[Vec<u64>],
) -> Result<(), String> {
    let g = genesis(nc, owners, techs, prefs);
    let app = MarketApp::new(g.clone());
    let prices = OfftakePrices { trader: 7000, market_hourly: vec![8000; 24], feed_in: 6000 };
    let mut seq = Sequencer::new(app, gridtwin::engine::SimDuration::from_secs(1), prices, Vec::new());
    let mut signers: BTreeMap<String, Signer> = BTreeMap::new();
    let mut sign = |name: &str, tx: &Tx| {
        signers.entry(name.to_string()).or_insert_with(|| Signer::new(key_for("t", name))).sign(tx)
    };
    let mut height = 0;
    let mut market = Signer::new(key_for("t", "market-operator"));
    let mut supply = Signer::new(key_for("t", "grid-operator-supply"));
    let slots = cons[0].len();
    for s in 0..slots as u32 {
        let t0 = (s as u64 + 1) * g.slot_ns + 1_000_000_000;
        let mut block = |seq: &mut Sequencer,
                         txs: Vec<std::sync::Arc<Vec<u8>>>,
                         t: u64|
         -> Vec<Result<(), gridtwin_firmware::app::Refusal>> {
            height += 1;
            let refs: Vec<&[u8]> = txs.iter().map(|t| t.as_slice()).collect();
            let out = seq.app.execute_block(&BlockInfo { height, time_ns: t, proposer: 0 }, &refs);
            seq.app.commit();
            out
        };
        let mut txs = Vec::new();
        for (c, cc) in cons.iter().enumerate() {
            txs.push(sign(
                &format!("meter/c{c}"),
                &Tx::Reading { slot: s, consumed_wh: cc[s as usize], produced_wh: 0 },
            ));
        }
        for (p, pp) in prod.iter().enumerate() {
            txs.push(sign(
                &format!("meter/p{p}"),
                &Tx::Reading { slot: s, consumed_wh: 0, produced_wh: pp[s as usize] },
            ));
        }
        for o in block(&mut seq, txs, t0) {
            o.map_err(|e| format!("reading refused: {e:?}"))?;
        }
        let txs: Vec<_> =
            seq.propose(s).into_iter().map(|(m, tx)| if m { market.sign(&tx) } else { supply.sign(&tx) }).collect();
        for o in block(&mut seq, txs, t0 + 1_000_000_000) {
            o.map_err(|e| format!("back office refused: {e:?}"))?;
        }
        let mut txs = Vec::new();
        for (c, cc) in cons.iter().enumerate() {
            if cc[s as usize] > 0 {
                txs.push(sign(&format!("owner/c{c}"), &Tx::Claim { slot: s, wh: cc[s as usize] }));
            }
        }
        // A claim above the metered consumption is refused.
        txs.push(sign("owner/c0", &Tx::Claim { slot: s, wh: 1 }));
        let out = block(&mut seq, txs, t0 + 2_000_000_000);
        let last = out.len() - 1;
        for o in &out[..last] {
            o.map_err(|e| format!("claim refused: {e:?}"))?;
        }
        if out[last].map_err(|e| e.code) != Err(code::ABOVE_METERED) {
            return Err(format!("over-claim not refused: {:?}", out[last]));
        }
        // Invariants after the slot.
        let a = &seq.app;
        let c = &a.state.certs;
        if c.minted_wh != c.held_wh + c.claimed_wh {
            return Err("minted != held + claimed".into());
        }
        c.audit()?;
        if let Some(x) = a.uncovered_after_claims(s) {
            return Err(format!("slot {s}: wallet {} consumed {} Wh but claimed {} Wh", x.0, x.1, x.2));
        }
        // From the provenance log alone: claimed ranges never overlap, and each lies inside exactly one minted
        // range of its own plant and slot.
        let mut claimed: Vec<(u32, u32, u64, u64)> = Vec::new();
        let mut minted: Vec<(u32, u32, u64, u64)> = Vec::new();
        for m in &a.log {
            let r = m.range;
            match m.kind {
                MoveKind::Claim => claimed.push((r.plant, r.slot, r.start, r.end())),
                MoveKind::Mint | MoveKind::Import => minted.push((r.plant, r.slot, r.start, r.end())),
                _ => {}
            }
        }
        claimed.sort();
        for w in claimed.windows(2) {
            if w[0].0 == w[1].0 && w[0].1 == w[1].1 && w[0].3 > w[1].2 {
                return Err(format!("Wh claimed twice: {:?} and {:?}", w[0], w[1]));
            }
        }
        for cl in &claimed {
            let origins =
                minted.iter().filter(|mi| mi.0 == cl.0 && mi.1 == cl.1 && mi.2 <= cl.2 && cl.3 <= mi.3).count();
            if origins != 1 {
                return Err(format!("claimed range {cl:?} has {origins} origins"));
            }
        }
    }
    Ok(())
}

fn tech_strategy() -> impl Strategy<Value = Tech> {
    prop::sample::select(vec![Tech::Solar, Tech::Wind, Tech::Biogas, Tech::Hydro])
}

proptest! {
    #![proptest_config(Config { cases: 24, failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))), ..Config::default() })]

    #[test]
    fn certificate_invariants_hold_after_every_slot_of_random_days(
        nc in 2usize..5,
        np in 1usize..4,
        slots in 2usize..6,
        seed in any::<u64>(),
        techs in prop::collection::vec(tech_strategy(), 3),
    ) {
        let mut r = Rng(seed);
        let owners: Vec<Option<usize>> = (0..np).map(|_| if r.below(2) == 0 { Some(r.below(nc as u64) as usize) } else { None }).collect();
        let prefs: Vec<u8> = (0..nc).map(|_| if r.below(2) == 0 { ACCEPT_ANY } else { techs[r.below(3) as usize].bit() | Tech::Solar.bit() }).collect();
        let cons: Vec<Vec<u64>> = (0..nc).map(|_| (0..slots).map(|_| r.below(1500)).collect()).collect();
        let prod: Vec<Vec<u64>> = (0..np).map(|_| (0..slots).map(|_| if r.below(4) == 0 { 0 } else { r.below(2500) }).collect()).collect();
        let result = run_day(nc, &owners, &techs[..np.min(3)].iter().copied().chain(std::iter::repeat(Tech::Wind)).take(np).collect::<Vec<_>>(), &prefs, &cons, &prod);
        prop_assert!(result.is_ok(), "{:?}", result);
    }
}

fn market_day() -> gridtwin::scenario::Loaded {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/market-day.ron");
    let mut l = gridtwin::scenario::Loaded::from_file(&path).unwrap();
    l.scenario.outputs.plots = false;
    l
}

#[test]
fn market_day_balances_its_certificates_cuts_the_peak_and_every_wallet_traces() {
    use gridtwin::cli::{Global, run_to_dir};
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("mk");
    let g = Global { out: Some(out.clone()), quiet: true, ..Global::default() };
    let (report, _, _) = run_to_dir(&g, &market_day(), None).unwrap();
    let m = &report.summary["market"];
    let n = |k: &str| m[k].as_f64().unwrap_or_else(|| panic!("market.{k} missing: {m}"));
    assert!(n("minted_wh") > 0.0);
    assert_eq!(n("minted_wh"), n("claimed_wh") + n("held_wh"));
    assert_eq!(m["certificates_consistent"], true, "{m}");
    assert_eq!(m["slots_with_unclaimed_consumption"].as_array().unwrap().len(), 0, "{m}");
    assert!(n("slots_claimed") >= 90.0, "{m}");
    assert_eq!(n("refused"), 0.0, "{m}");
    assert!(n("dr_peak_reduction_pct") >= 15.0, "{m}");
    assert!(n("dr_payouts_mc") > 0.0 && n("p2p_wh") > 0.0 && n("import_wh") > 0.0, "{m}");
    assert!(n("welfare_optimal") >= n("welfare_greedy") && n("welfare_optimal") >= n("welfare_cda"), "{m}");
    assert!(n("metering_max_slot_error_wh") <= n("meters"), "{m}");
    // The chain ordered and executed the market: the operator's replica agrees with the validators on every
    // state root, and the stored ledger re-executes from genesis to the same final root.
    assert_eq!(m["orderer"], "chain", "{m}");
    assert_eq!(n("replica_root_mismatches"), 0.0, "{m}");
    let v = gridtwin::chain::store::verify_dir(&out).unwrap();
    assert_eq!(v.transactions, n("transactions") as u64);
    assert_eq!(gridtwin::chain::hex(&v.state_root), report.summary["ledger"]["state_root"].as_str().unwrap());
    assert_eq!(report.summary["consensus"]["conflicting_commits"], 0);
    // Producers' energy goes through several channels, and each producer's split adds up.
    let mut used = std::collections::BTreeSet::new();
    for (_, c) in m["channels"].as_object().unwrap() {
        let parts: u64 = ["self_wh", "p2p_wh", "trader_wh", "market_wh", "feed_in_wh", "unsold_wh"]
            .iter()
            .map(|k| {
                let v = c[*k].as_u64().unwrap();
                if v > 0 {
                    used.insert(*k);
                }
                v
            })
            .sum();
        assert_eq!(parts, c["produced_wh"].as_u64().unwrap(), "{c}");
    }
    assert!(used.len() >= 5, "channels used: {used:?}");
    // Every customer's trace accounts for all of its metered consumption.
    for k in 1..=13 {
        let w = format!("h{k:02}");
        let t = gridtwin::market::trace::trace(&out, &w, None, None).unwrap();
        assert!(
            t.contains("every consumed Wh has an origin"),
            "{w}: {}",
            t.lines().take(3).collect::<Vec<_>>().join("\n")
        );
    }
    // A single altered transaction in the ledger is caught by the state roots.
    let lp = out.join("market_ledger.csv");
    let text = std::fs::read_to_string(&lp).unwrap();
    let line = text.lines().nth(50).unwrap().to_string();
    let mut bytes = line.clone().into_bytes();
    let at = bytes.len() - 70;
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    std::fs::write(&lp, text.replace(&line, &String::from_utf8(bytes).unwrap())).unwrap();
    let e = gridtwin::market::trace::trace(&out, "h01", None, None).unwrap_err();
    assert!(e.contains("state root"), "{e}");
}

#[test]
fn a_contract_naming_an_unknown_plant_is_refused_with_its_location_and_nothing_is_written() {
    use gridtwin::cli::{Global, run_to_dir};
    let tmp = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let contracts = std::fs::read_to_string(root.join("contracts/market-day.ron")).unwrap();
    let bad = contracts.replace("plants: [\"biogas1\"]", "plants: [\"biogas9\"]");
    assert_ne!(bad, contracts);
    std::fs::create_dir_all(tmp.path().join("contracts")).unwrap();
    std::fs::create_dir_all(tmp.path().join("scenarios/networks")).unwrap();
    std::fs::write(tmp.path().join("contracts/market-day.ron"), &bad).unwrap();
    let scen = std::fs::read_to_string(root.join("scenarios/market-day.ron")).unwrap();
    let sp = tmp.path().join("scenarios/market-day.ron");
    std::fs::write(&sp, scen).unwrap();
    let l = gridtwin::scenario::Loaded::from_file(&sp).unwrap();
    let out = tmp.path().join("out");
    let g = Global { out: Some(out.clone()), quiet: true, ..Global::default() };
    let e = match run_to_dir(&g, &l, Some("1h")) {
        Err(gridtwin::cli::CliError::Input(e)) => e,
        other => panic!("expected an input error, got {:?}", other.map(|_| ())),
    };
    assert!(e.file.ends_with("contracts/market-day.ron"), "{e}");
    assert!(e.message.contains("unknown plant \"biogas9\""), "{e}");
    let line = bad.lines().position(|l| l.contains("biogas9")).unwrap() + 1;
    assert_eq!(e.line, line, "{e}");
    assert!(!out.exists(), "a refused run wrote {}", out.display());
}
