//! Memory goes back to the OS: after a program allocates ~200 MB in small blocks and frees
//! them, its resident memory falls by at least half of that at once, `arenas_returned`
//! grows, and the empty arenas kept for reuse stay within the documented limits: at once
//! `max(32, mapped / 8)` empty arenas, and with the places a freed large block left (the
//! `Vec` of the blocks is one) at most `max(64, mapped / 8)` in all (the decay limits: kept
//! resident for the purge delay), and once the delay has passed and pools are released
//! again, `max(2, mapped / 8)` (the hysteresis). Within the delay, a heap freed and built again reuses its arenas: no arena is
//! mapped for the second build.
//!
//! Users care because pymalloc-style allocators are often blamed for never giving memory
//! back: a long-running process with one allocation peak must not keep the peak forever; and
//! a program that rebuilds a structure in a loop should not pay `mmap` and page faults for it
//! every time.
//!
//! One test in this binary: it asserts on process-wide stats and RSS.

mod common;

use pyheap::alloc::{stats, ARENA_SIZE};
use std::thread;
use std::time::Duration;

#[global_allocator]
static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;

const TOTAL: usize = 200 << 20;
const BLOCK: usize = 64;

#[test]
fn freeing_200mb_of_small_blocks_returns_memory_to_the_os() {
    common::wait_for_harness_idle();
    let before = stats();
    let rss_before = common::rss_bytes();

    let n = TOTAL / BLOCK;
    let mut blocks: Vec<Box<[u8; BLOCK]>> = Vec::with_capacity(n);
    for i in 0..n {
        // Touch every block so that its pages are resident.
        blocks.push(Box::new([i as u8; BLOCK]));
    }
    let peak = stats();
    let rss_peak = common::rss_bytes();
    assert!(
        peak.arenas_mapped * ARENA_SIZE >= TOTAL,
        "200 MB of blocks in {} arenas",
        peak.arenas_mapped
    );
    assert!(rss_peak >= rss_before + TOTAL / 2, "blocks not resident?");
    assert!(blocks
        .iter()
        .enumerate()
        .all(|(i, b)| b[BLOCK - 1] == i as u8));

    drop(blocks);
    let after = stats();
    let rss_after = common::rss_bytes();
    println!("{after}");
    println!("rss before {rss_before}, peak {rss_peak}, after {rss_after}");

    assert!(
        after.arenas_returned > before.arenas_returned,
        "no arena returned: {} before, {} after",
        before.arenas_returned,
        after.arenas_returned
    );
    assert!(
        rss_peak - rss_after >= TOTAL / 2,
        "resident memory fell by only {} bytes of {TOTAL}",
        rss_peak.saturating_sub(rss_after)
    );
    assert_eq!(after.blocks_in_use(), before.blocks_in_use());
    // Decay: empty arenas and spare places kept until the delay are at most max(64, mapped
    // / 8): the `Vec` of 26 MB is a large block, freed last, and the places a freed large
    // block leaves may be kept up to 64 MiB with the empty arenas (the arenas mapped after it
    // are places of its region too). Besides the arenas mapped before the workload, one more
    // may hold a live pool: the 64-byte class's current pool, which a heap keeps even when
    // empty.
    let kept_empty = after.arenas_mapped.saturating_sub(before.arenas_mapped + 1);
    assert!(
        kept_empty <= 64.max(after.arenas_mapped / 8),
        "{kept_empty} empty arenas kept of {} mapped (limit max(64, mapped/8))",
        after.arenas_mapped
    );
    assert!(
        kept_empty >= 8,
        "only {kept_empty} empty arenas kept for the delay: they were unmapped at once"
    );

    // Within the delay, a rebuild of 8 MiB reuses the kept arenas.
    let mapped_total = stats().arenas_mapped_total;
    let again: Vec<Box<[u8; BLOCK]>> = (0..(8 << 20) / BLOCK)
        .map(|i| Box::new([i as u8; BLOCK]))
        .collect();
    assert_eq!(
        stats().arenas_mapped_total,
        mapped_total,
        "arenas mapped for a rebuild within the purge delay"
    );
    drop(again);

    // Past the delay, pool requests (threads taking a pool each: `black_box` keeps the
    // compiler from removing the allocation) unmap the kept arenas down to the hysteresis,
    // max(2, mapped / 8), eight per request.
    thread::sleep(Duration::from_millis(1100));
    for size in [24usize, 40, 100, 200, 300, 400] {
        thread::spawn(move || drop(std::hint::black_box(vec![0u8; size])))
            .join()
            .unwrap();
    }
    let late = stats();
    // The rebuild's `Vec` (1 MiB, a large block) is kept by this thread for reuse
    // (`large_cached_bytes`): its arenas are not empty ones.
    let cached = late.large_cached_bytes.div_ceil(ARENA_SIZE);
    let kept_empty = late
        .arenas_mapped
        .saturating_sub(before.arenas_mapped + 1 + cached);
    assert!(
        kept_empty <= 2.max(late.arenas_mapped / 8),
        "{kept_empty} empty arenas kept of {} mapped past the delay (limit max(2, mapped/8))\n{late}",
        late.arenas_mapped
    );
    assert!(late.arenas_returned > after.arenas_returned);
}
