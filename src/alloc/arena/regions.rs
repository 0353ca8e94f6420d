//! Regions: reservations of [`REGION_SIZE`] bytes of address space, aligned to their size,
//! that large blocks and arenas are carved from in address order, place by place (a *place*
//! is an arena-sized, arena-aligned stretch of a region).
//!
//! **Why.** Large blocks of several arenas need consecutive places. When each arena was a
//! mapping of its own, the places a freed block left were consecutive, but the next block of
//! another size found them mixed with arenas mapped anywhere, and made its run by moving
//! arenas with `mremap` (15-20 µs a call) or mapping fresh memory beside them; and every
//! place a block gave back got an arena header and joined the arena lists, to be taken off
//! them again by the next block (`large_churn`: 6.5 µs a replacement, mimalloc 4.1;
//! BENCHMARKS.md "Session 31"). In a region, a place nobody uses is *vacant*: one bit, which a
//! block's free sets and the next block's allocation clears, with no header, no list and no
//! system call, and the vacant places of a region are found as runs of set bits.
//!
//! **States of a place.** In use (an arena on the manager's lists, in the arena map, or a
//! place of a live large block past its head), or vacant. A vacant place is *resident*
//! (its memory still holds a freed block's or arena's bytes: reusing it costs no page fault)
//! or *purged* (`MADV_DONTNEED`: zero, its memory back with the OS). Resident vacant places
//! are the regions' *spare* memory: at most [`SPARE_LIMIT`] places of it, each purged once it
//! has been vacant for the purge delay (`take_due`), as an empty arena is unmapped after it.
//! A region whose places are all vacant and purged is unmapped (`take_idle`), unless it is
//! the last such one.
//!
//! **Reserved, then committed place by place.** A region is reserved inaccessible
//! (`os::reserve_aligned`), and each place is made readable and writable (`os::commit`, one
//! `mprotect`) the first time it is taken; it stays so until the region is unmapped. So
//! memory never used costs nothing even in a program that locks its memory: with
//! `mlockall(MCL_CURRENT | MCL_FUTURE)` the OS populates every accessible mapping in full
//! when it is made, and a region mapped writable at once was 64 MiB resident and locked at the
//! first large block (session 34's first item; `tests/alloc_mlocked_footprint.rs`). Places
//! are committed in address order mostly, and a commit next to a committed place merges with
//! its mapping, so a region is one to a few mappings (measured: 163-393 mappings in all for
//! random churns of 200,000 large blocks). At worst a region is 64 mappings (every other
//! place committed): about 1,000 such regions (64 GiB of reservations) would reach
//! `vm.max_map_count`'s default of 65,530, and then a commit fails cleanly (`take` returns
//! `None`, the allocation fails, nothing is taken; `tests/alloc_commit_refused.rs`).
//!
//! Only where large blocks are (Linux, not loom, not Miri).
//!
//! # Invariants
//! * Everything here is read and written with the arena manager's lock held (the `Regions`
//!   is part of its locked state).
//! * `table[..n]` are distinct regions sorted by base; each is a mapping of ours of
//!   [`REGION_SIZE`] bytes at a multiple of `REGION_SIZE`, below `ADDRESS_LIMIT`.
//! * For each region, `resident ⊆ vacant`, and every place in use or resident is in
//!   `committed` (readable and writable); a vacant place is used by nobody: no arena
//!   header, no list, no arena-map bit, no block, and only the lock holder touches its memory
//!   (to purge it, or after clearing its bit, to use it). A purged vacant place reads zero.
//! * `spare` is the number of resident vacant places in all regions.

use crate::alloc::arena_map::ADDRESS_LIMIT;
use crate::alloc::os;
use crate::alloc::size_class::ARENA_SIZE;
use core::ptr;

/// Places in a region: one bit each in a `u64`.
pub(crate) const REGION_PLACES: usize = 64;
/// The bytes of a region (64 MiB).
pub(crate) const REGION_SIZE: usize = REGION_PLACES * ARENA_SIZE;
/// The most regions: 256 GiB of address space. Beyond, arenas and large blocks are mapped
/// one by one, as before regions.
const MAX_REGIONS: usize = 4096;
/// The table's first capacity (regions): it doubles when full, up to `MAX_REGIONS` (a table
/// of `MAX_REGIONS` is 2.1 MiB: mapped at once, it was resident in full in a program that
/// locks its memory).
const FIRST_CAPACITY: usize = 8;
/// The most resident vacant places and empty arenas together when a large block is freed
/// (64 MiB; or an eighth of the arenas mapped, if more): beyond, the highest spare places
/// are purged at once (`ArenaManager::trim_spare`). Blocks of mixed sizes leave holes
/// between the live ones, and the next blocks are made in them: with 32, `large_churn` (16
/// live blocks of 256 KiB to 4 MiB replaced at random) purged holes it needed again and ran
/// at 465-520 µs an iteration; with 64, at 140-143 (mimalloc 136-142; BENCHMARKS.md "Session
/// 31"). When an arena empties, the limit stays `DECAY_ARENAS` (32), as before regions: a
/// program that frees its small blocks keeps no more than it did.
pub(crate) const SPARE_LIMIT: usize = 64;
/// The most places `take_due` takes in one call (a bound on the work of one call: the purge
/// itself is done without the lock; the next call goes on).
const DECAY_BUDGET: usize = 32;

/// Bit `i` set for `i` in `from..from + len` (`from + len <= 64`).
fn bits(from: usize, len: usize) -> u64 {
    if len == 0 {
        return 0;
    }
    (u64::MAX >> (64 - len)) << from
}

/// One region: its base and the state of its places (bit `i`: place `i`).
#[derive(Clone, Copy)]
struct Region {
    base: usize,
    vacant: u64,
    resident: u64,
    /// The places made readable and writable (`os::commit`); the others are inaccessible.
    committed: u64,
    /// When each resident vacant place became vacant (`os::now_ms`).
    vacated_at: [u64; REGION_PLACES],
}

/// Where `Regions::find` found room for a block of `want` places.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Room {
    /// The address of the block's first place.
    pub(crate) at: usize,
    /// The first place is an arena in use (the caller's `head_fits` said its last pools are
    /// free) and the others are vacant; else all `want` places are vacant.
    pub(crate) in_arena: bool,
}

/// The regions. See the module doc.
pub(crate) struct Regions {
    /// `cap` slots, mapped at the first region (null before, and `cap` 0).
    table: *mut Region,
    cap: usize,
    n: usize,
    spare: usize,
    /// No resident vacant place is due to be purged before this time (ms).
    next_decay: u64,
}

impl Regions {
    pub(crate) const fn new() -> Regions {
        Regions {
            table: ptr::null_mut(),
            cap: 0,
            n: 0,
            spare: 0,
            next_decay: u64::MAX,
        }
    }

    fn regions(&self) -> &[Region] {
        if self.table.is_null() {
            return &[];
        }
        // SAFETY: `table[..n]` are initialized regions (invariant), the table mapped.
        unsafe { core::slice::from_raw_parts(self.table, self.n) }
    }

    fn regions_mut(&mut self) -> &mut [Region] {
        if self.table.is_null() {
            return &mut [];
        }
        // SAFETY: as above; `&mut self` is the lock holder's.
        unsafe { core::slice::from_raw_parts_mut(self.table, self.n) }
    }

    /// The region holding `addr` and the index of its place there.
    fn locate(&mut self, addr: usize) -> Option<(&mut Region, usize)> {
        let base = addr & !(REGION_SIZE - 1);
        let regions = self.regions_mut();
        let i = regions.binary_search_by_key(&base, |r| r.base).ok()?;
        Some((&mut regions[i], (addr - base) / ARENA_SIZE))
    }

    /// `locate` for a place the caller holds, which lies in a region by the callers' contract:
    /// aborts with a message otherwise (an allocator must not panic under its lock: the
    /// panic would allocate).
    fn locate_or_abort(&mut self, addr: usize) -> (&mut Region, usize) {
        match self.locate(addr) {
            Some(found) => found,
            None => os::fatal("pyheap: a place outside every region was taken or given back"),
        }
    }

    /// Whether `addr` lies in a region.
    pub(crate) fn contains(&self, addr: usize) -> bool {
        let base = addr & !(REGION_SIZE - 1);
        self.regions()
            .binary_search_by_key(&base, |r| r.base)
            .is_ok()
    }

    /// Resident vacant places in all.
    pub(crate) fn spare(&self) -> usize {
        self.spare
    }

    /// Reserve a region of the OS, without the lock (a system call): its base, or null when
    /// the OS refuses or the address is beyond the arena map's reach. Inaccessible until its
    /// places are taken (see the module). Its pages are never huge ones (`MADV_NOHUGEPAGE`):
    /// a place is purged and reused by itself, and a huge page would make a touch of one
    /// place resident for its neighbours too.
    pub(crate) fn reserve() -> *mut u8 {
        let base = os::reserve_aligned(REGION_SIZE, REGION_SIZE);
        if base.is_null() {
            return base;
        }
        if base as usize + REGION_SIZE > ADDRESS_LIMIT {
            os::unmap(base, REGION_SIZE);
            return ptr::null_mut();
        }
        os::no_huge_pages(base, REGION_SIZE);
        base
    }

    /// Add the region reserved at `base` (by [`reserve`](Self::reserve)), all its places
    /// vacant, purged and inaccessible. Returns false (and the caller unmaps it) when the
    /// table is full or cannot grow.
    ///
    /// # Safety
    /// Lock held; `base` came from `reserve` and is in no region yet.
    pub(crate) unsafe fn add(&mut self, base: *mut u8) -> bool {
        // SAFETY: lock held (caller).
        if self.n == self.cap && !unsafe { self.grow_table() } {
            return false;
        }
        let base = base as usize;
        let at = self.regions().partition_point(|r| r.base < base);
        // SAFETY: `n < MAX_REGIONS`: the slots `at..=n` are in the table; the move keeps
        // `table[..n + 1]` sorted (invariant).
        unsafe {
            ptr::copy(self.table.add(at), self.table.add(at + 1), self.n - at);
            self.table.add(at).write(Region {
                base,
                vacant: u64::MAX,
                resident: 0,
                committed: 0,
                vacated_at: [0; REGION_PLACES],
            });
        }
        self.n += 1;
        true
    }

    /// Double the table (to [`FIRST_CAPACITY`] at first), up to `MAX_REGIONS`: a new mapping
    /// with the regions copied, the old one unmapped. System calls under the lock, at most
    /// ten times in the process's life (the table never shrinks).
    /// Returns false when the table is at its largest or the OS refuses.
    ///
    /// # Safety
    /// Lock held.
    unsafe fn grow_table(&mut self) -> bool {
        let cap = if self.cap == 0 {
            FIRST_CAPACITY
        } else {
            self.cap * 2
        };
        if cap > MAX_REGIONS {
            return false;
        }
        let table = os::map(cap * core::mem::size_of::<Region>()).cast::<Region>();
        if table.is_null() {
            return false;
        }
        if !self.table.is_null() {
            // SAFETY: `table[..n]` are initialized (invariant), the new table has room for
            // them; distinct mappings. The old table is ours and nothing refers to it after.
            unsafe {
                ptr::copy_nonoverlapping(self.table, table, self.n);
            }
            os::unmap(self.table.cast(), self.cap * core::mem::size_of::<Region>());
        }
        self.table = table;
        self.cap = cap;
        true
    }

    /// Where a block of `want` places (`1..=REGION_PLACES`) fits: `want` consecutive vacant
    /// places, or an arena in use whose last pools the block can take (`head_fits(addr)`,
    /// asked of at most [`HEAD_CHECKS`] arenas) followed by `want - 1` vacant places. The
    /// room with the most resident places wins (a page fault per page is the costliest part
    /// of a reused place; an arena counts as resident), then the lowest address (address
    /// order keeps the regions' high places vacant). O(regions) bit operations and at most
    /// `HEAD_CHECKS` calls of `head_fits`.
    pub(crate) fn find(
        &self,
        want: usize,
        mut head_fits: impl FnMut(usize) -> bool,
    ) -> Option<Room> {
        debug_assert!((1..=REGION_PLACES).contains(&want));
        let (mut best, mut best_score) = (None, 0);
        let mut checks = 0;
        for r in self.regions() {
            let v = r.vacant;
            if v == 0 {
                continue;
            }
            // The resident places first; then the shortest run of vacant places the room
            // lies in (best fit: long runs stay whole for long blocks). Within a run the
            // second part is the same for every window, and the first slides with it.
            let res = r.resident;
            let mut runs = v;
            while runs != 0 {
                let start = runs.trailing_zeros() as usize;
                let len = (runs >> start).trailing_ones() as usize;
                runs &= !bits(start, len);
                if len < want {
                    continue;
                }
                let fit = 64 - len;
                // The most resident places a window of this run can hold: a run that cannot
                // beat the best room so far is not slid over, and the slide stops at the
                // first window that holds that many (no later one scores more).
                let most = ((res >> start & bits(0, len)).count_ones() as usize).min(want);
                if best.is_some() && most * 128 + fit <= best_score {
                    continue;
                }
                let mut count = (res >> start & bits(0, want)).count_ones() as usize;
                for j in start..=start + len - want {
                    if j > start {
                        count -= (res >> (j - 1) & 1) as usize;
                        count += (res >> (j + want - 1) & 1) as usize;
                    }
                    let s = count * 128 + fit;
                    if best.is_none() || s > best_score {
                        best = Some(Room {
                            at: r.base + j * ARENA_SIZE,
                            in_arena: false,
                        });
                        best_score = s;
                    }
                    if count == most {
                        break;
                    }
                }
            }
            // A head: a place in use (`start - 1`) followed by a run of at least `want - 1`.
            let mut runs = if want > 1 { v & !1 } else { 0 };
            while runs != 0 && checks < HEAD_CHECKS {
                let start = runs.trailing_zeros() as usize;
                let len = (runs >> start).trailing_ones() as usize;
                runs &= !bits(start, len);
                if len < want - 1 || (v >> (start - 1)) & 1 != 0 {
                    continue;
                }
                let count = (res >> start & bits(0, want - 1)).count_ones() as usize;
                let s = (count + 1) * 128 + (64 - len);
                if best.is_some() && s <= best_score {
                    continue;
                }
                checks += 1;
                let j = start - 1;
                if head_fits(r.base + j * ARENA_SIZE) {
                    best = Some(Room {
                        at: r.base + j * ARENA_SIZE,
                        in_arena: true,
                    });
                    best_score = s;
                }
            }
            if best_score == want * 128 + 64 - (want - 1) {
                break; // nothing can score more: all resident, the head an arena, a run that fits
            }
        }
        best
    }

    /// Make the `n` places from `addr` (vacant, in one region) in use, readable and writable
    /// (committed first where they were not). Returns which of them were resident (bit `i`:
    /// place `i` from `addr`), or `None` when the OS refused to make one accessible: then no
    /// place is taken.
    ///
    /// # Safety
    /// Lock held; the places are vacant, in one region.
    pub(crate) unsafe fn take(&mut self, addr: usize, n: usize) -> Option<u64> {
        if n == 0 {
            return Some(0);
        }
        let (r, i) = self.locate_or_abort(addr);
        let mask = bits(i, n);
        debug_assert_eq!(r.vacant & mask, mask, "taking places that are not vacant");
        if !commit(r, mask) {
            return None;
        }
        let resident = (r.resident & mask) >> i;
        r.vacant &= !mask;
        r.resident &= !mask;
        self.spare -= resident.count_ones() as usize;
        Some(resident)
    }

    /// Make the `n` places from `addr` (in use by the caller, in one region) vacant, resident
    /// ones if `resident` (vacated at `now`), else purged ones.
    ///
    /// # Safety
    /// Lock held; the caller gives the places up (nobody uses them any more); purged ones
    /// were purged.
    pub(crate) unsafe fn vacate(&mut self, addr: usize, n: usize, resident: bool, now: u64) {
        if n == 0 {
            return;
        }
        let (r, i) = self.locate_or_abort(addr);
        let mask = bits(i, n);
        debug_assert_eq!(r.vacant & mask, 0, "vacating places that are vacant");
        r.vacant |= mask;
        if resident {
            r.resident |= mask;
            r.vacated_at[i..i + n].fill(now);
            self.spare += n;
            self.next_decay = self.next_decay.min(now);
        }
    }

    /// The lowest resident vacant place, else the lowest purged one, taken (in use, readable
    /// and writable): its address and whether it was resident. For a new arena. `None` if
    /// there is none, or the OS refused to make the place accessible.
    ///
    /// # Safety
    /// Lock held.
    pub(crate) unsafe fn take_one(&mut self) -> Option<(usize, bool)> {
        let prefer_resident = self.spare > 0;
        let r = self.regions_mut().iter_mut().find(|r| {
            if prefer_resident {
                r.resident != 0
            } else {
                r.vacant != 0
            }
        })?;
        let bits = if prefer_resident {
            r.resident
        } else {
            r.vacant
        };
        let i = bits.trailing_zeros() as usize;
        let addr = r.base + i * ARENA_SIZE;
        // SAFETY: lock held; place `i` is vacant.
        let resident = unsafe { self.take(addr, 1) }? != 0;
        Some((addr, resident))
    }

    /// Take up to `n` resident vacant places, the highest first (allocation goes to low
    /// addresses first, so these are the least likely to be reused soon), for the caller to
    /// purge and then make vacant again ([`vacate`](Self::vacate), purged): runs of
    /// consecutive places into `out`, as `(address, places)`. Returns how many runs.
    ///
    /// # Safety
    /// Lock held.
    pub(crate) unsafe fn take_highest_spare(
        &mut self,
        mut n: usize,
        out: &mut [(usize, usize)],
    ) -> usize {
        let mut runs = 0;
        let mut taken = 0;
        for r in self.regions_mut().iter_mut().rev() {
            while n > 0 && r.resident != 0 && runs < out.len() {
                // The highest run of resident places, cut to `n` from its top.
                let top = 63 - r.resident.leading_zeros() as usize;
                let len = ((r.resident << (63 - top)).leading_ones() as usize).min(n);
                let from = top + 1 - len;
                let mask = bits(from, len);
                r.resident &= !mask;
                r.vacant &= !mask;
                out[runs] = (r.base + from * ARENA_SIZE, len);
                runs += 1;
                taken += len;
                n -= len;
            }
        }
        self.spare -= taken;
        runs
    }

    /// Take the resident vacant places that have been vacant for `delay` ms at `now`, at
    /// most [`DECAY_BUDGET`] of them (the rest on the next calls), for the caller to purge
    /// and make vacant again, as [`take_highest_spare`](Self::take_highest_spare) does: runs
    /// into `out`. Returns how many runs and places. A look at every region only when one may
    /// be due (`next_decay`), so at most once per delay per place vacated, whatever the
    /// traffic.
    ///
    /// # Safety
    /// Lock held.
    pub(crate) unsafe fn take_due(
        &mut self,
        now: u64,
        delay: u64,
        out: &mut [(usize, usize)],
    ) -> (usize, usize) {
        if self.spare == 0 || now < self.next_decay.saturating_add(delay) {
            return (0, 0);
        }
        let (mut runs, mut taken) = (0, 0);
        let mut next = u64::MAX;
        for r in self.regions_mut() {
            let mut m = r.resident;
            while m != 0 {
                let i = m.trailing_zeros() as usize;
                m &= m - 1;
                let at = r.vacated_at[i];
                if at.saturating_add(delay) > now || taken == DECAY_BUDGET || runs == out.len() {
                    next = next.min(at);
                    continue;
                }
                r.resident &= !(1 << i);
                r.vacant &= !(1 << i);
                let addr = r.base + i * ARENA_SIZE;
                match out[..runs].last_mut() {
                    Some(last) if last.0 + last.1 * ARENA_SIZE == addr => last.1 += 1,
                    _ => {
                        out[runs] = (addr, 1);
                        runs += 1;
                    }
                }
                taken += 1;
            }
        }
        self.spare -= taken;
        self.next_decay = next;
        (runs, taken)
    }

    /// Purge every resident vacant place, whatever its age. Returns how many.
    ///
    /// # Safety
    /// Lock held.
    pub(crate) unsafe fn purge_all(&mut self) -> usize {
        let mut purged = 0;
        for r in self.regions_mut() {
            let mut m = r.resident;
            while m != 0 {
                let i = m.trailing_zeros() as usize;
                let len = (m >> i).trailing_ones() as usize;
                os::purge((r.base + i * ARENA_SIZE) as *mut u8, len * ARENA_SIZE);
                m &= !bits(i, len);
                purged += len;
            }
            r.resident = 0;
        }
        self.spare -= purged;
        self.next_decay = u64::MAX;
        purged
    }
}

impl Regions {
    /// Take an idle region out of the table (one whose places are all vacant and purged) if
    /// there are two or more: the highest, the last one being kept (so that a program that
    /// frees its large blocks now and then does not reserve a region each time: in
    /// `large_churn`, unmapping every idle region but the last cost 3% of its time). Its base,
    /// for the caller to unmap once the lock is released; none if there is no such region.
    ///
    /// # Safety
    /// Lock held.
    pub(crate) unsafe fn take_idle(&mut self) -> Option<usize> {
        let idle = |r: &Region| r.vacant == u64::MAX && r.resident == 0;
        if self.regions().iter().filter(|r| idle(r)).take(2).count() < 2 {
            return None;
        }
        let i = self.regions().iter().rposition(idle)?;
        let base = self.regions()[i].base;
        // SAFETY: `i < n`: the slots `i + 1..n` move down by one, the table stays sorted.
        unsafe { ptr::copy(self.table.add(i + 1), self.table.add(i), self.n - i - 1) };
        self.n -= 1;
        Some(base)
    }
}

/// Make the places of `mask` in `r` readable and writable where they are not yet (each run of
/// them one `os::commit`), recording each run done in `r.committed`. Returns false if the OS
/// refused one (the runs before it stay committed: committing is only ever done once).
fn commit(r: &mut Region, mask: u64) -> bool {
    let mut fresh = mask & !r.committed;
    while fresh != 0 {
        let i = fresh.trailing_zeros() as usize;
        let len = (fresh >> i).trailing_ones() as usize;
        if !os::commit((r.base + i * ARENA_SIZE) as *mut u8, len * ARENA_SIZE) {
            return false;
        }
        r.committed |= bits(i, len);
        fresh &= !bits(i, len);
    }
    true
}

/// How many arenas `Regions::find` asks `head_fits` about, at most (each is a header read,
/// likely a cache miss).
pub(crate) const HEAD_CHECKS: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Regions` over fake bases (never mapped: only the bit logic runs).
    fn fake(vacant: &[(u64, u64)]) -> Regions {
        let mut rs = Regions::new();
        let table = os::map(MAX_REGIONS * core::mem::size_of::<Region>());
        rs.table = table.cast();
        rs.cap = MAX_REGIONS;
        for (k, &(v, res)) in vacant.iter().enumerate() {
            // SAFETY: slot `k` of the mapped table.
            unsafe {
                rs.table.add(k).write(Region {
                    base: (k + 1) * REGION_SIZE,
                    vacant: v,
                    resident: res,
                    committed: u64::MAX,
                    vacated_at: [0; REGION_PLACES],
                })
            };
            rs.n += 1;
            rs.spare += res.count_ones() as usize;
        }
        rs
    }

    fn place(region: usize, i: usize) -> usize {
        (region + 1) * REGION_SIZE + i * ARENA_SIZE
    }

    #[test]
    fn find_prefers_resident_then_low_addresses() {
        // Region 0: places 2..5 vacant, purged; 10..13 vacant, 11 and 12 resident.
        // Region 1: places 0..3 vacant, all resident.
        let rs = fake(&[
            (bits(2, 3) | bits(10, 3), bits(11, 2)),
            (bits(0, 3), bits(0, 3)),
        ]);
        let none = |_| false;
        assert_eq!(
            rs.find(3, none),
            Some(Room {
                at: place(1, 0),
                in_arena: false
            })
        );
        assert_eq!(
            rs.find(2, none),
            Some(Room {
                at: place(0, 11),
                in_arena: false
            })
        );
        assert_eq!(rs.find(4, none), None);
        // One place: the lowest resident one.
        assert_eq!(
            rs.find(1, none),
            Some(Room {
                at: place(0, 11),
                in_arena: false
            })
        );
    }

    #[test]
    fn find_uses_an_arena_before_vacant_places_only_if_it_fits() {
        // Places 1..4 vacant and resident; place 0 in use.
        let rs = fake(&[(bits(1, 3), bits(1, 3))]);
        let mut asked = Vec::new();
        let room = rs.find(4, |a| {
            asked.push(a);
            true
        });
        assert_eq!(
            room,
            Some(Room {
                at: place(0, 0),
                in_arena: true
            })
        );
        assert_eq!(asked, vec![place(0, 0)]);
        assert_eq!(rs.find(4, |_| false), None);
        // With a fully vacant room as resident as the arena's, the vacant one wins without
        // asking about the arena only when it scores more: here 3 resident + arena = 4 > 3.
        let rs = fake(&[(bits(1, 3) | bits(20, 4), bits(1, 3) | bits(20, 3))]);
        assert_eq!(
            rs.find(4, |_| true),
            Some(Room {
                at: place(0, 0),
                in_arena: true
            })
        );
        assert_eq!(
            rs.find(4, |_| false),
            Some(Room {
                at: place(0, 20),
                in_arena: false
            })
        );
    }

    #[test]
    fn take_and_vacate_keep_the_spare_count() {
        let mut rs = fake(&[(bits(0, 8), bits(0, 4))]);
        assert_eq!(rs.spare(), 4);
        // SAFETY: a test's own regions (fake bases: nothing is purged or touched).
        unsafe {
            assert_eq!(rs.take(place(0, 2), 4), Some(0b0011));
            assert_eq!(rs.spare(), 2);
            rs.vacate(place(0, 2), 4, true, 5);
            assert_eq!(rs.spare(), 6);
            assert_eq!(rs.take_one(), Some((place(0, 0), true)));
            assert!(rs.contains(place(0, 63)));
            assert!(!rs.contains(place(1, 0)));
        }
    }

    #[test]
    fn the_highest_spare_places_go_first() {
        // Region 0: resident 0..4; region 1: resident 2..5 and 10.
        let mut rs = fake(&[
            (bits(0, 4), bits(0, 4)),
            (bits(2, 3) | 1 << 10, bits(2, 3) | 1 << 10),
        ]);
        let mut out = [(0, 0); 8];
        // SAFETY: a test's own regions (fake bases: nothing is purged or touched).
        unsafe {
            let runs = rs.take_highest_spare(3, &mut out);
            assert_eq!(&out[..runs], &[(place(1, 10), 1), (place(1, 3), 2)]);
            assert_eq!(rs.spare(), 5);
            let runs = rs.take_highest_spare(10, &mut out);
            assert_eq!(&out[..runs], &[(place(1, 2), 1), (place(0, 0), 4)]);
            assert_eq!(rs.spare(), 0);
            // Taken: no longer vacant, so `find` does not offer them.
            assert_eq!(rs.find(1, |_| false), None);
        }
    }

    #[test]
    fn idle_regions_but_the_last_idle_one_are_taken_out() {
        // Regions 0 and 2 idle, region 1 with a resident vacant place, region 3 with a place
        // in use.
        let mut rs = fake(&[
            (u64::MAX, 0),
            (u64::MAX, 1),
            (u64::MAX, 0),
            (u64::MAX >> 1, 0),
        ]);
        // SAFETY: a test's own regions (fake bases: nothing is unmapped here).
        unsafe {
            // The highest idle one goes; the other idle one stays.
            assert_eq!(rs.take_idle(), Some(3 * REGION_SIZE));
            assert_eq!(rs.take_idle(), None);
            assert!(rs.contains(place(0, 0)) && !rs.contains(place(2, 0)));
            // Region 1 idle too: one of the two goes (the higher).
            assert_eq!(rs.take_highest_spare(1, &mut [(0, 0); 1]), 1);
            rs.vacate(place(1, 0), 1, false, 0);
            assert_eq!(rs.take_idle(), Some(2 * REGION_SIZE));
            assert_eq!(rs.take_idle(), None);
            assert!(rs.contains(place(0, 0)) && rs.contains(place(3, 0)));
        }
    }

    /// `Regions::find` as first written, window by window: the reference the run-by-run
    /// version must agree with.
    fn find_reference(
        rs: &Regions,
        want: usize,
        head_fits: impl Fn(usize) -> bool,
    ) -> Option<Room> {
        let (mut best, mut best_score) = (None, 0);
        let mut checks = 0;
        for r in rs.regions() {
            let v = r.vacant;
            if v == 0 {
                continue;
            }
            let score = |j: usize, head: bool| {
                let resident = (r.resident >> j & bits(0, want)).count_ones() as usize;
                let start = if head {
                    j + 1
                } else {
                    let below = !v & bits(0, j);
                    if below == 0 {
                        0
                    } else {
                        64 - below.leading_zeros() as usize
                    }
                };
                let end = start + (v >> start).trailing_ones() as usize;
                (resident + head as usize) * 128 + (64 - (end - start))
            };
            for j in 0..=64 - want {
                if v >> j & bits(0, want) == bits(0, want) {
                    let s = score(j, false);
                    if best.is_none() || s > best_score {
                        best = Some(Room {
                            at: r.base + j * ARENA_SIZE,
                            in_arena: false,
                        });
                        best_score = s;
                    }
                }
            }
            for j in 0..64 - (want - 1) {
                if want < 2 || checks == HEAD_CHECKS {
                    break;
                }
                let rest = bits(0, want - 1);
                if v >> j & 1 != 0 || v >> (j + 1) & rest != rest {
                    continue;
                }
                let s = score(j, true);
                if best.is_some() && s <= best_score {
                    continue;
                }
                checks += 1;
                if head_fits(r.base + j * ARENA_SIZE) {
                    best = Some(Room {
                        at: r.base + j * ARENA_SIZE,
                        in_arena: true,
                    });
                    best_score = s;
                }
            }
            if best_score == want * 128 + 64 - (want - 1) {
                break;
            }
        }
        best
    }

    #[test]
    fn find_agrees_with_the_window_by_window_reference() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..3000 {
            let n = 1 + (next() % 3) as usize;
            // Vacant places in runs (an AND of two words makes them sparser, an OR denser).
            let regions: Vec<(u64, u64)> = (0..n)
                .map(|_| {
                    let v = match next() % 3 {
                        0 => next() & next(),
                        1 => next() | next(),
                        _ => next(),
                    };
                    (v, v & next())
                })
                .collect();
            let rs = fake(&regions);
            let fits = next();
            let head_fits = |addr: usize| fits >> (addr / ARENA_SIZE % 64) & 1 != 0;
            for want in [1, 2, 3, 5, 9, 33] {
                assert_eq!(
                    rs.find(want, head_fits),
                    find_reference(&rs, want, head_fits),
                    "want {want}, regions {regions:x?}, fits {fits:x}"
                );
            }
        }
    }

    #[test]
    fn bits_covers_the_whole_word() {
        assert_eq!(bits(0, 64), u64::MAX);
        assert_eq!(bits(63, 1), 1 << 63);
        assert_eq!(bits(5, 0), 0);
    }
}
