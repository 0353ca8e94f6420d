//! pyheap: CPython's memory management for Rust.
//!
//! * [`PoolAlloc`]: a `#[global_allocator]` on pymalloc's scheme (size classes, pools,
//!   arenas), thread-safe and returning memory to the OS. See [`alloc`].
//! * [`Gc`] / [`Weak`]: thread-safe reference counting (`Arc`'s costs for clone, drop and
//!   deref) with a generational cycle collector that runs while other threads use their
//!   handles ([`gc`], [`collect()`]); values described by [`Trace`] (derivable).
//! * [`unsync::Gc`] / [`unsync::Weak`]: the single-thread flavor (`Rc`'s costs), with a
//!   per-thread object space and collector ([`unsync::gc`]).
//!
//! ```
//! #[global_allocator]
//! static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
//! # fn main() {}
//! ```
#![warn(missing_docs)]
// docs.rs (`--cfg docsrs`, nightly): the cargo features' impls carry a badge.
#![cfg_attr(docsrs, feature(doc_cfg))]

// Lets `#[derive(Trace)]` (which names `::pyheap`) work inside this crate too.
extern crate self as pyheap;

pub mod alloc;
pub mod gc;
pub(crate) mod sync;
pub mod unsync;

/// Python's `weakref` for the thread-safe flavor: [`WeakRef`](weakref::WeakRef) (a weak
/// reference with a callback) and [`finalize`](weakref::finalize). The single-thread
/// flavor's are in [`unsync::weakref`].
pub mod weakref {
    pub use crate::gc::shared::weakref::{finalize, Finalizer, WeakRef};
}

#[cfg(not(loom))]
pub use alloc::PoolAlloc;
pub use gc::finalize::Finalize;
pub use gc::shared::handle::{Gc, Weak};
pub use gc::trace::{Trace, Tracer};
pub use gc::value::GcValue;
/// `#[derive(Trace)]`: see [`trait@Trace`].
pub use pyheap_derive::Trace;

/// Run a full collection (Python's `gc.collect()`) of the shared object space of
/// [`pyheap::Gc`](crate::Gc) and of the calling thread's space of
/// [`pyheap::unsync::Gc`](crate::unsync::Gc), and return the number of objects freed in both.
///
/// Runs on the calling thread, and tears down there the garbage it finds, the garbage the
/// shared space's automatic collections queued and no thread has started on, and the garbage
/// this thread's automatic collections left for a safe point
/// ([`unsync::gc::safe_point`]). It waits for nothing but a
/// running scan (which runs no user code): a teardown already running on another thread (the
/// `pyheap-gc` collector thread, or another thread's `collect()`) goes on there, and its
/// objects, already unreachable, with their `Weak` handles cleared, are not counted here —
/// one of their `Drop`s may be waiting for this very thread, so waiting for it could
/// deadlock. (A `collect()` called from such a `Drop` returns 0, as CPython's `gc.collect()`
/// during a collection.)
///
/// The garbage's `Drop`s and finalizers run on the calling thread, so do not call it while
/// holding a lock that such a `Drop` takes (the same rule as for any code that drops values).
///
/// # Panics
/// If a `Drop` or finalizer of the garbage panics, the collection still tears down every
/// garbage object (each finalized at most once, dropped exactly once, its memory freed), then
/// resumes the first panic here. Later panics are dropped; none aborts the process.
///
/// ```
/// use pyheap::unsync::Gc;
/// use std::cell::RefCell;
/// #[derive(pyheap::Trace)]
/// struct N(RefCell<Option<Gc<N>>>);
/// let n = Gc::new(N(RefCell::new(None)));
/// *n.0.borrow_mut() = Some(n.clone());
/// drop(n);
/// assert_eq!(pyheap::collect(), 1);
/// ```
pub fn collect() -> usize {
    gc::collect_all()
}

/// The README's Rust examples, compiled and run as doc tests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;
