//! `PoolAlloc` tunes glibc's `malloc` (its fallback above 512 bytes) so that batches of medium
//! blocks stop paying for a trimmed heap top with page faults (`src/alloc/glibc_tuning.rs`),
//! and leaves glibc alone when the environment says so.
//!
//! What users rely on: a loop that allocates and frees a batch of 0.5-32 KiB blocks faults its
//! pages in once, not at every batch; `PYHEAP_GLIBC_TUNING=0` and the user's own glibc
//! settings are respected; `purge()` gives freed medium memory back.
#![cfg(all(target_os = "linux", target_env = "gnu"))]

use std::process::Command;

#[global_allocator]
static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;

/// This thread's minor page faults so far.
fn thread_faults() -> i64 {
    // SAFETY: an out-parameter of the right type.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_THREAD with a valid pointer.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) }, 0);
    u.ru_minflt
}

/// 100 blocks of 513 B to 32 KiB (about 1.6 MiB), every page written, freed last-first.
fn batch(sizes: &[usize]) -> u64 {
    let blocks: Vec<Vec<u8>> = sizes.iter().map(|&n| vec![n as u8; n]).collect();
    let sum = blocks.iter().map(|b| b[b.len() - 1] as u64).sum();
    for b in blocks.into_iter().rev() {
        drop(b);
    }
    sum
}

fn sizes() -> Vec<usize> {
    let mut x = 0x9e37_79b9_u64;
    (0..100)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            513 + (x % (32 * 1024 - 513)) as usize
        })
        .collect()
}

/// Faults of batches 3..=22 (the first two may grow the heap).
fn faults_of_repeated_batches() -> (i64, usize) {
    let sizes = sizes();
    let pages: usize = sizes.iter().map(|n| n.div_ceil(4096)).sum();
    batch(&sizes);
    batch(&sizes);
    let before = thread_faults();
    let mut check = 0;
    for _ in 0..20 {
        check += batch(&sizes);
    }
    assert!(check > 0);
    (thread_faults() - before, pages)
}

/// Run this test binary again with `env` set, in a child that prints whether glibc was
/// tuned and its faults.
fn child(test: &str, env: (&str, &str)) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("PYHEAP_GLIBC_CHILD", "1")
        .env(env.0, env.1)
        .output()
        .unwrap();
    assert!(out.status.success(), "child failed: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn repeated_medium_batches_fault_their_pages_in_once() {
    if std::env::var_os("PYHEAP_GLIBC_CHILD").is_some() {
        let (faults, _) = faults_of_repeated_batches();
        println!("tuned={} faults={faults}", pyheap::alloc::glibc_tuned());
        return;
    }
    if std::env::var_os("PYHEAP_GLIBC_TUNING").is_some()
        || std::env::var_os("GLIBC_TUNABLES").is_some()
    {
        eprintln!("skipped: the environment tunes glibc itself");
        return;
    }
    let (faults, pages) = faults_of_repeated_batches();
    assert!(
        pyheap::alloc::glibc_tuned(),
        "a 513-byte request reached glibc"
    );
    // Untuned, every batch faults most of its pages again (the trimmed top): 20 x ~400.
    assert!(
        (faults as usize) < pages,
        "20 batches of {pages} pages each faulted {faults} pages: the heap top was given back \
         and faulted in again"
    );

    // The opt-out and the user's own settings: glibc left as it is.
    for env in [
        ("PYHEAP_GLIBC_TUNING", "0"),
        ("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=131072"),
        ("MALLOC_TOP_PAD_", "131072"),
    ] {
        let out = child("repeated_medium_batches_fault_their_pages_in_once", env);
        assert!(out.contains("tuned=false"), "{env:?}: {out}");
    }
    // And a child with no such setting is tuned (the env var of the child mechanism is not
    // one of them).
    let out = child(
        "repeated_medium_batches_fault_their_pages_in_once",
        ("PYHEAP_UNRELATED", "1"),
    );
    assert!(out.contains("tuned=true"), "{out}");
}

#[test]
fn purge_gives_freed_medium_memory_back() {
    if std::env::var_os("PYHEAP_GLIBC_CHILD").is_some() {
        return;
    }
    // 2,000 blocks of 513 B to 4 KiB (about 4.6 MiB, every page written), freed: they come
    // from pyheap's medium spans, which keep the freed memory resident for reuse (the next run
    // faults almost nothing in); purge() empties the thread's medium cache and unmaps the
    // spans left empty, so running again faults the pages in again.
    //
    // (Blocks above 4 KiB come from glibc, whose `malloc_trim` gives back the free top of its
    // main arena only; this test's thread has an arena of its own, so they are not checked
    // here: see `purge`'s documentation.)
    let mut x = 0x2545_f491_u64;
    let sizes: Vec<usize> = (0..2000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            513 + (x % (4096 - 513)) as usize
        })
        .collect();
    let run = || {
        let v: Vec<Vec<u8>> = sizes.iter().map(|&n| vec![1u8; n]).collect();
        v.len()
    };
    run();
    let a = thread_faults();
    run();
    let kept = thread_faults() - a;
    let given_back = pyheap::alloc::purge();
    let b = thread_faults();
    run();
    let after_purge = thread_faults() - b;
    let pages: usize = sizes.iter().sum::<usize>() / 4096;
    assert!(
        given_back >= 2 << 20,
        "purge() gave back {given_back} bytes of a 4.6 MiB thread's freed medium blocks"
    );
    assert!(
        after_purge > kept + (pages / 2) as i64,
        "after purge() the pages were faulted in again ({after_purge} faults, {kept} \
         without purge, {pages} pages written)"
    );
}
