//! `fork()` while another thread is inside the allocator: the child must be able to allocate
//! (new pools, new arenas, system-allocator requests) without deadlocking on a lock the other
//! thread held at the moment of the fork. Forks 20 times while a thread takes and returns pools
//! constantly; each child allocates and frees well over an arena's worth, checks the contents,
//! and `_exit`s; an `alarm` turns a deadlock into a SIGALRM death, which the parent reports.
//!
//! Users care because `fork()` from a multithreaded program (to `exec` a subprocess, or in
//! pre-fork servers) is common, and a child hung on an allocator lock is a silent outage.

#[path = "common/fork.rs"]
mod fork;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

#[global_allocator]
static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;

/// Allocate ~8 MiB in small blocks of several classes, plus large ones, check and free them.
/// Returns the child's exit status.
fn child_work() -> i32 {
    let mut small: Vec<Vec<u8>> = Vec::with_capacity(40_000);
    for i in 0..40_000usize {
        let size = 16 + (i % 32) * 16; // 16..=512
        small.push(vec![(i % 251) as u8; size]);
    }
    let large: Vec<Vec<u8>> = (0..50).map(|i| vec![i as u8; 10_000 + i]).collect();
    for (i, v) in small.iter().enumerate() {
        if v.iter().any(|&b| b != (i % 251) as u8) {
            return 3;
        }
    }
    if large
        .iter()
        .enumerate()
        .any(|(i, v)| v.iter().any(|&b| b != i as u8))
    {
        return 3;
    }
    drop(small);
    drop(large);
    // A thread in the child too: binding a new heap after the fork.
    let t = thread::spawn(|| {
        (0..10_000)
            .map(|i| Box::new(i as u64))
            .map(|b| *b)
            .sum::<u64>()
    });
    match t.join() {
        Ok(s) if s == (0..10_000u64).sum::<u64>() => 0,
        _ => 4,
    }
}

#[test]
fn fork_while_another_thread_allocates_never_deadlocks_the_child() {
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicUsize::new(0));
    let hammer = {
        let (stop, rounds) = (stop.clone(), rounds.clone());
        thread::spawn(move || {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                // Enough 512-byte blocks to take ~70 pools, then free them all (pools go back
                // to their arenas), plus system-allocator traffic.
                let blocks: Vec<Box<[u8; 512]>> =
                    (0..2000).map(|_| Box::new([i as u8; 512])).collect();
                let big = vec![1u8; 100_000 + i % 1000];
                assert!(blocks.iter().all(|b| b[511] == i as u8) && big[99_999] == 1);
                drop(blocks);
                i += 1;
                rounds.store(i, Ordering::Relaxed);
            }
        })
    };
    while rounds.load(Ordering::Relaxed) < 2 {
        thread::yield_now();
    }
    for fork_no in 0..20 {
        // Some allocation on this thread too, right before the fork.
        let keep: Vec<String> = (0..100).map(|i| i.to_string()).collect();
        fork::fork_and_check(fork_no, 20, 5, child_work);
        assert_eq!(keep[99], "99");
    }
    stop.store(true, Ordering::Relaxed);
    hammer.join().unwrap();
}
