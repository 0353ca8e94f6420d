//! Stress: waves of 8 threads doing random allocations, frees and reallocs of random sizes
//! 1..2048 (both sides of the small/large boundary, random alignments), verifying every
//! block's contents before it is resized or freed, handing blocks to threads of later waves to
//! free, and exiting with blocks alive. Threads start and exit over and over: exited threads'
//! heaps must be adopted, so the number of heaps stays bounded by the number of threads alive
//! at once, and at the end every block is accounted for.
//!
//! Users care because this is what a server does all day; corruption or unbounded growth here
//! is a production incident.
//!
//! One test in this binary: it asserts on process-wide stats.

mod common;

use common::{first_mismatch, Block, Rng};
use pyheap::alloc::stats;
use std::alloc::{realloc, Layout};
use std::sync::{Arc, Mutex};
use std::thread;

#[global_allocator]
static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;

const THREADS: usize = 8;
const WAVES: u64 = 5;
const OPS: usize = 3000;

/// Resize `b` to `new_size` with `realloc`, checking the kept prefix and refilling.
fn resize(b: &mut Block, new_size: usize, tag: u64) {
    b.verify();
    // SAFETY: `b` is live with `b.layout`; the new size is non-zero and small.
    let q = unsafe { realloc(b.ptr, b.layout, new_size) };
    assert!(!q.is_null());
    assert_eq!(q as usize % b.layout.align(), 0);
    let kept = b.layout.size().min(new_size);
    // SAFETY: `q` has `new_size` bytes.
    unsafe {
        assert_eq!(
            first_mismatch(q, kept, b.tag),
            None,
            "realloc lost contents"
        );
        common::fill(q, new_size, tag);
    }
    b.ptr = q;
    b.layout = Layout::from_size_align(new_size, b.layout.align()).unwrap();
    b.tag = tag;
}

fn worker(seed: u64, shared: Arc<Mutex<Vec<Block>>>) -> Vec<Block> {
    let mut rng = Rng::new(seed);
    let mut live: Vec<Block> = Vec::new();
    let mut next_tag = seed << 32;
    for _ in 0..OPS {
        next_tag += 1;
        match rng.below(10) {
            0..=3 => {
                let size = rng.range(1, 2048);
                let bits = if rng.below(20) == 0 { 7 } else { 5 };
                let align = 1 << rng.below(bits);
                live.push(Block::new(size, align, next_tag));
            }
            4..=5 if !live.is_empty() => {
                let i = rng.below(live.len());
                live.swap_remove(i).free();
            }
            6 if !live.is_empty() => {
                let i = rng.below(live.len());
                let size = rng.range(1, 2048);
                resize(&mut live[i], size, next_tag);
            }
            7 if !live.is_empty() => {
                // Hand a block to whoever comes next.
                let i = rng.below(live.len());
                shared.lock().unwrap().push(live.swap_remove(i));
            }
            8 => {
                // Free someone else's block.
                let b = shared.lock().unwrap().pop();
                if let Some(b) = b {
                    b.free();
                }
            }
            _ => {
                if let Some(b) = live.last() {
                    b.verify();
                }
            }
        }
    }
    for b in &live {
        b.verify();
    }
    // Keep a third alive past this thread's exit.
    let keep = live.len() / 3;
    for b in live.drain(keep..) {
        b.free();
    }
    live
}

#[test]
fn random_alloc_free_realloc_across_thread_waves() {
    common::wait_for_harness_idle();
    drop(vec![0u8; 10]);
    thread::spawn(|| drop(vec![1u8; 10])).join().unwrap();
    let shared = Arc::new(Mutex::new(Vec::new()));
    let mut survivors: Vec<Block> = Vec::new();
    let base = stats();
    let heaps_base = base.heaps_active + base.heaps_abandoned;
    for wave in 0..WAVES {
        let hs: Vec<_> = (0..THREADS as u64)
            .map(|t| {
                let shared = shared.clone();
                thread::spawn(move || worker(wave * 100 + t + 1, shared))
            })
            .collect();
        for h in hs {
            survivors.extend(h.join().unwrap());
        }
        // Survivors of older waves are still intact; free half of them from this thread.
        for b in &survivors {
            b.verify();
        }
        let half = survivors.len() / 2;
        for b in survivors.drain(..half) {
            b.free();
        }
        let s = stats();
        let heaps = s.heaps_active + s.heaps_abandoned;
        assert!(
            heaps <= heaps_base + THREADS,
            "wave {wave}: {heaps} heaps for {THREADS} threads at a time beyond {heaps_base}"
        );
    }
    for b in survivors {
        b.free();
    }
    for b in std::mem::take(&mut *shared.lock().unwrap()) {
        b.free();
    }
    let after = stats();
    for (a, b) in after.classes.iter().zip(base.classes.iter()) {
        if a.blocks_in_use != b.blocks_in_use {
            eprintln!(
                "class {}: {} -> {}",
                a.block_size, b.blocks_in_use, a.blocks_in_use
            );
        }
    }
    assert_eq!(after.blocks_in_use(), base.blocks_in_use(), "blocks leaked");
    assert_eq!(
        after.fallback_count, base.fallback_count,
        "system blocks leaked"
    );
    assert_eq!(after.fallback_bytes, base.fallback_bytes);
    assert_eq!(after.heaps_active, base.heaps_active);
}
