//! The allocator workloads (the `alloc_workloads` library, the same machine code for every
//! contender) with the global allocator set to pyheap's pymalloc-style `pyheap::PoolAlloc`, the
//! allocator under test.
//!
//! A binary has exactly one global allocator, so each contender is its own bench target;
//! results land in `target/criterion/<workload>/pyheap/` next to the other contenders'.
//! Run all six and the comparison table with `benches/run.sh`.

#[global_allocator]
static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;

#[path = "workspace_root.rs"]
mod workspace_root;

fn main() {
    workspace_root::enter();
    alloc_workloads::main("pyheap");
}
