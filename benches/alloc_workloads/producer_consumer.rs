//! Workload 4, `producer_consumer`: every block is freed by a thread other than the one that
//! allocated it (xmalloc-test style). `producer_consumer_<N>` (the thread sweep,
//! [`super::threads`]) runs `N` such pairs at once, each producer a spawned thread.
//!
//! The bench thread allocates batches of 256 random-size (8..=512 bytes) blocks and hands
//! each batch through a bounded channel to a consumer thread, which frees them and sends the
//! empty batch vector back for reuse (so the handoff itself allocates nothing). This is the
//! worst case for thread-local free lists: every free is a remote free, and the producer's
//! memory only comes back through the allocator's cross-thread path. Throughput is in
//! blocks; the time includes spawning and joining the consumer once per sample.

use super::block::Block;
use super::rng::XorShift;
use criterion::{Criterion, Throughput};
use std::sync::mpsc::sync_channel;
use std::thread;
use std::time::{Duration, Instant};

const BATCH: usize = 256;
const IN_FLIGHT: usize = 4;
const MIN: usize = 8;
const MAX: usize = 512;

/// One producer (this thread) and its consumer, `iters` batches.
fn run(iters: u64, rng: &mut XorShift) -> Duration {
    let (full_tx, full_rx) = sync_channel::<Vec<Block>>(IN_FLIGHT);
    let (empty_tx, empty_rx) = sync_channel::<Vec<Block>>(IN_FLIGHT + 2);
    for _ in 0..IN_FLIGHT + 2 {
        empty_tx.send(Vec::with_capacity(BATCH)).unwrap();
    }
    let start = Instant::now();
    let consumer = thread::spawn(move || {
        while let Ok(mut batch) = full_rx.recv() {
            batch.clear();
            if empty_tx.send(batch).is_err() {
                break;
            }
        }
    });
    for _ in 0..iters {
        let mut batch = empty_rx.recv().unwrap();
        for _ in 0..BATCH {
            batch.push(Block::new(rng.range(MIN, MAX)));
        }
        full_tx.send(batch).unwrap();
    }
    drop(full_tx);
    consumer.join().unwrap();
    start.elapsed()
}

/// `pairs` producers (spawned) each with its consumer, `iters` batches per producer; the
/// time from before the first spawn to the last join.
fn run_pairs(pairs: usize, iters: u64, seed: &mut u64) -> Duration {
    let start = Instant::now();
    let producers: Vec<_> = (0..pairs)
        .map(|_| {
            *seed += 1;
            let mut rng = XorShift::new(*seed);
            thread::spawn(move || run(iters, &mut rng))
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    start.elapsed()
}

pub fn bench(c: &mut Criterion, contender: &str) {
    let mut rng = XorShift::new(4);
    let mut group = c.benchmark_group("producer_consumer");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function(contender, |b| b.iter_custom(|iters| run(iters, &mut rng)));
    group.finish();
}

/// `producer_consumer_<pairs>`: throughput in blocks, all pairs together.
pub fn bench_pairs(c: &mut Criterion, contender: &str, pairs: usize) {
    let mut seed = 40;
    let mut group = c.benchmark_group(format!("producer_consumer_{pairs}"));
    group.throughput(Throughput::Elements((pairs * BATCH) as u64));
    group.bench_function(contender, |b| {
        b.iter_custom(|iters| run_pairs(pairs, iters, &mut seed))
    });
    group.finish();
}

/// The peak-RSS run (`super::peak`): 20,000 batches per producer; `pairs == 0` is the
/// suite's `producer_consumer` (this thread produces).
pub fn standalone(pairs: usize) {
    if pairs == 0 {
        run(20_000, &mut XorShift::new(4));
    } else {
        run_pairs(pairs, 20_000, &mut 40);
    }
}
