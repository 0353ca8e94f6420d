//! Model M12: **panics in a teardown** (issue 12, item 2; `gc/panics.rs`,
//! `docs/concurrency.md` §0).
//!
//! A garbage pair A ↔ B (through their mutexes). A has a finalizer that panics; B's `Drop`
//! panics. The main thread and T both run `collect(0)` (each under `catch_unwind`), and T
//! also keeps a live node L busy (clone, drop) meanwhile. One of the two collections finds
//! the pair and tears it down on its thread; the other finds nothing, or finds nothing left.
//!
//! Interleavings that matter: the teardown's user code (the panicking finalizer, then the
//! resurrection check under the space lock, then the drops) racing the other thread's scan,
//! which takes the space and shard locks the teardown does not hold; the pins released after
//! a panicking `Drop`; the other thread's `collect()` returning while the teardown runs.
//!
//! Asserts: exactly one `collect()` panics, with A's finalizer's message (the first panic;
//! B's is dropped); A was finalized once; A and B were each dropped exactly once, and the
//! space is empty at the end (before the fix, a panicking finalizer left the pair pinned and
//! unreachable for good: the final collections freed nothing). Sanity mutation
//! `m12_teardown_stops_at_a_panic` (finalizers run outside `catch_unwind`) makes it fail.
#![cfg(loom)]

mod common;

use common::gc::{assert_live, finish, Log, Node};
use common::model;
use loom::thread;
use pyheap::gc::model as gcm;
use pyheap::Gc;
use std::panic::{catch_unwind, AssertUnwindSafe};

const A: usize = 0;
const B: usize = 1;
const L: usize = 2;

fn finalize_panics(_: &Node) {
    panic!("model: A's finalizer");
}

fn drop_panics(_: &Node) {
    panic!("model: B's drop");
}

fn message(p: &(dyn std::any::Any + Send)) -> &str {
    p.downcast_ref::<&str>().copied().unwrap_or("?")
}

#[test]
fn a_teardown_that_meets_panics_frees_its_whole_set() {
    // The panics are the model's own: keep them out of the output.
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let own = info
            .payload()
            .downcast_ref::<&str>()
            .is_some_and(|m| m.starts_with("model:"));
        if !own {
            default(info);
        }
    }));
    model(|| {
        let log = Log::new(3);
        let a = Gc::new_finalized(
            Node::new(&log, A)
                .with_mutex(Vec::new())
                .on_finalize(finalize_panics),
        );
        let b = Gc::new(
            Node::new(&log, B)
                .with_mutex(vec![a.clone()])
                .on_drop(drop_panics),
        );
        a.edges().push(b.clone());
        drop((a, b));
        let l = Gc::new(Node::new(&log, L).with_mutex(Vec::new()));
        let t = thread::spawn(move || {
            let c = l.clone();
            let r = catch_unwind(|| gcm::collect(0));
            assert_live(&c);
            drop(c);
            (r.map_err(|p| message(&*p).to_string()), l)
        });
        let mine = catch_unwind(AssertUnwindSafe(|| gcm::collect(0)));
        let (theirs, l) = t.join().unwrap();
        let mine = mine.map_err(|p| message(&*p).to_string());
        let panicked: Vec<_> = [&mine, &theirs]
            .into_iter()
            .filter_map(|r| r.clone().err())
            .collect();
        assert_eq!(
            panicked,
            vec!["model: A's finalizer".to_string()],
            "{mine:?} {theirs:?}"
        );
        assert_eq!(log.finals(A), 1, "A finalized once");
        assert_eq!(log.drops(A), 1, "A dropped");
        assert_eq!(log.drops(B), 1, "B dropped");
        assert_live(&l);
        drop(l);
        finish(&log);
    });
}
