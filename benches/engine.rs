//! Criterion benchmarks of the engine: PHOLD-ns (configs A-short, A and C of the reference table) through the
//! real agent API, next to the bare `BinaryHeap` reference loop, which is the practical ceiling for a heap-based
//! engine at those sizes. `city-pending` keeps 320,000 events pending, as a city-sized mesh run does.
//! Throughput is in delivered events; each iteration also checks the exact result.
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gridtwin::engine::phold::{PholdConfig, REFERENCE, run_engine, run_reference};

fn phold(c: &mut Criterion) {
    let mut g = c.benchmark_group("phold");
    g.sample_size(10);
    for (name, cfg, want) in REFERENCE.iter().filter(|(n, _, _)| *n != "B") {
        g.throughput(Throughput::Elements(want.events));
        g.bench_function(format!("engine/{name}"), |b| {
            b.iter(|| assert_eq!(run_engine(cfg).unwrap(), *want));
        });
        g.bench_function(format!("bare-heap/{name}"), |b| b.iter(|| assert_eq!(run_reference(cfg), *want)));
    }
    let cfg = PholdConfig::CITY_PENDING;
    let want = run_reference(&cfg);
    g.throughput(Throughput::Elements(want.events));
    g.bench_function("engine/city-pending", |b| b.iter(|| assert_eq!(run_engine(&cfg).unwrap(), want)));
    g.bench_function("bare-heap/city-pending", |b| b.iter(|| assert_eq!(run_reference(&cfg), want)));
    g.finish();
}

criterion_group!(benches, phold);
criterion_main!(benches);
