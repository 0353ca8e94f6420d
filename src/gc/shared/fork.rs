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
//! The `collection` lock cannot be taken in prepare: its holder runs user `Drop`s, and one of
//! them may be waiting for a lock the forking thread holds. Instead it records its holder,
//! and a child in which another thread held it replaces it by a fresh one
//! ([`CollectionLock::reset_in_child`]); the old one, held for ever, is leaked.
//!
//! The invariant of [`HELD`]: it is only touched by the fork handlers, with the space lock
//! held (prepare stores the guards after taking it; parent and child take them out before
//! releasing it), so by one thread at a time.

use core::cell::UnsafeCell;
use std::sync::{Mutex, MutexGuard};

use crate::sync::unmodelled::{AtomicPtr, AtomicUsize, Ordering};

use super::space::{space, ForkGuards};

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
    // SAFETY: the handlers are `extern "C"` functions with no arguments, valid for the whole
    // process; `pthread_atfork` allocates through libc's own malloc.
    let r = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    // ENOMEM: the space then works as before, without fork handling.
    let _ = r;
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

/// The shared space's `collection` lock (see `SharedSpace::collection`), replaceable in a
/// forked child.
pub(crate) struct CollectionLock {
    /// The mutex in use: leaked, never freed (a replaced one may still be held).
    current: AtomicPtr<Mutex<()>>,
    /// [`thread_tag`] of the thread holding it, 0 if none. Set right after taking the mutex
    /// and cleared right before releasing it, so it may read 0 while a thread holds it; the
    /// child only trusts it to say "the forking thread holds it".
    owner: AtomicUsize,
}

impl CollectionLock {
    pub(crate) fn new() -> Self {
        Self {
            current: AtomicPtr::new(Box::leak(Box::new(Mutex::new(())))),
            owner: AtomicUsize::new(0),
        }
    }

    /// Take the lock (a collection is starting on this thread).
    pub(crate) fn lock(&self) -> MutexGuard<'static, ()> {
        // SAFETY: `current` always points to a leaked mutex, never freed.
        let m: &'static Mutex<()> = unsafe { &*self.current.load(Ordering::Acquire) };
        // Nothing panics while this is held except user `Drop`s, whose panic the teardown
        // leaves consistent; a poisoned lock is used as is.
        let g = m.lock().unwrap_or_else(|e| e.into_inner());
        self.owner.store(thread_tag(), Ordering::Relaxed);
        g
    }

    /// The collection on this thread is ending (its guard is released right after).
    pub(crate) fn leaving(&self) {
        let me = thread_tag();
        let _ = self
            .owner
            .compare_exchange(me, 0, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// `fork()` child handler: unless the forking thread holds the lock (it is inside a
    /// collection, and its guard will release this mutex), install a fresh one. A thread that
    /// did not come along may hold the old one, which then stays locked, unused.
    pub(crate) fn reset_in_child(&self) {
        if self.owner.load(Ordering::Relaxed) == thread_tag() {
            return;
        }
        // SAFETY: as in `lock`.
        let m: &'static Mutex<()> = unsafe { &*self.current.load(Ordering::Acquire) };
        if let Ok(g) = m.try_lock() {
            drop(g); // free: keep it
            return;
        }
        let fresh: &'static Mutex<()> = Box::leak(Box::new(Mutex::new(())));
        self.current
            .store((fresh as *const Mutex<()>).cast_mut(), Ordering::Release);
        self.owner.store(0, Ordering::Relaxed);
    }
}

/// A number that identifies the calling thread among the live ones (the address of a
/// thread-local; the same in a forked child's thread as in the thread it copies). Never 0.
fn thread_tag() -> usize {
    crate::sync::thread_local! {
        static TAG: u8 = const { 0 };
    }
    TAG.with(|t| t as *const u8 as usize)
}
