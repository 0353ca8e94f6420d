//! `ArenaLists`: the mapped arenas, filed by how many free pools each has, so that the
//! fullest arena with a free pool is found in O(1).
//!
//! CPython keeps `usable_arenas` sorted by free pools and finds where an arena moves with
//! `nfp2lasta` (the last arena of each count). The counts here are small (0 to
//! [`USABLE_POOLS`]), so instead there is one doubly linked list per count and a bitmask of
//! the counts whose list is not empty: the fullest arena with a free pool is the head of the
//! list of the lowest set bit above 0 (one `trailing_zeros`), and an arena whose count changes
//! by one moves between two lists (an unlink and a push). Every operation is O(1); nothing
//! walks the arenas but [`ArenaLists::for_each`] (statistics and model checks).
//!
//! Within one count the lists are LIFO: the arena that most recently reached the count is
//! taken first. Arenas whose pools are all free are on the list of [`USABLE_POOLS`], the last
//! one chosen, and the one the manager unmaps from (`ArenaManager::release_pool`).

use super::pool::{pool_header, Pool, HEADERS_OFFSET, METADATA_POOLS};
use super::size_class::POOLS_PER_ARENA;
use core::ptr;

/// How many empty arenas the choice of one looks at (`ArenaLists::dirtiest_empty`): a bound
/// on the work under the lock.
pub(super) const EMPTY_SCAN: usize = 32;

/// Pools of an arena that hold blocks.
pub(super) const USABLE_POOLS: usize = POOLS_PER_ARENA - METADATA_POOLS;

const _: () = assert!(USABLE_POOLS < 64); // every count has a bit in a u64

/// The header of an arena, at its first byte. All fields are guarded by the manager's lock.
pub(super) struct Arena {
    /// Pools given back to this arena, linked through `Pool::next` (resident memory, unless
    /// purged: see `dirty`).
    pub(super) free_pools: *mut Pool,
    /// The last pool on `free_pools`, null when it is empty: where the pools a large block
    /// gives back are appended (`large_blocks::give_range`) without a walk of the list.
    pub(super) free_tail: *mut Pool,
    /// Pools `untouched..end` were never handed out: still zero OS memory. `untouched <= end`.
    pub(super) untouched: usize,
    /// Pools `end..POOLS_PER_ARENA` are the head of a large block (`large_blocks.rs`): not
    /// free, not handed out to a heap, on no list. [`POOLS_PER_ARENA`] when the arena holds no
    /// large block, as it always does under loom.
    pub(super) end: usize,
    /// Free pools: those on `free_pools` plus the untouched ones. The arena is on the list of
    /// this count (`ArenaLists::by_free[nfree]`). Below [`USABLE_POOLS`] while `end` is below
    /// [`POOLS_PER_ARENA`]: an arena holding a large block is never empty.
    pub(super) nfree: usize,
    /// Links in that list.
    prev: *mut Arena,
    next: *mut Arena,
    /// Bit `i`: pool `i` is on `free_pools` with its memory still resident (not purged).
    /// Managed by `purge.rs`, as are the three fields below.
    pub(super) dirty: u64,
    /// When `dirty` last went from empty to not empty (`os::now_ms`).
    pub(super) dirty_since: u64,
    /// Links in the queue of arenas with dirty pools (`purge::DirtyArenas`), oldest first.
    pub(super) dirty_prev: *mut Arena,
    pub(super) dirty_next: *mut Arena,
}

const _: () = assert!(core::mem::size_of::<Arena>() <= HEADERS_OFFSET);

impl Arena {
    /// Whether the arena is the head of a one-arena large block and nothing else: the block
    /// ends the arena (`end` below [`POOLS_PER_ARENA`]) and spans no other arena, and every
    /// pool below it is free (none handed out to a heap). `ArenaManager::pick_arena` passes
    /// such an arena over for pools. Never true under loom, where no arena holds a large
    /// block.
    ///
    /// # Safety
    /// The manager's lock is held and the arena is mapped (the header of its pool `end` is
    /// initialized when `end` is below [`POOLS_PER_ARENA`]: `large_blocks.rs`).
    pub(super) unsafe fn is_bare_block_head(&self) -> bool {
        if self.end == POOLS_PER_ARENA || self.nfree != self.end - METADATA_POOLS {
            return false;
        }
        let base = (self as *const Arena).cast_mut().cast::<u8>();
        // SAFETY: the block's first pool header, initialized (caller's contract); its
        // `capacity` is the block's arena count (`large_blocks.rs`).
        unsafe { (*pool_header(base, self.end)).capacity.get() == 1 }
    }

    /// A fresh arena's header: every usable pool untouched, on no list yet.
    pub(super) fn fresh() -> Arena {
        Arena {
            free_pools: ptr::null_mut(),
            free_tail: ptr::null_mut(),
            untouched: METADATA_POOLS,
            end: POOLS_PER_ARENA,
            nfree: USABLE_POOLS,
            prev: ptr::null_mut(),
            next: ptr::null_mut(),
            dirty: 0,
            dirty_since: 0,
            dirty_prev: ptr::null_mut(),
            dirty_next: ptr::null_mut(),
        }
    }
}

/// # Invariants (all under the manager's lock)
/// * Every mapped arena is on exactly one list, `by_free[a.nfree]`, and the lists hold
///   nothing else; `prev`/`next` are consistent.
/// * Bit `n` of `nonempty` is set exactly when `by_free[n]` is not empty.
/// * `empty` is the length of `by_free[USABLE_POOLS]` (arenas whose pools are all free).
pub(super) struct ArenaLists {
    by_free: [*mut Arena; USABLE_POOLS + 1],
    nonempty: u64,
    pub(super) empty: usize,
}

impl ArenaLists {
    pub(super) const fn new() -> ArenaLists {
        ArenaLists {
            by_free: [ptr::null_mut(); USABLE_POOLS + 1],
            nonempty: 0,
            empty: 0,
        }
    }

    /// The fullest arena with a free pool, or null. O(1).
    pub(super) fn fullest_with_free_pool(&self) -> *mut Arena {
        let with_free = self.nonempty & !1;
        if with_free == 0 {
            return ptr::null_mut();
        }
        self.by_free[with_free.trailing_zeros() as usize]
    }

    /// An arena whose pools are all free, or null. O(1).
    pub(super) fn an_empty_arena(&self) -> *mut Arena {
        self.by_free[USABLE_POOLS]
    }

    /// Visit the arenas with at least `min_free` free pools, the fullest first, until `visit`
    /// returns `true` or `limit` arenas were visited. Returns how many were visited. O(`limit`
    /// plus the counts skipped, at most [`USABLE_POOLS`]).
    ///
    /// # Safety
    /// Lock held (the arenas on the lists are mapped); `visit` does not change the lists.
    pub(super) unsafe fn visit_with_free(
        &self,
        min_free: usize,
        limit: usize,
        mut visit: impl FnMut(*mut Arena) -> bool,
    ) -> usize {
        let mut seen = 0;
        let mut counts = self.nonempty & !(u64::MAX >> (64 - min_free.max(1)));
        while counts != 0 && seen < limit {
            let n = counts.trailing_zeros() as usize;
            counts &= counts - 1;
            let mut a = self.by_free[n];
            while !a.is_null() && seen < limit {
                seen += 1;
                if visit(a) {
                    return seen;
                }
                // SAFETY: on the lists, hence mapped (lock held: caller).
                a = unsafe { (*a).next };
            }
        }
        seen
    }

    /// Of the first `limit` arenas on the list of empty ones, the one with the most dirty
    /// (resident) pools, the first fully dirty one at once, and how many it looked at; null if
    /// there is no empty arena. For a new pool or a large block: whatever takes an empty arena
    /// ends up writing its pools, and resident ones spare it page faults and leave the clean
    /// arenas clean (and out of the resident set). O(`limit`).
    ///
    /// # Safety
    /// Lock held (the arenas on the lists are mapped).
    pub(super) unsafe fn dirtiest_empty(&self, limit: usize) -> (*mut Arena, usize) {
        let mut best: *mut Arena = ptr::null_mut();
        let mut best_dirty = 0;
        let mut a = self.by_free[USABLE_POOLS];
        let mut seen = 0;
        while !a.is_null() && seen < limit {
            // SAFETY: on the lists, hence mapped (lock held: caller).
            let (dirty, next) = unsafe { ((*a).dirty.count_ones() as usize, (*a).next) };
            if best.is_null() || dirty > best_dirty {
                best = a;
                best_dirty = dirty;
                if dirty == USABLE_POOLS {
                    break;
                }
            }
            a = next;
            seen += 1;
        }
        (best, seen.max(1))
    }

    /// File `arena` (mapped, on no list) under its `nfree`.
    ///
    /// # Safety
    /// `arena` is a mapped arena on no list; the caller holds the lock.
    pub(super) unsafe fn push(&mut self, arena: *mut Arena) {
        // SAFETY: caller's contract; arenas on the lists are mapped.
        unsafe {
            let n = (*arena).nfree;
            let head = self.by_free[n];
            (*arena).prev = ptr::null_mut();
            (*arena).next = head;
            if !head.is_null() {
                (*head).prev = arena;
            }
            self.by_free[n] = arena;
            self.nonempty |= 1 << n;
            if n == USABLE_POOLS {
                self.empty += 1;
            }
        }
    }

    /// Take `arena` off its list.
    ///
    /// # Safety
    /// `arena` is on the list of its `nfree`; the caller holds the lock.
    pub(super) unsafe fn unlink(&mut self, arena: *mut Arena) {
        // SAFETY: caller's contract; its neighbours are on the same list, hence mapped.
        unsafe {
            let n = (*arena).nfree;
            let (prev, next) = ((*arena).prev, (*arena).next);
            if prev.is_null() {
                self.by_free[n] = next;
                if next.is_null() {
                    self.nonempty &= !(1 << n);
                }
            } else {
                (*prev).next = next;
            }
            if !next.is_null() {
                (*next).prev = prev;
            }
            if n == USABLE_POOLS {
                self.empty -= 1;
            }
        }
    }

    /// Change `arena`'s free-pool count to `nfree`, moving it to that list. O(1).
    ///
    /// # Safety
    /// As for [`unlink`](Self::unlink); `nfree <= USABLE_POOLS`.
    pub(super) unsafe fn set_nfree(&mut self, arena: *mut Arena, nfree: usize) {
        // SAFETY: forwarded contract.
        unsafe {
            self.unlink(arena);
            (*arena).nfree = nfree;
            self.push(arena);
        }
    }

    /// Call `f` with every arena on the lists (the only walk over all arenas: statistics and
    /// model checks). `f` must not change the lists.
    ///
    /// # Safety
    /// The caller holds the lock.
    pub(super) unsafe fn for_each(&self, mut f: impl FnMut(*mut Arena)) {
        for &head in &self.by_free {
            let mut a = head;
            while !a.is_null() {
                // SAFETY: arenas on the lists are mapped (caller holds the lock).
                let next = unsafe { (*a).next };
                f(a);
                a = next;
            }
        }
    }

    /// Loom models only: check the invariants above, panicking on a violation. Returns the
    /// number of arenas.
    ///
    /// # Safety
    /// The caller holds the lock.
    #[cfg(loom)]
    pub(super) unsafe fn check(&self) -> usize {
        let (mut arenas, mut empty) = (0, 0);
        for (n, &head) in self.by_free.iter().enumerate() {
            assert_eq!(
                self.nonempty & (1 << n) != 0,
                !head.is_null(),
                "arena lists: bit {n} of the mask disagrees with its list"
            );
            let mut prev: *mut Arena = ptr::null_mut();
            let mut a = head;
            while !a.is_null() {
                // SAFETY: arenas on the lists are mapped (caller holds the lock).
                let h = unsafe { &*a };
                assert_eq!(h.prev, prev, "arena lists: broken back link");
                assert_eq!(
                    h.nfree, n,
                    "arena lists: arena on the list of another count"
                );
                arenas += 1;
                if n == USABLE_POOLS {
                    empty += 1;
                }
                assert!(arenas < 1 << 20, "arena lists: a list cycles");
                prev = a;
                a = h.next;
            }
        }
        assert_eq!(empty, self.empty, "arena lists: empty arenas miscounted");
        arenas
    }
}
