//! The single-thread space's collections when its thread exits: its garbage cycles must not
//! outlive it (no other thread can collect that space), whatever the order in which the
//! thread's `thread_local!`s are destroyed.
//!
//! Rust runs thread-local destructors newest first (with glibc, through
//! `__cxa_thread_atexit_impl`). A destructor registered when the space is first used runs
//! before those of thread-locals touched earlier; if one of those holds the last handle to a
//! cycle, that cycle becomes garbage after the collection (issue 12: 200 threads × a 2-node
//! cycle leaked 26 MB). So two hooks, both armed when the space is first used:
//!
//! 1. [`EXIT_GUARD`], a Rust thread-local destructor: a full collection, among the other
//!    thread-local destructors. It is the one that runs for the main thread, whose
//!    thread-locals are destroyed by `exit()` (pthread key destructors are not run there).
//! 2. A pthread key destructor, which glibc runs after *all* of the thread's Rust
//!    thread-local destructors (`start_thread`: `__call_tls_dtors`, then
//!    `__nptl_deallocate_tsd`): one more full collection for whatever they released.
//!
//! Both tear down the garbage waiting for a safe point too. The space itself has no
//! destructor, so it is valid in both. A `Drop` run there that uses a thread-local already
//! destroyed panics; the panic is reported and the collection goes on (`gc::panics`).
//!
//! One more order to survive (found by the fuzzer): a finalizer or `Drop` run by the last
//! collection that touches a thread-local for the first time registers its destructor after
//! glibc has run the thread's list of them, so it would never run, and a cycle it holds (a
//! finalizer resurrecting its object into a `thread_local!` stash) would outlive the thread.
//! So the key's destructor alternates: collect, then run the destructors registered since
//! (glibc's `__call_tls_dtors`, looked up at run time; it is what `start_thread` calls), at
//! least twice (a finalizer that resurrects into a new thread-local frees nothing in the
//! first round), then until a collection frees nothing (at most `EXIT_ROUNDS` rounds).
//!
//! Not on Unix there are no pthread keys: only the first hook runs, so a cycle released by
//! a thread-local destroyed after the guard's collection outlives its thread (a leak).

#[cfg(unix)]
use crate::sync::unmodelled::{AtomicUsize, Ordering};

use super::space::with_space;

/// Arm both exit hooks for the calling thread (the space's first use on it).
pub(crate) fn arm() {
    // If the thread is already destroying its thread-locals, the guard is gone: the key's
    // destructor still runs.
    let _ = EXIT_GUARD.try_with(|_| ());
    #[cfg(unix)]
    arm_key();
}

std::thread_local! {
    /// Its destructor runs the thread's first exit collection.
    static EXIT_GUARD: ExitGuard = const { ExitGuard };
}

/// Runs a full collection of this thread's space when its thread-locals are destroyed.
struct ExitGuard;

impl Drop for ExitGuard {
    fn drop(&mut self) {
        // Like CPython's collection at interpreter shutdown, this runs even if automatic
        // collection is disabled.
        with_space(|s| s.exit_collection());
    }
}

/// The pthread key whose destructor runs the last collection, plus one (0: not created yet;
/// `usize::MAX`: creation failed, only the first hook runs).
#[cfg(unix)]
static KEY: AtomicUsize = AtomicUsize::new(0);

/// Give this thread a non-null value under the key, so that its destructor runs at exit.
#[cfg(unix)]
fn arm_key() {
    let Some(key) = key() else {
        return;
    };
    // SAFETY: `key` is a key `pthread_key_create` gave; the value is never dereferenced (a
    // non-null marker).
    unsafe { libc::pthread_setspecific(key, core::ptr::NonNull::<u8>::dangling().as_ptr().cast()) };
}

/// The process's key, created on first use (racing creators keep the first one published).
#[cfg(unix)]
fn key() -> Option<libc::pthread_key_t> {
    let k = KEY.load(Ordering::Acquire);
    if k == usize::MAX {
        return None;
    }
    if k != 0 {
        return Some((k - 1) as libc::pthread_key_t);
    }
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: `key` is a valid out-pointer; the destructor is an `extern "C"` function valid
    // for the whole process.
    if unsafe { libc::pthread_key_create(&mut key, Some(last_collection)) } != 0 {
        let _ = KEY.compare_exchange(0, usize::MAX, Ordering::AcqRel, Ordering::Acquire);
        return self::key_after_race();
    }
    match KEY.compare_exchange(0, key as usize + 1, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => Some(key),
        Err(_) => {
            // Another thread published its key first: use that one, give ours back.
            // SAFETY: our key, never used.
            unsafe { libc::pthread_key_delete(key) };
            key_after_race()
        }
    }
}

#[cfg(unix)]
fn key_after_race() -> Option<libc::pthread_key_t> {
    match KEY.load(Ordering::Acquire) {
        0 | usize::MAX => None,
        k => Some((k - 1) as libc::pthread_key_t),
    }
}

/// Most collect-then-destroy rounds the key's destructor runs.
#[cfg(unix)]
const EXIT_ROUNDS: usize = 8;

/// The key's destructor: after every Rust thread-local destructor of the thread.
#[cfg(unix)]
extern "C" fn last_collection(_: *mut libc::c_void) {
    for round in 0..EXIT_ROUNDS {
        // Nothing may unwind out of here (`exit_collection` reports panics); `with_space`
        // works at this point: the space has no destructor.
        let freed = with_space(|s| s.exit_collection());
        if !run_new_tls_destructors() || (round > 0 && freed == 0) {
            break;
        }
    }
}

/// Run the thread-local destructors registered since glibc ran the thread's list (by the
/// user code of the last collection); false if there is no such function here (not glibc).
#[cfg(unix)]
fn run_new_tls_destructors() -> bool {
    static CALL_TLS_DTORS: AtomicUsize = AtomicUsize::new(0);
    const MISSING: usize = 1;
    let mut f = CALL_TLS_DTORS.load(Ordering::Relaxed);
    if f == 0 {
        // SAFETY: a lookup of a symbol by its NUL-terminated name in the loaded objects.
        let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"__call_tls_dtors".as_ptr()) };
        f = if p.is_null() { MISSING } else { p as usize };
        CALL_TLS_DTORS.store(f, Ordering::Relaxed);
    }
    if f == MISSING {
        return false;
    }
    // `f` is glibc's `void __call_tls_dtors(void)`, which pops and runs the destructors of this
    // thread's list until it is empty (a no-op when it is); `start_thread` calls it before
    // the pthread key destructors, so calling it again here runs only those registered since.
    // SAFETY: as just said.
    unsafe {
        let call: extern "C" fn() = core::mem::transmute::<usize, extern "C" fn()>(f);
        call();
    }
    true
}
