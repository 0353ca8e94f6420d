//! `fork()` safety: the allocator's locks (the arena manager's and the heap registry's) are
//! taken before a fork and released after it, in the parent and in the child, so a child
//! never inherits one locked by a thread that does not exist there.
//!
//! The handlers are registered when the library is loaded, from a constructor in
//! `.init_array` (`__mod_init_func` on Apple platforms): before `main`, before any thread of
//! the program can fork. Registering them at the first pool request instead (as before issue
//! 13) raced with a concurrent `fork()`: a child forked while another thread was inside
//! `pthread_atfork` inherited "registering" with no thread left to finish, and hung at its
//! first pool request; and a handler registered while a fork was past its prepare step was
//! not run for that fork. The first pool request, a thread's first allocation and `stats()`
//! still call [`register_once`], for the rare allocation that comes before the constructor
//! (another library's constructor), and on platforms without one: that path is made safe by
//! `fork_registration.rs` (a child that inherits a registration in progress redoes it), and
//! the handlers below tolerate being registered twice, which that can cause.
//!
//! The child inherits the other threads' heaps as they were; those threads do not exist in
//! the child, so their heaps stay held and their pools are never reused there (a leak
//! bounded by what they held, as with any thread-caching allocator). Blocks the child frees
//! into them go onto their remote-free lists, which is always safe. The forking thread's own
//! batches of remote frees (`remote_batch.rs`) are its heap's state, consistent whenever it
//! can call `fork()`: the child publishes them as the parent would have.
//!
//! One more window, of the same kind: a remote free is a push onto the pool's remote list
//! (one CAS) and then, by the freer that made the list non-empty, a queueing of the pool on
//! its owner's remote queue (`remote.rs`). A fork that falls between the two, on another
//! thread, leaves the child a pool whose list is non-empty but not queued, with no thread
//! left to queue it: the blocks on that list, and any the child frees onto it later, are not
//! reused in the child (bounded by the pool's 16 KiB; never unsafe: the pool stays owned and
//! counted). Taking the queues' locks in the prepare handler would not close it (the push
//! and the queueing are not under one lock, by design: the push is the remote free's only
//! atomic step).
//!
//! Bound (audit of issue 13): the handlers take and release a fixed set of locks (the
//! registry's, the arenas', the medium spans' 25: `medium_spans.rs`), O(1); nothing walks a
//! structure that grows with the heap or the threads.
//!
//! Not on Unix there is no `fork()`: [`register_once`] registers nothing (and `PoolAlloc`
//! forwards every request to the system allocator there, see `os.rs`).

use super::fork_registration::Registration;
#[cfg(unix)]
use super::global::GLOBAL;
#[cfg(unix)]
use crate::sync::unmodelled::{AtomicUsize, Ordering};

static REGISTRATION: Registration = Registration::new();

/// Registers the handlers at load time (see the module doc). `#[used]` keeps the entry even
/// though nothing names it; rustc keeps `#[used]` statics of a dependency in the link.
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly",
    target_os = "illumos",
    target_os = "solaris"
))]
#[used]
#[link_section = ".init_array"]
static REGISTER_AT_LOAD: extern "C" fn() = register_at_load;

#[cfg(target_vendor = "apple")]
#[used]
#[link_section = "__DATA,__mod_init_func"]
static REGISTER_AT_LOAD: extern "C" fn() = register_at_load;

#[allow(dead_code)] // on platforms with neither section
extern "C" fn register_at_load() {
    register_once();
}

/// Make sure the fork handlers are installed. Returns only once they are: a thread that
/// went on to take an allocator lock while another was still registering could be holding it
/// when a third thread forks, before any prepare handler exists, and the child would inherit
/// it locked.
#[inline]
pub(crate) fn register_once() {
    if REGISTRATION.is_done() {
        return;
    }
    register_slow();
}

#[cold]
#[cfg(unix)]
fn register_slow() {
    REGISTRATION.ensure(
        // SAFETY: getpid has no preconditions.
        || unsafe { libc::getpid() } as u32,
        || {
            // SAFETY: the handlers are `extern "C"` functions with no arguments, valid for the
            // process's life; registration allocates through libc's own malloc, not through
            // us.
            unsafe {
                libc::pthread_atfork(Some(prepare), Some(parent), Some(child));
            }
        },
    );
}

/// No `fork()` on this platform: nothing to register.
#[cold]
#[cfg(not(unix))]
fn register_slow() {
    REGISTRATION.mark_done();
}

/// The thread that holds the allocator's locks for a fork (`pthread_self`), or 0.
#[cfg(unix)]
static HOLDER: AtomicUsize = AtomicUsize::new(0);
/// How many more times the handlers run for the same fork (registered twice, see the module
/// doc). Touched only by the `HOLDER` thread, with the locks held.
#[cfg(unix)]
static NESTED: AtomicUsize = AtomicUsize::new(0);

#[cfg(unix)]
fn this_thread() -> usize {
    // SAFETY: pthread_self has no preconditions.
    unsafe { libc::pthread_self() as usize }
}

#[cfg(unix)]
extern "C" fn prepare() {
    // Only the thread that stored its id can read it back: it holds the locks already (a
    // second registration's prepare for the same fork).
    if HOLDER.load(Ordering::Relaxed) == this_thread() {
        NESTED.store(NESTED.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        return;
    }
    // tracemalloc's shards, then the debug registry's (a snapshot may allocate, under neither;
    // the debug registry's are taken inside allocations, under nothing else), then the
    // registry and the arenas: the same order everywhere (no path holds both anyway).
    crate::tracemalloc::fork_lock();
    super::debug::fork_lock();
    GLOBAL.heaps.lock();
    GLOBAL.arenas.lock();
    super::medium_spans::fork_lock();
    HOLDER.store(this_thread(), Ordering::Relaxed);
}

#[cfg(unix)]
extern "C" fn parent() {
    let nested = NESTED.load(Ordering::Relaxed);
    if nested > 0 {
        NESTED.store(nested - 1, Ordering::Relaxed);
        return;
    }
    HOLDER.store(0, Ordering::Relaxed);
    super::medium_spans::fork_unlock();
    GLOBAL.arenas.unlock();
    GLOBAL.heaps.unlock();
    super::debug::fork_unlock();
    crate::tracemalloc::fork_unlock();
}

#[cfg(unix)]
extern "C" fn child() {
    // The handlers ran in this process image, so they are registered here.
    REGISTRATION.mark_done();
    let nested = NESTED.load(Ordering::Relaxed);
    if nested > 0 {
        NESTED.store(nested - 1, Ordering::Relaxed);
        return;
    }
    HOLDER.store(0, Ordering::Relaxed);
    super::medium_spans::fork_force_unlock();
    GLOBAL.arenas.force_unlock();
    GLOBAL.heaps.force_unlock();
    super::debug::fork_child();
    crate::tracemalloc::fork_child();
}
