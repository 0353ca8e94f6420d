//! Large blocks on a kernel without `MREMAP_DONTUNMAP` (Linux before 5.7): the paths that
//! move pages with it fall back, and nothing a program sees changes.
//!
//! Two places use the flag (`src/alloc/arena/large_blocks.rs`):
//! * `fill_purged` moves the pages of spare (resident) places into a new block's purged
//!   places. Refused, the destinations stay purged (the block faults its pages in) and the
//!   sources stay resident and spare.
//! * A block growing into more arenas in a region has its old places moved behind the copy of
//!   its head's part. Refused, the rest of the block is copied too and the old block freed.
//!
//! The kernel here has the flag, so this process takes it away: a seccomp filter makes every
//! `mremap` with `MREMAP_DONTUNMAP` fail with `EINVAL`, which is what an older kernel
//! answers to a flag it does not know. The test checks the filter works (a direct call
//! fails), then runs what needs those paths: blocks beyond the spare limit then zeroed blocks
//! that need fills, a `Vec` grown through several arena counts, and random allocations,
//! resizes and frees of 256 KiB to 12 MiB with 160 MiB live. Every block's bytes are checked
//! before it is resized or freed, zeroed blocks are checked zero, and the arena counts must
//! add up throughout. The filter lasts for the process, so this binary holds this one test.

#![cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]

mod common;
#[path = "common/seccomp_filter.rs"]
mod seccomp_filter;

use common::{counted, Rng};
use pyheap::alloc::{purge, set_purge_delay};
use seccomp_filter::{dontunmap_works, refuse_mremap_dontunmap, Big};
use std::time::Duration;

#[global_allocator]
static A: pyheap::PoolAlloc = pyheap::PoolAlloc;

const MIB: usize = 1 << 20;

#[test]
fn large_blocks_work_without_mremap_dontunmap() {
    common::wait_for_harness_idle();
    refuse_mremap_dontunmap(None);
    assert!(
        !dontunmap_works(4 * seccomp_filter::PAGE),
        "the filter let MREMAP_DONTUNMAP through"
    );
    set_purge_delay(Duration::MAX);
    purge();
    let base = counted("start");
    let rss_base = common::rss_bytes();

    // Fills refused: 100 blocks of 1.5 MiB freed leave 64 spare places, the rest purged;
    // blocks of 32 MiB then need purged places filled (`fill_purged`), which the kernel
    // refuses here: those places fault in as zero pages.
    let blocks: Vec<Big> = (0..100).map(|i| Big::new(1536 * 1024, i as u8)).collect();
    drop(blocks);
    counted("after the 1.5 MiB blocks");
    let z: Vec<Big> = (0..4)
        .map(|i| Big::zeroed(32 * MIB, 200 + i as u8))
        .collect();
    let mid: Vec<Big> = (0..6)
        .map(|i| Big::zeroed(3 * MIB + 12_345, 210 + i as u8))
        .collect();
    drop(z);
    drop(mid);
    counted("after the zeroed blocks");

    // Growth into more arenas, refused the move: each step copies. A `Vec` grown by hand
    // from 300 KiB to 24 MiB, then shrunk.
    let mut v = Big::new(300 * 1024, 77);
    for size in [
        600 * 1024,
        MIB + 5,
        3 * MIB,
        3 * MIB + 700 * 1024,
        9 * MIB,
        24 * MIB,
        2 * MIB,
        400 * 1024,
    ] {
        v.resize(size);
        counted("after a resize");
    }
    drop(v);

    // Random allocations, resizes and frees, 160 MiB live at most: trims, fills (refused) and
    // growing resizes (copied) interleave.
    let mut rng = Rng::new(0x5eed);
    let mut live: Vec<Big> = Vec::new();
    let mut bytes = 0usize;
    for k in 0..1_500 {
        let size = rng.range(256 * 1024, 12 * MIB);
        let tag = (k % 251) as u8;
        match rng.below(4) {
            0 | 1 if bytes + size <= 160 * MIB => {
                bytes += size;
                live.push(if rng.below(3) == 0 {
                    Big::zeroed(size, tag)
                } else {
                    Big::new(size, tag)
                });
            }
            2 if !live.is_empty() => {
                let i = rng.below(live.len());
                if bytes - live[i].size + size <= 160 * MIB {
                    bytes = bytes - live[i].size + size;
                    live[i].resize(size);
                }
            }
            _ if !live.is_empty() => {
                let b = live.swap_remove(rng.below(live.len()));
                bytes -= b.size;
            }
            _ => {}
        }
        if k % 100 == 0 {
            counted("random operations");
        }
    }
    drop(live);
    let freed = counted("all freed");

    // What was kept resident goes back with `purge()`: spare places the refused fills left
    // resident are still counted as such, and purged.
    purge();
    let purged = counted("after purge()");
    let beyond = purged.arenas_mapped.saturating_sub(base.arenas_mapped);
    assert!(
        beyond <= 2.max(purged.arenas_mapped / 8) + 2,
        "purge() left {beyond} arenas' worth beyond the start:\n{purged}\n(before purge():\n{freed})"
    );
    let rss = common::rss_bytes();
    assert!(
        rss <= rss_base + 24 * MIB,
        "RSS {rss} bytes after purge(), {rss_base} at the start"
    );
}
