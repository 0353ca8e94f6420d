//! `Heap`: a thread's allocator state, its pools per size class, and the alloc/free paths.
//!
//! The fast paths (`alloc`, `free`) take a block from, or give one back to, the heap's current
//! pool of the size class: a few plain loads and stores, no lock and no atomic
//! read-modify-write. Everything else is in the `#[cold]` slow paths below them.

use super::arena_map::ArenaMap;
use super::large_cache::LargeCache;
use super::medium_cache::MediumCache;
use super::os::fatal;
use super::pool::Block;
use super::pool::{pool_of, prefetch_write, Pool, PoolOwner, PoolState};
use super::remote::{free_remote, take_remote_blocks, Pushed, RemoteFree, RemoteQueue};
use super::remote_batch::{Added, Chain, RemoteBatch, BATCH_LIMITS};
use super::remote_message;
use super::size_class::{class_block_size, NUM_SIZE_CLASSES};
use crate::sync::StatCounter;
use core::cell::Cell;
use core::ptr;

/// Per size class: the partial pools allocations go to when the current one (`Heap::current`) runs
/// out, and the counters of remote frees.
///
/// The fast paths count nothing: blocks in use are the pools' own `used` counts, summed by
/// `stats()` (which only has to subtract the blocks freed by other threads and not yet taken
/// back, counted here on the slow remote paths).
///
/// One cache line each: a remote free writes `remote_frees` and `batch` only, on one line.
#[repr(align(64))]
pub(crate) struct ClassQueue {
    /// Head of the doubly linked list of other pools with free blocks: the pool that became
    /// partial first, the next one `alloc_slow` takes (see `push_partial`).
    partial: Cell<*mut Pool>,
    /// Tail of that list: the pool that became partial last.
    partial_tail: Cell<*mut Pool>,
    /// Blocks this heap's thread freed into other heaps' pools.
    pub(crate) remote_frees: StatCounter,
    /// Blocks this heap took back from its pools' remote-free lists.
    pub(crate) reclaimed: StatCounter,
    /// Blocks this heap's thread freed into one pool of another heap, not yet published
    /// (`remote_batch.rs`). Beside `remote_frees`, which the same free path writes.
    batch: RemoteBatch,
}

const _: () = assert!(core::mem::size_of::<ClassQueue>() == 64);

/// Counters of requests sent to the system allocator.
#[derive(Default)]
pub(crate) struct FallbackCounters {
    pub(crate) allocs: StatCounter,
    pub(crate) frees: StatCounter,
    pub(crate) bytes_allocated: StatCounter,
    pub(crate) bytes_freed: StatCounter,
}

/// Where a heap's pools come from and go back to, and who takes an abandoned heap a freeing
/// thread came to hold: the layer that made the heap (`Global`, for the process or a model).
/// A heap reaches it through this trait, only on slow paths, so that this file does not
/// depend on the arenas and the registry above it.
pub(crate) trait HeapHome: Sync {
    /// A new pool of `class` for `owner`, or null when no arena can be mapped.
    fn acquire_pool(&self, owner: *mut Heap, class: usize) -> *mut Pool;
    /// Give back an empty pool.
    ///
    /// # Safety
    /// `pool` is a pool of this home's arenas, empty (`used == 0`), on none of its owner
    /// heap's lists, and its owner lets go of it here.
    unsafe fn release_pool(&self, pool: *mut Pool);
    /// Make `pool`, an empty pool `owner` keeps (a spare), a pool of `class` for it, as
    /// `acquire_pool` makes the pools it hands out, under the lock that `stats()` reads the
    /// pools' classes with.
    ///
    /// # Safety
    /// `pool` is a pool of this home's arenas, owned by `owner`, empty (`used == 0`), on none
    /// of its lists, and the caller holds `owner`.
    unsafe fn reinit_pool(&self, pool: *mut Pool, owner: *mut Heap, class: usize);
    /// How many empty pools a heap of this home may keep for its next pools
    /// (`Heap::spare`).
    fn spare_pool_limit(&self) -> u32;
    /// `heap`, abandoned, came to be held by the caller through a remote free
    /// ([`Pushed::Claimed`]): take its remote frees back and let go of it, or retire it.
    ///
    /// # Safety
    /// The caller holds `heap`, an abandoned heap of this home.
    unsafe fn let_go(&self, heap: &Heap);
    /// Give back a large block a heap kept (`large_cache.rs`). Only `Global` has large blocks
    /// (`PoolAlloc`'s fallback on Linux): elsewhere no heap keeps one, and this is never
    /// called.
    ///
    /// # Safety
    /// `block` is a large block of this home of `size` bytes, freed by the program, which the
    /// caller gives up.
    unsafe fn release_large(&self, block: *mut u8, size: usize) {
        let _ = (block, size);
        unreachable!("a large block kept by a heap whose home has none");
    }
}

/// A thread's allocator state.
///
/// # Invariants
///
/// * **One holder.** At any time at most one thread *holds* a heap: the thread it is bound to,
///   or a thread that claimed it while nobody held it (an adopter, or a freer whose push found
///   it unheld: see `RemoteQueue`, whose word is the holder token). Only the holder touches
///   the holder-only `Cell`s here and the holder-only fields of the heap's pools; the token
///   passes with a `Release` CAS (letting go) and an `Acquire` CAS (claiming), which order one
///   holder's accesses before the next one's.
/// * **Lifetime.** A heap is mapped from its creation until its holder retires it
///   (`HeapRegistry::retire`), which it does only when the heap owns no pool (`pools == 0`)
///   and after taking it off the registry's lists under the registry lock. So a thread that
///   holds a live block reaches a valid heap through the block's `Pool::owner` (the heap owns
///   that pool), until its remote free queues the pool; after that it must not touch the heap
///   unless the push made it the holder (`free_remote`). A retired heap's memory may be
///   reused for a new heap.
/// * Each class's `batch` follows `RemoteBatch`'s invariants (`remote_batch.rs`): its blocks
///   are other heaps' and keep their pools owned, as blocks on a remote-free list do.
/// * Every pool the heap owns (`Pool::owner == self`) is exactly one of: some class's
///   `current`, on that class's `partial` list, `Full`, or on the `spare` list (empty:
///   `used == 0`, no block live or in a freer's hands); its `state` says which. `pools`
///   counts them, `spares` those on the `spare` list, at most `spare_limit`. A heap that is
///   let go keeps no spare: `release_empty_pools` gives them back first, and pools emptied
///   while it is let go go back to their arenas.
/// * The registry fields (`reg_prev`, `reg_next`, `listed`) are read and written only with the
///   registry lock held, by any thread.
pub(crate) struct Heap {
    /// Per class, the pool allocations come from first (may be null). Apart from the rest of
    /// `ClassQueue`, so that the allocation fast path's loads of it fall in 5 cache lines
    /// (rather than one in every 32 bytes of the class queues) and index it with one
    /// instruction.
    current: [Cell<*mut Pool>; NUM_SIZE_CLASSES],
    classes: [ClassQueue; NUM_SIZE_CLASSES],
    pub(crate) fallback: FallbackCounters,
    /// Medium blocks of `PoolAlloc`'s fallback the holder freed, for its next requests
    /// (`medium_cache.rs`).
    pub(crate) medium: MediumCache,
    /// The large blocks the holder freed last (up to four), for its next requests of the same
    /// shapes (`large_cache.rs`).
    pub(crate) large: LargeCache,
    /// Pools of this heap with blocks freed by other threads, and the holder token (see
    /// `remote.rs`).
    pub(crate) remote_pools: RemoteQueue,
    /// Pools this heap owns (holder only).
    pools: Cell<usize>,
    /// The empty pools this heap keeps for the next pools it needs, most recently emptied
    /// first, linked through `Pool::next` (holder only): a program that empties a few pools
    /// and fills them again (a LIFO batch larger than a pool, a pool emptied by remote frees)
    /// takes them back without the arena lock. At most `spare_limit` of them, counted in
    /// `spares`; all given back by [`release_empty_pools`](Self::release_empty_pools) (thread
    /// exit, before a large block is kept or made) and by `purge()` on this thread.
    spare: Cell<*mut Pool>,
    spares: Cell<u32>,
    /// The home's `spare_pool_limit`, read once.
    spare_limit: u32,
    /// Bit `c` set: class `c`'s `ClassQueue::batch` is not empty (holder only).
    batched: Cell<u64>,
    /// Links in the registry's list of held or of abandoned heaps (registry lock).
    pub(crate) reg_prev: Cell<*mut Heap>,
    pub(crate) reg_next: Cell<*mut Heap>,
    /// Which of the two lists the heap is on (registry lock).
    pub(crate) listed: Cell<Listed>,
    /// The layer that made the heap and outlives it.
    home: *const dyn HeapHome,
    /// The global arena map's words (never null: a heap is made only once the map exists).
    map_words: *const crate::sync::unmodelled::AtomicU64,
}

/// The registry list a heap is on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Listed {
    /// Bound to a running thread.
    Held,
    /// Its thread exited with live blocks in its pools; waiting for adoption or for its last
    /// block to be freed.
    Abandoned,
}

impl Heap {
    /// A fresh heap, held by its creator, on no list yet. `home` outlives it; `map_words` are
    /// the words of `home`'s arena map (non-null).
    pub(crate) fn new(
        home: *const dyn HeapHome,
        map_words: *const crate::sync::unmodelled::AtomicU64,
    ) -> Heap {
        Heap {
            current: core::array::from_fn(|_| Cell::new(ptr::null_mut())),
            classes: core::array::from_fn(|_| ClassQueue {
                partial: Cell::new(ptr::null_mut()),
                partial_tail: Cell::new(ptr::null_mut()),
                remote_frees: StatCounter::new(),
                reclaimed: StatCounter::new(),
                batch: RemoteBatch::new(),
            }),
            batched: Cell::new(0),
            fallback: FallbackCounters::default(),
            medium: MediumCache::new(),
            large: LargeCache::new(),
            remote_pools: RemoteQueue::new(),
            pools: Cell::new(0),
            spare: Cell::new(ptr::null_mut()),
            spares: Cell::new(0),
            // SAFETY: the home outlives every heap it makes (this function's contract).
            spare_limit: unsafe { (*home).spare_pool_limit() },
            reg_prev: Cell::new(ptr::null_mut()),
            reg_next: Cell::new(ptr::null_mut()),
            listed: Cell::new(Listed::Held),
            home,
            map_words,
        }
    }

    pub(crate) fn class(&self, class: usize) -> &ClassQueue {
        &self.classes[class]
    }

    fn home(&self) -> &dyn HeapHome {
        // SAFETY: the home outlives every heap it made (`Heap::new`'s contract).
        unsafe { &*self.home }
    }

    /// This heap as the pools see their owner.
    pub(crate) fn as_owner(&self) -> *mut PoolOwner {
        self as *const Heap as *mut PoolOwner
    }

    /// The heap behind a pool's `owner`.
    ///
    /// # Safety
    /// `owner` is a non-null `Pool::owner`, and the caller may reach that heap (holds a live
    /// block of the pool: see the lifetime invariant above).
    pub(crate) unsafe fn from_owner<'a>(owner: *mut PoolOwner) -> &'a Heap {
        // SAFETY: every owner is a heap cast by `as_owner` (see `PoolOwner`); alive per the
        // caller.
        unsafe { &*(owner as *const Heap) }
    }

    /// The fast path of allocation: a block from the class's current pool (its free list, or
    /// its never-used tail), or null (then `alloc` does the rest). A few loads and stores.
    /// Holder only.
    #[inline(always)]
    pub(crate) fn alloc_fast(&self, class: usize) -> *mut u8 {
        // SAFETY: callers pass `class < NUM_SIZE_CLASSES` (from `size_class`).
        let pool = unsafe { self.current.get_unchecked(class) }.get();
        if pool.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: `current` is a pool this heap owns; we hold the heap.
        unsafe { (*pool).take_block() }.0
    }

    /// The fast path of freeing: if `block` is in one of pyheap's arenas, in a pool this heap
    /// owns, of size `class`, free it and return true; otherwise return false and touch
    /// nothing (then `free` or the system allocator does the rest). Holder only.
    ///
    /// # Safety
    /// `block` is a live block allocated with size class `class` (from a pool or the system
    /// allocator), not used again by the caller if this returns true.
    #[inline(always)]
    pub(crate) unsafe fn free_fast(&self, block: *mut u8, class: usize) -> bool {
        // SAFETY: forwarded contract.
        unsafe { self.free_fast_with(self.map_words, block, class) }
    }

    /// The arena map's words this heap was made with (see `thread.rs`, which keeps a copy in
    /// a thread-local so that `free` need not load it from the heap first).
    #[cfg_attr(loom, allow(dead_code))] // no thread-locals under loom
    pub(crate) fn map_words(&self) -> *const crate::sync::unmodelled::AtomicU64 {
        self.map_words
    }

    /// `free_fast`, given the arena map's words (`self.map_words()`, or a copy of it).
    ///
    /// # Safety
    /// As for `free_fast`; `words` is `self.map_words()`.
    #[inline(always)]
    pub(crate) unsafe fn free_fast_with(
        &self,
        words: *const crate::sync::unmodelled::AtomicU64,
        block: *mut u8,
        class: usize,
    ) -> bool {
        // SAFETY: `words` are the live global map's (Heap::new's contract, caller's).
        if !unsafe { ArenaMap::contains_in(words, block) } {
            return false;
        }
        // SAFETY: forwarded contract; the block is in an arena.
        unsafe { self.free_pool_block(block, class) }
    }

    /// `free_fast` for a block known to be a pool block (one of pyheap's arenas): the test of
    /// the arena map is the caller's, or unneeded (see `Global::free_flags`).
    ///
    /// # Safety
    /// As for `free_fast`, and `block` is in one of pyheap's arenas.
    #[inline(always)]
    pub(crate) unsafe fn free_pool_block(&self, block: *mut u8, class: usize) -> bool {
        let pool = pool_of(block);
        // SAFETY: the block is live and in an arena, so its pool is initialized (Pool
        // invariants).
        let p = unsafe { &*pool };
        if p.owner.load(crate::sync::Ordering::Relaxed) != self.as_owner()
            || p.class.get() as usize != class
        {
            return false;
        }
        // SAFETY: our own pool, and we hold the heap.
        let used = unsafe { p.put_block(block) };
        // `used + 1 <= 1`: the pool is now empty, or was already (a double free).
        if used.wrapping_add(1) <= 1 || p.state.get() == PoolState::Full {
            self.pool_gained_free_blocks(pool);
        }
        true
    }

    /// The free fast path of `PoolAlloc`: if `block`'s pool is owned by `heap` and `size` fits
    /// its blocks ([`Pool::fits`]), free the block there and return true; otherwise return
    /// false and touch nothing. `heap` may be null or any value that is not a heap (a thread
    /// with no heap bound): the pool of a live block is owned by a heap (Pool invariants), so
    /// the test fails without `heap` being read. No size class is computed: the pool's block size is compared instead.
    ///
    /// # Safety
    /// `block` is a live block of one of pyheap's arenas, freed with a layout of `size`
    /// bytes, not used again by the caller if this returns true; `pool` is
    /// `pool_of(block)`; if `heap` is a heap, the calling thread holds it.
    #[inline(always)]
    pub(crate) unsafe fn free_own_block(
        heap: *const Heap,
        pool: *mut Pool,
        block: *mut u8,
        size: usize,
    ) -> bool {
        // SAFETY: forwarded contract.
        if !unsafe { Self::owns_fitting(heap, pool, size) } {
            return false;
        }
        // SAFETY: `heap` owns the pool, so it is a heap, and the calling thread holds it
        // (caller's contract).
        unsafe {
            let p = &*pool;
            let used = p.put_block(block);
            // `used + 1 <= 1`: the pool is now empty, or was already (a double free).
            if used.wrapping_add(1) <= 1 || p.state.get() == PoolState::Full {
                (*heap).pool_gained_free_blocks(pool);
            }
        }
        true
    }

    /// The test of [`free_own_block`](Self::free_own_block): whether `heap` owns `pool` and a
    /// block freed with a layout of `size` bytes belongs in it ([`Pool::fits`]). Touches
    /// nothing else; `heap` is not read.
    ///
    /// # Safety
    /// `pool` is the pool of a live block of one of pyheap's arenas.
    #[inline(always)]
    pub(crate) unsafe fn owns_fitting(heap: *const Heap, pool: *mut Pool, size: usize) -> bool {
        // SAFETY: the block is live and in an arena, so its pool is initialized (Pool
        // invariants); `owner`, `block_size` and `step` are readable by any thread holding a
        // live block.
        let p = unsafe { &*pool };
        p.owner.load(crate::sync::Ordering::Relaxed) == heap as *mut PoolOwner && p.fits(size)
    }

    /// The free half of `PoolAlloc::realloc`'s fast path: put `block` back into `pool`, then
    /// return `moved_to` (the block's new place), so that the caller's last step is a jump
    /// here and its fast path keeps nothing live across a call.
    ///
    /// # Safety
    /// `owns_fitting(heap, pool, size)` held for the `size` `block` was allocated with;
    /// `block` is a live block of `pool`, not used again by the caller; the calling thread
    /// holds `heap`.
    #[cfg_attr(loom, allow(dead_code))] // `PoolAlloc`'s, not built under loom
    #[inline(always)]
    pub(crate) unsafe fn put_own_block(
        heap: *const Heap,
        pool: *mut Pool,
        block: *mut u8,
        moved_to: *mut u8,
    ) -> *mut u8 {
        // SAFETY: `heap` owns the pool and we hold it (caller's contract).
        let used = unsafe { (*pool).put_block(block) };
        // `used + 1 <= 1`: the pool is now empty, or was already (a double free).
        // SAFETY: as above.
        if used.wrapping_add(1) <= 1 || unsafe { (*pool).state.get() } == PoolState::Full {
            // SAFETY: as above.
            return unsafe { Self::pool_gained_free_blocks_then(heap, pool, moved_to) };
        }
        moved_to
    }

    /// `pool_gained_free_blocks`, then return `moved_to` (for `put_own_block`).
    ///
    /// # Safety
    /// `heap` owns `pool` and the calling thread holds it.
    #[cfg_attr(loom, allow(dead_code))]
    #[cold]
    #[inline(never)]
    unsafe fn pool_gained_free_blocks_then(
        heap: *const Heap,
        pool: *mut Pool,
        moved_to: *mut u8,
    ) -> *mut u8 {
        // SAFETY: caller's contract.
        unsafe { (*heap).pool_gained_free_blocks(pool) };
        // Opaque, so that the compiler does not see that this returns its argument: it would
        // then keep `moved_to` in a saved register across a call instead of jumping here.
        core::hint::black_box(moved_to)
    }

    /// Allocate a block of `class`. Returns null only when no pool can be had (no arena could
    /// be mapped): the caller then falls back to the system allocator. Holder only.
    ///
    /// What `PoolAlloc` does, in two places (the fast path inline, the slow one in
    /// `alloc_cold`); the loom models call it in one.
    #[cfg(loom)]
    #[inline]
    pub(crate) fn alloc(&self, class: usize) -> *mut u8 {
        let block = self.alloc_fast(class);
        if !block.is_null() {
            return block;
        }
        self.alloc_slow(class).0
    }

    /// Allocate a zeroed block of `class`, skipping the memset for never-used OS memory.
    #[inline]
    pub(crate) fn alloc_zeroed(&self, class: usize) -> *mut u8 {
        let (block, zero) = self.alloc_slow(class);
        if !block.is_null() && !zero {
            // SAFETY: the block has `class_block_size(class)` writable bytes.
            unsafe { ptr::write_bytes(block, 0, class_block_size(class)) };
        }
        block
    }

    /// Free `block`, a live block of size `class` in one of pyheap's arenas. Holder only.
    ///
    /// # Safety
    /// `block` was allocated with size class `class` from a pool and is not used again.
    #[inline]
    pub(crate) unsafe fn free(&self, block: *mut u8, class: usize) {
        // SAFETY: forwarded contract (a pool block is a block of one of the arenas).
        if unsafe { self.free_fast(block, class) } {
            return;
        }
        // SAFETY: forwarded contract; `free_fast` took every block of our own pools of
        // `class`.
        unsafe { self.free_foreign(block, class) }
    }

    /// Free a pool block that [`free_pool_block`](Self::free_pool_block) (or `free_fast`)
    /// did not take: a block of another heap's pool (the remote-free path), or a layout that
    /// does not match its pool (a fatal error). Nothing is tested twice: the caller already
    /// knows the block is in one of the arenas. Holder only.
    ///
    /// # Safety
    /// `block` is a live block of one of the arenas, allocated with size class `class`, not
    /// used again; `free_pool_block(block, class)` returned false for it on this heap.
    #[inline(never)]
    pub(crate) unsafe fn free_foreign(&self, block: *mut u8, class: usize) {
        let pool = pool_of(block);
        // SAFETY: the block is live, so its pool is mapped and initialized (Pool invariants).
        let p = unsafe { &*pool };
        p.check_class(class);
        // The class matches, so the owner does not (`free_pool_block` said no): another
        // heap's pool.
        // SAFETY: forwarded contract; `pool` is the block's, of class `class`, not ours.
        unsafe { self.free_other_heaps_block(pool, block, class) };
    }

    /// `free_foreign` once the block's pool is known to be of `class` and not this heap's:
    /// for `PoolAlloc`'s free path, which found both out already. Holder only.
    ///
    /// # Safety
    /// `block` is a live block of `pool` (of class `class`), not used again; this heap does
    /// not own `pool`.
    #[inline(always)]
    pub(crate) unsafe fn free_other_heaps_block(
        &self,
        pool: *mut Pool,
        block: *mut u8,
        class: usize,
    ) {
        let q = &self.classes[class];
        // Counted as freed now, batched or not (`remote_batch.rs`: statistics).
        q.remote_frees.add(1);
        // SAFETY: we hold the heap; the block is a live block of `pool`, another heap's pool
        // of `class` (caller's contract), ours to give.
        match unsafe { q.batch.add(pool, block, &BATCH_LIMITS[class]) } {
            Added::Batched => {}
            Added::Full => self.flush_batch(class),
            // SAFETY: as above.
            Added::OtherPool => unsafe { self.restart_batch(class, pool, block) },
        }
    }

    /// Make `block` of `pool` the whole batch of `class`, then publish what the batch held.
    /// (In this order: publishing may claim an abandoned heap and let go of it, and the batch
    /// is consistent whatever that does.)
    ///
    /// # Safety
    /// As for `free_other_heaps_block`.
    #[inline(never)]
    unsafe fn restart_batch(&self, class: usize, pool: *mut Pool, block: *mut u8) {
        // SAFETY: forwarded contract.
        let old = unsafe {
            self.classes[class]
                .batch
                .restart(pool, block, BATCH_LIMITS[class].carry)
        };
        self.batched.set(self.batched.get() | 1 << class);
        self.publish(old);
    }

    /// Publish the batch of `class` (`remote_batch.rs`). Holder only.
    #[inline(never)]
    fn flush_batch(&self, class: usize) {
        let chain = self.classes[class].batch.take();
        self.batched.set(self.batched.get() & !(1 << class));
        self.publish(chain);
    }

    /// Publish every batch of remote frees of this heap's thread (`remote_batch.rs`): on the
    /// allocation slow path before taking a new pool, and before the heap is given up.
    /// Holder only.
    pub(crate) fn flush_remote_batches(&self) {
        loop {
            let batched = self.batched.get();
            if batched == 0 {
                return;
            }
            self.flush_batch(batched.trailing_zeros() as usize);
        }
    }

    /// Whether every batch is empty (`RemoteBatch` invariants: a heap nobody is bound to).
    pub(crate) fn batches_empty(&self) -> bool {
        self.batched.get() == 0 && self.classes.iter().all(|q| q.batch.is_empty())
    }

    /// Free a chain a batch held (nothing if it is empty).
    fn publish(&self, chain: Chain) {
        if chain.count == 0 {
            return;
        }
        // SAFETY: the chain's blocks are live blocks of `chain.pool`, another heap's pool
        // (`RemoteBatch` invariants: they keep it owned by that heap, which we do not hold,
        // and mapped), linked from top to bottom, given by this heap's thread.
        unsafe {
            free_chain_into(
                chain.pool,
                chain.top,
                chain.bottom,
                chain.count,
                self.home(),
            )
        };
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn alloc_slow(&self, class: usize) -> (*mut u8, bool) {
        let q = &self.classes[class];
        let current = &self.current[class];
        let mut reclaimed = false;
        loop {
            let pool = current.get();
            if !pool.is_null() {
                // SAFETY: `current` is ours.
                let p = unsafe { &*pool };
                let (block, zero) = p.take_block();
                if !block.is_null() {
                    return (block, zero);
                }
                p.state.set(PoolState::Full);
                current.set(ptr::null_mut());
            }
            let partial = q.partial.get();
            if !partial.is_null() {
                self.unlink_partial(partial);
                // SAFETY: pools on our partial list are ours.
                unsafe { (*partial).state.set(PoolState::Current) };
                current.set(partial);
                continue;
            }
            if !reclaimed {
                reclaimed = true;
                if self.collect_remote_frees() {
                    continue;
                }
            }
            let spare = self.take_spare(class);
            if !spare.is_null() {
                current.set(spare);
                continue;
            }
            // About to grow: first give back the blocks of other heaps this thread holds.
            if self.batched.get() != 0 {
                self.flush_remote_batches();
            }
            // Then the large blocks it keeps, whose pools the new one may come from (a
            // `HashMap` that outgrew its table), unless this only takes again a pool of the
            // class given back at a large free or request (`large_cache.rs`).
            if self.large.should_release(class) {
                self.release_large_cache();
            }
            let pool = self
                .home()
                .acquire_pool(self as *const Heap as *mut Heap, class);
            if pool.is_null() {
                return (ptr::null_mut(), false);
            }
            self.pools.set(self.pools.get() + 1);
            current.set(pool);
        }
    }

    /// Give the large blocks this heap keeps (if any) back to its home. Holder only.
    pub(crate) fn release_large_cache(&self) {
        while self.large.len() != 0 {
            self.release_kept_block(self.large.len() - 1);
        }
    }

    /// Give kept large block `i` (`i < self.large.len()`) back to its home. Holder only.
    pub(crate) fn release_kept_block(&self, i: usize) {
        let (block, size) = self.large.remove(i);
        // SAFETY: a large block of our home, freed by the program, kept by us alone
        // (`LargeCache`'s invariants); given up here.
        unsafe { self.home().release_large(block, size) };
    }

    /// `pool`, ours, just got blocks back: put it on the partial list if it was full; if it
    /// is now empty, keep it as a spare or return it to its arena (unless it is the class's
    /// current pool: keeping that one is the pool-level hysteresis against alloc/free
    /// ping-pong).
    #[cold]
    fn pool_gained_free_blocks(&self, pool: *mut Pool) {
        // SAFETY: `pool` is ours and we hold the heap.
        let p = unsafe { &*pool };
        let state = p.state.get();
        if p.used.get() > p.capacity.get() {
            fatal(
                "pyheap: a block was freed twice (more blocks freed than handed out in its pool)",
            );
        }
        if p.used.get() == 0 && state != PoolState::Current {
            if state == PoolState::Partial {
                self.unlink_partial(pool);
            }
            self.keep_or_release(pool);
        } else if state == PoolState::Full {
            self.push_partial(pool);
        }
    }

    /// `pool`, ours, empty and on none of our lists: keep it on the spare list, or give it
    /// back to its arena if `spare_limit` pools are kept already.
    fn keep_or_release(&self, pool: *mut Pool) {
        if self.spares.get() >= self.spare_limit {
            self.release_pool(pool);
            return;
        }
        // SAFETY: `pool` is ours and we hold the heap.
        let p = unsafe { &*pool };
        p.state.set(PoolState::Spare);
        p.next.set(self.spare.get());
        self.spare.set(pool);
        self.spares.set(self.spares.get() + 1);
    }

    /// A kept empty pool made a pool of `class` (its state `Current`, for the caller to make
    /// the class's current pool), or null if none is kept. The most recently kept one: of
    /// the class already, its blocks are handed out again from the first
    /// ([`Pool::reset_empty`], no lock); of another class, the home makes it one of `class`
    /// under the arena lock, without the arena lists' work of a pool request. Holder only.
    fn take_spare(&self, class: usize) -> *mut Pool {
        let pool = self.pop_spare();
        if pool.is_null() {
            return pool;
        }
        // SAFETY: `pool` was our spare: ours, empty, on none of our lists now.
        let p = unsafe { &*pool };
        if p.class.get() as usize == class {
            p.reset_empty();
            p.state.set(PoolState::Current);
        } else {
            // SAFETY: as above; we hold the heap. `reinit_pool` leaves it `Current`.
            unsafe {
                self.home()
                    .reinit_pool(pool, self as *const Heap as *mut Heap, class)
            };
        }
        pool
    }

    /// Give every kept empty pool back to its arena; returns their classes, bit `c` for class
    /// `c`. Holder only. O(`spare_limit`).
    pub(crate) fn release_spare_pools(&self) -> u64 {
        let mut released = 0;
        loop {
            let pool = self.pop_spare();
            if pool.is_null() {
                return released;
            }
            // SAFETY: `pool` was our spare: ours, empty.
            released |= 1 << unsafe { (*pool).class.get() };
            self.release_pool(pool);
        }
    }

    /// Take the most recently kept spare off the spare list (null if there is none). Holder
    /// only.
    fn pop_spare(&self) -> *mut Pool {
        let pool = self.spare.get();
        if !pool.is_null() {
            // SAFETY: `pool` heads our spare list, linked through `next` (ours).
            self.spare.set(unsafe { (*pool).next.get() });
            self.spares.set(self.spares.get() - 1);
        }
        pool
    }

    fn release_pool(&self, pool: *mut Pool) {
        self.pools.set(self.pools.get() - 1);
        // SAFETY: `pool` is ours, empty (used == 0: no live block, no freer in flight), and on
        // none of our lists any more.
        unsafe { self.home().release_pool(pool) };
    }

    /// Pools this heap owns. Holder only.
    pub(crate) fn pools(&self) -> usize {
        self.pools.get()
    }

    /// Put `pool`, which just got a block back while full, at the tail of its class's partial
    /// list. First in, first out: `alloc_slow` takes the pool that has been partial longest,
    /// which has had the most time to collect free blocks, so that a pool change buys many
    /// fast allocations. (At the head, as CPython's `usedpools` does, the next pool taken was
    /// the one that had just got its first block back: on random-size churn one allocation in
    /// 14 changed pools.)
    fn push_partial(&self, pool: *mut Pool) {
        // SAFETY: `pool` and the list's pools are ours.
        unsafe {
            let p = &*pool;
            let q = &self.classes[p.class.get() as usize];
            let tail = q.partial_tail.get();
            p.prev.set(tail);
            p.next.set(ptr::null_mut());
            if tail.is_null() {
                q.partial.set(pool);
            } else {
                (*tail).next.set(pool);
            }
            q.partial_tail.set(pool);
            p.state.set(PoolState::Partial);
        }
    }

    fn unlink_partial(&self, pool: *mut Pool) {
        // SAFETY: `pool` is on our partial list; its neighbours are ours.
        unsafe {
            let p = &*pool;
            let q = &self.classes[p.class.get() as usize];
            let (prev, next) = (p.prev.get(), p.next.get());
            if prev.is_null() {
                q.partial.set(next);
            } else {
                (*prev).next.set(next);
            }
            if next.is_null() {
                q.partial_tail.set(prev);
            } else {
                (*next).prev.set(prev);
            }
        }
    }

    /// Take back every block other threads freed into our pools. Returns whether any pool
    /// was queued. Holder only.
    ///
    /// Bound (audit of issue 13): it walks the queued pools (`take_remote_blocks` takes a
    /// pool's whole list with one swap) and puts each list taken back on its pool
    /// (`Pool::take_back`: O(1), the blocks are not touched), so its work is proportional to
    /// the number of pools queued since the last collection, at most one per remote free:
    /// O(1) amortized per remote free, taken with no lock. It is called when the heap's pools of a
    /// class run out (before taking a new pool), at thread exit, and by a freer that became
    /// an abandoned heap's holder (those two through
    /// [`collect_remote_frees_letting_go`](Self::collect_remote_frees_letting_go)).
    pub(crate) fn collect_remote_frees(&self) -> bool {
        self.collect_remote_frees_with(true)
    }

    /// [`collect_remote_frees`](Self::collect_remote_frees) for a heap nobody allocates from
    /// soon (an exiting thread's, after [`release_empty_pools`](Self::release_empty_pools), or
    /// an abandoned one being let go): a current pool that the blocks taken back leave empty
    /// goes back to its arena too, so no current pool of the heap is empty afterwards. As
    /// only the pools taken back can have become empty since (an abandoned heap's holder
    /// frees nothing locally), letting go of an abandoned heap needs no walk over its size
    /// classes: its work is that of the pools queued.
    pub(crate) fn collect_remote_frees_letting_go(&self) -> bool {
        self.collect_remote_frees_with(false)
    }

    #[inline(always)]
    fn collect_remote_frees_with(&self, keep_current: bool) -> bool {
        let mut pool = self.remote_pools.take_all();
        let any = !pool.is_null();
        // One pool behind: each pool's list is taken (its header's line, last written by a
        // freer) and its top message asked for (a line a freer wrote: its count is read when
        // it becomes the pool's first message) one step before it is taken back, and the next pool's header
        // is asked for as soon as its address is read, so that these misses overlap instead
        // of following one another.
        let mut taken: Option<(*mut Pool, *mut Block, *mut Block, u32)> = None;
        while !pool.is_null() {
            // SAFETY: we hold the heap and took `pool` from its queue.
            let (next, top, bottom, count) = unsafe { take_remote_blocks(pool) };
            prefetch_write(next.cast());
            if let Some((pool, top, bottom, count)) = taken.take() {
                // SAFETY: as below, one step later.
                unsafe { self.reclaim(pool, top, bottom, count, keep_current) };
            }
            if count > 0 {
                prefetch_write(top.cast());
                taken = Some((pool, top, bottom, count));
            }
            pool = next;
        }
        if let Some((pool, top, bottom, count)) = taken {
            // SAFETY: we hold the heap and took the list (`top` to `bottom`, `count` blocks)
            // from `pool`'s `RemoteList` (`take_remote_blocks`).
            unsafe { self.reclaim(pool, top, bottom, count, keep_current) };
        }
        any
    }

    /// Take back the `count > 0` blocks of `pool`'s remote-free list, taken from it (messages
    /// from `top` down to `bottom`): link them into the pool's free list, uncount them, and
    /// move the pool between lists (or give it back) as the count says. Holder only.
    ///
    /// # Safety
    /// We hold the heap and took the list from `pool`'s `RemoteList` (`take_remote_blocks`).
    #[inline(always)]
    unsafe fn reclaim(
        &self,
        pool: *mut Pool,
        top: *mut Block,
        bottom: *mut Block,
        count: u32,
        keep_current: bool,
    ) {
        // SAFETY: we hold the heap, so the pool's holder-only fields are ours.
        let p = unsafe { &*pool };
        // SAFETY: caller's contract.
        unsafe { p.take_back(top, bottom) };
        p.used.set(p.used.get().wrapping_sub(count));
        let class = p.class.get() as usize;
        self.classes[class].reclaimed.add(u64::from(count));
        if !keep_current && p.used.get() == 0 {
            // Letting the heap go: no spare is kept, the pool goes back to its arena.
            match p.state.get() {
                PoolState::Current => self.current[class].set(ptr::null_mut()),
                PoolState::Partial => self.unlink_partial(pool),
                _ => {}
            }
            self.release_pool(pool);
        } else {
            self.pool_gained_free_blocks(pool);
        }
    }

    /// Give every empty pool back to its arena, the spares and the empty current pools (a
    /// heap nobody allocates from soon: an exiting thread's; or before a large block is kept
    /// or made); returns the classes whose pool went back, bit `c` for class `c`. Holder
    /// only. O(size classes + `spare_limit`): it looks at the spares and at each class's
    /// current pool, never at the partial lists (a partial pool is never empty: it becomes a
    /// spare or goes back to its arena as soon as its last block does).
    pub(crate) fn release_empty_pools(&self) -> u64 {
        let mut released = self.release_spare_pools();
        for (class, current) in self.current.iter().enumerate() {
            let pool = current.get();
            // SAFETY: `current` is ours.
            if !pool.is_null() && unsafe { (*pool).used.get() } == 0 {
                current.set(ptr::null_mut());
                self.release_pool(pool);
                released |= 1 << class;
            }
        }
        released
    }
}

/// Free `block` of `pool` through the pool's remote-free list, at once (no batch: a thread
/// with no heap); see [`free_chain_into`].
///
/// # Safety
/// `block` is a live block of `pool`, not used again by the caller, and the caller does not
/// hold the pool's owner heap.
pub(crate) unsafe fn free_into(pool: *mut Pool, block: *mut u8, home: &dyn HeapHome) {
    let block = block.cast::<Block>();
    // SAFETY: the block is ours (caller's contract); its pool's class is fixed while it is
    // live. A message carrying nothing (`remote_message.rs`).
    unsafe {
        let carry = BATCH_LIMITS[(*pool).class.get() as usize].carry;
        remote_message::start(block, ptr::null_mut(), carry);
    }
    // SAFETY: forwarded contract; a block is the chain of one.
    unsafe { free_chain_into(pool, block, block, 1, home) }
}

/// Free the chain of `count` blocks of `pool` from `top` down to `bottom` through the pool's
/// remote-free list, with one CAS; if that made this thread the holder of the pool's owner
/// heap (an abandoned heap nobody held), take the heap's remote frees back and let go of it,
/// or retire it if it owns no pool any more: so an exited thread's pools go back to the
/// arenas, and its heap goes, as the program frees their blocks.
///
/// # Safety
/// The chain's blocks are live blocks of `pool`, linked from `top` through `Block::next` down
/// to `bottom`, `1 <= count <=` the pool's capacity, not used again by the caller, and the
/// caller does not hold the pool's owner heap.
pub(crate) unsafe fn free_chain_into(
    pool: *mut Pool,
    top: *mut Block,
    bottom: *mut Block,
    count: u32,
    home: &dyn HeapHome,
) {
    // SAFETY: the blocks are live, so the pool header is valid, and when `free_remote` reads
    // the pool's owner (only if it queues the pool) that is a mapped heap that owns the pool
    // and that we do not hold (caller's contract, Heap invariants and `free_remote`).
    let pushed = unsafe {
        free_remote(pool, top, bottom, count, |owner| {
            &Heap::from_owner(owner).remote_pools
        })
    };
    if pushed == RemoteFree::Pushed(Pushed::Claimed) {
        // SAFETY: we hold the heap now, an abandoned heap of `home`: nobody else can retire
        // it, nor take our blocks back, so the pool is still its and names it as its owner.
        unsafe {
            home.let_go(Heap::from_owner(
                (*pool).owner.load(crate::sync::Ordering::Relaxed),
            ))
        };
    }
}
