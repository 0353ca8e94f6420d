//! The thread-safe flavor's counts: one 64-bit word holding the strong count, a version and
//! the flags, plus a 32-bit weak count (`docs/concurrency.md` §2.3).
//!
//! ```text
//!  63 62               35 34                  6 5     0
//!  [T][ version: 28 bits ][ strong: 29 bits     ][ flags ]
//!  CLONE = version + 1, strong + 1     DROP = version + 1, strong - 1   (one fetch_add each)
//!  T (VERSION_TOP) is the version's top bit: T:version is a 29-bit counter whose carry leaves
//!  the word
//! ```
//!
//! # Invariants
//!
//! * **Every change of the strong count changes the version** (I6): clone, drop, upgrade,
//!   `try_unwrap`, the collector's pin and unpin all add [`CLONE`] or [`DROP`]. The collector
//!   condemns garbage with a compare-and-swap from the exact word it read
//!   (`Counts::try_condemn`), which is how a clone racing with a scan (hazard 1, with its ABA)
//!   keeps the object alive.
//! * **No wrap-around inside a scan, whatever the speed of the machine** (I8,
//!   `docs/concurrency.md` §2.3): two equal readings of the word, both taken while the scan
//!   holds the space lock, prove that no handle was created or destroyed in between. The
//!   counter T:version returns to a value only after 2^29 increments, half of which start
//!   from a word with T set. A mutator whose read-modify-write finds T set in the *old* word
//!   takes the slow path ([`SharedCounts::version_top_seen`]): it waits for the space lock,
//!   then clears T. A scan holds that lock from its first count read to its last
//!   condemnation, so during a scan each thread makes at most one increment from a word with
//!   T set, and then waits: a wrap inside a scan would need 2^28 threads. T is cleared only
//!   under the space lock: by that slow path, or by the scan itself right before it reads a
//!   word (`Counts::scan_snapshot`), never between a reading and its compare-and-swap. The
//!   clear costs nothing on the fast
//!   paths: the clone's test of the old word for the count limit and the drop's test for the
//!   last handle take T into the same mask. A thread takes the slow path once every 2^28
//!   count changes of an object.
//! * **The word is only changed by read-modify-writes** once the object is published (I2):
//!   a plain store could erase a concurrent clone.
//! * **strong < 2^28** (I7): a clone whose *old* word has bit 34 set aborts, like `Arc` at
//!   `isize::MAX`, leaving 2^28 of headroom for racing clones so the field never carries into
//!   the version.
//! * `weak` counts `Weak` handles plus the value's token, as in the single-thread flavor
//!   (`gc::header`'s invariants apply unchanged).
//! * Flags: `FLAG_DEAD`, `FLAG_WEAKS_CLEARED`, `FLAG_FINALIZED`, `FLAG_UNIQUE` as in
//!   `gc::header`, plus [`FLAG_CONDEMNED`]: set only by the collector holding the space lock,
//!   between its snapshot and its decision; `Weak::upgrade` waits while it is set; plus
//!   [`FLAG_HAS_LINKS`], `Counts::has_links`: part of the word's value from creation (it is in
//!   the initial word, before the object is published), never set or cleared by any
//!   operation, so it changes no reading of the word and no compare-and-swap: to the
//!   protocol it is a constant, like the bits of an unused version.

use crate::gc::header::{counts_of, Counts, Links, FLAG_CONDEMNED, FLAG_DEAD, FLAG_WEAKS_CLEARED};
use crate::sync::{fence, AtomicU32, AtomicU64, Ordering};

const FLAG_BITS: u64 = 0x3f;
const STRONG_SHIFT: u32 = 6;
const STRONG_ONE: u64 = 1 << STRONG_SHIFT;
const STRONG_MASK: u64 = ((1 << 29) - 1) << STRONG_SHIFT;
/// The version's lowest bit. Under loom the version is 2 bits (T and one below it), so that a
/// model can drive it around in a few steps.
#[cfg(not(loom))]
const VERSION_ONE: u64 = 1 << 35;
#[cfg(loom)]
const VERSION_ONE: u64 = 1 << 62;
/// The version's top bit, T (see the module docs).
pub(crate) const VERSION_TOP: u64 = 1 << 63;
/// Added by every operation that creates a strong reference.
pub(crate) const CLONE: u64 = VERSION_ONE + STRONG_ONE;
/// Added by every operation that destroys one (wrapping: it subtracts from the strong field).
pub(crate) const DROP: u64 = VERSION_ONE.wrapping_sub(STRONG_ONE);
/// Set in the old word of a clone: too many handles (I7).
const STRONG_LIMIT_BIT: u64 = 1 << 34;
/// The allocation has links (`Counts::has_links`): in the word from creation, never changed.
/// The single-thread flavor's `FLAG_OLD` has this bit's value in its own flag word; that flag
/// is never set on this flavor's objects.
pub(crate) const FLAG_HAS_LINKS: u64 = 0b10_0000;
const _: () = assert!(FLAG_HAS_LINKS & FLAG_BITS == FLAG_HAS_LINKS);
const _: () = assert!(FLAG_HAS_LINKS as usize == crate::gc::header::FLAG_OLD);

/// The strong count in a count word.
#[inline]
pub(crate) fn strong_in(word: u64) -> usize {
    ((word & STRONG_MASK) >> STRONG_SHIFT) as usize
}

/// The flags in a count word.
#[inline]
pub(crate) fn flags_in(word: u64) -> usize {
    (word & FLAG_BITS) as usize
}

/// The thread-safe flavor's counts (16 bytes: the word, the weak count, and the id of the
/// shard whose lock guards the object's list links: see `gc::shared::space`).
///
/// `pub` (in a crate-private module: unreachable from outside) only because `unsize!`'s hidden
/// step names `GcBox<SharedCounts, T>` in a public signature (`gc::unsize`).
#[repr(C)]
pub struct SharedCounts {
    pub(crate) word: AtomicU64,
    weak: AtomicU32,
    /// The object's shard: set once, before the object is first linked, never changed (so
    /// reading it needs no lock: whoever links or unlinks the object locks that shard).
    pub(crate) shard: AtomicU32,
}

#[cold]
#[inline(never)]
fn count_overflow() -> ! {
    std::process::abort()
}

impl SharedCounts {
    /// Add a strong reference (`Gc::clone`); returns the old word so the caller can test its
    /// flags. Relaxed as `Arc::clone`: the new handle is made from an existing one, which
    /// already keeps the object alive.
    #[inline]
    pub(crate) fn clone_strong(&self) -> u64 {
        let old = self.word.fetch_add(CLONE, Ordering::Relaxed);
        if old & (STRONG_LIMIT_BIT | VERSION_TOP) != 0 {
            self.clone_slow(old);
        }
        old
    }

    /// A clone found the count limit or T set in the old word.
    #[cold]
    #[inline(never)]
    fn clone_slow(&self, old: u64) {
        if old & STRONG_LIMIT_BIT != 0 {
            count_overflow();
        }
        self.version_top_seen();
    }

    /// A read-modify-write that advanced the version found T set in the old word (I8): wait
    /// until no scan holds the space lock, then clear T under it.
    #[cold]
    #[inline(never)]
    pub(crate) fn version_top_seen(&self) {
        super::space::space().with_space_lock(|| {
            // Under the space lock, which every scan holds from its first count read to its
            // last condemnation: no scan is between a reading of this word and its
            // compare-and-swap now. Only T changes (flags, strong count and the rest of the
            // version stay): a read-modify-write, not a store (I2).
            self.word.fetch_and(!VERSION_TOP, Ordering::Relaxed);
        });
    }

    /// `Gc::clone`'s form of [`SharedCounts::clone_strong`]: one test of the old word for
    /// the count limit and the flags in `watch` together (the fast path of a clone is the
    /// `fetch_add`, one test and one branch, as `Arc::clone`); `slow` runs when any of them
    /// is set, after the limit has been checked.
    #[inline]
    pub(crate) fn clone_strong_watching(&self, watch: usize, slow: impl FnOnce(u64)) {
        let old = self.word.fetch_add(CLONE, Ordering::Relaxed);
        if old & (STRONG_LIMIT_BIT | VERSION_TOP | watch as u64) != 0 {
            if old & (STRONG_LIMIT_BIT | VERSION_TOP) != 0 {
                self.clone_slow(old);
            }
            if old & watch as u64 != 0 {
                slow(old);
            }
        }
    }

    /// Drop a strong reference; true if it was the last one. Release, then an Acquire fence
    /// on the last drop, as `Arc::drop`: every use of the value through other handles
    /// happens before its destruction.
    #[inline]
    pub(crate) fn drop_strong(&self) -> bool {
        let old = self.word.fetch_add(DROP, Ordering::Release);
        if old & (STRONG_MASK | VERSION_TOP) != STRONG_ONE {
            if old & VERSION_TOP == 0 {
                return false;
            }
            self.version_top_seen();
            if old & STRONG_MASK != STRONG_ONE {
                return false;
            }
        }
        fence(Ordering::Acquire);
        true
    }

    /// The word, for `Deref`'s flag test: Relaxed, because flags seen by a thread holding a
    /// handle were set either by that thread or before the handle reached it (teardown marks
    /// only objects no other thread can reach, `docs/concurrency.md` Lemma A).
    #[inline]
    pub(crate) fn load_relaxed(&self) -> u64 {
        self.word.load(Ordering::Relaxed)
    }

    /// `Weak::upgrade`: add a strong reference unless the object is dead, dying, or its weak
    /// handles were cleared; wait while the collector is deciding about it.
    pub(crate) fn try_upgrade(&self) -> bool {
        let mut round = 0;
        let mut w = self.word.load(Ordering::Acquire);
        loop {
            if flags_in(w) & (crate::gc::header::FLAG_DEAD | FLAG_WEAKS_CLEARED) != 0
                || strong_in(w) == 0
            {
                return false;
            }
            if flags_in(w) & FLAG_CONDEMNED != 0 {
                // The collector holds the space lock and decides within one scan; it never
                // waits for us.
                crate::sync::spin_wait(round);
                round = round.saturating_add(1);
                w = self.word.load(Ordering::Acquire);
                continue;
            }
            if w & STRONG_LIMIT_BIT != 0 {
                count_overflow();
            }
            match self.word.compare_exchange_weak(
                w,
                w.wrapping_add(CLONE),
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    if w & VERSION_TOP != 0 {
                        self.version_top_seen();
                    }
                    return true;
                }
                Err(cur) => w = cur,
            }
        }
    }

    /// Introspection (`gc::introspect`), with the space lock held: add a strong reference
    /// unless the object is dying (strong zero), dead, its weak handles were cleared, or
    /// `get_mut` took it out (`FLAG_UNIQUE`); true if added. No scan runs (the lock), so
    /// `FLAG_CONDEMNED` is never set; T is cleared here, as the slow path would (I8: allowed
    /// under the space lock), instead of waiting for the lock this thread holds.
    pub(crate) fn try_acquire_under_space_lock(&self) -> bool {
        use crate::gc::header::{FLAG_DEAD, FLAG_UNIQUE};
        let gone = (FLAG_DEAD | FLAG_WEAKS_CLEARED | FLAG_UNIQUE | FLAG_CONDEMNED) as u64;
        let mut w = self.word.load(Ordering::Acquire);
        loop {
            if w & gone != 0 || strong_in(w) == 0 {
                return false;
            }
            if w & STRONG_LIMIT_BIT != 0 {
                count_overflow();
            }
            let new = w.wrapping_add(CLONE) & !VERSION_TOP;
            match self
                .word
                .compare_exchange_weak(w, new, Ordering::Acquire, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(cur) => w = cur,
            }
        }
    }

    /// `gc::garbage()`, with the space lock held: add a strong reference to an object one is
    /// held on. T is cleared here (allowed under the space lock, I8) instead of waiting for
    /// the lock this thread holds.
    pub(crate) fn clone_strong_under_space_lock(&self) {
        let old = self.word.fetch_add(CLONE, Ordering::Relaxed);
        if old & STRONG_LIMIT_BIT != 0 {
            count_overflow();
        }
        if old & VERSION_TOP != 0 {
            self.word.fetch_and(!VERSION_TOP, Ordering::Relaxed);
        }
    }

    /// `try_unwrap`: from exactly one strong handle to none, marking the value dead in the
    /// same step (so no `upgrade` can slip in between). False if other handles exist.
    pub(crate) fn try_take_last(&self) -> bool {
        let mut w = self.word.load(Ordering::Acquire);
        loop {
            if strong_in(w) != 1 || flags_in(w) & crate::gc::header::FLAG_DEAD != 0 {
                return false;
            }
            let new = w.wrapping_add(DROP) | crate::gc::header::FLAG_DEAD as u64;
            match self
                .word
                .compare_exchange(w, new, Ordering::Acquire, Ordering::Acquire)
            {
                Ok(_) => {
                    if w & VERSION_TOP != 0 {
                        self.version_top_seen();
                    }
                    return true;
                }
                Err(cur) => w = cur,
            }
        }
    }
}

// SAFETY: strong and weak behave as plain counters (one atomic RMW each); the version and
// flag bits never disturb the strong field (I6, I7).
unsafe impl Counts for SharedCounts {
    const SHARED: bool = true;
    #[inline]
    fn new_live(has_links: bool) -> Self {
        Self {
            word: AtomicU64::new(STRONG_ONE | if has_links { FLAG_HAS_LINKS } else { 0 }),
            weak: AtomicU32::new(1),
            shard: AtomicU32::new(0),
        }
    }
    #[inline]
    fn new_constructing(has_links: bool) -> Self {
        Self {
            word: AtomicU64::new(if has_links { FLAG_HAS_LINKS } else { 0 }),
            weak: AtomicU32::new(2),
            shard: AtomicU32::new(0),
        }
    }
    #[inline]
    fn has_links(&self) -> bool {
        // Relaxed: the bit is in the word since before the object was published to any other
        // thread (a handle reached this thread through a synchronising hand-over).
        self.word.load(Ordering::Relaxed) & FLAG_HAS_LINKS != 0
    }
    #[inline]
    fn strong(&self) -> usize {
        strong_in(self.word.load(Ordering::Acquire))
    }
    fn set_strong(&self, n: usize) {
        // Only from zero to one (the end of `new_cyclic`): a read-modify-write, because a
        // `Weak` handed out by the constructor may be racing an `upgrade` on another thread
        // (which fails at strong zero: the version is still 0 here, T clear).
        assert_eq!(n, 1, "SharedCounts::set_strong: only 0 -> 1");
        self.word.fetch_add(CLONE, Ordering::Release);
    }
    #[inline]
    fn inc_strong(&self) {
        self.clone_strong();
    }
    #[inline]
    fn dec_strong(&self) -> usize {
        let old = self.word.fetch_add(DROP, Ordering::Release);
        if old & VERSION_TOP != 0 {
            self.version_top_seen();
        }
        let new = strong_in(old) - 1;
        if new == 0 {
            fence(Ordering::Acquire);
        }
        new
    }
    #[inline]
    fn weak(&self) -> usize {
        self.weak.load(Ordering::Acquire) as usize
    }
    #[inline]
    fn inc_weak(&self) {
        if self.weak.fetch_add(1, Ordering::Relaxed) >= u32::MAX / 2 {
            count_overflow();
        }
    }
    #[inline]
    fn release_weak(&self, _has_links: bool) -> bool {
        // Release, then an Acquire fence on the last one, as `Arc`'s weak count: every use of
        // the allocation through other references happens before it is freed.
        if self.weak.fetch_sub(1, Ordering::Release) == 1 {
            fence(Ordering::Acquire);
            true
        } else {
            false
        }
    }

    #[inline]
    unsafe fn flags(links: *const Links) -> usize {
        // SAFETY: per the caller the header is alive with counts of this type.
        flags_in(
            unsafe { counts_of::<Self>(links) }
                .word
                .load(Ordering::Acquire),
        )
    }
    #[inline]
    unsafe fn set_flag(links: *const Links, flag: usize) {
        // SAFETY: as above.
        let c = unsafe { counts_of::<Self>(links) };
        c.word.fetch_or(flag as u64, Ordering::AcqRel);
    }
    #[inline]
    unsafe fn clear_flag(links: *const Links, flag: usize) {
        // SAFETY: as above.
        let c = unsafe { counts_of::<Self>(links) };
        c.word.fetch_and(!(flag as u64), Ordering::AcqRel);
    }

    #[inline]
    fn snapshot(&self) -> u64 {
        self.word.load(Ordering::Acquire)
    }
    #[inline]
    fn strong_of(snapshot: u64) -> usize {
        strong_in(snapshot)
    }
    #[inline]
    fn scan_snapshot(&self) -> u64 {
        let w = self.word.load(Ordering::Acquire);
        if w & VERSION_TOP == 0 {
            return w;
        }
        // The caller is a scan, holding the space lock (`Counts::scan_snapshot`): clear T as
        // the mutators' slow path does, before this reading starts the object's window
        // (I8), so that an object whose last count change set T is not a root for ever.
        self.word.fetch_and(!VERSION_TOP, Ordering::AcqRel) & !VERSION_TOP
    }
    #[inline]
    fn try_condemn(&self, snapshot: u64) -> bool {
        self.word
            .compare_exchange(
                snapshot,
                snapshot | FLAG_CONDEMNED as u64,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }
    #[inline]
    fn uncondemn(&self) {
        self.word
            .fetch_and(!(FLAG_CONDEMNED as u64), Ordering::Release);
    }
    #[inline]
    fn is_condemned(&self) -> bool {
        flags_in(self.word.load(Ordering::Acquire)) & FLAG_CONDEMNED != 0
    }
    unsafe fn commit_garbage(links: *const Links) {
        // SAFETY: per the caller the header is alive with counts of this type.
        let c = unsafe { counts_of::<Self>(links) };
        // Condemned with an exact compare-and-swap, so no thread holds or can create a
        // handle (Lemma A): nobody else changes the word now and the loop runs once. Still a
        // compare-and-swap, not a store (I2), and exact flag arithmetic (the flags may
        // already include `FLAG_WEAKS_CLEARED` from an earlier resurrection).
        // The word is the snapshot the condemnation matched, read with T clear (a word read
        // with T set is a root), so this pin never takes the slow path: the collector holds
        // the space lock, which the slow path would wait for.
        let mut w = c.word.load(Ordering::Acquire);
        debug_assert_eq!(w & VERSION_TOP, 0);
        loop {
            let new = (w.wrapping_add(CLONE) | (FLAG_WEAKS_CLEARED | FLAG_DEAD) as u64)
                & !(FLAG_CONDEMNED as u64);
            match c
                .word
                .compare_exchange(w, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(cur) => w = cur,
            }
        }
    }
}
