//! Model M17: **a death notice registered on one thread fires when the last handle goes on
//! another** (`gc/watch.rs`: the watched-objects count read with one relaxed load on every
//! death path, and the registry's lock).
//!
//! T holds a second handle to X: it registers a `weakref.ref`-style callback on X
//! (`WeakRef::with_callback`) and drops its handle, while the main thread drops the other
//! handle. Whichever drop is the last one runs the death path, whose relaxed load of the
//! watched count must see T's registration: the registration is sequenced before T's
//! `Release` drop, which the last drop's `Acquire` fence follows (the argument written on
//! `watched` in `watch.rs`).
//!
//! Asserts: the callback ran exactly once, the value was dropped once, after both threads
//! returned, and the `WeakRef` no longer upgrades.
#![cfg(loom)]

mod common;

use common::model;
use loom::thread;
use pyheap::weakref::WeakRef;
use pyheap::Gc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(pyheap::Trace)]
struct Value(Arc<AtomicUsize>);

impl Drop for Value {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn a_notice_registered_on_one_thread_fires_at_the_last_drop_on_another() {
    model(|| {
        let fired = Arc::new(AtomicUsize::new(0));
        let drops = Arc::new(AtomicUsize::new(0));
        let x = Gc::new(Value(drops.clone()));
        let x2 = x.clone();
        let f = fired.clone();
        let t = thread::spawn(move || {
            let w = WeakRef::with_callback(&x2, move || {
                f.fetch_add(1, Ordering::Relaxed);
            });
            drop(x2);
            w
        });
        drop(x);
        let w = t.join().unwrap();
        assert_eq!(
            fired.load(Ordering::Relaxed),
            1,
            "the notice did not fire once"
        );
        assert_eq!(
            drops.load(Ordering::Relaxed),
            1,
            "the value was not dropped once"
        );
        assert!(w.upgrade().is_none(), "a dead object upgraded");
    });
}
