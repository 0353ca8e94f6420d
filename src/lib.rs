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

// Lets `#[derive(Trace)]` (which names `::pyheap`) work inside this crate too.
extern crate self as pyheap;

pub mod alloc;
pub mod gc;
pub(crate) mod sync;
pub mod unsync;

#[cfg(not(loom))]
pub use alloc::PoolAlloc;
pub use gc::finalize::Finalize;
pub use gc::shared::handle::{Gc, Weak};
pub use gc::trace::{Trace, Tracer};
/// `#[derive(Trace)]`: see [`trait@Trace`].
pub use pyheap_derive::Trace;

/// Run a full collection (Python's `gc.collect()`) of the shared object space of
/// [`pyheap::Gc`](crate::Gc) and of the calling thread's space of
/// [`pyheap::unsync::Gc`](crate::unsync::Gc), and return the number of objects freed in both.
///
/// Runs on the calling thread, after any collection of the shared space already running on
/// another thread (pyheap's collector thread, or another `collect()`) has finished its
/// teardown: when `collect()` returns, every cycle that was garbage when it was called has
/// been freed. The garbage's `Drop`s and finalizers run on the calling thread, so do not call
/// it while holding a lock that such a `Drop` takes (the same rule as for any code that drops
/// values); a `collect()` called from such a `Drop` returns 0.
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
