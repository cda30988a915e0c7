//! Criterion benchmarks (mesh).
fn main() {}
