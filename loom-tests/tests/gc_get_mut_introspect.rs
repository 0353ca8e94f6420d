//! Model M15: **`get_mut` racing introspection** (`SharedSpace::untrack_unique`'s re-check).
//!
//! T owns the only handle to X (tracked) and calls `Gc::get_mut`, then writes X's `payload`
//! (a loom `UnsafeCell`) through the `&mut`. The main thread walks the space meanwhile
//! (`gc::get_objects::<Node>()`, which holds the space lock and every shard lock and takes a
//! strong reference on each object it returns) and reads `payload` through what it found.
//! `get_mut`'s uniqueness test (strong 1, weak 1) reads the counts before it takes X's shard
//! lock, so the walk can take its handle in between; `untrack_unique` tests again under the
//! lock, where no walk runs: either the walk took a handle (then `get_mut` gives `None`), or X
//! leaves the lists first (then the walk does not meet it).
//!
//! Without the re-check (sanity mutation `m15_get_mut_no_recheck`), loom reports the walker's
//! read of `payload` racing T's write (a `&mut` and a `&` to the same value at once).
//!
//! Asserts: no data race (loom); the write happened iff `get_mut` succeeded; X is dropped
//! exactly once in the end.
#![cfg(loom)]

mod common;

use common::gc::{assert_live, finish, Log, Node};
use common::model;
use loom::thread;
use pyheap::Gc;

#[test]
fn get_mut_racing_get_objects() {
    model(|| {
        let log = Log::new(1);
        let x = Gc::new(Node::new(&log, 0).with_mutex(Vec::new()));
        let t = thread::spawn(move || {
            let mut x = x;
            let wrote = match Gc::get_mut(&mut x) {
                Some(n) => {
                    // SAFETY: a write through the `&mut` get_mut gave; loom checks it races
                    // nothing.
                    n.payload.with_mut(|p| unsafe { *p = 7 });
                    true
                }
                None => false,
            };
            (x, wrote)
        });
        let found = pyheap::gc::get_objects::<Node>();
        for h in &found {
            assert_live(h);
            let _ = h.payload();
        }
        let (x, wrote) = t.join().unwrap();
        assert!(found.len() <= 1);
        assert_eq!(x.payload() == 7, wrote);
        drop(found);
        drop(x);
        finish(&log);
    });
}
