//! The type-erased handle introspection hands out (`GcAny`: Python's "any object" in
//! `gc.get_referrers`), written once for both flavors: each flavor module invokes
//! [`gc_any!`] with its `Flavor` and its `Gc`.
//!
//! A `GcAny` owns one strong reference to a tracked object, like a `Gc<T>` whose `T` is known
//! only to the object's vtable. Its drop is the flavor's `Gc::drop` for a tracked value
//! (`Flavor::release_erased`): the object dies when the last handle of either kind goes.

/// The per-flavor `GcAny`, its methods, and the [`GcObject`](crate::gc::GcObject)-style
/// trait naming "a handle to an object of this space" (implemented for `Gc<T>` and `GcAny`).
macro_rules! gc_any {
    (flavor: $flavor:ty, gc_mod: $gc_mod:literal, gc_path: $gc_path:literal, example: $example:literal) => {
        /// A handle to a tracked object of any type, as introspection returns them (Python's
        /// objects in `gc.get_referrers()`): its type's name, a checked
        /// [`downcast`](GcAny::downcast) back to a typed handle, identity comparison.
        ///
        /// It owns a strong reference, like a typed handle: the object stays alive while a
        /// `GcAny` to it exists.
        ///
        #[doc = $example]
        pub struct GcAny {
            p: core::ptr::NonNull<$crate::gc::header::Links>,
            _owns: core::marker::PhantomData<$flavor>,
        }

        impl GcAny {
            /// Take over a strong reference the introspection acquired.
            ///
            /// # Safety
            /// `p` is a live tracked object of this flavor on which the caller holds one
            /// strong reference, given up here.
            pub(crate) unsafe fn from_acquired(p: *const $crate::gc::header::Links) -> Self {
                GcAny {
                    // SAFETY: per the caller, a live object: not null.
                    p: unsafe { core::ptr::NonNull::new_unchecked(p.cast_mut()) },
                    _owns: core::marker::PhantomData,
                }
            }

            pub(crate) fn links(&self) -> *const $crate::gc::header::Links {
                self.p.as_ptr()
            }

            fn type_info(&self) -> $crate::gc::vtable::TypeInfo {
                // SAFETY: this handle keeps the object alive. `Acquire`: `downcast` hands out
                // a handle of this type, whose value another thread's `assume_init` may just
                // have declared written (`Links::vtable`).
                unsafe { ((*self.links()).vtable_acquire().type_info)() }
            }

            /// A handle to `gc`'s object; `None` if its type holds no `Gc` (such objects are
            /// never tracked, and introspection never meets them).
            #[doc = concat!("```\n", "use ", $gc_path, " as Gc;\n", "use ", $gc_mod, "::GcAny;\n", "let g = Gc::new(std::sync::Mutex::new(Vec::<Gc<u8>>::new()));\n", "let any = GcAny::from_gc(g.clone()).unwrap();\n", "assert!(GcAny::ptr_eq_gc(&any, &g));\n", "assert!(GcAny::from_gc(Gc::new(1u8)).is_none());\n", "```")]
            pub fn from_gc<T: ?Sized + $crate::GcValue>(gc: Gc<T>) -> Option<GcAny> {
                let p = Gc::tracked_links(&gc)?;
                core::mem::forget(gc);
                // SAFETY: `gc`'s strong reference is handed over (it was forgotten).
                Some(unsafe { GcAny::from_acquired(p) })
            }

            /// The type of the object's value, as `core::any::type_name` spells it.
            pub fn type_name(&self) -> &'static str {
                self.type_info().name
            }

            /// Whether the object's value is a `T`.
            pub fn is<T: ?Sized + 'static>(&self) -> bool {
                self.type_info().id == core::any::TypeId::of::<T>()
            }

            /// The typed handle, if the value is a `T`; otherwise this handle back.
            pub fn downcast<T: $crate::Trace + 'static>(self) -> Result<Gc<T>, GcAny> {
                if !self.is::<T>() {
                    return Err(self);
                }
                let p = self.links();
                core::mem::forget(self);
                // SAFETY: the vtable says the value is a `T`; our strong reference passes to
                // the typed handle (this one was forgotten).
                Ok(unsafe { Gc::from_tracked_links(p) })
            }

            /// Whether both handles point to the same object.
            pub fn ptr_eq(a: &GcAny, b: &GcAny) -> bool {
                a.p == b.p
            }

            /// Whether `a` points to `b`'s object.
            pub fn ptr_eq_gc<T: ?Sized + $crate::GcValue>(a: &GcAny, b: &Gc<T>) -> bool {
                Gc::tracked_links(b) == Some(a.links())
            }
        }

        impl Clone for GcAny {
            fn clone(&self) -> Self {
                // SAFETY: this handle keeps the object alive.
                unsafe {
                    <$flavor as $crate::gc::flavor::Flavor>::clone_erased(self.links());
                    GcAny::from_acquired(self.links())
                }
            }
        }

        impl Drop for GcAny {
            fn drop(&mut self) {
                // SAFETY: we own one strong reference, given up here.
                unsafe { <$flavor as $crate::gc::flavor::Flavor>::release_erased(self.links()) }
            }
        }

        impl core::fmt::Debug for GcAny {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, "GcAny({} @ {:p})", self.type_name(), self.p)
            }
        }

        /// A handle naming an object of this space: a typed [`Gc`] or a [`GcAny`] (the
        /// argument of the referrers/referents functions). Sealed.
        pub trait GcObject: sealed::Sealed {}

        mod sealed {
            /// The object's links, if it is tracked.
            pub trait Sealed {
                fn tracked_links(&self) -> Option<*const $crate::gc::header::Links>;
            }
            impl<T: ?Sized + $crate::GcValue> Sealed for super::Gc<T> {
                fn tracked_links(&self) -> Option<*const $crate::gc::header::Links> {
                    super::Gc::tracked_links(self)
                }
            }
            impl Sealed for super::GcAny {
                fn tracked_links(&self) -> Option<*const $crate::gc::header::Links> {
                    Some(self.links())
                }
            }
        }

        impl<T: ?Sized + $crate::GcValue> GcObject for Gc<T> {}
        impl GcObject for GcAny {}
    };
}

pub(crate) use gc_any;
