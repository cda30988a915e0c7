//! Criterion benchmarks of the market: clearing one feeder's call market of 500 bids and 500 asks (random
//! prices, technology preferences on 60 % of the bids and a distance-based grid fee on every pair), with the
//! linear-time certificate check and the greedy baseline beside it; and certificate operations (mint, transfer, split, claim) on the
//! registry, in operations per second; and the cost of a private ledger per customer and slot: sealing a reading
//! for four recipients, proving a claim (one aggregated 4 x 32-bit Bulletproofs range proof), and what each
//! validator pays to verify it.
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gridtwin::market::certs::Registry;
use gridtwin::market::clearing::{ACCEPT_ANY, Ask, Bid, Book, Tech, clear, greedy, verify};

/// A deterministic pseudo-random book (SplitMix64).
fn book(n: usize, m: usize, seed: u64) -> Book {
    let mut s = seed;
    let mut next = move || {
        s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let techs = [Tech::Solar, Tech::Wind, Tech::Hydro, Tech::Biogas, Tech::Nuclear, Tech::Grid];
    let bids: Vec<Bid> = (0..n)
        .map(|i| {
            let accept = if next() % 10 < 6 {
                (0..1 + next() % 3).fold(0u8, |a, _| a | techs[(next() % 6) as usize].bit())
            } else {
                ACCEPT_ANY
            };
            Bid { id: format!("b{i:04}"), wh: 250 * (1 + next() % 40), price: 50 + (next() % 351) as i64, accept }
        })
        .collect();
    let asks: Vec<Ask> = (0..m)
        .map(|j| Ask {
            id: format!("a{j:04}"),
            wh: 250 * (1 + next() % 40),
            price: 20 + (next() % 281) as i64,
            tech: techs[(next() % 6) as usize],
        })
        .collect();
    // Positions along a 2 km feeder; fee = 5 + 20 per km.
    let xb: Vec<i64> = (0..n).map(|_| (next() % 2000) as i64).collect();
    let xa: Vec<i64> = (0..m).map(|_| (next() % 2000) as i64).collect();
    let fees = xb.iter().flat_map(|&b| xa.iter().map(move |&x| 5 + 20 * (b - x).abs() / 1000)).collect();
    Book { bids, asks, fees }
}

fn clearing(c: &mut Criterion) {
    let mut g = c.benchmark_group("market_clearing");
    g.sample_size(20);
    let b = book(500, 500, 42);
    g.bench_function("clear_500x500", |bn| bn.iter(|| clear(&b).unwrap()));
    // The greedy baseline on the same book: a fixed amount of work (sorting every pair) to read the clearing's
    // time against on a shared, loaded machine (the ratio moves less than either time).
    g.bench_function("greedy_500x500", |bn| bn.iter(|| greedy(&b)));
    let (cl, d) = clear(&b).unwrap();
    g.bench_function("verify_certificate_500x500", |bn| bn.iter(|| verify(&b, &cl, &d).unwrap()));
    g.finish();
}

fn certificates(c: &mut Criterion) {
    let mut g = c.benchmark_group("certificates");
    // One round: 100 plants mint into their owners, each sells part to a buyer (transfer, splitting the
    // range), splits what it keeps, and the buyer claims part: 400 operations.
    const PLANTS: u32 = 100;
    g.throughput(Throughput::Elements(4 * PLANTS as u64));
    g.bench_function("mint_transfer_split_claim", |bn| {
        let mut r = Registry::default();
        let mut slot = 0u32;
        bn.iter(|| {
            slot += 1;
            for p in 0..PLANTS {
                let owner = p;
                let buyer = PLANTS + (p * 7) % PLANTS;
                r.mint(p, slot, owner, 2500).unwrap();
                r.transfer(owner, buyer, slot, Some(p), 1200).unwrap();
                r.split(owner, p, slot, 1800).unwrap();
                r.claim(buyer, slot, 1000, &[]).unwrap();
            }
        });
    });
    g.finish();
}

fn private_ledger(c: &mut Criterion) {
    use gridtwin::market::private::{Opening, SealRng, box_public, prove_claim, seal, verify_claim};
    let mut rng = SealRng::from_material(b"bench");
    let reading = Opening { wh: 900, blinding: rng.blinding() };
    let claim = Opening { wh: 450, blinding: rng.blinding() };
    let (rc, kc) = (reading.commit(), claim.commit());
    let to: Vec<(u32, [u8; 32])> = (0..4).map(|k| (k, box_public("bench", &format!("p{k}")))).collect();
    let mut g = c.benchmark_group("private_ledger");
    g.throughput(Throughput::Elements(1));
    g.bench_function("seal_reading_4_recipients", |b| b.iter(|| seal(&reading, &to, &rc, &mut rng)));
    g.bench_function("prove_claim", |b| {
        b.iter(|| prove_claim("bench", 1, 2, &reading, &claim, 700, &mut rng).expect("provable"))
    });
    let proof = prove_claim("bench", 1, 2, &reading, &claim, 700, &mut rng).expect("provable");
    g.bench_function("verify_claim", |b| b.iter(|| assert!(verify_claim("bench", 1, 2, &rc, &kc, 700, &proof))));
    g.finish();
}

criterion_group!(benches, clearing, certificates, private_ledger);
criterion_main!(benches);
