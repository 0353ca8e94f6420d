//! A generator-driven fuzz test of `PoolAlloc` as the global allocator: generated programs
//! combine its features the way users do, checked by an oracle after every operation.
//!
//! # What it generates (`alloc_fuzz/program.rs`)
//!
//! Flat lists of operations over 3 worker threads and 12 slots: allocations (`std::alloc` or
//! `allocator_api2`'s `Allocator` for `PoolAlloc`, zeroed or not, alignments 1 to 2 MiB, groups
//! of up to 2,500 blocks of one size), `realloc`/`grow`/`grow_zeroed`/`shrink` (alignment
//! changes too), frees, sending a slot's blocks to another thread (which checks them and then
//! reallocs and frees them: remote frees, racing with the owner's work), thread exits with
//! live blocks (abandoned heaps, adopted by the replacement thread), `purge()` on any thread,
//! purge delays (0, 1, 20, 1000 ms, never), `stats()` checks and short sleeps. Sizes hit every
//! regime (small ≤ 512 B, medium, large 256 KiB–32 MiB, above 32 MiB, 0 through the
//! `Allocator` API) and every boundary (512/513, 256 KiB ± 1, 32 MiB ± 1, pool and arena
//! multiples); at most 200 MiB live.
//!
//! # The oracle (`alloc_fuzz/oracle.rs`, `alloc_fuzz/interp.rs`)
//!
//! Every block holds a pattern of its allocation's unique tag (every byte up to 64 KiB; above,
//! the first 4 KiB, 16 bytes of every 4 KiB page and the last 16 bytes), checked before every
//! realloc and free, on the thread receiving it, and at the end; `realloc` keeps the prefix;
//! zeroed blocks (and `grow_zeroed`'s tail) are zero (every byte up to 64 KiB, every 512th
//! above); alignment is honoured; no two live blocks overlap (a map of live ranges). At quiet
//! points (`Stats`, the end) `stats()`: `arenas_mapped_total - arenas_returned ==
//! arenas_mapped`, `arenas_in_flight == 0`, `arenas_mapped <= arenas_high_water`,
//! `large_blocks`/`large_bytes` equal the model's live large blocks (Linux), kept large blocks
//! at most 8 MiB and cached medium blocks at most 4 MiB per thread. At the end, with every
//! block freed, every worker joined and `purge()` called: the large and kept-large counts are
//! back to the start's, the blocks `stats()` counts as held (`blocks_in_use` over the classes
//! plus `fallback_count`) changed by exactly as many as the blocks the program holds through
//! the global allocator (`alloc_fuzz/counting.rs`: std keeps a few per thread, so that change
//! need not be zero, but `PoolAlloc` must count exactly what is held), no free pool is resident
//! and no empty medium span is mapped. `alloc_fuzz/oracle_selftest.rs` shows each kind of check fails
//! on a deliberate bug on the test's side.
//!
//! `Lock` operations lock the child's memory (`mlockall`, where it may: root or an unlimited
//! `RLIMIT_MEMLOCK`) for the rest of its program: the OS then refuses every purge and
//! populates whatever pyheap makes accessible.
//!
//! `Trace` operations start and stop tracemalloc while the workers go on, and
//! `fuzz_programs_under_the_debug_allocator` runs the programs again under `PYHEAP_MALLOC=debug`
//! (where the large-block counts are not checked against the model: every block is the data
//! of a larger one).
//!
//! # Crashes and hangs (`alloc_fuzz/child.rs`)
//!
//! Each program runs in a forked child under an `alarm` watchdog; a violation, panic, crash or
//! hang fails the case, and proptest shrinks it and prints the seed and the minimal program.
//!
//! # Running longer
//!
//! `cargo test --test alloc_fuzz` runs a fixed budget (same programs every time, about a
//! minute on two cores, debug). Knobs: `PYHEAP_ALLOC_FUZZ_SECS=N` (batches of 50 programs
//! until N seconds passed), `PYHEAP_ALLOC_FUZZ_SEED=N|random`, `PYHEAP_ALLOC_FUZZ_CASES`,
//! `PYHEAP_ALLOC_FUZZ_MAX_OPS` (default 60), `PYHEAP_ALLOC_FUZZ_WATCHDOG_SECS` (60),
//! `PYHEAP_ALLOC_FUZZ_SHRINK_ITERS` (2000). For example
//! `PYHEAP_ALLOC_FUZZ_SECS=3600 PYHEAP_ALLOC_FUZZ_SEED=random cargo test --release --test
//! alloc_fuzz fuzz_programs`.
//!
//! # Regression seeds
//!
//! Proptest records failing seeds in `tests/alloc_fuzz.proptest-regressions` (replayed first
//! on every run; commit it). A shrunk program printed by a failure is pasted into
//! `alloc_fuzz/regressions.rs` as a named test (`#[ignore = "bug: ..."]` while the bug is open).

#[path = "alloc_fuzz/child.rs"]
mod child;
#[path = "alloc_fuzz/counting.rs"]
mod counting;
#[path = "alloc_fuzz/interp.rs"]
mod interp;
#[path = "alloc_fuzz/oracle.rs"]
mod oracle;
#[path = "alloc_fuzz/oracle_selftest.rs"]
mod oracle_selftest;
#[path = "alloc_fuzz/program.rs"]
mod program;
#[path = "alloc_fuzz/regressions.rs"]
mod regressions;
#[path = "alloc_fuzz/runner.rs"]
mod runner;

#[global_allocator]
static A: counting::Counting = counting::Counting;

#[test]
fn fuzz_programs() {
    runner::fuzz("fuzz_programs", file!(), 1000, 60);
}

/// The same under the debug allocator (`PYHEAP_MALLOC=debug`, read by the first allocation,
/// so a process of its own): this test runs the binary again with it, on `fuzz_programs`
/// alone with 300 programs (unless `PYHEAP_ALLOC_FUZZ_CASES` or `_SECS` say otherwise).
/// Every block is then the data of a larger one, checked at every free and resize: a
/// program's corruption, or a size the allocator mixed up, stops the child with a report.
#[test]
fn fuzz_programs_under_the_debug_allocator() {
    if interp::debug_allocator() {
        return; // the child runs `fuzz_programs` only
    }
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "fuzz_programs",
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("PYHEAP_MALLOC", "debug");
    if std::env::var_os("PYHEAP_ALLOC_FUZZ_CASES").is_none() {
        cmd.env("PYHEAP_ALLOC_FUZZ_CASES", "300");
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "the fuzzer under the debug allocator failed ({:?}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
