//! `PoolAlloc`'s medium spans (blocks of 513 B to 4 KiB carved from 64 KiB spans, filled into
//! and emptied from each thread's medium cache in batches): every span bin's blocks are
//! distinct, 16-aligned and keep their bytes; memory freed and allocated again reuses the
//! spans (none mapped again); empty spans stay mapped for the purge delay and are unmapped
//! after it, or at once by `purge()`, and `stats()` counts them; blocks allocated on some
//! threads and freed on others all come back (after the threads exit and `purge()`, no span
//! is left beyond those mapped before); a `fork()` while other threads hammer the spans'
//! locks gives a child that can allocate (the fork handlers take the locks).
//!
//! Run without libtest's harness, so that no other thread allocates while the counts are
//! compared.

mod common;

use common::Rng;
use pyheap::alloc::{purge, set_purge_delay, stats, DEFAULT_PURGE_DELAY_MS};
use pyheap::PoolAlloc;
use std::alloc::{alloc, dealloc, Layout};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: PoolAlloc = PoolAlloc;

const SPAN: usize = 64 * 1024;

fn spans() -> (usize, usize) {
    let s = stats();
    (s.medium_spans, s.medium_spans_empty)
}

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

/// A size served by the spans: 513 B to 4 KiB.
fn span_size(rng: &mut Rng) -> usize {
    rng.range(513, 4096)
}

/// Allocate `sizes`, fill each block with a byte of its own, check them all, and return them.
fn fill(sizes: &[usize]) -> Vec<(usize, usize, u8)> {
    let blocks: Vec<(usize, usize, u8)> = sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| {
            // SAFETY: a non-zero size.
            let p = unsafe { alloc(layout(size)) };
            assert!(!p.is_null());
            assert_eq!(p as usize % 16, 0, "a medium block is not 16-aligned");
            let byte = (i % 251) as u8;
            // SAFETY: `size` bytes are ours.
            unsafe { p.write_bytes(byte, size) };
            (p as usize, size, byte)
        })
        .collect();
    check(&blocks);
    blocks
}

fn check(blocks: &[(usize, usize, u8)]) {
    for &(p, size, byte) in blocks {
        // SAFETY: a live block of `size` bytes.
        let ok = (0..size).all(|i| unsafe { *(p as *const u8).add(i) } == byte);
        assert!(ok, "a block of {size} B lost its bytes");
    }
    let mut sorted: Vec<(usize, usize)> = blocks.iter().map(|&(p, s, _)| (p, s)).collect();
    sorted.sort_unstable();
    for w in sorted.windows(2) {
        assert!(w[0].0 + w[0].1 <= w[1].0, "two medium blocks overlap");
    }
}

fn free(blocks: Vec<(usize, usize, u8)>) {
    for (p, size, _) in blocks {
        // SAFETY: allocated by `fill` with this layout, freed once.
        unsafe { dealloc(p as *mut u8, layout(size)) };
    }
}

/// Every span bin's blocks, five times over: after the first round, the rounds reuse the
/// spans (at most one more span per bin, for the blocks a refill brought into the cache and
/// the cache kept).
fn blocks_are_distinct_and_spans_are_reused() {
    purge();
    let mut rng = Rng::new(7);
    let sizes: Vec<usize> = (0..6000).map(|_| span_size(&mut rng)).collect();
    let bytes: usize = sizes.iter().sum();
    let mut first = 0;
    for round in 0..5 {
        let blocks = fill(&sizes);
        let (mapped, _) = spans();
        assert!(
            mapped * SPAN >= bytes,
            "{mapped} spans for {bytes} bytes of blocks"
        );
        if round == 0 {
            first = mapped;
        } else {
            assert!(
                mapped <= first + 24,
                "round {round}: the same blocks again mapped new spans: {mapped} > {first} + 24"
            );
        }
        free(blocks);
    }
    purge();
}

/// With the delay at its default, freed spans stay mapped and empty; `purge()` unmaps them.
/// With no delay, they are unmapped as they empty.
fn empty_spans_wait_for_the_delay() {
    purge();
    let (base, empty) = spans();
    assert_eq!(empty, 0, "purge() left empty spans");
    set_purge_delay(Duration::from_millis(DEFAULT_PURGE_DELAY_MS));
    // 3 MiB of 2 KiB blocks: more than the cache keeps of one bin (1,024 blocks).
    let blocks = fill(&[2000; 1536]);
    let (peak, _) = spans();
    assert!(
        peak >= base + 40,
        "{peak} spans mapped for 3 MiB (from {base})"
    );
    free(blocks);
    let (after, empty) = spans();
    assert_eq!(after, peak, "a span was unmapped before the delay");
    assert!(
        empty >= 10,
        "only {empty} spans empty after freeing 1,536 blocks"
    );
    let given = purge();
    assert!(given >= empty * SPAN, "purge() gave back {given} bytes");
    let (after_purge, empty) = spans();
    assert_eq!(empty, 0, "purge() left empty spans");
    assert!(
        after_purge <= base + 1,
        "{after_purge} spans after purge (from {base})"
    );

    set_purge_delay(Duration::ZERO);
    // On a thread of its own, whose exit gives its cached blocks back to their spans.
    thread::spawn(|| free(fill(&[2000; 1536]))).join().unwrap();
    let (after, empty) = spans();
    assert_eq!(
        empty, 0,
        "with no delay, empty spans are unmapped as they empty"
    );
    assert!(after <= base + 1, "{after} spans left (from {base})");
    set_purge_delay(Duration::from_millis(DEFAULT_PURGE_DELAY_MS));
    purge();
}

/// Four threads allocate span blocks and send half of them to the next thread to be freed
/// there; all exit; then `purge()` leaves no span beyond those mapped before.
fn cross_thread_frees_all_come_back() {
    purge();
    let (base, _) = spans();
    const THREADS: usize = 4;
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for _ in 0..THREADS {
        let (tx, rx) = mpsc::channel::<Vec<(usize, usize, u8)>>();
        senders.push(tx);
        receivers.push(rx);
    }
    let handles: Vec<_> = receivers
        .into_iter()
        .enumerate()
        .map(|(i, inbox)| {
            let next = senders[(i + 1) % THREADS].clone();
            thread::spawn(move || {
                let mut rng = Rng::new(100 + i as u64);
                for _round in 0..20 {
                    let sizes: Vec<usize> = (0..1000).map(|_| span_size(&mut rng)).collect();
                    let mut blocks = fill(&sizes);
                    let theirs = blocks.split_off(500);
                    next.send(theirs).unwrap();
                    while let Ok(batch) = inbox.try_recv() {
                        check(&batch);
                        free(batch);
                    }
                    free(blocks);
                }
                drop(next);
                // The last batches from the previous thread.
                for batch in inbox {
                    check(&batch);
                    free(batch);
                }
            })
        })
        .collect();
    drop(senders);
    for h in handles {
        h.join().unwrap();
    }
    purge();
    let (after, empty) = spans();
    assert_eq!(empty, 0);
    assert!(
        after <= base,
        "{after} spans mapped after every block came back (from {base}): a block or a span \
         was lost"
    );
}

/// `fork()` while two threads allocate and free span blocks as fast as they can: the child
/// allocates span blocks of every bin and exits within the time limit (a lock of the spans
/// inherited locked would hang it).
fn fork_while_other_threads_hold_the_locks() {
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..2)
        .map(|i| {
            let stop = stop.clone();
            thread::spawn(move || {
                let mut rng = Rng::new(1000 + i);
                while !stop.load(Ordering::Relaxed) {
                    let sizes: Vec<usize> = (0..200).map(|_| span_size(&mut rng)).collect();
                    free(fill(&sizes));
                    // Through the cache's bounds, so that the bins' locks are taken often.
                    let big: Vec<(usize, usize, u8)> = fill(&[4096; 300]);
                    free(big);
                }
            })
        })
        .collect();
    for round in 0..20 {
        // SAFETY: the child only allocates, frees and exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let ok = std::panic::catch_unwind(|| {
                let mut rng = Rng::new(round);
                let sizes: Vec<usize> = (0..3000).map(|_| span_size(&mut rng)).collect();
                free(fill(&sizes));
                purge();
            })
            .is_ok();
            // SAFETY: leave the child at once.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut status = 0;
        loop {
            // SAFETY: our child.
            let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if r == pid {
                break;
            }
            if Instant::now() > deadline {
                // SAFETY: our child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                panic!("round {round}: the forked child hung (a spans lock inherited locked?)");
            }
            thread::sleep(Duration::from_millis(5));
        }
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "round {round}: the child failed: status {status}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
}

fn main() {
    blocks_are_distinct_and_spans_are_reused();
    empty_spans_wait_for_the_delay();
    cross_thread_frees_all_come_back();
    fork_while_other_threads_hold_the_locks();
    println!("alloc_medium_spans: 4 scenarios passed");
}
