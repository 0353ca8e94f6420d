//! The fallback allocator: where the requests the pools do not serve go (larger than
//! [`SMALL_REQUEST_THRESHOLD`](super::SMALL_REQUEST_THRESHOLD), aligned above
//! [`BLOCK_ALIGN`](super::BLOCK_ALIGN), small ones when no arena can be mapped or the
//! thread's heap is gone, and every request off Unix), and the counters `stats()` reports
//! for it.
//!
//! The allocator's paths are generic over [`Fallback`], a handle passed by value: `System`
//! itself for [`PoolAlloc`](super::PoolAlloc) (a zero-sized value, so that its paths take no
//! extra argument and compile to what they were before the fallback could be chosen), and
//! `&F` for [`PoolAllocWith<F>`](super::PoolAllocWith).
//!
//! `PoolAlloc`'s own fallback (`System`) serves some of them itself, by their layout alone:
//! medium requests from its medium cache and spans (`medium_cache.rs`, `medium_spans.rs`), and
//! on Linux large ones (256 KiB to 32 MiB) from the arenas (`arena/large_blocks.rs`).
//!
//! A block the fallback returns is freed by the same fallback with the layout it was
//! allocated with: the user's layout for a large request, `(class block size, 16)` for a
//! small request the pools could not serve (whatever small size it is freed or resized with
//! within its class).

use super::glibc_tuning;
use super::global::GLOBAL;
use super::heap::{FallbackCounters, Heap};
#[cfg(unix)]
use super::medium_cache;
#[cfg(unix)]
use super::medium_spans;
use super::pool::Pool;
use super::pool_alloc::{generic_entry, system_entry};
use core::alloc::{GlobalAlloc, Layout};
use std::alloc::System;

/// The fallback allocator as the paths see it: `GlobalAlloc`'s operations on a `Copy` handle.
///
/// # Safety
/// The operations keep `GlobalAlloc`'s contract of the allocator the handle stands for.
pub(crate) unsafe trait Fallback: Copy {
    /// # Safety
    /// `GlobalAlloc::alloc`'s contract.
    unsafe fn alloc(self, layout: Layout) -> *mut u8;
    /// # Safety
    /// `GlobalAlloc::alloc_zeroed`'s contract.
    unsafe fn alloc_zeroed(self, layout: Layout) -> *mut u8;
    /// # Safety
    /// `GlobalAlloc::dealloc`'s contract.
    unsafe fn dealloc(self, ptr: *mut u8, layout: Layout);
    /// # Safety
    /// `GlobalAlloc::realloc`'s contract.
    unsafe fn realloc(self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8;

    /// `alloc`, for a caller that already looked up `heap`, the calling thread's bound heap:
    /// saves looking it up again.
    ///
    /// # Safety
    /// `GlobalAlloc::alloc`'s contract; `heap` is the calling thread's bound heap, or null.
    #[inline(always)]
    unsafe fn alloc_in(self, _heap: *mut Heap, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe { self.alloc(layout) }
    }
    /// A block for `layout` that `heap` keeps for reuse (a medium block of `PoolAlloc`'s own
    /// fallback, from its medium cache), or null: then `alloc_in` does the rest. Calls
    /// nothing, so that `PoolAlloc::alloc_large` can serve a cache hit without a stack frame.
    ///
    /// # Safety
    /// `layout` has a non-zero size; `heap` is the calling thread's bound heap, not null.
    #[inline(always)]
    unsafe fn alloc_cached(self, _heap: *mut Heap, _layout: Layout) -> *mut u8 {
        core::ptr::null_mut()
    }
    /// `dealloc`, for a caller that already looked up `heap`, the calling thread's bound heap.
    ///
    /// # Safety
    /// `GlobalAlloc::dealloc`'s contract; `heap` is the calling thread's bound heap, or null.
    #[inline(always)]
    unsafe fn dealloc_in(self, _heap: *mut Heap, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { self.dealloc(ptr, layout) }
    }

    // The out-of-line entry points of `PoolAlloc`'s inlined fast paths, for this fallback
    // (`pool_alloc.rs`, `entry_points!`): generic by default, plain functions of this crate
    // for `System`.

    /// # Safety
    /// `layout` has a non-zero size.
    #[inline(always)]
    unsafe fn alloc_cold(self, layout: Layout, zeroed: bool) -> *mut u8 {
        generic_entry::alloc_cold(self, layout, zeroed)
    }
    /// # Safety
    /// As for `PoolAlloc::dealloc_large_body`.
    #[inline(always)]
    unsafe fn dealloc_large(self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { generic_entry::dealloc_large(self, ptr, layout) }
    }
    /// # Safety
    /// As for `PoolAlloc::dealloc_flags_set_body`.
    #[inline(always)]
    unsafe fn dealloc_flags_set(self, ptr: *mut u8, layout: Layout, flags: u8) {
        // SAFETY: forwarded contract.
        unsafe { generic_entry::dealloc_flags_set(self, ptr, layout, flags) }
    }
    /// # Safety
    /// As for `PoolAlloc::dealloc_pool_miss_body`.
    #[inline(always)]
    unsafe fn dealloc_pool_miss(
        self,
        ptr: *mut u8,
        layout: Layout,
        heap: *mut Heap,
        pool: *mut Pool,
    ) {
        // SAFETY: forwarded contract.
        unsafe { generic_entry::dealloc_pool_miss(self, ptr, layout, heap, pool) }
    }
}

/// The alignment `malloc` gives every request of at least that many bytes: two words, as
/// glibc, musl and the BSDs give (`std`'s `System` assumes as much or more).
#[cfg(unix)]
const MALLOC_ALIGN: usize = 2 * core::mem::size_of::<usize>();

// SAFETY: forwards to `System`; on Unix a request `System` would give to `malloc` goes to
// `malloc` directly (the same call, with `System`'s own test), and a free to `free` (what
// `System::dealloc` is there). A medium request (`medium_cache.rs`) takes a cached block of
// its bin, else a block of a medium span for the bins up to 4 KiB (`medium_spans.rs`: whether
// a bin is a span bin depends on the bin alone, so every block of it, allocated or freed, on
// any thread, is a span block), else asks `malloc` for its bin's size; a medium free goes to
// the calling thread's cache when it has room, else to its span or to `free`; `realloc` moves
// a span block (or a block into a span bin) by allocating, copying and freeing, and keeps
// every other medium block at least its bin's size (the cache's invariant), so blocks of the
// cache and of `malloc` mix freely. Span blocks and `malloc`'s are aligned to 16
// ([`MALLOC_ALIGN`]) at these sizes.
unsafe impl Fallback for System {
    #[inline(always)]
    unsafe fn alloc(self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract; the calling thread's bound heap or null.
        unsafe { self.alloc_in(super::thread::bound_heap(), layout) }
    }
    #[inline(always)]
    unsafe fn alloc_zeroed(self, layout: Layout) -> *mut u8 {
        if is_large(layout) {
            return large_alloc(super::thread::bound_heap(), layout.size(), true);
        }
        glibc_tuning::ensure();
        #[cfg(unix)]
        if let Some(bin) = medium_bin(layout) {
            return medium_alloc(super::thread::bound_heap(), bin, layout.size());
        }
        // SAFETY: forwarded contract.
        unsafe { GlobalAlloc::alloc_zeroed(&System, layout) }
    }
    #[inline(always)]
    unsafe fn dealloc(self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract; the calling thread's bound heap or null.
        unsafe { self.dealloc_in(super::thread::bound_heap(), ptr, layout) }
    }
    #[inline(always)]
    unsafe fn realloc(self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `realloc`'s contract makes this a valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if is_large(layout) || is_large(new_layout) {
            // SAFETY: forwarded contract.
            return unsafe { large_realloc(self, ptr, layout, new_size) };
        }
        #[cfg(unix)]
        if layout.align() <= MALLOC_ALIGN && layout.align() <= new_size {
            let old_bin = medium_cache::bin_of(layout.size());
            let new_bin = medium_cache::bin_of(new_size);
            if old_bin.is_some() || new_bin.is_some() {
                if old_bin == new_bin {
                    // The block holds the bin's size already.
                    return ptr;
                }
                if old_bin.is_some_and(medium_spans::serves)
                    || new_bin.is_some_and(medium_spans::serves)
                {
                    // A span block on either side: no `realloc` can move it; a new block,
                    // the bytes, and the old block given back.
                    // SAFETY: forwarded contract (`new_size` is non-zero and, rounded up to
                    // the alignment, fits `isize`).
                    return unsafe { move_block(self, ptr, layout, new_size) };
                }
                // SAFETY: a `malloc` block (aligned to `MALLOC_ALIGN`, so `malloc`'s: see
                // `alloc_in`); a non-zero size; `malloc`'s alignment covers `align`. Asked for
                // the new bin's size, so a medium block stays at least its bin's size.
                return unsafe { libc::realloc(ptr.cast(), medium_cache::request_size(new_size)) }
                    .cast();
            }
        }
        // SAFETY: forwarded contract.
        unsafe { GlobalAlloc::realloc(&System, ptr, layout, new_size) }
    }
    #[inline(always)]
    unsafe fn alloc_cached(self, heap: *mut Heap, layout: Layout) -> *mut u8 {
        #[cfg(unix)]
        if let Some(bin) = medium_bin(layout) {
            // SAFETY: the calling thread holds its bound heap (caller's contract). A block of
            // `bin` is at least `bin_size(bin)` bytes, at least the request, aligned to 16
            // (`MediumCache`'s invariants), which `medium_bin` found enough for `layout`.
            return unsafe { (*heap).medium.take(bin) };
        }
        #[cfg(not(unix))]
        let _ = (heap, layout);
        core::ptr::null_mut()
    }
    #[inline(always)]
    unsafe fn alloc_in(self, heap: *mut Heap, layout: Layout) -> *mut u8 {
        glibc_tuning::ensure();
        #[cfg(not(unix))]
        let _ = heap;
        #[cfg(unix)]
        {
            if let Some(bin) = medium_bin(layout) {
                return medium_alloc(heap, bin, 0);
            }
            if is_large(layout) {
                return large_alloc(heap, layout.size(), false);
            }
            if layout.align() <= MALLOC_ALIGN && layout.align() <= layout.size() {
                // SAFETY: any size; null on failure. Aligned to `MALLOC_ALIGN` or to the
                // size's largest power of two, either at least `align`.
                return unsafe { libc::malloc(layout.size()) }.cast();
            }
        }
        // SAFETY: forwarded contract.
        unsafe { system_alloc(layout) }
    }
    #[inline(always)]
    unsafe fn dealloc_in(self, heap: *mut Heap, ptr: *mut u8, layout: Layout) {
        #[cfg(not(unix))]
        let _ = heap;
        #[cfg(unix)]
        if let Some(bin) = medium_bin(layout) {
            // SAFETY: a medium block of this fallback, allocated or resized to a size of `bin`
            // (caller's contract): `malloc`'s, of at least `bin_size(bin)` bytes; `heap` is
            // the calling thread's bound heap or null (caller's contract).
            return unsafe { medium_free(heap, bin, ptr) };
        }
        if is_large(layout) {
            // SAFETY: a large block (its layout says so, and whether a block is large follows
            // from its layout alone), given up (caller's contract).
            return unsafe { large_free(heap, ptr, layout.size()) };
        }
        // SAFETY: forwarded contract.
        unsafe { GlobalAlloc::dealloc(&System, ptr, layout) }
    }

    #[inline(always)]
    unsafe fn alloc_cold(self, layout: Layout, zeroed: bool) -> *mut u8 {
        system_entry::alloc_cold(self, layout, zeroed)
    }
    #[inline(always)]
    unsafe fn dealloc_large(self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { system_entry::dealloc_large(self, ptr, layout) }
    }
    /// # Safety
    /// As for `PoolAlloc::dealloc_flags_set_body`.
    #[inline(always)]
    unsafe fn dealloc_flags_set(self, ptr: *mut u8, layout: Layout, flags: u8) {
        // SAFETY: forwarded contract.
        unsafe { system_entry::dealloc_flags_set(self, ptr, layout, flags) }
    }
    /// # Safety
    /// As for `PoolAlloc::dealloc_pool_miss_body`.
    #[inline(always)]
    unsafe fn dealloc_pool_miss(
        self,
        ptr: *mut u8,
        layout: Layout,
        heap: *mut Heap,
        pool: *mut Pool,
    ) {
        // SAFETY: forwarded contract.
        unsafe { system_entry::dealloc_pool_miss(self, ptr, layout, heap, pool) }
    }
}

/// Whether `PoolAlloc`'s own fallback serves `layout` as a large block, carved from the arenas
/// (`arena/large_blocks.rs`): a size of `LARGE_MIN..=LARGE_MAX`, an alignment of at most a
/// pool's, on Linux. It depends on the layout alone, so every block allocated, resized or
/// freed with a large layout is a large block, on any thread.
#[inline(always)]
fn is_large(layout: Layout) -> bool {
    #[cfg(all(target_os = "linux", not(loom), not(miri)))]
    {
        use super::arena::large_blocks::{LARGE_ALIGN, LARGE_MAX, LARGE_MIN};
        layout.size().wrapping_sub(LARGE_MIN) <= LARGE_MAX - LARGE_MIN
            && layout.align() <= LARGE_ALIGN
    }
    #[cfg(not(all(target_os = "linux", not(loom), not(miri))))]
    {
        let _ = layout;
        false
    }
}

/// A large block of `size` bytes (`is_large`), zeroed if asked; null when the OS refuses.
/// `heap` is the calling thread's bound heap, or null. A block the heap keeps of the same
/// shape is taken back without a lock (`large_cache.rs`); otherwise the arenas serve it
/// (`ArenaManager::alloc_large_block`), after the heap gave back its empty current pools
/// (remembered: taking them again leaves the kept blocks kept), and the blocks it keeps of
/// other shapes stay kept: a program whose sizes cycle finds each kept.
#[inline(never)]
fn large_alloc(heap: *mut Heap, size: usize, zeroed: bool) -> *mut u8 {
    #[cfg(all(target_os = "linux", not(loom), not(miri)))]
    {
        use super::arena::large_blocks::shape;
        if !heap.is_null() {
            // SAFETY: the calling thread holds its bound heap (caller's contract).
            let h = unsafe { &*heap };
            let want = shape(size);
            for i in 0..h.large.len() {
                let (kept, kept_size) = h.large.get(i);
                if shape(kept_size) == want {
                    h.large.remove(i);
                    h.large
                        .note_served(kept, size, GLOBAL.arenas.foreign_frees.now());
                    if zeroed {
                        // SAFETY: the block spans at least `size` bytes (its shape is the
                        // request's), ours now.
                        unsafe { kept.write_bytes(0, size) };
                    }
                    return kept;
                }
            }
        }
        // The arena lock is taken: the fork handlers must exist first (`fork.rs`).
        super::fork::register_once();
        let block = GLOBAL
            .arenas
            .alloc_large_block(&GLOBAL.map, size, zeroed, || {
                if !heap.is_null() {
                    // SAFETY: the calling thread holds its bound heap (caller's contract).
                    let h = unsafe { &*heap };
                    h.large.note_idle_pools(h.release_empty_pools());
                }
            });
        if !block.is_null() && !heap.is_null() {
            // SAFETY: a large block of `size` bytes, just made, ours; `heap` is the caller's.
            unsafe {
                GLOBAL
                    .arenas
                    .set_large_owner(block, size, (*heap).as_owner())
            };
        }
        block
    }
    #[cfg(not(all(target_os = "linux", not(loom), not(miri))))]
    {
        let _ = (heap, size, zeroed);
        unreachable!("large blocks are served only on Linux")
    }
}

/// Give back the large block `ptr` of `size` bytes: kept by `heap` (the calling thread's bound
/// heap, or null) for its next request of the shape if that heap allocated it and it is at
/// most `LARGE_CACHE_MAX` (the blocks it kept longest go back to the arenas if it keeps too
/// many or too much with this one: `LargeCache::has_room_for`), else to the
/// arenas at once, where any thread's next large block can take its place. (Kept by the
/// thread that frees it, a block handed between threads is out of reach of the one that
/// needs the next: the `rayon` workload, whose tables are made on one worker and freed on
/// another, peaked at 13.8-15.0 MiB that way, against 9.4-9.7 without keeping.) Nor is it kept
/// while the thread stopped keeping, its kept blocks having gone back unused
/// (`LargeCache::keeps_next`). Aborts with a message if
/// `ptr` is not a large block of that size's shape, before anything is kept or written: under
/// the arena lock (`check_large_block`), except for a block this heap's keep served whose
/// record vouches for it (`ForeignFrees` in `large_cache.rs`), whose free takes no lock and no
/// locked instruction at all.
///
/// # Safety
/// `ptr` is a live block from [`large_alloc`] (or resized by [`large_realloc`]) whose size
/// is now `size`; the caller gives it up.
#[inline(never)]
unsafe fn large_free(heap: *mut Heap, ptr: *mut u8, size: usize) {
    #[cfg(all(target_os = "linux", not(loom), not(miri)))]
    {
        use super::arena::large_blocks::shape;
        use super::large_cache::LARGE_CACHE_MAX;
        // SAFETY: the calling thread holds its bound heap, if any (caller's contract).
        let Some(h) = (unsafe { heap.as_ref() }) else {
            // SAFETY: forwarded contract.
            return unsafe {
                GLOBAL
                    .arenas
                    .free_large_block(&GLOBAL.map, ptr, size, core::ptr::null_mut())
            };
        };
        // Forgotten at every free, whatever happens next (`ForeignFrees`' invariant).
        let served = h.large.take_served(ptr);
        if size > LARGE_CACHE_MAX {
            // SAFETY: forwarded contract.
            return unsafe {
                GLOBAL
                    .arenas
                    .free_large_block(&GLOBAL.map, ptr, size, h.as_owner())
            };
        }
        if h.large.holds(ptr) {
            // Kept, so freed before (a kept block is a large block of this heap).
            super::os::fatal("pyheap: a large block was freed twice");
        }
        // A block this heap served, of this shape, with no foreign free since, is live and
        // ours (`ForeignFrees`' invariant): kept without the locked check.
        let vouched = GLOBAL
            .arenas
            .foreign_frees
            .vouches(served, |was| shape(was) == shape(size));
        let keep = h.large.keeps_next()
            && (vouched || {
                // SAFETY: `ptr` is meant as a large block of `size` bytes (caller's contract);
                // the owner is read once it was checked to be one.
                unsafe {
                    GLOBAL.arenas.check_large_block(&GLOBAL.map, ptr, size);
                    GLOBAL.arenas.large_owner(ptr, size) == h.as_owner()
                }
            });
        if !keep {
            // SAFETY: forwarded contract.
            return unsafe {
                GLOBAL
                    .arenas
                    .free_large_block(&GLOBAL.map, ptr, size, h.as_owner())
            };
        }
        // Room for it: the blocks kept longest go back first, unused.
        while !h.large.has_room_for(size) {
            h.release_kept_block(h.large.len() - 1);
            h.large.note_evicted();
        }
        // As `alloc_large_block` does: a program that frees a large structure frees its
        // small blocks too, and their empty current pools would keep arenas from being
        // empty for the next large blocks (which this one, kept, may not serve). Taking
        // them again is no growth: it leaves the kept blocks kept (`large_cache.rs`). Not
        // for a block the cache served: a loop that reuses its blocks would give its pools
        // back and take them again, under the arena lock, every round.
        if served.is_none() {
            h.large.note_idle_pools(h.release_empty_pools());
        }
        h.large.put(ptr, size);
    }
    #[cfg(not(all(target_os = "linux", not(loom), not(miri))))]
    {
        let _ = (heap, ptr, size);
        unreachable!("large blocks are served only on Linux")
    }
}

/// `realloc` when the old layout or the new one is large: in place when both are large blocks
/// of the same shape (they span the same pools), else, between large blocks, without a
/// second copy resident where that can be done (`ArenaManager::realloc_large_block`), else a
/// move (`move_block`: the new block from wherever its layout goes, the old one back to
/// wherever its layout says).
///
/// # Safety
/// `GlobalAlloc::realloc`'s contract.
#[cold]
unsafe fn large_realloc(f: System, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
    #[cfg(all(target_os = "linux", not(loom), not(miri)))]
    {
        use super::arena::large_blocks::shape;
        // SAFETY: `realloc`'s contract makes this a valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if is_large(layout) && is_large(new_layout) {
            if shape(layout.size()) == shape(new_size) {
                GLOBAL
                    .arenas
                    .counters
                    .large_bytes
                    .add_shared((new_size as u64).wrapping_sub(layout.size() as u64));
                return ptr;
            }
            let heap = super::thread::bound_heap();
            let freer = if heap.is_null() {
                core::ptr::null_mut()
            } else {
                // SAFETY: the calling thread holds its bound heap.
                let h = unsafe { &*heap };
                // The block ends its life as `ptr` of that shape (`ForeignFrees`' invariant).
                let _ = h.large.take_served(ptr);
                h.as_owner()
            };
            // SAFETY: a live large block of `layout.size()` bytes (its layout says so), the
            // caller's; `new_size` large, of another shape; `freer` the caller's heap.
            let q = unsafe {
                GLOBAL
                    .arenas
                    .realloc_large_block(&GLOBAL.map, ptr, layout.size(), new_size, freer)
            };
            if !q.is_null() {
                return q;
            }
        }
    }
    // SAFETY: forwarded contract.
    unsafe { move_block(f, ptr, layout, new_size) }
}

/// `realloc` by allocating, copying and freeing, through `f`'s `alloc` and `dealloc`.
///
/// # Safety
/// `GlobalAlloc::realloc`'s contract.
#[inline(never)]
unsafe fn move_block(f: System, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
    // SAFETY: `realloc`'s contract makes this a valid layout.
    let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
    // SAFETY: a non-zero size (`realloc`'s contract).
    let q = unsafe { Fallback::alloc(f, new_layout) };
    if !q.is_null() {
        // SAFETY: both blocks hold at least the smaller size; distinct blocks; the old one is
        // the caller's, allocated with `layout`.
        unsafe {
            core::ptr::copy_nonoverlapping(ptr, q, layout.size().min(new_size));
            Fallback::dealloc(f, ptr, layout);
        }
    }
    q
}

/// `System::alloc` out of line (its over-aligned path needs a stack slot, which the callers'
/// common case should not pay for).
///
/// # Safety
/// `GlobalAlloc::alloc`'s contract.
#[cold]
#[inline(never)]
unsafe fn system_alloc(layout: Layout) -> *mut u8 {
    // SAFETY: forwarded contract.
    unsafe { GlobalAlloc::alloc(&System, layout) }
}

// SAFETY: forwards to `F`.
unsafe impl<F: GlobalAlloc> Fallback for &F {
    #[inline(always)]
    unsafe fn alloc(self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe { F::alloc(self, layout) }
    }
    #[inline(always)]
    unsafe fn alloc_zeroed(self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe { F::alloc_zeroed(self, layout) }
    }
    #[inline(always)]
    unsafe fn dealloc(self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { F::dealloc(self, ptr, layout) }
    }
    #[inline(always)]
    unsafe fn realloc(self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe { F::realloc(self, ptr, layout, new_size) }
    }
}

/// The counters to charge a fallback request to: the heap's (plain counters, written by
/// its holder only), or the shared ones (atomic read-modify-writes) for a thread without a
/// heap.
#[inline(always)]
fn counters(heap: *mut Heap) -> (&'static FallbackCounters, bool) {
    if heap.is_null() {
        (&GLOBAL.orphan.fallback, true)
    } else {
        // SAFETY: the calling thread holds its heap, so the heap is mapped (Heap invariants).
        (unsafe { &(*heap).fallback }, false)
    }
}

/// Count a block of `bytes` the fallback gave, on `heap` (the caller's, or null).
#[inline(always)]
pub(crate) fn count_alloc(heap: *mut Heap, bytes: usize) {
    let (c, shared) = counters(heap);
    if shared {
        c.allocs.add_shared(1);
        c.bytes_allocated.add_shared(bytes as u64);
    } else {
        c.allocs.add(1);
        c.bytes_allocated.add(bytes as u64);
    }
}

/// Count a block of `bytes` given back to the fallback, on `heap` (the caller's, or null).
#[inline(always)]
pub(crate) fn count_free(heap: *mut Heap, bytes: usize) {
    let (c, shared) = counters(heap);
    if shared {
        c.frees.add_shared(1);
        c.bytes_freed.add_shared(bytes as u64);
    } else {
        c.frees.add(1);
        c.bytes_freed.add(bytes as u64);
    }
}

/// The medium bin of a request `malloc` serves at its own alignment, or `None` (every
/// alignment up to `MALLOC_ALIGN`; the size then exceeds the alignment).
#[cfg(unix)]
#[inline(always)]
fn medium_bin(layout: Layout) -> Option<usize> {
    if layout.align() <= MALLOC_ALIGN {
        medium_cache::bin_of(layout.size())
    } else {
        None
    }
}

/// A medium block of `bin` for the calling thread: from its heap's cache (`heap`: its bound
/// heap, or null), else, for a span bin, from the medium spans (a batch into the cache when
/// there is one: `MediumCache::refill`), else from `malloc` at the bin's size. `zero` bytes
/// of it are zeroed (0: none; a zeroed request going to `malloc` gets `calloc`).
#[cfg(unix)]
#[inline(always)]
fn medium_alloc(heap: *mut Heap, bin: usize, zero: usize) -> *mut u8 {
    if !heap.is_null() {
        // SAFETY: the calling thread holds its bound heap.
        let block = unsafe { (*heap).medium.take(bin) };
        if !block.is_null() {
            // SAFETY: the block holds at least `bin_size(bin)` >= `zero` bytes, ours now.
            unsafe { block.write_bytes(0, zero) };
            return block;
        }
    }
    if medium_spans::serves(bin) {
        return medium_span_alloc(heap, bin, zero);
    }
    let size = medium_cache::bin_size(bin);
    // SAFETY: a non-zero size; null on failure.
    unsafe {
        if zero != 0 {
            libc::calloc(1, size).cast()
        } else {
            libc::malloc(size).cast()
        }
    }
}

/// `medium_alloc`'s span path, out of line: a refill of the heap's cache, or one block for a
/// thread without a heap.
#[cfg(unix)]
#[inline(never)]
fn medium_span_alloc(heap: *mut Heap, bin: usize, zero: usize) -> *mut u8 {
    let block = if heap.is_null() {
        medium_spans::alloc_chain(bin, 1).0
    } else {
        // SAFETY: the calling thread holds its bound heap; `take` found the bin empty.
        unsafe { (*heap).medium.refill(bin) }
    };
    if !block.is_null() {
        // SAFETY: a span block of `bin_size(bin)` >= `zero` bytes, ours.
        unsafe { block.write_bytes(0, zero) };
    }
    block
}

/// Give back a medium block of `bin`: to the calling thread's cache (`heap`: its bound heap,
/// or null) if it has room, else to its span or to `free`.
///
/// # Safety
/// `ptr` is a medium block of `bin` from [`medium_alloc`] (or, for a bin above the spans', a
/// `malloc` block of at least `bin_size(bin)` bytes), aligned to 16, that the caller gives up;
/// `heap` is the calling thread's bound heap or null.
#[cfg(unix)]
#[inline(always)]
unsafe fn medium_free(heap: *mut Heap, bin: usize, ptr: *mut u8) {
    if medium_spans::serves(bin) {
        // SAFETY: a live span block (caller's contract), whatever bin its layout says.
        unsafe { medium_spans::check_bin(ptr, bin) };
    }
    // SAFETY: the calling thread holds its bound heap; the block as `put` asks (caller).
    if !heap.is_null() && unsafe { (*heap).medium.put_fast(bin, ptr) } {
        return;
    }
    // SAFETY: forwarded contract.
    unsafe { medium_free_slow(heap, bin, ptr) }
}

/// `medium_free` when the cache's fast path did not take the block: `put` (a flush or trim
/// due, a full bin), else back to the spans or to `free`. Out of line and reached by a jump,
/// so that the common free (into the cache) needs no stack frame (with `put` inlined it saved
/// six registers and spilled three values on every free).
///
/// # Safety
/// As for `medium_free`.
#[cfg(unix)]
#[inline(never)]
unsafe fn medium_free_slow(heap: *mut Heap, bin: usize, ptr: *mut u8) {
    // SAFETY: the calling thread holds its bound heap; the block as `put` asks (caller).
    if !heap.is_null() && unsafe { (*heap).medium.put(bin, ptr) } {
        return;
    }
    if medium_spans::serves(bin) {
        // SAFETY: a span block of `bin` (caller's contract), as a chain of one.
        unsafe {
            ptr.cast::<*mut u8>().write(core::ptr::null_mut());
            medium_spans::free_chain(bin, ptr);
        }
        return;
    }
    // SAFETY: a live `malloc` block, given up (caller's contract).
    unsafe { libc::free(ptr.cast()) }
}
