//! `ArenaMap`: which addresses belong to pyheap's arenas.
//!
//! A small request is normally served from a pool, but it may also have gone to the system
//! allocator (no arena could be mapped, or the thread's heap was already torn down). `dealloc`
//! tells the two apart with this map: one bit per possible arena (arenas are aligned to
//! [`ARENA_SIZE`]), for the 48-bit user address space, so 2^28 bits = 32 MiB of address space.
//!
//! **Memory.** The map is mapped read-only ([`os::map_read_only`]): a read of a page never
//! written costs nothing (the OS's shared zero page), so the map may be read at any address
//! below [`ADDRESS_LIMIT`], a foreign pointer's too. It is made writable in chunks of
//! [`CHUNK_BYTES`] ([`os::commit`]), each when the first arena whose bit it holds is
//! registered: only those become resident (usually one: a chunk's bits cover 512 GiB of
//! address space). Mapped writable as a whole, as before session 34, the map was populated in
//! full (32 MiB, locked) in a program that called `mlockall(MCL_CURRENT | MCL_FUTURE)`, and
//! could be backed by a 2 MiB huge page for one bit where transparent huge pages are always
//! on.
//!
//! Invariant: a bit is set before any block of its arena is handed out, and cleared only after
//! every pool of the arena went back to the arena manager, i.e. when no block of it is live. A
//! thread holding a live block therefore always sees its bit set. A chunk's bit in `committed`
//! is set only after the chunk was made writable, and is never cleared: a word is written
//! only where its chunk's bit was seen set, or by the thread that just made it writable.
//!
//! Bound (audit of issue 13): every operation is one word (a load, a `fetch_or`, a
//! `fetch_and`) at an index computed from the address, plus, on registration, one word of
//! `committed` (and one system call the first time a chunk is used); nothing ever walks the
//! map, however many arenas there are. Its size is fixed (32 MiB of address space, resident
//! only where arenas are).

use super::os;
use super::size_class::ARENA_SIZE;
// Not loom's atomics: the map is zeroed OS memory read as `AtomicU64`s, and its bits are only
// consulted for addresses of live blocks, whose registration happened before the block was
// handed out. Loom has nothing to explore here. The same goes for `committed`: its one
// protocol (a chunk's bit published with Release after the `mprotect`, read with Acquire before
// a write) orders a system call, which loom does not model; two threads that both find the
// bit clear both make the chunk writable, which is harmless.
use crate::sync::unmodelled::{AtomicPtr, AtomicU64, Ordering};
use core::ptr;

/// Addresses at or above this are never used for arenas.
pub(crate) const ADDRESS_LIMIT: usize = 1 << 48;
const ARENA_SHIFT: u32 = ARENA_SIZE.trailing_zeros();
const WORDS: usize = (ADDRESS_LIMIT >> ARENA_SHIFT) / 64;
const MAP_BYTES: usize = WORDS * core::mem::size_of::<u64>();
/// The map is made writable in chunks of this many bytes (a multiple of every page size in
/// use: 4, 16 and 64 KiB), each holding the bits of 512 GiB of address space.
const CHUNK_BYTES: usize = 64 * 1024;
const CHUNKS: usize = MAP_BYTES / CHUNK_BYTES;

pub(crate) struct ArenaMap {
    /// Null until the first arena is registered, then `WORDS` zero-initialized `AtomicU64`s,
    /// readable everywhere, writable in the chunks of `committed`.
    words: AtomicPtr<AtomicU64>,
    /// Bit `c`: chunk `c` of the words was made writable (see the module's invariant).
    committed: [AtomicU64; CHUNKS / 64],
}

impl ArenaMap {
    pub(crate) const fn new() -> ArenaMap {
        ArenaMap {
            words: AtomicPtr::new(ptr::null_mut()),
            committed: [const { AtomicU64::new(0) }; CHUNKS / 64],
        }
    }

    /// Whether `p` lies in an arena that is registered now.
    #[inline]
    pub(crate) fn contains(&self, p: *const u8) -> bool {
        let words = self.words.load(Ordering::Acquire);
        // SAFETY: `words` is null or this map's words, which live as long as the map.
        !words.is_null() && unsafe { Self::contains_in(words, p) }
    }

    /// The map's words, mapping them first if need be (null if that fails). Heaps keep this
    /// pointer so that `free` tests a block's bit without loading it again.
    pub(crate) fn words(&self) -> *const AtomicU64 {
        self.words_or_map()
    }

    /// `contains`, given the map's words.
    ///
    /// # Safety
    /// `words` came from [`ArenaMap::words`] of a map that still lives (the process's map is
    /// never unmapped).
    #[inline(always)]
    pub(crate) unsafe fn contains_in(words: *const AtomicU64, p: *const u8) -> bool {
        let addr = p as usize;
        if addr >= ADDRESS_LIMIT {
            return false;
        }
        let index = addr >> ARENA_SHIFT;
        // SAFETY: `index / 64 < WORDS` because `addr < ADDRESS_LIMIT`; the words live as long
        // as the map (caller's contract).
        let word = unsafe { &*words.add(index / 64) };
        word.load(Ordering::Relaxed) & (1 << (index % 64)) != 0
    }

    /// Mark the arena at `base` as registered. Returns false if the map cannot be mapped, or
    /// the chunk holding the arena's bit cannot be made writable.
    pub(crate) fn insert(&self, base: *mut u8) -> bool {
        let words = self.words_or_map();
        if words.is_null() {
            return false;
        }
        let index = base as usize >> ARENA_SHIFT;
        if !self.commit_chunk_of(words, index / 64) {
            return false;
        }
        // SAFETY: as in `contains`; callers pass arena bases below ADDRESS_LIMIT.
        let word = unsafe { &*words.add(index / 64) };
        word.fetch_or(1 << (index % 64), Ordering::Release);
        true
    }

    /// Unregister the arena at `base` (registered by `insert`).
    pub(crate) fn remove(&self, base: *mut u8) {
        let words = self.words.load(Ordering::Acquire);
        let index = base as usize >> ARENA_SHIFT;
        // SAFETY: `insert` succeeded for this base, so the map exists and the index is in it.
        let word = unsafe { &*words.add(index / 64) };
        word.fetch_and(!(1 << (index % 64)), Ordering::Release);
    }

    /// Make sure the chunk holding word `word` is writable (see the module's invariant).
    /// Two threads may both make it writable: the second call changes nothing.
    fn commit_chunk_of(&self, words: *mut AtomicU64, word: usize) -> bool {
        let chunk = word * core::mem::size_of::<u64>() / CHUNK_BYTES;
        let (slot, bit) = (&self.committed[chunk / 64], 1u64 << (chunk % 64));
        // Acquire: pairs with the Release below, so the `mprotect` is done before our write.
        if slot.load(Ordering::Acquire) & bit != 0 {
            return true;
        }
        // SAFETY: chunk `chunk` of the words lies inside the map (`word < WORDS`), which is
        // ours for the process's life.
        let at = unsafe { words.cast::<u8>().add(chunk * CHUNK_BYTES) };
        if !os::commit(at, CHUNK_BYTES) {
            return false;
        }
        slot.fetch_or(bit, Ordering::Release);
        true
    }

    fn words_or_map(&self) -> *mut AtomicU64 {
        let words = self.words.load(Ordering::Acquire);
        if !words.is_null() {
            return words;
        }
        let fresh = os::map_read_only(MAP_BYTES).cast::<AtomicU64>();
        if fresh.is_null() {
            return fresh;
        }
        match self.words.compare_exchange(
            ptr::null_mut(),
            fresh,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => fresh,
            Err(winner) => {
                os::unmap(fresh.cast(), MAP_BYTES);
                winner
            }
        }
    }
}

#[cfg(loom)]
impl Drop for ArenaMap {
    fn drop(&mut self) {
        let words = self.words.load(Ordering::Acquire);
        if !words.is_null() {
            os::unmap(words.cast(), MAP_BYTES);
        }
    }
}
