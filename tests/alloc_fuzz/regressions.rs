//! Named regression programs: each shrunk program the fuzzer found, run explicitly (besides
//! proptest's own `tests/alloc_fuzz.proptest-regressions`, replayed first by every run), and
//! hand-written programs that pin a combination the generator reaches only rarely.

use crate::program::{Op::*, KIB, LARGE_MAX, LARGE_MIN, MIB};
use crate::runner::check;

fn must_pass(ops: &[crate::program::Op]) {
    let _s = crate::child::serial();
    if let Err(m) = check(ops) {
        panic!("regression program failed:\n{ops:?}\n{m}");
    }
}

/// One block through every regime and back, on one thread, then on another.
#[test]
fn realloc_through_every_regime() {
    let mut p = vec![Alloc {
        thread: 0,
        slot: 0,
        size: 1,
        align: 8,
        zeroed: true,
        api: false,
        count: 1,
    }];
    let sizes = [
        512,
        513,
        64 * KIB,
        LARGE_MIN - 1,
        LARGE_MIN,
        3 * MIB,
        LARGE_MAX,
    ];
    let sizes = sizes
        .iter()
        .chain(&[LARGE_MAX + 1, LARGE_MAX, LARGE_MIN, 600, 7]);
    for &size in sizes {
        p.push(Realloc {
            slot: 0,
            size,
            api: None,
            zeroed: false,
        });
        p.push(Stats);
    }
    p.push(Send { slot: 0, to: 1 });
    p.push(Realloc {
        slot: 0,
        size: 2 * MIB,
        api: Some(16 * KIB),
        zeroed: true,
    });
    p.push(Stats);
    must_pass(&p);
}

/// A thread exits holding small, medium and large blocks; its replacement frees some, another
/// thread the rest, with purges between.
#[test]
fn abandoned_blocks_freed_by_two_threads() {
    let alloc = |slot, size, count| Alloc {
        thread: 0,
        slot,
        size,
        align: 16,
        zeroed: false,
        api: false,
        count,
    };
    must_pass(&[
        SetPurgeDelay { ms: 0 },
        alloc(0, 48, 2000),
        alloc(1, 3000, 100),
        alloc(2, LARGE_MIN, 1),
        alloc(3, 5 * MIB, 1),
        ThreadExit { thread: 0 },
        Stats,
        Send { slot: 0, to: 1 },
        Free {
            slot: 0,
            api: false,
        },
        Free { slot: 2, api: true },
        Purge { thread: 2 },
        Stats,
        Send { slot: 1, to: 2 },
        Free {
            slot: 1,
            api: false,
        },
        Free {
            slot: 3,
            api: false,
        },
        Stats,
    ]);
}

/// tracemalloc started and stopped around blocks of every regime: blocks allocated before a
/// start are resized and freed while tracing, traced blocks after a stop, on other threads.
#[test]
fn tracing_started_and_stopped_around_live_blocks() {
    let alloc = |thread, slot, size| Alloc {
        thread,
        slot,
        size,
        align: 16,
        zeroed: false,
        api: false,
        count: 1,
    };
    let realloc = |slot, size| Realloc {
        slot,
        size,
        api: None,
        zeroed: false,
    };
    must_pass(&[
        alloc(0, 0, 100),
        alloc(0, 1, 3000),
        alloc(1, 2, 3 * MIB),
        Trace { frames: 4 },
        realloc(0, 600),
        realloc(2, 300 * KIB),
        alloc(2, 3, 40),
        alloc(2, 4, LARGE_MIN),
        Send { slot: 3, to: 0 },
        Stats,
        Trace { frames: 0 },
        realloc(3, 5000),
        Free {
            slot: 4,
            api: false,
        },
        Trace { frames: 25 },
        Free { slot: 1, api: true },
        Stats,
    ]);
}

/// Forks while the workers allocate, resize, send and free blocks of every regime, and again
/// after a thread exited holding blocks and tracing started.
#[test]
fn forks_among_busy_workers() {
    let alloc = |thread, slot, size, count| Alloc {
        thread,
        slot,
        size,
        align: 16,
        zeroed: thread == 1,
        api: false,
        count,
    };
    must_pass(&[
        alloc(0, 0, 64, 2000),
        alloc(1, 1, 5000, 50),
        alloc(2, 2, 3 * MIB, 1),
        alloc(0, 3, LARGE_MIN, 2),
        Fork,
        Realloc {
            slot: 2,
            size: 9 * MIB,
            api: None,
            zeroed: false,
        },
        Send { slot: 0, to: 2 },
        Fork,
        ThreadExit { thread: 1 },
        Trace { frames: 3 },
        alloc(1, 4, 700 * KIB, 3),
        Fork,
        Free {
            slot: 3,
            api: false,
        },
        Stats,
    ]);
}

/// Locks the process's memory while the workers run, then every regime under the lock:
/// zeroed blocks from memory whose purge the OS refused (zeroed by hand), large blocks whose
/// places are committed (and populated) as they are taken, a fork, a thread exit.
#[test]
fn locked_memory_through_every_regime() {
    let alloc = |thread, slot, size, zeroed, count| Alloc {
        thread,
        slot,
        size,
        align: 16,
        zeroed,
        api: false,
        count,
    };
    must_pass(&[
        alloc(0, 0, 3 * MIB, false, 3),
        alloc(1, 1, 200, false, 2000),
        Lock,
        Free {
            slot: 0,
            api: false,
        },
        Free {
            slot: 1,
            api: false,
        },
        SetPurgeDelay { ms: 0 },
        Purge { thread: 2 },
        alloc(2, 2, 5 * MIB, true, 2),
        alloc(0, 3, 200, true, 2000),
        alloc(1, 4, 700 * KIB, true, 4),
        Realloc {
            slot: 4,
            size: 9 * MIB,
            api: None,
            zeroed: true,
        },
        Fork,
        ThreadExit { thread: 0 },
        Send { slot: 2, to: 1 },
        Purge { thread: 1 },
        Stats,
    ]);
}
