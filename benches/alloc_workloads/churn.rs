//! Workload 1, `churn`: random-size churn over a ring of live blocks.
//!
//! 4096 live blocks of 8..=512 bytes; each operation frees a random one and allocates a new
//! block of a random size in its place. This is the steady state of a program holding a
//! working set of small objects of mixed sizes: every size class is hot, free lists are in
//! random order, and no pool ever empties. Throughput is in free+alloc pairs.

use super::block::Block;
use super::rng::XorShift;
use criterion::{Criterion, Throughput};
use std::hint::black_box;

const SLOTS: usize = 4096;
const OPS: usize = 10_000;
const MIN: usize = 8;
const MAX: usize = 512;

struct Ring {
    slots: Vec<Option<Block>>,
    rng: XorShift,
}

impl Ring {
    fn new() -> Ring {
        let mut rng = XorShift::new(1);
        let slots = (0..SLOTS)
            .map(|_| Some(Block::new(rng.range(MIN, MAX))))
            .collect();
        Ring { slots, rng }
    }

    /// One iteration: `OPS` replacements.
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
    let mut ring = Ring::new();
    let mut group = c.benchmark_group("churn");
    group.throughput(Throughput::Elements(OPS as u64));
    group.bench_function(contender, |b| b.iter(|| ring.ops()));
    group.finish();
}

/// The peak-RSS run (`super::peak`): 2,000 iterations.
pub fn standalone() {
    let mut ring = Ring::new();
    for _ in 0..2_000 {
        ring.ops();
    }
}

/// Run `rounds` iterations, untimed (`ALLOC_BENCH_CHURN`: instruction counting under
/// callgrind).
pub fn rounds(rounds: usize) {
    let mut ring = Ring::new();
    for _ in 0..rounds {
        ring.ops();
    }
}
