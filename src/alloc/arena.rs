//! `ArenaManager`: mapping arenas, handing their pools to heaps, taking pools back, and
//! returning empty arenas to the OS.
//!
//! An arena is an [`ARENA_SIZE`]-aligned mapping of [`POOLS_PER_ARENA`] pools. Its first pool
//! (the metadata pool, see `pool.rs`) holds the arena header (`Arena`, at the arena's first
//! byte) and the headers of all its pools; the other 63 pools hold blocks. Pools are handed
//! out from the *fullest* arena that has a free one (as CPython sorts `usable_arenas`), so
//! that lightly used arenas drain and can go back to the OS. The arenas are filed by their
//! count of free pools (`arena_lists.rs`), so that choosing one, and moving one when a pool
//! leaves or comes back, is O(1) under the lock whatever the size of the heap.
//!
//! Hysteresis: an arena whose pools are all free is unmapped only if more than
//! [`ArenaManager::retained_limit`] empty arenas are already kept (at least
//! `min_retained`, and an eighth of the arenas mapped): a program that frees and reallocates
//! in a loop reuses them instead of paying `mmap`, page faults and `munmap` each time. As the
//! mapped count falls, so does the limit, and arenas retained earlier are unmapped too.
//!
//! Purging: the memory of pools that stay free longer than the purge delay goes back to the
//! OS while their arena stays mapped (`purge.rs`); every pool request and release purges at
//! most one arena whose dirt is due, under the lock.

use super::arena_lists::{Arena, ArenaLists, USABLE_POOLS};
use super::arena_map::{ArenaMap, ADDRESS_LIMIT};
use super::lock::RawLock;
use super::os;
use super::pool::{pool_header, pool_index, Pool, PoolOwner, PoolState, METADATA_POOLS};
use super::purge::{self, DirtyArenas, PURGE_BUDGET};
use super::size_class::{ARENA_SIZE, POOLS_PER_ARENA};
use crate::sync::StatCounter;
use core::cell::UnsafeCell;
use core::ptr;

const _: () = assert!(POOLS_PER_ARENA <= 64); // a free-pool mask fits a u64

/// At most this many arenas are unmapped by one `release_pool` call (a bound on the work done
/// under the lock; the next release trims the rest).
const TRIM_BATCH: usize = 8;

fn arena_of(pool: *mut Pool) -> *mut Arena {
    ((pool as usize) & !(ARENA_SIZE - 1)) as *mut Arena
}

fn arena_base(arena: *mut Arena) -> *mut u8 {
    arena.cast()
}

/// The manager's state, guarded by its lock.
struct Lists {
    /// Every mapped arena, by count of free pools.
    arenas: ArenaLists,
    /// The arenas with free pools still resident, oldest first (`purge.rs`).
    dirty: DirtyArenas,
    /// Under loom, released arenas are made inaccessible rather than unmapped (so a stray
    /// touch faults); they are unmapped when the manager is dropped.
    #[cfg(loom)]
    released: [*mut u8; 64],
    #[cfg(loom)]
    nreleased: usize,
}

/// Counters of arena traffic, readable without the lock.
pub(crate) struct ArenaCounters {
    pub(crate) mapped: StatCounter,
    pub(crate) high_water: StatCounter,
    pub(crate) mapped_total: StatCounter,
    pub(crate) returned: StatCounter,
    /// Free pools whose memory was given back to the OS (`purge.rs`), since the start.
    pub(crate) pools_purged: StatCounter,
}

/// # Invariants
/// * `lists` and every `Arena` header are accessed only with `lock` held.
/// * An arena is on `lists.arenas` from its mapping until it is unmapped (see `ArenaLists`
///   for how); its bit in the arena map is set for exactly that span.
/// * A pool is `PoolState::Free` (and owned by the manager) exactly while it is on its
///   arena's `free_pools` list or beyond its `untouched` mark.
pub(crate) struct ArenaManager {
    lock: RawLock,
    lists: UnsafeCell<Lists>,
    pub(crate) counters: ArenaCounters,
    pub(crate) work: super::work::ArenaWork,
    /// Empty arenas always kept mapped (at least).
    min_retained: usize,
}

impl ArenaManager {
    crate::sync::maybe_const_fn! {
        pub(crate) fn new() -> ArenaManager {
            ArenaManager {
                lock: RawLock::new(),
                lists: UnsafeCell::new(Lists {
                    arenas: ArenaLists::new(),
                    dirty: DirtyArenas::new(),
                    #[cfg(loom)]
                    released: [ptr::null_mut(); 64],
                    #[cfg(loom)]
                    nreleased: 0,
                }),
                counters: ArenaCounters {
                    mapped: StatCounter::new(),
                    high_water: StatCounter::new(),
                    mapped_total: StatCounter::new(),
                    returned: StatCounter::new(),
                    pools_purged: StatCounter::new(),
                },
                work: super::work::ArenaWork::new(),
                min_retained: 2,
            }
        }
    }

    /// Under loom: a manager that keeps no empty arena, so that models see arenas released.
    #[cfg(loom)]
    pub(crate) fn set_min_retained(&mut self, n: usize) {
        self.min_retained = n;
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

    /// How many empty arenas may stay mapped when `mapped` arenas are mapped.
    fn retained_limit(&self, mapped: usize) -> usize {
        self.min_retained.max(mapped / 8)
    }

    /// Take a free pool and make it `owner`'s pool of `class`. Returns null when no arena can
    /// be mapped. Bound (audit of issue 13): O(1) under the lock, one arena header looked at
    /// (`pick_arena`), whatever the number of arenas; mapping a new arena is done outside it.
    pub(crate) fn acquire_pool(
        &self,
        map: &ArenaMap,
        owner: *mut PoolOwner,
        class: usize,
    ) -> *mut Pool {
        let now = os::now_ms();
        self.lock();
        self.work.pool_requests.add(1);
        // SAFETY: lock held.
        unsafe { self.purge_due(now) };
        // SAFETY: lock held.
        let mut arena = unsafe { self.pick_arena() };
        if arena.is_null() {
            self.unlock();
            let fresh = Self::map_arena(map);
            if fresh.is_null() {
                return ptr::null_mut();
            }
            self.lock();
            // SAFETY: lock held; `fresh` is a new arena nobody else knows.
            unsafe { self.insert(fresh) };
            arena = fresh;
        }
        // SAFETY: lock held; `arena` has a free pool.
        let (pool, fresh) = unsafe { self.take_pool(arena) };
        // Initialized under the lock, so that `for_each_pool_in_use` never sees a pool taken
        // but not yet initialized.
        // SAFETY: the pool is ours alone now: no live block, on no list.
        unsafe { Pool::init(pool, owner, class, fresh) };
        self.unlock();
        pool
    }

    /// Call `f` with the header of every pool handed out (in use by some heap), under the
    /// lock. `f` may read a pool's `class` and `capacity` (fixed while the pool is handed out)
    /// and its `used` (an atomic), nothing else: the holders run meanwhile.
    ///
    /// Bound (audit of issue 13): a walk over every mapped arena and its 64 pool headers, with
    /// the lock held, so every pool request waits for it: O(arenas mapped), about 8 KiB of
    /// headers read per MiB of heap. This is `stats()`'s cost, paid only by callers of
    /// `stats()`, never by allocation or freeing.
    pub(crate) fn for_each_pool_in_use(&self, mut f: impl FnMut(&Pool)) {
        self.lock();
        // SAFETY: lock held; arenas on the lists are mapped; pools below `untouched` and not
        // on the free list are handed out, hence initialized (`acquire_pool` initializes
        // under the lock).
        unsafe {
            (*self.lists.get()).arenas.for_each(|a| {
                let h = &*a;
                let mut free = 0u64;
                let mut p = h.free_pools;
                while !p.is_null() {
                    free |= 1 << pool_index(p);
                    p = (*p).next.get();
                }
                for index in METADATA_POOLS..h.untouched {
                    if free & (1 << index) == 0 {
                        f(&*pool_header(arena_base(a), index));
                    }
                }
            });
        }
        self.unlock();
    }

    /// Give `pool` back to its arena. If that empties the arena, unmap empty arenas until at
    /// most [`retained_limit`](Self::retained_limit) of them stay mapped: this one first, then
    /// others retained earlier, when a shrinking mapped count lowered the limit below the
    /// number already kept. Bound (audit of issue 13): O(1) to file the arena under its new
    /// count, and O(1) per arena unmapped, at most [`TRIM_BATCH`] of them (an empty arena is
    /// the head of its list: none is searched for).
    ///
    /// # Safety
    /// `pool` is empty (`used == 0`: no live block, no freer in flight) and on no heap list;
    /// the caller stops using it.
    pub(crate) unsafe fn release_pool(&self, map: &ArenaMap, pool: *mut Pool) {
        let arena = arena_of(pool);
        let mut victims = [ptr::null_mut::<Arena>(); TRIM_BATCH];
        let mut nvictims = 0;
        let now = os::now_ms();
        self.lock();
        // SAFETY: lock held; the arena of a pool in use is mapped and on the lists; arenas on
        // the lists are mapped.
        unsafe {
            let lists = &mut (*self.lists.get()).arenas;
            let p = &*pool;
            p.state.set(PoolState::Free);
            p.next.set((*arena).free_pools);
            (*arena).free_pools = pool;
            lists.set_nfree(arena, (*arena).nfree + 1);
            let dirty = &mut (*self.lists.get()).dirty;
            dirty.pool_freed(arena, pool_index(pool), now);
            if (*arena).nfree == USABLE_POOLS {
                // The arena just emptied heads the list of empty arenas: it goes first.
                let mut mapped = self.counters.mapped.get() as usize;
                while lists.empty > self.retained_limit(mapped) && nvictims < TRIM_BATCH {
                    let victim = lists.an_empty_arena();
                    self.work.arenas_visited.add(1);
                    lists.unlink(victim);
                    (*self.lists.get()).dirty.forget(victim);
                    map.remove(arena_base(victim));
                    mapped -= 1;
                    victims[nvictims] = victim;
                    nvictims += 1;
                }
            }
        }
        // SAFETY: lock held.
        unsafe { self.purge_due(now) };
        if nvictims == 0 {
            self.unlock();
            return;
        }
        self.counters.mapped.add((nvictims as u64).wrapping_neg());
        self.counters.returned.add(nvictims as u64);
        #[cfg(not(loom))]
        {
            self.unlock();
            for &victim in &victims[..nvictims] {
                os::unmap(arena_base(victim), ARENA_SIZE);
            }
        }
        #[cfg(loom)]
        {
            // SAFETY: lock held.
            let lists = unsafe { &mut *self.lists.get() };
            for &victim in &victims[..nvictims] {
                let base = arena_base(victim);
                os::protect_none(base, ARENA_SIZE);
                if lists.nreleased < lists.released.len() {
                    lists.released[lists.nreleased] = base;
                    lists.nreleased += 1;
                }
            }
            self.unlock();
        }
    }

    /// Purge the arenas whose free pools have been resident longer than the purge delay, at
    /// most [`PURGE_BUDGET`] of them (`purge.rs`).
    ///
    /// # Safety
    /// Lock held.
    unsafe fn purge_due(&self, now: u64) {
        // SAFETY: lock held (caller).
        let n = unsafe {
            (*self.lists.get())
                .dirty
                .purge_due(now, purge::delay_ms(), PURGE_BUDGET)
        };
        if n != 0 {
            self.counters.pools_purged.add(n as u64);
        }
    }

    /// Purge every free pool still resident, whatever its age. Returns the pools purged.
    pub(crate) fn purge_all(&self) -> usize {
        self.lock();
        // SAFETY: lock held.
        let n = unsafe { (*self.lists.get()).dirty.purge_all() };
        self.counters.pools_purged.add(n as u64);
        self.unlock();
        n
    }

    /// The free pools of all arenas that are resident (dirty) and that were purged, under
    /// the lock: a walk over the arena headers (for `stats()`).
    pub(crate) fn free_pools_resident_and_purged(&self) -> (usize, usize) {
        let (mut resident, mut purged) = (0, 0);
        self.lock();
        // SAFETY: lock held; arenas on the lists are mapped.
        unsafe {
            (*self.lists.get()).arenas.for_each(|a| {
                let h = &*a;
                let listed = h.nfree - (POOLS_PER_ARENA - h.untouched);
                let dirty = h.dirty.count_ones() as usize;
                resident += dirty;
                purged += listed - dirty;
            });
        }
        self.unlock();
        (resident, purged)
    }

    /// The fullest arena with a free pool, or null. O(1): it looks at one arena header.
    ///
    /// # Safety
    /// Lock held.
    unsafe fn pick_arena(&self) -> *mut Arena {
        // SAFETY: lock held (caller).
        let arena = unsafe { (*self.lists.get()).arenas.fullest_with_free_pool() };
        if !arena.is_null() {
            self.work.arenas_visited.add(1);
        }
        arena
    }

    /// Take a free pool of `arena`. Returns the pool and whether it is untouched memory.
    ///
    /// # Safety
    /// Lock held; `arena.nfree > 0`.
    unsafe fn take_pool(&self, arena: *mut Arena) -> (*mut Pool, bool) {
        // SAFETY: lock held (caller); the arena is mapped and on the lists.
        let (a, lists) = unsafe { (&mut *arena, &mut (*self.lists.get()).arenas) };
        // SAFETY: as above.
        unsafe { lists.set_nfree(arena, a.nfree - 1) };
        let pool = a.free_pools;
        if !pool.is_null() {
            // SAFETY: free pools of the arena are the manager's; lock held.
            unsafe {
                a.free_pools = (*pool).next.get();
                (*self.lists.get())
                    .dirty
                    .pool_taken(arena, pool_index(pool));
            }
            return (pool, false);
        }
        let index = a.untouched;
        a.untouched += 1;
        (pool_header(arena_base(arena), index), true)
    }

    /// Map a new arena and register it in the arena map. Returns null on failure.
    fn map_arena(map: &ArenaMap) -> *mut Arena {
        let base = os::map_aligned(ARENA_SIZE, ARENA_SIZE);
        if base.is_null() {
            return ptr::null_mut();
        }
        if base as usize + ARENA_SIZE > ADDRESS_LIMIT || !map.insert(base) {
            os::unmap(base, ARENA_SIZE);
            return ptr::null_mut();
        }
        let arena = base.cast::<Arena>();
        // SAFETY: fresh mapping, ours alone; the header fits in the first pool.
        unsafe { ptr::write(arena, Arena::fresh()) };
        arena
    }

    /// # Safety
    /// Lock held; `arena` is new (all pools free, on no list).
    unsafe fn insert(&self, arena: *mut Arena) {
        // SAFETY: lock held (caller); the arena is mapped and on no list.
        unsafe { (*self.lists.get()).arenas.push(arena) };
        let mapped = self.counters.mapped.get() + 1;
        self.counters.mapped.add(1);
        self.counters.mapped_total.add(1);
        if mapped > self.counters.high_water.get() {
            self.counters
                .high_water
                .add(mapped - self.counters.high_water.get());
        }
    }
}

#[cfg(loom)]
impl ArenaManager {
    /// Loom models only: check the lists against each other, the arena headers and the
    /// counters, under the lock; panic on an inconsistency. Returns the number of pools
    /// handed out (not free in their arena).
    pub(crate) fn check_invariants(&self, map: &ArenaMap) -> usize {
        self.lock();
        // SAFETY: lock held; arenas on the lists are mapped.
        let (in_use, arenas) = unsafe {
            let lists = &(*self.lists.get()).arenas;
            let arenas = lists.check();
            (*self.lists.get()).dirty.check();
            let mut in_use = 0;
            lists.for_each(|a| {
                let h = &*a;
                assert!(
                    map.contains(arena_base(a)),
                    "arena list: arena not in the arena map"
                );
                assert!(
                    h.untouched <= POOLS_PER_ARENA,
                    "arena: untouched out of range"
                );
                let mut free_listed = 0;
                let mut listed_mask = 0u64;
                let mut p = h.free_pools;
                while !p.is_null() {
                    assert_eq!(arena_of(p), a, "free pool of another arena");
                    assert_eq!((*p).state.get(), PoolState::Free, "free pool not Free");
                    listed_mask |= 1 << pool_index(p);
                    free_listed += 1;
                    assert!(free_listed <= POOLS_PER_ARENA, "free-pool list cycles");
                    p = (*p).next.get();
                }
                assert_eq!(
                    h.nfree,
                    free_listed + POOLS_PER_ARENA - h.untouched,
                    "arena: nfree disagrees with its free pools"
                );
                assert_eq!(
                    h.dirty & !listed_mask,
                    0,
                    "arena: a dirty pool that is not on the free list"
                );
                in_use += USABLE_POOLS - h.nfree;
            });
            (in_use, arenas)
        };
        self.unlock();
        assert_eq!(
            arenas as u64,
            self.counters.mapped.get(),
            "arenas mapped miscounted"
        );
        assert_eq!(
            self.counters.mapped.get() + self.counters.returned.get(),
            self.counters.mapped_total.get(),
            "arenas mapped + returned != mapped in total"
        );
        in_use
    }

    /// Loom models only: the free-pool counts of the mapped arenas, fullest first.
    pub(crate) fn free_pool_counts(&self) -> std::vec::Vec<usize> {
        let mut counts = std::vec::Vec::new();
        self.lock();
        // SAFETY: lock held; arenas on the lists are mapped.
        unsafe {
            (*self.lists.get())
                .arenas
                .for_each(|a| counts.push((*a).nfree))
        };
        self.unlock();
        counts.sort_unstable();
        counts
    }
}

#[cfg(loom)]
impl Drop for ArenaManager {
    fn drop(&mut self) {
        let lists = self.lists.get_mut();
        let mut bases = std::vec::Vec::new();
        // SAFETY: exclusive access; arenas on the lists are mapped.
        unsafe { lists.arenas.for_each(|a| bases.push(arena_base(a))) };
        for base in bases {
            os::unmap(base, ARENA_SIZE);
        }
        for &base in &lists.released[..lists.nreleased] {
            os::unmap(base, ARENA_SIZE);
        }
    }
}
