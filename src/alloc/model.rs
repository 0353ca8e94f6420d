//! The allocator's internals with explicit heaps, for the loom models in `loom-tests/`.
//!
//! Only built under `--cfg loom`. Under loom there is no `static` state and no thread-local
//! binding: a model makes a [`ModelAllocator`] (one allocator's global state) per loom
//! execution, gives each loom thread a [`ModelHeap`], and calls the same `Heap`, `remote`,
//! `HeapRegistry` and `ArenaManager` code that `PoolAlloc` calls in normal builds.
//!
//! Loom threads need `'static` closures, so both handles share the global state through an
//! `Arc` (std's: its reference count is bookkeeping of the model, not part of the protocol,
//! and modelling it would only multiply the interleavings). Block addresses cross threads as
//! [`BlockPtr`]s. The state is dropped, and every mapping it made is unmapped, when the last
//! handle goes, which a model must make happen inside its execution (join every thread).

use super::global::Global;
use super::heap::Heap;
use super::pool::Pool;
use super::size_class::size_class;
use super::stats::AllocStats;
use super::work::SlowPathWork;
use core::alloc::Layout;
use std::sync::Arc;

/// One allocator's global state (arenas, heaps, arena map). Cloning gives another handle to
/// the same state.
#[derive(Clone)]
pub struct ModelAllocator {
    global: Arc<Global>,
}

/// A block address that may be sent to another loom thread (the model, not the type system,
/// keeps track of who may use it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockPtr(pub *mut u8);

// SAFETY: a plain address; whoever dereferences it answers for it.
unsafe impl Send for BlockPtr {}
// SAFETY: as above.
unsafe impl Sync for BlockPtr {}

fn class_of(layout: Layout) -> usize {
    size_class(layout.size(), layout.align()).expect("small layouts only")
}

impl ModelAllocator {
    /// A fresh allocator state that keeps `retained_empty_arenas` empty arenas mapped (0
    /// makes models see arenas go back to the OS as soon as they are empty).
    pub fn new(retained_empty_arenas: usize) -> Self {
        let mut global = Global::new();
        global.arenas.set_min_retained(retained_empty_arenas);
        ModelAllocator {
            global: Arc::new(global),
        }
    }

    /// As [`new`](Self::new), but empty arenas decay as outside loom (`arena.rs`), with the
    /// default purge delay: an arena that empties is not unmapped by the release that empties
    /// it, but by a decay check (`ArenaManager::purge_due`, on a later pool request or
    /// release) once the model clock has moved past the delay ([`advance_clock`]).
    ///
    /// [`advance_clock`]: Self::advance_clock
    pub fn with_decay(retained_empty_arenas: usize) -> Self {
        let mut global = Global::new();
        global.arenas.set_min_retained(retained_empty_arenas);
        global.arenas.set_decay(true);
        ModelAllocator {
            global: Arc::new(global),
        }
    }

    /// As [`new`](Self::new), but each heap keeps up to `spare_pools` empty pools for its
    /// next pools, as outside loom ([`SPARE_POOLS`](crate::alloc::SPARE_POOLS); 0 in the
    /// other constructors): the pools a heap's frees, or the remote frees it takes back,
    /// empty stay its own until it needs a pool, exits, or is let go.
    pub fn with_spare_pools(retained_empty_arenas: usize, spare_pools: u32) -> Self {
        let mut global = Global::new();
        global.arenas.set_min_retained(retained_empty_arenas);
        global.spare_pools = spare_pools;
        ModelAllocator {
            global: Arc::new(global),
        }
    }

    /// Move the clock the purge and decay checks read on by `ms` milliseconds (it starts at
    /// 0 and moves only when a model moves it).
    pub fn advance_clock(&self, ms: u64) {
        self.global.arenas.advance_clock(ms);
    }

    /// Bind a heap for the calling (loom) thread: adopts an abandoned one if there is one,
    /// else maps a new one. The handle may be moved to another loom thread before use.
    pub fn heap(&self) -> ModelHeap {
        let heap = self.global.heaps.bind(&*self.global, &self.global.map);
        assert!(!heap.is_null(), "could not map a heap");
        ModelHeap {
            global: self.global.clone(),
            heap,
        }
    }

    /// For a (loom) thread with no heap whose first act is to free `block`, a live block of
    /// this allocator, as `PoolAlloc` does it (`thread::heap_for_free`): the heap that owns
    /// the block's pool if the thread could adopt it (an abandoned heap nobody held), else
    /// `None` (then the thread frees the block without a heap).
    ///
    /// # Safety
    /// `block` is a live block of this allocator, held by the caller.
    pub unsafe fn adopt_for_free(&self, block: BlockPtr) -> Option<ModelHeap> {
        // SAFETY: a live block's pool is initialized and owned by a live heap of this
        // allocator (caller's contract, Pool and Heap invariants).
        let owner = unsafe {
            (*super::pool::pool_of(block.0))
                .owner
                .load(crate::sync::Ordering::Relaxed)
        };
        // SAFETY: as above.
        let heap = unsafe { self.global.heaps.adopt_for_free(owner.cast::<Heap>()) };
        (!heap.is_null()).then(|| ModelHeap {
            global: self.global.clone(),
            heap,
        })
    }

    /// Free `ptr` (allocated from this allocator with `layout`) from a thread that holds no
    /// heap, as a thread does after its heap was torn down.
    ///
    /// # Safety
    /// As `GlobalAlloc::dealloc`.
    pub unsafe fn dealloc_without_heap(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: caller's contract.
        unsafe { self.global.free_without_heap(ptr, class_of(layout)) }
    }

    /// A statistics snapshot.
    pub fn stats(&self) -> AllocStats {
        AllocStats::collect(&self.global)
    }

    /// With every other thread of the model joined: check that no abandoned heap is left
    /// held (a holder that never let go, so work queued on it would never be taken back) or
    /// owning no pool (a heap that should have been retired). Returns the number of abandoned
    /// heaps.
    pub fn check_heaps(&self) -> usize {
        self.global.heaps.check_quiescent()
    }

    /// Whether `ptr` lies in one of this allocator's arenas now.
    pub fn owns(&self, ptr: *const u8) -> bool {
        self.global.map.contains(ptr)
    }

    /// Take a pool of `layout`'s class straight from the arena manager, handed to no heap
    /// (for the models of the arena choice, which need dozens of pools: taking them through
    /// a heap would cost a block allocation each). Panics if no arena can be mapped.
    pub fn acquire_raw_pool(&self, layout: Layout) -> PoolPtr {
        let pool = self.global.arenas.acquire_pool(
            &self.global.map,
            core::ptr::null_mut(),
            class_of(layout),
        );
        assert!(!pool.is_null(), "no arena could be mapped");
        PoolPtr(pool.cast())
    }

    /// Give back a pool from [`acquire_raw_pool`](Self::acquire_raw_pool).
    ///
    /// # Safety
    /// `pool` came from `acquire_raw_pool` of this allocator and is given back once.
    pub unsafe fn release_raw_pool(&self, pool: PoolPtr) {
        // SAFETY: an empty pool on no heap list (caller's contract).
        unsafe {
            self.global
                .arenas
                .release_pool(&self.global.map, pool.0.cast::<Pool>())
        }
    }

    /// Purge every free pool still resident (`purge.rs`, `pyheap::alloc::purge`). Returns
    /// the pools purged.
    pub fn purge(&self) -> usize {
        self.global.arenas.purge_all(&self.global.map)
    }

    /// The free pools resident and purged, over all arenas.
    pub fn free_pools_resident_and_purged(&self) -> (usize, usize) {
        self.global.arenas.free_pools_resident_and_purged()
    }

    /// The free-pool counts of the mapped arenas, lowest (fullest arena) first.
    pub fn arena_free_pools(&self) -> Vec<usize> {
        self.global.arenas.free_pool_counts()
    }

    /// The slow paths' work so far in this allocator (arenas and heaps looked at).
    pub fn work(&self) -> SlowPathWork {
        SlowPathWork::collect(&self.global)
    }

    /// Check the arena manager's lists against each other and against its counters (under
    /// its lock), panicking on an inconsistency. Returns the number of pools handed out to
    /// heaps, as the arenas count them.
    pub fn check_arenas(&self) -> usize {
        self.global.arenas.check_invariants(&self.global.map)
    }

    /// The end of a large block's life on a thread (`ArenaManager::note_life_ended`, as
    /// `give_back_block` and `realloc_large_block` call it after the block's check): the
    /// block's recorded owner is `owner`'s heap (`None`: no owner recorded), the freeing
    /// thread's heap is `freer` (`None`: a thread without one).
    pub fn note_life_ended(&self, owner: Option<OwnerId>, freer: Option<&ModelHeap>) {
        let owner = owner.map_or(core::ptr::null_mut(), |o| o.0);
        let freer = freer.map_or(core::ptr::null_mut(), ModelHeap::owner_ptr);
        self.global.arenas.note_life_ended(owner, freer);
    }

    /// Run `f` holding the arena lock (large blocks' places are given back and taken under
    /// it; a model stands in a place of its own for them).
    pub fn with_arena_lock<R>(&self, f: impl FnOnce() -> R) -> R {
        self.global.arenas.lock();
        let r = f();
        self.global.arenas.unlock();
        r
    }
}

/// A heap as a large block's recorded owner ([`ModelHeap::owner_id`]), to hand to other
/// threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwnerId(*mut super::pool::PoolOwner);

// SAFETY: a plain address, compared and never dereferenced.
unsafe impl Send for OwnerId {}

/// The registration of the `fork()` handlers (`fork_registration.rs`), with the process id
/// and the registering call passed in, and `fork()` modelled as a copy of its state.
pub struct ModelForkRegistration(super::fork_registration::Registration);

impl ModelForkRegistration {
    /// Nothing registered yet.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        ModelForkRegistration(super::fork_registration::Registration::new())
    }

    /// Return once the handlers are registered, calling `register` if no thread of process
    /// `pid` did or is doing it (the code `PoolAlloc` runs, with `getpid` and
    /// `pthread_atfork` replaced).
    pub fn ensure(&self, pid: u32, register: impl FnOnce()) {
        self.0.ensure(|| pid, register)
    }

    /// What a child inherits when a thread of process `pid` was registering at the fork.
    pub fn inherited_while_registering(pid: u32) -> Self {
        ModelForkRegistration(
            super::fork_registration::Registration::inherited_while_registering(pid),
        )
    }

    /// What a child forked at this moment inherits.
    pub fn fork_copy(&self) -> Self {
        ModelForkRegistration(self.0.fork_copy())
    }

    /// The child handler ran (the handlers are registered in this process image).
    pub fn mark_done(&self) {
        self.0.mark_done()
    }
}

/// A pool handed out by [`ModelAllocator::acquire_raw_pool`] (its header's address).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PoolPtr(*mut u8);

// SAFETY: a plain address; the model keeps track of who may give the pool back.
unsafe impl Send for PoolPtr {}

impl PoolPtr {
    /// The base address of the pool's arena.
    pub fn arena(&self) -> usize {
        self.0 as usize & !(super::size_class::ARENA_SIZE - 1)
    }

    /// The first byte of the pool's memory (its blocks; `POOL_SIZE` bytes), which the model
    /// may write while it holds the pool.
    pub fn memory(&self) -> *mut u8 {
        super::pool::pool_memory(self.0.cast())
    }
}

/// A heap held by the calling loom thread.
pub struct ModelHeap {
    global: Arc<Global>,
    heap: *mut Heap,
}

// SAFETY: a heap may move to another thread together with its holding right (this handle);
// the move itself (thread spawn) orders the old holder's accesses before the new one's.
unsafe impl Send for ModelHeap {}

impl ModelHeap {
    /// Allocate a small block (`layout` must have a size class). Panics if no arena can be
    /// mapped.
    pub fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: we hold the heap.
        let p = unsafe { (*self.heap).alloc(class_of(layout)) };
        assert!(!p.is_null(), "no arena could be mapped");
        p
    }

    /// Allocate a zeroed small block.
    pub fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: we hold the heap.
        let p = unsafe { (*self.heap).alloc_zeroed(class_of(layout)) };
        assert!(!p.is_null(), "no arena could be mapped");
        p
    }

    /// Free a block allocated from this allocator with `layout`, by whichever heap.
    ///
    /// # Safety
    /// As `GlobalAlloc::dealloc`.
    pub unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // As `PoolAlloc::dealloc`: the fast path first (our own pool and a size that fits its
        // blocks), then the rest.
        // SAFETY: caller's contract (a live block of one of the arenas, allocated with
        // `layout`); we hold the heap.
        unsafe {
            if Heap::free_own_block(self.heap, super::pool::pool_of(ptr), ptr, layout.size()) {
                return;
            }
            (*self.heap).free(ptr, class_of(layout))
        }
    }

    /// Take back blocks other threads freed into this heap's pools. Returns whether any pool
    /// was queued.
    pub fn collect_remote_frees(&self) -> bool {
        // SAFETY: we hold the heap.
        unsafe { (*self.heap).collect_remote_frees() }
    }

    /// Whether pools of this heap are queued with remote frees (a relaxed read: exact only
    /// when every freer happens-before the call).
    pub fn has_remote_frees(&self) -> bool {
        // SAFETY: the heap is valid while the state lives.
        !unsafe { (*self.heap).remote_pools.is_empty() }
    }

    /// Publish this heap's batches of remote frees (`remote_batch.rs`), as the thread's
    /// allocation slow path and exit do.
    pub fn flush_remote_batches(&self) {
        // SAFETY: we hold the heap.
        unsafe { (*self.heap).flush_remote_batches() }
    }

    /// The address of the heap (to tell whether a later `heap()` adopted this one).
    pub fn id(&self) -> usize {
        self.heap as usize
    }

    /// This heap as a large block's recorded owner.
    pub fn owner_id(&self) -> OwnerId {
        OwnerId(self.owner_ptr())
    }

    fn owner_ptr(&self) -> *mut super::pool::PoolOwner {
        // SAFETY: the heap is valid while the state lives.
        unsafe { (*self.heap).as_owner() }
    }

    /// This heap's keep served the large block `block` for a request of `size` bytes
    /// (`LargeCache::note_served`, stamped with the current `ForeignFrees` count, as
    /// `large_alloc` does). Only the record is made: large blocks are not built under loom,
    /// so `block` is any address the model chooses for the block's place.
    pub fn note_served(&self, block: BlockPtr, size: usize) {
        // SAFETY: we hold the heap.
        let large = unsafe { &(*self.heap).large };
        large.note_served(block.0, size, self.global.arenas.foreign_frees.now());
    }

    /// The holder frees the large block `block` of `size` bytes: whether its record vouches
    /// for it, so that `large_free` would keep it without the locked check (the record is
    /// forgotten, as at every large free). A model's shapes are its sizes.
    pub fn free_is_vouched(&self, block: BlockPtr, size: usize) -> bool {
        // SAFETY: we hold the heap.
        let large = unsafe { &(*self.heap).large };
        let served = large.take_served(block.0);
        self.global
            .arenas
            .foreign_frees
            .vouches(served, |was| was == size)
    }

    /// Exit: abandon the heap as a thread's exit does.
    pub fn exit(self) {
        // SAFETY: we hold the heap and give the handle up.
        unsafe { self.global.heaps.abandon(&*self.heap) };
    }
}
