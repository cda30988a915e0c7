//! Ingest speed into SQLite, the service's real path: decode gateway batches (MQTT payloads) with the firmware
//! codec, then insert them into a SQLite file (WAL). Two cases: one transaction per batch (the service when
//! messages arrive one at a time) and one transaction for every batch waiting (the service under load, which
//! stores everything queued in one transaction). Throughput is in readings (criterion's "elem/s"); the target
//! is at least 50,000 readings/s. Each iteration stores new readings (the table grows as in service).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gridtwin_cloud::live::decode_event;
use gridtwin_cloud::store::{Sqlite, Store};
use gridtwin_firmware::gateway::batch;
use gridtwin_firmware::report::ReportRepr;
use std::hint::black_box;

const LMUS: u32 = 500;
const BATCHES: u32 = 20;

fn batches(round: u32) -> Vec<Vec<u8>> {
    (0..BATCHES)
        .map(|b| {
            let seq = round * BATCHES + b;
            let rs: Vec<ReportRepr> = (1..=LMUS)
                .map(|l| ReportRepr {
                    lmu_id: l,
                    seq,
                    taken_at_ms: 900_000 * seq as u64 + (l as u64 * 17) % 10_000,
                    v_cv: [23_000 + (l % 300) as u16, 23_010, 22_990],
                    i_ma: [1_500 + l, 1_200, 900],
                    p_w: 650 - l as i32,
                    q_var: -20,
                    flags: 0,
                })
                .collect();
            let mut out = Vec::new();
            batch::encode(&rs, &mut out).unwrap();
            out
        })
        .collect()
}

fn ingest(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Sqlite::open(dir.path().join("bench.db").to_str().unwrap()).unwrap();
    let mut round = 0u32;
    let mut g = c.benchmark_group("cloud_ingest");
    g.throughput(Throughput::Elements((LMUS * BATCHES) as u64));
    g.sample_size(10);
    g.bench_function("sqlite_file_10k_readings_in_500_reading_batches", |b| {
        b.iter_batched(
            || {
                round += 1;
                batches(round)
            },
            |payloads| {
                for p in &payloads {
                    let rs = decode_event("grid/gw-1/events", p, 1).unwrap();
                    assert_eq!(store.insert(black_box(&rs)).unwrap(), rs.len());
                }
            },
            criterion::BatchSize::PerIteration,
        )
    });
    g.bench_function("sqlite_file_10k_readings_20_batches_per_transaction", |b| {
        b.iter_batched(
            || {
                round += 1;
                batches(round)
            },
            |payloads| {
                let mut all = Vec::with_capacity((LMUS * BATCHES) as usize);
                for p in &payloads {
                    all.append(&mut decode_event("grid/gw-1/events", p, 1).unwrap());
                }
                assert_eq!(store.insert(black_box(&all)).unwrap(), all.len());
            },
            criterion::BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, ingest);
criterion_main!(benches);
