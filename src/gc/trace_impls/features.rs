//! `Trace` for other crates' containers and locks, each behind the cargo feature named after
//! its crate: `hashbrown` (0.16), `indexmap` (2), `smallvec` (1), `parking_lot` (0.12, through
//! its `lock_api` 0.4, so `Mutex`, `FairMutex`, `RwLock` and other `lock_api` locks alike).

#[cfg(any(
    feature = "hashbrown",
    feature = "indexmap",
    feature = "smallvec",
    feature = "parking_lot"
))]
use crate::gc::trace::{Trace, Tracer};

// SAFETY: the map owns its keys and values; each is reported once.
#[cfg(feature = "hashbrown")]
#[cfg_attr(docsrs, doc(cfg(feature = "hashbrown")))]
unsafe impl<K: Trace, V: Trace, S, A: allocator_api2::alloc::Allocator> Trace
    for hashbrown::HashMap<K, V, S, A>
{
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

// SAFETY: the set owns its elements; each is reported once.
#[cfg(feature = "hashbrown")]
#[cfg_attr(docsrs, doc(cfg(feature = "hashbrown")))]
unsafe impl<T: Trace, S, A: allocator_api2::alloc::Allocator> Trace
    for hashbrown::HashSet<T, S, A>
{
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

// SAFETY: the table owns its elements; each is reported once.
#[cfg(feature = "hashbrown")]
#[cfg_attr(docsrs, doc(cfg(feature = "hashbrown")))]
unsafe impl<T: Trace, A: allocator_api2::alloc::Allocator> Trace for hashbrown::HashTable<T, A> {
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
#[cfg(feature = "indexmap")]
#[cfg_attr(docsrs, doc(cfg(feature = "indexmap")))]
unsafe impl<K: Trace, V: Trace, S> Trace for indexmap::IndexMap<K, V, S> {
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

// SAFETY: the set owns its elements; each is reported once.
#[cfg(feature = "indexmap")]
#[cfg_attr(docsrs, doc(cfg(feature = "indexmap")))]
unsafe impl<T: Trace, S> Trace for indexmap::IndexSet<T, S> {
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

// SAFETY: the vector owns its elements (inline or spilled); each is reported once.
#[cfg(feature = "smallvec")]
#[cfg_attr(docsrs, doc(cfg(feature = "smallvec")))]
unsafe impl<A: smallvec::Array> Trace for smallvec::SmallVec<A>
where
    A::Item: Trace,
{
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        self.as_slice().trace(tracer)
    }
    const MAY_CONTAIN_GC: bool = <A::Item as Trace>::MAY_CONTAIN_GC;
}

// `parking_lot`'s locks, traced as std's (`sync.rs`): `try_lock`/`try_read` never block (the
// `lock_api` traits are `unsafe` and promise it), a busy lock reports nothing, and in a
// concurrent scan the guard goes to `Tracer::trace_locked`, which keeps it until the scan has
// decided. These locks never poison. Their guards are `!Send` by default: the tracer releases
// them on the thread that took them (a `Tracer` lives within one collection on one thread).
#[cfg(feature = "parking_lot")]
super::sync::locked!(
    #[cfg_attr(docsrs, doc(cfg(feature = "parking_lot")))]
    [R: parking_lot::lock_api::RawMutex, T: Trace + ?Sized]
    parking_lot::lock_api::Mutex<R, T>,
    |m| m.try_lock()
);
#[cfg(feature = "parking_lot")]
super::sync::locked!(
    #[cfg_attr(docsrs, doc(cfg(feature = "parking_lot")))]
    [R: parking_lot::lock_api::RawRwLock, T: Trace + ?Sized]
    parking_lot::lock_api::RwLock<R, T>,
    |m| m.try_read()
);
