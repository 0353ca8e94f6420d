//! Large blocks when the table of regions is full (Linux; `src/alloc/arena/regions.rs`).
//!
//! The regions' table holds 4,096 regions of 64 MiB (256 GiB of address space). A block no
//! region has room for once the table is full gets a mapping of its own, as before regions,
//! and everything else goes on as usual. The test fills the table with blocks of 32 MiB (33
//! places each, so one per region: two would need 66 of a region's 64 places), which costs
//! address space but little memory (only each block's head header is written). Then:
//! * more blocks of 32 MiB get mappings of their own (their pages are not in a region, whose
//!   pages are never huge: smaps' `nh` flag), are written, read, resized and freed;
//! * smaller blocks still fit in the regions' vacant places;
//! * the arena counts add up throughout;
//! * once the table's blocks are freed, `purge()` gives the idle regions' address space
//!   back, and a new block gets a region again.
//!
//! One test in this binary: it takes 256 GiB of address space and asserts on process-wide
//! stats.

#![cfg(target_os = "linux")]

mod common;

use common::counted;

use pyheap::alloc::{purge, set_purge_delay};
use std::alloc::{alloc, alloc_zeroed, dealloc, realloc, Layout};
use std::time::Duration;

#[global_allocator]
static A: pyheap::PoolAlloc = pyheap::PoolAlloc;

const MIB: usize = 1 << 20;
const GIB: usize = 1 << 30;
const PAGE: usize = 4096;
/// The table's capacity (`regions::MAX_REGIONS`).
const MAX_REGIONS: usize = 4096;
/// The largest large block: 33 places, one per region.
const BIG: usize = 32 * MIB;

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 16).unwrap()
}

/// Whether `p` lies in a mapping with the `nh` flag (`MADV_NOHUGEPAGE`): a region's.
fn in_region(p: *const u8) -> bool {
    let a = p as usize;
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut inside = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((lo, hi)) = first.split_once('-') {
            if let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
            {
                inside = lo <= a && a < hi;
                continue;
            }
        }
        if inside {
            if let Some(flags) = line.strip_prefix("VmFlags:") {
                return flags.split_whitespace().any(|f| f == "nh");
            }
        }
    }
    panic!("{p:p} is in no mapping");
}

/// Write `tag ^ page` at the start of every page of the `size` bytes at `p`.
fn fill(p: *mut u8, size: usize, tag: u8) {
    for page in 0..size / PAGE {
        // SAFETY: inside the block (the callers' contract).
        unsafe { p.add(page * PAGE).write(tag ^ page as u8) };
    }
}

/// Check what `fill` wrote in the first `size` bytes at `p`.
fn check(p: *const u8, size: usize, tag: u8) {
    for page in 0..size / PAGE {
        // SAFETY: inside the block (the callers' contract).
        let b = unsafe { *p.add(page * PAGE) };
        assert_eq!(b, tag ^ page as u8, "block {p:p}, page {page}");
    }
}

#[test]
fn blocks_get_mappings_of_their_own_when_the_regions_table_is_full() {
    // Strict overcommit accounting (`vm.overcommit_memory = 2`) counts reserved address
    // space, `MAP_NORESERVE` or not: 256 GiB of it would be refused there.
    let overcommit = std::fs::read_to_string("/proc/sys/vm/overcommit_memory").unwrap_or_default();
    if overcommit.trim() == "2" {
        eprintln!("skipped: strict overcommit accounting (vm.overcommit_memory = 2)");
        return;
    }
    common::wait_for_harness_idle();
    set_purge_delay(Duration::MAX);
    purge();
    let base = counted("start");
    let vm_base = common::vm_size();

    // The table filled: one block of 32 MiB per region (the regions some earlier block of
    // this process made hold one too, or smaller blocks that leave no 33 places free).
    let mut table_blocks = Vec::with_capacity(MAX_REGIONS);
    for _ in 0..MAX_REGIONS {
        // SAFETY: a non-zero size.
        let p = unsafe { alloc(layout(BIG)) };
        assert!(
            !p.is_null(),
            "block {} of 32 MiB refused",
            table_blocks.len()
        );
        table_blocks.push(p as usize);
    }
    let full = counted("the regions' table full");
    assert!(
        common::vm_size() >= vm_base + MAX_REGIONS * 64 * MIB - GIB,
        "{} regions of 64 MiB and the address space grew by {} bytes only",
        MAX_REGIONS,
        common::vm_size() - vm_base
    );
    assert!(in_region(table_blocks[MAX_REGIONS - 1] as *const u8));

    // Beyond it: mappings of their own, which work as any block does.
    let own: Vec<*mut u8> = (0..3)
        .map(|i| {
            // SAFETY: a non-zero size.
            let p = unsafe {
                if i == 1 {
                    alloc_zeroed(layout(BIG))
                } else {
                    alloc(layout(BIG))
                }
            };
            assert!(
                !p.is_null(),
                "a 32 MiB block beyond the full table was refused"
            );
            assert!(
                !in_region(p),
                "block {p:p} is in a region, where the table has none left"
            );
            if i == 1 {
                // SAFETY: the block's bytes, initialized (zeroed).
                let bytes = unsafe { std::slice::from_raw_parts(p, BIG) };
                assert!(bytes.iter().all(|&b| b == 0), "alloc_zeroed not zero");
            }
            fill(p, BIG, i as u8);
            p
        })
        .collect();
    let beyond = counted("three blocks beyond the table");
    assert_eq!(beyond.large_blocks, full.large_blocks + 3);
    for (i, &p) in own.iter().enumerate() {
        check(p, BIG, i as u8);
    }
    // Smaller blocks still find room in the regions' vacant places (31 in each).
    // SAFETY: a non-zero size.
    let small = unsafe { alloc(layout(3 * MIB)) };
    assert!(!small.is_null());
    assert!(
        in_region(small),
        "a 3 MiB block did not go to a region's vacant places"
    );
    fill(small, 3 * MIB, 9);
    // A block of its own shrunk to 20 MiB moves into a region, its bytes with it; one grown
    // from 3 MiB to 32 MiB gets a mapping of its own.
    // SAFETY: allocated with that layout; a non-zero size.
    let shrunk = unsafe { realloc(own[0], layout(BIG), 20 * MIB) };
    assert!(!shrunk.is_null());
    check(shrunk, 20 * MIB, 0);
    assert!(in_region(shrunk));
    // SAFETY: as above.
    let grown = unsafe { realloc(small, layout(3 * MIB), BIG) };
    assert!(!grown.is_null());
    check(grown, 3 * MIB, 9);
    assert!(!in_region(grown));
    fill(grown, BIG, 10);
    counted("after the resizes");
    // SAFETY: each block freed once, with the layout it has now.
    unsafe {
        dealloc(shrunk, layout(20 * MIB));
        dealloc(own[1], layout(BIG));
        dealloc(own[2], layout(BIG));
        dealloc(grown, layout(BIG));
    }
    let freed_own = counted("the blocks beyond the table freed");
    assert_eq!(freed_own.large_blocks, full.large_blocks);

    // The table's blocks freed and purged: the idle regions' address space goes back, all
    // but one region's, and a new block gets a region again.
    for &p in &table_blocks {
        // SAFETY: allocated above with this layout, freed once.
        unsafe { dealloc(p as *mut u8, layout(BIG)) };
    }
    drop(table_blocks);
    purge();
    let purged = counted("all freed and purged");
    assert!(
        common::vm_size() <= vm_base + 2 * GIB,
        "address space {} bytes after purge(), {vm_base} at the start",
        common::vm_size()
    );
    let kept = purged.arenas_mapped.saturating_sub(base.arenas_mapped);
    assert!(
        kept <= 2.max(purged.arenas_mapped / 8) + 2,
        "purge() left {kept} arenas' worth:\n{purged}"
    );
    // SAFETY: a non-zero size.
    let again = unsafe { alloc(layout(BIG)) };
    assert!(!again.is_null());
    assert!(
        in_region(again),
        "the table has room again, but the block got none"
    );
    fill(again, BIG, 3);
    check(again, BIG, 3);
    // SAFETY: allocated above with this layout, freed once.
    unsafe { dealloc(again, layout(BIG)) };
    counted("end");
}
