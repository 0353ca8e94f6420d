//! The parts of std's `Rc`/`Arc` API that both flavors have word for word, written once:
//! `unwrap_or_clone`, `pin`, the conversions (`From<[T; N]>`, `From<&mut [T]>`,
//! `From<&mut str>`, `From<Cow<_>>`, `From<Gc<str>> for Gc<[u8]>`,
//! `TryFrom<Gc<[T]>> for Gc<[T; N]>`), `Error`, and the marker traits `Unpin`, `UnwindSafe`
//! and `RefUnwindSafe`. Each handle module invokes [`std_api!`]. The mapping of every
//! `Rc`/`Arc` item to pyheap's is in the crate docs (`src/lib.rs`, "Coming from `Rc` and
//! `Arc`").

/// The shared std API for the invoking handle module's `Gc` (its `C`, `Inner`, `new`,
/// `new_with` and `from_raw_elements`); `$bounds` are its constructors' extra bounds
/// (`+ Send + Sync` for the thread-safe flavor), `$path` its path for the doc examples.
macro_rules! std_api {
    (path: $path:literal, bounds: [$($bounds:tt)*]) => {
        impl<T: GcValue + Clone> Gc<T> {
            #[doc = concat!(
                "The value: moved out if this is the only strong handle (as \
                 [`Gc::try_unwrap`]), else cloned (std's `unwrap_or_clone`).\n\n\
                 # Panics\n\n\
                 If the object was destroyed by the collector (as `Deref`: seen only through a \
                 handle a garbage cycle's `Drop` stashed).\n\n\
                 ```\n\
                 use ", $path, "::Gc;\n\
                 let a = Gc::new(String::from(\"x\"));\n\
                 let b = a.clone();\n\
                 assert_eq!(Gc::unwrap_or_clone(a), \"x\"); // cloned: `b` remains\n\
                 assert_eq!(Gc::unwrap_or_clone(b), \"x\"); // moved\n\
                 ```"
            )]
            pub fn unwrap_or_clone(this: Self) -> T {
                Gc::try_unwrap(this).unwrap_or_else(|g| (*g).clone())
            }
        }

        impl<T: Trace + 'static $($bounds)*> Gc<T> {
            #[doc = concat!(
                "A new object whose value never moves until it is dropped (std's `pin`): \
                 `Pin<Gc<T>>` gives only shared access, and the collector never moves \
                 values (it drops them in place).\n\n\
                 Introspection (`gc::get_objects`, `GcAny::downcast`), which hands out typed \
                 handles to tracked objects it finds, would let safe code move a pinned value \
                 out (`try_unwrap`, `get_mut` on such a handle); so a pinned object reports a \
                 private type to it (`type_name` names `Pinned<T>`) and is never handed out \
                 as a `Gc<T>`.\n\n\
                 ```\n\
                 use ", $path, "::Gc;\n\
                 use std::pin::Pin;\n\
                 let p: Pin<Gc<u32>> = Gc::pin(5);\n\
                 let q = p.clone();\n\
                 assert_eq!(*p + *q, 10);\n\
                 ```"
            )]
            pub fn pin(value: T) -> core::pin::Pin<Gc<T>> {
                // SAFETY: the value is never moved while a handle exists: `Pin<Gc<T>>` gives
                // no `&mut T` and no unpinned `Gc<T>` (`Gc` has no `DerefMut`; `Pin` hands out
                // the handle only for `T: Unpin`), the collector drops values in place, and
                // introspection never hands this object out typed (`VTables::PINNED`).
                unsafe { core::pin::Pin::new_unchecked(Gc::new_with(value, &VTables::<C, T>::PINNED)) }
            }
        }

        impl<T: Trace + Default + 'static $($bounds)*> Default for core::pin::Pin<Gc<T>> {
            #[doc = concat!(
                "`Gc::pin(T::default())`.\n\n\
                 ```\n\
                 use ", $path, "::Gc;\n\
                 let p: std::pin::Pin<Gc<u8>> = Default::default();\n\
                 assert_eq!(*p, 0);\n\
                 ```"
            )]
            fn default() -> Self {
                Gc::pin(T::default())
            }
        }

        impl<T: Trace + 'static $($bounds)*, const N: usize> From<[T; N]> for Gc<[T]> {
            #[doc = concat!(
                "Move the elements of an array into a new `Gc<[T]>`.\n\n\
                 ```\n\
                 use ", $path, "::Gc;\n\
                 let g: Gc<[String]> = Gc::from([\"a\".to_string(), \"b\".to_string()]);\n\
                 assert_eq!(g.len(), 2);\n\
                 ```"
            )]
            fn from(v: [T; N]) -> Self {
                let v = ManuallyDrop::new(v);
                // SAFETY: the elements are moved: the array is forgotten, the new object owns
                // them.
                unsafe { Gc::from_raw_elements(v.as_ptr(), N) }
            }
        }

        impl<T: Trace + Clone + 'static $($bounds)*> From<&mut [T]> for Gc<[T]> {
            #[doc = concat!(
                "Clone the elements into a new `Gc<[T]>` (as from `&[T]`).\n\n\
                 ```\n\
                 use ", $path, "::Gc;\n\
                 let mut v = vec![1, 2];\n\
                 let g: Gc<[i32]> = Gc::from(&mut v[..]);\n\
                 assert_eq!(*g, [1, 2]);\n\
                 ```"
            )]
            fn from(v: &mut [T]) -> Self {
                Gc::from(&*v)
            }
        }

        impl From<&mut str> for Gc<str> {
            #[doc = concat!(
                "Copy the string into a new `Gc<str>` (as from `&str`).\n\n\
                 ```\n\
                 use ", $path, "::Gc;\n\
                 let mut s = String::from(\"hi\");\n\
                 let g: Gc<str> = Gc::from(s.as_mut_str());\n\
                 assert_eq!(&*g, \"hi\");\n\
                 ```"
            )]
            fn from(s: &mut str) -> Self {
                Gc::from(&*s)
            }
        }

        impl<'a, B> From<std::borrow::Cow<'a, B>> for Gc<B>
        where
            B: std::borrow::ToOwned + ?Sized + GcValue,
            Gc<B>: From<&'a B> + From<B::Owned>,
        {
            #[doc = concat!(
                "A new `Gc` from a borrowed (copied) or owned (moved) value.\n\n\
                 ```\n\
                 use ", $path, "::Gc;\n\
                 use std::borrow::Cow;\n\
                 let a: Gc<str> = Gc::from(Cow::Borrowed(\"b\"));\n\
                 let b: Gc<str> = Gc::from(Cow::<str>::Owned(String::from(\"o\")));\n\
                 assert_eq!((&*a, &*b), (\"b\", \"o\"));\n\
                 ```"
            )]
            fn from(cow: std::borrow::Cow<'a, B>) -> Gc<B> {
                match cow {
                    std::borrow::Cow::Borrowed(s) => Gc::from(s),
                    std::borrow::Cow::Owned(s) => Gc::from(s),
                }
            }
        }

        impl From<Gc<str>> for Gc<[u8]> {
            #[doc = concat!(
                "The same object, as its bytes.\n\n\
                 ```\n\
                 use ", $path, "::Gc;\n\
                 let s: Gc<str> = Gc::from(\"ab\");\n\
                 let b: Gc<[u8]> = Gc::from(s.clone());\n\
                 assert_eq!(*b, *b\"ab\");\n\
                 assert_eq!(Gc::as_ptr(&b).cast::<u8>(), Gc::as_ptr(&s).cast::<u8>());\n\
                 ```"
            )]
            fn from(s: Gc<str>) -> Self {
                let s = ManuallyDrop::new(s);
                // `GcBox<C, str>` and `GcBox<C, [u8]>` have the same layout and metadata (the
                // length in bytes), both untracked; the strong reference passes on.
                // SAFETY: from a non-null pointer.
                let ptr = unsafe { NonNull::new_unchecked(s.ptr.as_ptr() as *mut Inner<[u8]>) };
                Gc {
                    ptr,
                    _owns: PhantomData,
                }
            }
        }

        impl<T: Trace + 'static, const N: usize> TryFrom<Gc<[T]>> for Gc<[T; N]> {
            type Error = Gc<[T]>;

            #[doc = concat!(
                "The same object as an array handle, if it has `N` elements; else the slice \
                 handle back.\n\n\
                 For element types the collector does not track only: a tracked slice object \
                 keeps its length in its header, where a sized handle does not look; a \
                 tracked element type is a compile error here (collect into a `Gc<[T; N]>` \
                 instead, or keep the slice).\n\n\
                 ```\n\
                 use ", $path, "::Gc;\n\
                 let s: Gc<[u8]> = Gc::from(vec![1, 2, 3]);\n\
                 let s = <Gc<[u8; 2]>>::try_from(s).unwrap_err();\n\
                 let a: Gc<[u8; 3]> = Gc::try_from(s).unwrap();\n\
                 assert_eq!(*a, [1, 2, 3]);\n\
                 ```"
            )]
            fn try_from(s: Gc<[T]>) -> Result<Self, Gc<[T]>> {
                const {
                    assert!(
                        !T::MAY_CONTAIN_GC,
                        "TryFrom<Gc<[T]>> for Gc<[T; N]>: only for element types that hold no \
                         Gc (a tracked slice keeps its length in its header)"
                    )
                };
                if s.len() != N {
                    return Err(s);
                }
                let s = ManuallyDrop::new(s);
                // An untracked slice object is just its box, laid out as `GcBox<C, [T; N]>`
                // for `N` elements; the strong reference passes on.
                Ok(Gc {
                    ptr: s.ptr.cast::<Inner<[T; N]>>(),
                    _owns: PhantomData,
                })
            }
        }

        impl<T: ?Sized + GcValue + std::error::Error> std::error::Error for Gc<T> {
            /// The value's `source`; `None` for a destroyed object (never panics).
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Gc::try_deref(self).and_then(std::error::Error::source)
            }

            #[allow(deprecated)]
            fn cause(&self) -> Option<&dyn std::error::Error> {
                Gc::try_deref(self).and_then(std::error::Error::cause)
            }

            #[allow(deprecated)]
            fn description(&self) -> &str {
                Gc::try_deref(self).map_or("<dead>", std::error::Error::description)
            }
        }

        /// As std's `Rc`/`Arc`: moving a handle never moves the value (`Pin<Gc<T>>` pins
        /// the value, not the handle).
        impl<T: ?Sized + GcValue> Unpin for Gc<T> {}
        /// As std's `Weak`s.
        impl<T: ?Sized + GcValue> Unpin for Weak<T> {}
        /// As std's `Rc`/`Arc`: the counts stay consistent across a panic.
        impl<T: ?Sized + GcValue + core::panic::RefUnwindSafe> core::panic::UnwindSafe for Gc<T> {}
        /// As std's `Rc`/`Arc`: the counts stay consistent across a panic.
        impl<T: ?Sized + GcValue + core::panic::RefUnwindSafe> core::panic::RefUnwindSafe
            for Gc<T>
        {
        }
    };
}
pub(crate) use std_api;
