//! The oracle's own tests: programs run with a deliberate bug on the test's side
//! (`interp::SABOTAGE`) must fail with the right report, or the fuzzer could pass whatever
//! the allocator does.

use crate::child::contain;
use crate::interp::{
    run_program, SABOTAGE, SAB_FORK_CHILD, SAB_LARGE_COUNT, SAB_LEAK, SAB_MISCOUNT,
    SAB_NO_FILL_AFTER_GROW,
};
use crate::program::{Op, Op::*, MIB};
use std::sync::atomic::Ordering;

fn fails_with(sabotage: u8, ops: &[Op], want: &str) {
    let _s = crate::child::serial();
    let r = contain(|| {
        SABOTAGE.store(sabotage, Ordering::Relaxed); // in the child only
        run_program(ops)
    });
    match r {
        Ok(()) => panic!("the oracle missed a deliberate bug ({sabotage}): {ops:?}"),
        Err(m) => assert!(m.contains(want), "expected {want:?} in:\n{m}"),
    }
}

fn alloc(size: usize) -> Op {
    Alloc {
        thread: 0,
        slot: 0,
        size,
        align: 8,
        zeroed: false,
        api: false,
        count: 1,
    }
}

#[test]
fn unwritten_grown_bytes_are_reported() {
    let grow = |size| Realloc {
        slot: 0,
        size,
        api: None,
        zeroed: false,
    };
    fails_with(
        SAB_NO_FILL_AFTER_GROW,
        &[alloc(100), grow(5000)],
        "the pattern says",
    );
    fails_with(
        SAB_NO_FILL_AFTER_GROW,
        &[alloc(300 * 1024), grow(3 * MIB)],
        "the pattern says",
    );
}

#[test]
fn a_wrong_large_block_count_is_reported() {
    fails_with(SAB_LARGE_COUNT, &[alloc(MIB), Stats], "large_blocks");
}

#[test]
fn a_leak_is_reported() {
    fails_with(SAB_LEAK, &[alloc(3000)], "fallback_count");
    fails_with(SAB_LEAK, &[alloc(MIB)], "large_blocks");
}

#[test]
fn blocks_counted_in_use_but_not_held_are_reported() {
    fails_with(
        SAB_MISCOUNT,
        &[alloc(100), alloc(40)],
        "changed unlike the blocks held",
    );
}

#[test]
fn a_forked_childs_finding_is_reported() {
    fails_with(
        SAB_FORK_CHILD,
        &[alloc(100), Stats, Fork],
        "Fork: the child failed",
    );
}
