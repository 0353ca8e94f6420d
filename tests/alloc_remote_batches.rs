//! Remote frees in batches (`PoolAlloc`'s docs, "Blocks freed by another thread"): a thread
//! keeps the blocks it frees into another thread's pool and publishes them later, in one
//! operation. What users rely on:
//!
//! * a thread that freed other threads' blocks and then sleeps holds them only until it
//!   exits: meanwhile `stats()` counts them as free, and its exit gives them back, so that
//!   the heap of the thread that allocated them (exited too) goes;
//! * many threads that each free a few blocks of an exited thread's pools and exit (with
//!   those frees still batched) give every block back: the exited thread's heap goes.
//!
//! Checked to fail when the exit forgets the batches (`loom-tests/sanity/r4_exit_forgets_batches.patch`
//! applied: both tests report the exited thread's heap as still abandoned).
//!
//! One test in this binary (running both parts in turn): it asserts exact process-wide
//! numbers.

mod common;

use common::{Block, Rng};
use pyheap::alloc::stats;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;

#[global_allocator]
static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;

/// Wait, without allocating, until `flag` is `value`.
fn wait_for(flag: &AtomicUsize, value: usize) {
    while flag.load(Ordering::Acquire) != value {
        thread::yield_now();
    }
}

/// Warm-up: std's one-time thread and channel machinery, allocated before a baseline.
fn warm_up() {
    let (tx, rx) = mpsc::sync_channel::<Vec<Block>>(1);
    thread::spawn(move || tx.send(vec![Block::new(8, 8, 0)]).unwrap())
        .join()
        .unwrap();
    rx.recv().unwrap().into_iter().for_each(Block::free);
}

#[test]
fn remote_frees_in_batches_come_back_at_exit() {
    common::wait_for_harness_idle();
    warm_up();
    a_sleeping_freer_holds_its_batch_until_it_exits();
    freers_that_exit_with_batches_give_every_block_back();
}

fn a_sleeping_freer_holds_its_batch_until_it_exits() {
    let base = stats();

    // The allocating thread: 10 blocks of 200 bytes (one pool; a batch holds 19 of them),
    // handed over, then it exits, its heap kept (abandoned) by the live blocks.
    let (tx, rx) = mpsc::channel::<Vec<Block>>();
    let freer_rx = Arc::new(Mutex::new(rx));
    let flag = Arc::new(AtomicUsize::new(0));
    let freer = {
        let (rx, flag) = (freer_rx.clone(), flag.clone());
        thread::spawn(move || {
            // Bind a heap first, so that this thread cannot adopt the allocating thread's.
            let bound = Box::new(7u64);
            flag.store(1, Ordering::Release);
            let blocks = rx.lock().unwrap().recv().unwrap();
            flag.store(2, Ordering::Release);
            wait_for(&flag, 3);
            // From here on nothing allocates: the frees stay in this thread's batch.
            blocks.into_iter().for_each(Block::free);
            flag.store(4, Ordering::Release);
            wait_for(&flag, 5);
            assert_eq!(*bound, 7);
        })
    };
    wait_for(&flag, 1);
    thread::spawn(move || {
        let blocks: Vec<Block> = (0..10).map(|i| Block::new(200, 8, i)).collect();
        tx.send(blocks).unwrap();
    })
    .join()
    .unwrap();
    wait_for(&flag, 2);
    let before = stats();
    assert_eq!(
        before.heaps_abandoned,
        base.heaps_abandoned + 1,
        "the allocating thread's heap, kept by its live blocks\n{before}"
    );

    flag.store(3, Ordering::Release);
    wait_for(&flag, 4);
    let during = stats();
    // The 10 blocks and the vector's buffer are free as far as the program is concerned.
    assert_eq!(
        during.blocks_in_use(),
        before.blocks_in_use() - 11,
        "batched blocks are counted as free\n{during}"
    );
    // The batch keeps their pool, and so the exited thread's heap (the documented bound: a
    // freer that sleeps holds its batches).
    assert_eq!(
        during.heaps_abandoned, before.heaps_abandoned,
        "nothing was published before the freer's exit\n{during}"
    );

    flag.store(5, Ordering::Release);
    freer.join().unwrap();
    drop((freer_rx, flag));
    let after = stats();
    assert_eq!(
        after.heaps_abandoned, base.heaps_abandoned,
        "the freer's exit published its batch: the exited thread's heap went\n{after}"
    );
    assert_eq!(after.heaps_active, base.heaps_active);
    assert_eq!(after.blocks_in_use(), base.blocks_in_use(), "\n{after}");
}

fn freers_that_exit_with_batches_give_every_block_back() {
    let base = stats();
    for round in 0..3u64 {
        // One thread allocates random sizes (every class, several pools of the small ones)
        // and exits; 8 threads free a share each, interleaving pools and classes (batches
        // restarted on every pool change, some filled up), and exit with what is left in
        // their batches.
        // The freers bind a heap first, so that none adopts the allocating thread's.
        let bound = Arc::new(AtomicUsize::new(0));
        let (freers, senders): (Vec<_>, Vec<_>) = (0..8)
            .map(|_| {
                let (tx, rx) = mpsc::channel::<Vec<Block>>();
                let bound = bound.clone();
                let freer = thread::spawn(move || {
                    let first = Box::new(1u64);
                    bound.fetch_add(*first as usize, Ordering::Release);
                    rx.recv().unwrap().into_iter().for_each(Block::free);
                });
                (freer, tx)
            })
            .unzip();
        wait_for(&bound, 8);
        let shares: Vec<Vec<Block>> = thread::spawn(move || {
            let mut rng = Rng::new(round + 7);
            let mut shares: Vec<Vec<Block>> = (0..8).map(|_| Vec::new()).collect();
            for i in 0..4000u64 {
                let b = Block::new(rng.range(1, 512), 8, (round << 32) | i);
                shares[rng.below(8)].push(b);
            }
            shares
        })
        .join()
        .unwrap();
        for (share, tx) in shares.into_iter().zip(senders) {
            tx.send(share).unwrap();
        }
        for f in freers {
            f.join().unwrap();
        }
        drop(bound);
        let s = stats();
        assert_eq!(
            s.blocks_in_use(),
            base.blocks_in_use(),
            "round {round}: blocks in use after every block was freed\n{s}"
        );
        assert_eq!(
            (s.heaps_active, s.heaps_abandoned),
            (base.heaps_active, base.heaps_abandoned),
            "round {round}: the allocating thread's heap stayed: a block of it was left in \
             a batch\n{s}"
        );
    }
}
