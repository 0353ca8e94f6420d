//! The test binary's global allocator: `PoolAlloc`, with a count of the blocks the program
//! holds (allocated and not freed: through the global allocator, counted here, and through
//! `PoolAlloc`'s `Allocator` API, counted by the interpreter with `held_through_api`; a block
//! may be allocated through one and resized or freed through the other), so that the end of a program can tell a block
//! the program still holds (std keeps some per thread: a channel's wait context, 48 bytes,
//! lives on in a channel's list of waiters after its thread is gone) from a block that
//! `PoolAlloc` counts as in use though the program freed it.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicIsize, Ordering};

/// `PoolAlloc`, counting live blocks in [`LIVE`].
pub struct Counting;

/// Blocks allocated and not freed yet.
pub static LIVE: AtomicIsize = AtomicIsize::new(0);

/// A block allocated (`1`) or freed (`-1`) through `PoolAlloc`'s `Allocator` API.
pub fn held_through_api(change: isize) {
    LIVE.fetch_add(change, Ordering::Relaxed);
}

/// The blocks the program holds now.
pub fn live() -> isize {
    LIVE.load(Ordering::SeqCst)
}

// SAFETY: every call is forwarded to `PoolAlloc` unchanged; the counts change no block.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        let p = unsafe { pyheap::PoolAlloc.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        let p = unsafe { pyheap::PoolAlloc.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: forwarded contract.
        unsafe { pyheap::PoolAlloc.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // A realloc keeps one block live either way (the old one on failure).
        // SAFETY: forwarded contract.
        unsafe { pyheap::PoolAlloc.realloc(ptr, layout, new_size) }
    }
}
