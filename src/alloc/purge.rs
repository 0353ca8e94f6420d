//! Purging: the physical memory of free pools goes back to the OS once they have stayed free
//! for a while, as mimalloc's purge delay and jemalloc's dirty decay do.
//!
//! A pool given back to a partly used arena stays mapped (its arena cannot be unmapped while
//! another pool of it is in use), and so, until now, resident: after a peak, a program kept the
//! peak's RSS in every arena that still held one live block. Here each arena records which of
//! its free pools are *dirty* (resident: `Arena::dirty`, a bit per pool) and since when
//! (`Arena::dirty_since`), and the arenas with dirty pools wait in a queue, oldest first
//! ([`DirtyArenas`]). On every pool request and release (under the arena lock, which already
//! guards all of this), the arenas whose dirt is older than the delay are purged:
//! `madvise(MADV_DONTNEED)` on each run of dirty pools (one call per run of neighbours), at
//! most [`PURGE_BUDGET`] arenas per call so that the lock is never held for long (about 1 ms). A pool
//! taken again before the delay costs nothing; a purged one costs its page faults when it is
//! used again, as a fresh one does.
//!
//! Purging never changes what a pool holds for anyone: a free pool has no live block, no
//! freer in flight (`used == 0` when it was released) and nobody reads its memory until
//! `Pool::init` hands it out again, under the same lock; its header lives in the arena's
//! metadata pool, which is never purged. An empty arena whose dirt is due is unmapped instead
//! when more than `ArenaManager::retained_limit` empty arenas are mapped (`arena.rs`); those
//! within the limit are purged the same way, so they keep their addresses but not their
//! memory.
//!
//! The checks ride on pool traffic: a program that goes idle after a peak with no pool
//! request or release keeps its dirty pools until [`purge`](crate::alloc::purge) is called
//! (as `malloc_trim` or `mi_collect` are) or pool traffic resumes.

use super::arena_lists::Arena;
use super::os;
use super::pool::{pool_header, pool_memory};
use super::size_class::POOL_SIZE;
use crate::sync::unmodelled::{AtomicU64, Ordering};
use core::ptr;

/// The delay before a free pool is purged, unless changed with
/// [`set_purge_delay`](crate::alloc::set_purge_delay): one second (mimalloc purges after 10 ms,
/// jemalloc decays over 10 s; a second keeps the purges out of loops that free and refill a
/// pool many times a second, and gives memory back soon after a peak).
pub const DEFAULT_PURGE_DELAY_MS: u64 = 1000;

/// The delay in force, in milliseconds (`u64::MAX`: never purge automatically).
static PURGE_DELAY_MS: AtomicU64 = AtomicU64::new(DEFAULT_PURGE_DELAY_MS);

pub(crate) fn delay_ms() -> u64 {
    PURGE_DELAY_MS.load(Ordering::Relaxed)
}

#[cfg_attr(loom, allow(dead_code))] // the models purge explicitly
pub(crate) fn set_delay_ms(ms: u64) {
    PURGE_DELAY_MS.store(ms, Ordering::Relaxed);
}

/// At most this many arenas are purged by one pool request or release (each up to 63 pools,
/// ~1 MiB): a bound on the work done under the arena lock. `madvise` of resident pools costs
/// about 0.13 ms per MiB on the project's machine (259 MiB in 31-39 ms), so a pool operation
/// that catches up after a peak holds the lock for at most ~1 ms. Arenas become dirty only
/// through releases, each of which may purge eight, so the queue cannot outgrow the purging.
pub(crate) const PURGE_BUDGET: usize = 8;

/// The arenas with dirty pools, oldest dirt first: an intrusive doubly linked queue through
/// `Arena::dirty_prev` / `dirty_next`.
///
/// # Invariants (all under the arena manager's lock)
/// * An arena is on the queue exactly when its `dirty` mask is not zero; the links are
///   consistent and the queue is in order of `dirty_since` (an arena is appended when its
///   mask becomes non-zero, with `dirty_since` = now, and the clock is monotonic).
/// * Bit `i` of `dirty` is set only for a pool `i` on the arena's `free_pools` list.
pub(crate) struct DirtyArenas {
    head: *mut Arena,
    tail: *mut Arena,
}

impl DirtyArenas {
    pub(crate) const fn new() -> DirtyArenas {
        DirtyArenas {
            head: ptr::null_mut(),
            tail: ptr::null_mut(),
        }
    }

    /// Pool `index` of `arena` was just put on the arena's free list, resident.
    ///
    /// # Safety
    /// Lock held; `arena` is mapped; the pool is on its free list.
    pub(crate) unsafe fn pool_freed(&mut self, arena: *mut Arena, index: usize, now: u64) {
        // SAFETY: lock held, arena mapped (caller).
        let a = unsafe { &mut *arena };
        let was_clean = a.dirty == 0;
        a.dirty |= 1 << index;
        if was_clean {
            a.dirty_since = now;
            a.dirty_next = ptr::null_mut();
            a.dirty_prev = self.tail;
            if self.tail.is_null() {
                self.head = arena;
            } else {
                // SAFETY: arenas on the queue are mapped (lock held).
                unsafe { (*self.tail).dirty_next = arena };
            }
            self.tail = arena;
        }
    }

    /// The pools of `mask` (bit `i`: pool `i`) were just put on `arena`'s free list, resident:
    /// [`pool_freed`](Self::pool_freed) for each.
    ///
    /// # Safety
    /// Lock held; `arena` is mapped; the pools are on its free list.
    #[cfg_attr(any(loom, not(target_os = "linux")), allow(dead_code))]
    pub(crate) unsafe fn pools_freed(&mut self, arena: *mut Arena, mask: u64, now: u64) {
        if mask == 0 {
            return;
        }
        // SAFETY: forwarded contract.
        unsafe { self.pool_freed(arena, mask.trailing_zeros() as usize, now) };
        // SAFETY: lock held, arena mapped (caller); now on the queue, so only its mask grows.
        unsafe { (*arena).dirty |= mask };
    }

    /// Pool `index` of `arena` was just taken off the arena's free list. Returns whether it
    /// was purged (its memory not resident).
    ///
    /// # Safety
    /// Lock held; `arena` is mapped; the pool was on its free list.
    pub(crate) unsafe fn pool_taken(&mut self, arena: *mut Arena, index: usize) -> bool {
        // SAFETY: lock held, arena mapped (caller).
        let a = unsafe { &mut *arena };
        let bit = 1 << index;
        if a.dirty & bit == 0 {
            return true;
        }
        a.dirty &= !bit;
        if a.dirty == 0 {
            // SAFETY: it was dirty, so it is on the queue.
            unsafe { self.unlink(arena) };
        }
        false
    }

    /// `arena` is about to be unmapped: take it off the queue if it is on it.
    ///
    /// # Safety
    /// Lock held; `arena` is mapped.
    pub(crate) unsafe fn forget(&mut self, arena: *mut Arena) {
        // SAFETY: lock held, arena mapped (caller).
        if unsafe { (*arena).dirty } != 0 {
            // SAFETY: dirty, so on the queue.
            unsafe {
                self.unlink(arena);
                (*arena).dirty = 0;
            }
        }
    }

    /// The arena heading the queue if its dirt is at least `delay` ms old at `now`, else null.
    ///
    /// # Safety
    /// Lock held.
    pub(crate) unsafe fn due(&self, now: u64, delay: u64) -> *mut Arena {
        let a = self.head;
        // SAFETY: arenas on the queue are mapped (lock held).
        if a.is_null() || now.saturating_sub(unsafe { (*a).dirty_since }) < delay {
            return ptr::null_mut();
        }
        a
    }

    /// Purge every dirty pool. Returns the pools purged.
    ///
    /// # Safety
    /// Lock held.
    pub(crate) unsafe fn purge_all(&mut self) -> usize {
        let mut purged = 0;
        while !self.head.is_null() {
            // SAFETY: the head is on the queue; lock held.
            purged += unsafe { self.purge_arena(self.head) };
        }
        purged
    }

    /// Give back the memory of every dirty pool of `arena` (on the queue) and take it off the
    /// queue. Returns the pools purged.
    ///
    /// # Safety
    /// Lock held; `arena` is on the queue.
    pub(crate) unsafe fn purge_arena(&mut self, arena: *mut Arena) -> usize {
        // SAFETY: lock held; on the queue, hence mapped.
        let mut mask = unsafe { (*arena).dirty };
        let count = mask.count_ones() as usize;
        let base = arena.cast::<u8>();
        while mask != 0 {
            let first = mask.trailing_zeros() as usize;
            let run = (mask >> first).trailing_ones() as usize;
            // Free pools' memory: nobody reads or writes it until the pool is handed out
            // again under this lock (see the module); pools `first..first + run` are
            // consecutive in the arena.
            os::purge(pool_memory(pool_header(base, first)), run * POOL_SIZE);
            // `run` is 1..=63 (pool 0 is the metadata pool, never dirty).
            mask &= !((u64::MAX >> (64 - run)) << first);
        }
        // SAFETY: on the queue (caller); lock held.
        unsafe {
            self.unlink(arena);
            (*arena).dirty = 0;
        }
        count
    }

    /// # Safety
    /// Lock held; `arena` is on the queue.
    unsafe fn unlink(&mut self, arena: *mut Arena) {
        // SAFETY: caller's contract; its neighbours are on the queue, hence mapped.
        unsafe {
            let (prev, next) = ((*arena).dirty_prev, (*arena).dirty_next);
            if prev.is_null() {
                self.head = next;
            } else {
                (*prev).dirty_next = next;
            }
            if next.is_null() {
                self.tail = prev;
            } else {
                (*next).dirty_prev = prev;
            }
            (*arena).dirty_prev = ptr::null_mut();
            (*arena).dirty_next = ptr::null_mut();
        }
    }

    /// Loom models only: check the invariants above against the arenas' masks. Returns the
    /// number of arenas on the queue.
    ///
    /// # Safety
    /// Lock held.
    #[cfg(loom)]
    pub(crate) unsafe fn check(&self) -> usize {
        let (mut n, mut prev, mut a) = (0, ptr::null_mut::<Arena>(), self.head);
        while !a.is_null() {
            // SAFETY: arenas on the queue are mapped (lock held).
            let h = unsafe { &*a };
            assert_eq!(h.dirty_prev, prev, "dirty queue: broken back link");
            assert_ne!(h.dirty, 0, "dirty queue: a clean arena on it");
            n += 1;
            assert!(n < 1 << 20, "dirty queue cycles");
            prev = a;
            a = h.dirty_next;
        }
        assert_eq!(self.tail, prev, "dirty queue: wrong tail");
        n
    }
}
