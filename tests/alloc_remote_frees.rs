//! Remote frees under load: producer threads allocate random-size blocks (8-512 bytes) and
//! hand them in batches to two consumer threads, which check and free them (every free a
//! remote free), through bounded channels so that the producer keeps allocating while its
//! pools' remote-free lists fill and are taken back. The producer also frees some of its own
//! blocks itself, so that a pool's own free list is often non-empty when its remote list is
//! taken (the list is spliced under it) and often empty (the list becomes the free list).
//! Each producer exits while its last batches are still being freed, so their frees go to an
//! abandoned heap, which a consumer comes to hold.
//!
//! What users rely on: no block is handed out twice or lost (every block's contents are
//! checked before it is freed), and `Pool::used` stays exact, so that when every block is
//! freed the blocks in use return to their baseline and the exited threads' heaps go, which
//! they do only once their pools are back in the arenas (a count one too high would keep a
//! pool, and its heap, forever).
//!
//! One test in this binary: it asserts exact process-wide numbers.

mod common;

use common::{Block, Rng};
use pyheap::alloc::stats;
use std::collections::VecDeque;
use std::sync::mpsc;
use std::thread;

#[global_allocator]
static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;

const ROUNDS: u64 = 4;
const BATCHES: u64 = 150;
const BATCH: u64 = 64;
/// Blocks the producer keeps for a while and frees itself (local frees).
const KEPT: usize = 48;

/// Returns how many blocks it freed itself.
fn producer(round: u64, to: [mpsc::SyncSender<Vec<Block>>; 2]) -> u64 {
    let mut rng = Rng::new(round + 1);
    let mut kept = VecDeque::new();
    let mut freed_here = 0;
    for batch in 0..BATCHES {
        let mut out = Vec::with_capacity(BATCH as usize);
        for i in 0..BATCH {
            let tag = (round << 48) | (batch << 16) | i;
            let align = if rng.below(4) == 0 { 16 } else { 8 };
            let b = Block::new(rng.range(1, 512), align, tag);
            if rng.below(8) == 0 {
                kept.push_back(b);
            } else {
                out.push(b);
            }
        }
        while kept.len() > KEPT {
            kept.pop_front().unwrap().free();
            freed_here += 1;
        }
        to[(batch % 2) as usize].send(out).unwrap();
    }
    // The rest goes to the consumers too, freed after this thread has exited (most likely).
    to[0].send(kept.into_iter().collect()).unwrap();
    freed_here
}

/// Returns how many blocks it freed.
fn consumer(from: mpsc::Receiver<Vec<Block>>) -> usize {
    let mut n = 0;
    for batch in from {
        n += batch.len();
        for b in batch {
            b.free();
        }
    }
    n
}

#[test]
fn remote_frees_come_back_exactly_once_and_pools_go_back() {
    common::wait_for_harness_idle();
    // Warm-up: std's one-time thread and channel machinery, allocated before the baseline.
    let (tx, rx) = mpsc::sync_channel::<Vec<Block>>(1);
    thread::spawn(move || tx.send(vec![Block::new(8, 8, 0)]).unwrap())
        .join()
        .unwrap();
    rx.recv().unwrap().into_iter().for_each(Block::free);
    drop(rx);
    let base = stats();

    for round in 0..ROUNDS {
        let (tx0, rx0) = mpsc::sync_channel(2);
        let (tx1, rx1) = mpsc::sync_channel(2);
        let consumers = [
            thread::spawn(move || consumer(rx0)),
            thread::spawn(move || consumer(rx1)),
        ];
        let freed_here = thread::spawn(move || producer(round, [tx0, tx1]))
            .join()
            .unwrap();
        let freed: usize = consumers.into_iter().map(|c| c.join().unwrap()).sum();
        assert_eq!(
            freed as u64 + freed_here,
            BATCHES * BATCH,
            "every block the producer did not free itself reached a consumer"
        );
    }

    let s = stats();
    assert_eq!(
        s.blocks_in_use(),
        base.blocks_in_use(),
        "blocks in use after every block was freed\n{s}"
    );
    assert_eq!(
        s.heaps_active, base.heaps_active,
        "exited threads hold no heap"
    );
    assert_eq!(
        s.heaps_abandoned, base.heaps_abandoned,
        "an exited thread's heap stayed: a pool of it still counts a freed block (the last \
         round's heaps hold whatever pools earlier rounds' heaps kept, by adoption)\n{s}"
    );
}
