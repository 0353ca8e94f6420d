//! The allocator workloads, shared by the four `alloc_<contender>` bench targets.
//!
//! Each contender's binary calls [`main`] with its name; every timing benchmark is named
//! `<workload>/<contender>`, so `target/criterion/<workload>/` holds all four side by side and
//! `benches/report.py` can compare them. The fragmentation measurement runs first, in a
//! fresh process, before any timing benchmark.
//!
//! Environment knobs (used by `benches/run.sh` and `benches/callgrind.sh`):
//! * `ALLOC_BENCH_FRAGMENTATION=only|skip`: run only the RSS measurement, or skip it.
//! * `ALLOC_BENCH_LIFO=<size>:<batches>`: run that many untimed LIFO batches and exit (for
//!   instruction counting under callgrind).
//! * `ALLOC_BENCH_SCALE=all|holes,threads,thread_churn` (with `ALLOC_BENCH_HOLES_GIB`,
//!   `ALLOC_BENCH_THREADS`): also run the workloads at scale of `scale.rs` (issue 13), which
//!   `benches/scale_run.sh` runs.

mod block;
mod btree;
mod churn;
mod fragmentation;
mod larson;
mod lifo;
mod producer_consumer;
mod rng;
mod scale;

use criterion::Criterion;
use std::time::Duration;

pub fn main(contender: &'static str) {
    if let Ok(spec) = std::env::var("ALLOC_BENCH_LIFO") {
        let (size, batches) = spec
            .split_once(':')
            .and_then(|(s, b)| Some((s.parse().ok()?, b.parse().ok()?)))
            .expect("ALLOC_BENCH_LIFO=<size>:<batches>");
        lifo::pairs(size, batches);
        return;
    }
    let frag = std::env::var("ALLOC_BENCH_FRAGMENTATION").unwrap_or_default();
    if frag != "skip" {
        fragmentation::run(contender);
    }
    if frag == "only" {
        return;
    }

    // Short runs: the whole suite (4 contenders) must stay within minutes on a shared
    // 2-core machine. Compare contenders only within one run.
    let mut c = Criterion::default()
        .sample_size(15)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    churn::bench(&mut c, contender);
    lifo::bench(&mut c, contender);
    btree::bench(&mut c, contender);
    producer_consumer::bench(&mut c, contender);
    larson::bench(&mut c, contender);
    scale::bench(&mut c, contender);
    c.final_summary();
}
