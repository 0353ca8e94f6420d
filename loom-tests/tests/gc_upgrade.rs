//! Model M4: **`Weak::upgrade` during a scan** (hazard 4; `docs/concurrency.md` §4.4).
//!
//! A garbage cycle {A, B} (through their mutexes); the mutator T holds only a `Weak` to A
//! and upgrades it once while the main thread runs `collect(0)`; T hands the result back.
//!
//! Interleavings that matter:
//! * the upgrade before A's count is read: counted, A is a root, nothing is freed;
//! * between the read and the condemning CAS: the CAS fails (the word changed), A becomes a
//!   root, B is re-marked, nothing is freed;
//! * after the CAS, before the commit: A is `CONDEMNED`, the upgrade waits (yields) until
//!   the commit sets `WEAKS_CLEARED` (it then fails) — the collector never waits for it;
//! * after the commit: `None`.
//!
//! Without the wait on `CONDEMNED` (the upgrade's CAS adds a handle to a condemned word),
//! the collector commits and frees the pair while T holds a handle: its `Deref` after the
//! collection panics.
//!
//! Asserts: `Some` ⇒ the collection freed nothing and the handle (and B behind it) is live
//! after it; `None` ⇒ the collection freed both and each was dropped exactly once. In the
//! end every node is dropped once and the space is empty.
#![cfg(loom)]

mod common;

use common::gc::{assert_live, finish, mutex_pair, Log};
use common::model;
use loom::thread;
use pyheap::gc::model as gcm;
use pyheap::Gc;

#[test]
fn upgrade_races_collect() {
    model(|| {
        let log = Log::new(2);
        let (a, b) = mutex_pair(&log, 0, 1);
        let w = Gc::downgrade(&a);
        drop((a, b));
        let t = thread::spawn(move || w.upgrade());
        let freed = gcm::collect(0);
        match t.join().unwrap() {
            Some(a) => {
                assert_eq!(freed, 0, "freed a cycle a thread upgraded into");
                assert_live(&a);
                assert_live(&a.edges()[0]);
            }
            None => {
                assert_eq!(freed, 2);
                assert_eq!((log.drops(0), log.drops(1)), (1, 1));
            }
        }
        finish(&log);
    });
}
