//! `pyheap::alloc::stats()` adds up: blocks in use return to their baseline when a workload is
//! freed, pools and free blocks agree with the blocks in use, the arena counters are
//! consistent with each other, and the system-allocator counters follow a large allocation.
//!
//! Users read these numbers to find leaks and to size their programs (as with CPython's
//! `sys._debugmallocstats()`); numbers that do not add up are worse than none.
//!
//! One test in this binary, single-threaded: it asserts exact process-wide numbers, which
//! another test running in parallel would disturb.

mod common;

use pyheap::alloc::{stats, AllocStats, POOL_SIZE};
use std::alloc::{alloc, dealloc, Layout};

#[global_allocator]
static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;

/// Invariants every snapshot of a quiescent program satisfies.
fn check_consistent(s: &AllocStats, when: &str) {
    for (i, c) in s.classes.iter().enumerate() {
        // A pool holds at most POOL_SIZE / block_size blocks (fewer: header, and arena
        // header in an arena's first pool) and, if it holds any, at least one.
        let capacity = c.free_blocks + c.blocks_in_use;
        assert!(
            capacity <= c.pools * (POOL_SIZE / c.block_size),
            "{when}: class {i}: {} free + {} used blocks do not fit in {} pools",
            c.free_blocks,
            c.blocks_in_use,
            c.pools
        );
        assert!(
            capacity >= c.pools * ((POOL_SIZE / c.block_size) * 9 / 10),
            "{when}: class {i}: {} pools but only {capacity} blocks",
            c.pools
        );
        if c.pools == 0 {
            assert_eq!(
                c.blocks_in_use, 0,
                "{when}: class {i}: blocks in use without a pool"
            );
        }
    }
    assert!(s.pools_in_use() <= s.arenas_mapped * pyheap::alloc::POOLS_PER_ARENA);
    assert!(
        s.arenas_mapped <= s.arenas_high_water,
        "{when}: mapped > high water"
    );
    assert!(
        s.arenas_high_water <= s.arenas_mapped_total,
        "{when}: high water > total"
    );
    assert_eq!(
        s.arenas_mapped_total - s.arenas_returned,
        s.arenas_mapped,
        "{when}: mapped_total - returned != mapped"
    );
    assert_eq!(s.arena_bytes(), s.arenas_mapped * pyheap::alloc::ARENA_SIZE);
    let bytes: usize = s
        .classes
        .iter()
        .map(|c| c.blocks_in_use * c.block_size)
        .sum();
    assert_eq!(s.bytes_in_blocks, bytes, "{when}: bytes_in_blocks");
    assert!(s.fallback_count <= s.fallback_total);
    assert!(s.heaps_active >= 1, "{when}: this thread holds a heap");
}

#[test]
fn stats_add_up_single_threaded() {
    // Warm up so that the baseline has this thread's heap and the test harness's allocations.
    common::wait_for_harness_idle();
    drop(vec![0u8; 100]);
    let base = stats();
    check_consistent(&base, "baseline");

    // 1. A workload of every small class: blocks in use rise by exactly what is live.
    let mut blocks = Vec::with_capacity(20_000);
    for i in 0..20_000usize {
        let size = 1 + i % 512;
        let layout = Layout::from_size_align(size, 8).unwrap();
        // SAFETY: non-zero size.
        let p = std::hint::black_box(unsafe { alloc(layout) });
        assert!(!p.is_null());
        blocks.push((p, layout));
    }
    let during = stats();
    check_consistent(&during, "during");
    // The `blocks` vector itself is a system allocation (> 512 bytes).
    assert_eq!(during.blocks_in_use(), base.blocks_in_use() + 20_000);
    assert!(during.pools_in_use() > base.pools_in_use());
    assert!(during.bytes_in_blocks >= base.bytes_in_blocks + (1..=512).sum::<usize>() * 39);
    let class_64 = pyheap::alloc::size_class(64, 8).unwrap();
    assert!(during.classes[class_64].blocks_in_use >= base.classes[class_64].blocks_in_use + 39);
    assert!(during.arenas_mapped >= 1);

    for (p, layout) in blocks.drain(..) {
        // SAFETY: allocated above with `layout`.
        unsafe { dealloc(p, layout) };
    }
    drop(blocks);
    let after = stats();
    check_consistent(&after, "after free");
    assert_eq!(after.blocks_in_use(), base.blocks_in_use(), "blocks leaked");
    assert_eq!(after.bytes_in_blocks, base.bytes_in_blocks);
    // Empty pools go back to their arenas (each class keeps at most its current pool).
    assert!(
        after.pools_in_use() <= base.pools_in_use() + pyheap::alloc::NUM_SIZE_CLASSES,
        "{} pools in use after freeing, {} before",
        after.pools_in_use(),
        base.pools_in_use()
    );

    // 2. Fallback counters: a 4 KiB allocation is a system allocation.
    let before = stats();
    let layout = Layout::from_size_align(4096, 8).unwrap();
    // SAFETY: non-zero size.
    let p = std::hint::black_box(unsafe { alloc(layout) });
    assert!(!p.is_null());
    let held = stats();
    assert_eq!(held.fallback_count, before.fallback_count + 1);
    assert_eq!(held.fallback_total, before.fallback_total + 1);
    assert_eq!(held.fallback_bytes, before.fallback_bytes + 4096);
    assert_eq!(held.blocks_in_use(), before.blocks_in_use());
    // SAFETY: allocated above with `layout`.
    unsafe { dealloc(p, layout) };
    let freed = stats();
    assert_eq!(freed.fallback_count, before.fallback_count);
    assert_eq!(freed.fallback_bytes, before.fallback_bytes);
    assert_eq!(
        freed.fallback_total,
        before.fallback_total + 1,
        "total never falls"
    );

    // Over-aligned small requests go to the system allocator too.
    let layout = Layout::from_size_align(8, 64).unwrap();
    // SAFETY: non-zero size.
    let p = std::hint::black_box(unsafe { alloc(layout) });
    assert_eq!(stats().fallback_count, before.fallback_count + 1);
    // SAFETY: allocated above with `layout`.
    unsafe { dealloc(p, layout) };
    assert_eq!(stats().fallback_count, before.fallback_count);

    // 3. Realloc across the boundary moves the block between the counters.
    let small = Layout::from_size_align(100, 8).unwrap();
    // SAFETY: non-zero size; realloc with the original layout; freed with the final one.
    unsafe {
        // black_box: in release builds the optimizer may elide an allocation nothing reads.
        let p = std::hint::black_box(alloc(small));
        assert_eq!(stats().blocks_in_use(), before.blocks_in_use() + 1);
        let q = std::hint::black_box(std::alloc::realloc(p, small, 2000));
        let s = stats();
        assert_eq!(s.blocks_in_use(), before.blocks_in_use());
        assert_eq!(s.fallback_count, before.fallback_count + 1);
        let r = std::hint::black_box(std::alloc::realloc(
            q,
            Layout::from_size_align(2000, 8).unwrap(),
            50,
        ));
        let s = stats();
        assert_eq!(s.blocks_in_use(), before.blocks_in_use() + 1);
        assert_eq!(s.fallback_count, before.fallback_count);
        dealloc(r, Layout::from_size_align(50, 8).unwrap());
    }
    assert_eq!(stats().blocks_in_use(), before.blocks_in_use());

    // 4. The report prints and mentions the numbers.
    let report = stats().to_string();
    assert!(report.contains("arenas mapped now"), "{report}");
    assert!(report.contains("blocks in use"), "{report}");
}
