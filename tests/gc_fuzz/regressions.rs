//! Named regression cases: the shrunk programs the fuzzer found (see
//! /work/notes/fuzz-findings.md for each), run explicitly besides the proptest
//! regressions file.

#![allow(unused_imports)]
use crate::objects::{act, How, Spec};
use crate::program::{Op, Op::*, WOp, E, F};
use crate::runner::check;

/// Run `ops` (contained) `times` times; any failure fails the test with the child's report.
pub fn must_pass(ops: Vec<Op>, times: usize) {
    let _s = crate::child::serial();
    for _ in 0..times {
        if let Err(m) = check(&ops) {
            panic!("regression program failed:\n{ops:?}\n{m}");
        }
    }
}

const PANIC_ON_DROP: Spec = Spec {
    how: How::New,
    on_drop: act::PANIC,
    on_finalize: 0,
};
const PANIC_ON_FINALIZE: Spec = Spec {
    how: How::Finalized,
    on_drop: 0,
    on_finalize: act::PANIC,
};

// Finding F1 (fuzz-findings.md): a refcount drop whose `Drop` panics leaks the allocation
// (std's `Rc` frees it). Ignored until the fix lands.
#[test]
#[ignore = "finding F1: refcount drop panic leaks the allocation"]
fn f1_refcount_drop_panic_frees_memory_unsync() {
    must_pass(vec![New(F::U, PANIC_ON_DROP)], 1);
}

#[test]
#[ignore = "finding F1: refcount drop panic leaks the allocation"]
fn f1_refcount_drop_panic_frees_memory_shared() {
    must_pass(vec![New(F::S, PANIC_ON_DROP)], 1);
}

// Finding F2: a refcount death whose finalizer panics never drops the value.
#[test]
#[ignore = "finding F2: refcount finalizer panic leaks the value"]
fn f2_refcount_finalizer_panic_still_drops_unsync() {
    must_pass(vec![New(F::U, PANIC_ON_FINALIZE)], 1);
}

#[test]
#[ignore = "finding F2: refcount finalizer panic leaks the value"]
fn f2_refcount_finalizer_panic_still_drops_shared() {
    must_pass(vec![New(F::S, PANIC_ON_FINALIZE)], 1);
}

/// A node whose `Drop` allocates a node (id 1: odd, dropped at once, so queued behind the
/// running drop) and then panics.
const ALLOC_THEN_PANIC: Spec = Spec {
    how: How::New,
    on_drop: act::ALLOC | act::PANIC,
    on_finalize: 0,
};

// Finding F3: a death queued behind a `Drop` that panics stays queued until the thread's next
// refcount death; `collect()` does not run it: leaked if none comes.
#[test]
#[ignore = "finding F3: deaths queued behind a panicking Drop are never run"]
fn f3_queued_death_behind_a_panicking_drop_unsync() {
    must_pass(vec![New(F::U, ALLOC_THEN_PANIC)], 1);
}

#[test]
#[ignore = "finding F3: deaths queued behind a panicking Drop are never run"]
fn f3_queued_death_behind_a_panicking_drop_shared() {
    must_pass(vec![New(F::S, ALLOC_THEN_PANIC)], 1);
}
