//! Model M1: **a clone during a scan, with ABA** (hazard 1; `docs/concurrency.md` §4.1).
//!
//! S = {A, B}: `A.imm` (a plain field) holds B, `B.cell` (a set-once `OnceLock`) holds A, so
//! their edges can be cloned through `&` while the collector scans them (nothing is locked).
//! B is created first, so the generation list (and every pass) runs B, then A. The mutator T
//! starts with the only outside handle, `hA`, and walks the cycle, always holding one
//! handle: clone `A.imm` → `hB`, drop `hA`; clone `B.cell` → `hA'`, drop `hB`; clone
//! `A.imm` → `hB'`, drop `hA'`; it then hands `hB'` back to the main thread, which runs
//! `collect(0)` meanwhile and checks the handle after joining T.
//!
//! Interleavings that matter (`r_X`: the collector's count read of X in `find_roots`,
//! `k_X`: its condemning CAS):
//! * I1-a: a clone before `r_X`: counted, X is a root, nothing is condemned;
//! * I1-b (the ABA attack): `r_B` | T: `hB`, drop `hA` | `r_A` | T: `hA'`, drop `hB` |
//!   `k_B` | T: `hB'`, drop `hA'` | `k_A`. At each read and each CAS the object's strong
//!   count is 1 (the cycle's own edge), but T always held a handle into the cycle. Only the
//!   version in the count word (every clone and drop adds `VERSION_ONE`) makes `k_B` or
//!   `k_A` fail, which makes the object a root and re-marks the other;
//! * I1-c: `k_B` succeeds, `k_A` fails: B must be un-condemned (all-or-nothing), or A (kept)
//!   would point to a destroyed B.
//!
//! Without the version, I1-b condemns and frees both while T holds `hB'`: its `Deref` after
//! the collection panics (the object is dead) and the log shows the drops. I1-b needs three
//! preemptions of the collector (T yields at its switch points, which loom does not count as
//! preemptions): at the default bound of 2 the mutated model passes, so this model runs
//! with a bound of at least 3.
//!
//! Asserts: T's handles are always live (never dropped, canary intact); the collection frees
//! nothing; after T is joined and its last handle dropped, a full collection frees both
//! nodes, each dropped exactly once, and leaves the space empty.
#![cfg(loom)]

mod common;

use common::gc::{assert_live, finish, Log, Node};
use common::model_at_least;
use loom::thread;
use pyheap::gc::model;
use pyheap::Gc;

#[test]
fn clone_through_edges_with_aba_during_collect() {
    model_at_least(3, || {
        let log = Log::new(2);
        let b = Gc::new(Node::new(&log, 1));
        let a = Gc::new(Node::new(&log, 0).with_imm(&b));
        assert!(b.cell.set(a.clone()).is_ok());
        drop(b);

        let t = thread::spawn(move || {
            let ha = a;
            let hb = ha.imm.clone().unwrap();
            drop(ha);
            assert_live(&hb);
            thread::yield_now();
            let ha = hb.cell.get().unwrap().clone();
            drop(hb);
            assert_live(&ha);
            thread::yield_now();
            let hb = ha.imm.clone().unwrap();
            drop(ha);
            assert_live(&hb);
            hb
        });
        let freed = model::collect(0);
        // T's last handle outlives the collection: it must still work.
        let hb = t.join().unwrap();
        assert_live(&hb);
        assert_live(hb.cell.get().unwrap());
        assert_eq!(freed, 0, "a cycle T still holds was freed");
        drop(hb);
        finish(&log);
    });
}
