//! Thread exit and `fork()` with a custom fallback behind the pools (`PoolAllocWith<Tagged>`,
//! `common/tagged.rs`: a fallback that knows its own blocks and counts any free of a block not
//! its own).
//!
//! What users rely on: a thread that exits while blocks of both sides (pool blocks and the
//! fallback's large ones) are alive elsewhere leaves them valid, and each goes back to the side
//! that served it when another thread frees it; the exited heap is gone once its blocks are;
//! and a child forked while another thread allocates large and small blocks can allocate and
//! free on both sides, free blocks its parent allocated before the fork, and start threads,
//! every large block going back to `F`.
//!
//! Run without libtest's harness, so that no other thread allocates while the counts are
//! compared.

#[path = "common/fork.rs"]
mod fork;
#[path = "common/tagged.rs"]
mod tagged;

use pyheap::alloc::stats;
use pyheap::PoolAllocWith;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{mpsc, Arc};
use std::thread;
use tagged::Tagged;

#[global_allocator]
static GLOBAL: PoolAllocWith<Tagged> = PoolAllocWith::new(Tagged::new());

fn tagged() -> &'static Tagged {
    GLOBAL.fallback()
}

/// A block whose bytes say who made it: `n` bytes, each `seed + i`.
fn filled(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| seed.wrapping_add(i as u8)).collect()
}

fn intact(v: &[u8], seed: u8) -> bool {
    v.iter()
        .enumerate()
        .all(|(i, &b)| b == seed.wrapping_add(i as u8))
}

/// Whether a `Vec<(Vec<u8>, u8)>` holding `v`'s elements is itself a fallback block.
fn holder_is_large(v: &Vec<(Vec<u8>, u8)>) -> usize {
    usize::from(v.capacity() * std::mem::size_of::<(Vec<u8>, u8)>() > 512)
}

/// Sizes on both sides of the pools' 512-byte limit.
const SIZES: [usize; 8] = [8, 100, 512, 513, 700, 4_096, 20_000, 200_000];

/// Threads allocate blocks of every size, hand half of them to the main thread, free the
/// rest and exit; the main thread frees the handed blocks after the threads are gone.
fn thread_exit_part() {
    // Warm up: the main thread's heap and the channel's blocks exist before the baseline.
    drop(filled(600, 0));
    let base = stats();
    let live0 = tagged().live.load(Relaxed);

    for round in 0..4u8 {
        let (tx, rx) = mpsc::channel::<(Vec<u8>, u8)>();
        let workers: Vec<_> = (0..3u8)
            .map(|w| {
                let tx = tx.clone();
                thread::spawn(move || {
                    let mut mine = Vec::new();
                    for (k, &n) in SIZES.iter().cycle().take(64).enumerate() {
                        let seed = round ^ w.wrapping_mul(17) ^ k as u8;
                        let v = filled(n, seed);
                        if k % 2 == 0 {
                            tx.send((v, seed)).unwrap();
                        } else {
                            mine.push((v, seed));
                        }
                    }
                    // Grow one of its own across the limit and back: realloc between sides.
                    let (mut v, seed) = mine.pop().unwrap();
                    let len = v.len();
                    v.resize(len + 1_000, 0);
                    v.truncate(len);
                    v.shrink_to_fit();
                    assert!(intact(&v, seed));
                    for (v, seed) in mine {
                        assert!(intact(&v, seed));
                    }
                })
            })
            .collect();
        drop(tx);
        for w in workers {
            w.join().unwrap();
        }
        // Every worker has exited: the handed blocks outlive their heaps.
        let handed: Vec<(Vec<u8>, u8)> = rx.into_iter().collect();
        assert_eq!(handed.len(), 3 * 32);
        let large = handed.iter().filter(|(v, _)| v.len() > 512).count();
        assert_eq!(
            tagged().live.load(Relaxed),
            live0 + large + holder_is_large(&handed),
            "round {round}: exactly the handed large blocks (and the Vec holding them) are the \
             fallback's"
        );
        for (v, seed) in &handed {
            assert!(
                intact(v, *seed),
                "round {round}: a block of an exited thread"
            );
        }
        drop(handed);
        assert_eq!(
            tagged().live.load(Relaxed),
            live0,
            "round {round}: all freed"
        );
    }

    assert_eq!(
        tagged().foreign_frees.load(Relaxed),
        0,
        "a block went back to the wrong side"
    );
    let s = stats();
    assert_eq!(
        s.blocks_in_use(),
        base.blocks_in_use(),
        "pool blocks in use\n{s}"
    );
    assert_eq!(
        s.fallback_count, base.fallback_count,
        "fallback blocks\n{s}"
    );
    assert_eq!(
        s.heaps_active, base.heaps_active,
        "exited threads hold no heap"
    );
    assert_eq!(
        s.heaps_abandoned, base.heaps_abandoned,
        "an exited thread's heap stayed after its blocks were freed\n{s}"
    );
}

/// Blocks the parent allocated before forking, on both sides, freed by the child.
static INHERITED: AtomicUsize = AtomicUsize::new(0);

/// In the child: free the inherited blocks, allocate and free on both sides from two threads.
/// Exit statuses: 3 contents, 4 a wrong free, 5 counts, 6 a thread failed.
fn child_work() -> i32 {
    let live0 = tagged().live.load(Relaxed);
    // SAFETY: the parent leaked this Box<Vec<(Vec<u8>, u8)>> for the child to take back; the
    // child is a copy of the parent's memory and nobody else frees it here.
    let inherited = unsafe { Box::from_raw(INHERITED.load(Relaxed) as *mut Vec<(Vec<u8>, u8)>) };
    let large =
        inherited.iter().filter(|(v, _)| v.len() > 512).count() + holder_is_large(&inherited);
    if inherited.iter().any(|(v, seed)| !intact(v, *seed)) {
        return 3;
    }
    drop(inherited);
    if tagged().live.load(Relaxed) + large != live0 {
        return 5;
    }
    let worker = thread::spawn(|| {
        for round in 0..50u8 {
            let vs: Vec<_> = SIZES.iter().map(|&n| (filled(n, round), round)).collect();
            if vs.iter().any(|(v, s)| !intact(v, *s)) {
                return false;
            }
        }
        true
    });
    let mine: Vec<_> = (0..200)
        .map(|i| filled(SIZES[i % SIZES.len()], i as u8))
        .collect();
    if mine.iter().enumerate().any(|(i, v)| !intact(v, i as u8)) {
        return 3;
    }
    drop(mine);
    if !matches!(worker.join(), Ok(true)) {
        return 6;
    }
    if tagged().foreign_frees.load(Relaxed) != 0 {
        return 4;
    }
    if tagged().live.load(Relaxed) + large != live0 {
        return 5;
    }
    0
}

/// Fork while another thread allocates and frees on both sides.
fn fork_part() {
    let stop = Arc::new(AtomicBool::new(false));
    let hammer = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut keep = Vec::new();
            let mut k = 0usize;
            while !stop.load(Relaxed) {
                keep.push(filled(SIZES[k % SIZES.len()], k as u8));
                if keep.len() > 64 {
                    keep.drain(..32);
                }
                k += 1;
            }
        })
    };
    for fork_no in 0..8 {
        let blocks: Vec<(Vec<u8>, u8)> = SIZES
            .iter()
            .enumerate()
            .map(|(i, &n)| (filled(n, i as u8 + 1), i as u8 + 1))
            .collect();
        let raw = Box::into_raw(Box::new(blocks));
        INHERITED.store(raw as usize, Relaxed);
        fork::fork_and_check(fork_no, 60, 7, child_work);
        // SAFETY: the parent's own copy, leaked above for the child.
        drop(unsafe { Box::from_raw(raw) });
    }
    stop.store(true, Relaxed);
    hammer.join().unwrap();
    assert_eq!(tagged().foreign_frees.load(Relaxed), 0);
}

/// Without libtest's harness (`harness = false` in Cargo.toml): no other thread of the process
/// allocates while the counts are compared.
fn main() {
    thread_exit_part();
    fork_part();
    println!("custom_fallback_survives_thread_exit_and_fork: ok");
}
