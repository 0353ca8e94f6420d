//! Model M8: **thread exit** (hazard 8; `docs/concurrency.md` §4.8, shared flavor).
//!
//! T1 creates a holder H whose mutex holds C (only H references C) and a garbage pair
//! {A, B}, puts H's handle into a slot and exits (its loom thread-locals, the shared space's
//! `COLLECTING`/`DROPPING`/`PENDING`, are destroyed). T2 takes H from the slot (spinning
//! with yields) and drops it: H's death destroys H, whose value drops C's last handle, so
//! C's death is queued on T2's pending-destruction queue and drained by T2. The main thread
//! runs `collect(0)` meanwhile, then a full collection after joining both.
//!
//! Interleavings that matter: T2's deaths (H, then C queued) against the scan (each death
//! waits for the object's shard lock, which the scan holds; a dying H is a root, so C is not condemned under it); T1's
//! exit before or after T2's drops and the collection (objects belong to the process-wide
//! space, never to a thread: nothing is freed or orphaned with T1); the pair found garbage
//! by the concurrent collection or by the final one.
//!
//! Without draining the pending-destruction queue (`destroying` returns without `drain`),
//! C is never destroyed: its drop count stays 0 (and it leaks out of every list).
//!
//! Asserts: the collection frees only the pair (0 or 2 objects); after the final full
//! collection every node is dropped exactly once and the space is empty.
//!
//! Second model, **adoption**: T1 creates X and a garbage pair {A, B} and exits, handing its
//! shard back with the three objects in it (`gc::model::release_my_shard`, the code a real
//! thread's exit runs; loom threads do not run it on exit, see `ShardSlot`); T2, started after, adopts that shard (asserted:
//! the same id), creates Y holding X there, and drops Y, whose death destroys X (both deaths
//! unlink from the adopted shard under its lock), while the main thread collects generation
//! 0, which splices the adopted shard's lists. Asserts: the collection frees exactly the pair;
//! every node dropped once and the space empty at the end. Without the adopted shard's
//! objects kept (`m8b_reset_adopted_shard`: adoption re-initialises the lists) the pair is
//! never freed.
#![cfg(loom)]

mod common;

use common::gc::{assert_live, finish, mutex_pair, Log, Node};
use common::model;
use loom::sync::{Arc, Mutex};
use loom::thread;
use pyheap::gc::model as gcm;
use pyheap::Gc;

#[test]
fn objects_of_an_exited_thread_dropped_and_collected_later() {
    model(|| {
        let log = Log::new(4);
        let slot: Arc<Mutex<Option<Gc<Node>>>> = Arc::new(Mutex::new(None));
        let (l1, s1) = (log.clone(), slot.clone());
        let t1 = thread::spawn(move || {
            let c = Gc::new(Node::new(&l1, 3));
            let h = Gc::new(Node::new(&l1, 2).with_mutex(vec![c]));
            let (a, b) = mutex_pair(&l1, 0, 1);
            drop((a, b));
            *s1.lock().unwrap() = Some(h);
        });
        let s2 = slot.clone();
        let t2 = thread::spawn(move || loop {
            if let Some(h) = s2.lock().unwrap().take() {
                drop(h);
                break;
            }
            thread::yield_now();
        });
        let freed = gcm::collect(0);
        assert!(freed == 0 || freed == 2, "freed {freed}");
        t1.join().unwrap();
        t2.join().unwrap();
        finish(&log);
    });
}

#[test]
fn an_exited_threads_shard_is_adopted_while_a_collection_runs() {
    model(|| {
        let log = Log::new(4);
        let l1 = log.clone();
        let t1 = thread::spawn(move || {
            let x = Gc::new(Node::new(&l1, 0).with_mutex(Vec::new()));
            let (a, b) = mutex_pair(&l1, 1, 2);
            drop((a, b));
            let id = gcm::my_shard();
            assert_eq!(gcm::shard_of(&x), id);
            // T1's exit hands its shard back (ShardSlot's drop; simulated under loom).
            gcm::release_my_shard();
            (x, id)
        });
        // T1 has ended: its shard is back on the free list, X and the pair still in it.
        let (x, id1) = t1.join().unwrap();
        let l2 = log.clone();
        let t2 = thread::spawn(move || {
            assert_eq!(
                gcm::my_shard(),
                id1,
                "a new thread adopts the exited thread's shard"
            );
            // X at least (the pair may be freed already): checked before anything unlinks
            // from the adopted lists, so that a broken adoption fails here, cleanly.
            assert!(
                gcm::tracked_count() >= 1,
                "the adopted shard lost the exited thread's objects"
            );
            assert_live(&x);
            let y = Gc::new(Node::new(&l2, 3).with_mutex(vec![x]));
            assert_eq!(gcm::shard_of(&y), id1);
            drop(y);
        });
        let freed = gcm::collect(0);
        assert_eq!(
            freed, 2,
            "the collection frees exactly the exited thread's garbage pair"
        );
        t2.join().unwrap();
        finish(&log);
    });
}
