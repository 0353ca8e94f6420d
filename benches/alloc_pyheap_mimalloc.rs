//! The allocator workloads (the `alloc_workloads` library, the same machine code for every
//! contender) with the global allocator set to pyheap's pools in front of mimalloc,
//! `pyheap::PoolAllocWith<mimalloc::MiMalloc>`: requests of at most 512 bytes from pyheap's
//! pools, larger ones from mimalloc (issue 17, "Requests above 512 bytes").
//!
//! A binary has exactly one global allocator, so each contender is its own bench target;
//! results land in `target/criterion/<workload>/pyheap_mimalloc/`. Run all contenders and the
//! comparison table with `benches/run.sh`.

#[global_allocator]
static GLOBAL: pyheap::PoolAllocWith<mimalloc::MiMalloc> =
    pyheap::PoolAllocWith::new(mimalloc::MiMalloc);

#[path = "workspace_root.rs"]
mod workspace_root;

fn main() {
    workspace_root::enter();
    alloc_workloads::main("pyheap_mimalloc");
}
