//! Trait objects: [`unsize!`](crate::unsize) turns a `Gc<T>` into a `Gc<dyn Trait>` (or a
//! `Gc<[T; N]>` into a `Gc<[T]>`), for either flavor, `Gc` and `Weak`, on stable Rust; and
//! `downcast` takes a `Gc<dyn Any>` back to its type.
//!
//! # Design
//!
//! std's `Rc<T>` becomes `Rc<dyn Trait>` through `CoerceUnsized`, which only std may
//! implement on stable. What the language does offer on stable is the same coercion on a
//! *reference to a struct* whose last field holds the value: `&GcBox<C, T>` coerces to
//! `&GcBox<C, dyn Trait>` (struct unsizing, through `UnsafeCell<ManuallyDrop<T>>`). So each
//! handle has a hidden step, `__pyheap_unsize`, that lends a closure the `&GcBox` of its
//! object; the macro's closure is `|b| b`, and the coercion happens at its return, by the
//! compiler, to exactly the type named in the macro. The handle then keeps the returned
//! reference's metadata on its own pointer (same address, new metadata, the provenance of
//! the whole allocation: [`with_provenance_of`]) and gives up the old one: no count changes,
//! no allocation, nothing for the collector to see.
//!
//! Nothing else is needed for the result to work, because the collector never used the
//! handle's type: a tracked object's header has its own per-type vtable (`gc::vtable`, built
//! by the constructor from the concrete type), which traces, finalizes, drops and frees it.
//! The handle only needs to find the links (always [`links_to_box`] before the box, a function
//! of the value's alignment, which the trait object's metadata gives) and to know whether they
//! exist: a `dyn` type says "each object says" ([`GcValue`]), and every object carries that bit
//! from creation (`Counts::has_links`). So a tracked and an untracked concrete type can hide
//! behind the same `dyn Trait`, and any existing `Gc<T>` can be unsized, as with `Rc`.
//!
//! # Why the hidden step is safe to call with any closure
//!
//! **Invariant (box references):** code outside this crate can only hold a `&GcBox<C, X>`
//! as the argument of such a closure, or made from one by the language's own coercions:
//! `GcBox` cannot be named, built or reached outside this crate, and no other public function
//! hands one out. Every such reference points at the box of a live object (the lending handle
//! keeps its header alive for the call), and its metadata describes that object's value (a
//! coercion only ever replaces the metadata of a sized value with the metadata of that same
//! value, an array's with its length). The step checks that the reference it gets back has
//! the address it lent, so the new handle points at its own object, seen as a type the
//! compiler proved it can be seen as. (A `Weak` that points nowhere lends no reference: its
//! pointer is coerced as a raw pointer, which may carry any metadata, and the step only
//! checks it still points nowhere; such a pointer is never followed.)
//!
//! [`links_to_box`]: crate::gc::header::links_to_box
//! [`GcValue`]: crate::GcValue

/// Turn a handle to a sized value into a handle to a trait object or slice: `Gc<T>` into
/// `Gc<dyn Trait>` (or `Gc<[T; N]>` into `Gc<[T]>`), for `pyheap::Gc`, `pyheap::Weak`,
/// `pyheap::unsync::Gc` and `pyheap::unsync::Weak` alike: what `let g: Rc<dyn Trait> = rc;`
/// does for `Rc` (stable Rust has no coercion of user types). The handle is moved; the object,
/// its counts and its place in the collector stay as they are.
///
/// `dyn Trait` must be a [`GcValue`](crate::GcValue): `dyn Any`, `dyn Display`, `dyn Debug`
/// and `dyn Error` (with `+ Send`, `+ Sync`, `+ Send + Sync`) are, and [`gc_dyn!`](crate::gc_dyn)
/// declares your own traits. The concrete type may be tracked or not: a `Gc<dyn Trait>` tells
/// at run time (a bit in the object's counts) whether its object has collector links.
///
/// A conversion the compiler cannot do as an unsizing coercion does not compile:
///
/// ```compile_fail
/// use pyheap::{unsize, unsync::Gc};
/// let g: Gc<u8> = Gc::new(1);
/// let h = unsize!(g => i8);
/// ```
///
/// A cycle through trait objects is collected like any other:
///
/// ```
/// use pyheap::{gc_dyn, unsize, unsync::Gc, Trace};
/// use std::cell::RefCell;
///
/// trait Named {
///     fn name(&self) -> &str;
/// }
/// gc_dyn!(dyn Named);
///
/// #[derive(Trace)]
/// struct Node {
///     name: String,
///     next: RefCell<Option<Gc<dyn Named>>>,
/// }
/// impl Named for Node {
///     fn name(&self) -> &str { &self.name }
/// }
///
/// let a = Gc::new(Node { name: "a".into(), next: RefCell::new(None) });
/// let b = Gc::new(Node { name: "b".into(), next: RefCell::new(None) });
/// *a.next.borrow_mut() = Some(unsize!(b.clone() => dyn Named));
/// *b.next.borrow_mut() = Some(unsize!(a.clone() => dyn Named));
/// let w = Gc::downgrade(&a);
/// assert_eq!(b.next.borrow().as_ref().unwrap().name(), "a");
/// drop((a, b));
/// assert_eq!(pyheap::unsync::gc::collect(), 2);
/// assert!(w.upgrade().is_none());
/// ```
///
/// `Weak` handles too:
///
/// ```
/// use pyheap::{unsize, Gc, Weak};
/// use std::fmt::Debug;
///
/// let g = Gc::new(vec![1, 2]);
/// let w: Weak<dyn Debug + Send + Sync> = unsize!(Gc::downgrade(&g) => dyn Debug + Send + Sync);
/// assert_eq!(format!("{:?}", w.upgrade().unwrap()), "[1, 2]");
/// let nowhere: Weak<dyn Debug + Send + Sync> = unsize!(Weak::<u8>::new() => dyn Debug + Send + Sync);
/// assert!(nowhere.upgrade().is_none());
/// ```
#[macro_export]
macro_rules! unsize {
    ($handle:expr => $target:ty) => {
        // The closures are identities: the first returns the `&GcBox` it is lent, which the
        // compiler coerces to the target's box type or rejects; see `gc::unsize`.
        ($handle).__pyheap_unsize::<$target>(|b| b, |p| p)
    };
}

/// The pointer of the unsized handle: `r`'s metadata (the coercion's) on `whole`, the old
/// handle's pointer to the same box (`addr_eq(r, whole)`, checked by the caller). The handle
/// must keep `whole`'s provenance, which covers the whole allocation: it reaches back from
/// the box to the links and counts before it, which a pointer made from the lent `&GcBox`
/// does not cover (Miri's Stacked Borrows rejects such accesses).
///
/// `ptr::from_raw_parts` is not stable, so `whole` is written over the address word of a copy
/// of `r`'s pointer: rustc lays a pointer out as its address followed by its metadata (what
/// std's `set_ptr_value` relied on), which the check after the write confirms (a layout with
/// the metadata first would change the metadata, and the pointers would differ).
pub(crate) fn with_provenance_of<B: ?Sized, W: ?Sized>(
    r: &B,
    whole: *const W,
) -> core::ptr::NonNull<B> {
    let mut p: *const B = r;
    // SAFETY: `p` is a pointer variable, at least one pointer wide and pointer-aligned; its
    // first word is overwritten with a thin pointer (the check below confirms it was the
    // address).
    unsafe {
        core::ptr::addr_of_mut!(p)
            .cast::<*const u8>()
            .write(whole.cast::<u8>())
    };
    // Address and metadata: the same pointer as `r`, with `whole`'s provenance.
    #[allow(ambiguous_wide_pointer_comparisons)]
    let same = core::ptr::eq(p, r);
    assert!(same, "pyheap: unexpected layout of a pointer with metadata");
    // SAFETY: equal to `r`, a reference: not null.
    unsafe { core::ptr::NonNull::new_unchecked(p.cast_mut()) }
}

/// The hidden unsizing step of `unsize!` and `downcast`, for the invoking handle module's
/// `Gc`, `Weak` and `Inner` (`GcBox` of its counts); `$any` is the `dyn Any` type of the
/// flavor, as std's `Rc<dyn Any>` and `Arc<dyn Any + Send + Sync>`.
macro_rules! unsize_impls {
    (any: $any:ty, any_name: $any_name:literal, path: $path:literal) => {
        impl<T: ?Sized + GcValue> Gc<T> {
            /// The step of [`unsize!`](crate::unsize); not public API (see `gc::unsize`).
            #[doc(hidden)]
            pub fn __pyheap_unsize<U: ?Sized + GcValue>(
                self,
                coerce: impl for<'a> FnOnce(&'a Inner<T>) -> &'a Inner<U>,
                _nowhere: impl FnOnce(*const Inner<T>) -> *const Inner<U>,
            ) -> Gc<U> {
                let this = ManuallyDrop::new(self);
                // SAFETY: a strong handle keeps the header alive for the call.
                let r = coerce(unsafe { this.ptr.as_ref() });
                // The invariant of `gc::unsize`: a reference at this address describes this
                // object's value.
                assert!(
                    core::ptr::addr_eq(r, this.ptr.as_ptr()),
                    "pyheap: unsize! step given a reference to another object"
                );
                // The strong reference of `this` (forgotten) passes to the new handle.
                Gc {
                    ptr: $crate::gc::unsize::with_provenance_of(r, this.ptr.as_ptr()),
                    _owns: PhantomData,
                }
            }
        }

        impl<T: ?Sized + GcValue> Weak<T> {
            /// The step of [`unsize!`](crate::unsize); not public API (see `gc::unsize`).
            #[doc(hidden)]
            pub fn __pyheap_unsize<U: ?Sized + GcValue>(
                self,
                coerce: impl for<'a> FnOnce(&'a Inner<T>) -> &'a Inner<U>,
                nowhere: impl FnOnce(*const Inner<T>) -> *const Inner<U>,
            ) -> Weak<U> {
                let this = ManuallyDrop::new(self);
                let ptr = match this.object() {
                    Some(p) => {
                        // SAFETY: a `Weak` keeps the header alive for the call (the value may
                        // be gone; a reference to its `UnsafeCell<ManuallyDrop<_>>` is still
                        // allowed, as for `Layout::for_value` in `deallocate`).
                        let r = coerce(unsafe { p.as_ref() });
                        assert!(
                            core::ptr::addr_eq(r, p.as_ptr()),
                            "pyheap: unsize! step given a reference to another object"
                        );
                        $crate::gc::unsize::with_provenance_of(r, p.as_ptr())
                    }
                    None => {
                        // A `Weak::new()`: only the metadata of the result is kept, and it is
                        // never used to reach memory (the pointer points nowhere).
                        let q = nowhere(this.ptr.as_ptr());
                        assert!(
                            crate::gc::header::addr(q.cast::<u8>()) == usize::MAX,
                            "pyheap: unsize! step turned a dangling Weak into a pointer"
                        );
                        // SAFETY: `usize::MAX` is not null.
                        unsafe { NonNull::new_unchecked(q.cast_mut()) }
                    }
                };
                // The weak reference of `this` (forgotten) passes to the new handle.
                Weak {
                    ptr,
                    _owns: PhantomData,
                }
            }
        }

        impl Gc<$any> {
            #[doc = concat!(
                        "Give back the concrete handle if the value is a `T` (std's `downcast`), \
                 else this handle. The same object, counts and collector state: tracked \
                 or not, as `T` is.\n\n\
                 A value the collector already destroyed (seen only from the `Drop` of a \
                 cycle member) is of no type any more: `Err`.\n\n\
                 ```\n\
                 use ", $path, "::Gc;\n\
                 use pyheap::unsize;\n\
                 use std::any::Any;\n\
                 let any = unsize!(Gc::new(String::from(\"x\")) => ", $any_name, ");\n\
                 let any = Gc::downcast::<u32>(any).unwrap_err();\n\
                 let s: Gc<String> = Gc::downcast(any).unwrap();\n\
                 assert_eq!(*s, \"x\");\n\
                 ```"
                    )]
            pub fn downcast<T: core::any::Any + GcValue>(self) -> Result<Gc<T>, Self> {
                match Gc::try_deref(&self) {
                    // `is` asks the trait object's vtable: the concrete type's `TypeId`.
                    Some(v) if v.is::<T>() => {
                        let this = ManuallyDrop::new(self);
                        // The object's value is a `T`; the box is a `GcBox<C, T>`, allocated
                        // for a `T` (or for a `[E]` of the same length and elements, when `T`
                        // is `[E; N]`: links and vtable are found alike, `gc::header`). The
                        // strong reference of `this` passes to the new handle.
                        Ok(Gc {
                            ptr: this.ptr.cast::<Inner<T>>(),
                            _owns: PhantomData,
                        })
                    }
                    _ => Err(self),
                }
            }
        }
    };
}
pub(crate) use unsize_impls;
