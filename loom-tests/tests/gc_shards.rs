//! Model M9: **the shard protocol** (`docs/concurrency.md` §0, object space; `space.rs`).
//!
//! Every thread that creates tracked objects links them into its own shard, behind that
//! shard's lock; an object stays in its creating shard for life, and its last drop (on any
//! thread) unlinks it under *the object's* shard lock. A collection takes the space lock and
//! every shard lock, splices the shards' young generations into one central list, runs its
//! passes, and gives each survivor back to its own shard.
//!
//! T1 and T2 each create, in their own shard, a node with a mutex (A by T1, B by T2) and a
//! leaf (C1 by T1, C2 by T2), and hand a handle to their node and their only handle to their
//! leaf over through a slot. Each then takes the other's pair from the other slot (spinning
//! with yields), puts the other's node into its own node's mutex (so A and B end as a garbage
//! cycle spanning two shards), drops the other thread's leaf (the leaf's last handle: a
//! **cross-shard death**, which locks the other thread's shard while that thread may be
//! linking into it or dropping there too) and its own node. The main thread, which owns no
//! shard, runs `collect(0)` meanwhile.
//!
//! Interleavings that matter: shards created while the collection runs or before it (a new
//! shard needs the space lock, so the collection sees it whole or not at all); a cross-shard
//! death before, during (waits for the shard lock the scan holds; a strong-zero object is a
//! root) or after the scan; the cycle found garbage across both shards by the concurrent
//! collection or by the final one; survivors given back to their own shards while their
//! creators keep linking and unlinking there.
//!
//! Sanity mutation (`sanity/m9_scan_without_shard_locks.patch`): `with_all_locked` lets go of
//! the shard locks once it has spliced the shards' generations, runs the passes under the
//! space lock alone and takes the shard locks again to give the survivors back. A death
//! during the passes then unlinks its object from the central list while the collector has
//! `gc_refs` in the `prev` links: the process crashes (loom reports the panic or the signal).
//!
//! What loom cannot see: the links are plain `Cell`s (loom does not model them, and a list
//! operation contains no loom operation, so loom never switches threads inside one). A death
//! that unlinks under the *dropping* thread's own shard lock instead of the object's shard
//! lock races only with the owning thread's list operations, which loom runs atomically: that
//! bug passes this model (checked). The collector cannot be involved in it: it holds every
//! shard lock, and a shard cannot appear during a scan (creating one takes the space lock).
//!
//! Asserts: the collection frees 0 or 2 objects (only the cycle; the leaves die by
//! refcounting); after the final full collection every node is dropped exactly once and the
//! space is empty (`tracked_count() == 0`).
#![cfg(loom)]

mod common;

use common::gc::{finish, Log, Node};
use common::model;
use loom::sync::{Arc, Mutex};
use loom::thread;
use pyheap::gc::model as gcm;
use pyheap::Gc;
use std::sync::Arc as StdArc;

type Slot = Arc<Mutex<Option<(Gc<Node>, Gc<Node>)>>>;

/// One creating thread: node `node` and leaf `leaf` in its shard, handed over through `mine`;
/// the other thread's pair taken from `theirs`.
fn creator(log: &StdArc<Log>, node: usize, leaf: usize, mine: &Slot, theirs: &Slot) {
    let x = Gc::new(Node::new(log, node).with_mutex(Vec::new()));
    let c = Gc::new(Node::new(log, leaf));
    *mine.lock().unwrap() = Some((x.clone(), c));
    let (y, d) = loop {
        if let Some(p) = theirs.lock().unwrap().take() {
            break p;
        }
        thread::yield_now();
    };
    x.edges().push(y);
    drop(d); // the other thread's leaf, its last handle: a cross-shard death
    drop(x);
}

#[test]
fn cross_shard_deaths_and_cycle_while_collecting() {
    model(|| {
        let log = Log::new(4);
        let s1: Slot = Arc::new(Mutex::new(None));
        let s2: Slot = Arc::new(Mutex::new(None));
        let (l1, a1, b1) = (log.clone(), s1.clone(), s2.clone());
        let t1 = thread::spawn(move || creator(&l1, 0, 2, &a1, &b1));
        let (l2, a2, b2) = (log.clone(), s2.clone(), s1.clone());
        let t2 = thread::spawn(move || creator(&l2, 1, 3, &a2, &b2));
        let freed = gcm::collect(0);
        assert!(freed == 0 || freed == 2, "freed {freed}");
        t1.join().unwrap();
        t2.join().unwrap();
        assert_eq!(log.drops(2), 1, "C1 (dropped by T2)");
        assert_eq!(log.drops(3), 1, "C2 (dropped by T1)");
        finish(&log);
    });
}
