//! `Global`: the allocator's process-wide state, in one place.
//!
//! In normal builds there is one, the `static GLOBAL`. Loom models make a fresh one per
//! execution (loom's atomics cannot live in a `static`), which is why the heaps and pools
//! reach it through a pointer rather than naming the static.

use super::arena::ArenaManager;
use super::arena_map::ArenaMap;
use super::heap::{FallbackCounters, Heap, HeapHome};
use super::pool::Pool;
use super::size_class::NUM_SIZE_CLASSES;
use crate::sync::StatCounter;

/// Counters for threads that have no heap (their heap was torn down at thread exit).
pub(crate) struct OrphanCounters {
    pub(crate) frees: [StatCounter; NUM_SIZE_CLASSES],
    pub(crate) fallback: FallbackCounters,
}

pub(crate) struct Global {
    pub(crate) arenas: ArenaManager,
    pub(crate) heaps: super::registry::HeapRegistry,
    pub(crate) map: ArenaMap,
    pub(crate) orphan: OrphanCounters,
    /// How many empty pools each heap may keep for its next pools (`Heap`'s spares):
    /// [`SPARE_POOLS`], or 0 in loom models unless a model asks for them (so that a pool
    /// emptied in a model goes back to its arena as it did before spares).
    pub(crate) spare_pools: u32,
    /// What the free fast path must not skip, in one word so that it tests both with one
    /// load and one branch (0: neither):
    ///
    /// * [`SMALL_SYSTEM_BLOCKS`]: whether a small request (one with a size class) was ever
    ///   served by the system allocator: no arena could be mapped, or the thread's heap was
    ///   gone. Until then every block freed with a small layout is a pool block, and `free`
    ///   can skip the arena-map test. Set (before the system call) by whoever serves such a
    ///   request, never cleared. A thread freeing a block received it through some
    ///   synchronization after it was allocated, so even a Relaxed load sees the flag set for
    ///   a system block (coherence: the store happens before the load).
    /// * [`FREE_HOOKS`]: a hook is on (`hooks.rs`): frees go to the hooks. Set from the start
    ///   (until the first allocation has read the environment) and while the debug allocator
    ///   or tracemalloc is on; `hooks.rs` says why a free of a traced block sees it.
    #[cfg_attr(loom, allow(dead_code))] // models serve small requests from pools only
    pub(crate) free_flags: crate::sync::unmodelled::AtomicU8,
}

/// How many empty pools a thread keeps for the next pools it needs, instead of giving each
/// back to its arena as it empties: 32 pools of [`POOL_SIZE`](crate::alloc::POOL_SIZE), 512
/// KiB. The next pool the thread needs, of any size class, is one of them if it has one: of
/// the same class, taken with no lock; of another, made one of that class under the arena
/// lock but without a pool request's work. A LIFO batch of 1,000 blocks of 512 bytes fills
/// and empties 32 pools; giving each back and taking it again was a sixth of that batch's
/// time (`BENCHMARKS.md`, session 37).
///
/// The memory this keeps resident is at most 512 KiB per thread. A thread gives its spares
/// back at its exit, before a large block (256 KiB to 32 MiB) is made or kept for it, and
/// when it calls [`purge`](crate::alloc::purge). `stats()` counts them as pools in use (of
/// their last size class), whose blocks are all free.
///
/// ```
/// use pyheap::alloc::{class_block_size, size_class, stats, POOL_SIZE, SPARE_POOLS};
/// use std::alloc::{GlobalAlloc, Layout};
///
/// let layout = Layout::from_size_align(512, 8).unwrap();
/// let class = size_class(512, 8).unwrap();
/// let per_pool = POOL_SIZE / class_block_size(class);
/// std::thread::spawn(move || {
///     // SAFETY: each block is allocated with `layout` and freed once, with it.
///     unsafe {
///         let blocks: Vec<*mut u8> =
///             (0..8 * per_pool).map(|_| pyheap::PoolAlloc.alloc(layout)).collect();
///         for &b in blocks.iter().rev() {
///             pyheap::PoolAlloc.dealloc(b, layout);
///         }
///     }
///     // The 8 pools are still this thread's (7 spares and the class's current pool),
///     // ready for its next blocks; at most `SPARE_POOLS` spares are kept.
///     assert!(SPARE_POOLS >= 7);
///     assert!(stats().classes[class].pools >= 8);
///     pyheap::alloc::purge(); // gives the spares back
/// })
/// .join()
/// .unwrap();
/// ```
pub const SPARE_POOLS: usize = 32;

/// [`Global::free_flags`]: a small request was served by the system allocator.
#[cfg_attr(loom, allow(dead_code))] // set and read by `PoolAlloc`, not built under loom
pub(crate) const SMALL_SYSTEM_BLOCKS: u8 = 1;
/// [`Global::free_flags`]: frees go to the hooks.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) const FREE_HOOKS: u8 = 2;

// SAFETY: all shared state in `Global` is atomics, or guarded by the arena manager's lock or
// the heap registry's, or (heaps and pools) accessed only under the holder discipline
// documented on `Heap` and `Pool`.
unsafe impl Sync for Global {}
// SAFETY: as above; `Global` owns no thread-bound resource.
unsafe impl Send for Global {}

#[cfg(not(loom))]
pub(crate) static GLOBAL: Global = Global::new();

impl Global {
    crate::sync::maybe_const_fn! {
        pub(crate) fn new() -> Global {
            Global {
                arenas: ArenaManager::new(),
                heaps: super::registry::HeapRegistry::new(),
                map: ArenaMap::new(),
                // Under loom no hook exists: the models call the heaps directly.
                free_flags: crate::sync::unmodelled::AtomicU8::new(if cfg!(loom) { 0 } else { FREE_HOOKS }),
                spare_pools: if cfg!(loom) { 0 } else { SPARE_POOLS as u32 },
                orphan: OrphanCounters {
                    frees: [const { StatCounter::new() }; NUM_SIZE_CLASSES],
                    fallback: FallbackCounters {
                        allocs: StatCounter::new(),
                        frees: StatCounter::new(),
                        bytes_allocated: StatCounter::new(),
                        bytes_freed: StatCounter::new(),
                    },
                },
            }
        }
    }

    /// Free a pool block from a thread that holds no heap (its heap is gone at thread exit):
    /// through the remote-free list of the block's pool, whoever owns it.
    ///
    /// # Safety
    /// `block` is a live block of size `class` from one of this state's pools.
    pub(crate) unsafe fn free_without_heap(&self, block: *mut u8, class: usize) {
        let pool = super::pool::pool_of(block);
        // SAFETY: the block is live, so its pool header is valid and its owner is a mapped
        // heap (Heap invariants), which this thread, holding no heap, does not hold.
        unsafe {
            (*pool).check_class(class);
            super::heap::free_into(pool, block, self);
        }
        self.orphan.frees[class].add_shared(1);
    }
}

impl HeapHome for Global {
    /// A new pool of `class` for `owner`. Null when no arena can be mapped. (Abandoned heaps
    /// need no sweep here: pools of exited threads go back to the arenas as their blocks are
    /// freed, see `registry.rs`.) The fork handlers, which the arena lock needs, were
    /// registered before `owner` was bound (`thread.rs`), if not at load time.
    fn acquire_pool(&self, owner: *mut Heap, class: usize) -> *mut Pool {
        // SAFETY: `owner` is a live heap of ours (the caller).
        let owner = unsafe { (*owner).as_owner() };
        self.arenas.acquire_pool(&self.map, owner, class)
    }

    unsafe fn release_pool(&self, pool: *mut Pool) {
        // SAFETY: the trait's contract is `ArenaManager::release_pool`'s.
        unsafe { self.arenas.release_pool(&self.map, pool) }
    }

    unsafe fn reinit_pool(&self, pool: *mut Pool, owner: *mut Heap, class: usize) {
        // SAFETY: `owner` is a live heap of ours, held by the caller; the trait's contract is
        // `ArenaManager::reinit_pool`'s.
        unsafe { self.arenas.reinit_pool(pool, (*owner).as_owner(), class) }
    }

    fn spare_pool_limit(&self) -> u32 {
        self.spare_pools
    }

    unsafe fn let_go(&self, heap: &Heap) {
        self.heaps.let_go(heap);
    }

    #[cfg(all(target_os = "linux", not(loom), not(miri)))]
    unsafe fn release_large(&self, block: *mut u8, size: usize) {
        // SAFETY: the trait's contract is `free_kept_block`'s.
        unsafe { self.arenas.free_kept_block(&self.map, block, size) }
    }
}
