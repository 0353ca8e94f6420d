//! `fork()` and the shared object space (not under loom).
//!
//! A child process has one thread, a copy of the one that called `fork()`. Every lock another
//! thread held at that moment stays held in the child for ever, and pyheap's collector thread
//! does not exist there. So, through `pthread_atfork` handlers registered when the space is
//! created:
//!
//! * **prepare** (in the forking thread): take every lock of the space
//!   ([`SharedSpace::lock_for_fork`]: the space lock, the shards, the leaf locks), which waits
//!   at most for a running scan, and keep the guards in [`HELD`];
//! * **parent**: release them;
//! * **child**: forget the threads that did not come along
//!   ([`SharedSpace::after_fork_in_child`]), then release the locks.
//!
//! No pyheap lock is held while user code runs (a teardown holds none), so prepare never
//! waits for user code.
//!
//! The invariant of [`HELD`]: it is only touched by the fork handlers, with the space lock
//! held (prepare stores the guards after taking it; parent and child take them out before
//! releasing it), so by one thread at a time.

use super::space::{space, ForkGuards};
use core::cell::UnsafeCell;

/// The guards the forking thread holds between prepare and parent/child (see the module's
/// invariant).
struct Held(UnsafeCell<Option<ForkGuards>>);

// SAFETY: only the fork handlers touch the cell, one thread at a time (the module's
// invariant); the guards are released by the thread that took them (in the parent) or by its
// copy (in the child).
unsafe impl Sync for Held {}

static HELD: Held = Held(UnsafeCell::new(None));

/// Install the handlers (once per process; called when the space is created).
pub(crate) fn register() {
    #[cfg(unix)]
    {
        // SAFETY: the handlers are `extern "C"` functions with no arguments, valid for the
        // whole process; `pthread_atfork` allocates through libc's own malloc.
        let r = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
        // ENOMEM: the space then works as before, without fork handling.
        let _ = r;
    }
    // No `fork()` on this platform: the handlers are never called.
    #[cfg(not(unix))]
    let _: [extern "C" fn(); 3] = [prepare, parent, child];
}

extern "C" fn prepare() {
    let guards = space().lock_for_fork();
    // SAFETY: the module's invariant: we hold the space lock (in `guards`).
    unsafe { *HELD.0.get() = Some(guards) };
}

extern "C" fn parent() {
    // SAFETY: the module's invariant: prepare stored the guards, we still hold them.
    let guards = unsafe { (*HELD.0.get()).take() };
    drop(guards);
}

extern "C" fn child() {
    // SAFETY: as in `parent` (the child's one thread is the forking thread's copy).
    let guards = unsafe { (*HELD.0.get()).take() };
    if let Some(mut g) = guards {
        space().after_fork_in_child(&mut g);
        drop(g);
    }
}
