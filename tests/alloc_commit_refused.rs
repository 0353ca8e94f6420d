//! The OS refuses to make a place of a region accessible. Regions are reserved inaccessible
//! and each place is made readable and writable (`mprotect`) the first time a block or an
//! arena takes it (`src/alloc/arena/regions.rs`), so that memory never used costs nothing in
//! a program that locks its memory. The `mprotect` can fail: the process is out of mappings
//! (`vm.max_map_count`), or, with strict overcommit accounting, out of memory to promise.
//! Then the allocation fails (null), nothing is taken, and every place stays usable: the
//! counts add up, and later blocks, in those places too, work.
//!
//! A seccomp filter refuses every `mprotect` of exactly 5 MiB: a block whose run needs five
//! fresh places made accessible at once fails, others go through; then the same on three
//! threads at once. The filter lasts for the process, so this binary holds this one test.

#![cfg(target_os = "linux")]

mod common;
#[path = "common/seccomp_filter.rs"]
mod seccomp_filter;

use common::{counted, Rng};
use pyheap::alloc::{purge, set_purge_delay};
use seccomp_filter::{layout, refuse_mprotect_of, Big};
use std::alloc::{alloc, alloc_zeroed, dealloc};
use std::time::Duration;

#[global_allocator]
static A: pyheap::PoolAlloc = pyheap::PoolAlloc;

const MIB: usize = 1 << 20;
/// A block of five places (4 MiB of pools and more: the head keeps its metadata pool).
const FIVE_PLACES: usize = 4 * MIB + MIB / 2;

/// Whether an `mprotect` of `len` bytes on a mapping of our own goes through.
fn mprotect_works(len: usize) -> bool {
    // SAFETY: an anonymous mapping of our own, unmapped below.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        let ok = libc::mprotect(p, len, libc::PROT_READ | libc::PROT_WRITE) == 0;
        libc::munmap(p, len);
        ok
    }
}

/// A size for the churns: a quarter of them five places or a little more (a fresh run of
/// five is refused), the rest 256 KiB to 12 MiB.
fn churn_size(rng: &mut Rng) -> usize {
    match rng.below(4) {
        0 => FIVE_PLACES + rng.below(MIB / 4),
        1 => rng.range(256 * 1024, MIB),
        _ => rng.range(MIB, 12 * MIB),
    }
}

/// `alloc` (or `alloc_zeroed`) of `size` bytes: a tagged block, or `None` when refused.
fn try_big(size: usize, tag: u8, zeroed: bool) -> Option<Big> {
    // SAFETY: a non-zero size.
    let ptr = unsafe {
        if zeroed {
            alloc_zeroed(layout(size))
        } else {
            alloc(layout(size))
        }
    };
    if ptr.is_null() {
        return None;
    }
    if zeroed {
        // SAFETY: a live block of `size` bytes.
        unsafe { common::assert_zeroed(ptr, size, "zeroed block") };
    }
    let b = Big { ptr, size, tag };
    b.write(0);
    Some(b)
}

#[test]
fn a_refused_commit_fails_the_block_and_takes_no_place() {
    common::wait_for_harness_idle();
    refuse_mprotect_of(5 * MIB as u32);
    assert!(
        !mprotect_works(5 * MIB),
        "the filter let a 5 MiB mprotect through"
    );
    assert!(
        mprotect_works(4 * MIB),
        "the filter refused a 4 MiB mprotect"
    );
    set_purge_delay(Duration::MAX);
    let start = counted("start");
    assert_eq!(
        start.large_blocks, 0,
        "a large block before the test:\n{start}"
    );

    // The first large block reserves a region; its five places are all fresh: one commit of
    // 5 MiB, refused.
    assert!(
        try_big(FIVE_PLACES, 1, false).is_none(),
        "a block of five fresh places was made although their commit was refused"
    );
    let s = counted("after the refusal");
    assert_eq!(s.large_blocks, 0, "{s}");
    assert_eq!(s.arenas_mapped, start.arenas_mapped, "{s}");

    // Two places (a commit of 2 MiB) go through; five fresh ones after them still do not.
    let two = try_big(MIB + MIB / 2, 2, true).expect("a block of two places");
    assert!(try_big(FIVE_PLACES, 3, false).is_none());
    assert_eq!(counted("two places").large_blocks, 1);
    // Freed (and out of the thread's large-block cache: `purge`), its two places stay
    // accessible, purged: the next five-place block takes them (the lowest room) and three
    // fresh ones, a 3 MiB commit.
    drop(two);
    purge();
    let five = try_big(FIVE_PLACES, 4, true).expect("a block over two accessible places");
    drop(five);

    // A random churn of every size: five fresh places in a run fail, everything else works,
    // and every block keeps its bytes.
    let mut rng = Rng::new(0xc0_77);
    let mut live: Vec<Big> = Vec::new();
    let (mut made, mut refused) = (0, 0);
    for i in 0..600 {
        if live.len() > 12 || (!live.is_empty() && rng.below(3) == 0) {
            let j = rng.below(live.len());
            live.swap_remove(j);
        }
        match try_big(churn_size(&mut rng), (i % 251) as u8, rng.below(4) == 0) {
            Some(b) => {
                made += 1;
                live.push(b);
            }
            None => refused += 1,
        }
        if i % 50 == 0 {
            // SAFETY: a fresh, small layout.
            unsafe {
                let p = alloc(layout(100));
                assert!(!p.is_null());
                dealloc(p, layout(100));
            }
            counted("churn");
        }
    }
    eprintln!("{made} blocks made, {refused} refused");
    assert!(made > 400, "{made} made, {refused} refused");
    let s = counted("churn, blocks live");
    assert_eq!(s.large_blocks, live.len(), "{s}");
    drop(live);

    // The same churn on three threads at once: refused commits race with other threads'
    // blocks being made and freed in the same regions.
    let threads: Vec<_> = (0..3u64)
        .map(|t| {
            std::thread::spawn(move || {
                let mut rng = Rng::new(0xc0_78 + t);
                let mut live: Vec<Big> = Vec::new();
                let mut made = 0;
                for i in 0..200 {
                    if live.len() > 6 || (!live.is_empty() && rng.below(3) == 0) {
                        let j = rng.below(live.len());
                        live.swap_remove(j);
                    }
                    if let Some(b) =
                        try_big(churn_size(&mut rng), (i % 251) as u8, rng.below(4) == 0)
                    {
                        made += 1;
                        live.push(b);
                    }
                }
                eprintln!("thread {t}: {made} blocks made, {} refused", 200 - made);
                made
            })
        })
        .collect();
    for t in threads {
        let made = t.join().unwrap();
        assert!(made > 100, "a thread made {made} of 200 blocks");
    }
    purge();
    let s = counted("end");
    assert_eq!(s.large_blocks, 0, "{s}");
    assert_eq!(s.large_bytes, 0, "{s}");
}
