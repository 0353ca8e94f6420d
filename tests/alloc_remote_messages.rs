//! Remote frees as messages (`remote_message.rs`): a thread freeing another thread's blocks
//! writes the offsets of most of them into one block of its batch, and the owner links them
//! back into its free lists itself. What users rely on: every block freed by another thread
//! comes back to its owner exactly once, whatever its size class (8-byte blocks carry
//! nothing, 16-byte ones three offsets, 144 bytes and up a whole batch), however the frees
//! interleave between pools and classes.
//!
//! How: a thread allocates two pools' worth of blocks of each of nine classes, keeps the
//! first block it got in each pool (so that no pool goes back to its arena) and hands the
//! others to a thread that frees them in a random order and exits (publishing its batches).
//! Then the first thread allocates blocks of each class, keeping them all, until it has got
//! back every block it gave away: each must come back, once (a block carried by two
//! messages, or linked twice, would be handed out while live; a lost one never comes back:
//! the loop gives up after four more pools' worth of blocks than it gave).
//!
//! Checked to fail when the owner drops the last block a message carries
//! (`loom-tests/sanity/r5_unpack_drops_last_carried.patch` applied: "a block freed by
//! another thread did not come back").

mod common;

use common::Rng;
use std::alloc::{alloc, dealloc, Layout};
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

#[global_allocator]
static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;

/// Block sizes of the classes tried (8-byte blocks carry nothing, 16-byte ones 3 offsets,
/// 32-byte 11, 64-byte 27, 144 bytes and up a whole batch).
const SIZES: [usize; 9] = [8, 16, 32, 48, 64, 80, 128, 144, 512];
const POOL_SIZE: usize = 16 * 1024;
const POOLS: usize = 2;

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

/// Wait, without allocating, until `flag` is `value`.
fn wait_for(flag: &AtomicUsize, value: usize) {
    while flag.load(Ordering::Acquire) != value {
        thread::yield_now();
    }
}

#[test]
fn every_block_freed_by_another_thread_comes_back_exactly_once() {
    common::wait_for_harness_idle();
    for round in 0..3 {
        one_round(round);
    }
}

/// Addresses and sizes, in a vector reserved up front of more than 512 bytes (the system
/// allocator's), so that the thread filling it allocates nothing of the pools' classes.
type Blocks = Vec<(usize, usize)>;

fn one_round(round: u64) {
    let total: usize = SIZES.iter().map(|s| POOLS * POOL_SIZE / s).sum();
    let given: Arc<Mutex<Blocks>> = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let flag = Arc::new(AtomicUsize::new(0));
    let owner = {
        let (given, flag) = (given.clone(), flag.clone());
        thread::spawn(move || {
            let mut kept: Blocks = Vec::with_capacity(total);
            let mut pools_seen: HashSet<usize> = HashSet::with_capacity(total);
            {
                let mut given = given.lock().unwrap();
                for &size in &SIZES {
                    for _ in 0..POOLS * POOL_SIZE / size {
                        // SAFETY: a non-zero size.
                        let p = unsafe { alloc(layout(size)) };
                        assert!(!p.is_null());
                        // SAFETY: `size` writable bytes.
                        unsafe { p.write_bytes(size as u8, size) };
                        if pools_seen.insert(p as usize & !(POOL_SIZE - 1)) {
                            kept.push((p as usize, size));
                        } else {
                            given.push((p as usize, size));
                        }
                    }
                }
            }
            let expected: HashSet<(usize, usize)> = given.lock().unwrap().iter().copied().collect();
            flag.store(1, Ordering::Release);
            // The freer frees them all and exits.
            wait_for(&flag, 2);
            let mut live: HashSet<usize> = HashSet::with_capacity(4 * total);
            let mut again: Blocks = Vec::with_capacity(4 * total);
            for &size in &SIZES {
                let mut missing: HashSet<usize> = expected
                    .iter()
                    .filter(|&&(_, s)| s == size)
                    .map(|&(p, _)| p)
                    .collect();
                let bound = missing.len() + 4 * POOL_SIZE / size;
                let mut tries = 0;
                while !missing.is_empty() {
                    assert!(
                        tries < bound,
                        "a block freed by another thread did not come back ({} of {size} bytes \
                         missing after {tries} allocations)",
                        missing.len()
                    );
                    tries += 1;
                    // SAFETY: a non-zero size.
                    let p = unsafe { alloc(layout(size)) };
                    assert!(!p.is_null());
                    assert!(
                        live.insert(p as usize),
                        "a block of {size} bytes was handed out twice"
                    );
                    missing.remove(&(p as usize));
                    again.push((p as usize, size));
                }
            }
            for (p, size) in again.into_iter().chain(kept) {
                // SAFETY: allocated above with this layout, freed once.
                unsafe { dealloc(p as *mut u8, layout(size)) };
            }
        })
    };
    wait_for(&flag, 1);
    // The freer: bound to a heap of its own first (so that it batches), frees in a random
    // order, and exits (publishing its batches).
    let freer = {
        let given = given.clone();
        thread::spawn(move || {
            let bound = Box::new(round);
            let mut given = given.lock().unwrap();
            let mut rng = Rng::new(round + 1);
            for i in (1..given.len()).rev() {
                given.swap(i, rng.below(i + 1));
            }
            for &(p, size) in given.iter() {
                // SAFETY: allocated with this layout by the owner thread, freed once here.
                unsafe { dealloc(p as *mut u8, layout(size)) };
            }
            given.clear();
            assert_eq!(*bound, round);
        })
    };
    freer.join().unwrap();
    flag.store(2, Ordering::Release);
    owner.join().unwrap();
}
