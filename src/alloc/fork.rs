//! `fork()` safety: the arena manager's lock is taken before a fork and released after it, in
//! the parent and in the child, so a child never inherits it locked by a thread that does not
//! exist there.
//!
//! The child inherits the other threads' heaps as they were; those threads do not exist in
//! the child, so their heaps stay `ACTIVE` and their pools are never reused there (a leak
//! bounded by what they held, as with any thread-caching allocator). Blocks the child frees
//! into them go onto their remote-free lists, which is always safe.

use super::global::GLOBAL;
use crate::sync::unmodelled::{AtomicU8, Ordering};

/// 0: not registered; 1: a thread is registering; 2: registered.
static REGISTERED: AtomicU8 = AtomicU8::new(0);

/// Install the fork handlers the first time an arena is needed. Returns only once they are
/// installed: a thread that went on to take the arena lock while another was still
/// registering could be holding it when a third thread forks, before any prepare handler
/// exists, and the child would inherit it locked.
#[inline]
pub(crate) fn register_once() {
    if REGISTERED.load(Ordering::Acquire) == 2 {
        return;
    }
    register_slow();
}

#[cold]
fn register_slow() {
    if REGISTERED
        .compare_exchange(0, 1, Ordering::Acquire, Ordering::Acquire)
        .is_ok()
    {
        // SAFETY: the handlers are `extern "C"` functions with no arguments, valid for the
        // process's life; registration allocates through libc's own malloc, not through us.
        unsafe {
            libc::pthread_atfork(Some(prepare), Some(parent), Some(child));
        }
        REGISTERED.store(2, Ordering::Release);
        return;
    }
    let mut round = 0;
    while REGISTERED.load(Ordering::Acquire) != 2 {
        crate::sync::spin_wait(round);
        round = round.saturating_add(1);
    }
}

extern "C" fn prepare() {
    GLOBAL.arenas.lock();
}

extern "C" fn parent() {
    GLOBAL.arenas.unlock();
}

extern "C" fn child() {
    GLOBAL.arenas.force_unlock();
}
