//! Containers that own their content: each reports what it holds through the content's own
//! impl, and inherits its `MAY_CONTAIN_GC`.

use crate::gc::trace::{Trace, Tracer};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet, LinkedList, VecDeque};
use std::ops::{Bound, Range, RangeFrom, RangeInclusive, RangeTo, RangeToInclusive};

// SAFETY: a `Box` owns its content; we report exactly the content's handles.
unsafe impl<T: Trace + ?Sized> Trace for Box<T> {
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        (**self).trace(tracer)
    }
    const MAY_CONTAIN_GC: bool = T::MAY_CONTAIN_GC;
}

macro_rules! sequence {
    ($($name:ident),*) => {$(
        // SAFETY: the container owns its elements; each is reported once.
        unsafe impl<T: Trace> Trace for $name<T> {
            #[inline]
            fn trace(&self, tracer: &mut Tracer) {
                if T::MAY_CONTAIN_GC {
                    for e in self.iter() {
                        e.trace(tracer);
                    }
                }
            }
            const MAY_CONTAIN_GC: bool = T::MAY_CONTAIN_GC;
        }
    )*};
}
sequence!(Vec, VecDeque, LinkedList, BinaryHeap, BTreeSet);

// SAFETY: the set owns its elements; each is reported once.
unsafe impl<T: Trace, S> Trace for HashSet<T, S> {
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        if T::MAY_CONTAIN_GC {
            for e in self.iter() {
                e.trace(tracer);
            }
        }
    }
    const MAY_CONTAIN_GC: bool = T::MAY_CONTAIN_GC;
}

// SAFETY: the map owns its keys and values; each is reported once.
unsafe impl<K: Trace, V: Trace, S> Trace for HashMap<K, V, S> {
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        if Self::MAY_CONTAIN_GC {
            for (k, v) in self.iter() {
                k.trace(tracer);
                v.trace(tracer);
            }
        }
    }
    const MAY_CONTAIN_GC: bool = K::MAY_CONTAIN_GC | V::MAY_CONTAIN_GC;
}

// SAFETY: the map owns its keys and values; each is reported once.
unsafe impl<K: Trace, V: Trace> Trace for BTreeMap<K, V> {
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        if Self::MAY_CONTAIN_GC {
            for (k, v) in self.iter() {
                k.trace(tracer);
                v.trace(tracer);
            }
        }
    }
    const MAY_CONTAIN_GC: bool = K::MAY_CONTAIN_GC | V::MAY_CONTAIN_GC;
}

// SAFETY: the slice owns its elements; each is reported once.
unsafe impl<T: Trace> Trace for [T] {
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        if T::MAY_CONTAIN_GC {
            for e in self {
                e.trace(tracer);
            }
        }
    }
    const MAY_CONTAIN_GC: bool = T::MAY_CONTAIN_GC;
}

// SAFETY: the array owns its elements; each is reported once.
unsafe impl<T: Trace, const N: usize> Trace for [T; N] {
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        self.as_slice().trace(tracer)
    }
    const MAY_CONTAIN_GC: bool = T::MAY_CONTAIN_GC;
}

// SAFETY: reports the content if present.
unsafe impl<T: Trace> Trace for Option<T> {
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        if let Some(v) = self {
            v.trace(tracer)
        }
    }
    const MAY_CONTAIN_GC: bool = T::MAY_CONTAIN_GC;
}

// SAFETY: reports whichever side is present.
unsafe impl<T: Trace, E: Trace> Trace for Result<T, E> {
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        match self {
            Ok(v) => v.trace(tracer),
            Err(e) => e.trace(tracer),
        }
    }
    const MAY_CONTAIN_GC: bool = T::MAY_CONTAIN_GC | E::MAY_CONTAIN_GC;
}

macro_rules! tuple {
    ($($n:tt $t:ident),+) => {
        // SAFETY: the tuple owns its fields; each is reported once.
        unsafe impl<$($t: Trace),+> Trace for ($($t,)+) {
            #[inline]
            fn trace(&self, tracer: &mut Tracer) {
                $(self.$n.trace(tracer);)+
            }
            const MAY_CONTAIN_GC: bool = $($t::MAY_CONTAIN_GC)|+;
        }
    };
}
tuple!(0 A);
tuple!(0 A, 1 B);
tuple!(0 A, 1 B, 2 C);
tuple!(0 A, 1 B, 2 C, 3 D);
tuple!(0 A, 1 B, 2 C, 3 D, 4 E);
tuple!(0 A, 1 B, 2 C, 3 D, 4 E, 5 F);
tuple!(0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G);
tuple!(0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H);
tuple!(0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H, 8 I);
tuple!(0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H, 8 I, 9 J);
tuple!(0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H, 8 I, 9 J, 10 K);
tuple!(0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H, 8 I, 9 J, 10 K, 11 L);

// SAFETY: a `Cow` owns its content when it is `Owned` (reported through the owned type's
// impl); a `Borrowed` one owns nothing (the borrowed value is owned elsewhere). Which of the
// two it is changes only through `&mut` (`to_mut`), never while a collection looks at it.
unsafe impl<B> Trace for Cow<'_, B>
where
    B: ToOwned + ?Sized,
    B::Owned: Trace,
{
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        if let Cow::Owned(v) = self {
            v.trace(tracer)
        }
    }
    const MAY_CONTAIN_GC: bool = <B::Owned as Trace>::MAY_CONTAIN_GC;
}

/// One-field wrappers that own their field: reported through it.
macro_rules! wrapper {
    ($($name:ty),* $(,)?) => {$(
        // SAFETY: the wrapper owns its one field, reported once.
        unsafe impl<T: Trace> Trace for $name {
            #[inline]
            fn trace(&self, tracer: &mut Tracer) {
                self.0.trace(tracer)
            }
            const MAY_CONTAIN_GC: bool = T::MAY_CONTAIN_GC;
        }
    )*};
}
wrapper!(
    core::cmp::Reverse<T>,
    core::num::Wrapping<T>,
    core::num::Saturating<T>
);

// SAFETY: the range owns its two ends; each is reported once.
unsafe impl<T: Trace> Trace for Range<T> {
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        self.start.trace(tracer);
        self.end.trace(tracer);
    }
    const MAY_CONTAIN_GC: bool = T::MAY_CONTAIN_GC;
}

// SAFETY: the range owns its two ends; each is reported once (`start`/`end` give them by
// reference, and whether it is exhausted changes only through `&mut`).
unsafe impl<T: Trace> Trace for RangeInclusive<T> {
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        self.start().trace(tracer);
        self.end().trace(tracer);
    }
    const MAY_CONTAIN_GC: bool = T::MAY_CONTAIN_GC;
}

// SAFETY: the range owns its one end, reported once.
unsafe impl<T: Trace> Trace for RangeFrom<T> {
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        self.start.trace(tracer);
    }
    const MAY_CONTAIN_GC: bool = T::MAY_CONTAIN_GC;
}

// SAFETY: the range owns its one end, reported once.
unsafe impl<T: Trace> Trace for RangeTo<T> {
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        self.end.trace(tracer);
    }
    const MAY_CONTAIN_GC: bool = T::MAY_CONTAIN_GC;
}

// SAFETY: the range owns its one end, reported once.
unsafe impl<T: Trace> Trace for RangeToInclusive<T> {
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        self.end.trace(tracer);
    }
    const MAY_CONTAIN_GC: bool = T::MAY_CONTAIN_GC;
}

// SAFETY: an included or excluded bound owns its value, reported once; `Unbounded` owns none.
unsafe impl<T: Trace> Trace for Bound<T> {
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        match self {
            Bound::Included(v) | Bound::Excluded(v) => v.trace(tracer),
            Bound::Unbounded => {}
        }
    }
    const MAY_CONTAIN_GC: bool = T::MAY_CONTAIN_GC;
}

// SAFETY: a `ManuallyDrop` owns its content until `ManuallyDrop::take` or
// `ManuallyDrop::drop` is called on it, and both are `unsafe` with the contract that the
// `ManuallyDrop` is not used again, which includes being traced by the collector: so the
// content is reported, exactly as if it were a plain field. (The usual place for either call
// is the holder's own `Drop`, after which the holder is never traced.) A content never taken
// nor dropped (leaked on purpose) is still owned by the live value, and its handles are
// internal edges: reporting them lets a cycle through it be freed; the handle is then
// forgotten, never dropped, which leaks its target's header, as `mem::forget` of a handle
// does. `Trace`'s documentation states this rule for users.
unsafe impl<T: Trace + ?Sized> Trace for core::mem::ManuallyDrop<T> {
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        (**self).trace(tracer)
    }
    const MAY_CONTAIN_GC: bool = T::MAY_CONTAIN_GC;
}

// SAFETY: a `Pin<P>` owns exactly what its pointer `P` owns (a `Pin<Box<T>>` the box's
// content, a `Pin<Gc<T>>` the handle), so it reports what `P` reports. `Pin` has no method
// that gives `&P`, but it is `#[repr(transparent)]` over `P` (documented: "`Pin<Ptr>` is
// guaranteed to have the same memory layout and ABI as `Ptr`"), so the cast below is a valid
// shared reference to the pointer it holds. Handing `&P` to `P::trace` is as safe as the
// `&P::Target` that `Pin::get_ref` gives: a `Trace` impl only reads (it may not move or drop
// anything), so the pinned value does not move.
unsafe impl<P: core::ops::Deref + Trace> Trace for core::pin::Pin<P> {
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        // SAFETY: `Pin<P>` is `repr(transparent)` over `P` (see above); the reference lives
        // as long as `self`'s borrow.
        let pointer: &P = unsafe { &*(self as *const Self).cast::<P>() };
        pointer.trace(tracer)
    }
    const MAY_CONTAIN_GC: bool = P::MAY_CONTAIN_GC;
}
