//! Model M13: **`collect()` waits for no other thread's teardown** (issue 12, item 4;
//! `SharedSpace::finish_pending`, `docs/concurrency.md` §0).
//!
//! A garbage self-cycle A whose `Drop` waits (spinning with `yield_now`) until thread T has
//! returned from its own `collect()`. The main thread's `collect(0)` finds A and runs that
//! `Drop`; T starts its `collect(0)` once the `Drop` has started, and its scan, queue
//! servicing and return interleave with the rest of the main thread's teardown. Before
//! issue 12 a collection held a lock from its scan to the end of its
//! teardown, and `collect()` waited for the teardowns running elsewhere: T waited for the
//! main thread's teardown, which waited for T — a deadlock (a `Drop` of the automatic
//! collection's teardown on the collector thread hung every later `collect()` the same way).
//!
//! Asserts: both collections return (loom reports a deadlock, or a livelock as exceeding its
//! branch bound, otherwise); the main thread's frees A, T's returns 0 (A is not its to free,
//! and it does not wait for it); A was dropped once and the space is empty. Sanity mutation
//! `m13_collect_waits_for_teardowns` (a collection waits while another thread's collection
//! is running, as the old lock made it) makes it fail.
#![cfg(loom)]

mod common;

use common::gc::{finish, Log, Node};
use common::model;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread;
use pyheap::gc::model as gcm;
use pyheap::Gc;

const A: usize = 0;

loom::lazy_static! {
    /// The `Drop` has started / T's `collect()` has returned.
    static ref STARTED: AtomicBool = AtomicBool::new(false);
    static ref DONE: AtomicBool = AtomicBool::new(false);
}

fn drop_waits_for_t(_: &Node) {
    STARTED.store(true, Ordering::Release);
    while !DONE.load(Ordering::Acquire) {
        thread::yield_now();
    }
}

#[test]
fn a_drop_can_wait_for_a_thread_calling_collect() {
    model(|| {
        let log = Log::new(1);
        let a = Gc::new(
            Node::new(&log, A)
                .with_mutex(Vec::new())
                .on_drop(drop_waits_for_t),
        );
        a.edges().push(a.clone());
        drop(a);
        let t = thread::spawn(move || {
            while !STARTED.load(Ordering::Acquire) {
                thread::yield_now();
            }
            let r = gcm::collect(0);
            DONE.store(true, Ordering::Release);
            r
        });
        let freed = gcm::collect(0);
        let theirs = t.join().unwrap();
        assert_eq!((freed, theirs), (1, 0));
        assert_eq!(log.drops(A), 1);
        finish(&log);
    });
}
