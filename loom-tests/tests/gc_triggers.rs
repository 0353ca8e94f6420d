//! Model M7: **many triggers** (hazard 7; `docs/concurrency.md` §4.7, as implemented in
//! `SharedSpace::track_new` / `add_young` / `request_collection` / `service_pending`).
//!
//! Threshold 0 is 1; T1 and T2 each create two tracked nodes (and keep them), crossing the
//! threshold several times between them. A crossing runs the due scan on the crossing thread
//! (one at a time: `pending`) and queues its garbage; the main thread runs `service_pending()`
//! (one iteration of the collector thread's loop: the queued teardowns) meanwhile, and once
//! more after joining both.
//!
//! The race that matters now: T2 crosses while T1 scans, finds `pending` set and leaves; T1
//! clears `pending` and re-reads the young count. Without the SeqCst fences on both sides
//! (store-buffering), both can miss the other's write and the crossing is lost: this model
//! fails when either fence is removed.
//!
//! Interleavings that matter:
//! * two creations crossing together: `pending.swap(true)` lets one request through (one
//!   wake-up, one collection);
//! * a crossing while the collector is between clearing `pending` and reading the counts
//!   (under the space and shard locks): the collection sees the count, or the crossing raises
//!   `pending` again; never neither (no lost wake-up);
//! * a crossing during the collection (its creation waits for its shard lock): `pending` was
//!   cleared before the collection started, so the crossing after it raises it again.
//!
//! Without clearing `pending` before collecting (cleared after the collection instead), a
//! crossing during the collection finds `pending` still set and raises nothing, then the
//! collector clears it: generation 0 stays over its threshold with nobody asked to collect.
//!
//! Asserts: collections ≤ requests (false→true transitions of `pending`); if any request
//! was made, at least one collection ran; at the end nothing is pending and generation 0
//! is not over its threshold (every crossing was served); every node dropped once.
#![cfg(loom)]

mod common;

use common::gc::{finish, Log, Node};
use common::model;
use loom::thread;
use pyheap::gc::model as gcm;
use pyheap::Gc;
use std::sync::Arc;

fn create(log: &Arc<Log>, ids: [usize; 2]) -> Vec<Gc<Node>> {
    ids.iter()
        .map(|&id| Gc::new(Node::new(log, id).with_mutex(Vec::new())))
        .collect()
}

#[test]
fn threads_cross_the_threshold_while_collector_services() {
    model(crossing_threads);
}

/// The same at preemption bound 3 (about 2 s). On the first sharded version this failed with
/// "generation 0 over its threshold (2) and nothing pending": a thread whose count crossed
/// the threshold while another was scanning found `pending` set and left, and the scanner,
/// after clearing `pending`, read a `young` that did not include that count yet
/// (store-buffering). The SeqCst fences in `add_young` and `request_collection` fixed it;
/// removing either makes the bound-2 model above fail too.
#[test]
fn threads_cross_the_threshold_while_collector_services_bound_3() {
    common::model_at_least(3, crossing_threads);
}

fn crossing_threads() {
    {
        let log = Log::new(4);
        gcm::set_threshold(1, 10, 10);
        let l1 = log.clone();
        let t1 = thread::spawn(move || create(&l1, [0, 1]));
        let l2 = log.clone();
        let t2 = thread::spawn(move || create(&l2, [2, 3]));
        gcm::service_pending();
        let a = t1.join().unwrap();
        let b = t2.join().unwrap();
        gcm::service_pending();
        let requests = gcm::requests() as usize;
        let collections = gcm::collections();
        assert!(
            collections <= requests,
            "{collections} collections, {requests} requests"
        );
        assert!(requests >= 1, "4 creations with threshold 1 must request");
        assert!(collections >= 1);
        assert!(!gcm::pending());
        let (young, _, _) = gcm::counts();
        assert!(
            young <= 1,
            "generation 0 over its threshold ({young}) and nothing pending"
        );
        drop((a, b));
        finish(&log);
    }
}
