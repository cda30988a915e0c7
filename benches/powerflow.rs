//! Criterion benchmarks (powerflow).
fn main() {}
