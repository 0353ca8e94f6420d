//! Under `--cfg loom` only: loom's atomics, each with a *read shadow* that makes loom explore
//! the interleavings its partial-order reduction would otherwise skip.
//!
//! loom 0.7's DPOR remembers, per atomic, only the last access (and the last non-load one).
//! When a thread *loads* a location and then writes it (`load` then `compare_exchange`: every
//! CAS loop here), its own load replaces another thread's earlier load as "the last access",
//! and the race between that other load and the write is never explored: a model of
//! `owner: load(head)` against `freer: load(head); cas(head)` runs once, with the owner
//! always reading before the freer pushes (tokio-rs/loom#166 and #392 show the same). Here
//! every `load` first does a relaxed `fetch_add(0)` on a companion atomic: loads of one
//! location become dependent on each other, so the reduction orders them both ways too. The
//! shadow is only ever touched with relaxed read-modify-writes that carry no value, so it
//! adds no happens-before edge: the loads themselves keep their orderings and may still read
//! stale values exactly as before.
//!
//! `AtomicBool::swap` is modelled as a compare-exchange; see there why.
//!
//! Normal builds use `core`'s atomics directly; nothing here exists there.

pub(crate) use l::Ordering;
use loom::sync::atomic as l;

macro_rules! shadowed {
    ($(#[$m:meta])* $name:ident $(<$t:ident>)?, $inner:ty, $val:ty) => {
        $(#[$m])*
        pub(crate) struct $name $(<$t>)? {
            v: $inner,
            reads: l::AtomicUsize,
        }

        #[allow(dead_code)] // not every type uses every operation
        impl $(<$t>)? $name $(<$t>)? {
            pub(crate) fn new(v: $val) -> Self {
                Self { v: <$inner>::new(v), reads: l::AtomicUsize::new(0) }
            }

            #[inline]
            fn shadow(&self) {
                self.reads.fetch_add(0, Ordering::Relaxed);
            }

            pub(crate) fn load(&self, order: Ordering) -> $val {
                self.shadow();
                self.v.load(order)
            }

            pub(crate) fn store(&self, v: $val, order: Ordering) {
                self.v.store(v, order)
            }

            pub(crate) fn compare_exchange(
                &self,
                current: $val,
                new: $val,
                success: Ordering,
                failure: Ordering,
            ) -> Result<$val, $val> {
                self.v.compare_exchange(current, new, success, failure)
            }

            pub(crate) fn compare_exchange_weak(
                &self,
                current: $val,
                new: $val,
                success: Ordering,
                failure: Ordering,
            ) -> Result<$val, $val> {
                self.v.compare_exchange_weak(current, new, success, failure)
            }
        }
    };
}

shadowed!(AtomicBool, l::AtomicBool, bool);
shadowed!(AtomicUsize, l::AtomicUsize, usize);
shadowed!(AtomicPtr<T>, l::AtomicPtr<T>, *mut T);
shadowed!(AtomicU32, l::AtomicU32, u32);
shadowed!(AtomicU64, l::AtomicU64, u64);

macro_rules! rmw {
    ($name:ident, $val:ty) => {
        #[allow(dead_code)] // not every type uses every operation
        impl $name {
            pub(crate) fn fetch_add(&self, v: $val, order: Ordering) -> $val {
                self.v.fetch_add(v, order)
            }
            pub(crate) fn fetch_sub(&self, v: $val, order: Ordering) -> $val {
                self.v.fetch_sub(v, order)
            }
            pub(crate) fn fetch_or(&self, v: $val, order: Ordering) -> $val {
                self.v.fetch_or(v, order)
            }
            pub(crate) fn fetch_and(&self, v: $val, order: Ordering) -> $val {
                self.v.fetch_and(v, order)
            }
            pub(crate) fn swap(&self, v: $val, order: Ordering) -> $val {
                self.v.swap(v, order)
            }
        }
    };
}
rmw!(AtomicU32, u32);
rmw!(AtomicU64, u64);

impl AtomicBool {
    /// `swap`, as a compare-exchange that leaves the value alone when it already is `v`.
    ///
    /// Storing the value a location already holds is unobservable, and a failed
    /// compare-exchange reads the latest value just as the swap would. But loom 0.7 cannot
    /// finish a test-and-test-and-set lock whose acquiring `swap(true)` keeps appending `true`
    /// stores: the spinning thread's relaxed load is then offered a stale `true` forever and
    /// the model exceeds its branch limit, even with two threads and no preemption bound,
    /// while the same lock written with `compare_exchange` passes.
    pub(crate) fn swap(&self, v: bool, order: Ordering) -> bool {
        let failure = match order {
            Ordering::Release | Ordering::Relaxed => Ordering::Relaxed,
            Ordering::AcqRel | Ordering::Acquire => Ordering::Acquire,
            _ => Ordering::SeqCst,
        };
        match self.v.compare_exchange(!v, v, order, failure) {
            Ok(old) | Err(old) => old,
        }
    }
}

#[allow(dead_code)] // not every operation is used in every build of the models
impl AtomicUsize {
    pub(crate) fn swap(&self, v: usize, order: Ordering) -> usize {
        self.v.swap(v, order)
    }

    pub(crate) fn fetch_add(&self, v: usize, order: Ordering) -> usize {
        self.v.fetch_add(v, order)
    }

    pub(crate) fn fetch_sub(&self, v: usize, order: Ordering) -> usize {
        self.v.fetch_sub(v, order)
    }
}

#[allow(dead_code)] // as above
impl<T> AtomicPtr<T> {
    pub(crate) fn swap(&self, v: *mut T, order: Ordering) -> *mut T {
        self.v.swap(v, order)
    }
}
