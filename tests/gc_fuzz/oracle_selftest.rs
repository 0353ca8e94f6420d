//! The oracle's own tests: programs with a deliberate bug (`Op::Sabotage`) must fail, with
//! the right report. A fuzzer whose oracle cannot fail finds nothing; these show that each
//! class of bug it claims to catch is caught (leak, wrong free, double drop, use after free,
//! crash, hang), and that containment turns each into a report instead of killing the test.

use crate::child::{contain_with, Outcome};
use crate::interp::run_program;
use crate::objects::{How, Spec};
use crate::program::{Op, Sab, E, F};

fn fails_with(ops: Vec<Op>, watchdog: u32, want: &str) {
    let _s = crate::child::serial();
    match contain_with(watchdog, || run_program(&ops)) {
        Outcome::Pass => panic!("the oracle missed a deliberate bug: {ops:?}"),
        Outcome::Fail(m) => assert!(
            m.contains(want),
            "expected a report with {want:?}, got:\n{m}"
        ),
    }
}

fn cycle() -> Vec<Op> {
    vec![Op::New(F::U, Spec::PLAIN), Op::Edge(E::UU, 0, 0)]
}

#[test]
fn a_leaked_object_is_reported() {
    let mut p = cycle();
    p.push(Op::Sabotage(Sab::Leak));
    fails_with(p, 60, "not freed by a full collection");
}

#[test]
fn a_reachable_object_dropped_is_reported() {
    fails_with(
        vec![Op::New(F::U, Spec::PLAIN), Op::Sabotage(Sab::DropReachable)],
        60,
        "dropped while reachable",
    );
}

#[test]
fn a_double_drop_is_reported() {
    fails_with(
        vec![Op::New(F::U, Spec::PLAIN), Op::Sabotage(Sab::DoubleDrop)],
        60,
        "dropped twice",
    );
}

#[test]
fn a_use_after_free_is_reported() {
    // The read finds the canary dead (or garbage, or faults): any of these fails the case.
    let spec = Spec {
        how: How::New,
        on_drop: 0,
        on_finalize: 0,
    };
    fails_with(
        vec![Op::New(F::U, spec), Op::Sabotage(Sab::UseAfterFree)],
        60,
        "",
    );
}

#[test]
fn a_map_returning_the_wrong_object_is_reported() {
    fails_with(
        vec![
            Op::New(F::U, Spec::PLAIN),
            Op::New(F::U, Spec::PLAIN),
            Op::Sabotage(Sab::MapMislabel),
            Op::MapGet(F::U, 0),
        ],
        60,
        "",
    );
}

#[test]
fn a_weakref_callback_run_while_the_object_lives_is_reported() {
    fails_with(
        vec![
            Op::New(F::U, Spec::PLAIN),
            Op::WeakRefCb(F::U, 0),
            Op::Sabotage(Sab::EarlyCallback),
        ],
        60,
        "callback ran while",
    );
}

#[test]
fn a_crash_is_contained() {
    fails_with(vec![Op::Sabotage(Sab::Crash)], 60, "aborted");
}

#[test]
fn a_hang_is_reported_by_the_watchdog() {
    fails_with(vec![Op::Sabotage(Sab::Hang)], 2, "watchdog");
}

#[test]
fn a_correct_program_passes() {
    let _s = crate::child::serial();
    let mut p = cycle();
    p.extend([Op::DropRoot(F::U, 0), Op::Collect]);
    assert!(matches!(
        contain_with(60, || run_program(&p)),
        Outcome::Pass
    ));
}
