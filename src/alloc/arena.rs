//! `ArenaManager`: mapping arenas, handing their pools to heaps, taking pools back, and
//! returning empty arenas to the OS.
//!
//! An arena is an [`ARENA_SIZE`]-aligned mapping of [`POOLS_PER_ARENA`] pools. Its first pool
//! (the metadata pool, see `pool.rs`) holds the arena header (`Arena`, at the arena's first
//! byte) and the headers of all its pools; the other 63 pools hold blocks. Pools are handed
//! out from the *fullest* arena that has a free one (as CPython sorts `usable_arenas`), so
//! that lightly used arenas drain and can go back to the OS; the place of a live one-arena
//! large block is passed over while its only pools in use are the block's, so that it goes
//! vacant with the block (`pick_arena`). The arenas are filed by their count of free pools
//! (`arena_lists.rs`), so that choosing one, and moving one when a pool leaves or comes back,
//! is O(1) under the lock whatever the size of the heap.
//!
//! Decay and hysteresis: an arena whose pools are all free stays mapped, its memory resident,
//! until its free pools have been resident for the purge delay (`purge.rs`; one second by
//! default), as mimalloc and jemalloc keep freed memory for a while: a program that frees
//! its heap and builds it again within the delay (a cache rebuilt, a request served, a
//! benchmark iteration) reuses its arenas instead of paying `munmap`, `mmap` and a page fault
//! per page each time. At most [`DECAY_ARENAS`] empty arenas (or the retained limit, if more)
//! wait like this; an arena that empties beyond that is unmapped at once, so that an idle
//! program does not keep a large peak. Once due, an empty arena is unmapped if more than
//! [`ArenaManager::retained_limit`] empty arenas are mapped (at least `min_retained`, and an
//! eighth of the arenas mapped), else only purged (its addresses kept, its memory given back).
//! With a zero delay, and in loom models unless they ask for the decay
//! (`ModelAllocator::with_decay`; their clock moves only when they move it), the limit is the
//! retained one at once, as before stop 23: as the mapped count falls, so does the limit,
//! and arenas retained earlier are unmapped too. [`purge`](crate::alloc::purge) unmaps every
//! empty arena beyond the retained limit.
//!
//! Purging: the memory of pools that stay free longer than the purge delay goes back to the
//! OS while their arena stays mapped (`purge.rs`); every pool request and release purges at
//! most one arena whose dirt is due, under the lock.

#[cfg(all(target_os = "linux", not(loom), not(miri)))]
pub(crate) mod large_blocks;
#[cfg(all(target_os = "linux", not(loom), not(miri)))]
pub(crate) mod regions;

use super::arena_lists::{Arena, ArenaLists, EMPTY_SCAN, USABLE_POOLS};
use super::arena_map::{ArenaMap, ADDRESS_LIMIT};
use super::large_cache::ForeignFrees;
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

/// Spare places of the regions (`regions.rs`) beyond the limit (`ArenaManager::trim_spare`) or
/// due (`ArenaManager::decay_regions`), taken off them under the lock to be purged once it is
/// released, then made vacant again (`ArenaManager::finish_trim`, from `unlock_and_unmap`).
///
/// # Invariants
/// `runs[..n]` are runs of places `(address, places)` of regions, neither vacant nor used by
/// anyone: the holder of this `SpareTrim` purges them and gives them back exactly once.
/// `counters.returned` already counts them.
#[cfg_attr(not(all(target_os = "linux", not(loom), not(miri))), allow(dead_code))]
struct SpareTrim {
    runs: [(usize, usize); 16],
    n: usize,
}

impl SpareTrim {
    fn new() -> SpareTrim {
        SpareTrim {
            runs: [(0, 0); 16],
            n: 0,
        }
    }
}

/// Arenas taken off the lists under the lock (`ArenaManager::take_victim`), to be unmapped
/// once it is released (`ArenaManager::unlock_and_unmap`). Until then `counters.mapped` still
/// counts them: the arena count they leave is `mapped - n`. At most [`TRIM_BATCH`] of them: a
/// bound on the unmapping one call does.
///
/// # Invariants
/// `arenas[..n]` are distinct mapped arenas whose usable pools were all free when they were
/// taken, under the manager's lock, off the arena lists, the dirty queue and the arena map:
/// no heap holds a pool of them, no lookup finds them, and no one but the holder of this
/// `Victims` touches them again; they are unmapped exactly once, by `unlock_and_unmap` (or,
/// in a region, purged and made vacant there: `regions.rs`).
struct Victims {
    arenas: [*mut Arena; TRIM_BATCH],
    n: usize,
    /// Spare places of the regions to purge as well.
    spare: SpareTrim,
}

impl Victims {
    fn new() -> Victims {
        Victims {
            arenas: [ptr::null_mut(); TRIM_BATCH],
            n: 0,
            spare: SpareTrim::new(),
        }
    }

    fn has_room(&self) -> bool {
        self.n < TRIM_BATCH
    }

    fn push(&mut self, arena: *mut Arena) {
        self.arenas[self.n] = arena;
        self.n += 1;
    }
}

/// Empty arenas kept mapped, memory resident, until their dirt is due (32 MiB), beyond the
/// retained limit: a program that frees up to this much and builds it again within the purge
/// delay pays no `munmap`, `mmap` or page faults for it (the `hashmap` workload rebuilds a
/// 12-arena heap each round: 10.6K page faults in 15 rounds, 5.0K with them kept; the
/// `large_churn` workload, which replaces blocks of 1-4 arenas among 16 live, faulted 68.5K
/// pages in 6,400 replacements with 16 kept, 15.5K with 32: BENCHMARKS.md "Session 28"). Beyond it,
/// an arena that empties is unmapped at once, so that a program that goes idle after a large
/// peak keeps at most this much of it until the delay has passed and pool traffic resumes.
const DECAY_ARENAS: usize = 32;

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
    /// The reservations large blocks and arenas are carved from (`regions.rs`).
    #[cfg(all(target_os = "linux", not(loom), not(miri)))]
    regions: regions::Regions,
    /// Under loom, released arenas are made inaccessible rather than unmapped (so a stray
    /// touch faults); they are unmapped when the manager is dropped.
    #[cfg(loom)]
    released: [*mut u8; 64],
    #[cfg(loom)]
    nreleased: usize,
}

/// Counters of arena traffic, readable without the lock.
///
/// # Invariants
/// Every counter but `large_blocks` and `large_bytes` is written only with the manager's lock
/// held: that makes the lock holder `StatCounter::add`'s one writer at a time (a write between
/// two locked sections can lose a concurrent one's update). `large_blocks` and `large_bytes`
/// are written only with `StatCounter::add_shared`, from any thread.
pub(crate) struct ArenaCounters {
    pub(crate) mapped: StatCounter,
    pub(crate) high_water: StatCounter,
    pub(crate) mapped_total: StatCounter,
    pub(crate) returned: StatCounter,
    /// Free pools whose memory was given back to the OS (`purge.rs`), since the start.
    pub(crate) pools_purged: StatCounter,
    /// Arena-sized places inside live large blocks, past their heads (`large_blocks.rs`):
    /// mapped, not on the lists, not counted in `mapped`.
    pub(crate) block_arenas: StatCounter,
    /// Vacant places of the regions whose memory is still resident (`regions.rs`): in no
    /// arena and no block, not counted in `mapped`; a copy of `Regions::spare`, made under
    /// the lock.
    pub(crate) spare: StatCounter,
    /// Resident places of the regions that a large-block operation took under the lock and
    /// settles under it again later, holding them in between without it
    /// (`large_blocks.rs`): the spare places of a block being made in vacant places, until
    /// `finish_block` counts the block, and the spare places being moved into a block's
    /// purged ones (`fill_purged`), until they are vacant again or counted as returned.
    /// Counted here under the lock that takes them and uncounted under the one that settles
    /// them; in a child forked meanwhile, the places the other thread held stay in flight for
    /// good (a bounded leak, like its caches).
    pub(crate) in_flight: StatCounter,
    /// Live large blocks, and their sizes in bytes: written with `add_shared` (see the
    /// invariants), because a thread resizes a block in place without the lock
    /// (`fallback.rs`). (With plain `add`s they lost updates when two threads raced:
    /// `large_blocks` read fewer blocks than were live.) A thread that keeps a block or takes a
    /// kept one back counts that on its heap instead (`LargeCache::live_blocks`: no locked
    /// instruction on those paths), and `stats()` adds the heaps' counts to these.
    pub(crate) large_blocks: StatCounter,
    pub(crate) large_bytes: StatCounter,
}

impl ArenaCounters {
    /// Arena-sized places mapped now: arenas on the lists, places inside live large blocks,
    /// spare places, and places in flight (see the fields). At every release of the lock,
    /// `mapped + block_arenas + spare + in_flight + returned == mapped_total`, that is
    /// `arenas_mapped() + returned == mapped_total` (`large_blocks.rs`' invariants).
    pub(crate) fn arenas_mapped(&self) -> u64 {
        self.mapped
            .get()
            .wrapping_add(self.block_arenas.get())
            .wrapping_add(self.spare.get())
            .wrapping_add(self.in_flight.get())
    }
}

/// # Invariants
/// * `lists` and every `Arena` header are accessed only with `lock` held.
/// * An arena is on `lists.arenas` from its mapping until it is unmapped (see `ArenaLists`
///   for how); its bit in the arena map is set for exactly that span.
/// * A pool is `PoolState::Free` (and owned by the manager) exactly while it is on its
///   arena's `free_pools` list or in `untouched..end`; the pools from `end` on are a large
///   block's (`large_blocks.rs`).
pub(crate) struct ArenaManager {
    lock: RawLock,
    lists: UnsafeCell<Lists>,
    pub(crate) counters: ArenaCounters,
    pub(crate) work: super::work::ArenaWork,
    /// Empty arenas always kept mapped (at least).
    min_retained: usize,
    /// Under loom: empty arenas decay as outside loom (`ModelAllocator::with_decay`); else
    /// they are unmapped at once.
    #[cfg(loom)]
    decay: bool,
    /// How many large blocks ended their lives on foreign threads: what vouches for the free
    /// of a block a thread's keep served (`large_cache.rs`). Read by every such free, written
    /// only at the end of a block's life on a thread other than its owner's
    /// ([`note_life_ended`](Self::note_life_ended)).
    pub(crate) foreign_frees: ForeignFrees,
    /// Under loom: the clock the manager reads (ms), which only the model moves
    /// (`ModelAllocator::advance_clock`), so that every execution makes the same decisions.
    #[cfg(loom)]
    model_clock: core::sync::atomic::AtomicU64,
}

impl ArenaManager {
    crate::sync::maybe_const_fn! {
        pub(crate) fn new() -> ArenaManager {
            ArenaManager {
                lock: RawLock::new(),
                lists: UnsafeCell::new(Lists {
                    arenas: ArenaLists::new(),
                    dirty: DirtyArenas::new(),
                    #[cfg(all(target_os = "linux", not(loom), not(miri)))]
                    regions: regions::Regions::new(),
                    #[cfg(loom)]
                    released: [ptr::null_mut(); 64],
                    #[cfg(loom)]
                    nreleased: 0,
                }),
                foreign_frees: ForeignFrees::new(),
                counters: ArenaCounters {
                    mapped: StatCounter::new(),
                    high_water: StatCounter::new(),
                    mapped_total: StatCounter::new(),
                    returned: StatCounter::new(),
                    pools_purged: StatCounter::new(),
                    block_arenas: StatCounter::new(),
                    spare: StatCounter::new(),
                    in_flight: StatCounter::new(),
                    large_blocks: StatCounter::new(),
                    large_bytes: StatCounter::new(),
                },
                work: super::work::ArenaWork::new(),
                min_retained: 2,
                #[cfg(loom)]
                decay: false,
                #[cfg(loom)]
                model_clock: core::sync::atomic::AtomicU64::new(0),
            }
        }
    }

    /// Under loom: a manager that keeps no empty arena, so that models see arenas released.
    #[cfg(loom)]
    pub(crate) fn set_min_retained(&mut self, n: usize) {
        self.min_retained = n;
    }

    /// Under loom: let empty arenas decay (see the `decay` field).
    #[cfg(loom)]
    pub(crate) fn set_decay(&mut self, on: bool) {
        self.decay = on;
    }

    /// Whether the release that empties an arena unmaps empty arenas down to the retained
    /// limit at once, rather than leaving them to decay: with a zero purge delay, and in loom
    /// models unless they asked for the decay.
    fn unmaps_at_once(&self) -> bool {
        #[cfg(loom)]
        return !self.decay;
        #[cfg(not(loom))]
        return purge::delay_ms() == 0;
    }

    /// Under loom: move the model clock on by `ms`.
    #[cfg(loom)]
    pub(crate) fn advance_clock(&self, ms: u64) {
        self.model_clock
            .fetch_add(ms, core::sync::atomic::Ordering::Relaxed);
    }

    /// The time (ms) the purge and decay checks compare with: `os::now_ms`, or under loom the
    /// model clock.
    fn now_ms(&self) -> u64 {
        #[cfg(loom)]
        return self.model_clock.load(core::sync::atomic::Ordering::Relaxed);
        #[cfg(not(loom))]
        return os::now_ms();
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

    /// A live large block whose recorded owner is `owner` (null: none) ends its life (freed,
    /// or resized to another shape) on the thread whose heap is `freer` (null: a thread
    /// without one): unless `freer` is its owner, the served blocks' records go stale
    /// ([`ForeignFrees`]). The caller calls it after the block's check and before the lock
    /// section that lets its places be taken again.
    #[cfg_attr(all(not(loom), not(target_os = "linux")), allow(dead_code))]
    pub(crate) fn note_life_ended(&self, owner: *mut PoolOwner, freer: *mut PoolOwner) {
        if !owner.is_null() && owner != freer {
            self.foreign_frees.bump();
        }
    }

    /// How many empty arenas may stay mapped when `mapped` arenas are mapped.
    fn retained_limit(&self, mapped: usize) -> usize {
        self.min_retained.max(mapped / 8)
    }

    /// How many empty arenas may stay mapped when `mapped` arenas are mapped: the retained
    /// limit, or, while they are `decaying` (waiting for their dirt to be due), that or
    /// [`DECAY_ARENAS`], whichever is more.
    fn empty_limit(&self, mapped: usize, decaying: bool) -> usize {
        let retained = self.retained_limit(mapped);
        if decaying {
            retained.max(DECAY_ARENAS)
        } else {
            retained
        }
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
        let now = self.now_ms();
        self.lock();
        self.work.pool_requests.add(1);
        // Due empty arenas beyond the retained limit are unmapped here too (a pool request
        // may be the only traffic); at least the retained limit's worth stays for this request
        // to take from.
        let mut victims = Victims::new();
        // SAFETY: lock held.
        unsafe { self.purge_due(now, map, &mut victims) };
        // SAFETY: lock held.
        let mut arena = unsafe { self.pick_arena() };
        if arena.is_null() {
            // A vacant place of a region, if there is one: no system call.
            // SAFETY: lock held.
            arena = unsafe { self.arena_in_region(map, now) };
        }
        if arena.is_null() {
            // SAFETY: lock held; the victims were taken under it.
            unsafe { self.unlock_and_unmap(&mut victims) };
            let fresh = Self::map_arena(map);
            self.lock();
            if fresh.is_null() {
                // No new arena: a bare block head will do (`pick_arena`), if any.
                // SAFETY: lock held.
                arena = unsafe { (*self.lists.get()).arenas.fullest_with_free_pool() };
                if arena.is_null() {
                    self.unlock();
                    return ptr::null_mut();
                }
            } else {
                // SAFETY: lock held; `fresh` is a new arena nobody else knows.
                unsafe { self.insert(fresh) };
                arena = fresh;
            }
        }
        // SAFETY: lock held; `arena` has a free pool.
        let (pool, fresh) = unsafe { self.take_pool(arena) };
        // Initialized under the lock, so that `for_each_pool_in_use` never sees a pool taken
        // but not yet initialized.
        // SAFETY: the pool is ours alone now: no live block, on no list.
        unsafe { Pool::init(pool, owner, class, fresh) };
        // SAFETY: lock held; the victims (none if they went above) were taken under it.
        unsafe { self.unlock_and_unmap(&mut victims) };
        pool
    }

    /// Make `pool`, an empty pool its owner kept, a pool of `class` for `owner`, its state
    /// `Current`: as [`acquire_pool`](Self::acquire_pool) initializes a pool it hands out,
    /// and under the lock for the same reason (`for_each_pool_in_use` reads `class` and
    /// `capacity`), but without the lists' work: the pool stays handed out.
    ///
    /// # Safety
    /// `pool` is a pool of this manager's arenas, handed out to `owner`, empty (`used == 0`:
    /// no live block, no freer in flight), on none of its owner's lists, and the caller holds
    /// `owner`.
    pub(crate) unsafe fn reinit_pool(&self, pool: *mut Pool, owner: *mut PoolOwner, class: usize) {
        self.lock();
        // SAFETY: the pool is the caller's alone (contract): no live block, no freer, on no
        // list; its memory was handed out before, so not known to be zero.
        unsafe { Pool::init(pool, owner, class, false) };
        self.unlock();
    }

    /// Call `f` with the header of every pool handed out (in use by some heap), under the
    /// lock. `f` may read a pool's `class` and `capacity` (written only under the lock while
    /// the pool is handed out: `Pool`'s invariants) and its `used` (an atomic), nothing else:
    /// the holders run meanwhile.
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
    /// most [`empty_limit`](Self::empty_limit) of them stay mapped: this one first, then
    /// others retained earlier, when a shrinking mapped count lowered the limit below the
    /// number already kept. Those kept wait until their dirt is older than the purge delay
    /// ([`purge_due`](Self::purge_due), run here and on pool requests, then unmaps them down
    /// to the retained limit and purges the rest). Bound (audit of issue 13): O(1) to file the
    /// arena under its new count, and O(1) per arena unmapped, at most [`TRIM_BATCH`] of them
    /// (an empty arena is the head of its list, and a due one the head of the dirty queue:
    /// none is searched for).
    ///
    /// # Safety
    /// `pool` is empty (`used == 0`: no live block, no freer in flight) and on no heap list;
    /// the caller stops using it.
    pub(crate) unsafe fn release_pool(&self, map: &ArenaMap, pool: *mut Pool) {
        let arena = arena_of(pool);
        let mut victims = Victims::new();
        let now = self.now_ms();
        self.lock();
        // SAFETY: lock held; the arena of a pool in use is mapped and on the lists; arenas on
        // the lists are mapped.
        unsafe {
            let lists = &mut *self.lists.get();
            let p = &*pool;
            p.state.set(PoolState::Free);
            p.next.set((*arena).free_pools);
            if (*arena).free_pools.is_null() {
                (*arena).free_tail = pool;
            }
            (*arena).free_pools = pool;
            lists.arenas.set_nfree(arena, (*arena).nfree + 1);
            lists.dirty.pool_freed(arena, pool_index(pool), now);
            if (*arena).nfree == USABLE_POOLS {
                if self.retire_in_region(lists, map, arena, now) {
                    self.trim_spare(lists, &mut victims, DECAY_ARENAS);
                } else {
                    // The arena just emptied heads the list of empty arenas: it goes first.
                    let decaying = !self.unmaps_at_once();
                    self.take_empty_beyond(lists, map, &mut victims, decaying);
                }
            }
        }
        // SAFETY: lock held.
        unsafe { self.purge_due(now, map, &mut victims) };
        // SAFETY: lock held; the victims were taken under it.
        unsafe { self.unlock_and_unmap(&mut victims) };
    }

    /// The arena count once `victims` are unmapped.
    fn mapped_after(&self, victims: &Victims) -> usize {
        self.counters.mapped.get() as usize - victims.n
    }

    /// Take empty arenas, the most recently emptied first, into `victims` while they and the
    /// regions' spare places are more than [`empty_limit`](Self::empty_limit) allows and
    /// `victims` has room. Returns the dirty (resident) pools of those taken.
    ///
    /// # Safety
    /// Lock held; `lists` is the manager's state (`self.lists`).
    unsafe fn take_empty_beyond(
        &self,
        lists: &mut Lists,
        map: &ArenaMap,
        victims: &mut Victims,
        decaying: bool,
    ) -> usize {
        let mut dirty = 0;
        // The regions' spare places share the limit, and stay first: a place serves a large
        // block or a new arena alike, an empty arena outside the regions only pools.
        while lists.arenas.empty + self.spare_in(lists)
            > self.empty_limit(self.mapped_after(victims), decaying)
            && lists.arenas.empty > 0
            && victims.has_room()
        {
            // An empty arena heads its list (`ArenaLists::an_empty_arena`).
            let victim = lists.arenas.an_empty_arena();
            // SAFETY: lock held; on the lists, hence mapped.
            dirty += unsafe { (*victim).dirty }.count_ones() as usize;
            // SAFETY: lock held; mapped, on the lists, every usable pool free; room checked.
            unsafe { self.take_victim(lists, map, victim, victims) };
        }
        dirty
    }

    /// Take `victim` (mapped, empty, on the lists) off the lists, the dirty queue and the
    /// arena map, into `victims`.
    ///
    /// # Safety
    /// Lock held; `lists` is the manager's state; `victim` is a mapped arena on the lists
    /// whose usable pools are all free; `victims` has room.
    unsafe fn take_victim(
        &self,
        lists: &mut Lists,
        map: &ArenaMap,
        victim: *mut Arena,
        victims: &mut Victims,
    ) {
        self.work.arenas_visited.add(1);
        // SAFETY: lock held; the arena is mapped and on the lists (caller).
        unsafe {
            lists.arenas.unlink(victim);
            lists.dirty.forget(victim);
        }
        map.remove(arena_base(victim));
        victims.push(victim);
    }

    /// Count `victims` as returned, release the lock, and unmap them (under loom: make them
    /// inaccessible, under the lock, and keep them for the manager's drop); `victims` is left
    /// empty.
    ///
    /// # Safety
    /// Lock held; `victims` were taken by `take_victim` under it.
    unsafe fn unlock_and_unmap(&self, victims: &mut Victims) {
        let n = core::mem::take(&mut victims.n);
        if n == 0 {
            self.unlock();
            // SAFETY: lock released; the spare places were taken under it.
            unsafe { self.finish_trim(&mut victims.spare) };
            return;
        }
        self.counters.mapped.add((n as u64).wrapping_neg());
        self.counters.returned.add(n as u64);
        #[cfg(not(loom))]
        {
            // Victims in a region keep their place: purged, then vacant (under the lock
            // again: until then the place is the caller's, and nobody can take it).
            let mut in_region = 0u32;
            for (i, &victim) in victims.arenas[..n].iter().enumerate() {
                // SAFETY: lock held.
                if unsafe { self.in_region(victim as usize) } {
                    in_region |= 1 << i;
                }
            }
            self.unlock();
            for (i, &victim) in victims.arenas[..n].iter().enumerate() {
                if in_region & (1 << i) == 0 {
                    os::unmap(arena_base(victim), ARENA_SIZE);
                } else {
                    os::purge(arena_base(victim), ARENA_SIZE);
                }
            }
            if in_region != 0 {
                self.lock();
                for (i, &victim) in victims.arenas[..n].iter().enumerate() {
                    if in_region & (1 << i) != 0 {
                        // SAFETY: lock held; a place of a region that was an arena taken off
                        // everything as a victim, purged just now, given up.
                        unsafe { self.vacate_purged(victim as usize) };
                    }
                }
                // SAFETY: lock held.
                unsafe { self.unlock_and_unmap_idle_regions() };
            }
            // SAFETY: lock released; the spare places were taken under it.
            unsafe { self.finish_trim(&mut victims.spare) };
        }
        #[cfg(loom)]
        {
            // SAFETY: lock held.
            let lists = unsafe { &mut *self.lists.get() };
            for &victim in &victims.arenas[..n] {
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

    /// Handle the arenas whose free pools have been resident longer than the purge delay, at
    /// most [`PURGE_BUDGET`] of them, oldest dirt first (`purge.rs`): one that is empty goes
    /// into `victims` (to be unmapped) while more than the retained limit of empty arenas are
    /// mapped and `victims` has room; any other is purged (its dirty pools' memory given
    /// back, its addresses kept).
    ///
    /// # Safety
    /// Lock held.
    unsafe fn purge_due(&self, now: u64, map: &ArenaMap, victims: &mut Victims) {
        let delay = purge::delay_ms();
        let mut purged = 0;
        // SAFETY: lock held (caller).
        let lists = unsafe { &mut *self.lists.get() };
        for _ in 0..PURGE_BUDGET {
            // SAFETY: lock held.
            let arena = unsafe { lists.dirty.due(now, delay) };
            if arena.is_null() {
                break;
            }
            // SAFETY: on the dirty queue, hence mapped and on the lists (lock held).
            let empty = unsafe { (*arena).nfree } == USABLE_POOLS;
            if empty
                && victims.has_room()
                && lists.arenas.empty + self.spare_in(lists)
                    > self.retained_limit(self.mapped_after(victims))
            {
                // SAFETY: lock held; mapped, on the lists, every usable pool free.
                unsafe { self.take_victim(lists, map, arena, victims) };
            } else {
                // SAFETY: lock held; `arena` heads the dirty queue.
                purged += unsafe { lists.dirty.purge_arena(arena) };
            }
        }
        if purged != 0 {
            self.counters.pools_purged.add(purged as u64);
        }
        // SAFETY: lock held.
        unsafe { self.decay_regions(now, delay, victims) };
    }

    /// Give back the memory of every free pool still resident, whatever its age, and unmap
    /// the empty arenas beyond the retained limit. Returns the pools whose memory went back:
    /// those purged, and the dirty ones of the arenas unmapped.
    pub(crate) fn purge_all(&self, map: &ArenaMap) -> usize {
        let mut given_back = 0;
        // Unmap in batches of `TRIM_BATCH`, releasing the lock between batches.
        loop {
            let mut victims = Victims::new();
            self.lock();
            // SAFETY: lock held; `self.lists` is the manager's state.
            given_back +=
                unsafe { self.take_empty_beyond(&mut *self.lists.get(), map, &mut victims, false) };
            let more = !victims.has_room();
            // SAFETY: lock held; the victims were taken under it.
            unsafe { self.unlock_and_unmap(&mut victims) };
            if !more {
                break;
            }
        }
        self.lock();
        // SAFETY: lock held.
        let n = unsafe { (*self.lists.get()).dirty.purge_all() };
        self.counters.pools_purged.add(n as u64);
        // SAFETY: lock held.
        let spare = unsafe { self.purge_regions() };
        // SAFETY: lock held.
        unsafe { self.unlock_and_unmap_idle_regions() };
        given_back + n + spare * USABLE_POOLS
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
                let listed = h.nfree - (h.end - h.untouched);
                let dirty = h.dirty.count_ones() as usize;
                resident += dirty;
                purged += listed - dirty;
            });
            resident += self.spare_in(&*self.lists.get()) * USABLE_POOLS;
        }
        self.unlock();
        (resident, purged)
    }

    /// The fullest arena with a free pool that is not a one-arena large block's bare head
    /// ([`Arena::is_bare_block_head`]), or null if there is none. O(1): it looks at one arena
    /// header, or, when only empty arenas have free pools, at most [`EMPTY_SCAN`] of them for
    /// the one with the most resident pools (once per arena's worth of pools taken); when the
    /// fullest is a bare head, at most [`EMPTY_SCAN`] arenas for another, at every pool request
    /// for as long as bare heads are fuller than the arena found (as many headers as there are
    /// such heads, at most [`EMPTY_SCAN`]). Beyond that bound the fullest, a bare head, is
    /// returned after all.
    ///
    /// **Why a bare head is passed over.** A pool taken from the place of a live one-arena
    /// large block (the free pools below the block) keeps that place from going vacant when
    /// the block is freed, and holds the pools the next block of the shape would take there:
    /// the next block then needs another place, whose free pools the next pools take in turn,
    /// and each such place ends up resident whole. The `rayon` workload, whose threads keep
    /// their 264 KiB tables (`large_cache.rs`) while the others allocate strings, spread its
    /// pools over nine places that way: a peak of 9.7-19.1 MiB (median 14.7, 20 runs)
    /// against 9.7-14.5 (median 11.0) with bare heads passed over (BENCHMARKS.md "Session
    /// 35"). Passing one over costs address space, not memory: the pool a new arena gives is
    /// one pool touched, as the head's would be. Only one-arena blocks: passing over the heads
    /// of larger blocks too (a 3 MiB table's head has up to 59 free pools) raised the
    /// `hashmap` workload's peak by 0.8-0.9 MiB. When no other arena can be had, the caller
    /// falls back on a bare head (`fullest_with_free_pool`); so does this function when more
    /// bare heads than [`EMPTY_SCAN`] are fuller than any other arena (else each pool request
    /// would map an arena of its own: 42 arenas for 128 pools with 40 bare heads live,
    /// `tests/alloc_block_place.rs`).
    ///
    /// # Safety
    /// Lock held.
    unsafe fn pick_arena(&self) -> *mut Arena {
        // SAFETY: lock held (caller).
        let lists = unsafe { &(*self.lists.get()).arenas };
        let mut arena = lists.fullest_with_free_pool();
        if arena.is_null() {
            return arena;
        }
        // SAFETY: on the lists, hence mapped; lock held.
        if unsafe { (*arena).is_bare_block_head() } {
            let mut other = ptr::null_mut();
            // SAFETY: lock held; the closure reads the headers of arenas on the lists.
            let seen = unsafe {
                lists.visit_with_free(1, EMPTY_SCAN, |a| {
                    let bare = (*a).is_bare_block_head();
                    if !bare {
                        other = a;
                    }
                    !bare
                })
            };
            self.work.arenas_visited.add(seen as u64);
            if !other.is_null() {
                arena = other;
            } else if seen < EMPTY_SCAN {
                // Every arena with a free pool is a bare place: a new arena serves.
                return other;
            }
            // Else more bare places than the scan's bound: the fullest serves after all (a
            // new arena per pool, the next ones found behind the same bare places, would grow
            // the arenas without bound).
        }
        // SAFETY: on the lists, hence mapped; lock held.
        if unsafe { (*arena).nfree } == USABLE_POOLS {
            // No arena in use has a free pool: an empty one, preferably resident.
            // SAFETY: lock held.
            let (empty, seen) = unsafe { lists.dirtiest_empty(EMPTY_SCAN) };
            self.work.arenas_visited.add(seen as u64);
            return empty;
        }
        self.work.arenas_visited.add(1);
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
                if a.free_pools.is_null() {
                    a.free_tail = ptr::null_mut();
                }
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
        self.counters.mapped.add(1);
        self.counters.mapped_total.add(1);
        self.note_high_water();
    }

    /// Raise the high-water mark of arenas mapped (on the lists, and inside large blocks) to
    /// the count now. Called with the lock held, so that the counters are read together.
    fn note_high_water(&self) {
        let now = self.counters.arenas_mapped();
        let high = self.counters.high_water.get();
        if now > high {
            self.counters.high_water.add(now - high);
        }
    }
}

/// The regions' part of the manager (`regions.rs`): where regions exist.
#[cfg(all(target_os = "linux", not(loom), not(miri)))]
impl ArenaManager {
    /// The regions, part of the locked state.
    ///
    /// # Safety
    /// Lock held, and no other reference to them alive.
    #[allow(clippy::mut_from_ref)]
    unsafe fn regions(&self) -> &mut regions::Regions {
        // SAFETY: the caller holds the lock (the `Lists` it guards) and no other reference.
        unsafe { &mut (*self.lists.get()).regions }
    }

    /// Copy the regions' count of resident vacant places to `counters.spare` (lock held: the
    /// one writer).
    fn sync_spare(&self, spare: usize) {
        let old = self.counters.spare.get();
        self.counters.spare.add((spare as u64).wrapping_sub(old));
    }

    /// Resident vacant places in all regions (the regions of the locked state `lists`).
    fn spare_in(&self, lists: &Lists) -> usize {
        lists.regions.spare()
    }

    /// Whether `addr` lies in a region.
    ///
    /// # Safety
    /// Lock held.
    unsafe fn in_region(&self, addr: usize) -> bool {
        // SAFETY: lock held (caller).
        unsafe { self.regions().contains(addr) }
    }

    /// If `arena` (empty, on the lists) lies in a region and more empty arenas than the
    /// retained limit are mapped, take it off the lists, the dirty queue and the arena map,
    /// and make its place vacant and resident (spare; the caller trims the spare places to
    /// the limit: `trim_spare`). Returns whether it did: so beyond the retained few, an empty
    /// arena in a region is not kept on the lists, where a large block could not use its
    /// place; its memory waits as a spare place, for a block or a new arena alike.
    ///
    /// # Safety
    /// Lock held, `lists` the manager's state; `arena` is a mapped arena on the lists whose
    /// usable pools are all free.
    unsafe fn retire_in_region(
        &self,
        lists: &mut Lists,
        map: &ArenaMap,
        arena: *mut Arena,
        now: u64,
    ) -> bool {
        // Up to the retained limit, empty arenas stay on the lists wherever they lie (the
        // hysteresis: a program that takes and gives back a pool in a loop does not make and
        // unmake an arena each time).
        let retained = self.retained_limit(self.counters.mapped.get() as usize);
        if lists.arenas.empty + lists.regions.spare() <= retained
            || !lists.regions.contains(arena as usize)
        {
            return false;
        }
        self.work.arenas_visited.add(1);
        // The place is as old as the arena's oldest resident free pool (`purge.rs`): it is
        // purged when that pool would have been. With none, only its header is resident, and
        // it is due at once.
        // SAFETY: lock held; mapped, on the lists (caller).
        let since = unsafe {
            if (*arena).dirty != 0 {
                (*arena).dirty_since.min(now)
            } else {
                0
            }
        };
        // SAFETY: lock held; mapped, on the lists (caller); once off them and out of the map,
        // the place is ours to give up.
        unsafe {
            lists.arenas.unlink(arena);
            lists.dirty.forget(arena);
            map.remove(arena_base(arena));
            lists.regions.vacate(arena as usize, 1, true, since);
        }
        self.counters.mapped.add(1u64.wrapping_neg());
        self.sync_spare(lists.regions.spare());
        true
    }

    /// Take the spare places beyond the limit into `victims`, the highest first, to be
    /// purged once the lock is released (`finish_trim`); they count as returned at once.
    /// Spare places and empty arenas are the memory kept idle for reuse, and share one limit:
    /// while they decay, `decay_limit` or an eighth of the arenas mapped, whichever is more
    /// (`decay_limit` is [`DECAY_ARENAS`] when an arena empties, as before regions, and
    /// [`SPARE_LIMIT`](regions::SPARE_LIMIT) when a large block is freed: the holes between
    /// live blocks that the next ones are made in); else (a zero purge delay) the retained
    /// limit.
    ///
    /// # Safety
    /// Lock held, `lists` the manager's state.
    unsafe fn trim_spare(&self, lists: &mut Lists, victims: &mut Victims, decay_limit: usize) {
        let mapped = self.counters.mapped.get() as usize;
        let limit = if self.unmaps_at_once() {
            self.retained_limit(mapped)
        } else {
            decay_limit.max(mapped / 8)
        };
        let limit = limit.saturating_sub(lists.arenas.empty);
        let excess = lists.regions.spare().saturating_sub(limit);
        if excess == 0 {
            return;
        }
        let trim = &mut victims.spare;
        // SAFETY: lock held.
        let runs = unsafe {
            lists
                .regions
                .take_highest_spare(excess, &mut trim.runs[trim.n..])
        };
        let places: usize = trim.runs[trim.n..trim.n + runs].iter().map(|r| r.1).sum();
        trim.n += runs;
        self.counters.returned.add(places as u64);
        self.sync_spare(lists.regions.spare());
    }

    /// Purge the places `trim` holds, then make them vacant (purged) under the lock.
    ///
    /// # Safety
    /// Lock not held; `trim` was filled by `trim_spare` or `decay_regions` under it.
    unsafe fn finish_trim(&self, trim: &mut SpareTrim) {
        let n = core::mem::take(&mut trim.n);
        if n == 0 {
            return;
        }
        for &(at, places) in &trim.runs[..n] {
            os::purge(at as *mut u8, places * ARENA_SIZE);
        }
        self.lock();
        for &(at, places) in &trim.runs[..n] {
            // SAFETY: lock held; places taken off the regions under it (`trim_spare`,
            // `decay_regions`), ours, purged.
            unsafe { self.regions().vacate(at, places, false, 0) };
        }
        // SAFETY: lock held.
        unsafe { self.unlock_and_unmap_idle_regions() };
    }

    /// Take the regions left idle (`Regions::take_idle`: every place vacant and purged) out
    /// of the table, release the lock, and unmap them, at most four at a time (the next
    /// call takes the others).
    ///
    /// # Safety
    /// Lock held; released on return.
    unsafe fn unlock_and_unmap_idle_regions(&self) {
        let mut idle = [0usize; 4];
        let mut n = 0;
        while n < idle.len() {
            // SAFETY: lock held (caller).
            match unsafe { self.regions().take_idle() } {
                Some(base) => {
                    idle[n] = base;
                    n += 1;
                }
                None => break,
            }
        }
        self.unlock();
        for &base in &idle[..n] {
            // Out of the table under the lock: nobody can take a place of it any more, and
            // none was in use.
            os::unmap(base as *mut u8, regions::REGION_SIZE);
        }
    }

    /// Make the place at `addr`, purged, vacant (`counters.returned` counted it already).
    ///
    /// # Safety
    /// Lock held; the place is in a region, the caller's, purged, and given up.
    unsafe fn vacate_purged(&self, addr: usize) {
        // SAFETY: lock held; forwarded contract.
        unsafe { self.regions().vacate(addr, 1, false, 0) };
    }

    /// A new arena in a vacant place of a region, on the lists and in the arena map: the
    /// lowest resident place (its pools free and dirty), else the lowest purged one (fresh);
    /// null if there is none (or the arena map has no room).
    ///
    /// # Safety
    /// Lock held.
    unsafe fn arena_in_region(&self, map: &ArenaMap, now: u64) -> *mut Arena {
        // SAFETY: lock held (caller).
        let regions = unsafe { self.regions() };
        // SAFETY: lock held.
        let Some((addr, resident)) = (unsafe { regions.take_one() }) else {
            return ptr::null_mut();
        };
        if !map.insert(addr as *mut u8) {
            // SAFETY: lock held; taken just now, untouched.
            unsafe { regions.vacate(addr, 1, resident, now) };
            return ptr::null_mut();
        }
        let spare = regions.spare();
        let arena = addr as *mut Arena;
        // SAFETY: lock held; the place is ours (taken), its header written before the arena
        // joins the lists; a resident place's memory holds old bytes, so its pools are all
        // free and dirty (`write_freed`), a purged one is zero (a fresh header).
        unsafe {
            let lists = &mut *self.lists.get();
            if resident {
                large_blocks::write_freed(addr as *mut u8);
                lists.arenas.push(arena);
                let dirty = (*arena).dirty;
                (*arena).dirty = 0;
                lists.dirty.pools_freed(arena, dirty, now);
            } else {
                ptr::write(arena, Arena::fresh());
                lists.arenas.push(arena);
                self.counters.mapped_total.add(1);
            }
        }
        self.counters.mapped.add(1);
        self.sync_spare(spare);
        self.note_high_water();
        arena
    }

    /// Take the resident vacant places that are due (`Regions::take_due`) into `victims`,
    /// to be purged once the lock is released.
    ///
    /// # Safety
    /// Lock held.
    unsafe fn decay_regions(&self, now: u64, delay: u64, victims: &mut Victims) {
        // SAFETY: lock held (caller).
        let regions = unsafe { self.regions() };
        let trim = &mut victims.spare;
        // SAFETY: lock held.
        let (runs, places) = unsafe { regions.take_due(now, delay, &mut trim.runs[trim.n..]) };
        if places != 0 {
            trim.n += runs;
            self.counters.returned.add(places as u64);
            self.sync_spare(regions.spare());
        }
    }

    /// Purge every resident vacant place; returns how many.
    ///
    /// # Safety
    /// Lock held.
    unsafe fn purge_regions(&self) -> usize {
        // SAFETY: lock held (caller).
        let regions = unsafe { self.regions() };
        // SAFETY: lock held.
        let purged = unsafe { regions.purge_all() };
        self.counters.returned.add(purged as u64);
        self.sync_spare(regions.spare());
        purged
    }
}

/// Without regions (not Linux, loom, Miri): nothing is in one.
#[cfg(not(all(target_os = "linux", not(loom), not(miri))))]
impl ArenaManager {
    /// # Safety
    /// None (no regions).
    #[cfg(not(loom))]
    unsafe fn in_region(&self, _addr: usize) -> bool {
        false
    }

    /// # Safety
    /// Never called: nothing is in a region.
    #[cfg(not(loom))]
    unsafe fn vacate_purged(&self, _addr: usize) {
        unreachable!("no regions here")
    }

    /// No regions, no spare places.
    fn spare_in(&self, _lists: &Lists) -> usize {
        0
    }

    /// # Safety
    /// None (no regions).
    unsafe fn retire_in_region(
        &self,
        _lists: &mut Lists,
        _map: &ArenaMap,
        _arena: *mut Arena,
        _now: u64,
    ) -> bool {
        false
    }

    /// # Safety
    /// None (no regions).
    unsafe fn trim_spare(&self, _lists: &mut Lists, _victims: &mut Victims, _decay_limit: usize) {}

    /// # Safety
    /// None (no regions).
    unsafe fn finish_trim(&self, _trim: &mut SpareTrim) {}

    /// # Safety
    /// None (no regions).
    unsafe fn arena_in_region(&self, _map: &ArenaMap, _now: u64) -> *mut Arena {
        ptr::null_mut()
    }

    /// # Safety
    /// None (no regions).
    unsafe fn decay_regions(&self, _now: u64, _delay: u64, _victims: &mut Victims) {}

    /// # Safety
    /// None (no regions).
    unsafe fn purge_regions(&self) -> usize {
        0
    }

    /// # Safety
    /// Lock held; released on return.
    unsafe fn unlock_and_unmap_idle_regions(&self) {
        self.unlock();
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
                    h.untouched <= h.end && h.end <= POOLS_PER_ARENA,
                    "arena: untouched or end out of range"
                );
                let mut free_listed = 0;
                let mut listed_mask = 0u64;
                let mut last = ptr::null_mut();
                let mut p = h.free_pools;
                while !p.is_null() {
                    assert_eq!(arena_of(p), a, "free pool of another arena");
                    assert_eq!((*p).state.get(), PoolState::Free, "free pool not Free");
                    listed_mask |= 1 << pool_index(p);
                    free_listed += 1;
                    assert!(free_listed <= POOLS_PER_ARENA, "free-pool list cycles");
                    last = p;
                    p = (*p).next.get();
                }
                assert_eq!(
                    h.free_tail, last,
                    "arena: free_tail is not the free list's last pool"
                );
                assert_eq!(
                    h.nfree,
                    free_listed + h.end - h.untouched,
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
