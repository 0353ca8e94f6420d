//! Large blocks: `PoolAlloc`'s requests of [`LARGE_MIN`] to [`LARGE_MAX`] bytes, carved from
//! the arenas as runs of whole pools, and given back to them as free pools when freed.
//!
//! **Why.** Before this, such requests went to glibc's `malloc`, whose heap was the only
//! place their memory could be reused once freed. A program that outgrows a hash table frees
//! the old one while it goes on allocating strings: glibc puts the strings in the old table's
//! memory, pyheap put them in its arenas, and the old tables stayed resident as holes in
//! glibc's heap (3.0 MiB of the `hashmap` workload's 22.4 MiB peak, against System's 19.8:
//! BENCHMARKS.md "Session 27"). Now a freed large block's pools serve the next small blocks,
//! and freed places serve the next large block: one pool of memory for both, as glibc's
//! coalescing heap is for System.
//!
//! **Shape.** A block of `size` bytes takes `pools = ceil(size / POOL_SIZE)` pools (one more
//! when that is a multiple of [`POOLS_PER_ARENA`]), laid out by [`shape`] to *end* at the end
//! of a run of `arenas` consecutive arenas: the last `POOLS_PER_ARENA - first_pool` pools of
//! the first arena (the *head*), then every pool of the others, their metadata pools'
//! places included. The head stays an arena like any other, its metadata pool in place and
//! its pools below `first_pool` free for heaps (`Arena::end` = `first_pool`); the arenas after
//! it are block memory only, on no list and not in the arena map, until the block is freed.
//! So the free of a block finds its head by masking (the block starts inside the head) and
//! needs no header of its own: `Layout` gives the size, the size gives the shape.
//!
//! **Where the memory comes from.** First, the calling thread's heap gives back its empty
//! current pools (one per size class it used, which otherwise keep arenas from ever being
//! empty after a program freed everything). A block of one arena then takes the last pools of
//! an arena whose pools there are free, the one with the most of them resident among the
//! first [`EMPTY_SCAN`] with enough free pools, fullest first (`carve_tail`): typically the
//! place a freed block of its size left. Otherwise (and for every block of several arenas)
//! the block is made in a *region* (`regions.rs`): a 64 MiB reservation of address space
//! whose arena-sized places are in use or vacant, one bit each. `Regions::find` looks for
//! `arenas` consecutive vacant places, or an arena whose last pools the block needs are free
//! followed by `arenas - 1` vacant ones (the place a freed block left, its head included),
//! the most resident room first, then the shortest run of vacant places it fits in, then the
//! lowest address. No region has room: a new one is reserved. The block's places that were
//! purged get the pages of spare (resident) places moved in with `mremap` where there are
//! some (`fill_purged`: no page fault, no copy); a vacant first place becomes the head, a new
//! arena. Only if no region can be reserved does a block get a mapping of its own.
//!
//! **Freeing.** The head's pools from `first_pool` on go back at the end of its free list,
//! resident (dirty, for the purge: `purge.rs`), so that the arena's other free pools serve
//! pool requests first and the place stays whole for the next block of its size. In a region,
//! the places after the head just go vacant, resident (one bit each: no header, no list, no
//! system call), and so does the head's place when it is empty now and more than the retained
//! few empty arenas are kept. Resident vacant places (*spare*) serve the next blocks and new
//! arenas alike; beyond the spare limit (`regions::SPARE_LIMIT`, shared with the empty
//! arenas) the highest are purged, and each is purged once it has been vacant for the purge
//! delay. A block with a mapping of its own gives its places to the lists as arenas (fresh
//! headers), as many as the empty-arena limit allows (`ArenaManager::empty_limit`), and
//! unmaps the rest.
//!
//! **Resizing** (`realloc_large_block`) keeps one copy of the bytes resident where it can: a
//! block of the same arena count shrinks or grows within its head (its bytes move, the pools
//! below it go or come), and a block growing into more arenas has its old places moved into
//! the new block with `mremap` behind the copy of its head's part (at most one arena's
//! worth); in a region the old places stay mapped, empty, and go vacant
//! (`MREMAP_DONTUNMAP`; a kernel without it makes the resize copy). Other resizes allocate,
//! copy and free.
//!
//! # Invariants
//! * A large block of shape `(arenas, first_pool)` at `p` owns the pools `first_pool..` of
//!   its head `p - first_pool * POOL_SIZE` (an arena on the lists and in the arena map, with
//!   `end == first_pool`, those pools' headers [`PoolState::LargeBlock`] of class
//!   [`NO_CLASS`]) and the `arenas - 1` arena-sized places after the head, which are in no
//!   list and not in the arena map, and in a region are not vacant. Nobody but the block's
//!   holder touches that memory. A block lies wholly in one region or wholly outside them.
//! * `counters.block_arenas` counts those places over all live blocks; `counters.mapped`
//!   counts the arenas on the lists (heads included); `counters.spare` the resident vacant
//!   places; `counters.in_flight` the resident places an operation took under the lock and
//!   holds until it settles them under the lock again (a block's own places until
//!   `finish_block`, a fill's sources until `fill_purged` is done with them). So
//!   `mapped + block_arenas + spare + in_flight + returned == mapped_total` at every release
//!   of the lock. (Places taken to be purged, `SpareTrim`, count as returned when taken.)
//!
//! Only on Linux (`mremap`, `MADV_DONTNEED`'s zero pages), and never under loom (whose
//! models do not build `PoolAlloc`'s fallback): elsewhere large requests go to the system
//! allocator as before.

use super::regions::{Regions, Room, REGION_SIZE, SPARE_LIMIT};
use super::{arena_base, Arena, ArenaManager, Victims};
use crate::alloc::arena_lists::{EMPTY_SCAN, USABLE_POOLS};
use crate::alloc::arena_map::{ArenaMap, ADDRESS_LIMIT};
use crate::alloc::os;
use crate::alloc::pool::{
    pool_header, pool_index, Pool, PoolOwner, PoolState, METADATA_POOLS, NO_CLASS,
};
use crate::alloc::size_class::{ARENA_SIZE, POOLS_PER_ARENA, POOL_SIZE};
use crate::sync::Ordering;
use core::cell::Cell;
use core::ptr;

/// The smallest request served as a large block: a quarter of an arena (16 pools). Smaller
/// ones stay with `malloc`, whose heap packs them and reuses them in place; from 128 KiB
/// (glibc's own default `mmap` threshold) the `rayon` workload's per-worker tables of
/// 135 KiB, freed and built again on two threads, kept more arenas resident than glibc kept
/// heap (peak RSS 10.9-12.6 MiB against 9.5-11.7; BENCHMARKS.md "Session 27").
pub(crate) const LARGE_MIN: usize = 256 * 1024;
/// The largest request served as a large block (32 MiB, the `mmap` threshold pyheap sets for
/// glibc: `glibc_tuning.rs`). Larger ones go to `malloc`, which maps each on its own.
pub(crate) const LARGE_MAX: usize = 32 << 20;
/// The largest alignment a large block has: its pools'.
pub(crate) const LARGE_ALIGN: usize = POOL_SIZE;

/// Where a large block of some size lies: see the module doc.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    /// Consecutive arena-sized places, the head first.
    pub(crate) arenas: usize,
    /// The head's first pool in the block (`METADATA_POOLS..POOLS_PER_ARENA`).
    pub(crate) first_pool: usize,
}

impl Shape {
    /// The address of the head of a block of this shape at `block` (the arena it starts in).
    /// Wrapping: a misused pointer gives an address the callers' checks reject.
    fn head_of(self, block: *mut u8) -> usize {
        (block as usize).wrapping_sub(self.first_pool * POOL_SIZE)
    }
}

/// The shape of a large block of `size` bytes (`LARGE_MIN..=LARGE_MAX`).
pub(crate) const fn shape(size: usize) -> Shape {
    let mut pools = size.div_ceil(POOL_SIZE);
    if pools % POOLS_PER_ARENA == 0 {
        // The head must keep at least one pool of the block, or the block would start on
        // an arena boundary, in an arena that is not the head.
        pools += 1;
    }
    Shape {
        arenas: pools / POOLS_PER_ARENA + 1,
        first_pool: POOLS_PER_ARENA - pools % POOLS_PER_ARENA,
    }
}

/// The most arena-sized places one large block spans: a region holds the largest.
const MAX_ARENAS: usize = shape(LARGE_MAX).arenas;
const _: () = assert!(MAX_ARENAS <= super::regions::REGION_PLACES);

const _: () = {
    assert!(LARGE_MIN >= POOL_SIZE && LARGE_MIN <= LARGE_MAX);
    // The head keeps its metadata pool, whatever the size.
    let mut size = LARGE_MIN;
    while size <= LARGE_MAX {
        let s = shape(size);
        assert!(s.first_pool >= METADATA_POOLS && s.first_pool < POOLS_PER_ARENA);
        assert!(
            (POOLS_PER_ARENA - s.first_pool + (s.arenas - 1) * POOLS_PER_ARENA) * POOL_SIZE >= size
        );
        size += POOL_SIZE;
    }
};

/// Bit `i` set for every pool `i` in `from..to` (`to <= 64`).
fn pool_bits(from: usize, to: usize) -> u64 {
    if from >= to {
        return 0;
    }
    (u64::MAX >> (64 - (to - from))) << from
}

impl ArenaManager {
    /// A large block of `size` bytes (`LARGE_MIN..=LARGE_MAX`), `zeroed` if asked, aligned to
    /// [`LARGE_ALIGN`]. Null when the OS refuses memory. `release_idle` is called first,
    /// without the lock: the calling thread's heap gives back its empty current pools
    /// (`Heap::release_empty_pools`), which otherwise keep arenas from being empty (one pool
    /// of each size class a program used, after it freed everything).
    pub(crate) fn alloc_large_block(
        &self,
        map: &ArenaMap,
        size: usize,
        zeroed: bool,
        release_idle: impl FnOnce(),
    ) -> *mut u8 {
        let shape = shape(size);
        release_idle();
        self.lock();
        if shape.arenas == 1 {
            // SAFETY: lock held.
            let (head, dirty) = unsafe { self.carve_tail(map, shape) };
            if !head.is_null() {
                self.counters.large_blocks.add_shared(1);
                self.counters.large_bytes.add_shared(size as u64);
                self.unlock();
                let block = (arena_base(head) as usize + shape.first_pool * POOL_SIZE) as *mut u8;
                if zeroed {
                    // SAFETY: the block's pools are ours; the resident ones (`dirty`) may hold
                    // old bytes, the others are zero (purged or never touched).
                    unsafe { zero_pools(arena_base(head), dirty) };
                }
                return block;
            }
        }
        let mut reserved = false;
        loop {
            // SAFETY: lock held.
            if let Some(room) = unsafe { self.find_room(map, shape) } {
                // SAFETY: lock held; `room` was found under it, just now.
                return unsafe { self.make_block(map, room, shape, size, zeroed) };
            }
            if reserved {
                break;
            }
            // No region has room: one more (the system call without the lock), then look
            // again (another thread may have freed a block meanwhile).
            reserved = true;
            self.unlock();
            let base = Regions::reserve();
            self.lock();
            if base.is_null() {
                break;
            }
            // SAFETY: lock held; a fresh reservation, in no region.
            if !unsafe { self.regions().add(base) } {
                self.unlock();
                os::unmap(base, REGION_SIZE);
                self.lock();
                break;
            }
        }
        self.unlock();
        // No region can hold it: a run of its own, as before regions.
        let bytes = shape.arenas * ARENA_SIZE;
        let run = os::map_aligned(bytes, ARENA_SIZE);
        if run.is_null() {
            return run;
        }
        if run as usize + bytes > ADDRESS_LIMIT {
            os::unmap(run, bytes);
            return ptr::null_mut();
        }
        let counted = Counted {
            fresh: shape.arenas,
            held: 0,
        };
        // SAFETY: a fresh mapping, ours, zero.
        unsafe { self.finish_block(map, run, 0, shape, size, zeroed, counted, false) }
    }

    /// Where a block of `shape` fits in the regions (`Regions::find`): an arena whose last
    /// pools the block needs are free may be its head.
    ///
    /// # Safety
    /// Lock held.
    unsafe fn find_room(&self, map: &ArenaMap, shape: Shape) -> Option<Room> {
        let tail = pool_bits(shape.first_pool, POOLS_PER_ARENA);
        // SAFETY: lock held (caller).
        let regions = unsafe { self.regions() };
        let mut checked = 0;
        let room = regions.find(shape.arenas, |addr| {
            checked += 1;
            // An arena on the lists (a place in use that is not in the arena map is a
            // block's), holding no block, with the pools free.
            map.contains(addr as *const u8) && {
                let arena = addr as *mut Arena;
                // SAFETY: lock held; an arena in the map is mapped and on the lists.
                unsafe { (*arena).end == POOLS_PER_ARENA && free_pools_mask(arena) & tail == tail }
            }
        });
        self.work.arenas_visited.add(checked);
        room
    }

    /// Make the block of `shape` in `room` and release the lock. Null, with nothing taken,
    /// when the OS refuses to make the block's places accessible (`Regions::take`).
    ///
    /// # Safety
    /// Lock held; `room` was found by `find_room` under it, nothing changed since.
    unsafe fn make_block(
        &self,
        map: &ArenaMap,
        room: Room,
        shape: Shape,
        size: usize,
        zeroed: bool,
    ) -> *mut u8 {
        // The places of the block that are vacant: all, or all but the head.
        let (first, n) = if room.in_arena {
            (room.at + ARENA_SIZE, shape.arenas - 1)
        } else {
            (room.at, shape.arenas)
        };
        let mut fill = Fill::new();
        // SAFETY: lock held (caller); no other reference to the locked state in this function.
        let l = unsafe { &mut *self.lists.get() };
        // SAFETY: lock held; the places are vacant (`find`).
        let Some(resident) = (unsafe { l.regions.take(first, n) }) else {
            // The OS would not make a place accessible (too many mappings, or no memory to
            // promise): nothing was taken, and the block cannot be made.
            self.unlock();
            return ptr::null_mut();
        };
        let mut dirty = 0;
        if room.in_arena {
            // SAFETY: lock held; `find_room` checked the head is an arena on the lists with
            // its pools `first_pool..` free and no block.
            dirty = unsafe { take_range(l, room.at as *mut Arena, shape.first_pool, shape.arenas) };
        }
        let purged = !resident & pool_bits(0, n);
        // SAFETY: lock held.
        unsafe { take_fill(l, purged.count_ones() as usize, &mut fill) };
        self.sync_spare(l.regions.spare());
        // The spare places taken are held until settled under the lock again: the fill's
        // sources by `fill_purged`, and, for a block of vacant places only, the block's own
        // resident places by `finish_block` (a block with an arena head is counted now).
        let held = if room.in_arena {
            0
        } else {
            resident.count_ones() as usize
        };
        self.counters.in_flight.add((held + fill.places()) as u64);
        let fresh = purged.count_ones() as usize;
        if room.in_arena {
            self.counters.mapped_total.add(fresh as u64);
            self.counters.block_arenas.add(n as u64);
            self.counters.large_blocks.add_shared(1);
            self.counters.large_bytes.add_shared(size as u64);
            self.note_high_water();
        }
        self.unlock();
        // SAFETY: the block's places are ours (taken), `purged` the ones that were purged;
        // `fill` was taken just now.
        let resident = resident | unsafe { self.fill_purged(first, purged, &mut fill) };
        if !room.in_arena {
            // SAFETY: the places are ours (taken); `resident` says which hold old bytes;
            // `held` of them are counted in flight.
            return unsafe {
                self.finish_block(
                    map,
                    first as *mut u8,
                    resident,
                    shape,
                    size,
                    zeroed,
                    Counted { fresh, held },
                    true,
                )
            };
        }
        if zeroed {
            // SAFETY: the block's pools and places are ours now; what is not zeroed here is
            // zero (never touched, or purged).
            unsafe {
                zero_pools(room.at as *mut u8, dirty);
                zero_reused(first as *mut u8, resident, n);
            }
        }
        (room.at + shape.first_pool * POOL_SIZE) as *mut u8
    }

    /// Move the pages of the spare places `fill` holds into the purged places of a new block
    /// (bit `i` of `purged`: the place at `first + i * ARENA_SIZE`), with `mremap`, which
    /// moves resident pages without copying or faulting them (about 15-20 µs a call,
    /// consecutive places in one call; a purged place costs a page fault per page
    /// instead, about 64 µs a place here): `move_into_purged`. The sources moved are left
    /// purged (`os::remap_keep`) and made vacant again; the others go back resident. Returns
    /// the places filled (bit `i`: as in `purged`), which now hold old bytes. Takes the lock
    /// if `fill` holds anything.
    ///
    /// # Safety
    /// Lock not held; the places of `purged` are the caller's, and `fill` was filled by
    /// `take_fill` under the lock.
    unsafe fn fill_purged(&self, first: usize, purged: u64, fill: &mut Fill) -> u64 {
        if fill.n == 0 {
            return 0;
        }
        let runs = &fill.runs[..fill.n];
        let (filled, moved) = move_into_purged(first, purged, runs, os::remap_keep);
        let now = self.now_ms();
        self.lock();
        // SAFETY: lock held; no other reference to the locked state here.
        let regions = unsafe { self.regions() };
        let mut left = moved;
        for &(src, len) in runs {
            let m = left.min(len);
            left -= m;
            // SAFETY: lock held; the sources are ours (taken by `take_fill`): the first
            // `moved` places in run order moved (`move_into_purged`: their places left
            // purged), the others did not (still resident).
            unsafe {
                regions.vacate(src, m, false, now);
                regions.vacate(src + m * ARENA_SIZE, len - m, true, now);
            }
        }
        // A moved source's resident memory now lies in the block: its place is counted as
        // given back, and the block's place it filled was counted as fresh. The others are
        // spare again. Either way, none is in flight any more.
        self.counters.returned.add(moved as u64);
        self.counters
            .in_flight
            .add((fill.places() as u64).wrapping_neg());
        self.sync_spare(regions.spare());
        // SAFETY: lock held.
        unsafe { self.unlock_and_unmap_idle_regions() };
        fill.n = 0;
        filled
    }

    /// Make a block of `shape` in the run of `shape.arenas` places at `base`, which the caller
    /// holds (off every list, out of the arena map, vacant in no region): its head becomes
    /// an arena on the lists. `resident` says which places hold old bytes (bit `i`: place
    /// `i`; the others are zero), `counted` how the run's places are counted so far,
    /// `in_region` whether the run is in a region (where it goes back if the arena map has
    /// no room). Takes and releases the lock.
    ///
    /// # Safety
    /// As above: the run is the caller's, and it gives it up.
    #[allow(clippy::too_many_arguments)]
    unsafe fn finish_block(
        &self,
        map: &ArenaMap,
        base: *mut u8,
        resident: u64,
        shape: Shape,
        size: usize,
        zeroed: bool,
        counted: Counted,
        in_region: bool,
    ) -> *mut u8 {
        if zeroed {
            // SAFETY: the run is ours (caller). The head's pools below the block are the
            // arena's free pools: `write_head` files them as dirty, and what takes one zeroes
            // it as any reused pool.
            unsafe {
                if resident & 1 != 0 {
                    zero_pools(base, pool_bits(shape.first_pool, POOLS_PER_ARENA));
                }
                zero_reused(base.add(ARENA_SIZE), resident >> 1, shape.arenas - 1);
            }
        }
        // SAFETY: the run is ours: the head's header and pool headers are written before it
        // joins the lists.
        let head = unsafe { write_head(base, resident & 1 != 0, shape) };
        let now = self.now_ms();
        self.lock();
        // From here the run's places are counted as the block's (or returned).
        self.counters.mapped_total.add(counted.fresh as u64);
        self.counters
            .in_flight
            .add((counted.held as u64).wrapping_neg());
        if !map.insert(base) {
            // No room in the arena map: the run goes back, as a whole. The mapped total
            // counted it; it is returned now.
            self.counters.returned.add(shape.arenas as u64);
            self.unlock();
            if in_region {
                os::purge(base, shape.arenas * ARENA_SIZE);
                self.lock();
                // SAFETY: lock held; the places are ours, purged, given up.
                unsafe {
                    self.regions()
                        .vacate(base as usize, shape.arenas, false, now)
                };
                self.unlock();
            } else {
                os::unmap(base, shape.arenas * ARENA_SIZE);
            }
            return ptr::null_mut();
        }
        // SAFETY: lock held; the head is mapped, in the map, on no list; its dirty pools (the
        // pools below the block of a resident place) are on its free list.
        unsafe {
            let lists = &mut *self.lists.get();
            lists.arenas.push(head);
            let dirty = (*head).dirty;
            (*head).dirty = 0;
            lists.dirty.pools_freed(head, dirty, now);
        }
        self.counters.mapped.add(1);
        self.counters.block_arenas.add((shape.arenas - 1) as u64);
        self.counters.large_blocks.add_shared(1);
        self.counters.large_bytes.add_shared(size as u64);
        self.note_high_water();
        self.unlock();
        (base as usize + shape.first_pool * POOL_SIZE) as *mut u8
    }

    /// Give back the large block `block` of `size` bytes: its pools to its head's free list,
    /// the arenas after the head to the lists (or to the OS beyond the empty-arena limit).
    /// Aborts with a message if `block` cannot be a large block of that size (freed with
    /// another layout than it was allocated with).
    ///
    /// `freer` is the calling thread's heap (`Heap::as_owner`), or null for a thread without
    /// one: a block another heap allocated ends its life here, which the served blocks'
    /// records must learn (`note_block_ends`).
    ///
    /// # Safety
    /// `block` is a live large block from [`alloc_large_block`](Self::alloc_large_block) of
    /// this manager, allocated (or last resized) with `size`, which the caller gives up.
    pub(crate) unsafe fn free_large_block(
        &self,
        map: &ArenaMap,
        block: *mut u8,
        size: usize,
        freer: *mut PoolOwner,
    ) {
        // SAFETY: forwarded contract.
        unsafe { self.give_back_block(map, block, size, Some(freer)) }
    }

    /// Give back a large block a thread kept (`large_cache.rs`): as `free_large_block`, but
    /// the block is no longer counted as live (`large_blocks`, `large_bytes`): the thread's heap
    /// uncounted it when it kept it (`LargeCache::put`).
    ///
    /// # Safety
    /// As for `free_large_block`.
    pub(crate) unsafe fn free_kept_block(&self, map: &ArenaMap, block: *mut u8, size: usize) {
        // SAFETY: forwarded contract.
        unsafe { self.give_back_block(map, block, size, None) }
    }

    /// `free_large_block` for a live block freed by `freer` (`Some`: uncounted from the live
    /// ones), or `free_kept_block` (`None`).
    ///
    /// # Safety
    /// As for `free_large_block`.
    unsafe fn give_back_block(
        &self,
        map: &ArenaMap,
        block: *mut u8,
        size: usize,
        freer: Option<*mut PoolOwner>,
    ) {
        let live = freer.is_some();
        let shape = shape(size);
        let base = shape.head_of(block);
        // Before anything is written where the layout says the block's places are.
        // SAFETY: forwarded contract.
        let in_region = unsafe { self.check_block(map, base, shape) };
        if let Some(freer) = freer {
            // SAFETY: checked: a live large block of `size` bytes, the caller's.
            unsafe { self.note_block_ends(block, size, freer) };
        }
        let head = base as *mut Arena;
        if in_region {
            // SAFETY: forwarded contract; checked, in a region.
            unsafe { self.give_back_in_region(map, base, shape, size, live) };
            return;
        }
        // A run of its own. The arenas after the head: fresh headers, every usable pool free and dirty. They
        // are block memory, ours alone, until they join the lists below.
        for i in 1..shape.arenas {
            // SAFETY: block memory, ours (caller's contract); the header fits the metadata
            // pool, which lies inside the block.
            unsafe { write_freed((base + i * ARENA_SIZE) as *mut u8) };
        }
        let mut victims = Victims::new();
        let now = self.now_ms();
        self.lock();
        // SAFETY: lock held; the head is a mapped arena on the lists (invariant of a live
        // block, checked above).
        let lists = unsafe { &mut *self.lists.get() };
        // SAFETY: lock held; the head's pools `first_pool..` are the block's, ours.
        unsafe { give_range(lists, head, POOLS_PER_ARENA, now) };
        let decaying = !self.unmaps_at_once();
        let mut kept = 0;
        for i in 1..shape.arenas {
            let arena = (base + i * ARENA_SIZE) as *mut Arena;
            let room = lists.arenas.empty < self.empty_limit(self.mapped_after(&victims), decaying);
            if !room || !map.insert(arena_base(arena)) {
                break;
            }
            // SAFETY: lock held; a mapped arena with a fresh header, on no list, in the map.
            unsafe {
                lists.arenas.push(arena);
                let dirty = (*arena).dirty;
                (*arena).dirty = 0;
                lists.dirty.pools_freed(arena, dirty, now);
            }
            self.counters.mapped.add(1);
            kept += 1;
        }
        let unmapped = shape.arenas - 1 - kept;
        self.counters
            .block_arenas
            .add(((shape.arenas - 1) as u64).wrapping_neg());
        self.counters.returned.add(unmapped as u64);
        if live {
            self.uncount_live_block(size);
        }
        // The head may be empty now: the empty arenas beyond the limit go, as on a pool's
        // release.
        // SAFETY: lock held; `lists` is the manager's state.
        unsafe {
            self.take_empty_beyond(lists, map, &mut victims, decaying);
            self.purge_due(now, map, &mut victims);
            self.unlock_and_unmap(&mut victims);
        }
        if unmapped != 0 {
            let from = base + (1 + kept) * ARENA_SIZE;
            os::unmap(from as *mut u8, unmapped * ARENA_SIZE);
        }
    }

    /// The live large block `block` of `size` bytes ends its life (freed, or resized to
    /// another shape) on the thread whose heap is `freer` (or null): unless `freer` allocated
    /// it (or nobody is recorded), the served blocks' records go stale (`ForeignFrees`). Called
    /// after `check_block`, before the block's places can be taken again.
    ///
    /// # Safety
    /// `block` is a live large block of this manager of `size` bytes, checked by `check_block`.
    unsafe fn note_block_ends(&self, block: *mut u8, size: usize, freer: *mut PoolOwner) {
        // SAFETY: forwarded contract.
        let owner = unsafe { self.large_owner(block, size) };
        self.note_life_ended(owner, freer);
    }

    /// Take a block of `size` bytes off the live large-block counts (`add_shared`: see
    /// `ArenaCounters`).
    fn uncount_live_block(&self, size: usize) {
        self.counters.large_blocks.add_shared(1u64.wrapping_neg());
        self.counters
            .large_bytes
            .add_shared((size as u64).wrapping_neg());
    }

    /// `give_back_block` for a block in a region: the head gets its pools back, the places
    /// after it go vacant, resident (reused by the next block without a page fault), and so
    /// does the head's if it is empty now. Beyond [`SPARE_LIMIT`] resident vacant places in
    /// all, the highest are purged (`trim_spare`): allocation prefers low addresses, so those
    /// are the least likely to be reused soon, and the runs a freed block leaves stay whole.
    ///
    /// # Safety
    /// As for `free_large_block`; the block at `base` (its head) is checked and in a region.
    unsafe fn give_back_in_region(
        &self,
        map: &ArenaMap,
        base: usize,
        shape: Shape,
        size: usize,
        live: bool,
    ) {
        let places = shape.arenas - 1;
        let mut victims = Victims::new();
        let now = self.now_ms();
        self.lock();
        // SAFETY: lock held; no other reference to the locked state in this function.
        let l = unsafe { &mut *self.lists.get() };
        // SAFETY: lock held; the head is a mapped arena on the lists (a live block's); its
        // pools `first_pool..` and the places after it are ours, given up.
        unsafe {
            give_range(l, base as *mut Arena, POOLS_PER_ARENA, now);
            l.regions.vacate(base + ARENA_SIZE, places, true, now);
        }
        self.counters
            .block_arenas
            .add((places as u64).wrapping_neg());
        self.sync_spare(l.regions.spare());
        if live {
            self.uncount_live_block(size);
        }
        // The head may be empty now: then its place goes vacant too (the whole block's place
        // is then vacant, for the next block of its size or larger).
        // SAFETY: lock held; `l` is the manager's state, not used after this; the head is a
        // mapped arena on the lists.
        unsafe {
            if (*(base as *mut Arena)).nfree == USABLE_POOLS {
                self.retire_in_region(l, map, base as *mut Arena, now);
            }
            self.trim_spare(l, &mut victims, SPARE_LIMIT);
            self.purge_due(now, map, &mut victims);
            self.unlock_and_unmap(&mut victims);
        }
    }

    /// For a block of one arena: make the last pools of an arena in use (or empty) the block's,
    /// if they are all free, and return that arena (the head) and the block's pools that were
    /// resident (bit `i`: pool `i`); null if no arena looked at has them free. Of at most
    /// [`EMPTY_SCAN`] arenas with enough free pools, the fullest first, it takes the one whose
    /// pools there are most resident (a freed block's, typically: the next block reuses its
    /// memory without page faults, in an arena the heaps share), and among those one that is
    /// not an empty arena next to another empty one: a run of empty arenas stays whole for
    /// the next block of several (`large_churn`: 1,115 `mremap`s to 670).
    ///
    /// # Safety
    /// Lock held; `shape.arenas == 1`.
    unsafe fn carve_tail(&self, map: &ArenaMap, shape: Shape) -> (*mut Arena, u64) {
        let tail = pool_bits(shape.first_pool, POOLS_PER_ARENA);
        let want = tail.count_ones();
        // SAFETY: lock held (caller).
        let lists = unsafe { &mut *self.lists.get() };
        // Whether the arena at `addr` is mapped and empty: one a run of empty arenas for a
        // block of several could use.
        let empty_at = |addr: usize| {
            // SAFETY: lock held; an arena in the map is mapped and on the lists.
            map.contains(addr as *const u8)
                && unsafe { (*(addr as *mut Arena)).nfree } == USABLE_POOLS
        };
        let (mut best, mut best_score) = (ptr::null_mut::<Arena>(), (0, false));
        // SAFETY: lock held; `visit` reads headers of mapped arenas on the lists.
        let seen = unsafe {
            lists
                .arenas
                .visit_with_free(POOLS_PER_ARENA - shape.first_pool, EMPTY_SCAN, |a| {
                    let free = free_pools_mask(a);
                    if free & tail != tail {
                        return false;
                    }
                    // The most resident first; among equals, not an empty arena between
                    // empty ones (the run they make stays whole for a block of several).
                    let dirty = ((*a).dirty & tail).count_ones();
                    let alone = (*a).nfree != USABLE_POOLS
                        || !(empty_at(a as usize - ARENA_SIZE)
                            || empty_at(a as usize + ARENA_SIZE));
                    let score = (dirty, alone);
                    if best.is_null() || score > best_score {
                        best = a;
                        best_score = score;
                    }
                    score == (want, true)
                })
        };
        self.work.arenas_visited.add(seen as u64);
        if best.is_null() {
            return (best, 0);
        }
        // SAFETY: lock held; `best` is mapped, on the lists, its `tail` pools free, and its
        // `end` is `POOLS_PER_ARENA` (a free tail holds no block).
        let dirty = unsafe { take_range(lists, best, shape.first_pool, 1) };
        (best, dirty)
    }

    /// Resize the large block `block` of `old_size` bytes to `new_size` (both large, of other
    /// shapes) without a second copy of it resident at once, where that can be done; else null
    /// (the caller allocates, copies and frees, as for any other block). Three cases:
    /// * same arena count, smaller: the bytes move up within the head and the freed pools go
    ///   back to it;
    /// * same arena count, larger, with the pools just below the block free: the block takes
    ///   them and its bytes move down (the common growth of a `Vec` of up to 1 MiB);
    /// * more arenas: a new block; the bytes in the old head are copied (at most one arena's
    ///   worth), and the old arenas after the head are moved in behind them with `mremap` (no
    ///   copy, no page fault). The old head gets its pools back.
    ///
    /// # Safety
    /// `block` is a live large block of this manager of `old_size` bytes, the caller's;
    /// `new_size` is large (`LARGE_MIN..=LARGE_MAX`); `shape(old_size) != shape(new_size)`.
    /// When a pointer is returned, the block is that one, of `new_size` bytes, and `block` is
    /// gone; on null, `block` is as it was.
    pub(crate) unsafe fn realloc_large_block(
        &self,
        map: &ArenaMap,
        block: *mut u8,
        old_size: usize,
        new_size: usize,
        freer: *mut PoolOwner,
    ) -> *mut u8 {
        let (old, new) = (shape(old_size), shape(new_size));
        let head_base = old.head_of(block);
        // SAFETY: forwarded contract.
        let in_region = unsafe { self.check_block(map, head_base, old) };
        // Whatever comes of it (null leaves the block as it was: a stale record costs a lock).
        // SAFETY: checked: a live large block of `old_size` bytes, the caller's.
        unsafe { self.note_block_ends(block, old_size, freer) };
        let head = head_base as *mut Arena;
        let new_block = (head_base + new.first_pool * POOL_SIZE) as *mut u8;
        if old.arenas == new.arenas && new.first_pool > old.first_pool {
            // Smaller: the bytes kept move up to the new start, then the pools below it go.
            // SAFETY: both ranges are inside the block (the new one ends where it ends);
            // `copy` handles the overlap.
            unsafe { ptr::copy(block, new_block, new_size) };
            let now = self.now_ms();
            self.lock();
            // SAFETY: lock held; the head's pools `end..new.first_pool` are ours, given up;
            // the block goes on from `new.first_pool`, whose header `give_range` leaves to us.
            unsafe {
                give_range(&mut *self.lists.get(), head, new.first_pool, now);
                ptr::addr_of_mut!((*pool_header(arena_base(head), new.first_pool)).capacity)
                    .write(Cell::new(new.arenas as u32));
            }
            self.counters
                .large_bytes
                .add_shared((new_size as u64).wrapping_sub(old_size as u64));
            self.unlock();
            return new_block;
        }
        if old.arenas == new.arenas {
            // Larger within the head: if the pools below the block are free, take them.
            self.lock();
            // SAFETY: lock held; the head is mapped and on the lists (a live block's).
            let taken = unsafe {
                let range = pool_bits(new.first_pool, old.first_pool);
                if free_pools_mask(head) & range == range {
                    take_range(&mut *self.lists.get(), head, new.first_pool, new.arenas);
                    true
                } else {
                    false
                }
            };
            if taken {
                self.counters
                    .large_bytes
                    .add_shared((new_size - old_size) as u64);
            }
            self.unlock();
            if !taken {
                return ptr::null_mut();
            }
            // SAFETY: both ranges inside the block as it is now; `copy` handles the overlap.
            unsafe { ptr::copy(block, new_block, old_size) };
            return new_block;
        }
        if new.arenas < old.arenas {
            return ptr::null_mut();
        }
        // SAFETY: forwarded contract; `new.arenas > old.arenas`.
        unsafe { self.grow_into_new_block(map, block, head, old_size, new_size, in_region) }
    }

    /// `realloc_large_block`'s third case: a new block (from empty arenas where there are,
    /// as any), the old head's bytes copied, the old places moved in behind them.
    ///
    /// # Safety
    /// As for `realloc_large_block`; `head` is the block's head, in a region if `in_region`;
    /// the new shape spans more arenas than the old one.
    unsafe fn grow_into_new_block(
        &self,
        map: &ArenaMap,
        block: *mut u8,
        head: *mut Arena,
        old_size: usize,
        new_size: usize,
        in_region: bool,
    ) -> *mut u8 {
        let old = shape(old_size);
        let new_block = self.alloc_large_block(map, new_size, false, || {});
        if new_block.is_null() {
            return new_block;
        }
        let in_head = (POOLS_PER_ARENA - old.first_pool) * POOL_SIZE;
        // SAFETY: the head's part of the old block (ours, `in_head` bytes, at most
        // `old_size`... or all of it for a one-arena block) to the new block's start (ours,
        // larger); distinct blocks.
        unsafe { ptr::copy_nonoverlapping(block, new_block, in_head.min(old_size)) };
        let places = (old.arenas - 1) * ARENA_SIZE;
        if places != 0 {
            let from = (arena_base(head) as usize + ARENA_SIZE) as *mut u8;
            // Right behind the head's bytes: page-aligned (a whole number of pools), inside
            // the new block, which is larger. The new block's pages there, fresh or reused,
            // are dropped for the old ones.
            let to = new_block.wrapping_add(in_head);
            // In a region the old places stay mapped, empty (purged), and go vacant below;
            // a run of its own is left unmapped.
            let moved = if in_region {
                os::remap_keep(from, places, to)
            } else {
                os::remap_fixed(from, places, to)
            };
            if !moved {
                // SAFETY: the rest of the old block to the rest of the new one; then the old
                // block goes back whole, as its owner's (its end was noted already, by
                // `realloc_large_block`).
                unsafe {
                    ptr::copy_nonoverlapping(from, to, old_size - in_head);
                    let owner = self.large_owner(block, old_size);
                    self.free_large_block(map, block, old_size, owner);
                }
                return new_block;
            }
        }
        let now = self.now_ms();
        let mut victims = Victims::new();
        self.lock();
        // SAFETY: lock held; the old head's pools `end..` are the old block's, given up (its
        // places, if any, moved into the new block: unmapped, or in a region empty and
        // ours, given up too). An empty head in a region goes vacant as well.
        unsafe {
            let l = &mut *self.lists.get();
            give_range(l, head, POOLS_PER_ARENA, now);
            if in_region {
                let from = arena_base(head) as usize + ARENA_SIZE;
                l.regions.vacate(from, old.arenas - 1, false, now);
                if (*head).nfree == USABLE_POOLS {
                    self.retire_in_region(l, map, head, now);
                }
                self.trim_spare(l, &mut victims, SPARE_LIMIT);
            }
        }
        self.counters
            .block_arenas
            .add(((old.arenas - 1) as u64).wrapping_neg());
        self.counters.returned.add((old.arenas - 1) as u64);
        self.uncount_live_block(old_size);
        let decaying = !self.unmaps_at_once();
        // SAFETY: lock held; the old head may be empty now.
        unsafe {
            self.take_empty_beyond(&mut *self.lists.get(), map, &mut victims, decaying);
            self.purge_due(now, map, &mut victims);
            self.unlock_and_unmap(&mut victims);
        }
        new_block
    }

    /// Record `owner` (a heap, as `Pool::owner`) as the heap that allocated the large block
    /// `block` of `size` bytes, in its first pool's header (`LargeCache`: a thread keeps only
    /// the blocks it allocated itself).
    ///
    /// # Safety
    /// `block` is a live large block of this manager of `size` bytes, the caller's: no one else
    /// writes that header while the block lives.
    pub(crate) unsafe fn set_large_owner(
        &self,
        block: *mut u8,
        size: usize,
        owner: *mut PoolOwner,
    ) {
        let shape = shape(size);
        let head_base = shape.head_of(block) as *mut u8;
        // SAFETY: the header of the block's first pool, in its head's metadata (caller).
        unsafe {
            (*pool_header(head_base, shape.first_pool))
                .owner
                .store(owner, Ordering::Relaxed)
        };
    }

    /// The heap recorded by `set_large_owner` for the large block `block` of `size` bytes, or
    /// null (none recorded: a block made by `realloc`, or by a thread without a heap).
    ///
    /// # Safety
    /// `block` is a live large block of this manager of `size` bytes (checked by
    /// `check_large_block`), the caller's.
    pub(crate) unsafe fn large_owner(&self, block: *mut u8, size: usize) -> *mut PoolOwner {
        let shape = shape(size);
        let head_base = shape.head_of(block) as *mut u8;
        // SAFETY: as above.
        unsafe {
            (*pool_header(head_base, shape.first_pool))
                .owner
                .load(Ordering::Relaxed)
        }
    }

    /// Abort with a message unless `block` is a large block of `size`'s shape (see
    /// `check_block`): for a free that keeps the block rather than give it back.
    ///
    /// # Safety
    /// As for `check_block`.
    pub(crate) unsafe fn check_large_block(&self, map: &ArenaMap, block: *mut u8, size: usize) {
        let shape = shape(size);
        let head_base = shape.head_of(block);
        // SAFETY: forwarded contract.
        unsafe { self.check_block(map, head_base, shape) };
    }

    /// Abort with a message unless a large block of `shape` starts in the arena at
    /// `head_base`: its head is an arena of ours whose block starts at `shape.first_pool` and
    /// spans `shape.arenas` (a free or resize with another size than the block's, or of a
    /// block already freed, unless its place was taken by a block of the same shape since).
    ///
    /// Returns whether the block lies in a region (`regions.rs`), else in a run of its own.
    ///
    /// # Safety
    /// None beyond the caller's word that a block is meant: the head is read only if it is a
    /// mapped arena, under the lock.
    unsafe fn check_block(&self, map: &ArenaMap, head_base: usize, shape: Shape) -> bool {
        if head_base % ARENA_SIZE != 0 || !map.contains(head_base as *const u8) {
            os::fatal("pyheap: a large block freed with another size than it was allocated with");
        }
        let head = head_base as *mut Arena;
        self.lock();
        // SAFETY: lock held; a mapped arena on the lists (it is in the arena map); the header
        // of its pool `end` is initialized when `end` is below `POOLS_PER_ARENA`
        // (`take_range`, `write_head`), and read only then.
        let ok = unsafe {
            (*head).end == shape.first_pool
                && (*pool_header(head_base as *mut u8, shape.first_pool))
                    .capacity
                    .get()
                    == shape.arenas as u32
        };
        // SAFETY: lock held.
        let in_region = unsafe { self.in_region(head_base) };
        self.unlock();
        if !ok {
            os::fatal("pyheap: a large block freed with another size than it was allocated with");
        }
        in_region
    }
}

/// Spare places taken off the regions to fill a new block's purged places
/// (`ArenaManager::fill_purged`).
///
/// # Invariants
/// `runs[..n]` are runs `(address, places)` of places of regions taken by `take_fill` under the
/// manager's lock: neither vacant nor used by anyone but the holder, which moves their pages
/// and gives them back exactly once.
struct Fill {
    runs: [(usize, usize); MAX_ARENAS],
    n: usize,
}

impl Fill {
    fn new() -> Fill {
        Fill {
            runs: [(0, 0); MAX_ARENAS],
            n: 0,
        }
    }

    /// The places taken (`counters.in_flight` counts them until `fill_purged` settles them).
    fn places(&self) -> usize {
        self.runs[..self.n].iter().map(|r| r.1).sum()
    }
}

/// How the places of a run handed to `finish_block` are counted before it counts the block:
/// `fresh` places the OS gave anew (not yet in `mapped_total`), `held` resident places taken
/// off the spare ones (in `counters.in_flight`). The others are counted in none of the live
/// counters: purged places were counted as returned when they were purged (or never used).
#[derive(Clone, Copy)]
struct Counted {
    fresh: usize,
    held: usize,
}

/// Move the pages of the source places `runs` (runs `(address, places)`, taken in order,
/// place by place) into the purged places of a block (bit `i` of `purged`: the place at
/// `first + i * ARENA_SIZE`, the lowest first), with `remap(from, bytes, to)`, one call per
/// stretch of consecutive places on both sides; until the sources or the purged places run
/// out, or `remap` refuses (then it stops: the OS refuses the flag, or is out of mappings,
/// and the next call would most likely fail too; the destinations not filled stay purged and
/// fault in their pages). Returns the places filled (bit `i`: as in `purged`) and how many
/// sources were moved: always the first ones in run order, so that the caller can tell the
/// moved sources (left purged) from the others (still resident) by that count alone.
///
/// (Before session 33 a refusal went on with the next stretch, and the caller took "the first
/// `m` of a run moved" when a later stretch of the run had moved and an earlier one had not:
/// a resident source was marked purged, and the next block that took it as zero could hand
/// out its old bytes from `alloc_zeroed`.)
fn move_into_purged(
    first: usize,
    purged: u64,
    runs: &[(usize, usize)],
    mut remap: impl FnMut(*mut u8, usize, *mut u8) -> bool,
) -> (u64, usize) {
    let mut filled = 0u64;
    let mut moved = 0;
    let mut dst = purged;
    for &(src, len) in runs {
        let mut done = 0;
        while done < len && dst != 0 {
            let i = dst.trailing_zeros() as usize;
            let run = ((dst >> i).trailing_ones() as usize).min(len - done);
            let from = (src + done * ARENA_SIZE) as *mut u8;
            let to = (first + i * ARENA_SIZE) as *mut u8;
            if !remap(from, run * ARENA_SIZE, to) {
                return (filled, moved);
            }
            filled |= pool_bits(i, i + run);
            moved += run;
            dst &= !pool_bits(i, i + run);
            done += run;
        }
    }
    (filled, moved)
}

/// Take up to `want` spare places (the highest first) into `fill` (empty), to fill a new
/// block's purged places.
///
/// # Safety
/// Manager's lock held, `lists` its state.
unsafe fn take_fill(lists: &mut super::Lists, want: usize, fill: &mut Fill) {
    if want == 0 || lists.regions.spare() == 0 {
        return;
    }
    // SAFETY: lock held (caller).
    fill.n = unsafe { lists.regions.take_highest_spare(want, &mut fill.runs) };
}

/// The free pools of `arena` (bit `i`: pool `i`): those on its free list and the untouched
/// ones below `end`. A walk of the free list only when the resident ones and the untouched
/// ones do not already cover every free pool (some were purged).
///
/// # Safety
/// Manager's lock held; `arena` is mapped and on the lists.
unsafe fn free_pools_mask(arena: *mut Arena) -> u64 {
    // SAFETY: lock held, arena mapped (caller).
    let a = unsafe { &*arena };
    let mut mask = a.dirty | pool_bits(a.untouched, a.end);
    if (mask.count_ones() as usize) < a.nfree {
        let mut p = a.free_pools;
        while !p.is_null() {
            mask |= 1 << pool_index(p);
            // SAFETY: free pools of a mapped arena (lock held).
            p = unsafe { (*p).next.get() };
        }
    }
    mask
}

/// Zero the pools of `mask` (bit `i`: pool `i`) of the arena at `base`.
///
/// # Safety
/// Those pools are the caller's.
unsafe fn zero_pools(base: *mut u8, mut mask: u64) {
    while mask != 0 {
        let first = mask.trailing_zeros() as usize;
        let run = (mask >> first).trailing_ones() as usize;
        // SAFETY: pools `first..first + run` of the arena, the caller's.
        unsafe { ptr::write_bytes(base.add(first * POOL_SIZE), 0, run * POOL_SIZE) };
        mask &= !pool_bits(first, first + run);
    }
}

/// Zero the places of `n` from `base` that hold old bytes (bit `i` of `resident`: place
/// `i`), whole: a resident vacant place held a freed block's or arena's bytes, metadata
/// included. The others are zero already (fresh or purged).
///
/// # Safety
/// The `n` places from `base` are the caller's.
unsafe fn zero_reused(base: *mut u8, resident: u64, n: usize) {
    let mut mask = resident & pool_bits(0, n);
    while mask != 0 {
        let first = mask.trailing_zeros() as usize;
        let run = (mask >> first).trailing_ones() as usize;
        // SAFETY: places `first..first + run` of the caller's.
        unsafe { ptr::write_bytes(base.add(first * ARENA_SIZE), 0, run * ARENA_SIZE) };
        mask &= !pool_bits(first, first + run);
    }
}

/// Write the header of the head arena at `base` for a block from `first_pool` on. If the
/// place was `resident` (it holds old bytes), the pools below the block go on the free list,
/// dirty (in the returned header's `dirty`, not yet on the dirty queue); else they are
/// untouched, zero. The block's pools are marked [`PoolState::LargeBlock`], and the first
/// one's `capacity` is the block's arena count.
///
/// # Safety
/// The arena-sized memory at `base` is the caller's.
unsafe fn write_head(base: *mut u8, resident: bool, shape: Shape) -> *mut Arena {
    let first_pool = shape.first_pool;
    let (untouched, dirty) = if resident {
        (first_pool, pool_bits(METADATA_POOLS, first_pool))
    } else {
        (METADATA_POOLS, 0)
    };
    let arena = base.cast::<Arena>();
    let mut header = Arena::fresh();
    header.untouched = untouched;
    header.end = first_pool;
    header.nfree = first_pool - METADATA_POOLS;
    header.dirty = dirty;
    // Highest first, so that the lowest pool heads the list (the next taken).
    for index in (METADATA_POOLS..untouched).rev() {
        let pool = pool_header(base, index);
        // SAFETY: a header's place in the arena's metadata pool (ours), written through raw
        // pointers: a resident place may hold a block's bytes there.
        unsafe {
            mark_large(pool);
            ptr::addr_of_mut!((*pool).state).write(Cell::new(PoolState::Free));
            ptr::addr_of_mut!((*pool).next).write(Cell::new(header.free_pools));
        }
        if header.free_pools.is_null() {
            header.free_tail = pool;
        }
        header.free_pools = pool;
    }
    for index in first_pool..POOLS_PER_ARENA {
        // SAFETY: a header in the arena's metadata pool (ours), written field by field through
        // raw pointers: it may never have been initialized (zero memory, or another arena's
        // block bytes before the run moved here).
        unsafe { mark_large(pool_header(base, index)) };
    }
    // SAFETY: as above; the block's first pool records the block's arena count, which its
    // free checks against the layout's.
    unsafe {
        ptr::addr_of_mut!((*pool_header(base, first_pool)).capacity)
            .write(Cell::new(shape.arenas as u32))
    };
    // SAFETY: the header's place in the metadata pool (ours).
    unsafe { ptr::write(arena, header) };
    arena
}

/// Mark the pool header at `pool` as part of a large block.
///
/// # Safety
/// `pool` is a pool header's place in an arena's metadata pool, the caller's to write.
unsafe fn mark_large(pool: *mut Pool) {
    // SAFETY: raw field writes, no reference to a header that may hold arbitrary bytes;
    // `Cell<T>` has `T`'s layout.
    unsafe {
        ptr::addr_of_mut!((*pool).state).write(Cell::new(PoolState::LargeBlock));
        ptr::addr_of_mut!((*pool).class).write(Cell::new(NO_CLASS));
        ptr::addr_of_mut!((*pool).owner).write(crate::sync::AtomicPtr::new(ptr::null_mut()));
    }
}

/// Write the header of the arena at `base`, freed from a large block (or a resident vacant
/// place of a region): every usable pool on its free list, all dirty (resident as far as
/// anyone knows), the lowest first.
///
/// # Safety
/// The arena-sized memory at `base` is the caller's.
pub(super) unsafe fn write_freed(base: *mut u8) {
    let mut header = Arena::fresh();
    header.untouched = POOLS_PER_ARENA;
    header.dirty = pool_bits(METADATA_POOLS, POOLS_PER_ARENA);
    for index in (METADATA_POOLS..POOLS_PER_ARENA).rev() {
        let pool = pool_header(base, index);
        // SAFETY: the header's place is the caller's; written through raw pointers, as it
        // held block bytes.
        unsafe {
            mark_large(pool);
            ptr::addr_of_mut!((*pool).state).write(Cell::new(PoolState::Free));
            ptr::addr_of_mut!((*pool).next).write(Cell::new(header.free_pools));
        }
        if header.free_pools.is_null() {
            header.free_tail = pool;
        }
        header.free_pools = pool;
    }
    debug_assert_eq!(header.nfree, USABLE_POOLS);
    // SAFETY: the header's place in the metadata pool (the caller's).
    unsafe { ptr::write(base.cast::<Arena>(), header) };
}

/// Give the head's block pools `end..to` back to its free list, dirty, at its end (the
/// block's start moves to `to`, or, with `to == POOLS_PER_ARENA`, the block is gone), and
/// file the head under its new count. Its never-touched pools (`untouched..end`) go on the
/// list too (not dirty, behind those), so that `untouched` can become `to` with `end`.
///
/// # Safety
/// Manager's lock held, `lists` its state; `head` is a mapped arena on the lists whose pools
/// `end..to` are a large block's, given up; if `to` is below [`POOLS_PER_ARENA`], the pools
/// from `to` on stay a block's, whose first pool `to` the caller marks.
unsafe fn give_range(lists: &mut super::Lists, head: *mut Arena, to: usize, now: u64) {
    // SAFETY: lock held; the head is mapped (caller).
    let a = unsafe { &mut *head };
    let base = arena_base(head);
    // At the end of the free list, the block's resident pools, then the never-touched ones:
    // the arena's other free pools serve the next pool requests first, which leaves the
    // block's place whole for the next large block of its size (a table freed and built
    // again), and once they are gone the resident pools come before the untouched ones.
    // Debug builds check the tail against the list (aborting: a panic would allocate under
    // the lock).
    #[cfg(debug_assertions)]
    {
        let (mut last, mut n) = (ptr::null_mut(), 0);
        let mut p = a.free_pools;
        while !p.is_null() && n <= USABLE_POOLS {
            last = p;
            n += 1;
            // SAFETY: free pools of the head (lock held).
            p = unsafe { (*p).next.get() };
        }
        if n > USABLE_POOLS || a.free_tail != last {
            os::fatal("pyheap: an arena's free_tail is not its free list's last pool");
        }
    }
    let mut link: *mut *mut Pool = if a.free_tail.is_null() {
        &mut a.free_pools
    } else {
        // SAFETY: the tail is the free list's last pool, one of the arena's (lock held).
        unsafe { (*a.free_tail).next.as_ptr() }
    };
    for index in (a.end..to).chain(a.untouched..a.end) {
        let pool = pool_header(base, index);
        // SAFETY: a header of the head's metadata pool; raw writes, as it may never have been
        // initialized (the untouched ones); `link` is the list's last link.
        unsafe {
            ptr::addr_of_mut!((*pool).state).write(Cell::new(PoolState::Free));
            ptr::addr_of_mut!((*pool).next).write(Cell::new(ptr::null_mut()));
            *link = pool;
            link = (*pool).next.as_ptr();
        }
        a.free_tail = pool;
    }
    let dirty = pool_bits(a.end, to);
    let nfree = a.nfree + to - a.end;
    a.untouched = to;
    a.end = to;
    // SAFETY: lock held; on the lists; the pools of `dirty` are on its free list now.
    unsafe {
        lists.arenas.set_nfree(head, nfree);
        lists.dirty.pools_freed(head, dirty, now);
    }
}

/// Make the free pools `from..end` of `arena` the start of a large block spanning `arenas`
/// places: off the free list and the dirty queue, `end` = `from`, headers marked
/// [`PoolState::LargeBlock`] (pool `from`'s `capacity` = `arenas`). Returns those that were
/// resident (bit `i`: pool `i`).
///
/// # Safety
/// Manager's lock held, `lists` its state; `arena` is mapped and on the lists; its pools
/// `from..end` are free.
unsafe fn take_range(
    lists: &mut super::Lists,
    arena: *mut Arena,
    from: usize,
    arenas: usize,
) -> u64 {
    // SAFETY: lock held; mapped (caller).
    let a = unsafe { &mut *arena };
    let range = pool_bits(from, a.end);
    let dirty = a.dirty & range;
    // SAFETY: the free list's pools are the arena's free pools (lock held).
    unsafe {
        let mut link: *mut *mut Pool = &mut a.free_pools;
        a.free_tail = ptr::null_mut();
        while !(*link).is_null() {
            let p = *link;
            if range & (1 << pool_index(p)) != 0 {
                *link = (*p).next.get();
            } else {
                a.free_tail = p;
                link = (*p).next.as_ptr();
            }
        }
    }
    let mut d = dirty;
    while d != 0 {
        // SAFETY: lock held; a dirty pool that was on the free list.
        unsafe { lists.dirty.pool_taken(arena, d.trailing_zeros() as usize) };
        d &= d - 1;
    }
    let base = arena_base(arena);
    for index in from..a.end {
        // SAFETY: a header in the arena's metadata pool; the pool is ours now.
        unsafe { mark_large(pool_header(base, index)) };
    }
    // SAFETY: as above.
    unsafe {
        ptr::addr_of_mut!((*pool_header(base, from)).capacity).write(Cell::new(arenas as u32))
    };
    let nfree = a.nfree - (a.end - from);
    a.untouched = a.untouched.min(from);
    a.end = from;
    // SAFETY: lock held; on the lists.
    unsafe { lists.arenas.set_nfree(arena, nfree) };
    dirty
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The places `(from, bytes)` covers, as place numbers (`addr / ARENA_SIZE`).
    fn places(from: *mut u8, bytes: usize) -> core::ops::Range<usize> {
        let at = from as usize / ARENA_SIZE;
        at..at + bytes / ARENA_SIZE
    }

    /// `move_into_purged` against random purged places, source runs and refusals: the moved
    /// sources are exactly the first `moved` in run order, each moved once, into purged
    /// places only, each filled once; nothing is asked after a refusal; with no refusal every
    /// source or every purged place is used.
    #[test]
    fn move_into_purged_reports_the_sources_it_moved_as_a_prefix() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let first = 1usize << 40;
        for case in 0..20_000 {
            let n = 1 + next(MAX_ARENAS as u64) as usize;
            let purged = next(1 << n) & pool_bits(0, n);
            // Source runs far above the block, each with a gap after it, at most as many
            // places as are purged (as `take_fill` takes).
            let mut runs = std::vec::Vec::new();
            let mut at = first + 100 * ARENA_SIZE;
            let mut total = 0;
            while total < purged.count_ones() as usize && next(8) != 0 {
                let len = (1 + next(4) as usize).min(purged.count_ones() as usize - total);
                runs.push((at, len));
                at += (len + 1 + next(3) as usize) * ARENA_SIZE;
                total += len;
            }
            // Refuse stretches of one length, or at random, or never.
            let mode = next(4);
            let refuse_len = 1 + next(3) as usize;
            let mut calls = std::vec::Vec::new();
            let mut refused = false;
            let (filled, moved) = move_into_purged(first, purged, &runs, |from, bytes, to| {
                assert!(!refused, "case {case}: a call after a refusal");
                let ok = match mode {
                    0 => true,
                    1 => bytes / ARENA_SIZE != refuse_len,
                    _ => next(4) != 0,
                };
                refused = !ok;
                calls.push((from, bytes, to, ok));
                ok
            });
            let sources: std::vec::Vec<usize> = runs
                .iter()
                .flat_map(|&(a, len)| (0..len).map(move |k| a / ARENA_SIZE + k))
                .collect();
            let mut moved_sources = std::vec::Vec::new();
            let mut dests = 0u64;
            for &(from, bytes, to, ok) in &calls {
                if ok {
                    moved_sources.extend(places(from, bytes));
                    for p in places(to, bytes) {
                        let i = p - first / ARENA_SIZE;
                        assert!(i < n && purged >> i & 1 == 1, "case {case}: into place {i}");
                        assert_eq!(dests >> i & 1, 0, "case {case}: place {i} filled twice");
                        dests |= 1 << i;
                    }
                }
            }
            moved_sources.sort_unstable();
            let mut prefix = sources[..moved].to_vec();
            prefix.sort_unstable();
            assert_eq!(
                moved_sources, prefix,
                "case {case}: moved {moved} of {runs:x?}"
            );
            assert_eq!(filled, dests, "case {case}");
            if !refused {
                assert_eq!(
                    moved,
                    sources.len().min(purged.count_ones() as usize),
                    "case {case}"
                );
            }
        }
    }
}
