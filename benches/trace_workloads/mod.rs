//! The workloads of the tracing benchmarks (`trace_pyheap`, `trace_dhat`, `trace_system`):
//! what allocation tracing costs, in the same session, for pyheap's tracemalloc (off, 1 frame,
//! 5 frames), pyheap's debug allocator, and `dhat` (off, on), against the plain allocators.
//! `benches/trace_python.py` runs the same three workloads in CPython with and without its
//! `tracemalloc`; `benches/trace_run.sh` runs everything and prints the ratios.
//!
//! * `trace_churn`: 10,000 × (free a random one of 4096 live blocks of 8-512 B, allocate a new
//!   one in its place) — the allocator churn workload;
//! * `trace_lifo`: 1000 blocks of 32 B allocated, then freed last first;
//! * `trace_btree`: a `BTreeMap<String, Vec<u32>>` of 2,000 entries built and dropped
//!   (ordinary collection code: strings, vectors growing, tree nodes).
//!
//! Each binary calls [`run`] with the contender names it measures and a closure that turns
//! the contender's mode on (and returns a guard that turns it off).

#[path = "../alloc_workloads/block.rs"]
mod block;
#[path = "../alloc_workloads/rng.rs"]
mod rng;

use block::Block;
use criterion::{Criterion, Throughput};
use rng::XorShift;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

const SLOTS: usize = 4096;
const OPS: usize = 10_000;
const LIFO: usize = 1000;
const ENTRIES: u32 = 2000;

fn churn(c: &mut Criterion, name: &str) {
    let mut rng = XorShift::new(1);
    let mut slots: Vec<Option<Block>> = (0..SLOTS)
        .map(|_| Some(Block::new(rng.range(8, 512))))
        .collect();
    let mut g = c.benchmark_group("trace_churn");
    g.throughput(Throughput::Elements(OPS as u64));
    g.bench_function(name, |b| {
        b.iter(|| {
            for _ in 0..OPS {
                let i = rng.below(SLOTS);
                slots[i] = None;
                slots[i] = Some(Block::new(rng.range(8, 512)));
            }
            black_box(&mut slots);
        })
    });
    g.finish();
}

fn lifo(c: &mut Criterion, name: &str) {
    let mut blocks = Vec::with_capacity(LIFO);
    let mut g = c.benchmark_group("trace_lifo");
    g.throughput(Throughput::Elements(LIFO as u64));
    g.bench_function(name, |b| {
        b.iter(|| {
            for _ in 0..LIFO {
                blocks.push(Block::new(32));
            }
            black_box(&mut blocks);
            while let Some(b) = blocks.pop() {
                drop(b);
            }
        })
    });
    g.finish();
}

fn btree(c: &mut Criterion, name: &str) {
    let mut g = c.benchmark_group("trace_btree");
    g.throughput(Throughput::Elements(u64::from(ENTRIES)));
    g.bench_function(name, |b| {
        b.iter(|| {
            let mut m: BTreeMap<String, Vec<u32>> = BTreeMap::new();
            for i in 0..ENTRIES {
                let v = m
                    .entry(format!("key{}", i.wrapping_mul(2_654_435_761) % 10_000))
                    .or_default();
                v.extend(0..i % 17);
            }
            black_box(&m);
        })
    });
    g.finish();
}

/// Measure every workload for each `(name, turn_on)` contender: `turn_on` is called before
/// the contender's measurements and its result dropped after them.
pub fn run<G>(contenders: &[(&str, &dyn Fn() -> G)]) {
    let mut c = Criterion::default()
        .sample_size(15)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    for (name, on) in contenders {
        let guard = on();
        churn(&mut c, name);
        lifo(&mut c, name);
        btree(&mut c, name);
        drop(guard);
    }
    c.final_summary();
}
