//! Large blocks: `PoolAlloc`'s requests of [`LARGE_MIN`] to [`LARGE_MAX`] bytes, carved from
//! the arenas as runs of whole pools, and given back to them as free pools when freed.
//!
//! **Why.** Before this, such requests went to glibc's `malloc`, whose heap was the only
//! place their memory could be reused once freed. A program that outgrows a hash table frees
//! the old one while it goes on allocating strings: glibc puts the strings in the old table's
//! memory, pyheap put them in its arenas, and the old tables stayed resident as holes in
//! glibc's heap (3.0 MiB of the `hashmap` workload's 22.4 MiB peak, against System's 19.8:
//! BENCHMARKS.md "Session 27"). Now a freed large block's pools serve the next small blocks,
//! and empty arenas serve the next large block: one pool of memory for both, as glibc's
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
//! place a freed block of its size left. A block of several arenas first looks for a run of
//! as many *consecutive* empty arenas among the first [`RUN_SCAN`] empty ones
//! (`take_empty_run`): a freed block's places form one, so a program replacing blocks finds
//! the next one's place there, and the block is made in place. Otherwise the block takes
//! empty arenas off the lists, the most resident first (`ArenaLists::dirtiest_empty`), and
//! makes its run out of them with as few moves as it can (`assemble_run`): the longest run of
//! consecutive ones among them stays where it is, with fresh memory mapped right after or
//! before it if that address range is free (`os::map_at`), else in a fresh aligned run; the
//! others are moved into the run's places with `mremap` (`os::remap_fixed`), consecutive ones
//! in one call: their pages change address without being copied, faulted in or given back
//! (at 15-20 µs a call, the costliest step: BENCHMARKS.md "Session 28"). Places no empty
//! arena filled are fresh memory.
//!
//! **Freeing.** The head's pools from `first_pool` on go back at the end of its free list,
//! resident (dirty, for the purge: `purge.rs`), so that the arena's other free pools serve
//! pool requests first and the place stays whole for the next block of its size; each arena
//! after the head gets a fresh header, all its usable pools on its free list, dirty, and
//! joins the lists and the arena map, as many as the empty-arena limit allows
//! (`ArenaManager::empty_limit`); the rest are unmapped at once, in one call.
//!
//! **Resizing** (`realloc_large_block`) keeps one copy of the bytes resident where it can: a
//! block of the same arena count shrinks or grows within its head (its bytes move, the pools
//! below it go or come), and a block growing into more arenas has its old places moved into
//! the new block with `mremap` behind the copy of its head's part (at most one arena's
//! worth). Other resizes allocate, copy and free.
//!
//! # Invariants
//! * A large block of shape `(arenas, first_pool)` at `p` owns the pools `first_pool..` of
//!   its head `p - first_pool * POOL_SIZE` (an arena on the lists and in the arena map, with
//!   `end == first_pool`, those pools' headers [`PoolState::LargeBlock`] of class
//!   [`NO_CLASS`]) and the `arenas - 1` arena-sized places after the head, which are in no
//!   list and not in the arena map. Nobody but the block's holder touches that memory.
//! * `counters.block_arenas` counts those places over all live blocks; `counters.mapped`
//!   counts the arenas on the lists (heads included). So `mapped + block_arenas + returned
//!   == mapped_total` at every release of the lock.
//!
//! Only on Linux (`mremap`), and never under loom (whose models do not build `PoolAlloc`'s
//! fallback): elsewhere large requests go to the system allocator as before.

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

/// How many empty arenas a block of several arenas looks at for a run of consecutive ones
/// (`take_empty_run`): a bound on the work under the lock, whatever the number mapped.
const RUN_SCAN: usize = 64;

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

/// The most arena-sized places one large block spans.
const MAX_ARENAS: usize = shape(LARGE_MAX).arenas;

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

/// An empty arena taken off the lists for a block, with what its header said.
#[derive(Clone, Copy)]
struct TakenArena {
    arena: *mut Arena,
    untouched: usize,
    dirty: u64,
}

/// The empty arenas a block took, in address order once sorted.
///
/// # Invariants
/// `arenas[..n]` were taken under the manager's lock off the lists, the dirty queue and the
/// arena map, empty: no heap holds a pool of them, no lookup finds them; `counters.mapped`
/// no longer counts them. Their holder moves them into the block, or gives them back.
struct Taken {
    arenas: [TakenArena; MAX_ARENAS],
    n: usize,
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
        let mut taken = Taken {
            arenas: [TakenArena {
                arena: ptr::null_mut(),
                untouched: 0,
                dirty: 0,
            }; MAX_ARENAS],
            n: 0,
        };
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
        // SAFETY: lock held.
        unsafe {
            if shape.arenas == 1 || !self.take_empty_run(map, shape.arenas, &mut taken) {
                self.take_empty_arenas(map, shape.arenas, &mut taken);
            }
        }
        self.unlock();
        let taken = &mut taken.arenas[..taken.n];
        taken.sort_unstable_by_key(|t| t.arena as usize);
        // SAFETY: the arenas were taken by `take_empty_run`/`take_empty_arenas`: ours alone.
        let Some((base, places, returned)) = (unsafe { assemble_run(taken, shape.arenas) }) else {
            // SAFETY: the arenas were taken by `take_empty_arenas`, untouched since.
            unsafe { self.give_back_taken(map, taken) };
            return ptr::null_mut();
        };
        // The run's places not filled by a taken arena are newly mapped arenas' worth: counted
        // below, under the lock, as every write of the arena counters is (`StatCounter::add`
        // has one writer at a time).
        let fresh = shape.arenas - places.iter().filter(|p| p.is_some()).count();
        let places = &places[..shape.arenas];
        if zeroed {
            // SAFETY: the run is ours; `places` says what each place held.
            unsafe { zero_reused(base, places, shape.first_pool) };
        }
        // SAFETY: the run is ours: the head's header and pool headers are written before it
        // joins the lists.
        let head = unsafe { write_head(base, places[0], shape) };
        let now = self.now_ms();
        self.lock();
        self.counters.returned.add(returned as u64);
        self.counters.mapped_total.add(fresh as u64);
        if !map.insert(base) {
            // No room in the arena map: the run goes back to the OS, as a whole. The mapped
            // total counted it; it is returned now.
            self.counters.returned.add(shape.arenas as u64);
            self.unlock();
            os::unmap(base, shape.arenas * ARENA_SIZE);
            return ptr::null_mut();
        }
        // SAFETY: lock held; the head is mapped, in the map, on no list; its dirty pools (the
        // dirty pools of the arena it was, below the block) are on its free list.
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
    /// # Safety
    /// `block` is a live large block from [`alloc_large_block`](Self::alloc_large_block) of
    /// this manager, allocated (or last resized) with `size`, which the caller gives up.
    pub(crate) unsafe fn free_large_block(&self, map: &ArenaMap, block: *mut u8, size: usize) {
        // SAFETY: forwarded contract.
        unsafe { self.give_back_block(map, block, size, true) }
    }

    /// Give back a large block a thread kept (`large_cache.rs`): as `free_large_block`, but
    /// the block is no longer counted as live (`large_blocks`, `large_bytes`): the thread's free
    /// uncounted it when it kept it.
    ///
    /// # Safety
    /// As for `free_large_block`.
    pub(crate) unsafe fn free_kept_block(&self, map: &ArenaMap, block: *mut u8, size: usize) {
        // SAFETY: forwarded contract.
        unsafe { self.give_back_block(map, block, size, false) }
    }

    /// `free_large_block`, uncounting the block from the live ones if `live`.
    ///
    /// # Safety
    /// As for `free_large_block`.
    unsafe fn give_back_block(&self, map: &ArenaMap, block: *mut u8, size: usize, live: bool) {
        let shape = shape(size);
        let base = shape.head_of(block);
        // Before anything is written where the layout says the block's places are.
        // SAFETY: forwarded contract.
        unsafe { self.check_block(map, base, shape) };
        let head = base as *mut Arena;
        // The arenas after the head: fresh headers, every usable pool free and dirty. They
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
            self.counters.large_blocks.add_shared(1u64.wrapping_neg());
            self.counters
                .large_bytes
                .add_shared((size as u64).wrapping_neg());
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
    ) -> *mut u8 {
        let (old, new) = (shape(old_size), shape(new_size));
        let head_base = old.head_of(block);
        // SAFETY: forwarded contract.
        unsafe { self.check_block(map, head_base, old) };
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
        unsafe { self.grow_into_new_block(map, block, head, old_size, new_size) }
    }

    /// `realloc_large_block`'s third case: a new block (from empty arenas where there are,
    /// as any), the old head's bytes copied, the old places moved in behind them.
    ///
    /// # Safety
    /// As for `realloc_large_block`; `head` is the block's head; the new shape spans more
    /// arenas than the old one.
    unsafe fn grow_into_new_block(
        &self,
        map: &ArenaMap,
        block: *mut u8,
        head: *mut Arena,
        old_size: usize,
        new_size: usize,
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
            if !os::remap_fixed(from, places, to) {
                // SAFETY: the rest of the old block to the rest of the new one; then the old
                // block goes back whole.
                unsafe {
                    ptr::copy_nonoverlapping(from, to, old_size - in_head);
                    self.free_large_block(map, block, old_size);
                }
                return new_block;
            }
        }
        let now = self.now_ms();
        self.lock();
        // SAFETY: lock held; the old head's pools `end..` are the old block's, given up (its
        // places, if any, moved into the new block and are gone from where they were).
        unsafe { give_range(&mut *self.lists.get(), head, POOLS_PER_ARENA, now) };
        self.counters
            .block_arenas
            .add(((old.arenas - 1) as u64).wrapping_neg());
        self.counters.returned.add((old.arenas - 1) as u64);
        self.counters.large_blocks.add_shared(1u64.wrapping_neg());
        self.counters
            .large_bytes
            .add_shared((old_size as u64).wrapping_neg());
        let mut victims = Victims::new();
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
    /// # Safety
    /// None beyond the caller's word that a block is meant: the head is read only if it is a
    /// mapped arena, under the lock.
    unsafe fn check_block(&self, map: &ArenaMap, head_base: usize, shape: Shape) {
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
        self.unlock();
        if !ok {
            os::fatal("pyheap: a large block freed with another size than it was allocated with");
        }
    }

    /// Take `want` empty arenas that lie one after the other in memory, if the first
    /// [`RUN_SCAN`] on the list of empty ones hold such a run: the block is then made where
    /// they are, with no `mremap`. A freed block of `k` arenas leaves `k - 1` of them (`k` when
    /// its head empties too), so a program that replaces blocks of a few arenas finds its
    /// next block's place there. Of the runs found, the window of `want` with the most
    /// resident pools wins (a page fault costs more than anything else here), then the
    /// run closest to `want` long (long runs stay whole for long blocks). If no run is long
    /// enough, it takes the longest runs found, whole, up to `want` arenas (the caller tops
    /// them up with `take_empty_arenas`): the fewer stretches, the fewer moves. Returns
    /// whether `want` arenas were taken (into `taken`, empty before).
    ///
    /// # Safety
    /// Lock held; `taken` is empty.
    unsafe fn take_empty_run(&self, map: &ArenaMap, want: usize, taken: &mut Taken) -> bool {
        // SAFETY: lock held (caller).
        let lists = unsafe { &mut *self.lists.get() };
        if lists.arenas.empty < want {
            return false;
        }
        let mut found = [(0usize, 0u32); RUN_SCAN];
        let mut n = 0;
        // SAFETY: lock held; the visit reads headers of mapped arenas (on the lists).
        let seen = unsafe {
            lists.arenas.visit_with_free(USABLE_POOLS, RUN_SCAN, |a| {
                found[n] = (a as usize, (*a).dirty.count_ones());
                n += 1;
                false
            })
        };
        self.work.arenas_visited.add(seen as u64);
        let found = &mut found[..n];
        found.sort_unstable_by_key(|f| f.0);
        let (ranges, nranges) = pick_runs(found, want);
        for &(start, len) in &ranges[..nranges] {
            for f in &found[start..start + len] {
                // SAFETY: lock held; an empty arena on the lists (just visited, nothing
                // changed).
                unsafe { take_arena(lists, map, f.0 as *mut Arena, taken) };
            }
        }
        self.counters.mapped.add((taken.n as u64).wrapping_neg());
        taken.n == want
    }

    /// Take empty arenas off the lists into `taken` until it holds `want` or none is left, the
    /// dirtiest of the first [`EMPTY_SCAN`] on the list each time (`ArenaLists::dirtiest_empty`).
    ///
    /// # Safety
    /// Lock held.
    unsafe fn take_empty_arenas(&self, map: &ArenaMap, want: usize, taken: &mut Taken) {
        // SAFETY: lock held (caller).
        let lists = unsafe { &mut *self.lists.get() };
        let before = taken.n;
        while taken.n < want && lists.arenas.empty > 0 {
            // SAFETY: lock held.
            let (arena, seen) = unsafe { lists.arenas.dirtiest_empty(EMPTY_SCAN) };
            self.work.arenas_visited.add(seen as u64);
            // SAFETY: lock held; an empty arena on the lists.
            unsafe { take_arena(lists, map, arena, taken) };
        }
        self.counters
            .mapped
            .add(((taken.n - before) as u64).wrapping_neg());
    }

    /// Put arenas taken by `take_empty_arenas` back on the lists, as they were (a block that
    /// could not be made).
    ///
    /// # Safety
    /// `taken` were taken by `take_empty_arenas` and not touched since.
    unsafe fn give_back_taken(&self, map: &ArenaMap, taken: &[TakenArena]) {
        let now = self.now_ms();
        self.lock();
        // SAFETY: lock held.
        let lists = unsafe { &mut *self.lists.get() };
        for t in taken {
            // The arena's bit was in the map a moment ago: the map's page for it exists.
            let inserted = map.insert(arena_base(t.arena));
            debug_assert!(inserted);
            // SAFETY: lock held; mapped, empty, on no list; its dirty pools are on its free
            // list, as when it was taken.
            unsafe {
                lists.arenas.push(t.arena);
                lists.dirty.pools_freed(t.arena, t.dirty, now);
            }
        }
        self.counters.mapped.add(taken.len() as u64);
        self.unlock();
    }
}

/// Make a run of `arenas` consecutive arena-sized places for a block out of the empty arenas
/// `taken` (sorted by address, at most `arenas`), moving as few as it can: the longest run of
/// consecutive ones among them stays where it is, and fresh memory is mapped right after it
/// (or else right before it) for the other places, if that address range is free
/// (`os::map_at`); else the whole run is fresh memory. The other arenas taken are moved into
/// the run's free places with `mremap`, consecutive ones in one call (each call costs 15-20
/// µs whatever its length). An arena that cannot be moved is unmapped (its place keeps
/// fresh memory). Returns the run's base, what each place holds (an arena taken, with its
/// state when taken, or `None` for fresh memory), and how many arenas were unmapped; `None`
/// when the OS refuses memory, with `taken` untouched.
///
/// # Safety
/// The arenas of `taken` are mapped and the caller's alone (`Taken`'s invariants: off the
/// lists, the dirty queue and the arena map, nobody else refers to them): they are moved or
/// unmapped here.
unsafe fn assemble_run(
    taken: &[TakenArena],
    arenas: usize,
) -> Option<(*mut u8, [Option<TakenArena>; MAX_ARENAS], usize)> {
    let addr = |i: usize| taken[i].arena as usize;
    let size = arenas * ARENA_SIZE;
    // The longest run of consecutive arenas taken: `taken[from..from + len]`.
    let (mut from, mut len) = (0, 0);
    let mut i = 0;
    while i < taken.len() {
        let j = run_end(taken.len(), i, addr);
        if j - i > len {
            (from, len) = (i, j - i);
        }
        i = j;
    }
    // Where the run starts, and the place the kept run takes in it.
    let mut placed = None;
    if len > 0 {
        let (start, end) = (addr(from), addr(from) + len * ARENA_SIZE);
        let extra = size - len * ARENA_SIZE;
        // Nothing to map (the arenas taken are the run), or room after them.
        if extra == 0 || (start + size <= ADDRESS_LIMIT && os::map_at(end as *mut u8, extra)) {
            placed = Some((start, 0));
        } else if start >= extra + ARENA_SIZE && os::map_at((start - extra) as *mut u8, extra) {
            placed = Some((start - extra, arenas - len));
        }
    }
    let (base, at) = match placed {
        Some(p) => p,
        None => {
            len = 0;
            let run = os::map_aligned(size, ARENA_SIZE);
            if run.is_null() || run as usize + size > ADDRESS_LIMIT {
                if !run.is_null() {
                    os::unmap(run, size);
                }
                return None;
            }
            (run as usize, 0)
        }
    };
    let mut places: [Option<TakenArena>; MAX_ARENAS] = [None; MAX_ARENAS];
    for k in 0..len {
        places[at + k] = Some(taken[from + k]);
    }
    // The others, into the free places in order, consecutive ones that go to consecutive
    // places in one call.
    let mut returned = 0;
    let mut place = 0;
    let mut i = 0;
    while i < taken.len() {
        if (from..from + len).contains(&i) {
            i += 1;
            continue;
        }
        while places[place].is_some() {
            place += 1;
        }
        let mut n = 1;
        while i + n < taken.len()
            && !(from..from + len).contains(&(i + n))
            && addr(i + n) == addr(i) + n * ARENA_SIZE
            && place + n < arenas
            && places[place + n].is_none()
        {
            n += 1;
        }
        let to = (base + place * ARENA_SIZE) as *mut u8;
        if os::remap_fixed(arena_base(taken[i].arena), n * ARENA_SIZE, to) {
            for k in 0..n {
                places[place + k] = Some(taken[i + k]);
            }
            place += n;
        } else {
            // The places keep the run's fresh memory; the arenas go.
            os::unmap(arena_base(taken[i].arena), n * ARENA_SIZE);
            returned += n;
            // Those places stay `None`: skip them.
            place += n;
        }
        i += n;
    }
    Some((base as *mut u8, places, returned))
}

/// The end (first index past it) of the run of consecutive arenas that starts at index
/// `start` of `n` arenas sorted by address, `addr(i)` being the address of arena `i`.
fn run_end(n: usize, start: usize, addr: impl Fn(usize) -> usize) -> usize {
    let mut end = start + 1;
    while end < n && addr(end) == addr(end - 1) + ARENA_SIZE {
        end += 1;
    }
    end
}

/// `take_empty_run`'s choice among the empty arenas `found` (sorted by address, each with its
/// count of resident pools): ranges `(start, len)` of `found`, `want` arenas in all or as
/// many as there are. The window of `want` consecutive arenas with the most resident pools,
/// then in the run closest to `want` long, if a run is long enough (one range); else whole
/// runs, the longest first, then the most resident, the last one cut to `want`.
fn pick_runs(found: &[(usize, u32)], want: usize) -> ([(usize, usize); RUN_SCAN], usize) {
    let mut ranges = [(0usize, 0usize); RUN_SCAN];
    // Maximal runs: (start, length, resident pools).
    let mut runs = [(0usize, 0usize, 0u32); RUN_SCAN];
    let mut nruns = 0;
    let mut start = 0;
    while start < found.len() {
        let end = run_end(found.len(), start, |i| found[i].0);
        runs[nruns] = (
            start,
            end - start,
            found[start..end].iter().map(|f| f.1).sum(),
        );
        nruns += 1;
        start = end;
    }
    let runs = &mut runs[..nruns];
    // (first index, resident pools, run length) of the best window.
    let mut best: Option<(usize, u32, usize)> = None;
    for &(start, len, _) in runs.iter().filter(|r| r.1 >= want) {
        let mut dirty: u32 = found[start..start + want].iter().map(|f| f.1).sum();
        for first in start..=start + len - want {
            if first > start {
                dirty = dirty - found[first - 1].1 + found[first + want - 1].1;
            }
            let better = match best {
                None => true,
                Some((_, d, l)) => dirty > d || (dirty == d && len < l),
            };
            if better {
                best = Some((first, dirty, len));
            }
        }
    }
    if let Some((first, _, _)) = best {
        ranges[0] = (first, want);
        return (ranges, 1);
    }
    runs.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(b.2.cmp(&a.2)));
    let (mut n, mut left) = (0, want);
    for &(start, len, _) in runs.iter() {
        if left == 0 {
            break;
        }
        let take = len.min(left);
        ranges[n] = (start, take);
        n += 1;
        left -= take;
    }
    (ranges, n)
}

/// Take the empty arena `arena` off the lists, the dirty queue and the arena map, into
/// `taken` (the caller uncounts it from `counters.mapped`).
///
/// # Safety
/// Manager's lock held, `lists` its state; `arena` is mapped, on the list of empty arenas;
/// `taken` has room.
unsafe fn take_arena(
    lists: &mut super::Lists,
    map: &ArenaMap,
    arena: *mut Arena,
    taken: &mut Taken,
) {
    // SAFETY: lock held; on the lists, hence mapped; every usable pool free (caller).
    unsafe {
        taken.arenas[taken.n] = TakenArena {
            arena,
            untouched: (*arena).untouched,
            dirty: (*arena).dirty,
        };
        lists.arenas.unlink(arena);
        lists.dirty.forget(arena);
    }
    map.remove(arena_base(arena));
    taken.n += 1;
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

/// Zero what the block at `first_pool` of the run at `base` holds from the arenas it reused:
/// their pools still resident (`dirty`) and, past the head, their metadata. Everything else
/// is zero already: fresh memory, pools never handed out (`untouched`), purged pools.
///
/// # Safety
/// The run at `base` is the caller's; `places` says what each of its places held.
unsafe fn zero_reused(base: *mut u8, places: &[Option<TakenArena>], first_pool: usize) {
    for (i, place) in places.iter().enumerate() {
        let Some(t) = place else { continue };
        let arena = base as usize + i * ARENA_SIZE;
        let (from, mut mask) = if i == 0 {
            (first_pool, t.dirty & pool_bits(first_pool, POOLS_PER_ARENA))
        } else {
            // SAFETY: inside the run. The whole first pool: past the metadata's bytes it may
            // hold an earlier block's (an arena that was a place of a block before).
            unsafe { ptr::write_bytes(arena as *mut u8, 0, POOL_SIZE) };
            (METADATA_POOLS, t.dirty)
        };
        mask &= pool_bits(from, POOLS_PER_ARENA);
        // SAFETY: pools of a place of the run, the caller's.
        unsafe { zero_pools(arena as *mut u8, mask) };
    }
}

/// Write the header of the head arena at `base` for a block from `first_pool` on: the pools
/// below it that `was` (the arena moved or kept there, or `None` for fresh memory) had handed
/// out at some time go on the free list (its dirty ones dirty, in the returned header's
/// `dirty`, not yet on the dirty queue); the block's pools are marked
/// [`PoolState::LargeBlock`], and the first one's `capacity` is the block's arena count.
///
/// # Safety
/// The arena-sized memory at `base` is the caller's; it holds `was`'s memory, if any.
unsafe fn write_head(base: *mut u8, was: Option<TakenArena>, shape: Shape) -> *mut Arena {
    let first_pool = shape.first_pool;
    let (untouched, dirty) = match was {
        Some(t) => (
            t.untouched.min(first_pool),
            t.dirty & pool_bits(0, first_pool),
        ),
        None => (METADATA_POOLS, 0),
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
        // SAFETY: a header in the arena's metadata pool (ours); a pool below `untouched` was
        // handed out once, so its header was initialized (`Pool::init`).
        unsafe {
            (*pool).state.set(PoolState::Free);
            (*pool).next.set(header.free_pools);
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

/// Write the header of the arena at `base`, freed from a large block: every usable pool on
/// its free list, all dirty (resident as far as anyone knows), the lowest first.
///
/// # Safety
/// The arena-sized memory at `base` is the caller's.
unsafe fn write_freed(base: *mut u8) {
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
    // SAFETY: the free list's pools are the arena's (lock held); at most 63 of them.
    let mut link: *mut *mut Pool = &mut a.free_pools;
    unsafe {
        while !(*link).is_null() {
            link = (**link).next.as_ptr();
        }
    }
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
        while !(*link).is_null() {
            let p = *link;
            if range & (1 << pool_index(p)) != 0 {
                *link = (*p).next.get();
            } else {
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

    /// Map `n` consecutive arena-sized places, each filled with its tag byte (`tag + i`).
    fn tagged_run(n: usize, tag: u8) -> usize {
        let run = os::map_aligned(n * ARENA_SIZE, ARENA_SIZE);
        assert!(!run.is_null());
        for i in 0..n {
            // SAFETY: inside the run just mapped.
            unsafe {
                run.add(i * ARENA_SIZE)
                    .write_bytes(tag + i as u8, ARENA_SIZE)
            };
        }
        run as usize
    }

    /// As [`tagged_run`], mapped in an address range of its own far below where the kernel
    /// puts mappings (it searches down from just under the stack), so that the free room a
    /// test leaves beside the run is not taken by another test thread's mapping meanwhile
    /// (thread stacks, arenas, `malloc`'s): `region` picks the range (one per test).
    fn tagged_run_far(n: usize, tag: u8, region: usize) -> usize {
        const STEP: usize = 1 << 36; // 64 GiB, a multiple of ARENA_SIZE
        for k in 0..64 {
            let at = (0x2000_0000_0000 + region * (64 * STEP) + k * STEP) as *mut u8;
            if os::map_at(at, n * ARENA_SIZE) {
                for i in 0..n {
                    // SAFETY: inside the run just mapped.
                    unsafe {
                        at.add(i * ARENA_SIZE)
                            .write_bytes(tag + i as u8, ARENA_SIZE)
                    };
                }
                return at as usize;
            }
        }
        panic!("no free address range for a test run");
    }

    fn taken_at(addr: usize) -> TakenArena {
        TakenArena {
            arena: addr as *mut Arena,
            untouched: POOLS_PER_ARENA,
            dirty: 0,
        }
    }

    /// `assemble_run` keeps the longest run of the arenas taken in place where it can, moves the
    /// others (consecutive ones together) into the run's free places with their contents, and
    /// says truly what every place holds. The run kept is mapped far from other mappings
    /// (`tagged_run_far`): with it among them, another test thread's mapping took the
    /// address range beside it in all five tries of one CI run. Five tries still: a range
    /// taken is allowed (the block then gets a fresh run), but not five times in a row.
    #[test]
    fn assemble_run_keeps_the_longest_run_in_place_and_moves_the_others() {
        longest_run_in_place(false);
    }

    /// As above, with the free address range before the run kept rather than after it.
    #[test]
    fn assemble_run_keeps_the_longest_run_in_place_with_room_before_it() {
        longest_run_in_place(true);
    }

    fn longest_run_in_place(room_before: bool) {
        let mut kept_in_place = 0;
        for _ in 0..5 {
            // Two consecutive arenas, a lone one, and three consecutive ones with room after
            // them (the six after unmapped), or before them.
            let b = tagged_run(2, 20);
            let c = tagged_run(1, 30);
            // With room before: a tenth arena after the nine keeps the range after the run
            // taken (nothing else is mapped around a run far from the others), so that the
            // room before is what `assemble_run` finds.
            let nine = tagged_run_far(9 + usize::from(room_before), 10, usize::from(room_before));
            let a = if room_before {
                // The six before unmapped, the three kept retagged.
                os::unmap(nine as *mut u8, 6 * ARENA_SIZE);
                let a = nine + 6 * ARENA_SIZE;
                for i in 0..3 {
                    // SAFETY: still mapped.
                    unsafe {
                        ((a + i * ARENA_SIZE) as *mut u8).write_bytes(10 + i as u8, ARENA_SIZE)
                    };
                }
                a
            } else {
                os::unmap((nine + 3 * ARENA_SIZE) as *mut u8, 6 * ARENA_SIZE);
                nine
            };
            let mut taken = [
                taken_at(a),
                taken_at(a + ARENA_SIZE),
                taken_at(a + 2 * ARENA_SIZE),
                taken_at(b),
                taken_at(b + ARENA_SIZE),
                taken_at(c),
            ];
            taken.sort_unstable_by_key(|t| t.arena as usize);
            let tags: Vec<(usize, u8)> = taken
                .iter()
                // SAFETY: mapped above.
                .map(|t| (t.arena as usize, unsafe { *(t.arena as *const u8) }))
                .collect();
            // SAFETY: the arenas were mapped above, for this test alone.
            let (base, places, returned) = unsafe { assemble_run(&taken, 7) }.expect("memory");
            assert_eq!(returned, 0);
            let base = base as usize;
            assert_eq!(base % ARENA_SIZE, 0);
            let mut seen = Vec::new();
            for (i, place) in places[..7].iter().enumerate() {
                let at = (base + i * ARENA_SIZE) as *const u8;
                // SAFETY: the run is mapped: the first and last byte of each place.
                let (first, last) = unsafe { (*at, *at.add(ARENA_SIZE - 1)) };
                match place {
                    Some(t) => {
                        let tag = tags.iter().find(|x| x.0 == t.arena as usize).unwrap().1;
                        assert_eq!((first, last), (tag, tag), "place {i}: not the arena said");
                        seen.push(t.arena as usize);
                    }
                    None => assert_eq!((first, last), (0, 0), "place {i}: not fresh memory"),
                }
            }
            seen.sort_unstable();
            let all: Vec<usize> = tags.iter().map(|x| x.0).collect();
            assert_eq!(seen, all, "every arena taken is in a place, once");
            assert!(places[7..].iter().all(Option::is_none));
            let kept_at = if room_before { a - 4 * ARENA_SIZE } else { a };
            if base == kept_at {
                kept_in_place += 1;
            }
            os::unmap(base as *mut u8, 7 * ARENA_SIZE);
            if room_before {
                os::unmap((nine + 9 * ARENA_SIZE) as *mut u8, ARENA_SIZE);
            }
        }
        assert!(kept_in_place > 0, "the run was never kept in place");
    }

    /// Empty arenas at `base + i * ARENA_SIZE` for each `(i, resident pools)`, sorted.
    fn empties(base: usize, at: &[(usize, u32)]) -> Vec<(usize, u32)> {
        let mut v: Vec<(usize, u32)> = at
            .iter()
            .map(|&(i, d)| (base + i * ARENA_SIZE, d))
            .collect();
        v.sort_unstable();
        v
    }

    fn picked(found: &[(usize, u32)], want: usize) -> Vec<(usize, usize)> {
        let (ranges, n) = pick_runs(found, want);
        ranges[..n].to_vec()
    }

    /// A run long enough: the window with the most resident pools, then the shortest run.
    #[test]
    fn pick_runs_takes_the_most_resident_window_of_the_shortest_run() {
        let base = 1 << 40;
        // Runs: 0-2 (all resident), 5-9 (all resident), 20-21.
        let full = USABLE_POOLS as u32;
        let found = empties(
            base,
            &[
                (0, full),
                (1, full),
                (2, full),
                (5, full),
                (6, full),
                (7, full),
                (8, full),
                (9, full),
                (20, full),
                (21, full),
            ],
        );
        // Three: the run of three (indices 0..3), not a window of the run of five.
        assert_eq!(picked(&found, 3), vec![(0, 3)]);
        // Four: only the run of five has one; all its windows are equal, the first wins.
        assert_eq!(picked(&found, 4), vec![(3, 4)]);
        // Residency first: with arena 5 purged, the window 6-9 (indices 4..8).
        let mut purged = found.clone();
        purged[3].1 = 0;
        assert_eq!(picked(&purged, 4), vec![(4, 4)]);
        // And over a shorter run: arena 0 purged makes the run of three worse than a window
        // of the run of five.
        let mut purged = found.clone();
        purged[0].1 = 0;
        assert_eq!(picked(&purged, 3), vec![(3, 3)]);
    }

    /// No run long enough: whole runs, the longest first, then the most resident, the last
    /// one cut; as many as there are when fewer than wanted.
    #[test]
    fn pick_runs_takes_the_longest_runs_whole_when_none_is_long_enough() {
        let base = 1 << 40;
        let full = USABLE_POOLS as u32;
        // Runs: 0-1 (two), 10 (one, resident), 20-22 (three), 30 (one, purged).
        let found = empties(
            base,
            &[
                (0, full),
                (1, full),
                (10, full),
                (20, full),
                (21, full),
                (22, full),
                (30, 0),
            ],
        );
        // Five: the run of three (indices 3..6) and the run of two (0..2).
        assert_eq!(picked(&found, 5), vec![(3, 3), (0, 2)]);
        // Six: then the resident lone arena (index 2), not the purged one.
        assert_eq!(picked(&found, 6), vec![(3, 3), (0, 2), (2, 1)]);
        // Four: the run of three and one of the run of two.
        assert_eq!(picked(&found, 4), vec![(3, 3), (0, 1)]);
        // More than there are: all of them.
        let all: usize = picked(&found, 9).iter().map(|r| r.1).sum();
        assert_eq!(all, 7);
        // None at all.
        assert!(picked(&[], 2).is_empty());
    }

    /// With no arena taken, the run is fresh memory; with exactly the run's arenas, consecutive,
    /// it is made where they are.
    #[test]
    fn assemble_run_fresh_and_in_place() {
        // SAFETY: no arena taken.
        let (base, places, returned) = unsafe { assemble_run(&[], 3) }.expect("memory");
        assert!(places.iter().all(Option::is_none));
        assert_eq!(returned, 0);
        os::unmap(base, 3 * ARENA_SIZE);
        let a = tagged_run(3, 40);
        let taken = [
            taken_at(a),
            taken_at(a + ARENA_SIZE),
            taken_at(a + 2 * ARENA_SIZE),
        ];
        // SAFETY: the arenas were mapped above, for this test alone.
        let (base, places, _) = unsafe { assemble_run(&taken, 3) }.expect("memory");
        assert_eq!(base as usize, a);
        assert!(places[..3].iter().all(Option::is_some));
        os::unmap(base, 3 * ARENA_SIZE);
    }
}
