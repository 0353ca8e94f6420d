//! Workloads at scale (issue 13): a heap of several GiB, and thousands of threads. Run only
//! when `ALLOC_BENCH_SCALE` names them (`all`, or some of `holes,threads,thread_churn`;
//! `benches/scale_run.sh` sets it), since building the heaps takes GiB of memory and seconds
//! per contender; the other workloads are then best filtered out (`-- '^holes_|^thread'`).
//!
//! * `holes_<G>gib`: a heap of `G` GiB of 480-byte records with one 200-byte scratch object
//!   per 12 records. One iteration frees every scratch object (untimed: it leaves a couple of
//!   free pools in every arena) and allocates them all again (timed). Before issue 13, each
//!   new pool walked every arena under the arena lock. Sizes from `ALLOC_BENCH_HOLES_GIB`
//!   (default `1,4,8`).
//! * `threads_<N>`: `N` threads were alive at once, each allocated a 100-byte block, handed
//!   it to the main thread (which keeps it: their heaps stay abandoned) and exited. One
//!   iteration allocates 100,000 500-byte boxes on the main thread and frees them. Before
//!   issue 13, each new pool swept every heap. Counts from `ALLOC_BENCH_THREADS` (default
//!   `300,2000,8000`).
//! * `thread_churn_<N>`: `N` idle threads are alive (each holding a heap) while one
//!   iteration starts and joins 100 short-lived threads, one after another, each allocating
//!   and freeing 100 boxes. Before issue 13, each exit swept every heap. Same counts.
//!
//! Throughput is in elements: scratch objects, boxes, threads.

use criterion::{Criterion, Throughput};
use std::hint::black_box;
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

const GIB: usize = 1 << 30;
const RECORD: usize = 480;
const SCRATCH: usize = 200;
const RECORDS_PER_SCRATCH: usize = 12;
const BOXES: usize = 100_000;
const BOX: usize = 500;
const SHORT_THREADS: usize = 100;
/// Small stacks, so that thousands of threads are cheap to keep.
const STACK: usize = 64 * 1024;

fn list(var: &str, default: &str) -> Vec<usize> {
    std::env::var(var)
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect()
}

pub fn bench(c: &mut Criterion, contender: &str) {
    let Ok(families) = std::env::var("ALLOC_BENCH_SCALE") else {
        return;
    };
    let on = |f: &str| families == "all" || families.split(',').any(|x| x.trim() == f);
    if on("holes") {
        for gib in list("ALLOC_BENCH_HOLES_GIB", "1,4,8") {
            holes(c, contender, gib);
        }
    }
    for n in list("ALLOC_BENCH_THREADS", "300,2000,8000") {
        if on("threads") {
            threads(c, contender, n);
        }
        if on("thread_churn") {
            thread_churn(c, contender, n);
        }
    }
}

fn holes(c: &mut Criterion, contender: &str, gib: usize) {
    let name = format!("holes_{gib}gib");
    let t0 = Instant::now();
    let n = gib * GIB / (RECORD + SCRATCH / RECORDS_PER_SCRATCH);
    let mut records: Vec<Box<[u8; RECORD]>> = Vec::with_capacity(n);
    let mut scratch: Vec<Box<[u8; SCRATCH]>> = Vec::with_capacity(n / RECORDS_PER_SCRATCH + 1);
    for i in 0..n {
        records.push(Box::new([i as u8; RECORD]));
        if i % RECORDS_PER_SCRATCH == 0 {
            scratch.push(Box::new([i as u8; SCRATCH]));
        }
    }
    let count = scratch.len();
    eprintln!(
        "{name}/{contender}: {n} records and {count} scratch objects built in {:.1?}",
        t0.elapsed()
    );
    let mut g = c.benchmark_group(&name);
    g.throughput(Throughput::Elements(count as u64));
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(1));
    g.measurement_time(Duration::from_secs(2));
    g.bench_function(contender, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                scratch.clear();
                let t = Instant::now();
                for i in 0..count {
                    scratch.push(Box::new([i as u8; SCRATCH]));
                }
                total += t.elapsed();
            }
            total
        })
    });
    g.finish();
    black_box(&records);
}

/// `n` threads alive at once, each allocating a block and handing it over before it exits.
#[allow(clippy::vec_box)] // one allocation per thread is the point
fn burst(n: usize) -> Vec<Box<[u8; 100]>> {
    let barrier = Arc::new(Barrier::new(n));
    let (tx, rx) = mpsc::channel();
    let hs: Vec<_> = (0..n)
        .map(|t| {
            let (barrier, tx) = (barrier.clone(), tx.clone());
            thread::Builder::new()
                .stack_size(STACK)
                .spawn(move || {
                    let b = Box::new([t as u8; 100]);
                    barrier.wait();
                    tx.send(b).unwrap();
                })
                .expect("spawn")
        })
        .collect();
    drop(tx);
    for h in hs {
        h.join().unwrap();
    }
    rx.into_iter().collect()
}

fn threads(c: &mut Criterion, contender: &str, n: usize) {
    let name = format!("threads_{n}");
    let kept = burst(n);
    let mut g = c.benchmark_group(&name);
    g.throughput(Throughput::Elements(BOXES as u64));
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(3));
    g.bench_function(contender, |b| {
        b.iter(|| {
            let v: Vec<Box<[u8; BOX]>> = (0..BOXES).map(|i| Box::new([i as u8; BOX])).collect();
            black_box(&v);
        })
    });
    g.finish();
    drop(kept);
}

fn thread_churn(c: &mut Criterion, contender: &str, n: usize) {
    let name = format!("thread_churn_{n}");
    let ready = Arc::new(Barrier::new(n + 1));
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let stop_rx = Arc::new(std::sync::Mutex::new(stop_rx));
    let idle: Vec<_> = (0..n)
        .map(|t| {
            let (ready, stop_rx) = (ready.clone(), stop_rx.clone());
            thread::Builder::new()
                .stack_size(STACK)
                .spawn(move || {
                    let b = Box::new(t as u64);
                    ready.wait();
                    // Wait for the end (a closed channel).
                    let _ = stop_rx.lock().map(|rx| rx.recv());
                    black_box(b);
                })
                .expect("spawn")
        })
        .collect();
    ready.wait();
    let mut g = c.benchmark_group(&name);
    g.throughput(Throughput::Elements(SHORT_THREADS as u64));
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(3));
    g.bench_function(contender, |b| {
        b.iter(|| {
            for t in 0..SHORT_THREADS {
                thread::Builder::new()
                    .stack_size(STACK)
                    .spawn(move || {
                        let v: Vec<Box<u64>> = (0..100).map(|i| Box::new(i * t as u64)).collect();
                        black_box(v);
                    })
                    .expect("spawn")
                    .join()
                    .unwrap();
            }
        })
    });
    g.finish();
    drop(stop_tx);
    for h in idle {
        h.join().unwrap();
    }
}
