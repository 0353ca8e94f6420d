//! `fork()` while another thread allocates with tracemalloc on: the child must be able to
//! allocate (recording traces in the shards the other thread was using at the moment of the
//! fork), take a snapshot that shows its own allocations at their line, and stop tracing,
//! without deadlocking on a trace lock. Forks 10 times while a thread allocates and frees
//! traced blocks constantly; an `alarm` turns a deadlock into a SIGALRM death, which the
//! parent reports.

#[path = "common/fork.rs"]
mod fork;

use pyheap::tracemalloc::{self, KeyType};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

#[global_allocator]
static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;

/// Allocates 1000 traced blocks at one line, finds them in a snapshot; exit status 0 if all
/// is right.
fn child_work() -> i32 {
    let line = line!() + 1;
    let blocks: Vec<Box<[u8; 48]>> = (0..1000).map(|i| Box::new([i as u8; 48])).collect();
    let snap = tracemalloc::take_snapshot();
    let mine = snap.statistics(KeyType::Lineno).into_iter().find(|s| {
        s.traceback
            .line()
            .is_some_and(|f| f.filename().ends_with("tracemalloc_fork.rs") && f.lineno() == line)
    });
    let status = match mine {
        // The 1000 boxes and the vector's buffer (1000 pointers).
        Some(s) if s.count == 1001 && s.size == 48_000 + 8_000 => 0,
        Some(_) => 3,
        None => 4,
    };
    drop(blocks);
    tracemalloc::stop();
    if tracemalloc::get_traced_memory().0 != 0 {
        return 6;
    }
    status
}

#[test]
fn fork_while_a_thread_allocates_traced_blocks_never_deadlocks_the_child() {
    tracemalloc::start(3);
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicUsize::new(0));
    let hammer = {
        let (stop, rounds) = (stop.clone(), rounds.clone());
        thread::spawn(move || {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let blocks: Vec<Box<[u8; 100]>> =
                    (0..500).map(|_| Box::new([i as u8; 100])).collect();
                let big = vec![1u8; 20_000 + i % 1000];
                assert!(blocks.iter().all(|b| b[99] == i as u8) && big[19_999] == 1);
                drop(blocks);
                i += 1;
                rounds.store(i, Ordering::Relaxed);
            }
        })
    };
    while rounds.load(Ordering::Relaxed) < 2 {
        thread::yield_now();
    }
    // Load the debug info once, here: the children inherit it (else each parses it again).
    assert!(!tracemalloc::take_snapshot().traces().is_empty());
    for fork_no in 0..10 {
        let keep: Vec<String> = (0..100).map(|i| i.to_string()).collect();
        fork::fork_and_check(fork_no, 20, 5, child_work);
        assert_eq!(keep[99], "99");
    }
    stop.store(true, Ordering::Relaxed);
    hammer.join().unwrap();
    tracemalloc::stop();
}
