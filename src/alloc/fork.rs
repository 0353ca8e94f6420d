//! `fork()` safety: the arena manager's lock is taken before a fork and released after it, in
//! the parent and in the child, so a child never inherits it locked by a thread that does not
//! exist there.
//!
//! The child inherits the other threads' heaps as they were; those threads do not exist in
//! the child, so their heaps stay `ACTIVE` and their pools are never reused there (a leak
//! bounded by what they held, as with any thread-caching allocator). Blocks the child frees
//! into them go onto their remote-free lists, which is always safe.

use super::global::GLOBAL;
use crate::sync::unmodelled::{AtomicBool, Ordering};

static REGISTERED: AtomicBool = AtomicBool::new(false);

/// Install the fork handlers the first time an arena is needed.
#[inline]
pub(crate) fn register_once() {
    if REGISTERED.load(Ordering::Relaxed) || REGISTERED.swap(true, Ordering::AcqRel) {
        return;
    }
    // SAFETY: the handlers are `extern "C"` functions with no arguments, valid for the
    // process's life; registration allocates through libc's own malloc, not through us.
    unsafe {
        libc::pthread_atfork(Some(prepare), Some(parent), Some(child));
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
