//! One test suite for both flavors of `Gc`.
//!
//! A test file includes this module (`#[path = "common/flavor.rs"] mod flavor;`) and wraps
//! its flavor-independent tests in [`both_flavors!`], which compiles them twice: in
//! `mod unsync` against `pyheap::unsync::{Gc, Weak}` and in `mod shared` against
//! `pyheap::{Gc, Weak}`. Inside, the bodies use the names exported by [`unsync`] / [`shared`]:
//!
//! * `Gc`, `Weak`: the flavor's handles;
//! * `Edge<T>`: an interior-mutable slot for handles, traced: a `RefCell` (unsync) or a
//!   `Mutex` (shared: values must be `Send + Sync`); `lock()`, `with()`, `replace()`,
//!   `take()`, `get_mut()`;
//! * `collect()`: `pyheap::collect()` (both flavors: it collects the shared space and this
//!   thread's space);
//! * `gc`: the flavor's controls (`pyheap::unsync::gc` is per thread, `pyheap::gc`
//!   process-wide);
//! * `setup()`: takes this binary's serialising lock (held until the returned guard drops),
//!   turns the flavor's automatic collection off, and empties both spaces; every test of a
//!   file using this module must call it first;
//! * `SHARED`: which flavor this is, for the few documented differences.
//!
//! Why one lock for both flavors: the shared space is process-wide and `pyheap::collect()`
//! (called by unsync tests too) collects it, so an exact `collect()` result is only
//! meaningful when no other test of the binary makes shared garbage at the same time.
#![allow(dead_code)] // each test binary uses a different subset

use std::sync::{Mutex, MutexGuard};

static SERIAL: Mutex<()> = Mutex::new(());

/// The binary-wide lock (a failed test poisons it; the others go on).
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Compile the tests in `$body` once per flavor (`mod unsync`, `mod shared`).
#[macro_export]
macro_rules! both_flavors {
    ($($body:tt)*) => {
        mod unsync {
            #[allow(unused_imports)]
            use super::*;
            #[allow(unused_imports)]
            use $crate::flavor::unsync::*;
            $($body)*
        }
        mod shared {
            #[allow(unused_imports)]
            use super::*;
            #[allow(unused_imports)]
            use $crate::flavor::shared::*;
            $($body)*
        }
    };
}

/// The single-thread flavor.
pub mod unsync {
    use pyheap::{Trace, Tracer};
    use std::cell::{RefCell, RefMut};

    pub use pyheap::unsync::gc;
    #[allow(unused_imports)]
    pub use pyheap::unsync::weakref;
    #[allow(unused_imports)]
    pub use pyheap::unsync::{Gc, Weak};

    pub const SHARED: bool = false;

    /// A traced, interior-mutable slot: a `RefCell`.
    #[derive(Default)]
    pub struct Edge<T>(RefCell<T>);

    impl<T> Edge<T> {
        pub fn new(v: T) -> Self {
            Edge(RefCell::new(v))
        }
        pub fn lock(&self) -> RefMut<'_, T> {
            self.0.borrow_mut()
        }
        pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
            f(&mut self.0.borrow_mut())
        }
        pub fn replace(&self, v: T) -> T {
            self.0.replace(v)
        }
        pub fn take(&self) -> T
        where
            T: Default,
        {
            self.0.take()
        }
        pub fn get_mut(&mut self) -> &mut T {
            self.0.get_mut()
        }
    }

    impl<T: std::fmt::Debug> std::fmt::Debug for Edge<T> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            self.0.fmt(f)
        }
    }

    // SAFETY: reports exactly what the `RefCell` reports (the handles it owns).
    unsafe impl<T: Trace> Trace for Edge<T> {
        fn trace(&self, tracer: &mut Tracer) {
            self.0.trace(tracer)
        }
        const MAY_CONTAIN_GC: bool = <RefCell<T> as Trace>::MAY_CONTAIN_GC;
    }

    pub fn collect() -> usize {
        pyheap::collect()
    }

    pub fn setup() -> std::sync::MutexGuard<'static, ()> {
        let g = super::serial();
        pyheap::gc::disable();
        gc::disable();
        pyheap::collect();
        pyheap::collect();
        g
    }
}

/// The thread-safe flavor.
pub mod shared {
    use pyheap::{Trace, Tracer};
    use std::sync::{Mutex, MutexGuard};

    pub use pyheap::gc;
    #[allow(unused_imports)]
    pub use pyheap::weakref;
    #[allow(unused_imports)]
    pub use pyheap::{Gc, Weak};

    pub const SHARED: bool = true;

    /// A traced, interior-mutable slot: a `Mutex` (a poisoned one is used as is).
    #[derive(Default)]
    pub struct Edge<T>(Mutex<T>);

    impl<T> Edge<T> {
        pub fn new(v: T) -> Self {
            Edge(Mutex::new(v))
        }
        pub fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }
        pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
            f(&mut self.lock())
        }
        pub fn replace(&self, v: T) -> T {
            std::mem::replace(&mut *self.lock(), v)
        }
        pub fn take(&self) -> T
        where
            T: Default,
        {
            std::mem::take(&mut *self.lock())
        }
        pub fn get_mut(&mut self) -> &mut T {
            self.0.get_mut().unwrap_or_else(|e| e.into_inner())
        }
    }

    impl<T: std::fmt::Debug> std::fmt::Debug for Edge<T> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            self.0.fmt(f)
        }
    }

    // SAFETY: reports exactly what the `Mutex` reports (the handles it owns, with the guard
    // handed to the tracer in a concurrent scan).
    unsafe impl<T: Trace> Trace for Edge<T> {
        fn trace(&self, tracer: &mut Tracer) {
            self.0.trace(tracer)
        }
        const MAY_CONTAIN_GC: bool = <Mutex<T> as Trace>::MAY_CONTAIN_GC;
    }

    /// `pyheap::collect()`, then the teardowns other threads were running (the collector
    /// thread's, when automatic collection is on): `collect()` does not wait for those.
    pub fn collect() -> usize {
        let n = pyheap::collect();
        pyheap::gc::wait_for_teardowns();
        n
    }

    pub fn setup() -> MutexGuard<'static, ()> {
        let g = super::serial();
        gc::disable();
        pyheap::unsync::gc::disable();
        pyheap::collect();
        pyheap::collect();
        g
    }
}
