//! Peak RSS of one workload, in a fresh process (`ALLOC_BENCH_PEAK=<workload>`; run by
//! `benches/run.sh` for every workload and contender before the timings).
//!
//! The workload runs a fixed amount (its `standalone` function, the same code criterion
//! times), then the process's peak resident set is read with `getrusage(RUSAGE_SELF)`
//! (`ru_maxrss`: the high-water mark of the whole process, allocator metadata, caches and
//! fragmentation included). The RSS at the start (`VmRSS` of `/proc/self/status`, before the
//! workload: the binary, the runtime, the allocator's own set-up) is recorded beside it, and
//! the wall time of the run. Results go to `<criterion dir>/peak_rss/<workload>/<contender>.tsv`.

use super::fragmentation::criterion_dir;
use std::time::Instant;

fn run_workload(name: &str) -> bool {
    let count = |prefix: &str| name.strip_prefix(prefix).and_then(|n| n.parse().ok());
    match name {
        "churn" => super::churn::standalone(),
        "btree" => super::btree::standalone(),
        "producer_consumer" => super::producer_consumer::standalone(0),
        "serde_json" => super::serde_doc::standalone(),
        "rayon" => super::rayon_pipeline::standalone(),
        "hashmap" => super::string_map::standalone(),
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

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn max_rss_kib() -> u64 {
    // SAFETY: `rusage` is plain data, and all zeroes is a valid value of it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable `rusage`.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0, "getrusage failed");
    usage.ru_maxrss as u64 // KiB on Linux
}

pub fn run(contender: &str, workload: &str) {
    let start_kib = rss_kib();
    let t = Instant::now();
    if !run_workload(workload) {
        panic!("ALLOC_BENCH_PEAK={workload}: no such workload");
    }
    let secs = t.elapsed().as_secs_f64();
    let peak_kib = max_rss_kib();
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
