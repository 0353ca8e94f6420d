//! Purging free pools (issue 17): the memory of free pools goes back to the OS after the
//! purge delay, or at once with `pyheap::alloc::purge()`; `stats()` counts resident and purged
//! free pools; a purge never touches a pool in use, even while threads allocate and free; and
//! `purge()` unmaps the empty arenas left waiting for the delay, beyond the retained few.
//!
//! One test in this binary: its phases assert on process-wide stats and RSS.

use pyheap::alloc::{purge, set_purge_delay, stats, POOL_SIZE};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

#[global_allocator]
static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;

/// Resident memory of this process in bytes (Linux: `VmRSS` of /proc/self/status), else None.
fn rss() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// A peak of 300-byte boxes (18 MiB: about 18 arenas of pools), then everything freed but one
/// box in every 2,000 (one per ~10 pools), so that no arena empties: the freed pools stay in
/// mapped arenas, where only purging can give their memory back.
#[allow(clippy::vec_box)] // one pool block per box is the point
fn peak_then_keep_a_few() -> Vec<Box<[u8; 300]>> {
    let mut all: Vec<Box<[u8; 300]>> = (0..60_000).map(|i| Box::new([i as u8; 300])).collect();
    let kept = all.iter().step_by(2_000).count();
    let mut keep = Vec::with_capacity(kept);
    for (i, b) in all.drain(..).enumerate() {
        if i % 2_000 == 0 {
            keep.push(b);
        }
    }
    keep
}

#[test]
fn free_pools_go_back_to_the_os() {
    // Phase 1: purging off; the free pools stay resident until purge().
    set_purge_delay(Duration::MAX);
    purge();
    let kept = peak_then_keep_a_few();
    let rss_before = rss();
    let before = stats();
    assert!(
        before.free_pools_resident >= 500,
        "freeing ~17 MiB of pools should leave hundreds of resident free pools, got\n{before}"
    );
    let bytes = purge();
    let after = stats();
    assert_eq!(
        after.free_pools_resident, 0,
        "purge() left resident free pools:\n{after}"
    );
    assert!(
        bytes >= before.free_pools_resident * POOL_SIZE,
        "purge() gave back {bytes} bytes for {} resident pools",
        before.free_pools_resident
    );
    assert!(after.free_pools_purged >= before.free_pools_resident);
    assert!(after.pools_purged_total >= before.pools_purged_total + before.free_pools_resident);
    if let (Some(b), Some(a)) = (rss_before, rss()) {
        // Half of what was purged, at least, must show in RSS (the rest of the process may
        // fault pages meanwhile; nothing else runs in it).
        assert!(
            b.saturating_sub(a) >= bytes / 2,
            "RSS fell by {} bytes only for {bytes} bytes purged ({b} -> {a})",
            b.saturating_sub(a)
        );
    }
    // The kept boxes are intact: the purge touched no pool in use.
    for (i, b) in kept.iter().enumerate() {
        assert!(
            b.iter().all(|&x| x == (i * 2_000) as u8),
            "box {i} damaged by a purge"
        );
    }
    // Purged pools serve again, with zeroed memory where asked.
    let again: Vec<Box<[u8; 300]>> = (0..60_000).map(|_| Box::new([0u8; 300])).collect();
    assert!(again.iter().all(|b| b.iter().all(|&x| x == 0)));
    let zeroed: Vec<Vec<u8>> = (0..10_000).map(|_| vec![0u8; 200]).collect();
    assert!(zeroed.iter().all(|v| v.iter().all(|&x| x == 0)));
    drop(again);
    drop(zeroed);
    drop(kept);

    // Phase 2: a zero delay purges on the next pool release or request: resident free pools
    // stay few (each pool operation purges the oldest dirty arena).
    set_purge_delay(Duration::ZERO);
    let kept = peak_then_keep_a_few();
    // Pool traffic in another size class: requests and releases that trigger the purges.
    for _ in 0..200 {
        let v: Vec<Box<[u8; 40]>> = (0..400).map(|_| Box::new([1u8; 40])).collect();
        drop(v);
    }
    let s = stats();
    assert!(
        s.free_pools_resident < 64 * 2,
        "with a zero delay at most an arena or two of free pools stays resident:\n{s}"
    );
    assert!(
        s.free_pools_purged >= 500,
        "nothing was purged automatically:\n{s}"
    );
    drop(kept);

    // Phase 3: threads allocate, fill, check and free while another thread purges in a loop
    // (automatic purging off, so that the purger finds the free pools): a purge that hit a
    // pool in use would zero a live block.
    set_purge_delay(Duration::MAX);
    let stop = Arc::new(AtomicBool::new(false));
    let purger = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                n += purge();
                thread::yield_now();
            }
            n
        })
    };
    let workers: Vec<_> = (0..3u8)
        .map(|t| {
            thread::spawn(move || {
                for round in 0..40u32 {
                    let tag = t.wrapping_mul(31).wrapping_add(round as u8) | 1;
                    let v: Vec<Vec<u8>> = (0..2_000)
                        .map(|i| vec![tag; 16 + (i * 37 + round as usize) % 480])
                        .collect();
                    thread::yield_now();
                    for b in &v {
                        assert!(b.iter().all(|&x| x == tag), "a live block was purged");
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let purged_bytes = purger.join().unwrap();
    assert!(
        purged_bytes > 0,
        "the purging thread never found a free pool"
    );

    // Phase 4: automatic purging off, a 48 MiB peak freed whole: its empty arenas wait (at
    // most 32 of them, the decay limit, or an eighth of those mapped; 64 with the places a
    // freed large block left: the `Vec` of 1.5 MB is one, freed last, and the arenas after it
    // are places of its region), resident, and purge() unmaps or purges them down to the
    // retained limit, max(2, mapped / 8), at once, counting their resident pools in the
    // bytes it returns.
    purge();
    let base = stats();
    let peak: Vec<Box<[u8; 256]>> = (0..192_000).map(|i| Box::new([i as u8; 256])).collect();
    drop(peak);
    let waiting = stats();
    let empty_now = waiting.arenas_mapped.saturating_sub(base.arenas_mapped + 1);
    assert!(
        (8..=64.max(waiting.arenas_mapped / 8)).contains(&empty_now),
        "{empty_now} empty arenas left waiting (from {} to {} mapped)",
        base.arenas_mapped,
        waiting.arenas_mapped
    );
    let bytes = purge();
    let after = stats();
    let empty_after = after.arenas_mapped.saturating_sub(base.arenas_mapped + 1);
    assert!(
        empty_after <= 2.max(after.arenas_mapped / 8),
        "purge() left {empty_after} empty arenas mapped of {}",
        after.arenas_mapped
    );
    assert!(after.arenas_returned > waiting.arenas_returned);
    assert!(
        bytes >= (empty_now - empty_after) * 32 * POOL_SIZE,
        "purge() counted {bytes} bytes for {} arenas unmapped",
        empty_now - empty_after
    );
    set_purge_delay(Duration::from_millis(pyheap::alloc::DEFAULT_PURGE_DELAY_MS));
}
