//! The Gc benchmarks: `std::rc::Rc`, `rust-cc`, `gcmodule`, `dumpster`, `bacon_rajan_cc` and
//! `pyheap::unsync::Gc` side by side on the workloads in `benches/gc_workloads/`, with the
//! system allocator (the default a user has). Run everything with `benches/gc_run.sh`.

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
