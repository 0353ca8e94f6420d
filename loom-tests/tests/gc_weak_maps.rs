//! Model M16: **a dead key's entry leaves its weak map without a further access** (issue 15;
//! `gc/weak_maps/core.rs`: the dead queue's flag, read without its lock, and the `SeqCst`
//! fences of `Core::access` and `Core::on_death`).
//!
//! A `WeakKeyMap` with two keys, A and B. T drops A's last handle: A's death notice pushes
//! A's entry onto the map's dead queue, then `try_lock`s the table to purge it (dropping A's
//! value). Meanwhile the main thread looks B up (`get`), holding the table. Either T's
//! `try_lock` finds the table free (T purges), or the main thread, after releasing the table,
//! sees the queue's flag set (it purges): the protocol is push, fence, `try_lock` against
//! release, fence, load of the flag — store buffering without the fences.
//!
//! Asserts, once both threads returned and before any further access of the map: A's value
//! has been dropped (exactly once), B's entry is intact, and `len()` is 1. Sanity mutation
//! `m16_no_fence` (both fences removed) makes it fail.
#![cfg(loom)]

mod common;

use common::model;
use loom::thread;
use pyheap::weakref::WeakKeyMap;
use pyheap::Gc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Counts its drops (read only after the threads are joined).
struct Value(Arc<AtomicUsize>, u32);

impl Clone for Value {
    fn clone(&self) -> Self {
        Value(Arc::new(AtomicUsize::new(0)), self.1)
    }
}

impl Drop for Value {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn a_notice_racing_an_access_purges_its_entry() {
    model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let map = Arc::new(WeakKeyMap::<u32, Value>::new());
        let a = Gc::new(1u32);
        let b = Gc::new(2u32);
        map.insert(&a, Value(drops.clone(), 1));
        map.insert(&b, Value(Arc::new(AtomicUsize::new(0)), 2));
        let t = thread::spawn(move || drop(a));
        let got = map.get(&b).map(|v| v.1);
        t.join().unwrap();
        assert_eq!(got, Some(2));
        assert_eq!(
            drops.load(Ordering::Relaxed),
            1,
            "A's value still in the map after both threads returned"
        );
        assert_eq!(map.len(), 1);
        drop(map);
        assert_eq!(drops.load(Ordering::Relaxed), 1);
    });
}
