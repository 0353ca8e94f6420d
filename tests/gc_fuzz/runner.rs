//! Running the fuzzer: proptest generates programs and shrinks failing ones; each program
//! runs contained in a child process (`child.rs`).
//!
//! Budget, from the environment (read once per test):
//! * `PYHEAP_FUZZ_CASES`: programs per test (default: a CI-sized number, see `gc_fuzz.rs`);
//! * `PYHEAP_FUZZ_SECS`: instead, run batches of programs until this many seconds have
//!   passed (long runs; each batch has its own seed, printed);
//! * `PYHEAP_FUZZ_SEED`: the first seed (default: fixed, so CI runs the same programs every
//!   time; `random` for a fresh one);
//! * `PYHEAP_FUZZ_MAX_OPS`: longest program (default 80);
//! * `PYHEAP_FUZZ_WATCHDOG_SECS`: a child running longer is killed and reported (120);
//! * `PYHEAP_FUZZ_OPEN`: the open findings to look past (default `OPEN_ON_MAIN`; empty for a
//!   strict run), see `model::tolerated`;
//! * `PYHEAP_FUZZ_ACTS`: a mask of the `act::*` behaviours generated (default all);
//! * `PYHEAP_FUZZ_RETRIES`: extra runs of a passing shrink candidate (3), for flaky failures.
//!
//! A failure panics with the seed and proptest's shrunk program, printed as Rust (paste it
//! into `regressions.rs`). Proptest also records the failing seed in
//! `tests/gc_fuzz.proptest-regressions`, replayed first on every later run.

use crate::child::{contain, Outcome};
use crate::program::{program, Profile};
use proptest::test_runner::{
    Config, FileFailurePersistence, RngSeed, TestCaseError, TestError, TestRunner,
};
use std::time::{Duration, Instant};

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Run `ops` contained; `Err` with the child's report if it failed.
pub fn check(ops: &[crate::program::Op]) -> Result<(), String> {
    match contain(|| crate::interp::run_program(ops)) {
        Outcome::Pass => Ok(()),
        Outcome::Fail(m) => Err(m),
    }
}

/// [`check`] with no open finding looked past (the regression tests' strict oracle).
#[cfg_attr(miri, allow(dead_code))]
pub fn check_strict(ops: &[crate::program::Op]) -> Result<(), String> {
    match contain(|| {
        // In the child (one thread so far), or in process under Miri.
        std::env::set_var("PYHEAP_FUZZ_OPEN", "");
        crate::interp::run_program(ops)
    }) {
        Outcome::Pass => Ok(()),
        Outcome::Fail(m) => Err(m),
    }
}

/// Fuzz with `profile`: `default_cases` programs, unless the environment says otherwise.
pub fn fuzz(name: &str, source_file: &'static str, mut profile: Profile, default_cases: u32) {
    let cases: u32 = env("PYHEAP_FUZZ_CASES").unwrap_or(default_cases);
    let secs: Option<u64> = env("PYHEAP_FUZZ_SECS");
    profile.max_ops = env("PYHEAP_FUZZ_MAX_OPS").unwrap_or(profile.max_ops);
    let mut seed: u64 = match std::env::var("PYHEAP_FUZZ_SEED").as_deref() {
        Ok("random") => {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            t.as_nanos() as u64 ^ std::process::id() as u64
        }
        Ok(s) => s.parse().expect("PYHEAP_FUZZ_SEED: a number or `random`"),
        Err(_) => 0x1257_f022,
    };
    if crate::child::in_process() {
        crate::interp::install_panic_hook();
    }
    let start = Instant::now();
    let deadline = secs.map(|s| start + Duration::from_secs(s));
    let mut total = 0u64;
    loop {
        let batch = if deadline.is_some() { 50 } else { cases };
        let config = Config {
            cases: batch,
            rng_seed: RngSeed::Fixed(seed),
            source_file: Some(source_file),
            failure_persistence: if cfg!(miri) {
                None
            } else {
                Some(Box::new(FileFailurePersistence::WithSource(
                    "proptest-regressions",
                )))
            },
            max_shrink_iters: env("PYHEAP_FUZZ_SHRINK_ITERS").unwrap_or(4000),
            max_shrink_time: 600_000,
            ..Config::default()
        };
        let mut runner = TestRunner::new(config);
        let r = runner.run(&program(profile), |ops| {
            check(&ops).map_err(TestCaseError::fail)
        });
        total += batch as u64;
        match r {
            Ok(()) => {}
            Err(TestError::Fail(why, ops)) => panic!(
                "\n{name}: FAILED with seed {seed} (PYHEAP_FUZZ_SEED={seed} reproduces it).\n\
                 Minimal program:\n{ops:?}\n\nWhy:\n{why}\n"
            ),
            Err(TestError::Abort(why)) => panic!("{name}: aborted with seed {seed}: {why}"),
        }
        if deadline.is_none_or(|d| Instant::now() >= d) {
            break;
        }
        seed = seed.wrapping_add(0x9e37_79b9);
    }
    eprintln!(
        "{name}: {total} programs passed in {:.1} s (last seed {seed}, max {} ops)",
        start.elapsed().as_secs_f64(),
        profile.max_ops
    );
}
