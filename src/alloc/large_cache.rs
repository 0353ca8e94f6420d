//! A thread's last freed large block (`arena/large_blocks.rs`), kept for its next large request
//! of the same shape.
//!
//! A program that allocates and frees a buffer of a few hundred KiB in a loop (a request
//! body, a scratch `Vec`) would otherwise take the arena lock twice per round and walk
//! arena and pool headers: about 3,500 instructions and 0.5-0.9 µs per round, against glibc's
//! 40-200 ns for the same loop (BENCHMARKS.md "Session 27"). With the block kept, the next
//! request of its shape takes it back without a lock.
//!
//! A thread keeps only a block it allocated itself (the heap is recorded in the block's first
//! pool header, `ArenaManager::set_large_owner`): a block handed to another thread and freed
//! there goes back to the arenas, where the next block of the thread that makes them can take
//! its place (the `rayon` workload makes its tables on one worker and frees them on another;
//! kept by the freeing threads, they peaked at 13.8-15.0 MiB, against 9.4-9.7 not kept).
//!
//! The block stays the thread's only while the thread does not need its memory for anything
//! else: it goes back to the arenas (`ArenaManager::free_large_block`) when the thread's heap
//! is about to take a new pool (`Heap::alloc_slow`: its pools may then come from the block's,
//! which is what a `HashMap` that outgrew its table needs), when the thread asks for a large
//! block of another shape or frees another one, when it exits, and at [`purge`](super::purge).
//! Blocks above [`LARGE_CACHE_MAX`] are not kept: at most that much per thread is out of the
//! other threads' reach. `stats()` reports the bytes kept (`large_cached_bytes`).

use crate::sync::unmodelled::{AtomicUsize, Ordering};
use core::cell::Cell;
use core::ptr;

/// The largest block a thread keeps.
#[cfg_attr(any(loom, not(target_os = "linux")), allow(dead_code))]
pub(crate) const LARGE_CACHE_MAX: usize = 4 << 20;

/// # Invariants
/// `block` is null, or a large block this heap allocated and the program freed, of `size` bytes
/// (its size as last allocated or resized), which no one else refers to: the holder of the
/// heap owns it. `size`
/// is 0 when `block` is null. Only the heap's holder reads or writes `block`; `size` is also
/// read by `stats()` from any thread (hence atomic).
pub(crate) struct LargeCache {
    block: Cell<*mut u8>,
    size: AtomicUsize,
}

#[cfg_attr(any(loom, not(target_os = "linux")), allow(dead_code))]
impl LargeCache {
    crate::sync::maybe_const_fn! {
        pub(crate) fn new() -> LargeCache {
            LargeCache {
                block: Cell::new(ptr::null_mut()),
                size: AtomicUsize::new(0),
            }
        }
    }

    /// The block kept and its size, or null and 0. Holder only.
    pub(crate) fn peek(&self) -> (*mut u8, usize) {
        (self.block.get(), self.size.load(Ordering::Relaxed))
    }

    /// Take the block kept (the caller owns it now), or null and 0. Holder only.
    pub(crate) fn take(&self) -> (*mut u8, usize) {
        let kept = self.peek();
        self.block.set(ptr::null_mut());
        self.size.store(0, Ordering::Relaxed);
        kept
    }

    /// Keep `block` of `size` bytes, which the caller gives up; the cache must be empty.
    /// Holder only.
    pub(crate) fn put(&self, block: *mut u8, size: usize) {
        debug_assert!(self.block.get().is_null());
        self.block.set(block);
        self.size.store(size, Ordering::Relaxed);
    }

    /// Bytes kept: for `stats()`, from any thread.
    pub(crate) fn bytes(&self) -> usize {
        self.size.load(Ordering::Relaxed)
    }
}
