//! The Gc benchmarks of `gc_bench` with `pyheap::PoolAlloc` as the global allocator for every
//! contender (pyheap's two halves together, as a user adopting both would run them). Results
//! go to criterion's usual directory, so give this binary its own:
//!
//! ```sh
//! CRITERION_HOME=target/criterion-poolalloc cargo bench -p pyheap-bench --bench gc_bench_poolalloc -- gc_cycles
//! python3 benches/gc_report.py target/criterion-poolalloc/..   # (expects <dir>/criterion/)
//! ```

#[global_allocator]
static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;

#[path = "bench_harness.rs"]
mod harness;
#[path = "gc_workloads/mod.rs"]
mod workloads;

#[path = "workspace_root.rs"]
mod workspace_root;

fn main() {
    workspace_root::enter();
    workloads::main();
}
