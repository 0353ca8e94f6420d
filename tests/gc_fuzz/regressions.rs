//! Named regression cases: the shrunk programs the fuzzer found (see
//! /work/notes/fuzz-findings.md for each), run explicitly besides the proptest
//! regressions file.

#![allow(unused_imports)]
use crate::objects::{act, How, Spec};
use crate::program::{Op, Op::*, WOp, E, F};
use crate::runner::check_strict;

/// Run `ops` (contained, strict oracle) `times` times; any failure fails the test with the
/// child's report.
pub fn must_pass(ops: Vec<Op>, times: usize) {
    let _s = crate::child::serial();
    for _ in 0..times {
        if let Err(m) = check_strict(&ops) {
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

// Finding F1 (fuzz-findings.md): a refcount drop whose `Drop` panics leaked the allocation
// (std's `Rc` frees it). Fixed on main by e5596fb/be6e033.
#[test]
fn f1_refcount_drop_panic_frees_memory_unsync() {
    must_pass(vec![New(F::U, PANIC_ON_DROP)], 1);
}

#[test]
fn f1_refcount_drop_panic_frees_memory_shared() {
    must_pass(vec![New(F::S, PANIC_ON_DROP)], 1);
}

// Finding F2: a refcount death whose finalizer panicked never dropped the value.
#[test]
fn f2_refcount_finalizer_panic_still_drops_unsync() {
    must_pass(vec![New(F::U, PANIC_ON_FINALIZE)], 1);
}

#[test]
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

// Finding F3: a death queued behind a `Drop` that panicked stayed queued until the thread's
// next refcount death; `collect()` did not run it: leaked if none came.
#[test]
fn f3_queued_death_behind_a_panicking_drop_unsync() {
    must_pass(vec![New(F::U, ALLOC_THEN_PANIC)], 1);
}

#[test]
fn f3_queued_death_behind_a_panicking_drop_shared() {
    must_pass(vec![New(F::S, ALLOC_THEN_PANIC)], 1);
}

// ---- issue 12, item 2: a panic in a collection's teardown leaks the garbage ----
// Found by `fuzz_single_thread`, seed 307752994, on the unfixed code (5e2e783), in seconds.
// #0 -> #1 (whose `Drop` panics), #0 a self-cycle: the collection at the end drops #1, which
// panics, and #0 was never dropped.

#[test]
fn item2_drop_panic_in_teardown_found() {
    const P: Spec = Spec {
        how: How::New,
        on_drop: act::PANIC,
        on_finalize: 0,
    };
    must_pass(
        vec![
            New(F::U, Spec::PLAIN),
            New(F::U, P),
            Edge(E::UU, 92, 13),
            DropRoot(F::U, 43),
            Edge(E::UU, 0, 0),
            CloneRoot(F::U, 0),
        ],
        1,
    );
}

/// The same, as the final generator finds it on 5e2e783 (seed 307752994, `PYHEAP_FUZZ_OPEN=F1,F2,F3`,
/// first batch): a two-node ring whose second node's `Drop` panics; the other is never
/// dropped.
#[test]
fn item2_ring_with_a_panicking_drop() {
    for f in [F::U, F::S] {
        must_pass(vec![Ring(f, vec![Spec::PLAIN, PANIC_ON_DROP])], 1);
    }
}

/// The other form: a finalizer that panics in a garbage cycle (both flavors, and a
/// collection asked for explicitly, whose panic must come out of `collect()` after the
/// teardown freed everything).
#[test]
fn item2_finalizer_panic_in_teardown() {
    const P: Spec = Spec {
        how: How::Finalized,
        on_drop: 0,
        on_finalize: act::PANIC,
    };
    for f in [F::U, F::S] {
        let e = if f == F::U { E::UU } else { E::SS };
        must_pass(
            vec![
                New(f, P),
                New(f, Spec::PLAIN),
                New(f, P),
                Edge(e, 0, 1),
                Edge(e, 1, 2),
                Edge(e, 2, 0),
                DropRoot(f, 0),
                DropRoot(f, 0),
                DropRoot(f, 0),
                Collect,
            ],
            1,
        );
    }
}

/// Two panicking `Drop`s in one garbage set (a second panic while the first unwinds must not
/// abort), both flavors.
#[test]
fn item2_two_drop_panics_in_one_teardown() {
    const P: Spec = Spec {
        how: How::New,
        on_drop: act::PANIC,
        on_finalize: 0,
    };
    for f in [F::U, F::S] {
        let e = if f == F::U { E::UU } else { E::SS };
        must_pass(
            vec![
                New(f, P),
                New(f, P),
                Edge(e, 0, 1),
                Edge(e, 1, 0),
                DropRoot(f, 0),
                DropRoot(f, 0),
                Collect,
            ],
            1,
        );
    }
}

// ---- issue 12, item 5: a thread's garbage cycles outlive it ----
// Found by `fuzz_threads`, seed 307752994, on the unfixed code with PYHEAP_FUZZ_ACTS=15 (no
// panics, to look past item 2): a worker touches its thread-locals before its first Gc, makes
// a finalized self-cycle whose finalizer resurrects it into a thread-local stash; the exit
// collection finalizes it, the stash's destructor runs after and releases the cycle.

#[test]
fn item5_thread_exit_resurrection_into_an_early_thread_local_found() {
    const R: Spec = Spec {
        how: How::Finalized,
        on_drop: 0,
        on_finalize: act::STASH,
    };
    must_pass(
        vec![
            Spawn { tls_first: true },
            W(0, WOp::New(F::U, R)),
            W(0, WOp::Edge(E::UU, 0, 0)),
        ],
        1,
    );
}

/// The same when the stash is first touched *during* the exit collection (by the finalizer):
/// found with workers never touching thread-locals first, same seed.
#[test]
fn item5_thread_exit_resurrection_into_a_thread_local_touched_at_exit() {
    const R: Spec = Spec {
        how: How::Finalized,
        on_drop: 0,
        on_finalize: act::STASH,
    };
    must_pass(
        vec![
            New(F::U, Spec::PLAIN),
            New(F::S, Spec::PLAIN),
            Spawn { tls_first: false },
            Send(0, 0),
            W(0, WOp::New(F::U, R)),
            W(0, WOp::Edge(E::UU, 0, 0)),
        ],
        1,
    );
}

/// The form: a cycle held by a `thread_local!` touched before the first Gc, and
/// after it (which always worked).
#[test]
fn item5_cycle_in_a_thread_local_touched_before_the_first_gc() {
    for tls_first in [false, true] {
        must_pass(
            vec![
                Spawn { tls_first },
                W(0, WOp::New(F::U, Spec::PLAIN)),
                W(0, WOp::Edge(E::UU, 0, 0)),
                W(0, WOp::ToTls(F::U, 0)),
                Exit(0),
            ],
            1,
        );
    }
}

// ---- the model's own mistakes, kept so they stay fixed ----

/// A value moved out by `try_unwrap` whose `Drop` panics while it holds the last handle to a
/// node whose `Drop` panics: Rust aborts (a panic in a destructor during unwinding, as with
/// `Rc`); not pyheap's business, so the interpreter drops such a value's handles after it.
/// (Release run, seed 1796487056441362091.)
#[test]
fn model_unwrapped_value_drops_its_handles_after_it() {
    must_pass(
        vec![
            New(F::U, PANIC_ON_DROP),
            New(F::U, PANIC_ON_DROP),
            Move(E::UU, 0, 0),
            TryUnwrap(F::U, 0),
        ],
        1,
    );
    must_pass(
        vec![
            New(F::S, PANIC_ON_DROP),
            New(F::S, PANIC_ON_DROP),
            Move(E::SS, 0, 0),
            TryUnwrap(F::S, 0),
        ],
        1,
    );
}

/// A frozen cycle holding a younger object: the younger one is not garbage (its holder is
/// never collected). The model once required it freed (release run, seed
/// 1796486081081262934).
#[test]
fn model_frozen_holder_keeps_what_it_holds() {
    must_pass(
        vec![
            New(F::S, Spec::PLAIN),
            Edge(E::SS, 0, 0),
            Freeze(F::S),
            New(F::S, Spec::PLAIN),
            Move(E::SS, 31, 0),
            DropRoot(F::S, 0),
            Collect,
        ],
        1,
    );
}

// ---- issue 12, item 1: a single-thread collector treating shared objects as its own ----
// Found by `fuzz_threads` (release, PYHEAP_FUZZ_SECS, seed 1796486789425851644) on the unfixed
// code (5e2e783): a 66-operation program with the collecting thread running (`BgStart`),
// single-thread nodes holding shared handles (`Edge(US, ..)`) and storms of single-thread
// collections aborted with "a Trace impl reported more edges than the value owns": the
// single-thread scan read and wrote the `prev` word of shared objects the shared scan owned.
// The failure is a race, so shrinking kept most of the program; this is the same shape made
// bigger (longer scans on both sides): on the unfixed code it aborts in 7 runs of 10.

#[test]
fn item1_single_thread_scans_race_the_shared_scan() {
    let mut p = vec![];
    for _ in 0..30 {
        p.push(New(F::S, Spec::PLAIN));
    }
    for k in 0..30u8 {
        p.push(Edge(E::SS, k, k + 1));
    }
    for _ in 0..20 {
        p.push(New(F::U, Spec::PLAIN));
    }
    for a in 0..20u8 {
        for k in 0..6u8 {
            p.push(Edge(E::US, a, a.wrapping_mul(7).wrapping_add(k * 5)));
        }
        p.push(Edge(E::UU, a, a + 1));
    }
    p.push(BgStart);
    for _ in 0..40 {
        p.push(Storm(31));
    }
    must_pass(p, 3);
}

// Finding F4 (fuzz-findings.md): a single-thread node whose `Drop` panics, holding the last
// handle to a shared node whose `Drop` panics too: the shared death runs during the unwinding
// (only same-flavor deaths are queued behind a running destroyer) and its panic aborts the
// process ("panic in a destructor during cleanup"). Within one flavor the same cascade
// finishes without aborting. Found by both fuzz tests at once (seed 307752994) on main
// be6e033; fixed by fa0b871.
#[test]
fn f4_mixed_flavor_cascade_with_two_panics_does_not_abort() {
    must_pass(
        vec![
            New(F::U, PANIC_ON_DROP),
            New(F::S, PANIC_ON_DROP),
            Move(E::US, 0, 0),
        ],
        1,
    );
    must_pass(
        vec![
            New(F::U, PANIC_ON_DROP),
            New(F::S, PANIC_ON_FINALIZE),
            Move(E::US, 0, 0),
        ],
        1,
    );
    // Third form: no single-thread panic at all; a single-thread node holds two shared nodes
    // whose finalizers panic: the first panic unwinds through the node's drop glue, which
    // drops the second (found by `fuzz_threads`, seed 307752994, shrunk by hand).
    must_pass(
        vec![
            New(F::U, Spec::PLAIN),
            New(F::S, PANIC_ON_FINALIZE),
            New(F::S, PANIC_ON_FINALIZE),
            Edge(E::US, 0, 0),
            Edge(E::US, 0, 1),
            DropRoot(F::S, 0),
            DropRoot(F::S, 0),
        ],
        1,
    );
}

/// The same within each flavor alone (queued behind the first panic), and a panicking
/// single-thread finalizer before a panicking shared `Drop`: no abort.
#[test]
fn f4_same_flavor_cascade_with_two_panics_does_not_abort() {
    must_pass(
        vec![
            New(F::U, PANIC_ON_DROP),
            New(F::U, PANIC_ON_DROP),
            Move(E::UU, 1, 0),
        ],
        1,
    );
    must_pass(
        vec![
            New(F::S, PANIC_ON_DROP),
            New(F::S, PANIC_ON_DROP),
            Move(E::SS, 1, 0),
        ],
        1,
    );
}

// The first run of the weak-map operations: a finalizer resurrected a cycle while the end
// dropped every handle, and the map's entry for the resurrected object went (its weak handles
// were cleared, as documented). The model judged the entry before it had marked the object
// as once garbage, and reported a live object's entry lost: a model defect, kept so that the
// order (mark, then judge the maps) stays right.
#[test]
fn model_map_entry_of_a_resurrected_object_may_go() {
    let plain = Spec {
        how: How::New,
        on_drop: 0,
        on_finalize: 0,
    };
    let stash_on_finalize = Spec {
        how: How::Finalized,
        on_drop: 0,
        on_finalize: act::STASH,
    };
    must_pass(
        vec![
            Ring(F::S, vec![plain, plain]),
            Ring(F::S, vec![plain, plain, plain]),
            Spawn { tls_first: false },
            W(
                0,
                WOp::New(
                    F::S,
                    Spec {
                        how: How::New,
                        on_drop: act::COLLECT,
                        on_finalize: 0,
                    },
                ),
            ),
            W(0, WOp::GiveBack(0)),
            Ring(F::U, vec![stash_on_finalize, plain]),
            Move(E::US, 1, 0),
            New(F::U, plain),
            Auto(F::S, false),
            MapPut(F::U, 0, 81),
            DropRoot(F::U, 0),
            New(F::U, plain),
        ],
        3,
    );
}
