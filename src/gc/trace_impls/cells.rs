//! The single-thread interiors (`!Sync`, so only ever inside a `pyheap::unsync::Gc`, whose
//! collector runs on the value's own thread with no user code running while it traces).

use super::gc_free_only;
use crate::gc::trace::{Trace, Tracer};
use std::cell::{Cell, LazyCell, OnceCell, RefCell};

// A `Cell` cannot be looked into through `&self`: `take`/`replace` would move its content,
// and with it any handle, while the collector counts. So a `Cell` may only hold a `T`
// without a `Gc`; for the others, use a `RefCell`.
gc_free_only!(
    [T: Trace] Cell<T>,
    "pyheap: Cell<T> is Trace only for a T that holds no Gc (T::MAY_CONTAIN_GC is false): \
     a Cell cannot be traced without taking its value out; use RefCell<T>"
);

// SAFETY: reports the content when it can be borrowed. A mutably borrowed cell reports
// nothing: its referents then count as externally referenced (roots), which only keeps them.
// No user code runs during a collection's passes, so both passes see the same borrow state.
unsafe impl<T: Trace + ?Sized> Trace for RefCell<T> {
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        if let Ok(v) = self.try_borrow() {
            v.trace(tracer)
        }
    }
    const MAY_CONTAIN_GC: bool = T::MAY_CONTAIN_GC;
}

// SAFETY: reports the content once it is set (see `OnceLock`'s impl in `sync.rs`).
unsafe impl<T: Trace> Trace for OnceCell<T> {
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        if let Some(v) = self.get() {
            v.trace(tracer)
        }
    }
    const MAY_CONTAIN_GC: bool = T::MAY_CONTAIN_GC;
}

// SAFETY: reports the value once it is initialised, through `LazyCell::get`, which never
// runs the initialiser (tracing must run no user code) and gives `None` while it runs (a
// collection started from inside the initialiser sees no value yet). The value, once there,
// is never removed through `&self`. The initialiser (`F`) is opaque: handles it captured are
// not reported, so their targets are kept alive until it runs or is dropped (a leak at worst;
// `MAY_CONTAIN_GC` follows `T` alone, and a wrong `false` only leaks).
#[cfg(pyheap_lazy_get)]
unsafe impl<T: Trace, F> Trace for LazyCell<T, F> {
    #[inline]
    // Compiled only where `LazyCell::get` exists (`build.rs`).
    #[allow(clippy::incompatible_msrv)]
    fn trace(&self, tracer: &mut Tracer) {
        if T::MAY_CONTAIN_GC {
            if let Some(v) = LazyCell::get(self) {
                v.trace(tracer)
            }
        }
    }
    const MAY_CONTAIN_GC: bool = T::MAY_CONTAIN_GC;
}

// Before Rust 1.94 (`LazyCell::get`) nothing can look at the value without running the
// initialiser: only a `T` without a `Gc` is supported there.
#[cfg(not(pyheap_lazy_get))]
gc_free_only!(
    [T: Trace, F] LazyCell<T, F>,
    "pyheap: LazyCell<T> of a T that may hold a Gc needs Rust 1.94 (LazyCell::get)"
);
