//! Model M3: **the last drop during a scan** (hazard 3; `docs/concurrency.md` §4.3).
//!
//! A holds its child C (in `A.m`); both are tracked, in generation 0; A's only handle is the
//! mutator T's. A's `Drop` clones C into a global (the log's stash). T drops A while the main
//! thread runs `collect(0)`.
//!
//! Interleavings that matter:
//! * T's drop takes A's count to 0 before the collector reads it: A (strong 0, internal 0)
//!   must be a root (`find_roots`: strong 0 is a root), so C, whose only reference is from
//!   the dying A, is marked and not condemned. T's destruction waits for A's shard lock
//!   (`object_died` → `untrack`; the scan holds every shard lock) and runs A's `Drop` after the scan; the clone of C it makes
//!   reaches a live C;
//! * the drop after the count read but before the CAS: A was a root anyway (strong 1 >
//!   internal 0), and the CAS would fail;
//! * the drop after the scan: ordinary refcount death.
//!
//! Without the "strong 0 is a root" rule, A (strong 0 = internal 0) and C are condemned and
//! committed: the collector drops A's value while T also destroys it (a double drop, caught
//! by the canary) and C is freed under the stash's clone.
//!
//! Asserts: A dropped exactly once (by T); C live in the stash after the collection; in the
//! end every node dropped once and the space empty.
#![cfg(loom)]

mod common;

use common::gc::{assert_live, finish, Log, Node};
use common::model;
use loom::thread;
use pyheap::gc::model as gcm;
use pyheap::Gc;

fn stash_child(n: &Node) {
    let c = n.m.as_ref().unwrap().lock().unwrap()[0].clone();
    n.log.stash.lock().unwrap().push(c);
}

#[test]
fn last_drop_during_collect() {
    model(|| {
        let log = Log::new(2);
        let c = Gc::new(Node::new(&log, 1));
        let a = Gc::new(Node::new(&log, 0).with_mutex(vec![c]).on_drop(stash_child));
        let t = thread::spawn(move || drop(a));
        let freed = gcm::collect(0);
        t.join().unwrap();
        assert_eq!(freed, 0);
        assert_eq!(log.drops(0), 1, "A dropped once");
        let stash = log.take_stash();
        assert_eq!(stash.len(), 1);
        assert_live(&stash[0]);
        drop(stash);
        finish(&log);
    });
}
