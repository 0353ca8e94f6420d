//! Model M2-mut: **`get_mut` during a scan** (hazard 2, case d; `docs/concurrency.md` §2.7).
//!
//! The mutator T owns the only handle to X (tracked, in generation 0) and calls
//! `Gc::get_mut`: it writes X's `payload` (a loom `UnsafeCell`) and pushes a new node into
//! X's edges through the `&mut`, then uses the handle shared (`Deref`, which re-tracks X)
//! and hands it back. The main thread runs `collect(0)` meanwhile; the collector's `Trace`
//! of X reads `payload`, so loom reports any read of the value that is not ordered with the
//! writes through the `&mut`.
//!
//! Interleavings that matter:
//! * the scan holds every shard lock (X's among them) when T calls `get_mut`:
//!   `untrack_unique` waits for X's shard lock, i.e. for the scan to end, then takes X out
//!   of the lists (`FLAG_UNIQUE`), so no later scan reads it;
//! * `get_mut` first: the scan does not see X at all while the `&mut` may live;
//! * T's shared use after the borrow (`Deref`) re-tracks X under its shard lock, before or after
//!   the scan (a scan never sees X half-linked);
//! * the `Gc::new` inside the borrow links a new object while the scan may be running (it
//!   waits for T's shard lock).
//!
//! Without `untrack_unique` (X stays in its generation while `&mut` lives), loom reports the
//! collector's read of `payload` racing T's write (a causality violation).
//!
//! Asserts: no data race (loom); X keeps the written payload and its new edge; the collection
//! frees nothing; every node is dropped exactly once in the end and the space is empty.
#![cfg(loom)]

mod common;

use common::gc::{assert_live, finish, Log, Node};
use common::model;
use loom::thread;
use pyheap::gc::model as gcm;
use pyheap::Gc;

#[test]
fn get_mut_during_collect() {
    model(|| {
        let log = Log::new(2);
        let x = Gc::new(Node::new(&log, 0).with_mutex(Vec::new()));
        let log2 = log.clone();

        let t = thread::spawn(move || {
            let mut x = x;
            let n = Gc::get_mut(&mut x).expect("the only handle");
            // SAFETY: a write through the `&mut` get_mut gave; loom checks it races nothing.
            n.payload.with_mut(|p| unsafe { *p = 7 });
            let child = Gc::new(Node::new(&log2, 1));
            n.m.as_mut().unwrap().get_mut().unwrap().push(child);
            assert_live(&x); // a shared use: re-tracks X
            x
        });
        let freed = gcm::collect(0);
        let x = t.join().unwrap();
        assert_eq!(freed, 0);
        assert_live(&x);
        assert_eq!(x.payload(), 7);
        assert_live(&x.edges()[0]);
        drop(x);
        finish(&log);
    });
}
