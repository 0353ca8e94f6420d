//! Choosing the arena a new pool comes from: the fullest arena with a free pool (so that
//! lightly used arenas drain and go back to the OS), found without looking at every arena.
//!
//! The work is counted, not timed (`pyheap::alloc::slow_path_work`, hidden from the docs): a
//! heap of `ARENAS` arenas, each with a couple of free pools (the holes left by freed scratch
//! objects, the scenario of issue 13), must serve the scratch objects' pools again while
//! looking at no more than two arena headers per pool request. The old choice walked every
//! arena for every pool once the current arena ran out, so its cost per pool grew with the
//! heap (and a whole refill with its square).
//!
//! Users care because a program with a heap of a few GiB that frees and reallocates a
//! fraction of its objects paid a walk over thousands of arenas, under the global lock, for
//! every 16 KiB pool: 36x `System`'s time at 2 GiB.
//!
//! One test in this binary: it asserts on process-wide counters.

mod common;

use pyheap::alloc::{slow_path_work, stats, ARENA_SIZE, POOL_SIZE};
use std::collections::{BTreeMap, BTreeSet, HashSet};

#[global_allocator]
static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;

/// Arenas' worth of records in the heap of the first part.
const ARENAS: usize = 48;
const RECORD: usize = 480;
const SCRATCH: usize = 200;
/// One scratch object per this many records.
const RECORDS_PER_SCRATCH: usize = 12;

fn arena_of(p: *const u8) -> usize {
    p as usize & !(ARENA_SIZE - 1)
}

fn pool_of(p: *const u8) -> usize {
    p as usize & !(POOL_SIZE - 1)
}

/// Part 1: refilling the holes of a large heap looks at O(1) arenas per pool.
fn refill_looks_at_few_arenas_per_pool() {
    let n = ARENAS * ARENA_SIZE / RECORD;
    let mut records: Vec<Box<[u8; RECORD]>> = Vec::with_capacity(n);
    let mut scratch: Vec<Box<[u8; SCRATCH]>> = Vec::with_capacity(n / RECORDS_PER_SCRATCH + 1);
    for i in 0..n {
        records.push(Box::new([i as u8; RECORD]));
        if i % RECORDS_PER_SCRATCH == 0 {
            scratch.push(Box::new([(i / RECORDS_PER_SCRATCH) as u8; SCRATCH]));
        }
    }
    let arenas_with_scratch: BTreeSet<usize> =
        scratch.iter().map(|b| arena_of(b.as_ptr())).collect();
    let count = scratch.len();
    // Every arena now gets a hole or two: the scratch objects' pools go back to it.
    drop(scratch);
    let before = stats();

    let w0 = slow_path_work();
    let scratch: Vec<Box<[u8; SCRATCH]>> = (0..count)
        .map(|i| Box::new([(i % 251) as u8; SCRATCH]))
        .collect();
    let w = slow_path_work() - w0;
    let after = stats();

    println!(
        "{} arenas ({} with scratch pools): {} pool requests looked at {} arenas ({:.2} per request)",
        after.arenas_mapped,
        arenas_with_scratch.len(),
        w.pool_requests,
        w.arenas_visited,
        w.arenas_visited as f64 / w.pool_requests.max(1) as f64
    );
    assert!(
        w.pool_requests >= (ARENAS / 2) as u64,
        "the refill should take a pool per arena or so, took {}",
        w.pool_requests
    );
    assert!(
        w.arenas_visited <= 2 * w.pool_requests + 4,
        "{} arenas looked at for {} pool requests in a heap of {} arenas: the choice walks \
         the arenas",
        w.arenas_visited,
        w.pool_requests,
        after.arenas_mapped
    );
    // The holes were reused: no arena was mapped for the refill.
    assert_eq!(
        after.arenas_mapped_total, before.arenas_mapped_total,
        "the refill mapped new arenas instead of using the free pools"
    );
    for (i, b) in scratch.iter().enumerate() {
        assert!(
            b.iter().all(|&x| x == (i % 251) as u8),
            "scratch {i} corrupt"
        );
    }
    for (i, r) in records.iter().enumerate() {
        assert!(r.iter().all(|&x| x == i as u8), "record {i} corrupt");
    }
}

/// Part 2: the policy. Three arenas filled with one class get 5, 2 and 9 free pools; new
/// pools of another class fill the arena with 2 first, then the one with 5, and none goes to
/// the one with 9 while those two have a free pool.
fn pools_come_from_the_fullest_arena() {
    const BIG: usize = 512;
    let per_pool = POOL_SIZE / BIG;
    // Six arenas' worth: at least three of them are ours entirely.
    let blocks: Vec<Box<[u8; BIG]>> = (0..6 * 63 * per_pool)
        .map(|i| Box::new([i as u8; BIG]))
        .collect();
    let last_pool = pool_of(blocks.last().unwrap().as_ptr());
    let mut pools: BTreeMap<usize, Vec<usize>> = BTreeMap::new(); // pool -> block indexes
    for (i, b) in blocks.iter().enumerate() {
        pools.entry(pool_of(b.as_ptr())).or_default().push(i);
    }
    let mut by_arena: BTreeMap<usize, Vec<usize>> = BTreeMap::new(); // arena -> full pools
    for (&pool, idx) in &pools {
        if idx.len() == per_pool && pool != last_pool {
            by_arena
                .entry(arena_of(pool as *const u8))
                .or_default()
                .push(pool);
        }
    }
    let ours: Vec<usize> = by_arena
        .iter()
        .filter(|(_, p)| p.len() == 63)
        .map(|(&a, _)| a)
        .take(3)
        .collect();
    assert_eq!(
        ours.len(),
        3,
        "three arenas full of our pools: {by_arena:?}"
    );
    let holes = [5usize, 2, 9];
    let mut blocks: Vec<Option<Box<[u8; BIG]>>> = blocks.into_iter().map(Some).collect();
    for (&arena, &k) in ours.iter().zip(&holes) {
        for &pool in &by_arena[&arena][..k] {
            for &i in &pools[&pool] {
                blocks[i] = None;
            }
        }
    }
    // New pools of the 256-byte class: record the arena of each new pool that lands in ours.
    // Every collection is allocated up front (from the system allocator: too large for a
    // pool), so that the loop asks for no pool of another class.
    let mut seen: HashSet<usize> = HashSet::with_capacity(8192);
    let mut landed: Vec<usize> = Vec::with_capacity(1024); // index into `ours`
    let mut small: Vec<Box<[u8; 256]>> = Vec::with_capacity(100_000);
    while landed.len() < 7 && small.len() < 100_000 {
        let b = Box::new([7u8; 256]);
        let pool = pool_of(b.as_ptr());
        if seen.insert(pool) {
            if let Some(k) = ours.iter().position(|&a| a == arena_of(pool as *const u8)) {
                landed.push(k);
            }
        }
        small.push(b);
    }
    println!("new pools landed in arenas (0: 5 holes, 1: 2 holes, 2: 9 holes): {landed:?}");
    assert_eq!(
        landed.len(),
        7,
        "new pools did not go to the arenas with holes"
    );
    assert_eq!(
        &landed[..2],
        &[1, 1],
        "the arena with 2 free pools is the fullest"
    );
    assert_eq!(
        &landed[2..],
        &[0; 5],
        "then the one with 5, never the one with 9"
    );
    drop(blocks);
    drop(small);
}

#[test]
fn new_pools_come_from_the_fullest_arena_at_constant_cost() {
    common::wait_for_harness_idle();
    pools_come_from_the_fullest_arena();
    refill_looks_at_few_arenas_per_pool();
}
