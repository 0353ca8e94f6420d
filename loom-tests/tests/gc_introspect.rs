//! Model M14: **introspection never hands out a dying object** (issue 15;
//! `gc/introspect.rs`, `SharedCounts::try_acquire_under_space_lock`).
//!
//! A tracked node A; T drops its last handle while the main thread walks the space
//! (`gc::get_objects::<Node>()`, which holds the space lock and every shard lock, and takes a
//! strong reference on each object it returns). A's last drop waits for its shard's lock to
//! unlink it, so the walk can meet A with strong count 0: it must skip it (a handle made then
//! would point into an object T is about to destroy). Either the walk's compare-and-swap
//! comes first (A is returned, T's drop is not the last any more: the handle the walk gave
//! is), or T's decrement does (A is not returned).
//!
//! Asserts: a returned handle is live (canary, not dropped), and A is dropped exactly once
//! at the end. Sanity mutation `m14_acquire_dying` (the acquisition does not check for a
//! zero count) makes it fail.
#![cfg(loom)]

mod common;

use common::gc::{assert_live, finish, Log, Node};
use common::model;
use loom::thread;
use pyheap::Gc;

#[test]
fn get_objects_racing_a_last_drop() {
    model(|| {
        let log = Log::new(1);
        let a = Gc::new(Node::new(&log, 0).with_mutex(Vec::new()));
        let t = thread::spawn(move || drop(a));
        let found = pyheap::gc::get_objects::<Node>();
        for h in &found {
            assert_live(h);
        }
        t.join().unwrap();
        assert!(found.len() <= 1);
        drop(found);
        finish(&log);
    });
}
