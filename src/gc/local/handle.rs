//! The single-thread handles: [`Gc<T>`] and [`Weak<T>`] (`pyheap::unsync`).
//!
//! See `gc::header` for the layout and the invariants on the counts and flags that every
//! `unsafe` block here relies on; the short form is: a handle keeps the header alive (strong
//! handles collectively hold the value's weak token), and the value is initialised and
//! referenceable exactly while the token is held and `FLAG_DEAD` is clear.

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

use super::old_touched;
use super::space::with_space;
use crate::gc::destroy::{free_tracked, release_token};
use crate::gc::finalize::Finalize;
use crate::gc::header::{
    alloc_layout, dangling_box, is_dangling, is_fat, links_of, tracked_layout, Counts, GcBox,
    Links, LocalCounts, FLAG_DEAD, FLAG_FINALIZED, FLAG_UNIQUE, FLAG_WEAKS_CLEARED, STRONG_COUNT,
};
use crate::gc::panics::FirstPanic;
use crate::gc::slice;
use crate::gc::trace::{Trace, Tracer};
use crate::gc::value::{has_links, GcValue};
use crate::gc::vtable::{VTable, VTables};

type C = LocalCounts;
type Inner<T> = GcBox<C, T>;

/// A single-thread reference-counted pointer whose cycles are found by the collector.
///
/// Like `std::rc::Rc`: cloning adds a strong reference, the value is dropped the moment the
/// last strong handle goes (deterministically, like CPython's `ob_refcnt`). In addition,
/// values of types that may hold a `Gc` (`T::MAY_CONTAIN_GC`) are *tracked*: a cycle of them
/// that no handle outside the cycle reaches is freed by [`pyheap::collect()`](crate::collect)
/// or by an automatic collection. `Gc` is `!Send` and `!Sync`; every thread has its own
/// object space.
///
/// Header: 32 bytes in front of a tracked value, 8 bytes in front of an untracked one (on
/// 64-bit targets; see `tests/gc_layout.rs`).
///
/// ```
/// use pyheap::unsync::Gc;
/// let a = Gc::new(5);
/// let b = a.clone();
/// assert_eq!(Gc::strong_count(&a), 2);
/// assert_eq!(*b + 1, 6);
/// ```
///
/// # Unsized values
///
/// As with `Rc`, `T` may be a slice or `str`: `Gc<str>` (from `&str`, `String`, `Box<str>`)
/// and `Gc<[T]>` (from `Vec<T>`, `&[T]`, `Box<[T]>`, or `collect()`) are fat handles holding
/// the length. A `Gc<[T]>` is tracked iff `T` is (a `Gc<[Gc<Node>]>` can be part of a cycle
/// and is traced element by element; it stores its length in its header too, 40 bytes in
/// all); `Gc<str>` and slices of untracked elements keep the 8-byte header.
///
/// Trait objects: `Gc<dyn Trait>` for any trait declared with [`gc_dyn!`](crate::gc_dyn)
/// (`dyn Any`, `dyn Display`, `dyn Debug`, `dyn Error` are), made from a `Gc<T>` by
/// [`unsize!`](crate::unsize) (stable Rust has no unsizing coercion for user types), tracked
/// or not as the concrete `T` is; `Gc<dyn Any>` has [`Gc::downcast`]. `T` in `Gc<T>` is any
/// [`GcValue`]: a sized `Trace` type, a slice of them, `str`, or such a trait object.
///
/// ```
/// use pyheap::unsync::Gc;
/// let name: Gc<str> = Gc::from("node");
/// let nums: Gc<[u32]> = (1..=3).collect();
/// assert_eq!((&*name, &*nums), ("node", &[1, 2, 3][..]));
/// let kids: Gc<[Gc<u32>]> = Gc::from(vec![Gc::new(1), Gc::new(2)]);
/// assert!(!Gc::is_tracked(&name) && !Gc::is_tracked(&nums));
/// assert!(Gc::is_tracked(&kids)); // elements are handles: traced by the collector
/// ```
pub struct Gc<T: ?Sized + GcValue> {
    ptr: NonNull<Inner<T>>,
    _owns: PhantomData<T>,
}

/// A handle that does not keep its object alive; `upgrade()` gives a [`Gc`] while the object
/// lives (Python's `weakref.ref`).
///
/// A `Weak` into a garbage cycle stops upgrading before any finalizer or `Drop` of the cycle
/// runs, and stays that way even if a finalizer resurrects the cycle (as in CPython). Unlike
/// CPython, the "cleared" mark is on the object, not on each weak reference, so a `Weak`
/// made from a resurrected object after the collection does not upgrade either.
///
/// ```
/// use pyheap::unsync::Gc;
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
    _owns: PhantomData<T>,
}

/// Allocate a header with `counts` and an uninitialised value; tracked types get links with
/// `vtable` (not yet in any list). Returns the box pointer.
fn allocate<T: Trace + 'static>(counts: C, vtable: &'static VTable) -> NonNull<Inner<T>> {
    let (offset, layout) = if T::MAY_CONTAIN_GC {
        tracked_layout::<C, T>()
    } else {
        (0, Layout::new::<Inner<T>>())
    };
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

/// Free the allocation of `b`.
///
/// # Safety
/// The weak count of `b` reached zero (no handle, no token) and the value is gone.
unsafe fn deallocate<T: ?Sized + GcValue>(b: NonNull<Inner<T>>) {
    // Per the caller nobody else references the allocation; the box is still allocated, so
    // `Layout::for_value` may look at it (it reads only the pointer's metadata: all fields
    // are `UnsafeCell`s and nothing is read through the reference). A tracked allocation is
    // freed as its vtable says (this handle's type may be a view of it: `[T]` of an array
    // object, a trait object); an untracked one is just the box.
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

/// Run the finalizer of an object that refcounting is about to destroy (marking it
/// finalized first, so it never runs again).
///
/// # Safety
/// `l` is a tracked object being destroyed by `Gc::drop` (strong count zero, `FLAG_DEAD`
/// set, value intact) and `fin` its vtable's finalizer.
///
/// A panic of the finalizer is caught and returned, for the caller to resume once the value
/// is dropped and its memory released (the object dies all the same).
#[cold]
#[inline(never)]
unsafe fn finalize_now(l: *const Links, fin: unsafe fn(*const Links)) -> FirstPanic {
    let mut panics = FirstPanic::new();
    // SAFETY: per the caller the header is alive; no handle to the object exists (strong is
    // zero and weak upgrades fail), so the finalizer cannot resurrect it; it sees an intact
    // value.
    unsafe {
        (*l).set_flag(FLAG_FINALIZED);
        panics.run(|| fin(l));
    }
    panics
}

/// Releases the value's weak token when dropped, freeing the allocation if it was the last
/// weak reference: after the value's `drop`, also when that `drop` unwinds (as `Rc` frees its
/// allocation when `T`'s `drop` panics).
struct ReleaseToken<T: ?Sized + GcValue>(NonNull<Inner<T>>);

impl<T: ?Sized + GcValue> Drop for ReleaseToken<T> {
    #[inline]
    fn drop(&mut self) {
        // The guard is made right before the value is dropped, with the strong count at zero
        // and the token held (`ReleaseToken`'s users): the header is alive until this releases
        // the token, and if it was the last weak reference nobody else references the
        // allocation.
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

impl<T: Trace + 'static> Gc<T> {
    /// Put `value` in the object space and return the first handle. For a tracked type this
    /// counts toward generation 0 and may run an automatic collection first. That collection
    /// only *scans* (no user code runs): the `Drop`s and finalizers of the garbage it finds
    /// run at the thread's next safe point ([`gc::safe_point`](crate::unsync::gc::safe_point),
    /// an explicit collection, thread exit), so calling `Gc::new` while holding a lock that
    /// some garbage's `Drop` takes is safe — unless more garbage waits than the
    /// [teardown limit](crate::unsync::gc::set_teardown_limit) (10,000 objects by default;
    /// `set_teardown_limit(None)` removes it), for programs that never reach a safe point.
    ///
    /// ```
    /// let g = pyheap::unsync::Gc::new(vec![1, 2, 3]);
    /// assert_eq!(g.len(), 3);
    /// ```
    #[inline]
    pub fn new(value: T) -> Self {
        Self::new_with(value, &VTables::<C, T>::PLAIN)
    }

    #[inline]
    fn new_with(value: T, vtable: &'static VTable) -> Self {
        // One access to the space (and one init check) for the count and the link; no
        // closure around the allocation, so the value is not copied through a closure's state.
        let space = if T::MAY_CONTAIN_GC {
            with_space(|s| {
                s.before_tracked_alloc::<C>();
                ptr::from_ref(s)
            })
        } else {
            ptr::null()
        };
        let b = allocate::<T>(C::new_live(T::MAY_CONTAIN_GC), vtable);
        // SAFETY: `allocate` left the value field uninitialised and in bounds.
        unsafe {
            ptr::addr_of_mut!((*b.as_ptr()).value).write(UnsafeCell::new(ManuallyDrop::new(value)))
        };
        if T::MAY_CONTAIN_GC {
            // SAFETY: `space` is this thread's object space, valid for the thread's whole life
            // (see `with_space`); the object is new, fully built, tracked, in no list.
            unsafe { (*space).track(links_of(b.as_ptr())) };
        }
        Gc {
            ptr: b,
            _owns: PhantomData,
        }
    }

    /// Like [`Gc::new`], with `T`'s [`Finalize::finalize`] run once before the object is
    /// destroyed (by refcounting or by the collector, whichever comes first).
    ///
    /// `T` must be a tracked type (`T::MAY_CONTAIN_GC`); for other types, which can never be
    /// part of a cycle, use `Drop` (this is checked at compile time).
    ///
    /// ```
    /// use pyheap::{unsync::Gc, Finalize, Trace};
    /// use std::cell::RefCell;
    /// #[derive(Trace)]
    /// struct Obj(RefCell<Option<Gc<Obj>>>);
    /// impl Finalize for Obj {
    ///     fn finalize(&self) { println!("finalizing"); }
    /// }
    /// let a = Gc::new_finalized(Obj(RefCell::new(None)));
    /// *a.0.borrow_mut() = Some(a.clone());
    /// drop(a);
    /// assert_eq!(pyheap::collect(), 1); // prints "finalizing" first
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

    /// Build a value that holds a weak handle to itself. During `data_fn`, the `Weak` does
    /// not upgrade yet (it returns `None`).
    ///
    /// If `data_fn` panics, the allocation is released and the panic propagates.
    ///
    /// ```
    /// use pyheap::unsync::{Gc, Weak};
    /// use pyheap::Trace;
    /// #[derive(Trace)]
    /// struct Me { me: Weak<Me> }
    /// let g = Gc::new_cyclic(|w| Me { me: w.clone() });
    /// assert!(Gc::ptr_eq(&g.me.upgrade().unwrap(), &g));
    /// ```
    pub fn new_cyclic<F: FnOnce(&Weak<T>) -> T>(data_fn: F) -> Self {
        if T::MAY_CONTAIN_GC {
            with_space(|s| s.before_tracked_alloc::<C>());
        }
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
                // SAFETY: the header is alive (the `Weak` still holds it); the value was
                // never written, so the token stands for nothing and the strong count is 0.
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
        // strong count is 0, so `upgrade` failed).
        unsafe {
            ptr::addr_of_mut!((*b.as_ptr()).value).write(UnsafeCell::new(ManuallyDrop::new(value)));
            (*b.as_ptr()).counts.set_strong(1);
        }
        if T::MAY_CONTAIN_GC {
            // SAFETY: the object is now fully built and in no list.
            with_space(|s| unsafe { s.track(links_of(b.as_ptr())) });
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

    #[inline]
    fn is_dead(&self) -> bool {
        // SAFETY: objects with links have live links while a handle exists.
        self.has_links() && unsafe { (*self.links()).flags() } & FLAG_DEAD != 0
    }

    /// A shared use of this handle: whether the value is alive. Also ends the `get_mut`
    /// exemption: a `&self` on the handle proves that the `&mut` `get_mut` made from it (it
    /// borrowed this, then the only handle, mutably) is gone, so the object is tracked again.
    /// One flag test on the fast path, the same as `is_dead`.
    #[inline]
    fn check_alive(&self) -> bool {
        if !self.has_links() {
            return true;
        }
        // SAFETY: tracked types have live links while a handle exists.
        let f = unsafe { (*self.links()).flags() };
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
        let l = self.links();
        with_space(|s| {
            // During a pass (a `Trace` impl dereferencing a handle, which its contract
            // forbids) lists must not change: the object simply stays out one more while.
            if !s.in_pass.get() {
                // SAFETY: a live tracked object of this thread that `get_mut` unlinked (a
                // self-loop in no list); the `&mut` it handed out is over (see above).
                unsafe {
                    (*l).clear_flag(FLAG_UNIQUE);
                    s.track(l);
                }
            }
        });
        true
    }

    /// The value, or `None` if the cycle collector has already destroyed it. That can only
    /// be seen from `Drop` impls (and what they call) of a garbage cycle being torn down, or
    /// through a handle such a `Drop` stashed away.
    ///
    /// ```
    /// let g = pyheap::unsync::Gc::new(1);
    /// assert_eq!(pyheap::unsync::Gc::try_deref(&g), Some(&1));
    /// ```
    #[inline]
    pub fn try_deref(this: &Self) -> Option<&T> {
        if !this.check_alive() {
            None
        } else {
            // SAFETY: not dead and a strong handle exists, so the value is initialised and no
            // `&mut` to it exists (only `get_mut` makes one, which needs `&mut` of the only handle).
            Some(unsafe { &*this.inner().value.get() })
        }
    }

    /// Move the value out if this is the only strong handle. `Weak` handles stop upgrading.
    /// The value is not destroyed, so a finalizer does not run.
    ///
    /// ```
    /// use pyheap::unsync::Gc;
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
    /// collection triggered meanwhile, by `Gc::new` for instance, must not read the value);
    /// the next shared use of the handle (`Deref`, `try_deref`, `downgrade`, `is_tracked`)
    /// puts it back, and so does a collection that finds the handle inside a traced value
    /// (it then counts the object in that same collection): a cycle built through a handle
    /// that was only moved or cloned after `get_mut` is still found.
    ///
    /// ```
    /// use pyheap::unsync::Gc;
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
        // SAFETY: the only handle of any kind, borrowed mutably: no other handle can reach
        // the value for the lifetime of the borrow, and the collector does not either (the
        // object is in no generation list).
        Some(unsafe { &mut *this.inner().value.get() })
    }

    /// `get_mut`'s test and its taking the object out of the generations: true if this is
    /// the only handle of any kind, which the caller may then borrow the value through
    /// mutably for as long as it borrows `this`.
    fn make_unique(this: &mut Self) -> bool {
        let c = &this.inner().counts;
        if c.strong() != 1 || c.weak() != 1 || this.is_dead() {
            return false;
        }
        if this.has_links() {
            let l = this.links();
            // `l` is the header of a live tracked object of this thread, in a list unless
            // an earlier `get_mut` took it out already (no pass is running: user code is).
            // Out of every list, no collection traces the value while the `&mut` lives;
            // the next shared use of the handle re-tracks it.
            // SAFETY: as just said.
            unsafe {
                if (*l).flags() & FLAG_UNIQUE == 0 {
                    with_space(|s| s.untrack(l));
                    // In no list now: not old either (`gc::local::old_touched`); it is tracked
                    // again in generation 0.
                    old_touched::leave_oldest(l);
                    (*l).set_flag(FLAG_UNIQUE);
                }
            }
        }
        true
    }

    /// Number of strong handles (`sys.getrefcount(x) - 1`).
    ///
    /// ```
    /// let a = pyheap::unsync::Gc::new(());
    /// let _b = a.clone();
    /// assert_eq!(pyheap::unsync::Gc::strong_count(&a), 2);
    /// ```
    #[inline]
    pub fn strong_count(this: &Self) -> usize {
        this.inner().counts.strong()
    }

    /// Number of `Weak` handles.
    ///
    /// ```
    /// use pyheap::unsync::Gc;
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
    /// use pyheap::unsync::Gc;
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
    /// use pyheap::unsync::Gc;
    /// let a = Gc::new(1);
    /// assert!(Gc::ptr_eq(&a, &a.clone()));
    /// assert!(!Gc::ptr_eq(&a, &Gc::new(1)));
    /// ```
    #[inline]
    pub fn ptr_eq(this: &Self, other: &Self) -> bool {
        // Addresses only (as `Rc::ptr_eq`): the length of a slice handle is not compared.
        this.ptr.cast::<u8>() == other.ptr.cast::<u8>()
    }

    /// Whether the collector tracks this object (`gc.is_tracked`): true for live values of
    /// types that may hold a `Gc`.
    ///
    /// ```
    /// use pyheap::unsync::Gc;
    /// assert!(!Gc::is_tracked(&Gc::new(String::new())));
    /// assert!(Gc::is_tracked(&Gc::new(Vec::<Gc<u8>>::new())));
    /// ```
    #[inline]
    pub fn is_tracked(this: &Self) -> bool {
        this.has_links() && this.check_alive()
    }

    /// `Drop` left `left` strong handles: zero, or the object is watched (then it moves to
    /// the touched list, `gc::local::old_touched`).
    #[cold]
    #[inline(never)]
    fn drop_slow(&mut self, left: usize) {
        if self.has_links() && left != 0 {
            let l = self.links();
            // SAFETY: a live tracked object of this thread (a strong handle remains), watched
            // (the caller's test; nothing ran since).
            with_space(|s| unsafe { old_touched::lost_reference(s, l) });
            return;
        }
        if self.has_links() {
            let l = self.links();
            // The strong count just reached zero; the header is alive (the token is held).
            // The flags and the vtable come from one read of the header word.
            // SAFETY: as just said.
            let (f, vt) = unsafe { ((*l).flags(), (*l).vtable()) };
            if f & FLAG_DEAD != 0 {
                // SAFETY: a dead object's value is gone already (the collector released its
                // pin before this), so only the token remains to release.
                unsafe { release_token::<C>(l) };
                return;
            }
            let b = self.ptr;
            // The closure is this object's `destroy`, typed: `f` and `vt` were read before
            // `object_died_with` set `FLAG_DEAD`, which is the only flag it changes, so `f`
            // still tells whether the finalizer ran.
            // SAFETY: a live tracked object of this thread whose strong count just reached
            // zero, `FLAG_DEAD` clear; the closure destroys it once, as `space::destroy`.
            unsafe {
                with_space(|s| {
                    s.object_died_with::<C>(l, |l| {
                        let mut panics = FirstPanic::new();
                        if let Some(fin) = vt.finalize {
                            if f & FLAG_FINALIZED == 0 {
                                panics = finalize_now(l, fin);
                            }
                        }
                        // Death notices (`gc::watch`), before the value goes.
                        crate::gc::watch::fire_catching(
                            false,
                            b.as_ptr().cast::<u8>() as usize,
                            &mut panics,
                        );
                        // The value is initialised, `FLAG_DEAD` is set, nobody references
                        // it: dropped once, here. Then the token is released (also if the
                        // drop unwinds), then a finalizer's panic resumes.
                        let _token = ReleaseToken(b);
                        ManuallyDrop::drop(&mut *(*b.as_ptr()).value.get());
                        drop(_token);
                        panics.resume();
                    })
                })
            }
        } else {
            // SAFETY: untracked objects are never dead while a handle exists; this was the last
            // strong handle, so the value is dropped once, then the token is released (also if
            // the drop unwinds).
            unsafe {
                let mut panics = FirstPanic::new();
                crate::gc::watch::fire_catching(
                    false,
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
        let word = self.inner().counts.release();
        // One comparison: the last handle, or a watched object (an old one that lost a
        // reference: a candidate for the next collection of generation 1, see
        // `gc::local::old_touched`; only tracked objects are ever watched).
        if C::is_slow_drop(word) {
            self.drop_slow((word & STRONG_COUNT) as usize);
        }
    }
}

impl<T: ?Sized + GcValue> Clone for Gc<T> {
    /// Another strong handle to the same object.
    ///
    /// ```
    /// let a = pyheap::unsync::Gc::new(1);
    /// let b = a.clone();
    /// assert!(pyheap::unsync::Gc::ptr_eq(&a, &b));
    /// ```
    #[inline]
    fn clone(&self) -> Self {
        self.inner().counts.inc_strong();
        Gc {
            ptr: self.ptr,
            _owns: PhantomData,
        }
    }
}

// The traits both flavors implement the same way, on the `Gc`/`Weak` of this module.
crate::gc::handle_impls::handle_impls!(concurrent: false);

// `as_ptr`, `into_raw`, `from_raw` and friends (`gc::raw`).
crate::gc::raw::raw_api!(path: "pyheap::unsync");

// `new_uninit`, `new_uninit_slice`, `assume_init` (`gc::uninit`).
crate::gc::uninit::uninit_api!(path: "pyheap::unsync", bounds: []);

/// Point a tracked object of this thread at another vtable with the same head
/// (`assume_init`, `gc::uninit`). No pass runs while user code does, and no other thread
/// reaches the object.
///
/// # Safety
/// `l` is a live tracked object of this thread whose value is a valid value of the new
/// vtable's type, and both vtables have the same head.
unsafe fn swap_vtable(l: *const Links, head: *const crate::gc::header::VTableHead) {
    // SAFETY: per the caller.
    unsafe { (*l).replace_vtable(head) }
}

// `unwrap_or_clone`, `pin`, conversions, `Error`, marker traits (`gc::std_api`).
crate::gc::std_api::std_api!(path: "pyheap::unsync", bounds: []);

// `unsize!`'s hidden step and `downcast` (`gc::unsize`).
crate::gc::unsize::unsize_impls!(
    any: dyn core::any::Any,
    any_name: "dyn Any",
    path: "pyheap::unsync"
);

impl<T: Trace + 'static> From<T> for Gc<T> {
    /// Same as [`Gc::new`].
    fn from(value: T) -> Self {
        Gc::new(value)
    }
}

impl<T: Trace + 'static + Default> Default for Gc<T> {
    /// `Gc::new(T::default())`.
    ///
    /// ```
    /// let g: pyheap::unsync::Gc<u32> = Default::default();
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
    /// let w: pyheap::unsync::Weak<u8> = pyheap::unsync::Weak::new();
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

    /// Whether upgrading may succeed: some strong handle exists and the collector has not
    /// cleared this object's weak handles.
    #[inline]
    fn live(&self) -> Option<NonNull<Inner<T>>> {
        let p = self.object()?;
        // SAFETY: a `Weak` keeps the header alive.
        let strong = unsafe { p.as_ref() }.counts.strong();
        if strong == 0 {
            return None;
        }
        // SAFETY: the header is alive, with links if `has_links` says so.
        if unsafe { has_links(p.as_ptr()) }
            && unsafe { (*links_of(p.as_ptr())).flags() } & (FLAG_DEAD | FLAG_WEAKS_CLEARED) != 0
        {
            return None;
        }
        Some(p)
    }

    /// A strong handle if the object is alive (Python's `r()`).
    ///
    /// ```
    /// use pyheap::unsync::Gc;
    /// let a = Gc::new(1);
    /// let w = Gc::downgrade(&a);
    /// assert_eq!(w.upgrade().map(|g| *g), Some(1));
    /// ```
    pub fn upgrade(&self) -> Option<Gc<T>> {
        let p = self.live()?;
        // SAFETY: the header is alive and the value initialised (strong > 0, not dead).
        unsafe { p.as_ref() }.counts.inc_strong();
        Some(Gc {
            ptr: p,
            _owns: PhantomData,
        })
    }

    /// Number of strong handles, or 0 if the object is gone or its weak handles were
    /// cleared by the collector.
    ///
    /// ```
    /// use pyheap::unsync::Gc;
    /// let a = Gc::new(1);
    /// let w = Gc::downgrade(&a);
    /// assert_eq!(w.strong_count(), 1);
    /// drop(a);
    /// assert_eq!(w.strong_count(), 0);
    /// ```
    pub fn strong_count(&self) -> usize {
        match self.live() {
            // SAFETY: the header is alive.
            Some(p) => unsafe { p.as_ref() }.counts.strong(),
            None => 0,
        }
    }

    /// Number of `Weak` handles to the object, or 0 if no strong handle is left (as `Rc`).
    ///
    /// ```
    /// use pyheap::unsync::Gc;
    /// let a = Gc::new(1);
    /// let w = Gc::downgrade(&a);
    /// let _w2 = w.clone();
    /// assert_eq!(w.weak_count(), 2);
    /// ```
    pub fn weak_count(&self) -> usize {
        match self.object() {
            Some(p) => {
                // SAFETY: a `Weak` keeps the header alive.
                let c = &unsafe { p.as_ref() }.counts;
                if c.strong() == 0 {
                    0
                } else {
                    c.weak() - 1
                }
            }
            None => 0,
        }
    }

    /// Whether two `Weak`s point to the same object (two `Weak::new()` are equal).
    ///
    /// ```
    /// use pyheap::unsync::{Gc, Weak};
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
    /// let a = pyheap::unsync::Gc::new(1);
    /// let w = pyheap::unsync::Gc::downgrade(&a);
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
    fn default() -> Self {
        Weak::new()
    }
}

// ---------------------------------------------------------------------------------------
// Slices and `str`.
// ---------------------------------------------------------------------------------------

impl<T: Trace + 'static> Gc<[T]> {
    /// A `Gc<[T]>` holding the `len` elements at `src`, moved bitwise.
    ///
    /// # Safety
    /// `src` points at `len` initialised elements whose ownership passes to the new object
    /// (the caller must not drop them), or `T: Copy`.
    unsafe fn from_raw_elements(src: *const T, len: usize) -> Self {
        let b = Self::begin_slice(len);
        // SAFETY: the destination holds `len` uninitialised elements, disjoint from `src`;
        // per the caller the elements at `src` are ours to move.
        unsafe {
            slice::move_into(b, src, len);
            Self::finish_slice(b)
        }
    }

    /// A slice object of `len` elements left as allocated, or with every byte zero: for
    /// element types every bit pattern of which, uninitialised memory included, is a value
    /// (`MaybeUninit`).
    ///
    /// # Safety
    /// As just said.
    unsafe fn new_slice_unwritten(len: usize, zeroed: bool) -> Self {
        let b = Self::begin_slice(len);
        // SAFETY: per the caller the elements need no writing to be initialised; zeroing
        // writes the `len` elements of the fresh allocation, which nobody else reaches yet.
        unsafe {
            if zeroed {
                ptr::write_bytes((*b.as_ptr()).value.get() as *mut T, 0, len);
            }
            Self::finish_slice(b)
        }
    }

    /// Account for the allocation (tracked types), then allocate the object with `len`
    /// uninitialised elements, tracked by no list yet.
    fn begin_slice(len: usize) -> NonNull<Inner<[T]>> {
        if T::MAY_CONTAIN_GC {
            // Before the allocation, as `Gc::new`: a collection here sees no half-built object;
            // the elements still belong to the caller (untracked memory), so they are roots.
            with_space(|s| s.before_tracked_alloc::<C>());
        }
        slice::allocate_slice::<C, T>(len)
    }

    /// The first handle of an object from `begin_slice`.
    ///
    /// # Safety
    /// Every element of `b` is initialised.
    unsafe fn finish_slice(b: NonNull<Inner<[T]>>) -> Self {
        if T::MAY_CONTAIN_GC {
            // SAFETY: a fully built tracked object of this thread, in no list; its links are
            // in front of the box as `links_of` computes.
            with_space(|s| unsafe { s.track(links_of(b.as_ptr())) });
        }
        Gc {
            ptr: b,
            _owns: PhantomData,
        }
    }
}

impl<T: Trace + 'static> From<Vec<T>> for Gc<[T]> {
    /// Move the elements of `v` into a new `Gc<[T]>` (tracked iff `T::MAY_CONTAIN_GC`).
    ///
    /// ```
    /// use pyheap::unsync::Gc;
    /// let g: Gc<[u32]> = Gc::from(vec![1, 2, 3]);
    /// assert_eq!(&*g, &[1, 2, 3]);
    /// assert!(!Gc::is_tracked(&g));
    /// ```
    fn from(mut v: Vec<T>) -> Self {
        let len = v.len();
        // SAFETY: the elements are moved out: the `Vec` forgets them before it is dropped
        // (only its buffer is freed), and `from_raw_elements` takes ownership of them. If it
        // panics (too large), it does so before copying, and `set_len` has not run yet.
        unsafe {
            let g = Gc::from_raw_elements(v.as_ptr(), len);
            v.set_len(0);
            g
        }
    }
}

impl<T: Trace + Clone + 'static> From<&[T]> for Gc<[T]> {
    /// Clone the elements into a new `Gc<[T]>`.
    ///
    /// ```
    /// use pyheap::unsync::Gc;
    /// let g: Gc<[String]> = Gc::from(&["a".to_string(), "b".to_string()][..]);
    /// assert_eq!(g[1], "b");
    /// ```
    fn from(v: &[T]) -> Self {
        let b = Gc::<[T]>::begin_slice(v.len());
        // SAFETY: a fresh object of `v.len()` elements in no list, known to nobody else;
        // `clone_into` initialises every element (or frees the object and unwinds). A `clone`
        // may run any code (even a collection): the object is in no list yet.
        unsafe { slice::clone_into(b, v) };
        // SAFETY: all `v.len()` elements are initialised.
        unsafe { Gc::finish_slice(b) }
    }
}

impl<T: Trace + 'static> From<Box<[T]>> for Gc<[T]> {
    /// Move the elements of a boxed slice into a new `Gc<[T]>`.
    ///
    /// ```
    /// use pyheap::unsync::Gc;
    /// let g: Gc<[u8]> = Gc::from(vec![7u8; 3].into_boxed_slice());
    /// assert_eq!(g.len(), 3);
    /// ```
    fn from(v: Box<[T]>) -> Self {
        Gc::from(v.into_vec())
    }
}

impl<T: Trace + 'static> FromIterator<T> for Gc<[T]> {
    /// Collect the elements into a new `Gc<[T]>`.
    ///
    /// ```
    /// use pyheap::unsync::Gc;
    /// let g: Gc<[u64]> = (1..=4).collect();
    /// assert_eq!(g.iter().sum::<u64>(), 10);
    /// ```
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        Gc::from(iter.into_iter().collect::<Vec<T>>())
    }
}

impl<T: Trace + 'static> Default for Gc<[T]> {
    /// An empty slice.
    ///
    /// ```
    /// let g: pyheap::unsync::Gc<[u8]> = Default::default();
    /// assert!(g.is_empty());
    /// ```
    fn default() -> Self {
        Gc::from(Vec::new())
    }
}

impl From<&str> for Gc<str> {
    /// Copy the string into a new (untracked) `Gc<str>`, with an 8-byte header.
    ///
    /// ```
    /// use pyheap::unsync::Gc;
    /// let s: Gc<str> = Gc::from("hello");
    /// assert_eq!(&*s, "hello");
    /// assert_eq!(s.to_uppercase(), "HELLO");
    /// ```
    fn from(s: &str) -> Self {
        // SAFETY: `u8` is `Copy`, so copying the bytes takes nothing from `s`.
        let bytes = unsafe { Gc::<[u8]>::from_raw_elements(s.as_ptr(), s.len()) };
        let bytes = ManuallyDrop::new(bytes);
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
    /// let s: pyheap::unsync::Gc<str> = String::from("x").into();
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
    /// let s: pyheap::unsync::Gc<str> = Box::<str>::from("x").into();
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
    /// let s: pyheap::unsync::Gc<str> = Default::default();
    /// assert_eq!(&*s, "");
    /// ```
    fn default() -> Self {
        Gc::from("")
    }
}

impl<T: Trace + 'static> From<Box<T>> for Gc<T> {
    /// Move the boxed value into a new `Gc` (the box is freed).
    ///
    /// ```
    /// use pyheap::unsync::Gc;
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
