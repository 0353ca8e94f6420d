//! Model M11: **the version cannot wrap around during a scan** (I8, `docs/concurrency.md`
//! §2.3; issue 12, item 3). Under loom the count word's version is 2 bits (T and one below
//! it), so four count changes bring it back to where it was: the model runs the attack a
//! 29-bit version once needed a clock bound against.
//!
//! S = {A, B} as in M1: `A.imm` holds B, `B.cell` holds A. The setup brings both versions
//! to a value with T clear (A: 1, B: 0 mod 4). The mutator T starts with the only outside
//! handle, `hA`, and walks the cycle five times (clone the next node's handle, drop the one
//! it holds): each step changes both words once. It yields after steps 1 and 4, so that the
//! schedule below costs the collector three preemptions. The attack: `r_B` | 1 step | `r_A` | 3
//! steps | `k_B` | 1 step | `k_A` (`r`: the collector's count read, `k`: its condemning CAS).
//! At each read and CAS the strong count is 1 (the cycle's own edge), and B's word changed
//! 4 times between `r_B` and `k_B`, A's 4 times between `r_A` and `k_A`: with a plain 2-bit
//! version both words are back to what the collector read, both CASes succeed, and the
//! collection frees the cycle T holds a handle into.
//!
//! With the protocol, the third change of B (from a word with T set) makes T wait for the
//! space lock, which the collector holds from its first read to its last CAS: T cannot make
//! the fourth change inside the window, so `k_B` fails, B is a root and A is re-marked. A word
//! read with T set is a root outright. Sanity mutation `m11_no_wrap_guard` (no slow path, no
//! root rule) makes this model fail. The attack needs three preemptions of the collector, so
//! the model runs with a bound of at least 3.
//!
//! Asserts: T's handles are always live; the collection frees nothing; after T's last handle
//! goes, a full collection frees both nodes, each dropped exactly once.
#![cfg(loom)]

mod common;

use common::gc::{assert_live, finish, Log, Node};
use common::model_at_least;
use loom::thread;
use pyheap::gc::model;
use pyheap::Gc;

#[test]
fn the_version_does_not_wrap_inside_a_scan() {
    model_at_least(3, || {
        let log = Log::new(2);
        let b = Gc::new(Node::new(&log, 1)); // B: version 0
        let a = Gc::new(Node::new(&log, 0).with_imm(&b)); // B: 1
        assert!(b.cell.set(a.clone()).is_ok()); // A: 1
        drop(b); // B: 2
        drop(a.imm.clone()); // B: 4 = 0 mod 4, T clear; A stays at 1, T clear

        let t = thread::spawn(move || {
            // One step: clone the other node's handle out of the one held, drop the held one.
            let step = |held: Gc<Node>| -> Gc<Node> {
                let next = match held.imm.clone() {
                    Some(b) => b,                             // from A to B
                    None => held.cell.get().unwrap().clone(), // from B to A
                };
                drop(held);
                assert_live(&next);
                next
            };
            // The attack's schedule needs the collector to run between steps 1 and 2 and
            // between steps 4 and 5: T yields there (a switch that costs no preemption).
            let h = step(a);
            thread::yield_now();
            let h = step(step(step(h)));
            thread::yield_now();
            step(h) // five steps from A end on B
        });
        let freed = model::collect(0);
        let hb = t.join().unwrap();
        assert_live(&hb);
        assert_live(hb.cell.get().unwrap());
        assert_eq!(freed, 0, "a cycle T still holds was freed");
        drop(hb);
        finish(&log);
    });
}
