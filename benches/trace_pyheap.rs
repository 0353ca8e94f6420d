//! The tracing benchmarks (`trace_workloads/`) with `pyheap::PoolAlloc`: tracemalloc off,
//! tracing 1 frame, tracing 5 frames; started with `PYHEAP_MALLOC=debug` in the environment
//! (read at the first allocation), the debug allocator (`pyheap_debug`) instead.

#[global_allocator]
static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;

#[path = "trace_workloads/mod.rs"]
mod workloads;
#[path = "workspace_root.rs"]
mod workspace_root;

struct Stop;
impl Drop for Stop {
    fn drop(&mut self) {
        pyheap::tracemalloc::stop();
    }
}

fn main() {
    workspace_root::enter();
    let off = || None;
    let trace1 = || {
        pyheap::tracemalloc::start(1);
        Some(Stop)
    };
    let trace5 = || {
        pyheap::tracemalloc::start(5);
        Some(Stop)
    };
    if pyheap::alloc::check_heap().is_some() {
        workloads::run::<Option<Stop>>(&[("pyheap_debug", &off)]);
    } else {
        workloads::run::<Option<Stop>>(&[
            ("pyheap", &off),
            ("pyheap_trace1", &trace1),
            ("pyheap_trace5", &trace5),
        ]);
    }
}
