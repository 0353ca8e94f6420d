//! The tracing benchmarks (`trace_workloads/`) with `dhat::Alloc` as the global allocator:
//! no profiler running (`dhat_off`: dhat's allocator passes blocks through to the system's),
//! and its heap profiler running (`dhat_on`), which records a backtrace of every allocation.
//! Its profile goes to `target/dhat-bench.json`.

#[global_allocator]
static GLOBAL: dhat::Alloc = dhat::Alloc;

#[path = "trace_workloads/mod.rs"]
mod workloads;
#[path = "workspace_root.rs"]
mod workspace_root;

fn main() {
    workspace_root::enter();
    let off = || None;
    let on = || {
        Some(
            dhat::Profiler::builder()
                .file_name("target/dhat-bench.json")
                .build(),
        )
    };
    workloads::run::<Option<dhat::Profiler>>(&[("dhat_off", &off), ("dhat_on", &on)]);
}
