//! Stats across threads: after threads allocate, free each other's blocks, exit with blocks
//! still alive (freed later by the main thread), the blocks in use return to their baseline;
//! and threads that start and exit over and over do not pile up heaps: exited threads' heaps
//! are adopted, so the number of heaps stays bounded by the most threads alive at once.
//!
//! Users care because thread pools and per-request threads are common: an allocator that
//! leaks a heap, or the pools of a heap, per thread grows without bound.
//!
//! One test in this binary: it asserts exact process-wide numbers.

mod common;

use common::{Block, Rng};
use pyheap::alloc::stats;
use std::sync::mpsc;
use std::thread;

#[global_allocator]
static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;

fn heaps() -> usize {
    let s = stats();
    s.heaps_active + s.heaps_abandoned
}

#[test]
fn stats_return_to_baseline_and_heaps_stay_bounded_across_threads() {
    common::wait_for_harness_idle();
    drop(vec![0u8; 10]);
    // Warm-up: spawn and join once, so that std's one-time thread machinery is allocated
    // before the baseline.
    thread::spawn(|| drop(vec![1u8; 10])).join().unwrap();
    let base = stats();
    let heaps_base = heaps();

    // 1. Threads that exit with live blocks; the main thread frees them after they are gone.
    let handles: Vec<_> = (0..4u64)
        .map(|t| {
            thread::spawn(move || {
                let mut rng = Rng::new(t);
                (0..5000)
                    .map(|i| Block::new(rng.range(1, 512), 8, (t << 32) | i))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let blocks: Vec<Block> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let s = stats();
    assert_eq!(s.blocks_in_use(), base.blocks_in_use() + 20_000);
    assert!(
        s.heaps_abandoned >= 1,
        "exited threads' heaps are abandoned"
    );
    for b in blocks {
        b.free();
    }
    let s = stats();
    assert_eq!(
        s.blocks_in_use(),
        base.blocks_in_use(),
        "blocks freed by main after their threads exited"
    );
    assert_eq!(s.fallback_count, base.fallback_count);

    // 2. Threads freeing each other's blocks, all joined.
    let (tx, rx) = mpsc::channel::<Vec<Block>>();
    let producer = thread::spawn(move || {
        for round in 0..20u64 {
            let batch = (0..500)
                .map(|i| Block::new(1 + (i % 700) as usize, 8, (round << 32) | i))
                .collect();
            tx.send(batch).unwrap();
        }
    });
    let consumer = thread::spawn(move || {
        let mut n = 0;
        for batch in rx {
            for b in batch {
                b.free();
                n += 1;
            }
        }
        n
    });
    producer.join().unwrap();
    assert_eq!(consumer.join().unwrap(), 10_000);
    let s = stats();
    assert_eq!(
        s.blocks_in_use(),
        base.blocks_in_use(),
        "cross-thread frees"
    );
    assert_eq!(s.fallback_count, base.fallback_count);
    assert_eq!(s.fallback_bytes, base.fallback_bytes);

    // 3. Threads starting and exiting repeatedly, at most 4 alive at once (plus this one):
    // heaps are reused.
    const LIVE: usize = 4;
    for wave in 0..25u64 {
        let hs: Vec<_> = (0..LIVE as u64)
            .map(|t| {
                thread::spawn(move || {
                    let v: Vec<Box<[u8]>> = (0..200)
                        .map(|i| vec![(wave + t) as u8; 1 + i % 300].into_boxed_slice())
                        .collect();
                    // Keep a few blocks alive past the thread's exit.
                    v.into_iter().take(5).collect::<Vec<_>>()
                })
            })
            .collect();
        let kept: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        drop(kept);
        let h = heaps();
        assert!(
            h <= heaps_base + LIVE,
            "wave {wave}: {h} heaps for at most {LIVE} threads alive beyond the {heaps_base} \
             there were before"
        );
    }
    let s = stats();
    assert_eq!(
        s.blocks_in_use(),
        base.blocks_in_use(),
        "after thread waves"
    );
    assert_eq!(
        s.heaps_active, base.heaps_active,
        "exited threads hold no heap"
    );
}
