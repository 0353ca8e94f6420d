//! The engine under the weak maps, for both flavors: a table of entries, the queue the
//! entries' death notices push onto, and the rule that makes every access drain that queue
//! first and drop what it takes out only after releasing the table.
//!
//! Locks, in the shared flavor (the single-thread flavor has `RefCell`/`Cell` in their
//! places, with the same order):
//! - the table's `Mutex`: held while the table is read or changed (and, by the collector,
//!   while a scan traces a map that is a field of a `Gc` object). Nothing blocks under it
//!   but the death-notice registry's lock (registering or cancelling a notice) and the dead
//!   queue's lock; no user code runs under it except the keys' `Hash`/`Eq` (value maps) and
//!   the values' `Clone` (key maps), which must not use the map; no `Gc`, key or value is
//!   dropped under it. The collector only ever `try_lock`s it (a held table reports
//!   nothing: its referents are kept for this collection);
//! - the dead queue's `Mutex`: a leaf, held for a `push` or a `take`; its `any` flag is read
//!   without it.
//!
//! A notice runs on the thread where its object stops being reachable through weak handles,
//! possibly while another thread (or this one: a `Drop` run under the table by a key's
//! `Hash`...) holds the table: it pushes onto the queue, then only `try_lock`s the table to
//! purge at once, so it never blocks. The protocol that makes a dead entry leave promptly
//! (loom model `gc_weak_maps`): the notice does push, `SeqCst` fence, `try_lock`; whoever
//! holds the table does release, `SeqCst` fence, read of the queue's flag, and purges again
//! if it is set. Of the two fences one comes first, so either the notice's `try_lock` sees
//! the table released or the holder sees the push: once the notice and the access it raced
//! have both returned, the entry is gone (a key map's value dropped) with no further access.
//! (A table held by the collector — a scan tracing a map inside a `Gc` — is released without
//! that check: a notice that found it so waits for the map's next access.) Every access
//! also drains the queue first, so nothing queued is ever returned.

use core::cell::{Cell, RefCell, RefMut};
use core::hash::{BuildHasher, Hash, Hasher};
use core::ops::DerefMut;
use std::collections::HashMap;
use std::sync::TryLockError;

use crate::sync::unmodelled::AtomicU64;
use crate::sync::{fence, AtomicBool, Mutex, MutexGuard, Ordering};

use crate::gc::watch::NoticeKey;

/// The flavor's primitives: the table's lock, the dead queue, the token counter, how a
/// notice is cancelled, and whether entries can be dead without their notice having fired.
pub(crate) trait MapSync: 'static {
    type Lock<T>: TableLock<T>;
    type Queue<T>: DeadQueue<T>;
    type Counter: Counter;
    /// Cancel a notice (dropping it: the caller holds no table).
    fn cancel(n: NoticeKey);
    /// `Some(epoch)` if objects of this flavor may have their weak handles cleared while
    /// their notices have not fired yet (garbage an automatic collection of this thread's
    /// space found, waiting for a safe point); the epoch changes with every collection, so
    /// one sweep per epoch finds every such entry. `None`: no such object (or no cheap way
    /// to know: the shared flavor, whose `len()` documents the difference).
    fn uncleared_epoch() -> Option<u64>;
}

/// The table's lock: a `Mutex` or a `RefCell`.
pub(crate) trait TableLock<T> {
    type Guard<'a>: DerefMut<Target = T>
    where
        Self: 'a;
    fn new(t: T) -> Self;
    fn lock(&self) -> Self::Guard<'_>;
    fn try_lock(&self) -> Option<Self::Guard<'_>>;
    fn get_mut(&mut self) -> &mut T;
}

impl<T> TableLock<T> for Mutex<T> {
    type Guard<'a>
        = MutexGuard<'a, T>
    where
        T: 'a;
    fn new(t: T) -> Self {
        Mutex::new(t)
    }
    fn lock(&self) -> MutexGuard<'_, T> {
        // A panic under the lock (a key's `Hash`/`Eq`) leaves a table std's `HashMap` keeps
        // consistent: use it as is.
        Mutex::lock(self).unwrap_or_else(|e| e.into_inner())
    }
    fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        match Mutex::try_lock(self) {
            Ok(g) => Some(g),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }
    fn get_mut(&mut self) -> &mut T {
        Mutex::get_mut(self).unwrap_or_else(|e| e.into_inner())
    }
}

impl<T> TableLock<T> for RefCell<T> {
    type Guard<'a>
        = RefMut<'a, T>
    where
        T: 'a;
    fn new(t: T) -> Self {
        RefCell::new(t)
    }
    #[track_caller]
    fn lock(&self) -> RefMut<'_, T> {
        self.try_borrow_mut().unwrap_or_else(|_| {
            panic!("pyheap: a weak map was used while locked (from its keys' Hash or Eq, or its values' Clone)")
        })
    }
    fn try_lock(&self) -> Option<RefMut<'_, T>> {
        self.try_borrow_mut().ok()
    }
    fn get_mut(&mut self) -> &mut T {
        RefCell::get_mut(self)
    }
}

/// Where notices leave the (key, token) of entries whose referent died.
pub(crate) trait DeadQueue<T>: Default {
    fn push(&self, t: T);
    /// Everything queued (empty: nothing, cheaply).
    fn take(&self) -> Vec<T>;
    fn is_empty(&self) -> bool;
    /// Orders a `push` before a following `try_lock` of the table, and a release of the table
    /// before a following `is_empty` (see [`Core::access`]): a `SeqCst` fence in the shared
    /// flavor, nothing in the single-thread one.
    fn fence(&self);
}

/// The shared flavor's queue: a leaf lock, and a flag read without it.
pub(crate) struct SharedQueue<T> {
    items: Mutex<Vec<T>>,
    any: AtomicBool,
}

impl<T> Default for SharedQueue<T> {
    fn default() -> Self {
        SharedQueue {
            items: Mutex::new(Vec::new()),
            any: AtomicBool::new(false),
        }
    }
}

impl<T> DeadQueue<T> for SharedQueue<T> {
    fn push(&self, t: T) {
        let mut q = self.items.lock().unwrap_or_else(|e| e.into_inner());
        q.push(t);
        self.any.store(true, Ordering::Release);
    }
    #[inline]
    fn take(&self) -> Vec<T> {
        if !self.any.load(Ordering::Acquire) {
            return Vec::new();
        }
        let mut q = self.items.lock().unwrap_or_else(|e| e.into_inner());
        self.any.store(false, Ordering::Relaxed);
        core::mem::take(&mut *q)
    }
    #[inline]
    fn is_empty(&self) -> bool {
        !self.any.load(Ordering::Acquire)
    }
    #[inline]
    fn fence(&self) {
        fence(Ordering::SeqCst);
    }
}

/// The single-thread flavor's queue: a `Cell` (never borrowed across a call).
pub(crate) struct LocalQueue<T>(Cell<Vec<T>>);

impl<T> Default for LocalQueue<T> {
    fn default() -> Self {
        LocalQueue(Cell::new(Vec::new()))
    }
}

impl<T> DeadQueue<T> for LocalQueue<T> {
    fn push(&self, t: T) {
        let mut q = self.0.take();
        q.push(t);
        self.0.set(q);
    }
    #[inline]
    fn take(&self) -> Vec<T> {
        self.0.take()
    }
    #[inline]
    fn is_empty(&self) -> bool {
        let q = self.0.take();
        let empty = q.is_empty();
        self.0.set(q);
        empty
    }
    #[inline]
    fn fence(&self) {}
}

/// A per-map counter (entry tokens, the sweep epoch).
pub(crate) trait Counter: Default {
    fn next(&self) -> u64;
    fn get(&self) -> u64;
    fn set(&self, v: u64);
}

impl Counter for AtomicU64 {
    fn next(&self) -> u64 {
        self.fetch_add(1, Ordering::Relaxed)
    }
    fn get(&self) -> u64 {
        self.load(Ordering::Relaxed)
    }
    fn set(&self, v: u64) {
        self.store(v, Ordering::Relaxed)
    }
}

impl Counter for Cell<u64> {
    fn next(&self) -> u64 {
        let t = Cell::get(self);
        Cell::set(self, t + 1);
        t
    }
    fn get(&self) -> u64 {
        Cell::get(self)
    }
    fn set(&self, v: u64) {
        Cell::set(self, v)
    }
}

/// An entry of a weak table: its referent's weak handle, its token, its notice.
pub(crate) trait Entry {
    fn token(&self) -> u64;
    fn notice(&self) -> NoticeKey;
    /// Whether the referent can still be upgraded to.
    fn alive(&self) -> bool;
}

/// The hasher of the identity tables (keys are box addresses: multiples of the alignment,
/// never chosen by an attacker): a multiply, the high bits used by the table.
#[derive(Clone, Copy, Default)]
pub(crate) struct IdHash;

impl BuildHasher for IdHash {
    type Hasher = IdHasher;
    #[inline]
    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    #[inline]
    fn write_usize(&mut self, n: usize) {
        // Fibonacci hashing; hashbrown uses the top 7 bits and the low ones, so fold.
        let h = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = h ^ (h >> 32);
    }
}

/// What an access takes out of the table, dropped once the table is released: keys
/// (the dead queue's, and those of removed entries), entries, and the notices of the
/// entries the user removed or replaced, cancelled first. Dropping it runs user code (`Drop`
/// of keys and values, last `Gc` drops and the notices they fire), which may use the map.
pub(crate) struct Bin<S: MapSync, Key, E> {
    pub(crate) notices: Vec<NoticeKey>,
    pub(crate) keys: Vec<Key>,
    pub(crate) entries: Vec<E>,
    _s: core::marker::PhantomData<S>,
}

impl<S: MapSync, Key, E: Entry> Bin<S, Key, E> {
    fn new() -> Self {
        Bin {
            notices: Vec::new(),
            keys: Vec::new(),
            entries: Vec::new(),
            _s: core::marker::PhantomData,
        }
    }

    /// An entry the user removed (or replaced), with its key: its notice is cancelled.
    pub(crate) fn removed(&mut self, key: Key, e: E) {
        self.notices.push(e.notice());
        self.keys.push(key);
        self.entries.push(e);
    }
}

impl<S: MapSync, Key, E> Drop for Bin<S, Key, E> {
    fn drop(&mut self) {
        for &n in &self.notices {
            S::cancel(n);
        }
        // Then the fields: keys, then entries (their values).
    }
}

type Table<Key, E, H> = HashMap<Key, E, H>;

/// A weak table: the entries, the dead queue, the token counter.
pub(crate) struct Core<S: MapSync, Key, E: Entry, H> {
    table: S::Lock<Table<Key, E, H>>,
    dead: S::Queue<(Key, u64)>,
    tokens: S::Counter,
    /// `uncleared_epoch() + 1` at the last sweep for it (0: none).
    swept: S::Counter,
}

impl<S: MapSync, Key: Hash + Eq + Clone, E: Entry, H: BuildHasher + Default> Core<S, Key, E, H> {
    pub(crate) fn new() -> Self {
        Core {
            table: S::Lock::new(HashMap::with_hasher(H::default())),
            dead: Default::default(),
            tokens: Default::default(),
            swept: Default::default(),
        }
    }

    pub(crate) fn with_capacity(n: usize) -> Self {
        Core {
            table: S::Lock::new(HashMap::with_capacity_and_hasher(n, H::default())),
            dead: Default::default(),
            tokens: Default::default(),
            swept: Default::default(),
        }
    }

    /// A token for a new entry, unique in this map.
    #[inline]
    pub(crate) fn token(&self) -> u64 {
        self.tokens.next()
    }

    /// Run `f` on the table with the dead queue drained; whatever `f` and the drain put in
    /// the bin is dropped after the table is released.
    #[inline]
    pub(crate) fn access<R>(
        &self,
        f: impl FnOnce(&mut Table<Key, E, H>, &mut Bin<S, Key, E>) -> R,
    ) -> R {
        let mut bin = Bin::new();
        let r = {
            let mut t = self.table.lock();
            self.drain(&mut t, &mut bin);
            f(&mut t, &mut bin)
        };
        // The release of the table, then the queue's flag, against a notice's push, then its
        // `try_lock` (`on_death`): with a `SeqCst` fence between each pair, either the notice's
        // `try_lock` sees the table released (it purges itself) or this load sees its push.
        self.dead.fence();
        if !self.dead.is_empty() {
            // A notice fired while we held the table and left its entry to us.
            self.purge_now();
        }
        drop(bin);
        r
    }

    /// Remove the entries the queued notices name (if their token still matches: a newer
    /// entry under the same key stays).
    #[inline]
    fn drain(&self, t: &mut Table<Key, E, H>, bin: &mut Bin<S, Key, E>) {
        let q = self.dead.take();
        if q.is_empty() {
            return;
        }
        self.drain_slow(q, t, bin)
    }

    #[cold]
    fn drain_slow(&self, q: Vec<(Key, u64)>, t: &mut Table<Key, E, H>, bin: &mut Bin<S, Key, E>) {
        for (key, token) in q {
            if t.get(&key).is_some_and(|e| e.token() == token) {
                if let Some((k, e)) = t.remove_entry(&key) {
                    bin.keys.push(k);
                    bin.entries.push(e);
                }
            }
            bin.keys.push(key);
        }
    }

    /// A death notice: queue the entry, and purge at once if the table is free.
    pub(crate) fn on_death(&self, key: Key, token: u64) {
        self.dead.push((key, token));
        // See `access`: the push, then the table's lock word.
        self.dead.fence();
        self.purge_now();
    }

    /// Drain the queue if the table can be taken without waiting; again after releasing it
    /// while the queue is not empty (a notice that found the table held by this purge left
    /// its entry to it). A failed `try_lock` leaves the queue to the table's holder, which
    /// checks it after its release (`access`, or this loop).
    fn purge_now(&self) {
        loop {
            let mut bin = Bin::new();
            {
                let Some(mut t) = self.table.try_lock() else {
                    return;
                };
                self.drain(&mut t, &mut bin);
            }
            drop(bin);
            self.dead.fence();
            if self.dead.is_empty() {
                return;
            }
        }
    }

    /// The number of entries, after removing those whose referent is known dead; in the
    /// single-thread flavor, also those whose weak handles a collection cleared while their
    /// notices wait for a safe point (one sweep per collection).
    pub(crate) fn len(&self) -> usize {
        self.access(|t, bin| {
            if let Some(epoch) = S::uncleared_epoch() {
                if self.swept.get() != epoch + 1 {
                    Self::sweep(t, bin);
                    self.swept.set(epoch + 1);
                }
            }
            t.len()
        })
    }

    /// Remove every entry whose referent cannot be upgraded to.
    pub(crate) fn sweep(t: &mut Table<Key, E, H>, bin: &mut Bin<S, Key, E>) {
        let dead: Vec<Key> = t
            .iter()
            .filter(|(_, e)| !e.alive())
            .map(|(k, _)| k.clone())
            .collect();
        for k in dead {
            if let Some((k0, e)) = t.remove_entry(&k) {
                bin.removed(k0, e);
            }
            bin.keys.push(k);
        }
    }

    /// Remove every entry.
    pub(crate) fn clear(&self) {
        self.access(|t, bin| {
            for (k, e) in t.drain() {
                bin.removed(k, e);
            }
        })
    }

    /// Snapshot of the live entries, mapped by `f` (`None`: dead, removed).
    pub(crate) fn snapshot<T>(&self, mut f: impl FnMut(&Key, &E) -> Option<T>) -> Vec<T> {
        self.access(|t, bin| {
            let mut out = Vec::with_capacity(t.len());
            let mut dead = Vec::new();
            for (k, e) in t.iter() {
                match f(k, e) {
                    Some(x) => out.push(x),
                    None => dead.push(k.clone()),
                }
            }
            for k in dead {
                if let Some((k0, e)) = t.remove_entry(&k) {
                    bin.removed(k0, e);
                }
                bin.keys.push(k);
            }
            out
        })
    }

    /// Remove the entries named by `(key, token)` whose token still matches.
    pub(crate) fn remove_tokens(&self, list: Vec<(Key, u64)>) {
        self.access(|t, bin| {
            for (key, token) in list {
                if t.get(&key).is_some_and(|e| e.token() == token) {
                    if let Some((k, e)) = t.remove_entry(&key) {
                        bin.removed(k, e);
                    }
                }
                bin.keys.push(key);
            }
        })
    }
}

impl<S: MapSync, Key, E: Entry, H> Core<S, Key, E, H> {
    /// The table's lock, for `Trace` (a map inside a `Gc` object).
    pub(crate) fn table(&self) -> &S::Lock<Table<Key, E, H>> {
        &self.table
    }
}

impl<S: MapSync, Key, E: Entry, H> Drop for Core<S, Key, E, H> {
    /// The map is gone (with the last notice that was running when it went, if any): cancel
    /// the notices of its entries, then drop them. No table is held: nobody else can reach it.
    fn drop(&mut self) {
        let entries: Vec<(Key, E)> = self.table.get_mut().drain().collect();
        let queued = self.dead.take();
        for (_, e) in &entries {
            S::cancel(e.notice());
        }
        drop(entries);
        drop(queued);
    }
}
