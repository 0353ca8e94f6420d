//! Model: **tracemalloc started and stopped while threads allocate and free**
//! (`src/tracemalloc/table.rs`: `record` tests `tracing` again under the shard's lock; `stop`
//! clears `tracing`, then empties every shard under its lock; a free forgets its block's
//! trace before the block is freed).
//!
//! The hooks test `tracing` without a lock before recording (the shipping code tests the
//! hooks' mode word, set and cleared in the same order around `start` and `stop`), so a
//! thread may decide to record just before `stop` and get the shard's lock just after `stop`
//! emptied it.
//!
//! Asserts:
//! * (M-T1) a recording racing `stop` leaves no trace: after both, the table is empty and
//!   the traced memory is 0 (the test under the lock is what keeps a late recording out);
//! * (M-T2) a block traced by one thread and freed by another (handed over with
//!   release/acquire) while the main thread stops and restarts tracing: whatever the order,
//!   no trace of the freed block survives;
//! * (M-T3) `clear_traces` racing a recording and a free of the same block: the traced
//!   memory ends at 0, never below (a forget after the clear finds nothing to subtract).
//!
//! Sanity mutation `t1_record_without_recheck` (`record` does not test `tracing` under the
//! lock): M-T1 fails (a trace survives `stop`).
#![cfg(loom)]

mod common;

use common::model;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread;
use pyheap::tracemalloc::model::ModelTraces;
use std::sync::Arc;

const A: usize = 0x1000;

#[test]
fn recording_racing_stop_leaves_no_trace() {
    model(|| {
        let t = ModelTraces::new();
        t.start();
        let t1 = t.clone();
        let h = thread::spawn(move || {
            if t1.is_tracing() {
                t1.record(A, 8, 0xabc);
            }
        });
        t.stop();
        h.join().unwrap();
        assert!(t.is_empty(), "a trace survived stop()");
        assert_eq!(t.traced_memory(), (0, 0));
    });
}

#[test]
fn cross_thread_free_while_stopping_and_restarting() {
    model(|| {
        let t = ModelTraces::new();
        t.start();
        let handed = Arc::new(AtomicBool::new(false));
        let (t1, t2) = (t.clone(), t.clone());
        let (h1, h2) = (handed.clone(), handed.clone());
        let allocator = thread::spawn(move || {
            if t1.is_tracing() {
                t1.record(A, 8, 0xabc);
            }
            h1.store(true, Ordering::Release);
        });
        let freer = thread::spawn(move || {
            while !h2.load(Ordering::Acquire) {
                thread::yield_now();
            }
            if t2.is_tracing() {
                t2.forget(A);
            }
        });
        t.stop();
        t.start();
        allocator.join().unwrap();
        freer.join().unwrap();
        assert!(t.is_empty(), "the trace of a freed block survived");
        assert_eq!(t.traced_memory().0, 0);
        t.stop();
    });
}

#[test]
fn clear_racing_record_and_free() {
    model(|| {
        let t = ModelTraces::new();
        t.start();
        let t1 = t.clone();
        let h = thread::spawn(move || {
            t1.record(A, 8, 0xabc);
            t1.forget(A);
        });
        t.clear();
        h.join().unwrap();
        assert!(t.is_empty());
        assert_eq!(t.traced_memory().0, 0);
        t.stop();
    });
}
