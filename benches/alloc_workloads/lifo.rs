//! Workload 2, `lifo_<size>`: fixed-size batches freed in reverse (stack) order.
//!
//! Allocate 1000 blocks of one size, then free them last-first: the best case of every
//! free-list allocator, so it isolates the fast path (size-class lookup, thread-local state,
//! free-list pop/push). Sizes 8, 32, 128 and 512 cover the smallest class, two common object
//! sizes and pymalloc's largest class. Throughput is in alloc+free pairs.
//!
//! [`pairs`] runs the same loop outside criterion, for instruction counting under
//! callgrind (see `benches/callgrind.sh`).

use super::block::Block;
use criterion::{Criterion, Throughput};
use std::hint::black_box;

pub const SIZES: [usize; 4] = [8, 32, 128, 512];
pub const BATCH: usize = 1000;

#[inline(always)]
fn batch<const SIZE: usize>(blocks: &mut Vec<Block>) {
    for _ in 0..BATCH {
        blocks.push(Block::new(SIZE));
    }
    black_box(&mut *blocks);
    while let Some(b) = blocks.pop() {
        drop(b);
    }
}

fn bench_size<const SIZE: usize>(c: &mut Criterion, contender: &str) {
    let mut blocks = Vec::with_capacity(BATCH);
    let mut group = c.benchmark_group(format!("lifo_{SIZE}"));
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function(contender, |b| b.iter(|| batch::<SIZE>(&mut blocks)));
    group.finish();
}

pub fn bench(c: &mut Criterion, contender: &str) {
    bench_size::<8>(c, contender);
    bench_size::<32>(c, contender);
    bench_size::<128>(c, contender);
    bench_size::<512>(c, contender);
}

/// Run `batches` LIFO batches of `size`-byte blocks, untimed. The size is a constant of the
/// loop for [`SIZES`] and for the medium sizes 1024, 4096 and 16384 (requests pyheap sends
/// to its fallback allocator); any other size is rejected.
pub fn pairs(size: usize, batches: usize) {
    let mut blocks = Vec::with_capacity(BATCH);
    let run: fn(&mut Vec<Block>) = match size {
        8 => batch::<8>,
        32 => batch::<32>,
        128 => batch::<128>,
        512 => batch::<512>,
        1024 => batch::<1024>,
        4096 => batch::<4096>,
        16384 => batch::<16384>,
        _ => panic!("lifo size must be one of {SIZES:?}, 1024, 4096 or 16384"),
    };
    for _ in 0..batches {
        run(&mut blocks);
    }
}
