//! Criterion benchmarks of the engine: PHOLD through the real agent API, and the bare reference loop.
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gridtwin::engine::phold::{PholdConfig, run_engine, run_reference};

fn phold(c: &mut Criterion) {
    let mut g = c.benchmark_group("phold");
    g.sample_size(10);
    for (name, cfg) in [("A-short", PholdConfig { end_ns: 20_000_000_000, ..PholdConfig::A }), ("A", PholdConfig::A)] {
        let events = run_reference(&cfg).events;
        g.throughput(Throughput::Elements(events));
        g.bench_function(format!("engine/{name}"), |b| b.iter(|| run_engine(&cfg).unwrap()));
        g.bench_function(format!("bare-heap/{name}"), |b| b.iter(|| run_reference(&cfg)));
    }
    g.finish();
}

criterion_group!(benches, phold);
criterion_main!(benches);
