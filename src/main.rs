//! The `gridtwin` command. All behaviour lives in `gridtwin::cli`.

/// mimalloc instead of the system allocator: a city-sized run holds hundreds of megabytes of small per-node
/// allocations that the simulation then touches in random order, and mimalloc backs them with transparent huge
/// pages where the kernel allows it (far fewer TLB misses); measured in docs/benchmarks.md, "City scale".
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(gridtwin::cli::main());
}
