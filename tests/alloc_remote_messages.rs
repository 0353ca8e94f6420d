//! Remote frees as messages (`remote_message.rs`): a thread freeing another thread's blocks
//! writes the offsets of most of them into one block of its batch, and the owner hands them
//! out again by those offsets. What users rely on: every block freed by another thread
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
//! A child forked while a pool holds such messages, partly handed out, gets every block back
//! too (`a_forked_child_gets_back_the_blocks_held_as_messages`).
//!
//! Checked to fail when the owner drops the last block a message carries
//! (`loom-tests/sanity/r5_carried_drops_last.patch` applied: "a block freed by
//! another thread did not come back").

mod common;
#[path = "common/fork.rs"]
mod fork;

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

/// A pool whose heap took back blocks another thread freed while the pool's never-used tail
/// was not used up (the heap took a pool of another class) hands out the blocks freed
/// first, then its whole tail, and only then does its heap take another pool: freed blocks
/// before fresh ones, and no block of the pool lost to the messages (`Pool::take_block` sets
/// the tail aside while the pool has messages).
///
/// Checked to fail when the tail set aside is never given back
/// (`loom-tests/sanity/r6_tail_stays_aside.patch` applied: the heap takes another pool
/// after the freed blocks).
#[test]
fn freed_blocks_come_before_the_tail_and_the_tail_is_not_lost() {
    common::wait_for_harness_idle();
    // Sizes no allocation of the test harness or of `thread::spawn` asks for.
    const SIZE: usize = 448;
    const CAPACITY: usize = POOL_SIZE / SIZE;
    const TAKEN: usize = 10;
    const OTHER: usize = 384;
    thread::spawn(|| {
        // Up to the first block of a pool: the pool is fresh, and its next blocks come from
        // its tail.
        let mut before: Vec<usize> = Vec::with_capacity(CAPACITY + 1);
        let first = loop {
            // SAFETY: a non-zero size.
            let p = unsafe { alloc(layout(SIZE)) } as usize;
            assert_ne!(p, 0);
            if p % POOL_SIZE == 0 {
                break p;
            }
            assert!(
                before.len() < CAPACITY,
                "no fresh pool after a pool's worth"
            );
            before.push(p);
        };
        let mut ours: Vec<usize> = vec![first];
        for _ in 1..TAKEN {
            // SAFETY: a non-zero size.
            ours.push(unsafe { alloc(layout(SIZE)) } as usize);
        }
        assert!(
            ours.iter().all(|&p| p - first < POOL_SIZE),
            "the blocks after a pool's first did not come from its tail: {ours:x?}"
        );
        // Another thread frees half of them, and exits (publishing its batch).
        let given: Vec<usize> = ours.split_off(TAKEN / 2);
        let mut freed = given.clone();
        freed.sort();
        thread::spawn(move || {
            let bound = Box::new(0u8);
            for p in given {
                // SAFETY: allocated with this layout above, freed once here.
                unsafe { dealloc(p as *mut u8, layout(SIZE)) };
            }
            drop(bound);
        })
        .join()
        .unwrap();
        // Blocks of another class up to the first block of a fresh pool: the heap took a
        // pool, so it first took back its remote frees, while our pool's tail is not used up.
        let other = layout(OTHER);
        let mut others: Vec<usize> = Vec::with_capacity(POOL_SIZE / OTHER + 1);
        loop {
            // SAFETY: a non-zero size.
            let p = unsafe { alloc(other) } as usize;
            assert_ne!(p, 0);
            others.push(p);
            if p % POOL_SIZE == 0 {
                break;
            }
            assert!(
                others.len() <= POOL_SIZE / OTHER,
                "no fresh pool of {OTHER} bytes"
            );
        }
        // The freed blocks first (in some order), then the rest of the tail.
        let mut again: Vec<usize> = Vec::with_capacity(CAPACITY);
        for _ in 0..CAPACITY - TAKEN / 2 {
            // SAFETY: a non-zero size.
            again.push(unsafe { alloc(layout(SIZE)) } as usize);
        }
        let mut back = again[..freed.len()].to_vec();
        back.sort();
        assert_eq!(back, freed, "the freed blocks did not come back first");
        let outside = again
            .iter()
            .filter(|&&p| p - first >= POOL_SIZE || p < first);
        assert_eq!(
            outside.count(),
            0,
            "the heap took another pool before its pool's tail was used up"
        );
        let mut all: Vec<usize> = ours.iter().chain(&again).copied().collect();
        all.sort();
        all.dedup();
        assert_eq!(
            all.len(),
            CAPACITY,
            "a block of the pool was handed out twice"
        );
        for p in before.into_iter().chain(ours).chain(again) {
            // SAFETY: allocated above with this layout, freed once.
            unsafe { dealloc(p as *mut u8, layout(SIZE)) };
        }
        for p in others {
            // SAFETY: allocated above with this layout, freed once.
            unsafe { dealloc(p as *mut u8, other) };
        }
    })
    .join()
    .unwrap();
}

/// The 144-byte blocks another thread freed that the forking thread had not got back yet
/// (addresses), for the child to get back (`fork_and_check` takes a plain `fn`).
static AWAITED: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// Allocate 144-byte blocks until every address in `awaited` has come back, each once (or
/// give up after those plus four pools' worth); then free all. Returns 0, or 2 if a block
/// did not come back, 3 if one was handed out twice.
fn get_back(awaited: &[usize]) -> i32 {
    const SIZE: usize = 144;
    let mut missing: HashSet<usize> = awaited.iter().copied().collect();
    let bound = missing.len() + 4 * POOL_SIZE / SIZE;
    let mut got: Vec<usize> = Vec::with_capacity(bound);
    let mut status = 0;
    while !missing.is_empty() {
        if got.len() == bound {
            status = 2;
            break;
        }
        // SAFETY: a non-zero size.
        let p = unsafe { alloc(layout(SIZE)) } as usize;
        assert_ne!(p, 0);
        if got.contains(&p) {
            status = 3;
            break;
        }
        missing.remove(&p);
        got.push(p);
    }
    for p in got {
        // SAFETY: allocated above with this layout, freed once.
        unsafe { dealloc(p as *mut u8, layout(SIZE)) };
    }
    status
}

/// A child forked while its heap's pool holds blocks another thread freed, taken back as
/// messages and partly handed out again (the pool's `messages`, `carried_at`/`carried_end`
/// and its tail set aside are plain fields the child inherits), gets every one of those
/// blocks back, once, as the parent does.
#[test]
fn a_forked_child_gets_back_the_blocks_held_as_messages() {
    common::wait_for_harness_idle();
    const SIZE: usize = 144;
    const N: usize = 100;
    thread::spawn(|| {
        let mut ours: Vec<usize> = Vec::with_capacity(N);
        for _ in 0..N {
            // SAFETY: a non-zero size.
            let p = unsafe { alloc(layout(SIZE)) } as usize;
            assert_ne!(p, 0);
            ours.push(p);
        }
        // Another thread frees 60 of them (bound to a heap of its own first, so that it
        // batches them into messages), and exits, publishing its batches.
        let given: Vec<usize> = ours.split_off(N - 60);
        let mut awaited = given.clone();
        thread::spawn(move || {
            let bound = Box::new(0u8);
            for p in given {
                // SAFETY: allocated with this layout above, freed once here.
                unsafe { dealloc(p as *mut u8, layout(SIZE)) };
            }
            drop(bound);
        })
        .join()
        .unwrap();
        // Allocate until the first freed block comes back: the pool took its messages back
        // and is handing them out.
        let mut taken: Vec<usize> = Vec::with_capacity(2 * POOL_SIZE / SIZE);
        loop {
            // SAFETY: a non-zero size.
            let p = unsafe { alloc(layout(SIZE)) } as usize;
            assert_ne!(p, 0);
            taken.push(p);
            if let Some(i) = awaited.iter().position(|&q| q == p) {
                awaited.swap_remove(i);
                break;
            }
            assert!(
                taken.len() < 2 * POOL_SIZE / SIZE,
                "no freed block came back"
            );
        }
        *AWAITED.lock().unwrap() = awaited.clone();
        fork::fork_and_check(0, 20, 1, || get_back(&AWAITED.lock().unwrap()));
        assert_eq!(
            get_back(&awaited),
            0,
            "the parent did not get its blocks back"
        );
        for p in ours.into_iter().chain(taken) {
            // SAFETY: allocated above with this layout, freed once.
            unsafe { dealloc(p as *mut u8, layout(SIZE)) };
        }
    })
    .join()
    .unwrap();
}
