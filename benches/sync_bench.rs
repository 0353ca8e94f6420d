//! The thread-safe Gc benchmarks: `std::sync::Arc`, `dumpster::sync::Gc`,
//! `gcmodule::ThreadedCc` and `pyheap::Gc` side by side on the workloads in
//! `benches/sync_workloads/`, with the system allocator. Run everything with
//! `benches/sync_run.sh`.

#[path = "bench_harness.rs"]
mod harness;
#[path = "sync_workloads/mod.rs"]
mod workloads;

#[path = "workspace_root.rs"]
mod workspace_root;

fn main() {
    workspace_root::enter();
    workloads::main();
}
