//! Heaps of exited threads: found without walking every heap, and given back once empty.
//!
//! The work is counted, not timed (`pyheap::alloc::slow_path_work`, hidden from the docs).
//! After a burst of `BURST` threads that allocated and exited (half of them leaving a block
//! alive, freed later by the main thread):
//! * the main thread's pool requests look at no heap at all (the old code swept every heap
//!   before every pool request while any heap was abandoned);
//! * a thread that starts and exits beside `IDLE` live threads looks at a bounded number of
//!   heaps, not at all of them;
//! * heaps whose thread exited with nothing alive in them are given back at once, and the
//!   others once their last block is freed: the heap count returns to where it was.
//!
//! Users care because thread pools grow in bursts and shrink (rayon, tokio's blocking pool,
//! test harnesses): after 2000 such threads, every new pool walked 2000 heaps (22x `System`'s
//! time for the same allocations), and the heaps stayed mapped forever.
//!
//! One test in this binary: it asserts on process-wide counters.

mod common;

use pyheap::alloc::{slow_path_work, stats};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;

#[global_allocator]
static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;

/// Threads alive at once in the burst.
const BURST: usize = 256;
/// Threads kept alive (each holding a heap) while short-lived ones come and go.
const IDLE: usize = 256;
/// Short-lived threads started and joined one after another beside the idle ones.
const SHORT: usize = 100;

fn heaps() -> (usize, usize) {
    let s = stats();
    (s.heaps_active, s.heaps_abandoned)
}

/// `BURST` threads alive at once, each allocating; the odd ones send a block to the caller
/// (alive past their exit), the even ones free theirs. Returns the blocks.
#[allow(clippy::vec_box)] // one allocation per block is the point
fn burst() -> Vec<Box<[u8; 100]>> {
    let barrier = Arc::new(Barrier::new(BURST));
    let (tx, rx) = mpsc::channel();
    let hs: Vec<_> = (0..BURST)
        .map(|t| {
            let (barrier, tx) = (barrier.clone(), tx.clone());
            thread::spawn(move || {
                let b = Box::new([t as u8; 100]);
                barrier.wait();
                if t % 2 == 1 {
                    tx.send(b).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    for h in hs {
        h.join().unwrap();
    }
    rx.into_iter().collect()
}

#[test]
fn abandoned_heaps_are_found_without_walking_all_heaps_and_given_back() {
    common::wait_for_harness_idle();
    // Warm-up: std's one-time thread machinery, and this thread's heap.
    thread::spawn(|| drop(vec![1u8; 10])).join().unwrap();
    let base = heaps();
    let w_start = slow_path_work();

    // 1. The burst.
    let kept = burst();
    assert_eq!(kept.len(), BURST / 2);
    let (active, abandoned) = heaps();
    println!("after the burst: {active} heaps held, {abandoned} abandoned (base {base:?})");
    assert!(
        abandoned <= BURST / 2,
        "{abandoned} heaps abandoned, but only {} threads left a block alive: the heaps of \
         threads that exited with nothing alive were not given back",
        BURST / 2
    );

    // 2. The main thread's pool requests: 20 rounds of 2000 500-byte boxes.
    let w0 = slow_path_work();
    for round in 0..20u8 {
        let v: Vec<Box<[u8; 500]>> = (0..2000).map(|_| Box::new([round; 500])).collect();
        assert!(v.iter().all(|b| b[499] == round));
    }
    let w = slow_path_work() - w0;
    println!(
        "main thread: {} pool requests looked at {} heaps",
        w.pool_requests, w.heaps_visited
    );
    assert!(w.pool_requests >= 20, "{w:?}");
    assert!(
        w.heaps_visited <= 4,
        "{} heaps looked at for {} pool requests of a thread that neither starts nor exits",
        w.heaps_visited,
        w.pool_requests
    );

    // 3. Short-lived threads beside idle ones.
    let go = Arc::new(Barrier::new(IDLE + 1));
    let ready = Arc::new(Barrier::new(IDLE + 1));
    let idle: Vec<_> = (0..IDLE)
        .map(|t| {
            let (go, ready) = (go.clone(), ready.clone());
            thread::spawn(move || {
                let b = Box::new(t as u64);
                ready.wait();
                go.wait();
                assert_eq!(*b, t as u64);
            })
        })
        .collect();
    ready.wait();
    let w0 = slow_path_work();
    for t in 0..SHORT {
        thread::spawn(move || {
            let v: Vec<Box<u64>> = (0..100).map(|i| Box::new(i * t as u64)).collect();
            assert_eq!(*v[99], 99 * t as u64);
        })
        .join()
        .unwrap();
    }
    let w = slow_path_work() - w0;
    println!(
        "{SHORT} short-lived threads beside {IDLE} idle ones: {} binds, {} exits, {} heaps \
         looked at",
        w.heap_binds, w.heap_exits, w.heaps_visited
    );
    assert!(w.heap_exits >= SHORT as u64, "{w:?}");
    assert!(
        w.heaps_visited <= 4 * (w.heap_binds + w.heap_exits),
        "{} heaps looked at for {} thread starts and {} exits beside {IDLE} idle threads: \
         a start or an exit walks the heaps",
        w.heaps_visited,
        w.heap_binds,
        w.heap_exits
    );
    go.wait();
    for h in idle {
        h.join().unwrap();
    }

    // 4. The burst's last blocks freed: every heap of the burst is given back.
    for b in &kept {
        // From an odd thread, in any order.
        assert!(
            b[0] % 2 == 1 && b.iter().all(|&x| x == b[0]),
            "a kept block corrupt"
        );
    }
    drop(kept);
    let (active, abandoned) = heaps();
    let w = slow_path_work() - w_start;
    println!(
        "at the end: {active} heaps held, {abandoned} abandoned (base {base:?}); in all {} \
         binds, {} exits, {} heaps looked at",
        w.heap_binds, w.heap_exits, w.heaps_visited
    );
    assert_eq!(
        abandoned, base.1,
        "abandoned heaps left after their last block was freed"
    );
    assert_eq!(active, base.0, "heaps held by threads that exited");
}
