//! A program that locks its memory (`mlockall(MCL_CURRENT | MCL_FUTURE)`, as real-time
//! programs and programs holding secrets do). Linux then refuses `MADV_DONTNEED` on every
//! mapping (`EINVAL`: the pages are locked), so a purge leaves the bytes where they were. The
//! allocator takes purged memory for zero (a purged place or pool a large block or a fresh
//! arena reuses is not zeroed again), so a refused purge must still leave it zero: else
//! `alloc_zeroed` (`vec![0; n]`, `calloc`) hands out old bytes.
//!
//! The test locks the process, checks that the kernel refuses the purge of a locked page,
//! fills large blocks and small ones with non-zero bytes, frees them, calls `purge()` (every
//! spare place, empty arena and free pool purged), and then checks every byte of zeroed large
//! and small blocks made from that memory. The lock lasts for the process, so this binary
//! holds this one test; without the privilege to lock enough (`RLIMIT_MEMLOCK` without
//! `CAP_IPC_LOCK`) it says so and passes.

#![cfg(target_os = "linux")]

mod common;

use common::{counted, Rng};
use pyheap::alloc::{purge, set_purge_delay};
use std::alloc::{alloc, alloc_zeroed, dealloc, Layout};
use std::time::Duration;

#[global_allocator]
static A: pyheap::PoolAlloc = pyheap::PoolAlloc;

const MIB: usize = 1 << 20;

/// Whether `MADV_DONTNEED` on a locked page of ours is refused (as it is since Linux 2.6).
fn purge_of_locked_page_refused() -> bool {
    // SAFETY: an anonymous mapping of our own, written, advised and unmapped here.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        p.cast::<u8>().write(7);
        let refused = libc::madvise(p, 4096, libc::MADV_DONTNEED) != 0;
        let kept = p.cast::<u8>().read() == 7;
        libc::munmap(p, 4096);
        assert_eq!(refused, kept, "madvise's answer and the page disagree");
        refused
    }
}

#[test]
fn zeroed_blocks_are_zero_when_purges_are_refused() {
    common::wait_for_harness_idle();
    // SAFETY: a plain system call; it changes only whether our pages may be swapped.
    if unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) } != 0 {
        eprintln!(
            "skipped: mlockall failed ({}); RLIMIT_MEMLOCK too low without CAP_IPC_LOCK",
            std::io::Error::last_os_error()
        );
        return;
    }
    if !common::can_lock(256 << 20) {
        // SAFETY: a plain system call.
        unsafe { libc::munlockall() };
        eprintln!(
            "skipped: locked, but 256 MiB more cannot be (RLIMIT_MEMLOCK without CAP_IPC_LOCK)"
        );
        return;
    }
    assert!(
        purge_of_locked_page_refused(),
        "this kernel purges locked pages: the test would not test anything"
    );
    set_purge_delay(Duration::MAX);

    // Large blocks: 40 of 1.5 MiB and 3 of 12 MiB filled with 0xa5, freed, purged.
    let sizes: Vec<usize> = (0..40).map(|_| 1536 * 1024).chain([12 * MIB; 3]).collect();
    let blocks: Vec<(*mut u8, Layout)> = sizes
        .iter()
        .map(|&size| {
            let l = Layout::from_size_align(size, 16).unwrap();
            // SAFETY: a non-zero size; the block is filled whole below.
            let p = unsafe { alloc(l) };
            assert!(!p.is_null());
            // SAFETY: the block's bytes.
            unsafe { p.write_bytes(0xa5, size) };
            (p, l)
        })
        .collect();
    // Small blocks: 100,000 of 64 and 200 bytes, filled with 0x5a.
    let small: Vec<Vec<u8>> = (0..100_000)
        .map(|i| vec![0x5a; if i % 2 == 0 { 64 } else { 200 }])
        .collect();
    for (p, l) in blocks {
        // SAFETY: allocated above with this layout, freed once.
        unsafe { dealloc(p, l) };
    }
    drop(small);
    purge();
    counted("after purge()");

    // Zeroed large blocks of every shape, and zeroed small ones, from that memory.
    let mut rng = Rng::new(0x10c4);
    let mut live = Vec::new();
    for k in 0..60 {
        let size = if k % 3 == 0 {
            rng.range(256 * 1024, 24 * MIB)
        } else {
            rng.range(256 * 1024, 2 * MIB)
        };
        let l = Layout::from_size_align(size, 16).unwrap();
        // SAFETY: a non-zero size.
        let p = unsafe { alloc_zeroed(l) };
        assert!(!p.is_null());
        // SAFETY: a live block of `size` bytes.
        unsafe { common::assert_zeroed(p, size, "large") };
        live.push((p, l));
    }
    let small: Vec<Vec<u8>> = (0..100_000)
        .map(|i| {
            let v = vec![0u8; if i % 2 == 0 { 64 } else { 200 }];
            // SAFETY: the vector's bytes.
            unsafe { common::assert_zeroed(v.as_ptr(), v.len(), "small") };
            v
        })
        .collect();
    drop(small);
    for (p, l) in live {
        // SAFETY: allocated above with this layout, freed once.
        unsafe { dealloc(p, l) };
    }
    counted("all freed");
}
