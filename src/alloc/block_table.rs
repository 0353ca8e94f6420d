//! `AddrTable`: a hash table from block addresses to small records, in memory mapped from the
//! OS, and `Shards`: such tables behind one lock each. The debug allocator's registry of live
//! blocks (`debug.rs`) and tracemalloc's traces (`crate::tracemalloc`) are both made of them.
//!
//! Nothing here allocates through the global allocator: the tables are `mmap`ed and grow by
//! mapping a table twice as large and rehashing into it. Open addressing with linear probing;
//! a removed entry stays as a *tombstone* that keeps its key and record (the debug allocator
//! tells a double free from a foreign pointer with it) until the table is rehashed.
//!
//! Bound: an operation probes O(1) entries on average (the load, tombstones included, stays
//! under 3/4); a growth rehashes every live entry once, amortized O(1) per insertion.

#![cfg_attr(loom, allow(dead_code))] // under loom only the trace table uses it

use super::lock::RawLock;
use super::os;
use core::cell::UnsafeCell;
use core::ptr;

/// An entry's state.
const EMPTY: u8 = 0;
const LIVE: u8 = 1;
const GONE: u8 = 2;

#[derive(Clone, Copy)]
#[repr(C)]
struct Entry<V: Copy> {
    key: usize,
    state: u8,
    value: V,
}

/// What [`AddrTable::find`] found for a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Found<V> {
    /// A live entry.
    Live(V),
    /// A tombstone: the key was removed, with the record it had then.
    Gone(V),
    Absent,
}

/// Bytes of the smallest table.
const MIN_BYTES: usize = 16 * 1024;

/// An open-addressing table from non-zero addresses to `V`.
///
/// # Invariants
/// `entries` is null (no table yet) or `cap` (a power of two) entries mapped with `os::map`
/// (so zeroed: all `EMPTY`); `live` and `gone` count the entries in those states, and
/// `live + gone < cap * 3 / 4` after every insertion. Not thread-safe: its owner (a
/// [`Shards`] lock) serializes every access.
pub(crate) struct AddrTable<V: Copy> {
    entries: *mut Entry<V>,
    cap: usize,
    live: usize,
    gone: usize,
}

// SAFETY: the table owns its mapping; moving it to another thread moves that ownership.
unsafe impl<V: Copy + Send> Send for AddrTable<V> {}

#[inline]
fn hash(key: usize) -> usize {
    // Fibonacci hashing of the address without its always-zero low bits. The product's high
    // bits are the well-mixed ones (its low bits depend only on the key's low bits, which
    // are all zero for 512-byte blocks): the shard is the top `SHARD_BITS`, a slot the bits
    // just below ([`home`]).
    (key >> 3).wrapping_mul(0x9E37_79B9_7F4A_7C15_u64 as usize)
}

/// Bits of [`hash`] that pick a shard.
const SHARD_BITS: u32 = SHARDS.trailing_zeros();

/// The first slot to probe for `key` in a table of `cap` (a power of two, at least 2) slots:
/// the hash's bits below the shard's (keys of one shard share those).
#[inline]
fn home(key: usize, cap: usize) -> usize {
    (hash(key) << SHARD_BITS) >> (usize::BITS - cap.trailing_zeros())
}

impl<V: Copy> AddrTable<V> {
    pub(crate) const fn new() -> Self {
        AddrTable {
            entries: ptr::null_mut(),
            cap: 0,
            live: 0,
            gone: 0,
        }
    }

    /// Live entries.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Bytes mapped for the table.
    pub(crate) fn bytes_mapped(&self) -> usize {
        self.cap * core::mem::size_of::<Entry<V>>()
    }

    #[inline]
    fn slot(&self, i: usize) -> *mut Entry<V> {
        // SAFETY (of the callers' dereferences): `i < cap`, within the mapping (invariants).
        self.entries.wrapping_add(i)
    }

    /// The index of `key`'s entry (live or tombstone), if any.
    fn index_of(&self, key: usize) -> Option<usize> {
        if self.cap == 0 {
            return None;
        }
        let mask = self.cap - 1;
        let mut i = home(key, self.cap);
        loop {
            // SAFETY: `i <= mask < cap` (invariants).
            let e = unsafe { &*self.slot(i) };
            if e.state == EMPTY {
                return None;
            }
            if e.key == key {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// The record of `key`.
    pub(crate) fn find(&self, key: usize) -> Found<V> {
        match self.index_of(key) {
            None => Found::Absent,
            Some(i) => {
                // SAFETY: an index `index_of` returned.
                let e = unsafe { &*self.slot(i) };
                if e.state == LIVE {
                    Found::Live(e.value)
                } else {
                    Found::Gone(e.value)
                }
            }
        }
    }

    /// Insert or replace `key`'s record. Returns false (and changes nothing) if the table
    /// had to grow and no memory could be mapped.
    pub(crate) fn insert(&mut self, key: usize, value: V) -> bool {
        debug_assert!(key != 0);
        if let Some(i) = self.index_of(key) {
            // SAFETY: an index `index_of` returned.
            let e = unsafe { &mut *self.slot(i) };
            if e.state == GONE {
                self.gone -= 1;
                self.live += 1;
            }
            e.state = LIVE;
            e.value = value;
            return true;
        }
        if (self.live + self.gone + 1) * 4 >= self.cap * 3 && !self.grow() {
            return false;
        }
        let mask = self.cap - 1;
        let mut i = home(key, self.cap);
        loop {
            // SAFETY: `i < cap`.
            let e = unsafe { &mut *self.slot(i) };
            if e.state == EMPTY {
                *e = Entry {
                    key,
                    state: LIVE,
                    value,
                };
                self.live += 1;
                return true;
            }
            i = (i + 1) & mask;
        }
    }

    /// Turn `key`'s live entry into a tombstone (keeping its record); returns the record.
    pub(crate) fn remove(&mut self, key: usize) -> Option<V> {
        let i = self.index_of(key)?;
        // SAFETY: an index `index_of` returned.
        let e = unsafe { &mut *self.slot(i) };
        if e.state != LIVE {
            return None;
        }
        e.state = GONE;
        self.live -= 1;
        self.gone += 1;
        Some(e.value)
    }

    /// Call `f` for every live entry.
    pub(crate) fn for_each(&self, mut f: impl FnMut(usize, &V)) {
        for i in 0..self.cap {
            // SAFETY: `i < cap`.
            let e = unsafe { &*self.slot(i) };
            if e.state == LIVE {
                f(e.key, &e.value);
            }
        }
    }

    /// Forget every entry and give the memory back.
    pub(crate) fn clear(&mut self) {
        if !self.entries.is_null() {
            os::unmap(self.entries.cast(), self.bytes_mapped());
        }
        *self = Self::new();
    }

    /// Rehash into a table sized for the live entries (tombstones are dropped). False if no
    /// memory could be mapped (the table is unchanged then).
    #[cold]
    fn grow(&mut self) -> bool {
        let esize = core::mem::size_of::<Entry<V>>();
        let mut cap = (MIN_BYTES / esize).next_power_of_two().max(16);
        while (self.live + 1) * 2 >= cap {
            cap *= 2;
        }
        let fresh = os::map(cap * esize).cast::<Entry<V>>();
        if fresh.is_null() {
            return false;
        }
        let old = core::mem::replace(
            self,
            AddrTable {
                entries: fresh,
                cap,
                live: 0,
                gone: 0,
            },
        );
        old.for_each(|k, v| {
            let mask = cap - 1;
            let mut i = home(k, cap);
            loop {
                // SAFETY: `i < cap`, within the fresh mapping.
                let e = unsafe { &mut *fresh.add(i) };
                if e.state == EMPTY {
                    *e = Entry {
                        key: k,
                        state: LIVE,
                        value: *v,
                    };
                    break;
                }
                i = (i + 1) & mask;
            }
        });
        self.live = old.live;
        if !old.entries.is_null() {
            os::unmap(old.entries.cast(), old.bytes_mapped());
        }
        true
    }
}

/// The number of shards of a [`Shards`]: enough that threads allocating at once rarely
/// meet on one lock.
pub(crate) const SHARDS: usize = 16;

/// `SHARDS` values of `T`, each behind its own [`RawLock`]; an address picks its shard.
/// Built with [`shards_of!`].
///
/// # Invariants
/// A shard's value is touched only by the thread that holds the shard's lock. The lock is a
/// leaf for every path that allocates: nothing allocates through the global allocator while
/// holding it (so an allocation on the holding thread can never need it again).
pub(crate) struct Shards<T> {
    shards: [Shard<T>; SHARDS],
}

/// One shard: a lock and the value it guards.
#[repr(align(64))]
pub(crate) struct Shard<T> {
    lock: RawLock,
    value: UnsafeCell<T>,
}

impl<T> Shard<T> {
    /// A shard holding `value`, unlocked.
    #[cfg(not(loom))]
    pub(crate) const fn new(value: T) -> Shard<T> {
        Shard {
            lock: RawLock::new(),
            value: UnsafeCell::new(value),
        }
    }

    /// A shard holding `value`, unlocked.
    #[cfg(loom)]
    pub(crate) fn new(value: T) -> Shard<T> {
        Shard {
            lock: RawLock::new(),
            value: UnsafeCell::new(value),
        }
    }
}

// SAFETY: every access to a shard's value holds the shard's lock (invariants).
unsafe impl<T: Send> Sync for Shards<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for Shards<T> {}

/// Build a `Shards` whose every shard holds `$make` (an expression evaluated once per shard;
/// constant in normal builds).
macro_rules! shards_of {
    ($make:expr) => {
        $crate::alloc::block_table::Shards::from_array([
            $crate::alloc::block_table::Shard::new($make),
            $crate::alloc::block_table::Shard::new($make),
            $crate::alloc::block_table::Shard::new($make),
            $crate::alloc::block_table::Shard::new($make),
            $crate::alloc::block_table::Shard::new($make),
            $crate::alloc::block_table::Shard::new($make),
            $crate::alloc::block_table::Shard::new($make),
            $crate::alloc::block_table::Shard::new($make),
            $crate::alloc::block_table::Shard::new($make),
            $crate::alloc::block_table::Shard::new($make),
            $crate::alloc::block_table::Shard::new($make),
            $crate::alloc::block_table::Shard::new($make),
            $crate::alloc::block_table::Shard::new($make),
            $crate::alloc::block_table::Shard::new($make),
            $crate::alloc::block_table::Shard::new($make),
            $crate::alloc::block_table::Shard::new($make),
        ])
    };
}
pub(crate) use shards_of;

impl<T> Shards<T> {
    /// The shards, as built by [`shards_of!`].
    pub(crate) const fn from_array(shards: [Shard<T>; SHARDS]) -> Shards<T> {
        Shards { shards }
    }

    /// The shard of address `key`.
    #[inline]
    pub(crate) fn index(key: usize) -> usize {
        hash(key) >> (usize::BITS - SHARD_BITS)
    }

    /// Run `f` on the value of shard `i` with its lock held. `f` must not allocate through
    /// the global allocator (invariants).
    #[inline]
    pub(crate) fn with<R>(&self, i: usize, f: impl FnOnce(&mut T) -> R) -> R {
        let s = &self.shards[i];
        s.lock.lock();
        // SAFETY: we hold the shard's lock, so no other reference to the value exists.
        let r = f(unsafe { &mut *s.value.get() });
        s.lock.unlock();
        r
    }

    /// Run `f` on the shard of address `key`, as [`Shards::with`].
    #[inline]
    pub(crate) fn with_key<R>(&self, key: usize, f: impl FnOnce(&mut T) -> R) -> R {
        self.with(Self::index(key), f)
    }

    /// Take every shard's lock, in index order (the order every path that takes more than
    /// one uses): for `fork()`'s prepare handler, and for operations on the whole table.
    pub(crate) fn lock_all(&self) {
        for s in &self.shards {
            s.lock.lock();
        }
    }

    /// Release what [`Shards::lock_all`] took.
    pub(crate) fn unlock_all(&self) {
        for s in self.shards.iter().rev() {
            s.lock.unlock();
        }
    }

    /// Mark every lock free without owning it: only in the child of a `fork()`, where the
    /// forking thread, which took them all in the prepare handler, is the only thread.
    #[cfg(not(loom))]
    pub(crate) fn force_unlock_all(&self) {
        for s in &self.shards {
            s.lock.force_unlock();
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// Insertions through several growths, removals leaving tombstones, lookups of all three
    /// kinds, with keys 512 bytes apart (the largest pool blocks: many zero low bits).
    #[test]
    fn insert_find_remove_through_growth() {
        let mut t: AddrTable<usize> = AddrTable::new();
        let key = |i: usize| 0x7f00_0000_0000 + i * 512;
        for i in 0..20_000 {
            assert!(t.insert(key(i), i));
        }
        assert_eq!(t.len(), 20_000);
        for i in (0..20_000).step_by(2) {
            assert_eq!(t.remove(key(i)), Some(i));
            assert_eq!(t.remove(key(i)), None);
        }
        assert_eq!(t.len(), 10_000);
        for i in 0..20_000 {
            let want = if i % 2 == 0 {
                Found::Gone(i)
            } else {
                Found::Live(i)
            };
            assert_eq!(t.find(key(i)), want);
        }
        assert_eq!(t.find(key(20_000)), Found::Absent);
        // Re-inserting a removed key makes it live again.
        assert!(t.insert(key(0), 7));
        assert_eq!(t.find(key(0)), Found::Live(7));
        let mut sum = 0;
        t.for_each(|_, _| sum += 1);
        assert_eq!(sum, 10_001);
        assert!(t.bytes_mapped() >= 20_000 * core::mem::size_of::<Entry<usize>>());
        t.clear();
        assert_eq!((t.len(), t.bytes_mapped()), (0, 0));
        assert_eq!(t.find(key(1)), Found::Absent);
    }

    /// Every shard gets keys, and a key's home slot is within its table.
    #[test]
    fn shards_and_slots_spread() {
        let mut seen = [0usize; SHARDS];
        for i in 0..4096 {
            let k = 0x5555_0000_0000 + i * 512;
            seen[Shards::<()>::index(k)] += 1;
            assert!(home(k, 16) < 16);
        }
        assert!(seen.iter().all(|&n| n > 4096 / SHARDS / 2), "{seen:?}");
        let slots: std::collections::HashSet<usize> = (0..64)
            .map(|i| home(0x5555_0000_0000 + i * 512 * SHARDS, 1 << 20))
            .collect();
        assert!(slots.len() > 48, "{}", slots.len());
    }
}
