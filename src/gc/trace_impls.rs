//! `Trace` for the primitives and std types: leaves report nothing and say
//! `MAY_CONTAIN_GC = false`; containers report their elements and inherit the element's
//! constant, so `Vec<u64>` or `HashMap<String, i32>` stay untracked.
//!
//! Interior-mutable containers never block or panic while being traced: a `RefCell` that is
//! mutably borrowed, or a `Mutex`/`RwLock` that is held, reports nothing, which makes the
//! objects behind it roots for this collection (kept alive, never freed wrongly). A poisoned
//! lock is traced through.

use super::trace::{Trace, Tracer};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet, LinkedList, VecDeque};
use std::sync::{Mutex, RwLock, TryLockError, TryLockResult};

macro_rules! leaf {
    ($($t:ty),* $(,)?) => {$(
        // SAFETY: this type owns no `Gc`; reporting nothing is exact.
        unsafe impl Trace for $t {
            #[inline(always)]
            fn trace(&self, _: &mut Tracer) {}
            const MAY_CONTAIN_GC: bool = false;
        }
    )*};
}

leaf!(
    (),
    bool,
    char,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    str,
    String,
    core::num::NonZeroU8,
    core::num::NonZeroU16,
    core::num::NonZeroU32,
    core::num::NonZeroU64,
    core::num::NonZeroUsize,
    core::num::NonZeroI32,
    core::num::NonZeroI64,
    std::time::Duration,
    std::time::Instant,
    std::path::PathBuf,
    std::path::Path,
    std::ffi::OsString,
    std::ffi::OsStr,
    std::ffi::CString,
    std::ffi::CStr,
);

// SAFETY: a `PhantomData` owns nothing.
unsafe impl<T: ?Sized> Trace for core::marker::PhantomData<T> {
    #[inline(always)]
    fn trace(&self, _: &mut Tracer) {}
    const MAY_CONTAIN_GC: bool = false;
}

// SAFETY: a shared reference owns nothing (whatever it points to is owned elsewhere).
unsafe impl<T: ?Sized> Trace for &T {
    #[inline(always)]
    fn trace(&self, _: &mut Tracer) {}
    const MAY_CONTAIN_GC: bool = false;
}

// SAFETY: `T: Copy` cannot own a `Gc` (a `Gc` is not `Copy`), so there is nothing to report.
unsafe impl<T: Copy> Trace for Cell<T> {
    #[inline(always)]
    fn trace(&self, _: &mut Tracer) {}
    const MAY_CONTAIN_GC: bool = false;
}

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
    const MAY_CONTAIN_GC: bool = K::MAY_CONTAIN_GC || V::MAY_CONTAIN_GC;
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
    const MAY_CONTAIN_GC: bool = K::MAY_CONTAIN_GC || V::MAY_CONTAIN_GC;
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
    const MAY_CONTAIN_GC: bool = T::MAY_CONTAIN_GC || E::MAY_CONTAIN_GC;
}

macro_rules! tuple {
    ($($n:tt $t:ident),+) => {
        // SAFETY: the tuple owns its fields; each is reported once.
        unsafe impl<$($t: Trace),+> Trace for ($($t,)+) {
            #[inline]
            fn trace(&self, tracer: &mut Tracer) {
                $(self.$n.trace(tracer);)+
            }
            const MAY_CONTAIN_GC: bool = $($t::MAY_CONTAIN_GC)||+;
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

// SAFETY: reports the content when it can be borrowed. A mutably borrowed cell reports
// nothing: its referents then count as externally referenced (roots), which only keeps them.
// No user code runs during a collection's passes, so both passes see the same borrow state.
unsafe impl<T: Trace + ?Sized> Trace for RefCell<T> {
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        if let Ok(v) = self.try_borrow() {
            v.trace(tracer)
        }
    }
    const MAY_CONTAIN_GC: bool = T::MAY_CONTAIN_GC;
}

/// A lock's `try_lock`/`try_read` result as the guard to trace through, if any: a busy lock
/// gives nothing (never wait), a poisoned one still owns its content.
fn acquired<G>(r: TryLockResult<G>) -> Option<G> {
    match r {
        Ok(g) => Some(g),
        Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

/// `Trace` for a lock type, traced through `Tracer::trace_locked` with its non-blocking
/// `$try` method (`try_lock`, or `try_read` for a shared lock).
macro_rules! locked {
    ($lock:ty, $try:ident) => {
        // SAFETY: as for `RefCell`: a held lock reports nothing (its referents become roots);
        // the tracer never blocks, so tracing a lock held by the collecting thread cannot
        // deadlock. A poisoned lock still owns its content, which is reported. In a concurrent
        // collection the tracer keeps the guard until the scan ends (`Tracer::trace_locked`),
        // so every pass of one collection sees the same content.
        unsafe impl<T: Trace + ?Sized> Trace for $lock {
            fn trace(&self, tracer: &mut Tracer) {
                if T::MAY_CONTAIN_GC {
                    tracer.trace_locked(self, |m| acquired(m.$try()), |g| &**g)
                }
            }
            const MAY_CONTAIN_GC: bool = T::MAY_CONTAIN_GC;
        }
    };
}

locked!(Mutex<T>, try_lock);
locked!(RwLock<T>, try_read);
// loom builds only: lets the loom models put their edges behind locks that loom schedules,
// traced by the same code (loom's locks never poison).
#[cfg(loom)]
locked!(loom::sync::Mutex<T>, try_lock);
#[cfg(loom)]
locked!(loom::sync::RwLock<T>, try_read);

macro_rules! set_once {
    ($($cell:ty),*) => {$(
        // SAFETY: reports the content once it is set. A set-once cell can gain a handle but
        // never lose one through a shared reference (`take` needs `&mut`), so an edge a
        // concurrent scan reported stays where it was until the scan ends
        // (`docs/concurrency.md` I13); one set after it was traced is counted as an outside
        // reference, which only keeps its target.
        unsafe impl<T: Trace> Trace for $cell {
            #[inline]
            fn trace(&self, tracer: &mut Tracer) {
                if let Some(v) = self.get() {
                    v.trace(tracer)
                }
            }
            const MAY_CONTAIN_GC: bool = T::MAY_CONTAIN_GC;
        }
    )*};
}
set_once!(std::sync::OnceLock<T>, std::cell::OnceCell<T>);
