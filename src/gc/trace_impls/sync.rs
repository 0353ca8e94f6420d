//! The interiors other threads share (`Sync`): what may change in them while the shared
//! flavor's collector scans, and why each impl is still exact (`docs/concurrency.md` §2.8
//! I13 and §4.2: a reported handle must stay where it was traced until the scan decides).

use crate::gc::trace::{Trace, Tracer};
use std::sync::{LazyLock, Mutex, OnceLock, RwLock, TryLockError, TryLockResult};

/// A lock's `try_lock`/`try_read` result as the guard to trace through, if any: a busy lock
/// gives nothing (never wait), a poisoned one still owns its content.
fn acquired<G>(r: TryLockResult<G>) -> Option<G> {
    match r {
        Ok(g) => Some(g),
        Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

/// `Trace` for a lock type, traced through `Tracer::trace_locked` with a non-blocking method
/// giving `Option<guard>` (`$try`: `try_lock`, or `try_read` for a shared lock). Also used by
/// `features.rs` for `parking_lot`'s locks.
macro_rules! locked {
    ($(#[$attr:meta])* [$($gen:tt)*] $lock:ty, |$l:ident| $try:expr) => {
        // SAFETY: as for `RefCell`: a held lock reports nothing (its referents become roots);
        // the tracer never blocks, so tracing a lock held by the collecting thread cannot
        // deadlock. A poisoned lock still owns its content, which is reported. In a concurrent
        // collection the tracer keeps the guard until the scan ends (`Tracer::trace_locked`),
        // so no handle moves into or out of the value meanwhile (I13) and every pass of one
        // collection sees the same content.
        $(#[$attr])*
        unsafe impl<$($gen)*> Trace for $lock {
            fn trace(&self, tracer: &mut Tracer) {
                if T::MAY_CONTAIN_GC {
                    tracer.trace_locked(self, |$l| $try, |g| &**g)
                }
            }
            const MAY_CONTAIN_GC: bool = T::MAY_CONTAIN_GC;
        }
    };
}
#[cfg(feature = "parking_lot")]
pub(super) use locked;

locked!([T: Trace + ?Sized] Mutex<T>, |m| acquired(m.try_lock()));
locked!([T: Trace + ?Sized] RwLock<T>, |m| acquired(m.try_read()));
// loom builds only: lets the loom models put their edges behind locks that loom schedules,
// traced by the same code (loom's locks never poison).
#[cfg(loom)]
locked!([T: Trace + ?Sized] loom::sync::Mutex<T>, |m| acquired(m.try_lock()));
#[cfg(loom)]
locked!([T: Trace + ?Sized] loom::sync::RwLock<T>, |m| acquired(m.try_read()));

// SAFETY: reports the content once it is set. A set-once cell can gain a handle but never
// lose one through a shared reference (`take` needs `&mut`), so an edge a concurrent scan
// reported stays where it was until the scan ends (`docs/concurrency.md` I13); one set after
// it was traced is counted as an outside reference, which only keeps its target (§4.2-b).
// `get` never blocks: a cell another thread is initialising reads as empty.
unsafe impl<T: Trace> Trace for OnceLock<T> {
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        if let Some(v) = self.get() {
            v.trace(tracer)
        }
    }
    const MAY_CONTAIN_GC: bool = T::MAY_CONTAIN_GC;
}

// SAFETY: as for `OnceLock`, through `LazyLock::get`: it never runs the initialiser (tracing
// runs no user code) and never blocks: while another thread (or this one, a collection
// started from inside the initialiser) runs the initialiser, or after it panicked, it gives
// `None` and nothing is reported; the value that appears later was not traced, so its handles
// count as outside references of their targets (§4.2-b), which only keeps them. Once there,
// the value is never removed through `&self` (I13). The initialiser (`F`) is opaque: handles
// it captured are not reported (a leak at worst; `MAY_CONTAIN_GC` follows `T` alone).
#[cfg(pyheap_lazy_get)]
unsafe impl<T: Trace, F> Trace for LazyLock<T, F> {
    #[inline]
    // Compiled only where `LazyLock::get` exists (`build.rs`).
    #[allow(clippy::incompatible_msrv)]
    fn trace(&self, tracer: &mut Tracer) {
        if T::MAY_CONTAIN_GC {
            if let Some(v) = LazyLock::get(self) {
                v.trace(tracer)
            }
        }
    }
    const MAY_CONTAIN_GC: bool = T::MAY_CONTAIN_GC;
}

// Before Rust 1.94 (`LazyLock::get`) nothing can look at the value without running (or
// waiting for) the initialiser: only a `T` without a `Gc` is supported there.
#[cfg(not(pyheap_lazy_get))]
super::gc_free_only!(
    [T: Trace, F] LazyLock<T, F>,
    "pyheap: LazyLock<T> of a T that may hold a Gc needs Rust 1.94 (LazyLock::get)"
);
