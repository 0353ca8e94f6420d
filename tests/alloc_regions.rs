//! The regions large blocks are carved from (Linux; `src/alloc/arena/regions.rs`): what a
//! program that replaces large blocks relies on.
//!
//! * Blocks of mixed sizes replaced at random are made in the places freed blocks left: after
//!   a warm-up, thousands of replacements take almost no memory from the OS (before regions,
//!   each took its run from empty arenas moved together with `mremap`).
//! * Freed blocks keep at most the spare limit resident (64 MiB, shared with the empty
//!   arenas, or an eighth of the arenas mapped), and `purge()` gives the rest back, and the
//!   address space of the regions left idle.
//! * Spare places are purged once they have been vacant for the purge delay.
//! * Arenas emptied by small blocks keep no more than empty arenas did before regions.
//! * Zeroed blocks are zero whatever their places held: resident places of freed blocks, and
//!   purged places filled with a spare place's pages (`fill_purged`).
//! * The arena counts add up throughout (`mapped_total - returned == mapped`).
//!
//! One test in this binary: its phases assert on process-wide stats and RSS, in order.

#![cfg(target_os = "linux")]

mod common;

use common::{counted, Rng};
use pyheap::alloc::{purge, set_purge_delay, AllocStats};
use std::alloc::{alloc, alloc_zeroed, dealloc, Layout};
use std::hint::black_box;
use std::thread;
use std::time::Duration;

#[global_allocator]
static A: pyheap::PoolAlloc = pyheap::PoolAlloc;

const MIB: usize = 1 << 20;
const PAGE: usize = 4096;

/// A large block with a byte written in every page (so its memory is resident).
struct Big {
    ptr: *mut u8,
    size: usize,
}

impl Big {
    fn new(size: usize, tag: u8) -> Big {
        let layout = Layout::from_size_align(size, 16).unwrap();
        // SAFETY: a non-zero size.
        let ptr = unsafe { alloc(layout) };
        assert!(!ptr.is_null(), "allocation of {size} bytes failed");
        for o in (0..size).step_by(PAGE) {
            // SAFETY: inside the block.
            unsafe { ptr.add(o).write(tag) };
        }
        Big { ptr, size }
    }

    fn zeroed(size: usize) -> Big {
        let layout = Layout::from_size_align(size, 16).unwrap();
        // SAFETY: a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        assert!(!ptr.is_null(), "allocation of {size} bytes failed");
        // SAFETY: a live block of `size` bytes.
        unsafe { common::assert_zeroed(ptr, size, "zeroed block") };
        Big { ptr, size }
    }

    fn check(&self, tag: u8) {
        for o in (0..self.size).step_by(PAGE) {
            // SAFETY: inside the block.
            let b = unsafe { *self.ptr.add(o) };
            assert_eq!(
                b, tag,
                "block {:p} of {} B, offset {o}",
                self.ptr, self.size
            );
        }
    }
}

impl Drop for Big {
    fn drop(&mut self) {
        // SAFETY: allocated with this layout, freed once.
        unsafe { dealloc(self.ptr, Layout::from_size_align(self.size, 16).unwrap()) }
    }
}

/// Arenas' worth of memory the allocator holds beyond `base`.
fn arenas_beyond(s: &AllocStats, base: &AllocStats) -> usize {
    s.arenas_mapped.saturating_sub(base.arenas_mapped)
}

#[test]
fn regions_reuse_freed_places_and_keep_little_idle() {
    common::wait_for_harness_idle();
    set_purge_delay(Duration::MAX);
    purge();
    let base = counted("start");

    // Phase 1: 16 live blocks of 256 KiB to 4 MiB, replaced at random (`large_churn`).
    let mut rng = Rng::new(7);
    let mut live: Vec<(Big, u8)> = (0..16)
        .map(|i| (Big::new(rng.range(256 * 1024, 4 * MIB), i as u8), i as u8))
        .collect();
    let replace = |rng: &mut Rng, live: &mut Vec<(Big, u8)>, n: usize| {
        for k in 0..n {
            let i = rng.below(live.len());
            let tag = (k % 251) as u8;
            live[i].0.check(live[i].1);
            live[i] = (Big::new(rng.range(256 * 1024, 4 * MIB), tag), tag);
        }
    };
    replace(&mut rng, &mut live, 400);
    let warm = counted("after the warm-up");
    let vm_warm = common::vm_size();
    replace(&mut rng, &mut live, 3_000);
    let churned = counted("after 3,000 replacements");
    // Nor do they reserve more address space (a region is 64 MiB).
    let vm_churned = common::vm_size();
    assert!(
        vm_churned <= vm_warm + 128 * MIB,
        "address space grew from {vm_warm} to {vm_churned} bytes in 3,000 replacements"
    );
    // Each replacement needs 1 to 5 places; taking them all from the OS would add thousands.
    let taken = churned.arenas_mapped_total - warm.arenas_mapped_total;
    assert!(
        taken <= 300,
        "3,000 replacements took {taken} arenas' worth from the OS:\n{churned}"
    );
    // Idle memory stays within the spare limit: live blocks (at most 64 MiB) plus 64 MiB.
    assert!(
        arenas_beyond(&churned, &base) <= 64 + 64 + 16 + 4,
        "{} arenas mapped beyond the start while 16 blocks of at most 4 MiB live:\n{churned}",
        arenas_beyond(&churned, &base)
    );
    for (b, tag) in &live {
        b.check(*tag);
    }
    drop(live);

    // Phase 2: 48 blocks of 3 MiB (144 MiB) freed whole: at most the spare limit (64 places,
    // shared with the empty arenas; an eighth of the arenas mapped if more) stays resident.
    purge();
    let before = counted("before the peak");
    let rss_before = common::rss_bytes();
    let peak: Vec<Big> = (0..48).map(|i| Big::new(3 * MIB, i as u8)).collect();
    let rss_peak = common::rss_bytes();
    let vm_peak = common::vm_size();
    let at_peak = counted("at the peak");
    drop(peak);
    let freed = counted("after the peak freed");
    let rss_freed = common::rss_bytes();
    // The thread keeps two of the blocks for its next requests (`large_cached_bytes`, at
    // most 8 MiB): 4 arenas each (3 MiB and one pool over whole arenas).
    let kept = 4 * freed.large_cached_bytes / (3 * MIB);
    let idle = arenas_beyond(&freed, &before).saturating_sub(kept);
    assert!(
        idle <= 64.max(freed.arenas_mapped / 8) + 2,
        "{idle} arenas' worth kept after freeing a peak of {} arenas:\n{freed}",
        arenas_beyond(&at_peak, &before)
    );
    assert!(
        rss_peak - rss_freed >= 64 * MIB,
        "RSS fell by {} bytes of a 144 MiB peak (before {rss_before}, peak {rss_peak})",
        rss_peak.saturating_sub(rss_freed)
    );
    purge();
    let purged = counted("after purge()");
    // The regions the peak left idle (every place vacant and purged) are unmapped, all but
    // the last one: the peak needed at least three.
    let vm_purged = common::vm_size();
    assert!(
        vm_purged + 64 * MIB <= vm_peak,
        "address space {vm_peak} bytes at the peak, {vm_purged} after purge()"
    );
    assert!(
        arenas_beyond(&purged, &before) <= 2.max(purged.arenas_mapped / 8) + 2,
        "purge() left {} arenas' worth:\n{purged}",
        arenas_beyond(&purged, &before)
    );

    // Phase 3: zeroed blocks over places that held freed blocks' bytes: 64 resident places
    // in the lowest addresses, the rest purged; blocks of 32 MiB (33 places) then use
    // resident places, or purged ones filled with a spare place's pages.
    let blocks: Vec<Big> = (0..100)
        .map(|i| Big::new(1536 * 1024, 0xA0 | i as u8))
        .collect();
    drop(blocks);
    let z: Vec<Big> = (0..4).map(|_| Big::zeroed(32 * MIB)).collect();
    let mid: Vec<Big> = (0..6).map(|_| Big::zeroed(3 * MIB + 12_345)).collect();
    drop(z);
    drop(mid);
    counted("after the zeroed blocks");
    purge();

    // Phase 4: spare places are purged once vacant for the purge delay, by the pool
    // requests that follow (threads taking a pool each; `black_box` keeps the allocation).
    set_purge_delay(Duration::from_millis(100));
    let before = counted("before the spare decay");
    // Over 4 MiB: blocks the thread does not keep for its next requests.
    let blocks: Vec<Big> = (0..10)
        .map(|i| Big::new(5 * MIB + 40_000, i as u8))
        .collect();
    drop(blocks);
    let waiting = counted("freed, waiting");
    assert!(
        arenas_beyond(&waiting, &before) >= 8,
        "freed blocks' places were not kept for the delay:\n{waiting}"
    );
    thread::sleep(Duration::from_millis(250));
    for size in [24usize, 40, 100, 200, 300, 400, 48, 56] {
        thread::spawn(move || drop(black_box(vec![0u8; size])))
            .join()
            .unwrap();
    }
    let late = counted("past the delay");
    let idle = arenas_beyond(&late, &before);
    assert!(
        idle <= 2.max(late.arenas_mapped / 8) + 2,
        "{idle} arenas' worth still kept past the delay:\n{late}"
    );
    assert!(late.arenas_returned > waiting.arenas_returned);

    // Phase 5: small blocks freed, no large block among them: the arenas they emptied (in
    // a region: a live large block made one, and new arenas take its vacant places) keep at
    // most max(32, mapped / 8), as empty arenas did before regions. Their pointers are in
    // memory of the system allocator, so that no large block is freed with them.
    set_purge_delay(Duration::MAX);
    purge();
    let _region = Big::new(MIB + 40_000, 1);
    let before = counted("before the small blocks");
    let n = (96 * MIB) / 64;
    // SAFETY: an anonymous mapping of our own, unmapped below.
    let table = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            n * 8,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(table, libc::MAP_FAILED);
    // SAFETY: `n` words of the mapping, zero-filled, ours.
    let ptrs = unsafe { std::slice::from_raw_parts_mut(table.cast::<*mut [u8; 64]>(), n) };
    for (i, p) in ptrs.iter_mut().enumerate() {
        *p = Box::into_raw(Box::new([i as u8; 64]));
    }
    let peak = counted("small blocks at their peak");
    assert!(arenas_beyond(&peak, &before) >= 90);
    for &p in ptrs.iter() {
        // SAFETY: made by `Box::into_raw` above, freed once.
        drop(unsafe { Box::from_raw(p) });
    }
    let emptied = counted("small blocks freed");
    let idle = arenas_beyond(&emptied, &before);
    assert!(
        idle <= 32.max(emptied.arenas_mapped / 8) + 2,
        "{idle} arenas' worth kept after freeing {} arenas of small blocks:\n{emptied}",
        arenas_beyond(&peak, &before)
    );
    // SAFETY: the mapping made above, no longer used.
    unsafe { libc::munmap(table, n * 8) };
    set_purge_delay(Duration::from_millis(pyheap::alloc::DEFAULT_PURGE_DELAY_MS));
}
