//! Binding a heap to the calling thread.
//!
//! Two thread-locals, neither of which allocates when touched:
//!
//! * `HEAP`, a thread-local word with no destructor (`tls_words.rs`, which the fast paths read
//!   without a call), so it stays readable for the whole life of the thread, including while
//!   other thread-locals are being destroyed. Null: no heap yet;
//!   `DEAD`: the heap was given up at thread exit; anything else: the heap this thread holds.
//! * `EXIT`, a `const`-initialized `thread_local!` guard whose destructor abandons the heap when the thread exits. It is touched
//!   (which registers the destructor with the C runtime) only after `HEAP` is set, so an
//!   allocation made while registering finds the heap already bound.
//!
//! After exit, the thread allocates from the system allocator and frees pool blocks through
//! their pools' remote-free lists: both work without a heap.

use super::global::GLOBAL;
use super::heap::Heap;
use super::tls_words;
use crate::sync::unmodelled::AtomicU64;
use crate::sync::Ordering;
use core::cell::Cell;
use core::ptr;

const DEAD: *mut Heap = 1 as *mut Heap;

/// Frees a thread with no heap makes (none of them adopting the freed block's heap) before
/// the next one binds a heap as an allocation does (see [`heap_for_free`]).
const FREES_BEFORE_BIND: u32 = 8;

// `HEAP` and `MAP_WORDS` (a copy of the bound heap's `map_words()`, so that `free` loads the
// arena map's words in parallel with the heap instead of through it) are `tls_words`'s two
// words, read by the fast paths without a call.
thread_local! {
    /// Frees made with no heap bound (`heap_for_free`), up to `FREES_BEFORE_BIND`.
    static UNBOUND_FREES: Cell<u32> = const { Cell::new(0) };
    static EXIT: ExitGuard = const { ExitGuard };
}

struct ExitGuard;

impl Drop for ExitGuard {
    fn drop(&mut self) {
        let heap = tls_words::heap();
        tls_words::set_heap(DEAD);
        if heap as usize > DEAD as usize {
            // SAFETY: this thread holds `heap` and, with HEAP set to DEAD, never touches it
            // again. Its medium blocks go back to `free` first: an abandoned heap caches none
            // (`medium_cache.rs`).
            unsafe {
                (*heap).medium.flush();
                (*heap).release_large_cache();
                (*heap).large.forget_misses();
                GLOBAL.heaps.abandon(&*heap);
            }
        }
    }
}

/// The calling thread's heap if it has one bound now, else null; never binds. For the fast
/// paths, which leave every other case to the slow ones.
#[inline(always)]
pub(crate) fn bound_heap() -> *mut Heap {
    let heap = tls_words::heap();
    if heap as usize > DEAD as usize {
        heap
    } else {
        ptr::null_mut()
    }
}

/// The calling thread's `HEAP` as it is: its heap, or null or `DEAD` (see [`is_heap`]). For
/// the free fast path, which compares it with a pool's owner (never null or `DEAD`) and so
/// needs no test of its own.
#[inline(always)]
pub(crate) fn raw_heap() -> *mut Heap {
    tls_words::heap()
}

/// Whether a value of [`raw_heap`] is a heap.
#[inline(always)]
pub(crate) fn is_heap(heap: *mut Heap) -> bool {
    heap as usize > DEAD as usize
}

/// Give the calling thread's cached medium blocks back to `free`, and its kept large blocks
/// and spare pools to the arenas, if it has a heap (`medium_cache.rs`, `large_cache.rs`,
/// `Heap`'s spares): for `purge()`.
pub(crate) fn flush_medium_cache() {
    let heap = bound_heap();
    if !heap.is_null() {
        // SAFETY: the calling thread holds its bound heap.
        unsafe {
            (*heap).medium.flush();
            (*heap).release_large_cache();
            (*heap).release_spare_pools();
        }
    }
}

/// Publish the calling thread's batches of remote frees, if it has a heap
/// (`remote_batch.rs`): for `stats()` and `purge()`, so that what the caller freed shows in
/// the pools and heaps it reports or purges.
pub(crate) fn flush_remote_batches() {
    let heap = bound_heap();
    if !heap.is_null() {
        // SAFETY: the calling thread holds its bound heap.
        unsafe { (*heap).flush_remote_batches() };
    }
}

/// The arena map's words of the bound heap (meaningful only when `bound_heap()` is not null).
#[inline(always)]
pub(crate) fn bound_map_words() -> *const AtomicU64 {
    tls_words::map_words()
}

/// The calling thread's heap, binding one on first use. Null after the thread's heap was
/// given up at exit, or if no heap could be mapped.
#[inline(always)]
pub(crate) fn heap() -> *mut Heap {
    let heap = tls_words::heap();
    if heap as usize > DEAD as usize {
        heap
    } else {
        bind_slow(heap)
    }
}

/// The calling thread's heap, for freeing `block`, a live block of one of the arenas. A
/// thread with no heap yet binds one here only by adopting the heap that owns `block`'s
/// pool, if that is an abandoned heap nobody holds (`HeapRegistry::adopt_for_free`), so that
/// a thread whose first act is to free an exited thread's blocks carries on with that
/// thread's heap. Otherwise null: the caller frees the block without a heap (as after the
/// thread's exit), and the thread binds a heap when it first allocates, or at its
/// [`FREES_BEFORE_BIND`]th free (a thread that only frees other threads' blocks then frees
/// them through its heap, as before, not each through the slower heapless path).
///
/// # Safety
/// `block` is a live block of one of `GLOBAL`'s arenas (so its pool's owner is a live heap,
/// Pool and Heap invariants), not freed before this returns.
#[inline]
pub(crate) unsafe fn heap_for_free(block: *mut u8) -> *mut Heap {
    let heap = tls_words::heap();
    if heap as usize > DEAD as usize {
        return heap;
    }
    if heap == DEAD {
        return ptr::null_mut();
    }
    // SAFETY: forwarded contract.
    unsafe { adopt_for_free(block) }
}

/// `heap_for_free` for a thread with no heap (`HEAP` null).
///
/// # Safety
/// As for `heap_for_free`.
#[cold]
#[inline(never)]
unsafe fn adopt_for_free(block: *mut u8) -> *mut Heap {
    // SAFETY: the block is live, so its pool is initialized and owned by a live heap, which
    // stays that pool's owner while the block is live (caller's contract).
    let owner = unsafe { (*super::pool::pool_of(block)).owner.load(Ordering::Relaxed) };
    // Before a heap is bound: see `bind_slow`.
    super::fork::register_once();
    // SAFETY: `owner` is the owner of a pool we hold a live block of.
    let heap = unsafe { GLOBAL.heaps.adopt_for_free(owner.cast::<Heap>()) };
    if !heap.is_null() {
        return bound(heap);
    }
    let frees = UNBOUND_FREES.with(|n| {
        n.set(n.get() + 1);
        n.get()
    });
    if frees < FREES_BEFORE_BIND {
        return heap;
    }
    bind_slow(ptr::null_mut())
}

#[cold]
#[inline(never)]
fn bind_slow(current: *mut Heap) -> *mut Heap {
    if current == DEAD {
        return ptr::null_mut();
    }
    // Normally done at load time already (see `fork.rs`). Every heap is bound here, so this
    // comes before any pool request, which takes the arena lock the handlers take.
    super::fork::register_once();
    let heap = GLOBAL.heaps.bind(&GLOBAL, &GLOBAL.map);
    if heap.is_null() {
        return heap;
    }
    bound(heap)
}

/// Make `heap`, which the registry just bound for the calling thread (which had none), the
/// thread's heap. Returns it, or null if the thread is past destroying its thread-locals.
fn bound(heap: *mut Heap) -> *mut Heap {
    // SAFETY: a heap the registry just bound for us.
    tls_words::set_map_words(unsafe { (*heap).map_words() });
    tls_words::set_heap(heap);
    // Registers the exit guard's destructor; may allocate, which now finds the heap bound.
    // If the thread is already past destroying its thread-locals, `try_with` fails and the
    // heap is abandoned right here instead: it cannot be held by a thread that cannot exit
    // cleanly.
    if EXIT.try_with(|_| ()).is_err() {
        tls_words::set_heap(DEAD);
        // SAFETY: we hold the heap and gave up the binding above.
        unsafe { GLOBAL.heaps.abandon(&*heap) };
        return ptr::null_mut();
    }
    heap
}
