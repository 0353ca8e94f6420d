//! `HeapRegistry`: every heap ever made, and how threads come to hold them.
//!
//! Heaps are never freed. A thread binds to a heap when it first allocates: it adopts an
//! abandoned one if there is one (taking over its pools, blocks and queue wholesale), or maps
//! a new one. When the thread exits, it takes back its remote frees, returns its empty pools
//! and abandons the heap. Blocks freed into an abandoned heap's pools queue up on it; any
//! thread that takes a new pool sweeps such heaps first, returning pools that became empty.
//! So no block is lost (its pool stays owned by some heap), and no block is handed out twice
//! (only a heap's holder hands out its blocks, and a heap has one holder at a time).

use super::heap::{Heap, ABANDONED, ACTIVE, CLAIMED};
use super::os;
use crate::sync::{fence, AtomicPtr, AtomicUsize, Ordering};
use core::ptr;

/// Bytes mapped for one heap.
const HEAP_MAPPING: usize = (core::mem::size_of::<Heap>() + 4095) & !4095;

/// # Invariants
/// * `head` is a push-only list (through `Heap::next`) of initialized heaps.
/// * `abandoned` is the number of heaps in state `ABANDONED` or `CLAIMED`, give or take the
///   ones in transition: a hint that makes sweeping free when no thread ever exited.
pub(crate) struct HeapRegistry {
    head: AtomicPtr<Heap>,
    abandoned: AtomicUsize,
    pub(crate) work: super::work::HeapWork,
}

impl HeapRegistry {
    crate::sync::maybe_const_fn! {
        pub(crate) fn new() -> HeapRegistry {
            HeapRegistry {
                head: AtomicPtr::new(ptr::null_mut()),
                abandoned: AtomicUsize::new(0),
                work: super::work::HeapWork::new(),
            }
        }
    }

    /// Every heap, newest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Heap> {
        let mut h = self.head.load(Ordering::Acquire);
        core::iter::from_fn(move || {
            // SAFETY: heaps on the list are initialized and never freed while the registry
            // lives; the Acquire load above (and the immutability of `next` after publication)
            // makes their initialization visible.
            let heap = unsafe { h.as_ref()? };
            h = heap.next;
            Some(heap)
        })
    }

    /// A heap for the calling thread to hold: an adopted abandoned one, else a new one.
    /// Returns null if no memory can be mapped.
    pub(crate) fn bind(&self, global: *const super::global::Global) -> *mut Heap {
        self.work.binds.add_shared(1);
        if self.abandoned.load(Ordering::Relaxed) > 0 {
            for heap in self.iter() {
                self.work.visited.add_shared(1);
                if heap.state.load(Ordering::Relaxed) == ABANDONED
                    && heap
                        .state
                        .compare_exchange(ABANDONED, ACTIVE, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                {
                    self.abandoned.fetch_sub(1, Ordering::Relaxed);
                    return heap as *const Heap as *mut Heap;
                }
            }
        }
        // SAFETY: the caller's global state outlives its heaps.
        let map_words = unsafe { (*global).map.words() };
        if map_words.is_null() {
            return ptr::null_mut();
        }
        let heap = os::map(HEAP_MAPPING).cast::<Heap>();
        if heap.is_null() {
            return heap;
        }
        // SAFETY: a fresh mapping large enough for a Heap, page-aligned; `map_words` is the
        // global map's, non-null.
        unsafe { ptr::write(heap, Heap::new(global, map_words)) };
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // SAFETY: not yet published: ours alone.
            unsafe { (*heap).next = head };
            match self
                .head
                .compare_exchange_weak(head, heap, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return heap,
                Err(now) => head = now,
            }
        }
    }

    /// The holding thread gives `heap` up (thread exit): it takes back remote frees, returns
    /// its empty pools, and leaves the heap for adoption.
    ///
    /// # Safety
    /// The caller holds `heap` and never touches it again.
    pub(crate) unsafe fn abandon(&self, heap: &Heap) {
        self.work.exits.add_shared(1);
        heap.collect_remote_frees();
        heap.release_empty_pools();
        self.abandoned.fetch_add(1, Ordering::Relaxed);
        heap.state.store(ABANDONED, Ordering::Release);
        // Pairs with the fence in `free_into` (see `sweep`): a free queued while we let go is
        // seen by us below, or sees ABANDONED and sweeps itself.
        fence(Ordering::SeqCst);
        // Sweep our own heap for such frees, and those of threads that exited before us.
        self.sweep_abandoned();
    }

    /// Sweep abandoned heaps that have remote frees queued: take the blocks back, and return
    /// pools that became empty to their arenas. Called before taking a new pool.
    pub(crate) fn sweep_abandoned(&self) {
        if self.abandoned.load(Ordering::Relaxed) == 0 {
            return;
        }
        for heap in self.iter() {
            self.work.visited.add_shared(1);
            self.sweep(heap);
        }
    }

    /// Sweep `heap` if it is abandoned and has remote frees queued, and no one else holds it.
    ///
    /// No queued pool is left behind by a race between a freer and the heap's last holder:
    /// a freer that queued a pool runs `SeqCst fence; load state` (`free_into`), and a holder
    /// that lets go runs `store ABANDONED; SeqCst fence; load queue` (here, and in `abandon`
    /// through `sweep_abandoned`). By the fences, at least one of the two sees the other's
    /// write: the freer sees `ABANDONED` and sweeps, or the holder sees the queued pool and
    /// sweeps again. (A freer that finds the heap `CLAIMED` by another sweeper leaves the pool
    /// to it; that sweeper looks at the queue again after letting go.)
    pub(crate) fn sweep(&self, heap: &Heap) {
        while !heap.remote_pools.is_empty()
            && heap.state.load(Ordering::Relaxed) == ABANDONED
            && heap
                .state
                .compare_exchange(ABANDONED, CLAIMED, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            heap.collect_remote_frees();
            heap.release_empty_pools();
            heap.state.store(ABANDONED, Ordering::Release);
            fence(Ordering::SeqCst);
        }
    }

    /// Counts of heaps: (held by a thread, abandoned).
    pub(crate) fn counts(&self) -> (usize, usize) {
        let mut active = 0;
        let mut total = 0;
        for heap in self.iter() {
            total += 1;
            if heap.state.load(Ordering::Relaxed) == ACTIVE {
                active += 1;
            }
        }
        (active, total - active)
    }
}

#[cfg(loom)]
impl Drop for HeapRegistry {
    fn drop(&mut self) {
        let mut h = self.head.load(Ordering::Relaxed);
        while !h.is_null() {
            // SAFETY: exclusive access at drop; heaps were mapped by `bind`.
            let next = unsafe { (*h).next };
            unsafe { ptr::drop_in_place(h) };
            os::unmap(h.cast(), HEAP_MAPPING);
            h = next;
        }
    }
}
