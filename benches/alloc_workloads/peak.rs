//! Peak RSS of one workload, in a fresh process (`ALLOC_BENCH_PEAK=<workload>`; run by
//! `benches/run.sh` for every workload and contender before the timings).
//!
//! The workload runs a fixed amount (its `standalone` function, the same code criterion
//! times), then the process's peak resident set is read: `VmHWM` of `/proc/self/status`, the
//! high-water mark of this process image (allocator metadata, caches and fragmentation
//! included). Not `getrusage(RUSAGE_SELF).ru_maxrss`: Linux carries that over `fork` and
//! `exec`, so a binary started by `cargo bench` reports cargo's own 45 MiB when its own peak
//! is lower. The RSS at the start (`VmRSS`, before the workload: the binary, the runtime,
//! the allocator's own set-up) is recorded beside it, and the wall time of the run. Results go to `<criterion dir>/peak_rss/<workload>/<contender>.tsv`.

use super::fragmentation::criterion_dir;
use std::time::Instant;

fn run_workload(name: &str) -> bool {
    let count = |prefix: &str| name.strip_prefix(prefix).and_then(|n| n.parse().ok());
    match name {
        "churn" => super::churn::standalone(),
        "btree" => super::btree::standalone(),
        "producer_consumer" => super::producer_consumer::standalone(0),
        "handoff" => super::producer_consumer::handoff_standalone(),
        "serde_json" => super::serde_doc::standalone(),
        "rayon" => super::rayon_pipeline::standalone(),
        "hashmap" => super::string_map::standalone(),
        "medium_lifo" => super::medium::lifo_rounds(20_000),
        "medium_churn" => super::medium::churn_rounds(1_000),
        "large_lifo" => super::large::lifo_rounds(4_000),
        "request_loop" => super::large::request_loop_rounds(20_000),
        "large_churn" => super::large::churn_rounds(200),
        _ => {
            if let Some(size) = count("lifo_") {
                super::lifo::pairs(size, 20_000);
            } else if let Some(n) = count("larson_") {
                super::larson::standalone(n);
            } else if let Some(n) = count("producer_consumer_") {
                super::producer_consumer::standalone(n);
            } else {
                return false;
            }
        }
    }
    true
}

/// A field of `/proc/self/status`, in KiB; panics if it is missing (no honest reading).
fn status_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

pub fn run(contender: &str, workload: &str) {
    let start_kib = status_kib("VmRSS:");
    let t = Instant::now();
    if !run_workload(workload) {
        panic!("ALLOC_BENCH_PEAK={workload}: no such workload");
    }
    let secs = t.elapsed().as_secs_f64();
    let peak_kib = status_kib("VmHWM:");
    println!(
        "peak_rss {workload}/{contender}: peak {:.1} MiB (start {:.1} MiB), {secs:.3} s",
        peak_kib as f64 / 1024.0,
        start_kib as f64 / 1024.0
    );
    let dir = criterion_dir().join("peak_rss").join(workload);
    let path = dir.join(format!("{contender}.tsv"));
    let tsv = format!("start_rss_kib\tpeak_rss_kib\tseconds\n{start_kib}\t{peak_kib}\t{secs:.4}\n");
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, tsv)) {
        eprintln!("peak_rss: cannot write {}: {e}", path.display());
    }
}
