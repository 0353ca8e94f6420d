//! Model M6: **re-entrancy** (hazard 6; `docs/concurrency.md` §4.6).
//!
//! A garbage self-cycle A (`A.m` holds A), created with a finalizer. A's finalizer creates a
//! tracked node N and drops it (N dies by refcounting inside the teardown: queued on the
//! thread's pending-destruction queue, destroyed after). A's `Drop` calls `collect(0)`
//! (re-entrant: must return 0), creates a tracked node M, stashes a handle to it in a
//! global and drops another. Both the main thread and T run `collect(2)`; the first
//! collection that finds A runs the finalizer and keeps A (the shared flavor treats a set
//! whose finalizers ran as resurrected: freed by the next collection that finds it
//! unreachable), a later one drops it.
//!
//! Interleavings that matter: the two collections racing for the space lock (their scans
//! run one after the other; since issue 12 their teardowns may overlap, and neither waits
//! for the other's); the hooks' `Gc::new` and deaths taking their shard's lock (and, on a
//! thread without a shard yet, the space lock to get one) from inside the teardown, which
//! holds no pyheap lock; the re-entrant
//! `collect()` from `Drop` on the collecting thread (`COLLECTING`, a loom thread-local);
//! N's and M's deaths queued under `DROPPING` and drained by the outermost destroyer.
//!
//! Without releasing the scan's locks before the teardown (teardown run inside
//! `with_scan_state`: user code under the space lock and every shard lock), the hooks'
//! `Gc::new` waits for a shard lock its own thread holds: loom reports the deadlock. (The
//! old mutation, teardown under the space lock only, is caught too, but only because the
//! collecting T has no shard yet and the finalizer's `Gc::new` takes the space lock to get
//! one: with the shards, creations and deaths no longer take the space lock.)
//!
//! Asserts: the finalizer ran exactly once; every re-entrant `collect()` returned 0; in the
//! end A, N and M were each dropped exactly once and the space is empty.
#![cfg(loom)]

mod common;

use common::gc::{assert_live, finish, Log, Node};
use common::model;
use loom::thread;
use pyheap::gc::model as gcm;
use pyheap::Gc;

const A: usize = 0;
const N: usize = 1;
const M: usize = 2;

fn finalize_a(a: &Node) {
    drop(Gc::new(Node::new(&a.log, N).with_mutex(Vec::new())));
}

fn drop_a(a: &Node) {
    let r = gcm::collect(0);
    a.log.reentrant.lock().unwrap().push(r);
    let m = Gc::new(Node::new(&a.log, M).with_mutex(Vec::new()));
    a.log.stash.lock().unwrap().push(m.clone());
    drop(m);
}

#[test]
fn finalizer_and_drop_reenter_while_another_thread_collects() {
    model(|| {
        let log = Log::new(3);
        let a = Gc::new_finalized(
            Node::new(&log, A)
                .with_mutex(Vec::new())
                .on_finalize(finalize_a)
                .on_drop(drop_a),
        );
        a.edges().push(a.clone());
        drop(a);
        let t = thread::spawn(|| gcm::collect(2));
        gcm::collect(2);
        t.join().unwrap();
        // At most two collections find A (one finalizes it, one drops it).
        for _ in 0..2 {
            if log.drops(A) == 0 {
                gcm::collect(2);
            }
        }
        assert_eq!(log.drops(A), 1, "A dropped");
        assert_eq!(log.finals(A), 1, "finalizer ran once");
        assert_eq!(log.drops(N), 1, "N (created and dropped by the finalizer)");
        let r = log.reentrant.lock().unwrap().clone();
        assert_eq!(r, vec![0], "re-entrant collect() returned {r:?}");
        let stash = log.take_stash();
        assert_eq!(stash.len(), 1);
        assert_live(&stash[0]);
        drop(stash);
        finish(&log);
    });
}
