//! `HeapRegistry`: every heap, how threads come to hold them, and how heaps go away.
//!
//! A thread binds to a heap when it first allocates: it adopts an abandoned heap if there is
//! one it can claim, or makes a new one (from a spare mapping, or mapped). Before that, a free
//! of a block of an abandoned heap that it can claim binds that heap
//! ([`HeapRegistry::adopt_for_free`]): a thread handed an exited thread's data carries on
//! with that thread's heap and frees its blocks locally. When the thread exits, it takes back
//! its remote frees and returns its empty pools; a heap left with no pool is *retired* at
//! once (its mapping unmapped, or kept as a spare for the next new thread); one whose pools
//! still hold live blocks goes on the *abandoned* list, and the thread lets go of it.
//!
//! Nobody sweeps abandoned heaps: the blocks freed into them do the work. The queue word of a
//! heap is also its holder token (`RemoteQueue`, `remote.rs`): the freer whose push finds the
//! heap unheld holds it from then on, takes the remote frees back (returning pools that became
//! empty to their arenas), and lets go of the heap ([`HeapRegistry::let_go`]), or retires it if
//! that was its last pool. A holder lets go only with a CAS from an empty queue, so a heap with
//! work queued always has a holder, and no pool is left behind. So no block is lost (its pool
//! stays owned by some heap until it is taken back), no block is handed out twice (a heap has
//! one holder at a time), and the heaps of exited threads go as their last blocks are freed.
//!
//! # Bound (audit of issue 13)
//!
//! Nothing here walks all heaps on an allocation path. A pool request looks at no heap. A
//! thread's start looks at no more than [`ADOPT_TRIES`] abandoned heaps (it skips only heaps
//! that a freeing thread holds at that moment), and a free before that at most at the freed
//! block's heap, its exit at its own heap; a free that finds an abandoned heap unheld looks
//! at that heap. Each of these takes the registry lock for an O(1) list operation. The one
//! walk is [`HeapRegistry::for_each_heap`], for `stats()`: O(heaps held by live threads +
//! abandoned heaps), with the registry lock held (thread starts and exits wait for it,
//! allocation does not).

use super::arena_map::ArenaMap;
use super::heap::{Heap, HeapHome, Listed};
use super::lock::RawLock;
use super::os;
use super::size_class::NUM_SIZE_CLASSES;
use super::work::HeapWork;
use core::cell::UnsafeCell;
use core::ptr;

/// Bytes mapped for one heap.
const HEAP_MAPPING: usize = (core::mem::size_of::<Heap>() + 4095) & !4095;

/// At most this many abandoned heaps are looked at by a thread looking for one to adopt.
pub(crate) const ADOPT_TRIES: usize = 4;

/// Retired heaps' mappings kept for new threads (so that threads started and joined in a loop
/// do not `mmap` and `munmap` a heap each), in normal builds. Loom models keep none, so that
/// a retired heap is made inaccessible at once and a touch after retirement faults.
const SPARE_HEAPS: usize = if cfg!(loom) { 0 } else { 8 };

/// The counters of retired heaps, so that statistics still add up after their heaps are gone.
#[derive(Clone, Copy)]
pub(crate) struct RetiredCounters {
    /// Per class: blocks the retired heaps' threads freed into other heaps' pools, and blocks
    /// the retired heaps took back from their own pools' remote-free lists.
    pub(crate) remote_frees: [u64; NUM_SIZE_CLASSES],
    pub(crate) reclaimed: [u64; NUM_SIZE_CLASSES],
    /// System-allocator requests: allocs, frees, bytes allocated, bytes freed.
    pub(crate) fallback: [u64; 4],
    /// The retired heaps' own changes to the live large-block counts (`LargeCache::
    /// live_blocks`, `live_bytes`).
    pub(crate) large: [u64; 2],
}

/// What [`HeapRegistry::for_each_heap`] reports besides the heaps themselves.
pub(crate) struct HeapCounts {
    pub(crate) held: usize,
    pub(crate) abandoned: usize,
    pub(crate) retired: RetiredCounters,
}

/// The registry's state, guarded by its lock.
struct Lists {
    /// Heaps bound to a thread, doubly linked through `Heap::reg_prev`/`reg_next`.
    held: *mut Heap,
    nheld: usize,
    /// Heaps of exited threads that still own pools (adoptable), linked the same way.
    abandoned: *mut Heap,
    nabandoned: usize,
    /// Mappings of retired heaps kept for reuse (no heap in them any more), linked through
    /// their first word.
    spare: *mut Heap,
    nspare: usize,
    retired: RetiredCounters,
    /// Under loom, retired heaps are made inaccessible rather than unmapped (so a stray touch
    /// faults); they are unmapped when the registry is dropped.
    #[cfg(loom)]
    released: [*mut Heap; 64],
    #[cfg(loom)]
    nreleased: usize,
}

/// # Invariants
/// * `lists` and the registry fields of every heap (`reg_prev`, `reg_next`, `listed`) are
///   accessed only with `lock` held.
/// * Every heap that is not retired is on exactly one list, the one its `listed` says: `held`
///   if a thread is bound to it, `abandoned` otherwise. A heap nobody holds (`RemoteQueue`
///   unheld) is on `abandoned`, and owns a pool.
/// * A heap is retired only by its holder, when it owns no pool, after it is unlinked.
pub(crate) struct HeapRegistry {
    lock: RawLock,
    lists: UnsafeCell<Lists>,
    /// Retired heaps' mappings kept at most ([`SPARE_HEAPS`]).
    spare_limit: usize,
    pub(crate) work: HeapWork,
}

impl Lists {
    /// # Safety
    /// Lock held; `h` is a live heap on no list.
    unsafe fn push(&mut self, h: *mut Heap, which: Listed) {
        let head = match which {
            Listed::Held => &mut self.held,
            Listed::Abandoned => &mut self.abandoned,
        };
        // SAFETY: lock held; `h` and the heaps on the list are live (caller's contract,
        // registry invariants).
        unsafe {
            (*h).listed.set(which);
            (*h).reg_prev.set(ptr::null_mut());
            (*h).reg_next.set(*head);
            if !head.is_null() {
                (**head).reg_prev.set(h);
            }
        }
        *head = h;
        match which {
            Listed::Held => self.nheld += 1,
            Listed::Abandoned => self.nabandoned += 1,
        }
    }

    /// # Safety
    /// Lock held; `h` is on the list its `listed` says.
    unsafe fn unlink(&mut self, h: *mut Heap) {
        // SAFETY: lock held; `h` and its neighbours are live heaps on one list.
        unsafe {
            let which = (*h).listed.get();
            let (prev, next) = ((*h).reg_prev.get(), (*h).reg_next.get());
            if prev.is_null() {
                match which {
                    Listed::Held => self.held = next,
                    Listed::Abandoned => self.abandoned = next,
                }
            } else {
                (*prev).reg_next.set(next);
            }
            if !next.is_null() {
                (*next).reg_prev.set(prev);
            }
            match which {
                Listed::Held => self.nheld -= 1,
                Listed::Abandoned => self.nabandoned -= 1,
            }
        }
    }
}

impl HeapRegistry {
    crate::sync::maybe_const_fn! {
        pub(crate) fn new() -> HeapRegistry {
            HeapRegistry {
                lock: RawLock::new(),
                lists: UnsafeCell::new(Lists {
                    held: ptr::null_mut(),
                    nheld: 0,
                    abandoned: ptr::null_mut(),
                    nabandoned: 0,
                    spare: ptr::null_mut(),
                    nspare: 0,
                    retired: RetiredCounters {
                        remote_frees: [0; NUM_SIZE_CLASSES],
                        reclaimed: [0; NUM_SIZE_CLASSES],
                        fallback: [0; 4],
                        large: [0; 2],
                    },
                    #[cfg(loom)]
                    released: [ptr::null_mut(); 64],
                    #[cfg(loom)]
                    nreleased: 0,
                }),
                spare_limit: SPARE_HEAPS,
                work: HeapWork::new(),
            }
        }
    }

    pub(crate) fn lock(&self) {
        self.lock.lock();
    }

    pub(crate) fn unlock(&self) {
        self.lock.unlock();
    }

    #[cfg(not(loom))]
    pub(crate) fn force_unlock(&self) {
        self.lock.force_unlock();
    }

    /// A heap for the calling thread to hold: an adopted abandoned one, else a new one of
    /// `home`, whose arena map is `map`. Returns null if no memory can be mapped.
    ///
    /// `home` (this registry's owner) outlives every heap it binds.
    pub(crate) fn bind(&self, home: *const dyn HeapHome, map: &ArenaMap) -> *mut Heap {
        self.work.binds.add_shared(1);
        let map_words = map.words();
        if map_words.is_null() {
            return ptr::null_mut();
        }
        self.lock();
        // SAFETY: lock held.
        let lists = unsafe { &mut *self.lists.get() };
        let mut h = lists.abandoned;
        let mut tries = 0;
        while !h.is_null() && tries < ADOPT_TRIES {
            tries += 1;
            self.work.visited.add_shared(1);
            // SAFETY: lock held; heaps on the lists are live.
            if unsafe { Self::try_adopt_locked(lists, h) } {
                self.unlock();
                return h;
            }
            // SAFETY: as above.
            h = unsafe { (*h).reg_next.get() };
        }
        let spare = lists.spare;
        if !spare.is_null() {
            // SAFETY: a spare mapping's first word links to the next spare.
            lists.spare = unsafe { spare.cast::<*mut Heap>().read() };
            lists.nspare -= 1;
        }
        self.unlock();
        let heap = if spare.is_null() {
            os::map(HEAP_MAPPING).cast::<Heap>()
        } else {
            spare
        };
        if heap.is_null() {
            return heap;
        }
        if spare.is_null() {
            // A new thread, and a mapping not touched yet: glibc's padding goes if the
            // program has locked its memory since (before glibc pads this thread an arena).
            super::glibc_tuning::note_fresh_mapping(heap.cast());
        }
        // SAFETY: a fresh mapping, or a spare one (no heap in it any more), large enough for a
        // Heap and page-aligned, ours alone; `map_words` is the global map's, non-null.
        unsafe { ptr::write(heap, Heap::new(home, map_words)) };
        self.lock();
        // SAFETY: lock held; a new heap on no list.
        unsafe { (*self.lists.get()).push(heap, Listed::Held) };
        self.unlock();
        heap
    }

    /// For a thread with no heap whose first act is to free a block of `owner`'s pools:
    /// adopt `owner` if it is an abandoned heap nobody holds, and return it; else return null
    /// and bind nothing (the thread frees the block without a heap, and binds a heap when it
    /// first allocates, or after a few such frees: `thread::heap_for_free`). So a thread handed an exited thread's data (a worker taking over
    /// its predecessor's, as in larson) carries on with that thread's heap: its frees of the
    /// predecessor's blocks are local frees, not remote frees into an abandoned heap, each of
    /// which would claim the heap and let it go again. A free of a held heap's block (the
    /// box of the spawning thread's closure, say) binds nothing, so that the thread does not
    /// adopt some other heap before it meets its predecessor's blocks.
    ///
    /// Takes the registry lock only when `owner` looks unheld.
    ///
    /// # Safety
    /// `owner` is the owner of a pool the caller holds a live block of, so a live heap of
    /// this registry until that block is freed (Heap lifetime invariant).
    pub(crate) unsafe fn adopt_for_free(&self, owner: *mut Heap) -> *mut Heap {
        // SAFETY: a live heap (caller's contract).
        if !unsafe { (*owner).remote_pools.looks_unheld() } {
            return ptr::null_mut();
        }
        self.work.visited.add_shared(1);
        self.lock();
        // SAFETY: lock held; `owner` is a live heap of this registry (caller's contract).
        let adopted = unsafe { Self::try_adopt_locked(&mut *self.lists.get(), owner) };
        self.unlock();
        if !adopted {
            return ptr::null_mut();
        }
        self.work.binds.add_shared(1);
        owner
    }

    /// Adopt `h` for the calling thread if it is an abandoned heap nobody holds: claim it
    /// (the holder token, `RemoteQueue::try_claim`) and move it to the held list. Fails
    /// while another thread holds it: its bound thread (then it is not abandoned), or a
    /// freer whose push found it unheld (it lets go soon).
    ///
    /// # Safety
    /// Lock held; `h` is a live heap of this registry (on one of its lists).
    unsafe fn try_adopt_locked(lists: &mut Lists, h: *mut Heap) -> bool {
        // SAFETY: caller's contract.
        let heap = unsafe { &*h };
        if !heap.remote_pools.try_claim() {
            return false;
        }
        // Only an abandoned heap is ever unheld (registry invariants), so the claim says
        // where the heap is.
        debug_assert_eq!(heap.listed.get(), Listed::Abandoned);
        // SAFETY: lock held; the heap is on the abandoned list, and ours now.
        unsafe {
            lists.unlink(h);
            lists.push(h, Listed::Held);
        }
        true
    }

    /// The holding thread gives `heap` up (thread exit): it takes back remote frees and
    /// returns its empty pools; then the heap is retired if it owns no pool, or abandoned and
    /// let go.
    ///
    /// # Safety
    /// The caller holds `heap`, bound to it (on the held list), and never touches it again.
    pub(crate) unsafe fn abandon(&self, heap: &Heap) {
        self.work.exits.add_shared(1);
        self.work.visited.add_shared(1);
        #[cfg(loom)]
        assert!(
            !heap.remote_pools.is_unheld(),
            "a thread exits with a heap it does not hold"
        );
        // First, before anything else: an abandoned heap has no batch (`RemoteBatch`).
        heap.flush_remote_batches();
        // The current pools that the thread's own frees emptied, then those the remote frees
        // empty: afterwards no current pool is empty, which `let_go` keeps without a walk.
        heap.release_empty_pools();
        heap.collect_remote_frees_letting_go();
        let h = heap as *const Heap as *mut Heap;
        self.lock();
        // SAFETY: lock held; the heap is on the held list (caller's contract).
        let lists = unsafe { &mut *self.lists.get() };
        // SAFETY: as above.
        unsafe { lists.unlink(h) };
        if heap.pools() == 0 {
            // No pool, so no live block: no thread can reach the heap any more.
            // SAFETY: lock held; we hold the heap, unlinked, owning no pool.
            let unmap = unsafe { self.retire_locked(lists, h) };
            self.unlock();
            Self::unmap(unmap);
            return;
        }
        // SAFETY: lock held; unlinked above.
        unsafe { lists.push(h, Listed::Abandoned) };
        self.unlock();
        self.let_go(heap);
    }

    /// The caller holds `heap`, an abandoned heap, and will not keep it (an exiting thread,
    /// or a freer whose push found the heap unheld): take back the remote frees, return the
    /// pools that became empty, then retire the heap if it owns no pool any more, else let go
    /// of it. Letting go fails while a pool is queued, and the caller then takes it back
    /// first: a heap with work queued always has a holder.
    ///
    /// Its work is that of the pools queued (no walk over the size classes): no current pool
    /// of an abandoned heap is empty when it is let go (`abandon` and every round here return
    /// those, see [`Heap::collect_remote_frees_letting_go`]), and only the pools taken back
    /// can become empty while it is held here.
    pub(crate) fn let_go(&self, heap: &Heap) {
        self.work.visited.add_shared(1);
        debug_assert!(
            heap.batches_empty(),
            "an abandoned heap with remote frees batched"
        );
        loop {
            heap.collect_remote_frees_letting_go();
            if heap.pools() == 0 {
                let h = heap as *const Heap as *mut Heap;
                self.lock();
                // SAFETY: lock held; the heap is on the abandoned list (registry invariants:
                // a heap is let go only from there) and we hold it, so no adopter took it.
                let unmap = unsafe {
                    let lists = &mut *self.lists.get();
                    lists.unlink(h);
                    self.retire_locked(lists, h)
                };
                self.unlock();
                Self::unmap(unmap);
                return;
            }
            if heap.remote_pools.try_let_go() {
                return;
            }
        }
    }

    /// Retire `h`: fold its counters into the retired ones, drop it, and keep its mapping as
    /// a spare or hand it back to be unmapped (after the lock is released). Returns the
    /// mapping to unmap, or null.
    ///
    /// # Safety
    /// Lock held; the caller holds `h`, which owns no pool and is on no list. Nobody can reach
    /// it any more: no live block is in its pools, no list has it.
    unsafe fn retire_locked(&self, lists: &mut Lists, h: *mut Heap) -> *mut Heap {
        // SAFETY: caller's contract: the heap is ours alone.
        let heap = unsafe { &*h };
        let r = &mut lists.retired;
        for class in 0..NUM_SIZE_CLASSES {
            let q = heap.class(class);
            r.remote_frees[class] = r.remote_frees[class].wrapping_add(q.remote_frees.get());
            r.reclaimed[class] = r.reclaimed[class].wrapping_add(q.reclaimed.get());
        }
        let f = &heap.fallback;
        for (acc, c) in
            r.fallback
                .iter_mut()
                .zip([&f.allocs, &f.frees, &f.bytes_allocated, &f.bytes_freed])
        {
            *acc = acc.wrapping_add(c.get());
        }
        for (acc, c) in r
            .large
            .iter_mut()
            .zip([&heap.large.live_blocks, &heap.large.live_bytes])
        {
            *acc = acc.wrapping_add(c.get());
        }
        // SAFETY: ours alone; never used as a heap again.
        unsafe { ptr::drop_in_place(h) };
        if lists.nspare < self.spare_limit {
            // SAFETY: the mapping is ours; its first word links the spares.
            unsafe { h.cast::<*mut Heap>().write(lists.spare) };
            lists.spare = h;
            lists.nspare += 1;
            return ptr::null_mut();
        }
        #[cfg(loom)]
        {
            os::protect_none(h.cast(), HEAP_MAPPING);
            if lists.nreleased < lists.released.len() {
                lists.released[lists.nreleased] = h;
                lists.nreleased += 1;
            }
            ptr::null_mut()
        }
        #[cfg(not(loom))]
        h
    }

    fn unmap(h: *mut Heap) {
        if !h.is_null() {
            os::unmap(h.cast(), HEAP_MAPPING);
        }
    }

    /// Call `f` with every heap that is not retired, under the lock, and return the counts
    /// of heaps and the retired heaps' counters. `f` may read the heaps' statistics counters
    /// (their holders run meanwhile) and nothing else.
    pub(crate) fn for_each_heap(&self, mut f: impl FnMut(&Heap)) -> HeapCounts {
        self.lock();
        // SAFETY: lock held; heaps on the lists are live.
        let counts = unsafe {
            let lists = &*self.lists.get();
            for head in [lists.held, lists.abandoned] {
                let mut h = head;
                while !h.is_null() {
                    f(&*h);
                    h = (*h).reg_next.get();
                }
            }
            HeapCounts {
                held: lists.nheld,
                abandoned: lists.nabandoned,
                retired: lists.retired,
            }
        };
        self.unlock();
        counts
    }

    /// Loom models only: with every thread of the model joined, check that no abandoned heap
    /// is left held (a holder that never let go) or empty (a heap that should have been
    /// retired). Returns the number of abandoned heaps.
    #[cfg(loom)]
    pub(crate) fn check_quiescent(&self) -> usize {
        self.lock();
        // SAFETY: lock held; heaps on the lists are live; no thread holds an abandoned heap
        // (checked), so reading its pool count races with nobody.
        let n = unsafe {
            let lists = &*self.lists.get();
            let mut n = 0;
            let mut h = lists.abandoned;
            while !h.is_null() {
                assert!(
                    (*h).remote_pools.is_unheld(),
                    "an abandoned heap is still held after every thread finished"
                );
                assert!(
                    (*h).pools() > 0,
                    "an abandoned heap owns no pool: not retired"
                );
                n += 1;
                h = (*h).reg_next.get();
            }
            assert_eq!(n, lists.nabandoned, "abandoned heaps miscounted");
            n
        };
        self.unlock();
        n
    }
}

#[cfg(loom)]
impl Drop for HeapRegistry {
    fn drop(&mut self) {
        let lists = self.lists.get_mut();
        for head in [lists.held, lists.abandoned] {
            let mut h = head;
            while !h.is_null() {
                // SAFETY: exclusive access at drop; heaps on the lists were mapped by `bind`.
                let next = unsafe { (*h).reg_next.get() };
                // SAFETY: as above; not dropped before.
                unsafe { ptr::drop_in_place(h) };
                os::unmap(h.cast(), HEAP_MAPPING);
                h = next;
            }
        }
        let mut s = lists.spare;
        while !s.is_null() {
            // SAFETY: a spare mapping's first word links to the next.
            let next = unsafe { s.cast::<*mut Heap>().read() };
            os::unmap(s.cast(), HEAP_MAPPING);
            s = next;
        }
        for &h in &lists.released[..lists.nreleased] {
            os::unmap(h.cast(), HEAP_MAPPING);
        }
    }
}
