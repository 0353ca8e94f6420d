//! Objects whose value is written after allocation: `Gc::new_uninit`, `Gc::new_zeroed`,
//! `Gc::new_uninit_slice`, `Gc::new_zeroed_slice` and `assume_init`, as std's `Rc`/`Arc`
//! have them, written once for both flavors ([`uninit_api!`]); and `Trace` for
//! `MaybeUninit<T>`, which they need.
//!
//! # Design
//!
//! `Gc::<T>::new_uninit()` is an ordinary object of type `MaybeUninit<T>`: same layout as a
//! `T` (links iff `T` is tracked), its vtable `MaybeUninit<T>`'s, whose `trace` reports nothing
//! and whose `drop` does nothing, so the collector and a death before `assume_init` never read
//! the value. `assume_init` points the object at `T`'s vtable (`Links::replace_vtable`; the
//! two have equal heads: same box offset, same layout) and gives the handle its new type. The
//! single-thread flavor does it on its own thread (no pass runs while user code does); the
//! thread-safe one holds the shared space lock, which every scan and every walk of the lists
//! (introspection) holds throughout, so none of them reads the vtable's functions across the
//! change, and a thread that later does (a scan, the last drop) is ordered after it by that
//! lock or by the counts' Release/Acquire. Other threads holding handles may read the word
//! meanwhile: for its head (`counts_of`), equal in both vtables, or for the type
//! (`GcAny::downcast`), with `Acquire` against the swap's `Release` (see `Links::vtable`).
//!
//! A value written while other handles exist (through `Gc::as_ptr` and `unsafe` code, as std
//! allows) is no different: until `assume_init` the collector never looks at it. After it,
//! the other handles keep their type `Gc<MaybeUninit<T>>`; if one of them is the last strong
//! handle to go, the value may or may not be dropped (std's `Rc<MaybeUninit<T>>` never drops
//! it; here the single-thread flavor's handle drops as its type says, nothing, and the
//! thread-safe flavor's drops through the object's vtable, a `T`): either way it is dropped
//! at most once, and never read uninitialised. The collector, which always goes by the
//! vtable, drops it as a `T`.

use core::mem::MaybeUninit;

use super::trace::{Trace, Tracer};

// SAFETY: reports nothing: whether the value is initialised is not known here. A `Gc` inside
// a `MaybeUninit` is therefore never reported: the collector counts it as a reference from
// outside and keeps its object (a leak at worst, never a wrong free). The constant is `T`'s
// so that a `Gc<MaybeUninit<T>>` is laid out (tracked or not) as the `Gc<T>` that
// `assume_init` turns it into.
unsafe impl<T: Trace> Trace for MaybeUninit<T> {
    #[inline(always)]
    fn trace(&self, _: &mut Tracer) {}
    const MAY_CONTAIN_GC: bool = T::MAY_CONTAIN_GC;
}

/// `new_uninit`, `new_uninit_slice` and `assume_init` for the invoking handle module's `Gc`
/// (its `C`, `Inner`, `new`, `new_slice_unwritten`, and `swap_vtable(links, head)`, which
/// points a tracked object at another vtable with the flavor's exclusion); `$bounds` are its
/// constructors' extra bounds (`+ Send + Sync` for the thread-safe flavor).
macro_rules! uninit_api {
    (path: $path:literal, bounds: [$($bounds:tt)*]) => {
        impl<T: Trace + 'static $($bounds)*> Gc<T> {
            #[doc = concat!(
                "A new object whose value is not written yet (std's `new_uninit`): write it \
                 through [`Gc::get_mut`] (or `Gc::as_ptr` and `unsafe` code), then call \
                 [`Gc::assume_init`]. Until then the collector never reads the value (a \
                 `MaybeUninit` reports nothing), and dropping the handle drops nothing.\n\n\
                 ```\n\
                 use ", $path, "::Gc;\n\
                 let mut five = Gc::<u32>::new_uninit();\n\
                 Gc::get_mut(&mut five).unwrap().write(5);\n\
                 let five = unsafe { five.assume_init() };\n\
                 assert_eq!(*five, 5);\n\
                 ```"
            )]
            pub fn new_uninit() -> Gc<core::mem::MaybeUninit<T>> {
                Gc::new(core::mem::MaybeUninit::uninit())
            }

            #[doc = concat!(
                "As [`Gc::new_uninit`], with every byte of the value zero (std's \
                 `new_zeroed`): [`Gc::assume_init`] right away for types whose all-zero \
                 bit pattern is a value.\n\n\
                 ```\n\
                 use ", $path, "::Gc;\n\
                 let zero = unsafe { Gc::<u64>::new_zeroed().assume_init() };\n\
                 assert_eq!(*zero, 0);\n\
                 ```"
            )]
            pub fn new_zeroed() -> Gc<core::mem::MaybeUninit<T>> {
                Gc::new(core::mem::MaybeUninit::zeroed())
            }
        }

        impl<T: Trace + 'static $($bounds)*> Gc<[T]> {
            #[doc = concat!(
                "A new slice object of `len` elements not written yet (std's \
                 `new_uninit_slice`); [`Gc::assume_init`] once they all are.\n\n\
                 ```\n\
                 use ", $path, "::Gc;\n\
                 let mut v = Gc::<[String]>::new_uninit_slice(3);\n\
                 for (i, e) in Gc::get_mut(&mut v).unwrap().iter_mut().enumerate() {\n\
                 \x20   e.write(i.to_string());\n\
                 }\n\
                 let v = unsafe { v.assume_init() };\n\
                 assert_eq!(*v, [\"0\", \"1\", \"2\"]);\n\
                 ```"
            )]
            pub fn new_uninit_slice(len: usize) -> Gc<[core::mem::MaybeUninit<T>]> {
                // SAFETY: uninitialised memory is a valid `MaybeUninit`.
                unsafe { Gc::<[core::mem::MaybeUninit<T>]>::new_slice_unwritten(len, false) }
            }

            #[doc = concat!(
                "As [`Gc::new_uninit_slice`], with every byte of the elements zero (std's \
                 `new_zeroed_slice`).\n\n\
                 ```\n\
                 use ", $path, "::Gc;\n\
                 let v = unsafe { Gc::<[u32]>::new_zeroed_slice(3).assume_init() };\n\
                 assert_eq!(*v, [0, 0, 0]);\n\
                 ```"
            )]
            pub fn new_zeroed_slice(len: usize) -> Gc<[core::mem::MaybeUninit<T>]> {
                // SAFETY: zeroed memory is a valid `MaybeUninit`.
                unsafe { Gc::<[core::mem::MaybeUninit<T>]>::new_slice_unwritten(len, true) }
            }
        }

        impl<T: Trace + 'static> Gc<core::mem::MaybeUninit<T>> {
            #[doc = concat!(
                "The handle as a `Gc<T>`, the value being written (std's `assume_init`): the \
                 same object, which the collector from now on traces and drops as a `T`. \
                 Other handles to it keep their type; if such a handle is the last to go, \
                 whether it drops the value is unspecified (std's never does; it is never \
                 dropped twice).\n\n\
                 # Safety\n\n\
                 The value is initialised, as for `MaybeUninit::assume_init`.\n\n\
                 ```\n\
                 use ", $path, "::Gc;\n\
                 let mut g = Gc::<Vec<Gc<u8>>>::new_uninit();\n\
                 Gc::get_mut(&mut g).unwrap().write(vec![Gc::new(1)]);\n\
                 let g = unsafe { g.assume_init() };\n\
                 assert!(Gc::is_tracked(&g));\n\
                 assert_eq!(*g[0], 1);\n\
                 ```"
            )]
            pub unsafe fn assume_init(self) -> Gc<T> {
                let this = ManuallyDrop::new(self);
                if T::MAY_CONTAIN_GC {
                    // SAFETY: a tracked object of this flavor (this handle keeps it), made by
                    // `new_uninit` with `MaybeUninit<T>`'s vtable, whose head equals `T`'s;
                    // per the caller the value is now a `T`.
                    unsafe { swap_vtable(this.links(), VTables::<C, T>::PLAIN.head_ptr()) };
                }
                // The strong reference of `this` (forgotten) passes to the new handle; the
                // box is a `GcBox<C, MaybeUninit<T>>`, laid out as `GcBox<C, T>`.
                Gc {
                    ptr: this.ptr.cast::<Inner<T>>(),
                    _owns: PhantomData,
                }
            }
        }

        impl<T: Trace + 'static> Gc<[core::mem::MaybeUninit<T>]> {
            #[doc = concat!(
                "The handle as a `Gc<[T]>`, every element being written (std's \
                 `assume_init`): the same object, which the collector from now on traces \
                 and drops element by element.\n\n\
                 # Safety\n\n\
                 Every element is initialised.\n\n\
                 ```\n\
                 use ", $path, "::Gc;\n\
                 let mut v = Gc::<[u8]>::new_uninit_slice(2);\n\
                 Gc::get_mut(&mut v).unwrap().fill(core::mem::MaybeUninit::new(7));\n\
                 let v = unsafe { v.assume_init() };\n\
                 assert_eq!(*v, [7, 7]);\n\
                 ```"
            )]
            pub unsafe fn assume_init(self) -> Gc<[T]> {
                let this = ManuallyDrop::new(self);
                if T::MAY_CONTAIN_GC {
                    // SAFETY: a tracked slice object of this flavor (this handle keeps it),
                    // with `MaybeUninit<T>`'s slice vtable, whose head equals `T`'s (same
                    // alignment: same offsets); per the caller the elements are now `T`s.
                    unsafe {
                        swap_vtable(
                            this.links(),
                            $crate::gc::slice::SliceVTables::<C, T>::VTABLE.head_ptr(),
                        )
                    };
                }
                // As above, with the length kept (`as` keeps a slice pointer's metadata).
                Gc {
                    // SAFETY: from a non-null pointer.
                    ptr: unsafe {
                        NonNull::new_unchecked(this.ptr.as_ptr() as *mut Inner<[T]>)
                    },
                    _owns: PhantomData,
                }
            }
        }
    };
}
pub(crate) use uninit_api;
