//! The allocator workloads (the `alloc_workloads` library, the same machine code for every
//! contender) with the global allocator set to glibc's malloc through `std::alloc::System`, the
//! default of every Rust program.
//!
//! A binary has exactly one global allocator, so each contender is its own bench target;
//! results land in `target/criterion/<workload>/system/` next to the other contenders'.
//! Run all six and the comparison table with `benches/run.sh`.

#[global_allocator]
static GLOBAL: std::alloc::System = std::alloc::System;

#[path = "workspace_root.rs"]
mod workspace_root;

fn main() {
    workspace_root::enter();
    alloc_workloads::main("system");
}
