//! Model M5: **locked interiors** (hazard 5; `docs/concurrency.md` §4.5).
//!
//! A cycle {A, B} through their loom mutexes.
//! * `held_by_other_thread`: the mutator T holds `hA` and the guard of `A.m` across the main
//!   thread's `collect(0)`, checks the cycle, releases the guard and drops `hA` (the cycle
//!   becomes garbage, maybe while the scan runs);
//! * `held_by_collecting_thread`: the main thread holds `A.m`'s guard (and `hA`) and calls
//!   `collect(0)` itself while T also calls `collect(0)`; then it releases both.
//!
//! Interleavings that matter: the collector's `try_lock` of a mutex another thread holds
//! (`WouldBlock`: nothing reported, B behind it becomes a root); of a mutex the collecting
//! thread itself holds (loom's `try_lock` fails as std's does: no self-deadlock); the
//! mutator's `lock()` of a mutex a scan holds (it waits for the end of the scan, the scan
//! waits for nobody); two collections racing for the collection and space locks.
//!
//! Without `try_lock` (a blocking `lock()` in `Trace`), loom reports a deadlock: in the
//! second test the collecting thread waits for its own guard.
//!
//! loom 0.7 quirk (tokio-rs/loom#376, fix proposed in #383): a thread switched out inside
//! `try_lock` is marked *blocked* when another thread acquires that mutex with `lock()`, so
//! loom can report a deadlock that cannot happen (`try_lock` never waits). In the second
//! test the main thread therefore takes `A.m` before T exists; otherwise T's scan could be
//! inside `try_lock(A.m)` when the main thread's `lock()` succeeds, T would be parked while
//! holding the space and shard locks, and the main thread's `collect` would wait for it forever: a
//! false report, seen while writing this model.
//!
//! Asserts: no deadlock (loom); while locked, nothing of the cycle is freed; a later full
//! collection frees both, each dropped once, and leaves the space empty.
#![cfg(loom)]

mod common;

use common::gc::{assert_live, finish, mutex_pair, Log};
use common::model;
use loom::thread;
use pyheap::gc::model as gcm;

#[test]
fn held_by_other_thread() {
    model(|| {
        let log = Log::new(2);
        let (a, b) = mutex_pair(&log, 0, 1);
        drop(b);
        let t = thread::spawn(move || {
            let g = a.edges();
            assert_live(&g[0]);
            drop(g);
            drop(a);
        });
        let freed = gcm::collect(0);
        t.join().unwrap();
        assert!(freed == 0 || freed == 2, "freed {freed}");
        finish(&log);
    });
}

#[test]
fn held_by_collecting_thread() {
    model(|| {
        let log = Log::new(2);
        let (a, b) = mutex_pair(&log, 0, 1);
        drop(b);
        // Locked before T exists: see the module doc (loom#376).
        let g = a.edges();
        let t = thread::spawn(|| gcm::collect(0));
        assert_eq!(gcm::collect(0), 0);
        assert_live(&g[0]);
        drop(g);
        assert_eq!(t.join().unwrap(), 0);
        assert_eq!((log.drops(0), log.drops(1)), (0, 0));
        drop(a);
        finish(&log);
    });
}
