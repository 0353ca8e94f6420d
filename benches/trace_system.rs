//! The tracing benchmarks (`trace_workloads/`) with the system allocator (glibc malloc): the
//! baseline `dhat` wraps.

#[path = "trace_workloads/mod.rs"]
mod workloads;
#[path = "workspace_root.rs"]
mod workspace_root;

fn main() {
    workspace_root::enter();
    let off = || ();
    workloads::run::<()>(&[("system", &off)]);
}
