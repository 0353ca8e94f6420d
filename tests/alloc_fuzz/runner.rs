//! Running the fuzzer: proptest generates programs and shrinks failing ones; each program runs
//! in a forked child (`child.rs`). The knobs are listed in `alloc_fuzz.rs`.

use crate::child::contain;
use crate::interp::run_program;
use crate::program::{program, Op};
use proptest::test_runner::{
    Config, FileFailurePersistence, RngSeed, TestCaseError, TestError, TestRunner,
};
use std::time::{Duration, Instant};

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Run `ops` contained; `Err` with the child's report if it failed.
pub fn check(ops: &[Op]) -> Result<(), String> {
    contain(|| run_program(ops))
}

/// Fuzz: `default_cases` programs of up to `max_ops` operations, unless the environment says
/// otherwise.
pub fn fuzz(name: &str, source_file: &'static str, default_cases: u32, max_ops: usize) {
    let _s = crate::child::serial();
    let cases: u32 = env("PYHEAP_ALLOC_FUZZ_CASES").unwrap_or(default_cases);
    let secs: Option<u64> = env("PYHEAP_ALLOC_FUZZ_SECS");
    let max_ops = env("PYHEAP_ALLOC_FUZZ_MAX_OPS").unwrap_or(max_ops);
    let mut seed: u64 = match std::env::var("PYHEAP_ALLOC_FUZZ_SEED").as_deref() {
        Ok("random") => {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            t.as_nanos() as u64 ^ u64::from(std::process::id())
        }
        Ok(s) => s
            .parse()
            .expect("PYHEAP_ALLOC_FUZZ_SEED: a number or `random`"),
        Err(_) => 0x000a_110c_f022,
    };
    let start = Instant::now();
    let deadline = secs.map(|s| start + Duration::from_secs(s));
    let mut total = 0u64;
    loop {
        let batch = if deadline.is_some() { 50 } else { cases };
        let config = Config {
            cases: batch,
            rng_seed: RngSeed::Fixed(seed),
            source_file: Some(source_file),
            failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
                "proptest-regressions",
            ))),
            max_shrink_iters: env("PYHEAP_ALLOC_FUZZ_SHRINK_ITERS").unwrap_or(2000),
            ..Config::default()
        };
        let r = TestRunner::new(config).run(&program(max_ops), |ops| {
            check(&ops).map_err(TestCaseError::fail)
        });
        total += u64::from(batch);
        match r {
            Ok(()) => {}
            Err(TestError::Fail(why, ops)) => panic!(
                "\n{name}: FAILED with seed {seed} (PYHEAP_ALLOC_FUZZ_SEED={seed} reproduces \
                 it).\nMinimal program:\n{ops:?}\n\nWhy:\n{why}\n"
            ),
            Err(TestError::Abort(why)) => panic!("{name}: aborted with seed {seed}: {why}"),
        }
        if deadline.is_none_or(|d| Instant::now() >= d) {
            break;
        }
        seed = seed.wrapping_add(0x9e37_79b9);
    }
    eprintln!(
        "{name}: {total} programs of up to {max_ops} ops passed in {:.1} s (last seed {seed})",
        start.elapsed().as_secs_f64()
    );
}
