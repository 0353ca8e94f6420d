//! Which types a `Gc` can point to: [`GcValue`], and how a handle knows whether its object
//! is tracked ([`Tracked`]).
//!
//! A handle of either flavor needs one fact about its object that the type system may not
//! give: whether the allocation has the collector's links in front of its counts (the type
//! may contain a `Gc`, `Trace::MAY_CONTAIN_GC`). For a sized `T` and for slices it is a
//! constant of the type, so the hot paths (clone, drop, deref) test a constant, as before
//! trait objects existed. Behind a trait object (`Gc<dyn Shape>`) a tracked and an untracked
//! concrete type may hide: the object then says it itself, with a bit its counts carry from
//! creation to the end (`header::Counts::has_links`), which every object has, whatever its
//! handle's type, so that any `Gc<T>` can later be unsized.

use core::any::Any;
use core::fmt::{Debug, Display};
use std::error::Error;

use super::header::{Counts, GcBox};
use super::trace::Trace;

/// Whether the objects of a [`GcValue`] type have the collector's links: every object, no
/// object, or each object says (trait objects). Not part of the public API.
#[doc(hidden)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Tracked {
    /// The type can never hold a `Gc`: no links (and no `Deref` check).
    No,
    /// Every object of the type is tracked: links in front of the counts.
    Yes,
    /// A trait object: the object's counts say (`Counts::has_links`).
    PerObject,
}

/// The types a [`Gc`](crate::Gc) or [`unsync::Gc`](crate::unsync::Gc) can point to:
///
/// * every sized `T: Trace + 'static` (a blanket impl),
/// * slices `[T]` of those, and `str`,
/// * trait objects: `dyn Any`, `dyn Display`, `dyn Debug` and `dyn Error` (each also with
///   `+ Send`, `+ Sync`, `+ Send + Sync`) are provided; declare your own traits with
///   [`gc_dyn!`](crate::gc_dyn) and make handles to them with [`unsize!`](crate::unsize).
///
/// You never implement this trait by hand for a sized type or a slice (the blanket impls do).
/// For a trait object type the macro writes the impl; writing `unsafe impl GcValue for dyn
/// MyTrait<T> {}` by hand (for a generic trait, say) is equally right: the impl must be for a
/// `dyn` type and must not set the hidden items.
///
/// ```
/// use pyheap::{unsize, Gc};
/// use std::fmt::Display;
///
/// let g: Gc<dyn Display + Send + Sync> = unsize!(Gc::new(42) => dyn Display + Send + Sync);
/// assert_eq!(g.to_string(), "42");
/// ```
///
/// # Safety
///
/// Only for `dyn Trait` types (the default of the hidden item is the one right for them), or
/// through the blanket impls of this crate. A wrong hidden item makes handles look for links
/// that are not there.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be held by a pyheap `Gc`",
    label = "not a `GcValue`",
    note = "a sized value needs `Trace` (`#[derive(pyheap::Trace)]`); a trait object type \
            needs `pyheap::gc_dyn!(dyn YourTrait)`"
)]
pub unsafe trait GcValue: 'static {
    /// Whether objects of this type have links. Not part of the public API.
    #[doc(hidden)]
    const __TRACKED: Tracked = Tracked::PerObject;
}

// SAFETY: a sized `Trace` value is allocated with links iff `MAY_CONTAIN_GC` (both flavors'
// constructors), which is what this says.
unsafe impl<T: Trace + 'static> GcValue for T {
    const __TRACKED: Tracked = if T::MAY_CONTAIN_GC {
        Tracked::Yes
    } else {
        Tracked::No
    };
}

// SAFETY: a slice object has links iff its element type is tracked (`gc::slice`); so does an
// array object unsized to a slice (its element type is the same).
unsafe impl<T: Trace + 'static> GcValue for [T] {
    const __TRACKED: Tracked = if T::MAY_CONTAIN_GC {
        Tracked::Yes
    } else {
        Tracked::No
    };
}

// SAFETY: `Gc<str>` objects are made from untracked bytes only.
unsafe impl GcValue for str {
    const __TRACKED: Tracked = Tracked::No;
}

/// Whether the object at `b` has links.
///
/// # Safety
/// `b` points at a live header (a handle of either kind keeps it) with counts of type `C`.
#[inline(always)]
pub(crate) unsafe fn has_links<C: Counts, T: ?Sized + GcValue>(b: *const GcBox<C, T>) -> bool {
    match T::__TRACKED {
        Tracked::No => false,
        Tracked::Yes => true,
        // SAFETY: per the caller the counts are alive.
        Tracked::PerObject => unsafe { (*b).counts.has_links() },
    }
}

/// Declare that handles may point to `dyn YourTrait` (and to its `+ Send`, `+ Sync` and
/// `+ Send + Sync` forms): implements [`GcValue`] for them. Then [`unsize!`](crate::unsize)
/// turns a `Gc<T>` of any `T: YourTrait` into a `Gc<dyn YourTrait>`, tracked or not.
///
/// ```
/// use pyheap::{gc_dyn, unsize, unsync::Gc, Trace};
///
/// trait Shape {
///     fn area(&self) -> f64;
/// }
/// gc_dyn!(dyn Shape);
///
/// #[derive(Trace)]
/// struct Square(f64);
/// impl Shape for Square {
///     fn area(&self) -> f64 { self.0 * self.0 }
/// }
///
/// let s: Gc<dyn Shape> = unsize!(Gc::new(Square(3.0)) => dyn Shape);
/// assert_eq!(s.area(), 9.0);
/// ```
///
/// For a generic trait, write the impl the macro would write, with your parameters:
/// `unsafe impl<T: 'static> pyheap::GcValue for dyn Shape<T> {}` (safe: nothing to fill in;
/// `unsafe` because the impl must be for a `dyn` type).
#[macro_export]
macro_rules! gc_dyn {
    (dyn $($tr:tt)+) => {
        // SAFETY: impls for trait object types, with the default hidden items.
        unsafe impl $crate::GcValue for dyn $($tr)+ {}
        // SAFETY: as above.
        unsafe impl $crate::GcValue for dyn $($tr)+ + ::core::marker::Send {}
        // SAFETY: as above.
        unsafe impl $crate::GcValue for dyn $($tr)+ + ::core::marker::Sync {}
        // SAFETY: as above.
        unsafe impl $crate::GcValue for dyn $($tr)+ + ::core::marker::Send + ::core::marker::Sync {}
    };
}

gc_dyn!(dyn Any);
gc_dyn!(dyn Display);
gc_dyn!(dyn Debug);
gc_dyn!(dyn Error);
