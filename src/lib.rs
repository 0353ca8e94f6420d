//! pyheap: CPython's memory management for Rust.
//!
//! * [`PoolAlloc`]: a `#[global_allocator]` on pymalloc's scheme (size classes, pools,
//!   arenas), thread-safe and returning memory to the OS. See [`alloc`]. Requests above
//!   512 bytes go to the system allocator, or to one of your choice with [`PoolAllocWith`].
//! * [`Gc`] / [`Weak`]: thread-safe reference counting (`Arc`'s costs for clone, drop and
//!   deref) with a generational cycle collector that runs while other threads use their
//!   handles ([`gc`], [`collect()`]); values described by [`Trace`] (derivable).
//! * [`unsync::Gc`] / [`unsync::Weak`]: the single-thread flavor (`Rc`'s costs), with a
//!   per-thread object space and collector ([`unsync::gc`]).
//! * [`tracemalloc`]: allocation tracing by call site (Python's `tracemalloc`), and the debug
//!   allocator (`PYHEAP_MALLOC=debug`, Python's `PYTHONMALLOC=debug`) with
//!   [`alloc::check_heap`]: both built into `PoolAlloc`.
//!
//! ```
//! #[global_allocator]
//! static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
//! # fn main() {}
//! ```
//!
//! # Coming from `Rc` and `Arc`
//!
//! [`unsync::Gc`] is `Rc` and [`Gc`] is `Arc`, with a cycle collector behind them: values
//! need [`trait@Trace`] (derive it) and `'static`, and the thread-safe flavor wants
//! `T: Send + Sync` to create objects. Every public item of std's `Rc`, `Arc` and their
//! `Weak`s (std of Rust 1.95, unstable items included) and its counterpart here, the same in
//! both flavors unless the row says otherwise; *"as std"* means same name, same meaning.
//!
//! | std (`Rc`/`Arc`, `rc::Weak`/`sync::Weak`) | pyheap (`Gc`, `Weak`; both flavors) |
//! |---|---|
//! | `new`, `new_cyclic`, `try_unwrap`, `into_inner`, `unwrap_or_clone`, `downgrade`, `strong_count`, `weak_count`, `ptr_eq` | as std. `strong_count` also counts the collector's *pin* while it tears a garbage set down. `into_inner`/`try_unwrap` on a member of a cycle fail as long as the cycle's own handles exist (as std's would) |
//! | `get_mut` | as std, but the object leaves its generation while the `&mut` may live (no scan reads it); the next shared use of the handle puts it back. The thread-safe flavor waits out a running scan, and also fails if introspection (`gc::get_objects`) took a handle meanwhile |
//! | `make_mut` | as std (clone-on-write, a move when only `Weak`s remain, which then stop upgrading). On a member of a cycle the cycle's own handles share the object, so `make_mut` always copies: the handle leaves the cycle, which may become garbage. A finalizer (`Gc::new_finalized`) moves with a moved value; a copy has none |
//! | `pin`, `Default for Pin<Rc<T>>` | as std. Introspection never hands out a typed handle to a pinned object (which would let safe code move the value): it reports a private type for it |
//! | `new_uninit`, `new_uninit_slice`, `new_zeroed`, `new_zeroed_slice`, `assume_init` | as std. Until `assume_init` the collector never reads the value (`Trace for MaybeUninit<T>` reports nothing, so handles written into it are roots); a handle still typed `Gc<MaybeUninit<T>>` that goes last may or may not drop the value (std's never does) |
//! | `into_raw`, `from_raw`, `as_ptr`, `increment_strong_count`, `decrement_strong_count` | as std. A reference held by a raw pointer is a root for the collector (no `Trace` reports it), so what it reaches is never collected while it is out. `from_raw` needs a pointer of the same flavor (another flavor's, std's, or a `Weak`'s is undefined behaviour, as in std). `as_ptr` of a handle to an object the collector destroyed (one a garbage `Drop` stashed away) points to a dropped value |
//! | `Weak::{new, upgrade, strong_count, weak_count, ptr_eq, as_ptr, into_raw, from_raw}` | as std. `upgrade` gives `None` once the collector has found the object to be garbage (before its finalizer runs) |
//! | `downcast` (on `Rc<dyn Any>`, `Arc<dyn Any + Send + Sync>`) | as std on `Gc<dyn Any>` (`unsync`) and `Gc<dyn Any + Send + Sync>`; other trait objects with [`gc_dyn!`] and [`unsize!`] |
//! | unsized coercion (`Rc<T>` to `Rc<dyn Trait>`, `Rc<[T; N]>` to `Rc<[T]>`; `CoerceUnsized` is unstable) | [`unsize!`] |
//! | `Deref`, `Clone`, `Drop`, `Debug`, `Display`, `Pointer`, `PartialEq`, `Eq`, `PartialOrd`, `Ord`, `Hash`, `Borrow`, `AsRef`, `Default` (`T`, `[T]`, `str`), `Weak`'s `Clone`, `Debug`, `Default`, `Drop` | as std, except that `Deref` panics (never undefined behaviour) on an object the collector destroyed, seen only through a handle a garbage `Drop` stashed; `Gc::try_deref` gives `None` there |
//! | `From<T>`, `From<Box<T>>`, `From<Vec<T>>`, `From<&[T]>`, `From<&mut [T]>`, `From<[T; N]>`, `From<&str>`, `From<&mut str>`, `From<String>`, `From<Box<str>>`, `From<Cow<'_, B>>`, `From<Rc<str>> for Rc<[u8]>`, `FromIterator` | as std; `From<Box<T>>` for sized `T` and `[T]`/`str` only (a boxed trait object cannot be moved into an object space without knowing its type) |
//! | `TryFrom<Rc<[T]>> for Rc<[T; N]>` | as std, for element types that hold no `Gc` (the others are a compile-time error: a tracked slice keeps its length where an array handle does not look) |
//! | `Error` (`Arc`'s, where `T: Error`) | as std, on both flavors (`Rc` has none); `source` of a destroyed object is `None`; `provide` is unstable: none |
//! | `Send`, `Sync` | as std: `Gc`/`Weak` are `Send + Sync` when `T: Send + Sync`; `unsync`'s are neither |
//! | `Unpin`, `UnwindSafe`, `RefUnwindSafe` | as std (`unsync::Weak` is not unwind-safe, as `rc::Weak`) |
//! | `From<Arc<W>> for Waker`/`RawWaker` (`W: Wake`) | `From<Gc<W>> for Waker`/`RawWaker` with [`W: pyheap::Wake`](Wake) (std's `Wake` takes `self: Arc<Self>`, which only std's pointer can be). The waker's reference is a root, as any raw pointer's |
//! | `From<Rc<W>> for LocalWaker` (`LocalWake`, unstable) | none, because `LocalWake` is unstable |
//! | `From<CString>`, `From<&CStr>`, `From<&mut CStr>`, `From<OsString>`, `From<&OsStr>`, `From<PathBuf>`, `From<&Path>`, `Default for Rc<CStr>`, `From<Rc<[u8]>> for Rc<ByteStr>` | none, because `CStr`, `OsStr`, `Path` and `ByteStr` are not [`GcValue`]s (store a `CString`, `OsString`, `PathBuf` in a sized `Gc`, or the bytes in a `Gc<[u8]>`) |
//! | `is_unique` (unstable) | none: `strong_count == 1 && weak_count == 0` tells, or `get_mut` |
//! | `get_mut_unchecked`, `downcast_unchecked`, `map`, `try_map`, `into_array`, `clone_from_ref`, `try_clone_from_ref`, `try_new*`, `try_pin` (unstable) | none, because they are unstable in std; `get_mut_unchecked` would also hand out a `&mut` a concurrent scan may read. For `into_array` use `TryFrom`, for `clone_from_ref` `From<&[T]>`/`From<&str>` |
//! | the allocator API: `new_in`, `*_in`, `allocator`, `into_raw_with_allocator`, `from_raw_in`, `Weak::new_in` (unstable) | none, because objects live in pyheap's object spaces (their memory comes from the global allocator: make it [`PoolAlloc`] for pymalloc's pools) |
//! | `DispatchFromDyn`, `DerefPure`, `PinCoerceUnsized`, `UnsafeUnpin` (unstable) | none (see `unsize!` for coercions) |
#![warn(missing_docs)]
// docs.rs (`--cfg docsrs`, nightly): the cargo features' impls carry a badge.
#![cfg_attr(docsrs, feature(doc_cfg))]

// Lets `#[derive(Trace)]` (which names `::pyheap`) work inside this crate too.
extern crate self as pyheap;

pub mod alloc;
pub mod gc;
pub(crate) mod sync;
pub mod tracemalloc;
pub mod unsync;

/// Python's `weakref` for the thread-safe flavor: [`WeakRef`](weakref::WeakRef) (a weak
/// reference with a callback), [`finalize`](weakref::finalize), and the weak maps
/// [`WeakValueMap`](weakref::WeakValueMap), [`WeakKeyMap`](weakref::WeakKeyMap) (keys by
/// identity) and [`WeakSet`](weakref::WeakSet). The single-thread flavor's are in
/// [`unsync::weakref`].
///
/// ```
/// use pyheap::weakref::WeakValueMap;
/// use pyheap::Gc;
///
/// let cache: WeakValueMap<u32, String> = WeakValueMap::new();
/// let page = cache.get_or_insert_with(1, || Gc::new(String::from("page 1")));
/// assert_eq!(cache.len(), 1);
/// drop(page); // nobody uses it any more: the cache does not keep it
/// assert!(cache.is_empty());
/// ```
pub mod weakref {
    pub use crate::gc::shared::weak_maps::{WeakKeyMap, WeakSet, WeakValueMap};
    pub use crate::gc::shared::weakref::{finalize, Finalizer, WeakRef};
}

#[cfg(not(loom))]
pub use alloc::PoolAlloc;
#[cfg(not(loom))]
pub use alloc::PoolAllocWith;
pub use gc::finalize::Finalize;
pub use gc::shared::handle::{Gc, Weak};
pub use gc::shared::wake::Wake;
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
