//! Model M2: **a handle moved during a scan** (hazard 2; `docs/concurrency.md` §4.2).
//!
//! A and B each keep their edges behind a loom `Mutex`; X is referenced only from `A.m`.
//! The mutator T holds `hA` and `hB` and moves X's handle from `A.m` into `B.m` (lock A,
//! take, unlock; lock B, put, unlock): the strong count of X never changes. Then it drops
//! `hA` (A dies by refcounting) and hands `hB` back. The main thread runs `collect(0)`
//! meanwhile.
//!
//! Interleavings that matter:
//! * the collector traces A (X counted internal once) and T moves the handle before the
//!   collector traces B: B's trace would count X a second time (internal 2 > strong 1), or,
//!   in the other order, not at all. The collector keeps the guard of every interior lock it
//!   traced until the scan ends (`Tracer::trace_locked`), so T's `lock()` of a traced `A.m`
//!   waits for the end of the scan and the graph the collector saw stays the graph;
//! * T holds `A.m` or `B.m` while the collector traces: `try_lock` fails, the handles
//!   behind it are not reported (their targets are roots), nobody waits;
//! * T's drop of `hA` while the scan runs: A's strong count is 0, it is a root and is
//!   destroyed by T after the scan.
//!
//! Without holding the guards (released right after each trace), the double count makes the
//! collector see more internal references to X than X has handles and abort the process
//! (`collect::over_reported`).
//!
//! Asserts: after the collection, X (through `hB`) and B are live and the collection freed
//! nothing; A was dropped exactly once, by T; after a full collection every node is dropped
//! exactly once and the space is empty.
#![cfg(loom)]

mod common;

use common::gc::{assert_live, finish, Log, Node};
use common::model;
use loom::thread;
use pyheap::gc::model as gcm;
use pyheap::Gc;

#[test]
fn move_between_traced_mutexes_during_collect() {
    model(|| {
        let log = Log::new(3);
        let x = Gc::new(Node::new(&log, 2).with_mutex(Vec::new()));
        let a = Gc::new(Node::new(&log, 0).with_mutex(vec![x]));
        let b = Gc::new(Node::new(&log, 1).with_mutex(Vec::new()));

        let t = thread::spawn(move || {
            let moved = a.edges().pop().unwrap();
            b.edges().push(moved);
            drop(a);
            b
        });
        let freed = gcm::collect(0);
        let b = t.join().unwrap();
        assert_eq!(freed, 0);
        assert_live(&b);
        assert_live(&b.edges()[0]);
        assert_eq!(log.drops(0), 1, "A dropped by T");
        drop(b);
        finish(&log);
    });
}
