//! Large blocks when the kernel refuses some page moves and allows others: `fill_purged`
//! moves the pages of spare places into a new block's purged places in runs, one `mremap`
//! each; a refusal (here: every move of exactly one place, as a kernel out of mappings might
//! refuse one call and take the next) must leave the sources it did not move marked as
//! holding their old bytes. A source counted as moved when it was not would be taken later
//! as a purged place, zero, and `alloc_zeroed` would hand out its old bytes.
//!
//! The test refuses 1 MiB moves with `MREMAP_DONTUNMAP` (a seccomp filter, as in
//! `alloc_without_dontunmap`) and checks that 1 MiB moves fail and 2 MiB moves work. Then, in
//! 24 rounds: 40-120 blocks of 256 KiB to 3 MiB, a random half freed (spare places in runs of
//! every length, the highest beyond the limit purged), then 2-6 blocks of 3-6 MiB, which find
//! no resident room and get spare places moved into their purged ones, some moves refused;
//! then one resize and the rest freed. A third of the blocks are zeroed, every byte checked;
//! every block's tags are checked before it is resized or freed, and the arena counts must
//! add up after every round. The exact bad sequence (a stretch refused, a later stretch of
//! the same source run moved) showed up about once in 100 such rounds, too rarely for this
//! test to catch it alone: `move_into_purged_reports_the_sources_it_moved_as_a_prefix`
//! (a unit test in `large_blocks.rs`) checks the rule directly. This one checks that partial
//! refusals, whatever they hit, leave every block's bytes right and the counts exact; then
//! it runs 8 such rounds on each of three threads at once, so that refused and accepted
//! moves of different threads interleave, and checks the counts at the end.

#![cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]

mod common;
#[path = "common/seccomp_filter.rs"]
mod seccomp_filter;

use common::{counted, Rng};
use pyheap::alloc::{purge, set_purge_delay, ARENA_SIZE};
use seccomp_filter::{dontunmap_works, refuse_mremap_dontunmap, Big};
use std::time::Duration;

#[global_allocator]
static A: pyheap::PoolAlloc = pyheap::PoolAlloc;

const MIB: usize = 1 << 20;

#[test]
fn refused_one_place_moves_leave_their_sources_resident_and_zeroed_blocks_zero() {
    common::wait_for_harness_idle();
    refuse_mremap_dontunmap(Some(ARENA_SIZE as u32));
    assert!(
        !dontunmap_works(ARENA_SIZE),
        "the filter let a one-place move through"
    );
    assert!(
        dontunmap_works(2 * ARENA_SIZE),
        "the filter refused a two-place move"
    );
    set_purge_delay(Duration::MAX);
    purge();
    counted("start");

    // Rounds: many small blocks, a random half of them freed (spare places in runs of every
    // length, the highest beyond the limit purged), then big blocks, which find no resident
    // room that fits and get the spare places moved into their purged ones; then the rest
    // freed. A third of the blocks zeroed, every byte checked.
    let mut rng = Rng::new(0xf111);
    for r in 0..24 {
        round(&mut rng, r);
        counted("after a round");
    }
    // The same on three threads at once: fills race with frees and with other fills, their
    // moves refused or not on each thread.
    let threads: Vec<_> = (0..3u64)
        .map(|t| {
            std::thread::spawn(move || {
                let mut rng = Rng::new(0x7f11 + t);
                for r in 0..8 {
                    round(&mut rng, r);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    counted("all freed");
    purge();
    counted("after purge()");
}

/// One round (see the test): blocks made, half freed, big blocks made over the spare places,
/// one resized, all freed; every block checked.
fn round(rng: &mut Rng, round: usize) {
    let mut live: Vec<Big> = Vec::new();
    let make = |rng: &mut Rng, size: usize, live: &mut Vec<Big>| {
        let tag = (live.len() % 251) as u8;
        live.push(if rng.below(3) == 0 {
            Big::zeroed(size, tag)
        } else {
            Big::new(size, tag)
        });
    };
    for _ in 0..rng.range(40, 120) {
        let size = rng.range(256 * 1024, 3 * MIB);
        make(rng, size, &mut live);
    }
    for _ in 0..live.len() / 2 {
        let i = rng.below(live.len());
        live.swap_remove(i);
    }
    for _ in 0..rng.range(2, 6) {
        let size = rng.range(3 * MIB, 6 * MIB);
        make(rng, size, &mut live);
    }
    if round % 2 == 1 {
        let i = rng.below(live.len());
        let size = rng.range(256 * 1024, 12 * MIB);
        live[i].resize(size);
    }
    drop(live);
}
