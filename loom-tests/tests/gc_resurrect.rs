//! Model M10: **resurrection by a finalizer, seen by another thread** (`docs/concurrency.md`
//! §2.6; the thread-safe flavor's `check_garbage`, `collect::validated_external_refs`).
//!
//! A garbage pair A ↔ B (edges behind loom `Mutex`es); A is finalized, and its finalizer
//! stashes a clone of B where another thread T can take it. T, if it finds the handle, takes
//! A's handle out of B's mutex (turning an internal edge into an outside one), uses both and
//! drops them. The main thread runs `collect(0)`, which finalizes the pair and then checks
//! it again with a validated scan of the set alone.
//!
//! Interleavings that matter:
//! * T takes and drops everything before the check: nothing is referenced from outside, the
//!   pair is freed by this collection;
//! * T holds B (or A) during the check: what it holds, and what that reaches, is kept;
//! * T moves A out of B's mutex while the check runs: the check holds B's lock from its
//!   trace to its decision, so T waits (or, if T holds the lock when the check traces B, B's
//!   edges are not seen and A counts as referenced from outside). If the guard were released
//!   after the trace (sanity mutation `m2_release_guards`), A's count would still match the
//!   edge the trace saw, A would be condemned and freed while T holds it.
//!
//! Asserts: whatever T holds is alive (canary, not dropped) while held; A's finalizer ran
//! once; in the end every node is dropped exactly once and the space is empty.
#![cfg(loom)]

mod common;

use common::gc::{assert_live, finish, Log, Node};
use common::model;
use loom::thread;
use pyheap::gc::model as gcm;
use pyheap::Gc;

const A: usize = 0;
const B: usize = 1;

loom::lazy_static! {
    /// Where A's finalizer puts its handle: a loom `Mutex` (not the log's std one), so that
    /// handing the handle to T synchronises in the model as it does in a real program.
    static ref HANDOFF: loom::sync::Mutex<Option<Gc<Node>>> = loom::sync::Mutex::new(None);
}

fn stash_b(a: &Node) {
    let b = a.edges()[0].clone();
    *HANDOFF.lock().unwrap() = Some(b);
}

fn take_and_use() {
    let Some(b) = HANDOFF.lock().unwrap().take() else {
        return;
    };
    assert_live(&b);
    let a = b.edges().pop();
    if let Some(a) = &a {
        assert_live(a);
    }
    drop(b);
    if let Some(a) = &a {
        assert_live(a);
    }
    drop(a);
}

#[test]
fn finalizer_hands_the_cycle_to_another_thread_during_collect() {
    model(|| {
        let log = Log::new(2);
        let a = Gc::new_finalized(
            Node::new(&log, A)
                .with_mutex(Vec::new())
                .on_finalize(stash_b),
        );
        let b = Gc::new(Node::new(&log, B).with_mutex(vec![a.clone()]));
        a.edges().push(b.clone());
        drop((a, b));
        let t = thread::spawn(take_and_use);
        gcm::collect(0);
        t.join().unwrap();
        assert_eq!(log.finals(A), 1, "A's finalizer ran once");
        drop(HANDOFF.lock().unwrap().take());
        finish(&log);
    });
}
