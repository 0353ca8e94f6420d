//! `PoolAlloc`: the entry points, `GlobalAlloc` and `allocator_api2::alloc::Allocator`.

use super::global::{FREE_HOOKS, GLOBAL, SMALL_SYSTEM_BLOCKS};
use super::heap::{FallbackCounters, Heap};
use super::hooks;
use super::os;
use super::pool::{pool_of, Pool};
use super::size_class::{class_block_size, size_class, BLOCK_ALIGN, SMALL_REQUEST_THRESHOLD};
use super::thread;
use crate::sync::unmodelled::Ordering;
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};

/// pymalloc's scheme as a Rust allocator: requests of at most
/// [`SMALL_REQUEST_THRESHOLD`](super::SMALL_REQUEST_THRESHOLD) bytes (and alignment at most
/// [`BLOCK_ALIGN`](super::BLOCK_ALIGN)) come from per-thread pools of fixed-size blocks; all
/// others go to the system allocator.
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PoolAlloc;

/// The counters to charge a system-allocator request to: the heap's, or the shared ones for
/// a thread without a heap.
fn fallback_counters(heap: *mut Heap) -> (&'static FallbackCounters, bool) {
    if heap.is_null() {
        (&GLOBAL.orphan.fallback, true)
    } else {
        // SAFETY: the calling thread holds its heap, so the heap is mapped (Heap invariants).
        (unsafe { &(*heap).fallback }, false)
    }
}

fn count_fallback_alloc(heap: *mut Heap, bytes: usize) {
    let (c, shared) = fallback_counters(heap);
    if shared {
        c.allocs.add_shared(1);
        c.bytes_allocated.add_shared(bytes as u64);
    } else {
        c.allocs.add(1);
        c.bytes_allocated.add(bytes as u64);
    }
}

fn count_fallback_free(heap: *mut Heap, bytes: usize) {
    let (c, shared) = fallback_counters(heap);
    if shared {
        c.frees.add_shared(1);
        c.bytes_freed.add_shared(bytes as u64);
    } else {
        c.frees.add(1);
        c.bytes_freed.add(bytes as u64);
    }
}

/// Allocate `size` bytes aligned to `align` from the system allocator, counted.
#[cold]
unsafe fn fallback_alloc(heap: *mut Heap, size: usize, align: usize, zeroed: bool) -> *mut u8 {
    // SAFETY: `size`/`align` come from a valid `Layout` (or a block size with align 16).
    let p = unsafe {
        if zeroed {
            os::sys_alloc_zeroed(size, align)
        } else {
            os::sys_alloc(size, align)
        }
    };
    if !p.is_null() {
        count_fallback_alloc(heap, size);
    }
    p
}

impl PoolAlloc {
    /// Allocation. The fast path (a small request, no hook on, a bound heap, a free block in
    /// the current pool) is inline and calls nothing; every other case is one tail call away:
    /// `alloc_cold`, which runs the hooks when they are on (`hooks.rs`).
    #[inline(always)]
    unsafe fn alloc_impl(layout: Layout, zeroed: bool) -> *mut u8 {
        if !cfg!(unix) {
            // Not on Unix: the system allocator serves everything (`os.rs`).
            // SAFETY: forwarded contract (a valid layout of non-zero size).
            return unsafe { os::system_alloc(layout, zeroed) };
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
        Self::alloc_cold(layout, zeroed)
    }

    /// Allocation without the hooks: the debug allocator's blocks, and tracemalloc's.
    ///
    /// # Safety
    /// `layout` has a non-zero size.
    #[inline(always)]
    pub(crate) unsafe fn alloc_raw(layout: Layout, zeroed: bool) -> *mut u8 {
        let Some(class) = size_class(layout.size(), layout.align()) else {
            return Self::alloc_large(layout, zeroed);
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
        Self::alloc_small_slow(class, zeroed)
    }

    /// Every request the fast path does not serve: the hooks when they are on, else the
    /// slow paths (large requests, zeroed ones, a heap to bind, a pool to change).
    #[inline(never)]
    fn alloc_cold(layout: Layout, zeroed: bool) -> *mut u8 {
        // Pairs with the `Release` store of the table entry that sent us here (`HOOKED`,
        // `hooks::set_alloc_hooked`): the mode read next is the one set before that store, or
        // a later one.
        crate::sync::unmodelled::fence(Ordering::Acquire);
        let mode = hooks::mode();
        if mode != 0 {
            return hooks::alloc(layout, zeroed, mode, crate::tracemalloc::stack_marker());
        }
        match size_class(layout.size(), layout.align()) {
            Some(class) => Self::alloc_small_slow(class, zeroed),
            None => Self::alloc_large(layout, zeroed),
        }
    }

    /// A request the pools do not serve: to the system allocator.
    #[inline(never)]
    fn alloc_large(layout: Layout, zeroed: bool) -> *mut u8 {
        // SAFETY: `layout` is valid.
        unsafe { fallback_alloc(thread::heap(), layout.size(), layout.align(), zeroed) }
    }

    /// Everything `alloc_impl`'s fast path does not do: binding the heap, bumping, changing
    /// pools, taking new ones, zeroing, and the system allocator when there is no heap or no
    /// arena (a system block of the class's size, so that `realloc` within the class stays
    /// valid).
    ///
    /// Inlined into `alloc_cold`, so that a request the fast path could not serve (its pool
    /// ran out: one in a few on random-size churn) goes from the inlined fast path to the
    /// heap's `alloc_slow` through one call, as before the hooks (two calls cost churn 5%).
    #[inline(always)]
    fn alloc_small_slow(class: usize, zeroed: bool) -> *mut u8 {
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
        Self::alloc_small_system(heap, class, zeroed)
    }

    /// A small request with no heap or no arena: a system block of the class's size.
    #[cold]
    #[inline(never)]
    fn alloc_small_system(heap: *mut Heap, class: usize, zeroed: bool) -> *mut u8 {
        // From now on a small-layout block may be a system block (see the flag's doc).
        GLOBAL
            .free_flags
            .fetch_or(SMALL_SYSTEM_BLOCKS, Ordering::Relaxed);
        // SAFETY: a block size with the block alignment is a valid request.
        unsafe { fallback_alloc(heap, class_block_size(class), 16, zeroed) }
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
    unsafe fn dealloc_impl(ptr: *mut u8, layout: Layout) {
        if !cfg!(unix) {
            // SAFETY: not on Unix every block is the system allocator's (`alloc_impl`).
            return unsafe { os::system_dealloc(ptr, layout) };
        }
        let size = layout.size();
        if size > SMALL_REQUEST_THRESHOLD || layout.align() > BLOCK_ALIGN {
            // SAFETY: forwarded contract.
            return unsafe { Self::dealloc_cold(ptr, layout) };
        }
        // While no small request was ever served by the system allocator and no hook is on,
        // every small-layout block is a pool block (`Global::free_flags`); otherwise
        // `dealloc_flags_set` decides.
        let flags = GLOBAL.free_flags.load(Ordering::Relaxed);
        if flags != 0 {
            // SAFETY: forwarded contract.
            return unsafe { Self::dealloc_flags_set(ptr, layout, flags) };
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
        unsafe { Self::dealloc_pool_miss(ptr, layout, heap, pool) }
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
    #[inline(never)]
    unsafe fn dealloc_pool_miss(ptr: *mut u8, layout: Layout, heap: *mut Heap, pool: *mut Pool) {
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
                    Self::dealloc_slow_hooked(ptr, layout, class)
                }
            };
        }
        let Some(class) = size_class(layout.size(), layout.align()) else {
            // SAFETY: unreachable (a small layout), forwarded contract.
            return unsafe { Self::dealloc_cold(ptr, layout) };
        };
        if !thread::is_heap(heap) {
            // SAFETY: forwarded contract.
            return unsafe { Self::dealloc_slow_hooked(ptr, layout, class) };
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
    #[inline(never)]
    unsafe fn dealloc_flags_set(ptr: *mut u8, layout: Layout, flags: u8) {
        let Some(class) = size_class(layout.size(), layout.align()) else {
            // SAFETY: forwarded contract.
            return unsafe { Self::dealloc_cold(ptr, layout) };
        };
        let heap = thread::bound_heap();
        // SAFETY: forwarded contract; the calling thread holds its bound heap if any.
        unsafe {
            if flags & FREE_HOOKS != 0 {
                return Self::dealloc_cold(ptr, layout);
            }
            if heap.is_null() || !(*heap).free_fast_with(thread::bound_map_words(), ptr, class) {
                Self::dealloc_slow_hooked(ptr, layout, class);
            }
        }
    }

    /// Freeing without the hooks.
    ///
    /// # Safety
    /// `GlobalAlloc::dealloc`'s contract.
    #[inline(always)]
    pub(crate) unsafe fn dealloc_raw(ptr: *mut u8, layout: Layout) {
        let Some(class) = size_class(layout.size(), layout.align()) else {
            // SAFETY: a system block (caller's contract).
            return unsafe { Self::fallback_free(ptr, layout.size()) };
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
        unsafe { Self::dealloc_small_slow(ptr, class) }
    }

    /// A free of a large block, or any free while a hook is on. (`#[cold]` keeps the fast
    /// path's size test two predicted branches, as it was before the hooks, rather than a
    /// branch-free `setae`/`or` sequence.)
    ///
    /// # Safety
    /// `GlobalAlloc::dealloc`'s contract.
    #[cold]
    #[inline(never)]
    unsafe fn dealloc_cold(ptr: *mut u8, layout: Layout) {
        let mode = hooks::mode();
        // SAFETY: forwarded contract.
        unsafe {
            if mode != 0 {
                hooks::dealloc(ptr, layout, mode)
            } else {
                Self::dealloc_raw(ptr, layout)
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
    unsafe fn dealloc_slow_hooked(ptr: *mut u8, layout: Layout, class: usize) {
        // SAFETY: forwarded contract.
        unsafe {
            if GLOBAL.free_flags.load(Ordering::Relaxed) & FREE_HOOKS != 0 {
                Self::dealloc_cold(ptr, layout)
            } else {
                Self::dealloc_small_slow(ptr, class)
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
    unsafe fn dealloc_small_slow(ptr: *mut u8, class: usize) {
        if GLOBAL.map.contains(ptr) {
            let heap = thread::heap();
            if heap.is_null() {
                // SAFETY: a live pool block of `class` (caller's contract).
                unsafe { GLOBAL.free_without_heap(ptr, class) };
            } else {
                // SAFETY: the calling thread holds its heap; a live block of `class`.
                unsafe { (*heap).free(ptr, class) };
            }
            return;
        }
        // SAFETY: not in an arena: a system block (caller's contract).
        unsafe { Self::fallback_free(ptr, class_block_size(class)) };
    }

    #[cold]
    unsafe fn fallback_free(ptr: *mut u8, bytes: usize) {
        // SAFETY: caller's contract.
        unsafe { os::sys_free(ptr) };
        count_fallback_free(thread::heap(), bytes);
    }
}

// SAFETY: `alloc` returns null or a block of at least `layout.size()` bytes aligned to
// `layout.align()` (size classes round sizes up and serve alignments up to BLOCK_ALIGN; the
// system allocator is asked for the rest), owned by the caller until `dealloc`. A block is
// handed out by one heap's holder only (Heap invariants) and returns to circulation only
// through `dealloc`. No path allocates through the global allocator, panics or unwinds.
unsafe impl GlobalAlloc for PoolAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe { Self::alloc_impl(layout, false) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe { Self::alloc_impl(layout, true) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { Self::dealloc_impl(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !cfg!(unix) {
            // SAFETY: as in `dealloc_impl`; forwarded contract.
            return unsafe { os::system_realloc(ptr, layout, new_size) };
        }
        let mode = hooks::mode();
        // SAFETY: forwarded contract.
        unsafe {
            if mode != 0 {
                hooks::realloc(
                    ptr,
                    layout,
                    new_size,
                    mode,
                    crate::tracemalloc::stack_marker(),
                )
            } else {
                Self::realloc_raw(ptr, layout, new_size)
            }
        }
    }
}

impl PoolAlloc {
    /// `realloc` without the hooks.
    ///
    /// # Safety
    /// `GlobalAlloc::realloc`'s contract.
    pub(crate) unsafe fn realloc_raw(ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let align = layout.align();
        let old_class = size_class(layout.size(), align);
        let new_class = size_class(new_size, align);
        if old_class.is_some() && old_class == new_class {
            // Same block size: the block already fits (pool block or system block of the
            // class's size alike).
            return ptr;
        }
        if old_class.is_none() && new_class.is_none() {
            // SAFETY: a system block of `layout`; `new_size` is valid for `align` (caller).
            let q = unsafe { os::sys_realloc(ptr, layout.size(), align, new_size) };
            if !q.is_null() {
                let heap = thread::heap();
                count_fallback_free(heap, layout.size());
                count_fallback_alloc(heap, new_size);
            }
            return q;
        }
        // SAFETY: the caller guarantees `new_size` rounded to `align` fits `isize`.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, align) };
        // SAFETY: forwarded contract; the blocks are distinct and at least `min` bytes long.
        unsafe {
            let q = Self::alloc_raw(new_layout, false);
            if !q.is_null() {
                ptr::copy_nonoverlapping(ptr, q, layout.size().min(new_size));
                Self::dealloc_raw(ptr, layout);
            }
            q
        }
    }
}

fn dangling(layout: Layout) -> NonNull<[u8]> {
    // An address equal to the alignment is non-null and aligned.
    let p = layout.align() as *mut u8;
    // SAFETY: `align` is non-zero.
    NonNull::slice_from_raw_parts(unsafe { NonNull::new_unchecked(p) }, 0)
}

/// The `Allocator` API's operations, once for every version of the `allocator-api2` crate:
/// `None` stands for `AllocError`.
impl PoolAlloc {
    fn allocate_block(&self, layout: Layout, zeroed: bool) -> Option<NonNull<[u8]>> {
        if layout.size() == 0 {
            return Some(dangling(layout));
        }
        // SAFETY: non-zero size.
        let p = unsafe { Self::alloc_impl(layout, zeroed) };
        NonNull::new(p).map(|p| NonNull::slice_from_raw_parts(p, layout.size()))
    }

    /// # Safety
    /// `ptr` was allocated by `allocate_block` with `layout` and is not used again.
    unsafe fn deallocate_block(&self, ptr: NonNull<u8>, layout: Layout) {
        if layout.size() != 0 {
            // SAFETY: caller's contract.
            unsafe { Self::dealloc_impl(ptr.as_ptr(), layout) }
        }
    }

    /// `grow`/`shrink`: contents kept up to the smaller size, the new tail zeroed if asked.
    ///
    /// # Safety
    /// `ptr` was allocated by `self` with `old`; the caller stops using it on success.
    unsafe fn resize(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
        zero_tail: bool,
    ) -> Option<NonNull<[u8]>> {
        let q = if old.size() == 0 {
            return self.allocate_block(new, zero_tail);
        } else if new.size() == 0 {
            // SAFETY: caller's contract.
            unsafe { self.deallocate_block(ptr, old) };
            return Some(dangling(new));
        } else if old.align() == new.align() {
            // SAFETY: caller's contract; `new.size()` is valid for the alignment.
            let q = unsafe { GlobalAlloc::realloc(self, ptr.as_ptr(), old, new.size()) };
            NonNull::slice_from_raw_parts(NonNull::new(q)?, new.size())
        } else {
            let q = self.allocate_block(new, false)?;
            // SAFETY: distinct live blocks, each at least `min` bytes.
            unsafe {
                ptr::copy_nonoverlapping(
                    ptr.as_ptr(),
                    q.as_ptr().cast::<u8>(),
                    old.size().min(new.size()),
                );
                self.deallocate_block(ptr, old);
            }
            q
        };
        if zero_tail && new.size() > old.size() {
            // SAFETY: the new block has `new.size()` bytes.
            unsafe {
                ptr::write_bytes(
                    q.as_ptr().cast::<u8>().add(old.size()),
                    0,
                    new.size() - old.size(),
                )
            };
        }
        Some(q)
    }
}

/// `Allocator` for one version of the `allocator-api2` crate (the trait is the same in both).
macro_rules! impl_allocator_api {
    ($api:ident) => {
        // SAFETY: blocks come from `GlobalAlloc` above with the same guarantees; zero-size
        // requests get a dangling aligned pointer that `deallocate` ignores; `grow`/`shrink`
        // keep the contents up to the smaller size.
        unsafe impl $api::alloc::Allocator for PoolAlloc {
            fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, $api::alloc::AllocError> {
                self.allocate_block(layout, false)
                    .ok_or($api::alloc::AllocError)
            }

            fn allocate_zeroed(
                &self,
                layout: Layout,
            ) -> Result<NonNull<[u8]>, $api::alloc::AllocError> {
                self.allocate_block(layout, true)
                    .ok_or($api::alloc::AllocError)
            }

            unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
                // SAFETY: forwarded contract.
                unsafe { self.deallocate_block(ptr, layout) }
            }

            unsafe fn grow(
                &self,
                ptr: NonNull<u8>,
                old: Layout,
                new: Layout,
            ) -> Result<NonNull<[u8]>, $api::alloc::AllocError> {
                // SAFETY: forwarded contract.
                unsafe { self.resize(ptr, old, new, false) }.ok_or($api::alloc::AllocError)
            }

            unsafe fn grow_zeroed(
                &self,
                ptr: NonNull<u8>,
                old: Layout,
                new: Layout,
            ) -> Result<NonNull<[u8]>, $api::alloc::AllocError> {
                // SAFETY: forwarded contract.
                unsafe { self.resize(ptr, old, new, true) }.ok_or($api::alloc::AllocError)
            }

            unsafe fn shrink(
                &self,
                ptr: NonNull<u8>,
                old: Layout,
                new: Layout,
            ) -> Result<NonNull<[u8]>, $api::alloc::AllocError> {
                // SAFETY: forwarded contract.
                unsafe { self.resize(ptr, old, new, false) }.ok_or($api::alloc::AllocError)
            }
        }
    };
}

impl_allocator_api!(allocator_api2);
impl_allocator_api!(allocator_api2_04);
