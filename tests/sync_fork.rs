//! `fork()` while other threads use the shared object space: the child must be able to
//! create, drop and collect `pyheap::Gc` objects without deadlocking on a lock another thread
//! held at the moment of the fork (a scan's locks, a shard lock, the `collection` lock of a
//! thread inside `collect()`, the teardown queue), and its automatic collections must be torn
//! down by a collector thread of its own (the parent's does not exist in the child).
//!
//! The parent runs two threads that keep every lock busy: one builds and drops cycles with
//! automatic collection at threshold 50 (scans on that thread, teardowns on pyheap's
//! collector thread), one calls `collect()` in a loop. It forks 20 times; each child
//! (watched by `alarm`: a deadlock is a SIGALRM death, which the parent reports) checks that
//! an explicit collection frees exactly its garbage, that a new thread in it can use the
//! space, and that automatic collections free cycles without an explicit `collect()`.
//!
//! Users care: pre-fork servers and `multiprocessing`-style workers fork processes whose
//! threads are busy, and a child hung on a lock is a silent outage.

#[path = "common/fork.rs"]
mod fork;

use pyheap::{Gc, Trace};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;

/// Drops of `Node`s in this process (reset in each child).
static DROPS: AtomicUsize = AtomicUsize::new(0);

#[derive(Trace, Default)]
struct Node {
    edges: Mutex<Vec<Gc<Node>>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        DROPS.fetch_add(1, SeqCst);
    }
}

/// `n` two-node cycles, their handles dropped (garbage for the collector).
fn make_cycles(n: usize) {
    for _ in 0..n {
        let a = Gc::new(Node::default());
        let b = Gc::new(Node::default());
        a.edges.lock().unwrap().push(b.clone());
        b.edges.lock().unwrap().push(a.clone());
    }
}

/// The child's checks; returns its exit status (0: all good).
fn child_work() -> i32 {
    DROPS.store(0, SeqCst);
    // 1. An explicit collection frees exactly the child's garbage (automatic collection off,
    //    so that all of it is left to `collect()`; garbage inherited from the parent is
    //    freed too, but its drops happened before the reset or count separately below).
    pyheap::gc::disable();
    pyheap::collect();
    DROPS.store(0, SeqCst);
    make_cycles(1000);
    let freed = pyheap::collect();
    if DROPS.load(SeqCst) != 2000 || freed < 2000 {
        return 3;
    }
    // 2. A new thread in the child (it takes a shard, maybe adopting one) creates garbage
    //    that this thread's collection frees.
    let t = thread::spawn(|| make_cycles(500));
    if t.join().is_err() {
        return 4;
    }
    pyheap::collect();
    if DROPS.load(SeqCst) != 3000 {
        return 5;
    }
    // 3. Automatic collection: scans on this thread, teardowns on a collector thread the
    //    child must start itself. No explicit `collect()` until most cycles are freed.
    pyheap::gc::set_threshold(50, 10, 10);
    pyheap::gc::enable();
    make_cycles(2000);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while DROPS.load(SeqCst) < 3000 + 2000 {
        if std::time::Instant::now() > deadline {
            return 6;
        }
        thread::sleep(std::time::Duration::from_millis(1));
    }
    pyheap::collect();
    // `collect()` does not wait for the batch the collector thread may be tearing down.
    pyheap::gc::wait_for_teardowns();
    if DROPS.load(SeqCst) != 3000 + 4000 {
        return 7;
    }
    0
}

#[test]
fn fork_while_other_threads_collect_never_deadlocks_the_child() {
    pyheap::gc::set_threshold(50, 10, 10);
    pyheap::gc::enable();
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicUsize::new(0));
    let builder = {
        let (stop, rounds) = (stop.clone(), rounds.clone());
        thread::spawn(move || {
            while !stop.load(SeqCst) {
                make_cycles(200);
                rounds.fetch_add(1, SeqCst);
            }
        })
    };
    let collector = {
        let stop = stop.clone();
        thread::spawn(move || {
            while !stop.load(SeqCst) {
                pyheap::collect();
            }
        })
    };
    while rounds.load(SeqCst) < 5 {
        thread::yield_now();
    }
    for fork_no in 0..20 {
        fork::fork_and_check(fork_no, 30, 9, child_work);
        thread::sleep(std::time::Duration::from_millis(3));
    }
    stop.store(true, SeqCst);
    builder.join().unwrap();
    collector.join().unwrap();
    pyheap::gc::set_threshold(700, 10, 10);
}
