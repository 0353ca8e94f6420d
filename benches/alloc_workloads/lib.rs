//! The allocator workloads, shared by the `alloc_<contender>` bench targets of pyheap-bench.
//!
//! A library of its own so that its code is compiled once and every contender runs the same
//! machine code (`Cargo.toml` says why). Each contender's binary sets its global allocator and
//! calls [`main`] with its name; every timing benchmark is named
//! `<workload>/<contender>`, so `target/criterion/<workload>/` holds them all side by side and
//! `benches/report.py` can compare them. The fragmentation measurement runs first, in a
//! fresh process, before any timing benchmark.
//!
//! Environment knobs (used by `benches/run.sh` and `benches/callgrind.sh`):
//! * `ALLOC_BENCH_FRAGMENTATION=only|skip`: run only the RSS measurement, or skip it.
//! * `ALLOC_BENCH_LIFO=<size>:<batches>`: run that many untimed LIFO batches and exit (for
//!   instruction counting under callgrind).
//! * `ALLOC_BENCH_PEAK=<workload>`: run that workload a fixed amount, untimed, and record the
//!   process's peak RSS (`peak.rs`); `benches/run.sh` does it in a fresh process per
//!   (workload, contender).
//! * `ALLOC_BENCH_SWEEP=1,2,4,8,16`: the thread counts of `larson_<N>` (default `2,4,8`) and
//!   of `producer_consumer_<N>` (default: none; the suite's `producer_consumer` is one pair).
//!   `benches/run.sh --sweep` sets it.
//! * `ALLOC_BENCH_CHURN=<rounds>`: run that many untimed rounds of the churn loop (10,000
//!   pairs each) and exit (the same, for `churn`).
//! * `ALLOC_BENCH_MEDIUM=lifo:<rounds>` or `churn:<rounds>`: run that many untimed rounds of
//!   `medium_lifo` (100 pairs each) or `medium_churn` (2,000 pairs each) and exit (requests of
//!   513 B to 32 KiB, `medium.rs`). `ALLOC_BENCH_LIFO` also takes sizes above 512.
//! * `ALLOC_BENCH_SCALE=all|holes,threads,thread_churn` (with `ALLOC_BENCH_HOLES_GIB`,
//!   `ALLOC_BENCH_THREADS`): also run the workloads at scale of `scale.rs` (issue 13), which
//!   `benches/scale_run.sh` runs.

mod block;
mod btree;
mod churn;
mod fragmentation;
mod large;
mod larson;
mod lifo;
mod medium;
mod peak;
mod producer_consumer;
mod rayon_pipeline;
mod rng;
mod scale;
mod serde_doc;
mod string_map;

use criterion::Criterion;
use std::time::Duration;

/// Thread counts from `ALLOC_BENCH_SWEEP`: `(larson, producer_consumer_<N>)`.
fn thread_counts() -> (Vec<usize>, Vec<usize>) {
    match std::env::var("ALLOC_BENCH_SWEEP") {
        Ok(list) => {
            let n: Vec<usize> = list
                .split(',')
                .map(|x| {
                    x.trim()
                        .parse()
                        .ok()
                        .filter(|&n| n > 0)
                        .unwrap_or_else(|| panic!("ALLOC_BENCH_SWEEP={list}: expected counts"))
                })
                .collect();
            (n.clone(), n)
        }
        Err(_) => (vec![2, 4, 8], vec![]),
    }
}

pub fn main(contender: &'static str) {
    if let Ok(workload) = std::env::var("ALLOC_BENCH_PEAK") {
        peak::run(contender, &workload);
        return;
    }
    if let Ok(spec) = std::env::var("ALLOC_BENCH_LIFO") {
        let (size, batches) = spec
            .split_once(':')
            .and_then(|(s, b)| Some((s.parse().ok()?, b.parse().ok()?)))
            .expect("ALLOC_BENCH_LIFO=<size>:<batches>");
        lifo::pairs(size, batches);
        return;
    }
    if let Ok(spec) = std::env::var("ALLOC_BENCH_MEDIUM") {
        match spec.split_once(':').map(|(k, r)| (k, r.parse())) {
            Some(("lifo", Ok(r))) => medium::lifo_rounds(r),
            Some(("churn", Ok(r))) => medium::churn_rounds(r),
            _ => panic!("ALLOC_BENCH_MEDIUM=lifo:<rounds> or churn:<rounds>"),
        }
        return;
    }
    if let Ok(rounds) = std::env::var("ALLOC_BENCH_CHURN") {
        churn::rounds(rounds.parse().expect("ALLOC_BENCH_CHURN=<rounds>"));
        return;
    }
    let frag = std::env::var("ALLOC_BENCH_FRAGMENTATION").unwrap_or_default();
    if frag != "skip" {
        fragmentation::run(contender);
    }
    if frag == "only" {
        return;
    }

    // Short runs: the whole suite (6 contenders) must stay within minutes on a shared
    // 2-core machine. Compare contenders only within one run.
    let mut c = Criterion::default()
        .sample_size(15)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    churn::bench(&mut c, contender);
    lifo::bench(&mut c, contender);
    medium::bench(&mut c, contender);
    large::bench(&mut c, contender);
    btree::bench(&mut c, contender);
    producer_consumer::bench(&mut c, contender);
    producer_consumer::bench_work(&mut c, contender);
    producer_consumer::bench_handoff(&mut c, contender);
    let (larson_threads, pair_counts) = thread_counts();
    for n in larson_threads {
        larson::bench(&mut c, contender, n);
    }
    for n in pair_counts {
        producer_consumer::bench_pairs(&mut c, contender, n);
    }
    serde_doc::bench(&mut c, contender);
    rayon_pipeline::bench(&mut c, contender);
    string_map::bench(&mut c, contender);
    scale::bench(&mut c, contender);
    c.final_summary();
}
