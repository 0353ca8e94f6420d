//! Workload 3, `btree`: build and drop a `BTreeMap<String, Vec<u32>>`.
//!
//! 10,000 entries with 20-byte string keys and 0..16-element vectors: ordinary Rust
//! collection code rather than a synthetic loop. It mixes small blocks (keys, values) with
//! B-tree nodes, which at 24+24 bytes per slot are larger than 512 bytes and so go to
//! pyheap's system-allocator fallback. Throughput is in entries (each about two small
//! allocations plus its share of nodes).

use super::rng::XorShift;
use criterion::{Criterion, Throughput};
use std::collections::BTreeMap;
use std::hint::black_box;

const ENTRIES: usize = 10_000;

fn build(seed: u64) -> BTreeMap<String, Vec<u32>> {
    let mut rng = XorShift::new(seed);
    let mut map = BTreeMap::new();
    for _ in 0..ENTRIES {
        let key = format!("key-{:016x}", rng.next_u64());
        let len = rng.below(16);
        let value: Vec<u32> = (0..len as u32).collect();
        map.insert(key, value);
    }
    map
}

pub fn bench(c: &mut Criterion, contender: &str) {
    let mut group = c.benchmark_group("btree");
    group.throughput(Throughput::Elements(ENTRIES as u64));
    let mut seed = 0;
    group.bench_function(contender, |b| {
        b.iter(|| {
            seed += 1;
            drop(black_box(build(seed)));
        })
    });
    group.finish();
}

/// The peak-RSS run (`super::peak`): 100 maps built and dropped.
pub fn standalone() {
    for seed in 1..=100 {
        drop(black_box(build(seed)));
    }
}
