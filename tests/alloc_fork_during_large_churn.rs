//! `fork()` while another thread allocates and frees large blocks beyond the spare limit (so
//! that its operations are often in their unlocked phases: moving pages into a new block's
//! purged places, purging trimmed places, writing a new block's head).
//!
//! The fork handlers take the arena lock, so the child sees the arenas as they were between
//! two of the other thread's locked steps. The child's large and small blocks must work: 200
//! children each allocate, write and free blocks of 300 KiB to 20 MiB, call `purge()`, and
//! exit; a deadlock (`alarm`) or a crash fails the test.
//!
//! What the child cannot get back is what the other thread held between two locked steps:
//! the places of a block it was making, the spare places it was moving into it, the places it
//! was purging. Those are lost to the child, and not counted: the child's `mapped_total -
//! returned` exceeds `mapped` by them (5-10 arenas' worth in the runs of session 32). The test
//! bounds that by what one operation can hold, [`IN_FLIGHT_BOUND`]; the gap itself is listed
//! in the issue notes as work left (counting in-flight places under the lock that takes them).

#![cfg(target_os = "linux")]

mod common;
#[path = "common/fork.rs"]
mod fork;

use pyheap::alloc::{purge, stats};
use std::alloc::{alloc, dealloc, Layout};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

#[global_allocator]
static A: pyheap::PoolAlloc = pyheap::PoolAlloc;

/// Places one large-block operation of another thread can hold outside the lock: a block of
/// up to 33 places, as many spare places moved into it, a trim of up to 64 spare places, and
/// a batch of 8 empty arenas to unmap.
const IN_FLIGHT_BOUND: usize = 33 + 33 + 64 + 8;

/// Arenas' worth the counts do not account for (`mapped_total - returned - mapped`).
fn unaccounted() -> usize {
    let s = stats();
    (s.arenas_mapped_total - s.arenas_returned).abs_diff(s.arenas_mapped)
}

/// The child: exit status 0 if its blocks work and the counts are off by at most the bound.
fn child() -> i32 {
    if unaccounted() > IN_FLIGHT_BOUND {
        return 3;
    }
    for (i, size) in [300_000usize, 3 << 20, 9 << 20, 20 << 20]
        .into_iter()
        .enumerate()
    {
        let l = Layout::from_size_align(size, 16).unwrap();
        // SAFETY: a non-zero size; the block is written, read and freed with its layout.
        unsafe {
            let b = black_box(alloc(l));
            if b.is_null() {
                return 4;
            }
            b.write_bytes(i as u8 + 1, size);
            if (0..size).step_by(4096).any(|o| *b.add(o) != i as u8 + 1) {
                return 5;
            }
            dealloc(b, l);
        }
    }
    let small: Vec<Box<[u8; 100]>> = (0..10_000).map(|i| Box::new([i as u8; 100])).collect();
    if small.iter().enumerate().any(|(i, b)| b[99] != i as u8) {
        return 6;
    }
    drop(small);
    purge();
    if unaccounted() > IN_FLIGHT_BOUND {
        return 7;
    }
    0
}

#[test]
fn forked_children_work_while_another_thread_churns_large_blocks() {
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let mut rng = common::Rng::new(99);
            let mut live: Vec<(usize, Layout)> = Vec::new();
            let mut bytes = 0;
            while !stop.load(Ordering::Relaxed) {
                let size = rng.range(256 * 1024, 12 << 20);
                if bytes + size > 160 << 20 || (rng.below(2) == 0 && !live.is_empty()) {
                    let (p, l) = live.swap_remove(rng.below(live.len()));
                    bytes -= l.size();
                    // SAFETY: allocated below with this layout, freed once.
                    unsafe { dealloc(p as *mut u8, l) };
                } else {
                    let l = Layout::from_size_align(size, 16).unwrap();
                    // SAFETY: a non-zero size.
                    let p = unsafe { alloc(l) };
                    assert!(!p.is_null());
                    // SAFETY: inside the block.
                    unsafe { p.write(1) };
                    bytes += size;
                    live.push((p as usize, l));
                }
            }
            for (p, l) in live {
                // SAFETY: as above.
                unsafe { dealloc(p as *mut u8, l) };
            }
        })
    };
    for i in 0..200 {
        fork::fork_and_check(i, 20, 9, child);
    }
    stop.store(true, Ordering::Relaxed);
    churn.join().unwrap();
}
