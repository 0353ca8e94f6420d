//! Workloads `medium_lifo` and `medium_churn`: requests of 513 B to 32 KiB, above the pools'
//! 512-byte limit, so that pyheap serves them from its fallback allocator (issue 17, "Requests
//! above 512 bytes").
//!
//! * `medium_lifo`: 100 blocks of sizes drawn once from 513..=32768 B (a fixed sequence, the
//!   same for every contender), allocated then freed last-first: the allocator's own cost per
//!   request, at sizes where glibc leaves its per-thread cache (above 1032 B).
//! * `medium_churn`: 256 live blocks of 513..=32768 B; each operation frees a random one and
//!   allocates a new random size in its place (2,000 per iteration).
//!
//! Throughput is in alloc+free pairs. [`lifo_rounds`] and [`churn_rounds`] run the same loops
//! untimed, for instruction counting under callgrind (`ALLOC_BENCH_MEDIUM=lifo:<rounds>` or
//! `churn:<rounds>`).

use super::block::Block;
use super::rng::XorShift;
use criterion::{Criterion, Throughput};
use std::hint::black_box;

pub const MIN: usize = 513;
pub const MAX: usize = 32 * 1024;
const LIFO_BATCH: usize = 100;
const SLOTS: usize = 256;
const OPS: usize = 2_000;

fn lifo_sizes() -> Vec<usize> {
    let mut rng = XorShift::new(7);
    (0..LIFO_BATCH).map(|_| rng.range(MIN, MAX)).collect()
}

#[inline(always)]
fn lifo_batch(sizes: &[usize], blocks: &mut Vec<Block>) {
    for &s in sizes {
        blocks.push(Block::new(s));
    }
    black_box(&mut *blocks);
    while let Some(b) = blocks.pop() {
        drop(b);
    }
}

struct Ring {
    slots: Vec<Option<Block>>,
    rng: XorShift,
}

impl Ring {
    fn new() -> Ring {
        let mut rng = XorShift::new(3);
        let slots = (0..SLOTS)
            .map(|_| Some(Block::new(rng.range(MIN, MAX))))
            .collect();
        Ring { slots, rng }
    }

    fn ops(&mut self) {
        for _ in 0..OPS {
            let i = self.rng.below(SLOTS);
            self.slots[i] = None;
            self.slots[i] = Some(Block::new(self.rng.range(MIN, MAX)));
        }
        black_box(&mut self.slots);
    }
}

pub fn bench(c: &mut Criterion, contender: &str) {
    let sizes = lifo_sizes();
    let mut blocks = Vec::with_capacity(LIFO_BATCH);
    let mut group = c.benchmark_group("medium_lifo");
    group.throughput(Throughput::Elements(LIFO_BATCH as u64));
    group.bench_function(contender, |b| b.iter(|| lifo_batch(&sizes, &mut blocks)));
    group.finish();

    let mut ring = Ring::new();
    let mut group = c.benchmark_group("medium_churn");
    group.throughput(Throughput::Elements(OPS as u64));
    group.bench_function(contender, |b| b.iter(|| ring.ops()));
    group.finish();
}

/// `rounds` LIFO batches (100 pairs each), untimed.
pub fn lifo_rounds(rounds: usize) {
    let sizes = lifo_sizes();
    let mut blocks = Vec::with_capacity(LIFO_BATCH);
    for _ in 0..rounds {
        lifo_batch(&sizes, &mut blocks);
    }
}

/// `rounds` churn iterations (2,000 pairs each), untimed.
pub fn churn_rounds(rounds: usize) {
    let mut ring = Ring::new();
    for _ in 0..rounds {
        ring.ops();
    }
}
