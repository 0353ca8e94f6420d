//! `PoolAlloc`: the entry points, `GlobalAlloc` and `allocator_api2::alloc::Allocator`.

use super::fallback::{count_alloc, count_free, Fallback};
use super::global::{FREE_HOOKS, GLOBAL, SMALL_SYSTEM_BLOCKS};
use super::heap::Heap;
use super::hooks;
use super::pool::{pool_of, Pool};
use super::size_class::{
    class_block_size, size_class, size_classes_of_two, BLOCK_ALIGN, SMALL_REQUEST_THRESHOLD,
};
use super::thread;
use crate::sync::unmodelled::Ordering;
use core::alloc::{GlobalAlloc, Layout};
use core::ptr;
use std::alloc::System;

/// pymalloc's scheme as a Rust allocator: requests of at most
/// [`SMALL_REQUEST_THRESHOLD`](super::SMALL_REQUEST_THRESHOLD) bytes (and alignment at most
/// [`BLOCK_ALIGN`](super::BLOCK_ALIGN)) come from per-thread pools of fixed-size blocks; all
/// others go to the system allocator, `std::alloc::System`. ([`PoolAllocWith`](super::PoolAllocWith)
/// sends them to an allocator of your choice instead.)
///
/// On Linux with glibc, the first request `PoolAlloc` hands to the system allocator (as the
/// global allocator or through `Allocator`) tunes glibc's `malloc` for the process: a heap-top
/// pad and trim and mmap thresholds, so that glibc stops trimming and re-faulting its heap top
/// around every batch of medium blocks. `PYHEAP_GLIBC_TUNING=0`, or your own `GLIBC_TUNABLES` /
/// `MALLOC_*_` settings of these, keep glibc's defaults; see
/// [`glibc_tuned`](super::glibc_tuned) for what is set and what it costs.
///
/// Requests of 513 B to 32 KiB (alignment at most 16) are rounded up to one of 48 size bins
/// (eight per doubling: at most 12.5% more). Those of up to 4 KiB are carved from pyheap's own
/// 64 KiB *medium spans* (one bin per span, shared by all threads under a lock per bin); the
/// larger ones go to `malloc`. Each thread keeps the blocks it frees in a *medium cache* for
/// its next request of the same bin, as jemalloc's thread cache does, and fills an empty span
/// bin of it with 16 KiB worth of blocks at once, so that a span lock is taken once per batch:
/// at most 1,024 blocks per bin and 4 MiB per thread (a free into a full bin gives half the
/// bin back); every 1,024 frees into it, each bin gives back half of what it did not reuse
/// meanwhile. A thread's cache is emptied when it exits, and [`purge`](super::purge) empties
/// the caller's at once and the other threads' at their next medium free. A span left with no
/// block in use stays mapped for the purge delay ([`set_purge_delay`](super::set_purge_delay))
/// for reuse by any bin, then is unmapped; `purge` unmaps them at once.
/// [`stats`](super::stats) reports the cached blocks (`medium_cached_blocks`,
/// `medium_cached_bytes`) and the spans (`medium_spans`, `medium_spans_empty`).
/// `PoolAllocWith` has neither: its allocator gets every request as it is.
///
/// On Linux, requests of 256 KiB to 32 MiB (alignment at most 16 KiB) are *large blocks*
/// carved from the arenas as runs of whole pools: a freed one's pools serve the next small
/// blocks, and the free last pools of an arena, or empty arenas, the next large block, so that
/// memory freed by one kind serves the other (a `HashMap` that outgrows its tables puts its
/// next strings where the old tables were, as it does under glibc alone). A block of several
/// arenas takes a run of consecutive empty arenas where there is one, and grows by moving
/// their pages with `mremap`, not by copying them. A thread keeps the last four large blocks
/// it allocated and freed (each up to 4 MiB, 8 MiB in all) for its next requests of the same
/// shapes, until it needs a new pool. `stats` counts them (`large_blocks`, `large_bytes`,
/// `large_cached_bytes`); larger requests go to `malloc`, and `PoolAllocWith` has no large
/// blocks either.
///
/// ```
/// use std::alloc::{GlobalAlloc, Layout};
/// let a = pyheap::PoolAlloc;
/// let layout = Layout::from_size_align(3000, 8).unwrap();
/// # #[cfg(all(unix, not(miri)))] {
/// unsafe {
///     let p = a.alloc(layout);
///     a.dealloc(p, layout);
///     // The freed block serves the thread's next request of its bin.
///     let q = a.alloc(layout);
///     assert_eq!(p, q);
///     a.dealloc(q, layout);
/// }
/// # }
/// ```
///
/// As the global allocator:
///
/// ```
/// #[global_allocator]
/// static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
///
/// fn main() {
///     let words: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
///     assert_eq!(words[999], "999");
/// }
/// ```
///
/// Or for one collection, through the `Allocator` trait of the `allocator-api2` crate
/// (implemented for its versions 0.2, which hashbrown takes, and 0.4), without being the
/// global allocator:
///
/// ```
/// use allocator_api2::vec::Vec;
/// let mut v = Vec::new_in(pyheap::PoolAlloc);
/// v.extend([1u32, 2, 3]);
/// assert_eq!(v.iter().sum::<u32>(), 6);
///
/// let mut m = hashbrown::HashMap::new_in(pyheap::PoolAlloc);
/// m.insert("answer", 42);
/// assert_eq!(m["answer"], 42);
/// ```
///
/// Not on Unix (no `mmap` there in this version), every request goes to the system allocator,
/// `std::alloc::System`: the API is the same, the pools are not used, and [`stats`](super::stats)
/// reports no blocks.
///
/// `alloc` never panics and never unwinds: on exhaustion it returns null (`AllocError`
/// through `Allocator`), and Rust's `handle_alloc_error` takes it from there.
///
/// # Blocks freed by another thread
///
/// A block freed by a thread other than the one whose pool it came from goes back to its
/// pool's owner through a lock-free list, and the owner reuses it once its pools of that size
/// run dry. The freeing thread publishes such blocks in batches: per size class, it keeps
/// the blocks it frees into one pool of another thread and hands them over with one atomic
/// operation when the batch reaches 4 KiB (or 64 blocks), when it frees into another pool of
/// that size, when it is about to take a new pool itself, and when it exits. So a thread
/// that freed other threads' blocks and then sleeps (without allocating) holds at most
/// 126 KiB of them unpublished, in at most 35 pools (one per size class) that cannot go back
/// to their arenas meanwhile. [`stats`](super::stats) counts batched blocks as free. A batch
/// is written into one of its blocks (a list of 2-byte offsets, up to 63 of them) rather than
/// into each, and the owner hands them out again by those offsets: between its free and its
/// next allocation no thread touches such a block, so its memory stays in the cache of the
/// thread that last used it, which is the one that gets it back. The owner's pools hand out
/// such blocks before their never-used ones.
///
/// ```
/// use std::thread;
/// let blocks: Vec<Box<[u8; 100]>> = (0..1000).map(|_| Box::new([7; 100])).collect();
/// // Freed by another thread: in batches, all published when that thread exits.
/// thread::spawn(move || drop(blocks)).join().unwrap();
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PoolAlloc;

impl PoolAlloc {
    /// Allocation. The fast path (a small request, no hook on, a bound heap, a free block in
    /// the current pool) is inline and calls nothing; every other case is one tail call away:
    /// `alloc_cold`, which runs the hooks when they are on (`hooks.rs`).
    #[inline(always)]
    pub(crate) unsafe fn alloc_impl<A: Fallback>(f: A, layout: Layout, zeroed: bool) -> *mut u8 {
        if !cfg!(unix) {
            // Not on Unix: the fallback serves everything (`os.rs`).
            // SAFETY: forwarded contract (a valid layout of non-zero size).
            return unsafe {
                if zeroed {
                    f.alloc_zeroed(layout)
                } else {
                    f.alloc(layout)
                }
            };
        }
        // One call site for everything else, so that the body stays small enough to be inlined
        // into `__rust_alloc`'s callers (with two, it was not in the `churn` loop: 15% more
        // instructions per pair).
        // `None` for a large request, and for every request while a hook is on.
        if let Some(class) = hooks::alloc_class(layout.size(), layout.align()) {
            if !zeroed {
                let heap = thread::bound_heap();
                if !heap.is_null() {
                    // SAFETY: the calling thread holds its bound heap.
                    let block = unsafe { (*heap).alloc_fast(class) };
                    if !block.is_null() {
                        return block;
                    }
                }
            }
        }
        // SAFETY: forwarded contract.
        unsafe { f.alloc_cold(layout, zeroed) }
    }

    /// Allocation without the hooks: the debug allocator's blocks, and tracemalloc's.
    ///
    /// # Safety
    /// `layout` has a non-zero size.
    #[inline(always)]
    pub(crate) unsafe fn alloc_raw<A: Fallback>(f: A, layout: Layout, zeroed: bool) -> *mut u8 {
        let Some(class) = size_class(layout.size(), layout.align()) else {
            // SAFETY: forwarded contract.
            return unsafe { Self::fallback_alloc(f, thread::heap(), layout, zeroed) };
        };
        if !zeroed {
            let heap = thread::bound_heap();
            if !heap.is_null() {
                // SAFETY: the calling thread holds its bound heap.
                let block = unsafe { (*heap).alloc_fast(class) };
                if !block.is_null() {
                    return block;
                }
            }
        }
        Self::alloc_small_slow(f, class, zeroed)
    }

    /// Every request the fast path does not serve: the hooks when they are on, else the
    /// slow paths (large requests, zeroed ones, a heap to bind, a pool to change).
    ///
    /// (Tried: the size test first, with the small paths in a function of their own, so that
    /// a large request skips this frame's prologue: 9 instructions fewer per large request,
    /// but churn's small requests that come here paid one jump and the size test again,
    /// +0.8 instructions per churn pair. The small paths' cost stays as it was.)
    ///
    /// Out of line through `Fallback::alloc_cold` (see `entry_points!`).
    #[inline(always)]
    /// `mode` is the hooks' mode, read by the caller after an `Acquire` fence (pairing with
    /// the `Release` store of the table entry that sent us here, `HOOKED`,
    /// `hooks::set_alloc_hooked`: the mode read is the one set before that store, or a later
    /// one).
    pub(crate) fn alloc_cold_body<A: Fallback>(
        f: A,
        layout: Layout,
        zeroed: bool,
        mode: u8,
    ) -> *mut u8 {
        if mode != 0 {
            return Self::alloc_hooked(f, layout, zeroed, mode);
        }
        match size_class(layout.size(), layout.align()) {
            Some(class) => Self::alloc_small_slow(f, class, zeroed),
            None => Self::alloc_large(f, layout, zeroed),
        }
    }

    /// `alloc_cold_body` with the hooks on. Out of line, and reached by a jump, so that the
    /// other paths of `alloc_cold` (a medium request, a pool to change) need no stack frame
    /// (with the marker taken there, `alloc_cold` saved four registers on every call, eleven
    /// instructions of every medium allocation). Its frame takes the place of `alloc_cold`'s,
    /// so the marker still has the entry point's caller just above it (and tracemalloc drops
    /// the allocator's own frames at snapshot time anyway; `tests/tracemalloc_lines.rs`
    /// checks the lines recorded).
    #[inline(never)]
    fn alloc_hooked<A: Fallback>(f: A, layout: Layout, zeroed: bool, mode: u8) -> *mut u8 {
        hooks::alloc(f, layout, zeroed, mode, crate::tracemalloc::stack_marker())
    }

    /// A request the pools do not serve (larger than the threshold or aligned above the
    /// blocks), with the hooks off: to the fallback, counted on the bound heap with plain
    /// adds.
    ///
    /// Lean on purpose (measured with callgrind, BENCHMARKS.md "Requests above 512 bytes"):
    /// across the fallback's call it keeps only the heap and the size; a zeroed request, a
    /// thread without a bound heap and failure go out of line.
    #[inline(never)]
    fn alloc_large<A: Fallback>(f: A, layout: Layout, zeroed: bool) -> *mut u8 {
        let heap = thread::bound_heap();
        if zeroed || heap.is_null() {
            // SAFETY: `layout` is valid with a non-zero size (`GlobalAlloc`'s contract).
            return unsafe { Self::alloc_large_slow(f, layout, zeroed) };
        }
        // A block from the heap's medium cache first, with no call (so no stack frame: the
        // frame the fallback's call needs is `alloc_large_uncached`'s).
        // SAFETY: as above; `heap` is the calling thread's bound heap, not null.
        let p = unsafe { f.alloc_cached(heap, layout) };
        if !p.is_null() {
            // SAFETY: the calling thread holds its bound heap; only its holder writes these
            // counters.
            let c = unsafe { &(*heap).fallback };
            c.allocs.add(1);
            c.bytes_allocated.add(layout.size() as u64);
            return p;
        }
        // SAFETY: as above.
        unsafe { Self::alloc_large_uncached(f, heap, layout) }
    }

    /// `alloc_large` when the medium cache had no block: the fallback's `alloc`.
    ///
    /// # Safety
    /// `layout` has a non-zero size; `heap` is the calling thread's bound heap, not null.
    #[inline(never)]
    unsafe fn alloc_large_uncached<A: Fallback>(f: A, heap: *mut Heap, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        let p = unsafe { f.alloc_in(heap, layout) };
        if !p.is_null() {
            // SAFETY: the calling thread holds its bound heap; only its holder writes these
            // counters.
            let c = unsafe { &(*heap).fallback };
            c.allocs.add(1);
            c.bytes_allocated.add(layout.size() as u64);
        }
        p
    }

    /// `alloc_large` for a zeroed request or a thread without a bound heap (binds one).
    /// Everything it needs comes in the caller's argument registers, so that the caller's
    /// common path needs no stack frame for it.
    ///
    /// # Safety
    /// `layout` has a non-zero size.
    #[cold]
    #[inline(never)]
    unsafe fn alloc_large_slow<A: Fallback>(f: A, layout: Layout, zeroed: bool) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe { Self::fallback_alloc(f, thread::heap(), layout, zeroed) }
    }

    /// A block of `layout` from the fallback, counted on `heap` (the caller's, or null).
    ///
    /// # Safety
    /// `layout` has a non-zero size.
    #[cold]
    #[inline(never)]
    unsafe fn fallback_alloc<A: Fallback>(
        f: A,
        heap: *mut Heap,
        layout: Layout,
        zeroed: bool,
    ) -> *mut u8 {
        // SAFETY: forwarded contract.
        let p = unsafe {
            if zeroed {
                f.alloc_zeroed(layout)
            } else {
                f.alloc(layout)
            }
        };
        if !p.is_null() {
            count_alloc(heap, layout.size());
        }
        p
    }

    /// Everything `alloc_impl`'s fast path does not do: binding the heap, bumping, changing
    /// pools, taking new ones, zeroing, and the system allocator when there is no heap or no
    /// arena (a system block of the class's size, so that `realloc` within the class stays
    /// valid).
    ///
    /// Out of line, and reached from `alloc_cold` by a jump, so that a request the fast path
    /// could not serve (its pool ran out: one in a few on random-size churn) still goes from
    /// the inlined fast path to the heap's `alloc_slow` through one call (two calls cost churn
    /// 5%), and `alloc_cold`'s other paths need no stack frame.
    #[inline(never)]
    fn alloc_small_slow<A: Fallback>(f: A, class: usize, zeroed: bool) -> *mut u8 {
        let heap = thread::heap();
        if !heap.is_null() {
            // SAFETY: the calling thread holds its heap.
            let h = unsafe { &*heap };
            // `alloc_slow` starts with the current pool, so it is also right for a heap
            // bound just now, whose fast path was not tried.
            let block = if zeroed {
                h.alloc_zeroed(class)
            } else {
                h.alloc_slow(class).0
            };
            if !block.is_null() {
                return block;
            }
        }
        Self::alloc_small_system(f, heap, class, zeroed)
    }

    /// A small request with no heap or no arena: a fallback block of the class's size.
    #[cold]
    #[inline(never)]
    fn alloc_small_system<A: Fallback>(
        f: A,
        heap: *mut Heap,
        class: usize,
        zeroed: bool,
    ) -> *mut u8 {
        // From now on a small-layout block may be a system block (see the flag's doc).
        GLOBAL
            .free_flags
            .fetch_or(SMALL_SYSTEM_BLOCKS, Ordering::Relaxed);
        // SAFETY: a block size with the block alignment is a valid, non-zero request.
        unsafe { Self::fallback_alloc(f, heap, class_layout(class), zeroed) }
    }

    /// Freeing. The fast path (a small block of one of the bound heap's own pools) is inline;
    /// every other case is one tail call away. The hooks cost it nothing: the word it tests
    /// anyway (`Global::free_flags`) says whether they are on, and a free that finds a bit
    /// set goes out of line (`dealloc_flags_set`). It computes no size class: the block's
    /// pool, found from its address, says whether the size fits its blocks
    /// (`Heap::free_own_block`): 11 instructions fewer per free than computing the class from
    /// a run-time alignment and comparing it with the pool's. A block that fails that test
    /// (another heap's, a thread without a heap, a layout the test leaves to the class) goes
    /// to `dealloc_pool_miss`, with the pool. The body is small enough to be inlined
    /// into the `__rust_dealloc` shim and its callers (a larger one was not, in the `churn`
    /// loop: 14% more instructions).
    #[inline(always)]
    pub(crate) unsafe fn dealloc_impl<A: Fallback>(f: A, ptr: *mut u8, layout: Layout) {
        if !cfg!(unix) {
            // SAFETY: not on Unix every block is the fallback's (`alloc_impl`).
            return unsafe { f.dealloc(ptr, layout) };
        }
        let size = layout.size();
        if size > SMALL_REQUEST_THRESHOLD || layout.align() > BLOCK_ALIGN {
            // SAFETY: forwarded contract.
            return unsafe { f.dealloc_large(ptr, layout) };
        }
        // While no small request was ever served by the system allocator and no hook is on,
        // every small-layout block is a pool block (`Global::free_flags`); otherwise
        // `dealloc_flags_set` decides.
        let flags = GLOBAL.free_flags.load(Ordering::Relaxed);
        if flags != 0 {
            // SAFETY: forwarded contract.
            return unsafe { f.dealloc_flags_set(ptr, layout, flags) };
        }
        // Null or `DEAD` when no heap is bound: no pool's owner, so the test below fails.
        let heap = thread::raw_heap();
        let pool = pool_of(ptr);
        // SAFETY: flags 0 say the block is a pool block (no small request was ever served by
        // the system allocator: that sets the flag before the system call, and this thread
        // got the block after its allocation) and was not traced (a block traced when it was
        // allocated finds the hooks' bit set: `hooks.rs`); if `heap` is a heap, this thread
        // holds it.
        if unsafe { Heap::free_own_block(heap, pool, ptr, size) } {
            return;
        }
        // SAFETY: as above; `free_own_block` said no and touched nothing.
        unsafe { f.dealloc_pool_miss(ptr, layout, heap, pool) }
    }

    /// A pool block (`Global::free_flags` was 0) that `Heap::free_own_block` did not free:
    /// another heap's (the remote-free path), a thread with no heap bound, or a layout whose
    /// class `Pool::fits` leaves to be computed (a zero size, some requests aligned to 16, a
    /// layout of another class than the block's: a fatal error). The remote free, the common
    /// case, costs a few instructions here: the size fits the pool, so the pool's class is
    /// the class and the owner is not this thread's heap (else `free_own_block` had freed it).
    ///
    /// # Safety
    /// `ptr` is a live block of one of the arenas allocated with `layout` (small), not used
    /// again; `heap` is `thread::raw_heap()`, `pool` is `pool_of(ptr)`;
    /// `Heap::free_own_block(heap, pool, ptr, layout.size())` returned false.
    ///
    /// Out of line through `Fallback::dealloc_pool_miss` (see `entry_points!`).
    #[inline(always)]
    pub(crate) unsafe fn dealloc_pool_miss_body<A: Fallback>(
        f: A,
        ptr: *mut u8,
        layout: Layout,
        heap: *mut Heap,
        pool: *mut Pool,
    ) {
        // SAFETY: the block is live, so its pool is initialized (Pool invariants).
        let p = unsafe { &*pool };
        if p.fits(layout.size()) {
            // The pool's class is the layout's (or the class above, which `Pool::fits`
            // documents as harmless), and the pool is not ours.
            let class = usize::from(p.class.get());
            // SAFETY: forwarded contract; a heap value is the heap this thread holds, which
            // does not own the pool (`free_own_block` said no with a fitting size).
            return unsafe {
                if thread::is_heap(heap) {
                    (*heap).free_other_heaps_block(pool, ptr, class)
                } else {
                    Self::dealloc_slow_hooked(f, ptr, layout, class)
                }
            };
        }
        let Some(class) = size_class(layout.size(), layout.align()) else {
            // SAFETY: unreachable (a small layout), forwarded contract.
            return unsafe { Self::dealloc_cold(f, ptr, layout) };
        };
        if !thread::is_heap(heap) {
            // SAFETY: forwarded contract.
            return unsafe { Self::dealloc_slow_hooked(f, ptr, layout, class) };
        }
        // SAFETY: the calling thread holds its bound heap; a live pool block of `class`.
        unsafe {
            if !(*heap).free_pool_block(ptr, class) {
                // Another heap's pool, or a class mismatch (`check_class` aborts).
                (*heap).free_foreign(ptr, class)
            }
        }
    }

    /// `dealloc_impl` once a bit of `Global::free_flags` is set: the hooks, or a small
    /// request was served by the system allocator (the arena-map test).
    ///
    /// # Safety
    /// `GlobalAlloc::dealloc`'s contract, with a small layout.
    ///
    /// Out of line through `Fallback::dealloc_flags_set` (see `entry_points!`).
    #[inline(always)]
    pub(crate) unsafe fn dealloc_flags_set_body<A: Fallback>(
        f: A,
        ptr: *mut u8,
        layout: Layout,
        flags: u8,
    ) {
        let Some(class) = size_class(layout.size(), layout.align()) else {
            // SAFETY: forwarded contract.
            return unsafe { Self::dealloc_cold(f, ptr, layout) };
        };
        let heap = thread::bound_heap();
        // SAFETY: forwarded contract; the calling thread holds its bound heap if any.
        unsafe {
            if flags & FREE_HOOKS != 0 {
                return Self::dealloc_cold(f, ptr, layout);
            }
            if heap.is_null() || !(*heap).free_fast_with(thread::bound_map_words(), ptr, class) {
                Self::dealloc_slow_hooked(f, ptr, layout, class);
            }
        }
    }

    /// A free of a block the pools never serve (a large or over-aligned layout): the hooks
    /// when they are on, else counted on the bound heap (or the shared counters) and given
    /// to the fallback with one tail call. No arena-map test: a large layout is never a pool
    /// block. (`#[cold]` keeps the fast path's size test two predicted branches.)
    ///
    /// # Safety
    /// `GlobalAlloc::dealloc`'s contract, for a layout without a size class.
    ///
    /// Out of line (and cold) through `Fallback::dealloc_large` (see `entry_points!`).
    #[inline(always)]
    pub(crate) unsafe fn dealloc_large_body<A: Fallback>(
        f: A,
        ptr: *mut u8,
        layout: Layout,
        mode: u8,
    ) {
        let heap = thread::bound_heap();
        if mode != 0 || heap.is_null() {
            // SAFETY: forwarded contract.
            return unsafe { Self::dealloc_large_slow(f, ptr, layout) };
        }
        // Counted first, so that the free is a tail call (it cannot fail).
        // SAFETY: the calling thread holds its bound heap; only its holder writes these
        // counters.
        let c = unsafe { &(*heap).fallback };
        c.frees.add(1);
        c.bytes_freed.add(layout.size() as u64);
        // SAFETY: a fallback block of `layout` (caller's contract); `heap` is the calling
        // thread's bound heap.
        unsafe { f.dealloc_in(heap, ptr, layout) }
    }

    /// `dealloc_large` with the hooks on, or without a bound heap (the shared counters).
    ///
    /// # Safety
    /// As for `dealloc_large`.
    #[cold]
    #[inline(never)]
    unsafe fn dealloc_large_slow<A: Fallback>(f: A, ptr: *mut u8, layout: Layout) {
        // Read again (out of line: see `hooks::mode_out_of_line`), so that the caller passes
        // its own arguments on unchanged.
        let mode = hooks::mode_out_of_line();
        // SAFETY: forwarded contract.
        unsafe {
            if mode != 0 {
                hooks::dealloc(f, ptr, layout, mode)
            } else {
                Self::fallback_free(f, ptr, layout)
            }
        }
    }

    /// Freeing without the hooks.
    ///
    /// # Safety
    /// `GlobalAlloc::dealloc`'s contract.
    #[inline(always)]
    pub(crate) unsafe fn dealloc_raw<A: Fallback>(f: A, ptr: *mut u8, layout: Layout) {
        let Some(class) = size_class(layout.size(), layout.align()) else {
            // SAFETY: a fallback block of `layout` (caller's contract).
            return unsafe { Self::fallback_free(f, ptr, layout) };
        };
        let heap = thread::bound_heap();
        if !heap.is_null() {
            let flags = GLOBAL.free_flags.load(Ordering::Relaxed) & !FREE_HOOKS;
            // SAFETY: as in `dealloc_impl`.
            let done = unsafe {
                if flags == 0 {
                    (*heap).free_pool_block(ptr, class)
                } else {
                    (*heap).free_fast_with(thread::bound_map_words(), ptr, class)
                }
            };
            if done {
                return;
            }
        }
        // SAFETY: forwarded contract.
        unsafe { Self::dealloc_small_slow(f, ptr, class) }
    }

    /// A free of a small-layout block while a hook is on. (`#[cold]` keeps the fast
    /// path's size test two predicted branches, as it was before the hooks, rather than a
    /// branch-free `setae`/`or` sequence.)
    ///
    /// # Safety
    /// `GlobalAlloc::dealloc`'s contract.
    #[cold]
    #[inline(never)]
    unsafe fn dealloc_cold<A: Fallback>(f: A, ptr: *mut u8, layout: Layout) {
        // Out of line: see `hooks::mode_out_of_line`.
        let mode = hooks::mode_out_of_line();
        // SAFETY: forwarded contract.
        unsafe {
            if mode != 0 {
                hooks::dealloc(f, ptr, layout, mode)
            } else {
                Self::dealloc_raw(f, ptr, layout)
            }
        }
    }

    /// A small block the fast path did not free: to the hooks if they are on, else to the
    /// slow path. (The bit is read again: if a `stop` cleared it since the fast path read
    /// it, that `stop` emptied the traces first, and no trace can have appeared since:
    /// `tracemalloc/table.rs`; the debug allocator never clears it.)
    ///
    /// # Safety
    /// `ptr` is a live block allocated with `layout`, whose size class is `class`, not used
    /// again.
    #[inline(never)]
    unsafe fn dealloc_slow_hooked<A: Fallback>(f: A, ptr: *mut u8, layout: Layout, class: usize) {
        // SAFETY: forwarded contract.
        unsafe {
            if GLOBAL.free_flags.load(Ordering::Relaxed) & FREE_HOOKS != 0 {
                Self::dealloc_cold(f, ptr, layout)
            } else {
                Self::dealloc_small_slow(f, ptr, class)
            }
        }
    }

    /// Everything `dealloc_impl`'s fast path does not do: blocks of other heaps' pools (the
    /// remote-free path), frees after the thread's heap is gone, system blocks of small
    /// layouts, and a layout that does not match its pool (a fatal error).
    ///
    /// # Safety
    /// `ptr` is a live block allocated with size class `class`, not used again.
    #[inline(never)]
    unsafe fn dealloc_small_slow<A: Fallback>(f: A, ptr: *mut u8, class: usize) {
        if GLOBAL.map.contains(ptr) {
            // SAFETY: a live block of the arenas (caller's contract), freed below.
            let heap = unsafe { thread::heap_for_free(ptr) };
            if heap.is_null() {
                // SAFETY: a live pool block of `class` (caller's contract).
                unsafe { GLOBAL.free_without_heap(ptr, class) };
            } else {
                // SAFETY: the calling thread holds its heap; a live block of `class`.
                unsafe { (*heap).free(ptr, class) };
            }
            return;
        }
        // SAFETY: not in an arena: a fallback block of the class's layout (caller's
        // contract, `alloc_small_system`).
        unsafe { Self::fallback_free(f, ptr, class_layout(class)) };
    }

    /// Give a fallback block of `layout` back, counted on the bound heap (or the shared
    /// counters).
    ///
    /// # Safety
    /// `ptr` is a live block `f` allocated with `layout`, not used again.
    #[cold]
    unsafe fn fallback_free<A: Fallback>(f: A, ptr: *mut u8, layout: Layout) {
        count_free(thread::bound_heap(), layout.size());
        // SAFETY: caller's contract.
        unsafe { f.dealloc(ptr, layout) };
    }
}

/// The out-of-line entry points of the inlined fast paths, for one fallback: `$pre` names
/// them, `$f` is the fallback's value and `[$($gen)*]` the generic parameters.
///
/// Why twice (for `System`, non-generic; for `&F`, generic): a static that code compiled in
/// another crate may read (a generic function's, an inline one's) is reached through the GOT
/// by every reader, this crate's too: one load more. So no generic code reads the hooks'
/// `MODE` (`hooks::mode_out_of_line` reads it for them), and `PoolAlloc`'s entry points are
/// plain functions of this crate that read it directly, as before the fallback could be
/// chosen (churn: +0.2 instructions per pair otherwise); `Fallback`'s methods pick them.
macro_rules! entry_points {
    ($pre:ident, $f:ident: $fty:ty, [$($gen:tt)*], $mode:path) => {
        pub(crate) mod $pre {
            use super::*;

            #[inline(never)]
            pub(crate) fn alloc_cold<$($gen)*>($f: $fty, layout: Layout, zeroed: bool) -> *mut u8 {
                // See `alloc_cold_body`.
                crate::sync::unmodelled::fence(Ordering::Acquire);
                PoolAlloc::alloc_cold_body($f, layout, zeroed, $mode())
            }

            /// # Safety
            /// As for `PoolAlloc::dealloc_large_body`.
            #[cold]
            #[inline(never)]
            pub(crate) unsafe fn dealloc_large<$($gen)*>($f: $fty, ptr: *mut u8, layout: Layout) {
                // SAFETY: forwarded contract.
                unsafe { PoolAlloc::dealloc_large_body($f, ptr, layout, $mode()) }
            }

            /// # Safety
            /// As for `PoolAlloc::dealloc_flags_set_body`.
            #[inline(never)]
            pub(crate) unsafe fn dealloc_flags_set<$($gen)*>(
                $f: $fty,
                ptr: *mut u8,
                layout: Layout,
                flags: u8,
            ) {
                // SAFETY: forwarded contract.
                unsafe { PoolAlloc::dealloc_flags_set_body($f, ptr, layout, flags) }
            }

            /// # Safety
            /// As for `PoolAlloc::dealloc_pool_miss_body`.
            #[inline(never)]
            pub(crate) unsafe fn dealloc_pool_miss<$($gen)*>(
                $f: $fty,
                ptr: *mut u8,
                layout: Layout,
                heap: *mut Heap,
                pool: *mut Pool,
            ) {
                // SAFETY: forwarded contract.
                unsafe { PoolAlloc::dealloc_pool_miss_body($f, ptr, layout, heap, pool) }
            }
        }
    };
}

entry_points!(system_entry, f: System, [], hooks::mode);
entry_points!(generic_entry, f: A, [A: Fallback], hooks::mode_out_of_line);

/// The layout of a fallback block that serves a small request of `class`: the class's block
/// size (so that `realloc` within the class keeps it valid) with the blocks' alignment.
#[inline(always)]
fn class_layout(class: usize) -> Layout {
    // SAFETY: a block size (at most 512, non-zero) with a power-of-two alignment.
    unsafe { Layout::from_size_align_unchecked(class_block_size(class), BLOCK_ALIGN) }
}

// SAFETY: `alloc` returns null or a block of at least `layout.size()` bytes aligned to
// `layout.align()` (size classes round sizes up and serve alignments up to BLOCK_ALIGN; the
// system allocator is asked for the rest), owned by the caller until `dealloc`. A block is
// handed out by one heap's holder only (Heap invariants) and returns to circulation only
// through `dealloc`; a system block goes back to the system allocator (`fallback.rs`). No
// path allocates through the global allocator, panics or unwinds.
unsafe impl GlobalAlloc for PoolAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe { Self::alloc_impl(System, layout, false) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe { Self::alloc_impl(System, layout, true) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { Self::dealloc_impl(System, ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe { Self::realloc_impl(System, ptr, layout, new_size, hooks::mode()) }
    }
}

impl PoolAlloc {
    /// `realloc`: the hooks when they are on.
    ///
    /// # Safety
    /// `GlobalAlloc::realloc`'s contract.
    /// `mode` is the hooks' mode (`hooks::mode`, read by the caller: see
    /// `hooks::mode_out_of_line`).
    pub(crate) unsafe fn realloc_impl<A: Fallback>(
        f: A,
        ptr: *mut u8,
        layout: Layout,
        new_size: usize,
        mode: u8,
    ) -> *mut u8 {
        if !cfg!(unix) {
            // SAFETY: as in `dealloc_impl`; forwarded contract.
            return unsafe { f.realloc(ptr, layout, new_size) };
        }
        // SAFETY: forwarded contract.
        unsafe {
            if mode != 0 {
                Self::realloc_hooked(f, ptr, layout, new_size, mode)
            } else {
                Self::realloc_raw(f, ptr, layout, new_size)
            }
        }
    }

    /// `realloc_impl` with the hooks on. Out of line, and reached by a jump (its arguments
    /// fit the argument registers), so that the fast path of `realloc_raw` inlined into the
    /// entry point needs no stack slot: only this function takes the stack marker. Its frame
    /// takes the place of the entry point's, so the marker still has the entry point's caller
    /// just above it (and tracemalloc drops the allocator's own frames at snapshot time
    /// anyway; `tests/tracemalloc_lines.rs` checks the lines recorded).
    ///
    /// # Safety
    /// `GlobalAlloc::realloc`'s contract; `mode` is the hooks' mode, not 0.
    #[inline(never)]
    unsafe fn realloc_hooked<A: Fallback>(
        f: A,
        ptr: *mut u8,
        layout: Layout,
        new_size: usize,
        mode: u8,
    ) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe {
            hooks::realloc(
                f,
                ptr,
                layout,
                new_size,
                mode,
                crate::tracemalloc::stack_marker(),
            )
        }
    }
}

impl PoolAlloc {
    /// `realloc` without the hooks: the fast path, inline, for a block of at most 64 bytes
    /// moving to another size class (a short `String` or `Vec` growing: `format!`'s 10 → 20
    /// bytes, a `Vec<u32>`'s 16 → 32), where both blocks are the calling thread's; everything
    /// else in [`realloc_slow`](Self::realloc_slow).
    ///
    /// The fast path makes no call but its last jump (to the slow path, or to
    /// `Heap::put_own_block`'s cold end), and the entry point it is inlined into saves two
    /// registers. Measured on `btree` (callgrind, a million reallocs of 10 → 20 bytes and
    /// short `Vec`s): 108 instructions per `realloc` from `__rust_realloc` on, against 143 when
    /// it was one function (six registers saved, both classes worked out from scratch, and a
    /// call to `memcpy` for the few bytes).
    ///
    /// # Safety
    /// `GlobalAlloc::realloc`'s contract.
    #[inline(always)]
    pub(crate) unsafe fn realloc_raw<A: Fallback>(
        f: A,
        ptr: *mut u8,
        layout: Layout,
        new_size: usize,
    ) -> *mut u8 {
        let (old_class, new_class) = size_classes_of_two(layout.size(), new_size, layout.align());
        if let (Some(old_class), Some(new_class)) = (old_class, new_class) {
            if old_class == new_class {
                // Same block size: the block already fits (pool block or system block of the
                // class's size alike).
                return ptr;
            }
            let copy = layout.size().min(new_size);
            // `copy - 1 < SHORT_COPY`: `0 < copy <= SHORT_COPY` (a zero-size layout never
            // reaches `realloc`, but one compare keeps `copy_short`'s contract either way).
            if copy.wrapping_sub(1) >= SHORT_COPY {
                // SAFETY: forwarded contract; `new_class` is the class of `new_size`.
                return unsafe { Self::realloc_small_long(f, ptr, layout, new_size, new_class) };
            }
            // SAFETY: `ptr` is a live block of `layout.size()` bytes (caller's contract), of a
            // class other than `new_class`.
            let moving = unsafe { Self::take_for_move(ptr, layout.size(), new_class) };
            if let Some((heap, pool, q)) = moving {
                // SAFETY: two distinct pool blocks of at least `copy` bytes, `0 < copy <=
                // SHORT_COPY`; then the old block goes back to its pool, which `heap` owns and
                // whose blocks it fits (`take_for_move`), and is not used again.
                unsafe {
                    copy_short(ptr, q, copy);
                    return Heap::put_own_block(heap, pool, ptr, q);
                }
            }
        }
        // SAFETY: forwarded contract; the sizes are not of one class (returned above).
        unsafe { Self::realloc_slow(f, ptr, layout, new_size) }
    }

    /// `realloc_raw`'s general path: the fallback's `realloc` between two system blocks, and
    /// otherwise a new block, a copy and a free.
    ///
    /// # Safety
    /// `GlobalAlloc::realloc`'s contract, and the two sizes are not of one size class
    /// (`realloc_raw` returned the block itself then).
    #[inline(never)]
    unsafe fn realloc_slow<A: Fallback>(
        f: A,
        ptr: *mut u8,
        layout: Layout,
        new_size: usize,
    ) -> *mut u8 {
        // Computed again rather than passed: two more arguments (an `Option` each) would not
        // fit the argument registers, and the fast path would save registers for them.
        let align = layout.align();
        let old_class = size_class(layout.size(), align);
        let new_class = size_class(new_size, align);
        if old_class.is_none() && new_class.is_none() {
            // SAFETY: a fallback block of `layout`; `new_size` is valid for `align` (caller).
            let q = unsafe { f.realloc(ptr, layout, new_size) };
            if !q.is_null() {
                let heap = thread::heap();
                count_free(heap, layout.size());
                count_alloc(heap, new_size);
            }
            return q;
        }
        // SAFETY: forwarded contract.
        unsafe { Self::realloc_move(f, ptr, layout, new_size) }
    }

    /// `realloc_raw` from one size class to another with more than [`SHORT_COPY`] bytes to
    /// copy (a `String` of a few hundred bytes growing): the fast path's move within the
    /// heap (`take_for_move`, `Heap::put_own_block`) around a `memcpy`, which saves the class
    /// computations and the arena-map lookup of `alloc_raw` and `dealloc_raw`.
    ///
    /// # Safety
    /// `GlobalAlloc::realloc`'s contract; `layout` is of a size class other than `new_class`,
    /// the class of `new_size`.
    #[inline(never)]
    unsafe fn realloc_small_long<A: Fallback>(
        f: A,
        ptr: *mut u8,
        layout: Layout,
        new_size: usize,
        new_class: usize,
    ) -> *mut u8 {
        // SAFETY: `ptr` is a live block of `layout.size()` bytes (caller's contract), of a
        // class other than `new_class`.
        if let Some((heap, pool, q)) = unsafe { Self::take_for_move(ptr, layout.size(), new_class) }
        {
            // SAFETY: two distinct pool blocks of at least `min` bytes; then the old block goes
            // back to its pool, which `heap` owns and whose blocks it fits (`take_for_move`),
            // and is not used again.
            unsafe {
                ptr::copy_nonoverlapping(ptr, q, layout.size().min(new_size));
                return Heap::put_own_block(heap, pool, ptr, q);
            }
        }
        // SAFETY: forwarded contract.
        unsafe { Self::realloc_move(f, ptr, layout, new_size) }
    }

    /// The first half of a move of a small block within the calling thread's heap, for
    /// `realloc` from one size class to another: the heap, `ptr`'s pool and a new block of
    /// `new_class` from the heap's current pool, or `None`, having changed nothing, when that
    /// cannot be done here (a hook is on or a small block may be a system block, no heap is
    /// bound, `ptr`'s pool is another heap's or not of its size, the current pool is out of
    /// blocks). The caller copies, then gives the old block back with
    /// `Heap::put_own_block`, as its last step.
    ///
    /// # Safety
    /// `ptr` is a live block allocated with a small layout of `old_size` bytes, of a class
    /// other than `new_class`.
    #[inline(always)]
    unsafe fn take_for_move(
        ptr: *mut u8,
        old_size: usize,
        new_class: usize,
    ) -> Option<(*mut Heap, *mut Pool, *mut u8)> {
        let flags = GLOBAL.free_flags.load(Ordering::Relaxed);
        let heap = thread::bound_heap();
        if flags != 0 || heap.is_null() {
            return None;
        }
        let pool = pool_of(ptr);
        // SAFETY: flags 0: no small request was ever served by the system allocator and no
        // hook traces this block (as in `dealloc_impl`), so the block is a live pool block and
        // `pool` its pool. Tested before the new block is taken, so that a miss has nothing
        // to undo.
        if !unsafe { Heap::owns_fitting(heap, pool, old_size) } {
            return None;
        }
        // SAFETY: the calling thread holds its bound heap.
        let q = unsafe { (*heap).alloc_fast(new_class) };
        (!q.is_null()).then_some((heap, pool, q))
    }

    /// `realloc` the long way: a new block from `alloc_raw`, the copy, and `dealloc_raw`.
    ///
    /// # Safety
    /// `GlobalAlloc::realloc`'s contract, and the old and new sizes are not of one size class.
    #[inline(always)]
    unsafe fn realloc_move<A: Fallback>(
        f: A,
        ptr: *mut u8,
        layout: Layout,
        new_size: usize,
    ) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size` rounded to `align` fits `isize`.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: forwarded contract; the blocks are distinct (the old one is live) and at
        // least `min` bytes long.
        unsafe {
            let q = Self::alloc_raw(f, new_layout, false);
            if !q.is_null() {
                ptr::copy_nonoverlapping(ptr, q, layout.size().min(new_size));
                Self::dealloc_raw(f, ptr, layout);
            }
            q
        }
    }
}

/// The longest copy `realloc`'s fast path makes ([`copy_short`]); longer ones go through
/// `realloc_slow` and `memcpy`.
const SHORT_COPY: usize = 64;

/// Copy the first `n` bytes of pool block `src` to pool block `dst`, `0 < n <=`
/// [`SHORT_COPY`]: for `realloc`'s fast path, where a call to the C library's `memcpy`
/// (through the PLT, then its dispatch on the size) would cost more than the copy.
///
/// It copies `n` rounded up to a multiple of 8 as two overlapping chunks of 8, 16 or 32 bytes
/// (the way `memcpy`'s own short path does: no branch on the exact size, and no loop the
/// compiler could turn back into a `memcpy` call). The bytes past `n` are the old block's
/// spare bytes, copied as `MaybeUninit` (they may never have been written) into the new
/// block's spare bytes, which the caller has not written either.
///
/// # Safety
/// `src` and `dst` are distinct pool blocks (never system blocks: one of those may end right
/// after its request) of at least `n` bytes each, `0 < n <= SHORT_COPY`. Every pool block size
/// is a multiple of 8 and at least the request it serves (`class_block_size`'s invariant), so
/// both blocks hold `n` rounded up to 8 bytes.
#[inline(always)]
unsafe fn copy_short(src: *const u8, dst: *mut u8, n: usize) {
    use core::mem::MaybeUninit;
    /// Copy `0..size_of::<T>()` and `len - size_of::<T>()..len` (overlapping when `len` is
    /// less than twice the chunk).
    ///
    /// # Safety
    /// `size_of::<T>() <= len`; `src` and `dst` valid for `len` bytes, not overlapping.
    #[inline(always)]
    unsafe fn two_chunks<T>(src: *const u8, dst: *mut u8, len: usize) {
        let tail = len - core::mem::size_of::<T>();
        // SAFETY: both chunks lie in `0..len` of both blocks (caller); unaligned accesses of
        // `MaybeUninit` values, which may hold uninitialized bytes.
        unsafe {
            let head = src.cast::<MaybeUninit<T>>().read_unaligned();
            let last = src.add(tail).cast::<MaybeUninit<T>>().read_unaligned();
            dst.cast::<MaybeUninit<T>>().write_unaligned(head);
            dst.add(tail).cast::<MaybeUninit<T>>().write_unaligned(last);
        }
    }
    debug_assert!(n > 0 && n <= SHORT_COPY);
    let len = (n + 7) & !7;
    // SAFETY (all arms): `8 <= len <= 64` as `0 < n <= 64`; both blocks hold `len` bytes (the
    // function's contract) and are distinct, so they do not overlap.
    unsafe {
        if len <= 16 {
            two_chunks::<u64>(src, dst, len);
        } else if len <= 32 {
            two_chunks::<[u64; 2]>(src, dst, len);
        } else {
            two_chunks::<[u64; 4]>(src, dst, len);
        }
    }
}
