//! The trait impls and the dead-object panic that `pyheap::Gc` and `pyheap::unsync::Gc` share
//! word for word, written once: each handle module invokes [`handle_impls!`], which expands
//! to these impls for the `Gc` and `Weak` types in scope there (both flavors provide
//! `Gc::try_deref`, `Gc::as_ptr` and the `has_links`/`links` accessors the impls use).

/// The panic of `Deref` on an object the collector already destroyed (both flavors).
#[cold]
#[inline(never)]
#[track_caller]
pub(crate) fn dead_deref() -> ! {
    panic!(
        "pyheap: dereferenced a Gc whose object the cycle collector already destroyed \
         (use Gc::try_deref in Drop impls of cycle members)"
    )
}

/// `Deref`, `Trace`, the formatting, comparison and hashing traits, `Borrow` and `AsRef` for
/// the invoking module's `Gc<T>`, and `Trace`/`Debug` for its `Weak<T>`.
macro_rules! handle_impls {
    (concurrent: $concurrent:expr) => {
        impl<T: ?Sized + GcValue> Deref for Gc<T> {
            type Target = T;

            /// The value. Panics (in release builds too) if the collector already destroyed it; see
            /// [`Gc::try_deref`].
            #[inline]
            fn deref(&self) -> &T {
                match Gc::try_deref(self) {
                    Some(v) => v,
                    None => $crate::gc::handle_impls::dead_deref(),
                }
            }
        }

        // SAFETY: a `Gc` owns one strong reference; it is an edge of the object graph when its
        // target is tracked (edges to untracked objects cannot close a cycle and are not
        // reported). The edge names this module's flavor, so that a collector of the other
        // flavor ignores it without reading the target's header (`Tracer::edge`).
        unsafe impl<T: ?Sized + GcValue> Trace for Gc<T> {
            #[inline]
            fn trace(&self, tracer: &mut Tracer) {
                // A constant for sized types and slices; a trait object's object says.
                if self.has_links() {
                    // SAFETY: this handle keeps the target's header alive, and it is a header
                    // of this module's flavor.
                    unsafe { tracer.edge(self.links(), $concurrent) }
                }
            }
        }

        // SAFETY: weak edges are not strong edges: nothing to report.
        unsafe impl<T: ?Sized + GcValue> Trace for Weak<T> {
            #[inline(always)]
            fn trace(&self, _: &mut Tracer) {}
            const MAY_CONTAIN_GC: bool = false;
        }

        impl<T: ?Sized + GcValue + fmt::Debug> fmt::Debug for Gc<T> {
            /// The value's `Debug`, or `<dead>` for a destroyed object (never panics).
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match Gc::try_deref(self) {
                    Some(v) => fmt::Debug::fmt(v, f),
                    None => f.write_str("<dead>"),
                }
            }
        }

        impl<T: ?Sized + GcValue + fmt::Display> fmt::Display for Gc<T> {
            /// The value's `Display`, or `<dead>` for a destroyed object (never panics).
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match Gc::try_deref(self) {
                    Some(v) => fmt::Display::fmt(v, f),
                    None => f.write_str("<dead>"),
                }
            }
        }

        impl<T: ?Sized + GcValue> fmt::Pointer for Gc<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Pointer::fmt(&Gc::as_ptr(self), f)
            }
        }

        impl<T: ?Sized + GcValue + PartialEq> PartialEq for Gc<T> {
            /// Compares the values (Python's `==`); use [`Gc::ptr_eq`] for `is`.
            #[inline]
            fn eq(&self, other: &Self) -> bool {
                **self == **other
            }
        }

        impl<T: ?Sized + GcValue + Eq> Eq for Gc<T> {}

        impl<T: ?Sized + GcValue + PartialOrd> PartialOrd for Gc<T> {
            #[inline]
            fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
                (**self).partial_cmp(&**other)
            }
        }

        impl<T: ?Sized + GcValue + Ord> Ord for Gc<T> {
            #[inline]
            fn cmp(&self, other: &Self) -> Ordering {
                (**self).cmp(&**other)
            }
        }

        impl<T: ?Sized + GcValue + Hash> Hash for Gc<T> {
            fn hash<H: Hasher>(&self, state: &mut H) {
                (**self).hash(state)
            }
        }

        impl<T: ?Sized + GcValue> Borrow<T> for Gc<T> {
            fn borrow(&self) -> &T {
                self
            }
        }

        impl<T: ?Sized + GcValue> AsRef<T> for Gc<T> {
            fn as_ref(&self) -> &T {
                self
            }
        }

        impl<T: ?Sized + GcValue> fmt::Debug for Weak<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("(Weak)")
            }
        }
    };
}
pub(crate) use handle_impls;
