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

    unsafe fn let_go(&self, heap: &Heap) {
        self.heaps.let_go(heap);
    }

    #[cfg(all(target_os = "linux", not(loom), not(miri)))]
    unsafe fn release_large(&self, block: *mut u8, size: usize) {
        // SAFETY: the trait's contract is `free_kept_block`'s.
        unsafe { self.arenas.free_kept_block(&self.map, block, size) }
    }
}
