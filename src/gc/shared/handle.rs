//! The thread-safe handles: [`Gc<T>`] and [`Weak<T>`] (`pyheap::Gc`, `pyheap::Weak`).
//!
//! Same API as `pyheap::unsync`, with atomic counts (`gc::shared::counts`) and one shared
//! object space (`gc::shared::space`). Every constructor requires `T: Send + Sync`: the
//! collector traces values on its own thread and may drop garbage there
//! (`docs/concurrency.md` §1.2, change 2). `RefCell` graphs therefore stay in
//! `pyheap::unsync`; shared graphs put their edges behind `Mutex`, `RwLock` or `OnceLock`.
//!
//! The invariants every `unsafe` block here relies on are `gc::header`'s (a handle keeps the
//! header alive; the value is initialised and referenceable exactly while the weak token is
//! held and `FLAG_DEAD` is clear) and `gc::shared::counts`' (the count word).

mod unique;

use core::alloc::Layout;
use core::borrow::Borrow;
use core::cell::UnsafeCell;
use core::cmp::Ordering;
use core::fmt;
use core::hash::{Hash, Hasher};
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::ops::Deref;
use core::ptr::{self, NonNull};

use super::counts::{flags_in, SharedCounts};
use super::space::space;
use crate::gc::destroy::{free_tracked, release_token};
use crate::gc::finalize::Finalize;
use crate::gc::header::{
    alloc_layout, dangling_box, is_dangling, is_fat, links_of, tracked_layout, Counts, GcBox,
    Links, FLAG_DEAD, FLAG_UNIQUE, FLAG_WEAKS_CLEARED,
};
use crate::gc::slice;
use crate::gc::trace::{Trace, Tracer};
use crate::gc::value::{has_links, GcValue, Tracked};
use crate::gc::vtable::{VTable, VTables};

type C = SharedCounts;
type Inner<T> = GcBox<C, T>;

/// A thread-safe reference-counted pointer whose cycles are found by the collector: the
/// `Arc` of pyheap.
///
/// Cloning adds a strong reference (one atomic add, as `Arc`); the value is dropped the
/// moment the last strong handle goes. Values of types that may hold a `Gc`
/// (`T::MAY_CONTAIN_GC`) are *tracked* in the process-wide object space: a cycle of them that
/// no handle outside the cycle reaches is freed by [`pyheap::collect()`](crate::collect) or by
/// the background collector thread, while other threads keep using their handles. `Deref`
/// gives a plain `&T` (it checks one flag: it panics, in release builds too, on an object the
/// collector destroyed; see [`Gc::try_deref`]).
///
/// Header: 40 bytes in front of a tracked value (24 of collector links, 16 of counts), 16 in
/// front of an untracked one (as `Arc`), on 64-bit targets. As with `Arc`, `T` may be a slice
/// or `str` (`Gc<str>`, `Gc<[T]>` from `&str`, `String`, `Vec<T>`, `&[T]` or an iterator); a
/// `Gc<[T]>` is tracked iff `T` is. Trait objects: `Gc<dyn Trait + Send + Sync>` for any
/// trait declared with [`gc_dyn!`](crate::gc_dyn) (`dyn Any`, `dyn Display`, `dyn Debug`,
/// `dyn Error` are), made from a `Gc<T>` by [`unsize!`](crate::unsize), tracked or not as the
/// concrete `T` is; `Gc<dyn Any + Send + Sync>` has [`Gc::downcast`]. `T` in `Gc<T>` is any
/// [`GcValue`].
///
/// ```
/// use pyheap::{Gc, Trace};
/// use std::sync::Mutex;
///
/// #[derive(Trace, Default)]
/// struct Node { edges: Mutex<Vec<Gc<Node>>> }
///
/// let a = Gc::new(Node::default());
/// let b = Gc::new(Node::default());
/// a.edges.lock().unwrap().push(b.clone());
/// b.edges.lock().unwrap().push(a.clone());
/// let t = std::thread::spawn(move || Gc::strong_count(&b));
/// assert_eq!(t.join().unwrap(), 2);
/// drop(a);
/// assert!(pyheap::collect() >= 2); // the pair (and any other shared garbage)
/// ```
pub struct Gc<T: ?Sized + GcValue> {
    ptr: NonNull<Inner<T>>,
    _owns: PhantomData<Inner<T>>,
}

/// A handle that does not keep its object alive; `upgrade()` gives a [`Gc`] while the object
/// lives (Python's `weakref.ref`). A `Weak` into a garbage cycle stops upgrading before any
/// finalizer or `Drop` of the cycle runs.
///
/// ```
/// use pyheap::Gc;
/// let a = Gc::new(String::from("x"));
/// let w = Gc::downgrade(&a);
/// assert_eq!(w.upgrade().as_deref().map(String::as_str), Some("x"));
/// drop(a);
/// assert!(w.upgrade().is_none());
/// ```
pub struct Weak<T: ?Sized + GcValue> {
    /// The object, or `header::dangling_box` for `Weak::new()` (as std, so that the metadata
    /// of an unsized type survives).
    ptr: NonNull<Inner<T>>,
    _owns: PhantomData<Inner<T>>,
}

// SAFETY: as `Arc`: handles to a `Send + Sync` value may move and be shared between threads;
// the counts are atomic and the object space is behind its lock.
unsafe impl<T: ?Sized + GcValue + Send + Sync> Send for Gc<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + GcValue + Send + Sync> Sync for Gc<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + GcValue + Send + Sync> Send for Weak<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + GcValue + Send + Sync> Sync for Weak<T> {}
/// As `sync::Weak`'s (there through its fields): the counts stay consistent across a panic.
impl<T: ?Sized + GcValue + core::panic::RefUnwindSafe> core::panic::UnwindSafe for Weak<T> {}
/// As `sync::Weak`'s.
impl<T: ?Sized + GcValue + core::panic::RefUnwindSafe> core::panic::RefUnwindSafe for Weak<T> {}

/// Allocate a header with `counts` and an uninitialised value; tracked types get links with
/// `vtable` (not yet in any list). Returns the box pointer.
fn allocate<T: Trace + 'static>(counts: C, vtable: &'static VTable) -> NonNull<Inner<T>> {
    let (offset, layout) = layout_of::<T>();
    // SAFETY: the layout has non-zero size (it contains the counts).
    let base = unsafe { std::alloc::alloc(layout) };
    if base.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    if T::MAY_CONTAIN_GC {
        Links::write_new(base.cast::<Links>(), vtable.head_ptr());
    }
    debug_assert_eq!(counts.has_links(), T::MAY_CONTAIN_GC);
    // SAFETY: `offset` is within the fresh allocation and aligned for `Inner<T>`.
    let b = unsafe { base.add(offset) }.cast::<Inner<T>>();
    // SAFETY: as above; the value field stays uninitialised until the caller writes it.
    unsafe { ptr::addr_of_mut!((*b).counts).write(counts) };
    // SAFETY: `base` is non-null, so is `b`.
    unsafe { NonNull::new_unchecked(b) }
}

/// Offset of the box and layout of the whole allocation.
const fn layout_of<T: Trace + 'static>() -> (usize, Layout) {
    if T::MAY_CONTAIN_GC {
        tracked_layout::<C, T>()
    } else {
        (0, Layout::new::<Inner<T>>())
    }
}

/// Free the allocation of `b`.
///
/// # Safety
/// The weak count of `b` reached zero (no handle, no token) and the value is gone.
unsafe fn deallocate<T: ?Sized + GcValue>(b: NonNull<Inner<T>>) {
    // Per the caller nobody else references the allocation; the box is still allocated, so
    // `Layout::for_value` may look at it (it reads only the pointer's metadata). A tracked
    // allocation is freed as its vtable says (this handle's type may be a view of it: `[T]`
    // of an array object, a trait object); an untracked one is just the box.
    // SAFETY: as just said, so base and layout match the allocation.
    unsafe {
        let box_layout = Layout::for_value(b.as_ref());
        if !has_links(b.as_ptr()) {
            std::alloc::dealloc(b.as_ptr().cast::<u8>(), box_layout);
        } else if !is_fat::<T>() {
            // A sized handle type is the type the object was allocated as (`gc::header`'s
            // invariants): the layout is a constant, as `allocate` computed it.
            let (offset, layout) = alloc_layout(true, false, box_layout);
            std::alloc::dealloc(b.as_ptr().cast::<u8>().sub(offset), layout);
        } else {
            free_tracked(links_of(b.as_ptr()));
        }
    }
}

/// Releases an untracked value's weak token when dropped, freeing the allocation if it was the
/// last weak reference: after the value's `drop`, also when that `drop` unwinds.
struct ReleaseToken<T: ?Sized + GcValue>(NonNull<Inner<T>>);

impl<T: ?Sized + GcValue> Drop for ReleaseToken<T> {
    #[inline]
    fn drop(&mut self) {
        // The guard is made right before the value of an untracked object is dropped by its
        // last strong handle, the token held: the header is alive until this releases the
        // token, and if it was the last weak reference nobody else references the allocation.
        // SAFETY: as just said.
        unsafe {
            if self
                .0
                .as_ref()
                .counts
                .release_weak(has_links(self.0.as_ptr()))
            {
                deallocate(self.0);
            }
        }
    }
}

impl<T: Trace + Send + Sync + 'static> Gc<T> {
    /// Put `value` in the shared object space and return the first handle. A tracked value
    /// counts toward generation 0; past the threshold the background collector is woken
    /// (this thread does not collect).
    ///
    /// ```
    /// let g = pyheap::Gc::new(vec![1, 2, 3]);
    /// assert_eq!(g.len(), 3);
    /// ```
    pub fn new(value: T) -> Self {
        Self::new_with(value, &VTables::<C, T>::PLAIN)
    }

    fn new_with(value: T, vtable: &'static VTable) -> Self {
        let b = allocate::<T>(C::new_live(T::MAY_CONTAIN_GC), vtable);
        // SAFETY: `allocate` left the value field uninitialised and in bounds.
        unsafe {
            ptr::addr_of_mut!((*b.as_ptr()).value).write(UnsafeCell::new(ManuallyDrop::new(value)))
        };
        if T::MAY_CONTAIN_GC {
            // SAFETY: a new, fully built tracked object, in no list.
            unsafe { space().track_new(links_of(b.as_ptr())) };
        }
        Gc {
            ptr: b,
            _owns: PhantomData,
        }
    }

    /// Like [`Gc::new`], with `T`'s [`Finalize::finalize`] run once before the object is
    /// destroyed. `T` must be a tracked type (checked at compile time).
    ///
    /// A garbage cycle's finalizers run before any of its values is dropped. After they ran,
    /// the collection checks the cycle again (a validated scan of it alone, since another
    /// thread may now hold a handle a finalizer gave it): the part a finalizer resurrected
    /// (made reachable from outside, with what it reaches) stays, with working handles,
    /// cleared weak handles and finalizers that never run again; the rest is freed by the
    /// same collection.
    ///
    /// ```
    /// use pyheap::{Finalize, Gc, Trace};
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::sync::Mutex;
    /// static RUNS: AtomicU32 = AtomicU32::new(0);
    /// #[derive(Trace)]
    /// struct Obj(Mutex<Option<Gc<Obj>>>);
    /// impl Finalize for Obj {
    ///     fn finalize(&self) { RUNS.fetch_add(1, Ordering::Relaxed); }
    /// }
    /// drop(Gc::new_finalized(Obj(Default::default())));
    /// assert_eq!(RUNS.load(Ordering::Relaxed), 1);
    ///
    /// // A self-cycle: its finalizer runs and it is freed by the same collection.
    /// let c = Gc::new_finalized(Obj(Mutex::new(None)));
    /// *c.0.lock().unwrap() = Some(c.clone());
    /// drop(c);
    /// pyheap::gc::disable(); // no automatic collection in between, for the exact count
    /// assert_eq!(pyheap::collect(), 1);
    /// pyheap::gc::enable();
    /// assert_eq!(RUNS.load(Ordering::Relaxed), 2);
    /// ```
    pub fn new_finalized(value: T) -> Self
    where
        T: Finalize,
    {
        const {
            assert!(
                T::MAY_CONTAIN_GC,
                "Gc::new_finalized needs a tracked type (MAY_CONTAIN_GC); use Drop instead"
            )
        };
        Self::new_with(value, &VTables::<C, T>::FINALIZED)
    }

    /// Build a value that holds a weak handle to itself. During `data_fn` the `Weak` does not
    /// upgrade yet (it returns `None`), on any thread. If `data_fn` panics, the allocation is
    /// released and the panic propagates.
    ///
    /// ```
    /// use pyheap::{Gc, Trace, Weak};
    /// #[derive(Trace)]
    /// struct Me { me: Weak<Me> }
    /// let g = Gc::new_cyclic(|w| Me { me: w.clone() });
    /// assert!(Gc::ptr_eq(&g.me.upgrade().unwrap(), &g));
    /// ```
    pub fn new_cyclic<F: FnOnce(&Weak<T>) -> T>(data_fn: F) -> Self {
        let b = allocate::<T>(
            C::new_constructing(T::MAY_CONTAIN_GC),
            &VTables::<C, T>::PLAIN,
        );
        let weak = Weak {
            ptr: b,
            _owns: PhantomData,
        };

        /// Releases the value's token if `data_fn` unwinds (the `Weak` releases its own).
        struct Unwind<T: Trace + 'static>(NonNull<Inner<T>>);
        impl<T: Trace + 'static> Drop for Unwind<T> {
            fn drop(&mut self) {
                // SAFETY: the header is alive (the `Weak` still holds it); the value was never
                // written, so the token stands for nothing and the strong count is 0.
                unsafe {
                    if (*self.0.as_ptr()).counts.release_weak(T::MAY_CONTAIN_GC) {
                        deallocate(self.0);
                    }
                }
            }
        }
        let guard = Unwind(b);
        let value = data_fn(&weak);
        core::mem::forget(guard);
        // SAFETY: the value field is uninitialised and in bounds; nothing could read it (the
        // strong count is 0, so every `upgrade` failed). `set_strong(1)` is a Release RMW:
        // an `upgrade` that sees it sees the value.
        unsafe {
            ptr::addr_of_mut!((*b.as_ptr()).value).write(UnsafeCell::new(ManuallyDrop::new(value)));
            (*b.as_ptr()).counts.set_strong(1);
        }
        if T::MAY_CONTAIN_GC {
            // SAFETY: the object is now fully built and in no list.
            unsafe { space().track_new(links_of(b.as_ptr())) };
        }
        drop(weak);
        Gc {
            ptr: b,
            _owns: PhantomData,
        }
    }
}

impl<T: ?Sized + GcValue> Gc<T> {
    #[inline]
    fn inner(&self) -> &Inner<T> {
        // SAFETY: a strong handle keeps the header alive.
        unsafe { self.ptr.as_ref() }
    }

    /// Loom models only: the shard the object was created in (untracked types: 0).
    #[cfg(loom)]
    pub(crate) fn shard_id(this: &Self) -> u32 {
        this.inner()
            .counts
            .shard
            .load(crate::sync::Ordering::Relaxed)
    }

    /// Whether the object has links (is tracked by type): a constant for sized types and
    /// slices, a bit of the counts for trait objects (`gc::value`).
    #[inline(always)]
    fn has_links(&self) -> bool {
        // SAFETY: a strong handle keeps the header alive.
        unsafe { has_links(self.ptr.as_ptr()) }
    }

    #[inline]
    fn links(&self) -> *const Links {
        debug_assert!(self.has_links());
        // SAFETY: only called for objects with links; the handle's metadata describes the
        // value (it came from the constructor or an unsizing coercion of it).
        unsafe { links_of(self.ptr.as_ptr()) }
    }

    /// The object's identity for death notices (`gc::watch`): its box's address, the same
    /// for every handle and for the object's whole life.
    #[inline]
    pub(crate) fn object_id(this: &Self) -> usize {
        this.ptr.as_ptr().cast::<u8>() as usize
    }

    /// Introspection (`gc::introspect`, `GcAny`): the object's links, if it is tracked.
    #[inline]
    pub(crate) fn tracked_links(this: &Self) -> Option<*const Links> {
        this.has_links().then(|| this.links())
    }

    /// A shared use of this handle: whether the value is alive. Also ends `get_mut`'s
    /// exemption (the `&mut` it made from this, then the only handle, is over) by putting
    /// the object back into generation 0. One relaxed load and one flag test on the fast path.
    /// (For a trait object, the same test works whether the object has links or not:
    /// `FLAG_DEAD` and `FLAG_UNIQUE` are only ever set on objects that have them.)
    #[inline]
    fn check_alive(&self) -> bool {
        if T::__TRACKED == Tracked::No {
            return true;
        }
        let f = flags_in(self.inner().counts.load_relaxed());
        if f & (FLAG_DEAD | FLAG_UNIQUE) == 0 {
            return true;
        }
        self.check_alive_slow(f)
    }

    #[cold]
    #[inline(never)]
    fn check_alive_slow(&self, f: usize) -> bool {
        if f & FLAG_DEAD != 0 {
            return false;
        }
        // SAFETY: a live tracked object of this flavor (this handle keeps it).
        unsafe { space().retrack(self.links()) };
        true
    }

    /// The value, or `None` if the cycle collector has already destroyed it. That can only
    /// be seen from `Drop` impls (and what they call) of a garbage cycle being torn down, or
    /// through a handle such a `Drop` stashed away.
    ///
    /// ```
    /// let g = pyheap::Gc::new(1);
    /// assert_eq!(pyheap::Gc::try_deref(&g), Some(&1));
    /// ```
    #[inline]
    pub fn try_deref(this: &Self) -> Option<&T> {
        if !this.check_alive() {
            None
        } else {
            // SAFETY: not dead and a strong handle exists, so the value is initialised and no
            // `&mut` to it exists (only `get_mut` makes one, from `&mut` of the only handle).
            Some(unsafe { &*this.inner().value.get() })
        }
    }

    /// Move the value out if this is the only strong handle. `Weak` handles stop upgrading.
    /// The value is not destroyed, so a finalizer does not run.
    ///
    /// ```
    /// use pyheap::Gc;
    /// let a = Gc::new(3);
    /// let b = a.clone();
    /// let a = Gc::try_unwrap(a).unwrap_err();
    /// drop(b);
    /// assert_eq!(Gc::try_unwrap(a).ok(), Some(3));
    /// ```
    pub fn try_unwrap(this: Self) -> Result<T, Self>
    where
        T: Sized,
    {
        Gc::take(this).map(|(value, _)| value)
    }

    /// A mutable reference to the value if there is no other `Gc` or `Weak` handle to it.
    ///
    /// While the reference may live, the object is out of the collector's generations (a
    /// scan running on another thread must not read the value); taking it out waits for a
    /// running scan to finish. The next shared use of the handle (`Deref`, `clone`,
    /// `downgrade`, ...) puts it back, and so does a collection that finds the handle inside
    /// a traced value.
    ///
    /// ```
    /// use pyheap::Gc;
    /// let mut a = Gc::new(1);
    /// *Gc::get_mut(&mut a).unwrap() += 1;
    /// let b = a.clone();
    /// assert!(Gc::get_mut(&mut a).is_none());
    /// assert_eq!(*b, 2);
    /// ```
    pub fn get_mut(this: &mut Self) -> Option<&mut T> {
        if !Gc::make_unique(this) {
            return None;
        }
        // SAFETY: the only handle of any kind, borrowed mutably: no other handle can reach the
        // value for the lifetime of the borrow, and no scan reads it (it is in no list).
        Some(unsafe { &mut *this.inner().value.get() })
    }

    /// `get_mut`'s test and its taking the object out of the generations: true if this is
    /// the only handle of any kind, which the caller may then borrow the value through
    /// mutably for as long as it borrows `this`.
    fn make_unique(this: &mut Self) -> bool {
        let c = &this.inner().counts;
        // Unique means: no other strong handle and no `Weak` (weak 1: the token) exist, so
        // nobody can clone, upgrade or downgrade. `Arc::get_mut` locks the weak count to read
        // both atomically; here three Acquire loads (each pairing with the Release of the
        // drops they read from) do: weak, strong, weak again. A `Weak` created after the
        // first load needs a second strong handle to downgrade from; if that handle is gone
        // by the strong load, its downgrade happened before, and the last load sees the
        // `Weak` (or its drop, after which nobody can upgrade). A handle upgraded from a
        // `Weak` the first load saw gone was upgraded before that `Weak`'s drop, so the strong
        // load sees it. (A handle introspection takes is checked for under the shard lock.)
        if c.weak() != 1 || c.strong() != 1 || c.weak() != 1 || !this.check_alive() {
            return false;
        }
        if this.has_links() {
            // SAFETY: a live tracked object whose only handle was ours, borrowed mutably.
            return unsafe { space().untrack_unique(this.links()) };
        }
        true
    }

    /// Number of strong handles (`sys.getrefcount(x) - 1`). Other threads may change it at
    /// any moment.
    ///
    /// ```
    /// let a = pyheap::Gc::new(());
    /// let _b = a.clone();
    /// assert_eq!(pyheap::Gc::strong_count(&a), 2);
    /// ```
    #[inline]
    pub fn strong_count(this: &Self) -> usize {
        this.inner().counts.strong()
    }

    /// Number of `Weak` handles.
    ///
    /// ```
    /// use pyheap::Gc;
    /// let a = Gc::new(());
    /// let _w = Gc::downgrade(&a);
    /// assert_eq!(Gc::weak_count(&a), 1);
    /// ```
    #[inline]
    pub fn weak_count(this: &Self) -> usize {
        this.inner().counts.weak() - 1
    }

    /// Make a `Weak` handle to this object.
    ///
    /// ```
    /// use pyheap::Gc;
    /// let a = Gc::new(1);
    /// let w = Gc::downgrade(&a);
    /// assert!(Gc::ptr_eq(&w.upgrade().unwrap(), &a));
    /// ```
    pub fn downgrade(this: &Self) -> Weak<T> {
        this.check_alive();
        this.inner().counts.inc_weak();
        Weak {
            ptr: this.ptr,
            _owns: PhantomData,
        }
    }

    /// Whether two handles point to the same object (Python's `is`).
    ///
    /// ```
    /// use pyheap::Gc;
    /// let a = Gc::new(1);
    /// assert!(Gc::ptr_eq(&a, &a.clone()));
    /// assert!(!Gc::ptr_eq(&a, &Gc::new(1)));
    /// ```
    #[inline]
    pub fn ptr_eq(this: &Self, other: &Self) -> bool {
        // Addresses only (as `Arc::ptr_eq`): the length of a slice handle is not compared.
        this.ptr.cast::<u8>() == other.ptr.cast::<u8>()
    }

    /// Whether the collector tracks this object (`gc.is_tracked`): true for live values of
    /// types that may hold a `Gc`.
    ///
    /// ```
    /// use pyheap::Gc;
    /// assert!(!Gc::is_tracked(&Gc::new(String::new())));
    /// assert!(Gc::is_tracked(&Gc::new(std::sync::Mutex::new(Vec::<Gc<u8>>::new()))));
    /// ```
    #[inline]
    pub fn is_tracked(this: &Self) -> bool {
        this.has_links() && this.check_alive()
    }

    #[cold]
    #[inline(never)]
    fn drop_slow(&mut self) {
        if self.has_links() {
            let l = self.links();
            // The strong count just reached zero (with the Acquire fence); the header is alive
            // (the token is held). A dead object's value is gone already (the collector
            // released its pin before this), so only the token remains to release.
            // SAFETY: as just said; otherwise the object dies now, by refcount.
            unsafe {
                if C::flags(l) & FLAG_DEAD != 0 {
                    release_token::<C>(l);
                } else {
                    <super::space::Shared as crate::gc::flavor::Flavor>::object_died(l);
                }
            }
        } else {
            // SAFETY: untracked objects are never dead while a handle exists; this was the last
            // strong handle, so the value is dropped once, then the token is released (also if
            // the drop unwinds, as `Arc` frees its allocation when `T`'s `drop` panics).
            unsafe {
                let mut panics = crate::gc::panics::FirstPanic::new();
                crate::gc::watch::fire_catching(
                    true,
                    self.ptr.as_ptr().cast::<u8>() as usize,
                    &mut panics,
                );
                let _token = ReleaseToken(self.ptr);
                ManuallyDrop::drop(&mut *self.inner().value.get());
                drop(_token);
                panics.resume();
            }
        }
    }
}

impl<T: ?Sized + GcValue> Drop for Gc<T> {
    #[inline]
    fn drop(&mut self) {
        if self.inner().counts.drop_strong() {
            self.drop_slow();
        }
    }
}

impl<T: ?Sized + GcValue> Clone for Gc<T> {
    /// Another strong handle to the same object (one atomic add, as `Arc::clone`).
    ///
    /// ```
    /// let a = pyheap::Gc::new(1);
    /// let b = a.clone();
    /// assert!(pyheap::Gc::ptr_eq(&a, &b));
    /// ```
    #[inline]
    fn clone(&self) -> Self {
        // `FLAG_UNIQUE` is only ever set on objects with links, so a trait object watches it
        // whatever its object.
        let watch = if T::__TRACKED == Tracked::No {
            0
        } else {
            FLAG_UNIQUE
        };
        self.inner().counts.clone_strong_watching(watch, |old| {
            // A second handle now exists: `get_mut`'s exemption must end.
            self.check_alive_slow(flags_in(old));
        });
        Gc {
            ptr: self.ptr,
            _owns: PhantomData,
        }
    }
}

// The traits both flavors implement the same way, on the `Gc`/`Weak` of this module.
crate::gc::handle_impls::handle_impls!(concurrent: true);

// `as_ptr`, `into_raw`, `from_raw` and friends (`gc::raw`).
crate::gc::raw::raw_api!(path: "pyheap");

// `new_uninit`, `new_uninit_slice`, `assume_init` (`gc::uninit`).
crate::gc::uninit::uninit_api!(path: "pyheap", bounds: [ + Send + Sync]);

/// Point a tracked object at another vtable with the same head (`assume_init`,
/// `gc::uninit`): under the space lock, which every scan and every walk of the lists
/// (introspection) holds throughout, so none reads the vtable's functions across the change;
/// other threads may read the word's head meanwhile (`counts_of`), which is the same in both.
///
/// # Safety
/// `l` is a live tracked object of this flavor (the caller holds a handle) whose value is a
/// valid value of the new vtable's type, and both vtables have the same head.
unsafe fn swap_vtable(l: *const Links, head: *const crate::gc::header::VTableHead) {
    space().with_space_lock(|| {
        // SAFETY: per the caller; the lock excludes the readers of the functions.
        unsafe { (*l).replace_vtable(head) }
    })
}

// `unwrap_or_clone`, `pin`, conversions, `Error`, marker traits (`gc::std_api`).
crate::gc::std_api::std_api!(path: "pyheap", bounds: [ + Send + Sync]);

// `unsize!`'s hidden step and `downcast` (`gc::unsize`).
crate::gc::unsize::unsize_impls!(
    any: dyn core::any::Any + Send + Sync,
    any_name: "dyn Any + Send + Sync",
    path: "pyheap"
);

impl<T: Trace + Send + Sync + 'static> From<T> for Gc<T> {
    /// Same as [`Gc::new`].
    ///
    /// ```
    /// let g: pyheap::Gc<u8> = 5.into();
    /// assert_eq!(*g, 5);
    /// ```
    fn from(value: T) -> Self {
        Gc::new(value)
    }
}

impl<T: Trace + Send + Sync + 'static + Default> Default for Gc<T> {
    /// `Gc::new(T::default())`.
    ///
    /// ```
    /// let g: pyheap::Gc<u32> = Default::default();
    /// assert_eq!(*g, 0);
    /// ```
    fn default() -> Self {
        Gc::new(T::default())
    }
}

impl<T: Trace + 'static> Weak<T> {
    /// A `Weak` that points nowhere and never upgrades.
    ///
    /// ```
    /// let w: pyheap::Weak<u8> = pyheap::Weak::new();
    /// assert!(w.upgrade().is_none());
    /// ```
    pub const fn new() -> Self {
        Weak {
            ptr: dangling_box(),
            _owns: PhantomData,
        }
    }
}

impl<T: ?Sized + GcValue> Weak<T> {
    /// The object's box, or `None` for a `Weak` that points nowhere.
    #[inline]
    fn object(&self) -> Option<NonNull<Inner<T>>> {
        if is_dangling(self.ptr) {
            None
        } else {
            Some(self.ptr)
        }
    }

    /// A strong handle if the object is alive (Python's `r()`). Fails on an object whose last
    /// strong handle is gone, that is dead, or whose weak handles the collector cleared; waits
    /// (briefly) while a collection is deciding whether the object is garbage.
    ///
    /// ```
    /// use pyheap::Gc;
    /// let a = Gc::new(1);
    /// let w = Gc::downgrade(&a);
    /// assert_eq!(w.upgrade().map(|g| *g), Some(1));
    /// ```
    pub fn upgrade(&self) -> Option<Gc<T>> {
        let p = self.object()?;
        // SAFETY: a `Weak` keeps the header alive.
        if !unsafe { p.as_ref() }.counts.try_upgrade() {
            return None;
        }
        Some(Gc {
            ptr: p,
            _owns: PhantomData,
        })
    }

    /// Number of strong handles, or 0 if the object is gone or its weak handles were
    /// cleared by the collector.
    ///
    /// ```
    /// use pyheap::Gc;
    /// let a = Gc::new(1);
    /// let w = Gc::downgrade(&a);
    /// assert_eq!(w.strong_count(), 1);
    /// drop(a);
    /// assert_eq!(w.strong_count(), 0);
    /// ```
    pub fn strong_count(&self) -> usize {
        let Some(p) = self.object() else { return 0 };
        // SAFETY: a `Weak` keeps the header alive.
        let w = unsafe { p.as_ref() }.counts.snapshot();
        if flags_in(w) & (FLAG_DEAD | FLAG_WEAKS_CLEARED) != 0 {
            0
        } else {
            C::strong_of(w)
        }
    }

    /// Number of `Weak` handles to the object, or 0 if no strong handle is left (as `Arc`).
    ///
    /// ```
    /// use pyheap::Gc;
    /// let a = Gc::new(1);
    /// let w = Gc::downgrade(&a);
    /// let _w2 = w.clone();
    /// assert_eq!(w.weak_count(), 2);
    /// ```
    pub fn weak_count(&self) -> usize {
        let Some(p) = self.object() else { return 0 };
        // SAFETY: a `Weak` keeps the header alive.
        let c = &unsafe { p.as_ref() }.counts;
        if c.strong() == 0 {
            0
        } else {
            c.weak() - 1
        }
    }

    /// Whether two `Weak`s point to the same object (two `Weak::new()` are equal).
    ///
    /// ```
    /// use pyheap::{Gc, Weak};
    /// let a = Gc::new(1);
    /// assert!(Weak::ptr_eq(&Gc::downgrade(&a), &Gc::downgrade(&a)));
    /// assert!(Weak::<u8>::new().ptr_eq(&Weak::new()));
    /// ```
    pub fn ptr_eq(&self, other: &Self) -> bool {
        // Addresses only; two `Weak::new()` share the dangling address.
        self.ptr.cast::<u8>() == other.ptr.cast::<u8>()
    }
}

impl<T: ?Sized + GcValue> Drop for Weak<T> {
    fn drop(&mut self) {
        if let Some(p) = self.object() {
            // SAFETY: this `Weak` holds one weak reference; if it was the last reference of any
            // kind (token included), nobody else can reach the allocation.
            unsafe {
                if p.as_ref().counts.release_weak(has_links(p.as_ptr())) {
                    deallocate(p);
                }
            }
        }
    }
}

impl<T: ?Sized + GcValue> Clone for Weak<T> {
    /// Another weak handle to the same object.
    ///
    /// ```
    /// let a = pyheap::Gc::new(1);
    /// let w = pyheap::Gc::downgrade(&a);
    /// assert!(w.clone().upgrade().is_some());
    /// ```
    fn clone(&self) -> Self {
        if let Some(p) = self.object() {
            // SAFETY: the header is alive while this `Weak` exists.
            unsafe { p.as_ref() }.counts.inc_weak();
        }
        Weak {
            ptr: self.ptr,
            _owns: PhantomData,
        }
    }
}

impl<T: Trace + 'static> Default for Weak<T> {
    /// Same as [`Weak::new`].
    ///
    /// ```
    /// let w: pyheap::Weak<u8> = Default::default();
    /// assert!(w.upgrade().is_none());
    /// ```
    fn default() -> Self {
        Weak::new()
    }
}

// ---------------------------------------------------------------------------------------
// Slices and `str` (`gc::slice` has the layout and the vtables).
// ---------------------------------------------------------------------------------------

impl<T: Trace + Send + Sync + 'static> Gc<[T]> {
    /// A `Gc<[T]>` holding the `len` elements at `src`, moved bitwise.
    ///
    /// # Safety
    /// `src` points at `len` initialised elements whose ownership passes to the new object
    /// (the caller must not drop them), or `T: Copy`.
    unsafe fn from_raw_elements(src: *const T, len: usize) -> Self {
        let b = slice::allocate_slice::<C, T>(len);
        // SAFETY: the destination holds `len` uninitialised elements, disjoint from `src`;
        // per the caller the elements at `src` are ours to move.
        unsafe {
            slice::move_into(b, src, len);
            Gc::finish_slice(b)
        }
    }

    /// A slice object of `len` elements left as allocated, or with every byte zero: for
    /// element types every bit pattern of which, uninitialised memory included, is a value
    /// (`MaybeUninit`).
    ///
    /// # Safety
    /// As just said.
    unsafe fn new_slice_unwritten(len: usize, zeroed: bool) -> Self {
        let b = slice::allocate_slice::<C, T>(len);
        // SAFETY: per the caller the elements need no writing to be initialised; zeroing
        // writes the `len` elements of the fresh allocation, which nobody else reaches yet.
        unsafe {
            if zeroed {
                ptr::write_bytes((*b.as_ptr()).value.get() as *mut T, 0, len);
            }
            Gc::finish_slice(b)
        }
    }

    /// The first handle of a slice object whose elements are all initialised.
    ///
    /// # Safety
    /// `b` came from `slice::allocate_slice::<C, T>` and every element is initialised.
    unsafe fn finish_slice(b: NonNull<Inner<[T]>>) -> Self {
        if T::MAY_CONTAIN_GC {
            // SAFETY: a fully built tracked object, in no list, known to nobody else.
            unsafe { space().track_new(links_of(b.as_ptr())) };
        }
        Gc {
            ptr: b,
            _owns: PhantomData,
        }
    }
}

impl<T: Trace + Send + Sync + 'static> From<Vec<T>> for Gc<[T]> {
    /// Move the elements of `v` into a new `Gc<[T]>` (tracked iff `T::MAY_CONTAIN_GC`).
    ///
    /// ```
    /// use pyheap::Gc;
    /// let g: Gc<[u32]> = Gc::from(vec![1, 2, 3]);
    /// assert_eq!(&*g, &[1, 2, 3]);
    /// assert!(!Gc::is_tracked(&g));
    /// ```
    fn from(mut v: Vec<T>) -> Self {
        let len = v.len();
        // SAFETY: the elements are moved out: the `Vec` forgets them before it is dropped
        // (only its buffer is freed), and the new object owns them. If the allocation
        // panics (too large), it does so before copying, and `set_len` has not run yet.
        unsafe {
            let g = Gc::from_raw_elements(v.as_ptr(), len);
            v.set_len(0);
            g
        }
    }
}

impl<T: Trace + Send + Sync + Clone + 'static> From<&[T]> for Gc<[T]> {
    /// Clone the elements into a new `Gc<[T]>`.
    ///
    /// ```
    /// use pyheap::Gc;
    /// let g: Gc<[String]> = Gc::from(&["a".to_string(), "b".to_string()][..]);
    /// assert_eq!(g[1], "b");
    /// ```
    fn from(v: &[T]) -> Self {
        let b = slice::allocate_slice::<C, T>(v.len());
        // SAFETY: a fresh object of `v.len()` elements, known to nobody else; `clone_into`
        // initialises every element (or frees the object and unwinds).
        unsafe {
            slice::clone_into(b, v);
            Gc::finish_slice(b)
        }
    }
}

impl<T: Trace + Send + Sync + 'static> From<Box<[T]>> for Gc<[T]> {
    /// Move the elements of a boxed slice into a new `Gc<[T]>`.
    ///
    /// ```
    /// use pyheap::Gc;
    /// let g: Gc<[u8]> = Gc::from(vec![7u8; 3].into_boxed_slice());
    /// assert_eq!(g.len(), 3);
    /// ```
    fn from(v: Box<[T]>) -> Self {
        Gc::from(v.into_vec())
    }
}

impl<T: Trace + Send + Sync + 'static> FromIterator<T> for Gc<[T]> {
    /// Collect the elements into a new `Gc<[T]>`.
    ///
    /// ```
    /// use pyheap::Gc;
    /// let g: Gc<[u64]> = (1..=4).collect();
    /// assert_eq!(g.iter().sum::<u64>(), 10);
    /// ```
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        Gc::from(iter.into_iter().collect::<Vec<T>>())
    }
}

impl<T: Trace + Send + Sync + 'static> Default for Gc<[T]> {
    /// An empty slice.
    ///
    /// ```
    /// let g: pyheap::Gc<[u8]> = Default::default();
    /// assert!(g.is_empty());
    /// ```
    fn default() -> Self {
        Gc::from(Vec::new())
    }
}

impl From<&str> for Gc<str> {
    /// Copy the string into a new (untracked) `Gc<str>`, with a 16-byte header.
    ///
    /// ```
    /// use pyheap::Gc;
    /// let s: Gc<str> = Gc::from("hello");
    /// assert_eq!(&*s, "hello");
    /// let t = std::thread::spawn(move || s.to_uppercase()).join().unwrap();
    /// assert_eq!(t, "HELLO");
    /// ```
    fn from(s: &str) -> Self {
        let b = slice::allocate_slice::<C, u8>(s.len());
        // SAFETY: `u8` is `Copy`, so copying the bytes takes nothing from `s`; all `s.len()`
        // elements are then initialised.
        let bytes = ManuallyDrop::new(unsafe {
            slice::move_into(b, s.as_ptr(), s.len());
            Gc::<[u8]>::finish_slice(b)
        });
        // SAFETY: `GcBox<C, [u8]>` and `GcBox<C, str>` have the same layout and metadata (the
        // length in bytes), both types are untracked, and the bytes are valid UTF-8 (copied
        // from a `str`); the handle's strong reference moves to the new `Gc`.
        let ptr = unsafe { NonNull::new_unchecked(bytes.ptr.as_ptr() as *mut Inner<str>) };
        Gc {
            ptr,
            _owns: PhantomData,
        }
    }
}

impl From<String> for Gc<str> {
    /// Copy the string into a new `Gc<str>`.
    ///
    /// ```
    /// let s: pyheap::Gc<str> = String::from("x").into();
    /// assert_eq!(&*s, "x");
    /// ```
    fn from(s: String) -> Self {
        Gc::from(s.as_str())
    }
}

impl From<Box<str>> for Gc<str> {
    /// Copy the string into a new `Gc<str>`.
    ///
    /// ```
    /// let s: pyheap::Gc<str> = Box::<str>::from("x").into();
    /// assert_eq!(&*s, "x");
    /// ```
    fn from(s: Box<str>) -> Self {
        Gc::from(&*s)
    }
}

impl Default for Gc<str> {
    /// An empty string.
    ///
    /// ```
    /// let s: pyheap::Gc<str> = Default::default();
    /// assert_eq!(&*s, "");
    /// ```
    fn default() -> Self {
        Gc::from("")
    }
}

impl<T: Trace + Send + Sync + 'static> From<Box<T>> for Gc<T> {
    /// Move the boxed value into a new `Gc` (the box is freed).
    ///
    /// ```
    /// use pyheap::Gc;
    /// let g: Gc<u32> = Gc::from(Box::new(5));
    /// assert_eq!(*g, 5);
    /// ```
    fn from(b: Box<T>) -> Self {
        Gc::new(*b)
    }
}

impl<T: Trace + 'static> Gc<T> {
    /// A handle from the links of a tracked `T`, taking over one strong reference (a
    /// `GcAny`'s, in `downcast`).
    ///
    /// # Safety
    /// `p` is the links of a live tracked allocation of this flavor whose value is a `T`
    /// (its vtable's type is `T`), and the caller gives up one strong reference to it.
    pub(crate) unsafe fn from_tracked_links(p: *const Links) -> Self {
        // SAFETY: per the caller the allocation is a tracked `GcBox<C, T>`, whose box sits
        // where `box_of` computes, with the provenance of the whole allocation.
        let b = unsafe { crate::gc::vtable::box_of::<C, T>(p) };
        Gc {
            // SAFETY: derived from a non-null allocation.
            ptr: unsafe { NonNull::new_unchecked(b.cast_mut()) },
            _owns: PhantomData,
        }
    }
}
