//! Raw pointers to values, for FFI and executors: `Gc::{as_ptr, into_raw, from_raw,
//! increment_strong_count, decrement_strong_count}` and `Weak::{as_ptr, into_raw, from_raw}`,
//! as std's `Rc`/`Arc` have them, written once for both flavors: each handle module invokes
//! [`raw_api!`].
//!
//! # What differs from std
//!
//! * **A strong reference held by a raw pointer is a root.** `into_raw` keeps the object's
//!   strong count; no `Trace` impl reports the pointer, so the collector sees a reference from
//!   outside every traced value and keeps the object and everything it reaches, as it would
//!   for a handle leaked with `mem::forget`. A cycle that holds a raw pointer to itself is never
//!   collected (as an `Rc` cycle is never freed).
//! * **The pointer may point to a destroyed value**, exactly where `Deref` would panic: for a
//!   handle a garbage cycle member's `Drop` stashed away after the collector destroyed the
//!   object. Reading through it is then undefined behaviour, as for any dangling raw pointer;
//!   `Gc::try_deref` on the handle tells. (The header stays allocated while the pointer owns
//!   its reference, so `from_raw` and `decrement_strong_count` stay valid.)
//! * **`from_raw` needs a pointer of the same flavor.** A pointer from `pyheap::Gc::into_raw`
//!   given to `pyheap::unsync::Gc::from_raw` (or to `std::rc::Rc::from_raw`), or one whose type
//!   is not the original's (nor a type it coerces to: `[T]` of a `[T; N]`, a `dyn Trait` of the
//!   concrete type), is undefined behaviour, as std says for `Rc`.
//!
//! The pointers are made by a raw place projection from the handle's own pointer
//! (`header::value_of`), so they carry the provenance of the whole allocation and `from_raw`
//! may step back to the counts (`header::box_of_value`).

/// The raw-pointer API of the invoking handle module's `Gc` and `Weak` (`Inner` is its
/// `GcBox`); `$path` is the flavor's path for the doc examples.
macro_rules! raw_api {
    (path: $path:literal) => {
        impl<T: ?Sized + GcValue> Gc<T> {
            #[doc = concat!(
                "A raw pointer to the value, valid while a strong handle exists (as \
                 `Rc::as_ptr`). If the collector destroyed the object (seen only through a \
                 handle a garbage cycle's `Drop` stashed), it points to a dropped value: do not \
                 read it then (see `gc::raw`).\n\n\
                 ```\n\
                 use ", $path, "::Gc;\n\
                 let a = Gc::new(7);\n\
                 let p = Gc::as_ptr(&a);\n\
                 assert_eq!(unsafe { *p }, 7);\n\
                 assert_eq!(p, Gc::as_ptr(&a.clone()));\n\
                 ```"
            )]
            #[inline]
            pub fn as_ptr(this: &Self) -> *const T {
                // SAFETY: a strong handle keeps the box allocated.
                unsafe { $crate::gc::header::value_of(this.ptr.as_ptr()) }
            }

            #[doc = concat!(
                "Consume the handle, returning the raw pointer to the value; the strong \
                 reference it owned is now the pointer's, until [`Gc::from_raw`] takes it \
                 back (or [`Gc::decrement_strong_count`] drops it).\n\n\
                 While it is out, the object is kept by that reference: no `Trace` impl \
                 reports a raw pointer, so the collector counts it as a reference from outside \
                 and never frees the object or what it reaches (a cycle that stores a raw \
                 pointer to itself is never collected). The pointer is valid as \
                 [`Gc::as_ptr`]'s is.\n\n\
                 ```\n\
                 use ", $path, "::Gc;\n\
                 let p = Gc::into_raw(Gc::new(String::from(\"ffi\")));\n\
                 assert_eq!(unsafe { &*p }, \"ffi\");\n\
                 let back = unsafe { Gc::from_raw(p) };\n\
                 assert_eq!(Gc::strong_count(&back), 1);\n\
                 ```"
            )]
            #[inline]
            pub fn into_raw(this: Self) -> *const T {
                let p = Gc::as_ptr(&this);
                core::mem::forget(this);
                p
            }

            #[doc = concat!(
                "Take back the strong reference of a pointer from [`Gc::into_raw`].\n\n\
                 # Safety\n\n\
                 `ptr` came from `", $path, "::Gc::into_raw` (this flavor) of a `Gc<U>` \
                 where `U` is `T`, or a type whose handles coerce to `Gc<T>` \
                 ([`unsize!`](crate::unsize): `[T; N]` to `[T]`, a concrete type to \
                 `dyn Trait`), and its reference was not taken back yet. Anything else \
                 (a pointer of the other flavor, of std's `Rc`/`Arc`, of another type, given \
                 back twice) is undefined behaviour, as for `Rc::from_raw`.\n\n\
                 ```\n\
                 use ", $path, "::Gc;\n\
                 use pyheap::unsize;\n\
                 use std::fmt::Display;\n\
                 let p = Gc::into_raw(Gc::new(5));\n\
                 let five = unsafe { Gc::from_raw(p) };\n\
                 assert_eq!(*five, 5);\n\
                 // A pointer to a trait object works the same way.\n\
                 let d = Gc::into_raw(unsize!(five => dyn Display));\n\
                 let d = unsafe { Gc::<dyn Display>::from_raw(d) };\n\
                 assert_eq!(d.to_string(), \"5\");\n\
                 ```"
            )]
            #[inline]
            pub unsafe fn from_raw(ptr: *const T) -> Self {
                // SAFETY: per the caller `ptr` is `value_of` a live box of this flavor whose
                // value is a `T` (or coerces to one, with that coercion's metadata), whose
                // strong reference passes to the new handle.
                unsafe {
                    let b = $crate::gc::header::box_of_value::<C, T>(ptr);
                    Gc {
                        ptr: NonNull::new_unchecked(b.cast_mut()),
                        _owns: PhantomData,
                    }
                }
            }

            #[doc = concat!(
                "Add a strong reference to the object of a pointer from [`Gc::into_raw`] (as \
                 cloning a handle and forgetting the clone).\n\n\
                 # Safety\n\n\
                 As [`Gc::from_raw`], and the pointer's reference must still be out (the \
                 object alive).\n\n\
                 ```\n\
                 use ", $path, "::Gc;\n\
                 let p = Gc::into_raw(Gc::new(1));\n\
                 unsafe { Gc::increment_strong_count(p) };\n\
                 let a = unsafe { Gc::from_raw(p) };\n\
                 assert_eq!(Gc::strong_count(&a), 2);\n\
                 unsafe { Gc::decrement_strong_count(p) };\n\
                 assert_eq!(Gc::strong_count(&a), 1);\n\
                 ```"
            )]
            #[inline]
            pub unsafe fn increment_strong_count(ptr: *const T) {
                // SAFETY: per the caller; the handle borrows the pointer's reference, which is
                // not given back (`ManuallyDrop`), and the clone's is forgotten: one more.
                unsafe {
                    let h = ManuallyDrop::new(Gc::from_raw(ptr));
                    let _clone: ManuallyDrop<Gc<T>> = ManuallyDrop::new((*h).clone());
                }
            }

            #[doc = concat!(
                "Drop a strong reference to the object of a pointer from [`Gc::into_raw`] (as \
                 `drop(Gc::from_raw(ptr))`): the object may die here, and then its `Drop` runs.\n\n\
                 # Safety\n\n\
                 As [`Gc::from_raw`]: the pointer's reference is given up.\n\n\
                 ```\n\
                 use ", $path, "::Gc;\n\
                 let a = Gc::new(1);\n\
                 let w = Gc::downgrade(&a);\n\
                 let p = Gc::into_raw(a);\n\
                 unsafe { Gc::decrement_strong_count(p) };\n\
                 assert!(w.upgrade().is_none());\n\
                 ```"
            )]
            #[inline]
            pub unsafe fn decrement_strong_count(ptr: *const T) {
                // SAFETY: per the caller.
                drop(unsafe { Gc::from_raw(ptr) })
            }
        }

        impl<T: ?Sized + GcValue> Weak<T> {
            #[doc = concat!(
                "A raw pointer to the value (as `rc::Weak::as_ptr`): valid while a strong \
                 handle exists; for a `Weak` that points nowhere, a dangling pointer.\n\n\
                 ```\n\
                 use ", $path, "::{Gc, Weak};\n\
                 let a = Gc::new(3);\n\
                 let w = Gc::downgrade(&a);\n\
                 assert_eq!(w.as_ptr(), Gc::as_ptr(&a));\n\
                 assert_eq!(unsafe { *w.as_ptr() }, 3);\n\
                 assert!(!Weak::<u8>::new().as_ptr().is_null());\n\
                 ```"
            )]
            #[inline]
            pub fn as_ptr(&self) -> *const T {
                match self.object() {
                    // SAFETY: a `Weak` keeps the box allocated.
                    Some(p) => unsafe { $crate::gc::header::value_of(p.as_ptr()) },
                    // As std: the dangling pointer itself, with its metadata.
                    None => self.ptr.as_ptr() as *const T,
                }
            }

            #[doc = concat!(
                "Consume the `Weak`, returning the raw pointer to the value; the weak \
                 reference is now the pointer's, until [`Weak::from_raw`] takes it back. It \
                 keeps the header allocated, not the value.\n\n\
                 ```\n\
                 use ", $path, "::{Gc, Weak};\n\
                 let a = Gc::new(4);\n\
                 let p = Weak::into_raw(Gc::downgrade(&a));\n\
                 assert_eq!(Gc::weak_count(&a), 1);\n\
                 let w = unsafe { Weak::from_raw(p) };\n\
                 assert_eq!(*w.upgrade().unwrap(), 4);\n\
                 ```"
            )]
            #[inline]
            pub fn into_raw(self) -> *const T {
                let p = self.as_ptr();
                core::mem::forget(self);
                p
            }

            #[doc = concat!(
                "Take back the weak reference of a pointer from [`Weak::into_raw`].\n\n\
                 # Safety\n\n\
                 `ptr` came from `", $path, "::Weak::into_raw` (this flavor) of a `Weak<U>` \
                 with `U` as for [`Gc::from_raw`], and its reference was not taken back yet \
                 (a pointer from `Weak::new()`, which points nowhere, too).\n\n\
                 ```\n\
                 use ", $path, "::{Gc, Weak};\n\
                 let nowhere = unsafe { Weak::from_raw(Weak::<u8>::new().into_raw()) };\n\
                 assert!(nowhere.upgrade().is_none());\n\
                 let a = Gc::new(2);\n\
                 let w = unsafe { Weak::from_raw(Weak::into_raw(Gc::downgrade(&a))) };\n\
                 drop(a);\n\
                 assert!(w.upgrade().is_none());\n\
                 ```"
            )]
            #[inline]
            pub unsafe fn from_raw(ptr: *const T) -> Self {
                let b = if $crate::gc::header::addr(ptr.cast::<u8>()) == usize::MAX {
                    // A `Weak` that points nowhere (`into_raw` gave its pointer as is).
                    ptr as *const Inner<T>
                } else {
                    // SAFETY: per the caller `ptr` is `value_of` a box of this flavor kept
                    // allocated by the weak reference that passes to the new `Weak`.
                    unsafe { $crate::gc::header::box_of_value::<C, T>(ptr) }
                };
                Weak {
                    // SAFETY: either pointer is non-null.
                    ptr: unsafe { NonNull::new_unchecked(b.cast_mut()) },
                    _owns: PhantomData,
                }
            }
        }
    };
}
pub(crate) use raw_api;
