//! Memory goes back to the OS: after a program allocates ~200 MB in small blocks and frees
//! them, its resident memory falls by at least half of that, `arenas_returned` grows, and the
//! empty arenas kept for reuse stay within the documented hysteresis, `max(2, mapped / 8)`.
//!
//! Users care because pymalloc-style allocators are often blamed for never giving memory
//! back: a long-running process with one allocation peak must not keep the peak forever.
//!
//! One test in this binary: it asserts on process-wide stats and RSS.

mod common;

use pyheap::alloc::{stats, ARENA_SIZE};

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
    // Hysteresis: empty arenas kept mapped are at most max(2, mapped / 8). Besides the arenas
    // mapped before the workload, one more may hold a live pool: the 64-byte class's current
    // pool, which a heap keeps even when empty.
    let kept_empty = after.arenas_mapped.saturating_sub(before.arenas_mapped + 1);
    assert!(
        kept_empty <= 2.max(after.arenas_mapped / 8),
        "{kept_empty} empty arenas kept of {} mapped (limit max(2, mapped/8))",
        after.arenas_mapped
    );
}
