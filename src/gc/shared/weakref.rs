//! Python's `weakref` for the thread-safe flavor (`pyheap::weakref`): a weak reference with a
//! callback ([`WeakRef`]) and [`finalize`], on the death notices of `gc::watch`. Callbacks
//! run on the thread where the object stops being reachable through weak handles (the one
//! dropping its last handle, or the one tearing its garbage cycle down, pyheap's collector
//! thread included), so they are `Send`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::handle::{Gc, Weak};
use crate::gc::watch::{self, NoticeKey};
use crate::GcValue;

/// A weak reference with an optional callback (Python's `weakref.ref(obj, callback)`): the
/// callback runs once when the object can no longer be reached through weak handles — when it
/// dies by refcounting (after its finalizer, before its value is dropped), or when a
/// collection tears down its garbage cycle (the cycle's weak handles are cleared first, as
/// CPython's `handle_weakrefs`) — unless the `WeakRef` was dropped before (as in Python, a
/// dead weak reference's callback is not called).
///
/// ```
/// use pyheap::weakref::WeakRef;
/// use pyheap::Gc;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
///
/// let called = Arc::new(AtomicBool::new(false));
/// let c = called.clone();
/// let obj = Gc::new(String::from("resource"));
/// let r = WeakRef::with_callback(&obj, move || c.store(true, Ordering::SeqCst));
/// assert_eq!(r.upgrade().as_deref().map(String::as_str), Some("resource"));
/// drop(obj);
/// assert!(called.load(Ordering::SeqCst));
/// assert!(r.upgrade().is_none());
/// ```
pub struct WeakRef<T: ?Sized + GcValue> {
    weak: Weak<T>,
    notice: Option<NoticeKey>,
}

impl<T: ?Sized + GcValue + Send + Sync> WeakRef<T> {
    /// A weak reference without callback (`weakref.ref(obj)`).
    pub fn new(obj: &Gc<T>) -> Self {
        WeakRef {
            weak: Gc::downgrade(obj),
            notice: None,
        }
    }

    /// A weak reference whose `callback` runs once when `obj` can no longer be reached through
    /// weak handles (see the type's docs).
    pub fn with_callback(obj: &Gc<T>, callback: impl FnOnce() + Send + 'static) -> Self {
        WeakRef {
            weak: Gc::downgrade(obj),
            notice: Some(watch::watch_shared(Gc::object_id(obj), Box::new(callback))),
        }
    }
}

impl<T: ?Sized + GcValue> WeakRef<T> {
    /// A strong handle if the object is alive (`r()`).
    pub fn upgrade(&self) -> Option<Gc<T>> {
        self.weak.upgrade()
    }

    /// The weak handle.
    pub fn weak(&self) -> &Weak<T> {
        &self.weak
    }
}

impl<T: ?Sized + GcValue> Drop for WeakRef<T> {
    fn drop(&mut self) {
        if let Some(n) = self.notice.take() {
            // The callback dies with the reference, unrun (a notice that fired is gone already).
            drop(watch::cancel_shared(n));
        }
    }
}

impl<T: ?Sized + GcValue> core::fmt::Debug for WeakRef<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WeakRef")
            .field("callback", &self.notice.is_some())
            .finish_non_exhaustive()
    }
}

type Callback = Box<dyn FnOnce() + Send>;

/// A finalizer's state: the function while it is alive, the notice that calls it.
struct State {
    func: Mutex<Option<Callback>>,
    notice: Mutex<Option<NoticeKey>>,
    atexit: AtomicBool,
}

impl State {
    /// Take the function (it is then dead), cancelling the notice unless it is firing.
    fn take(&self) -> Option<Callback> {
        let f = self.func.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(n) = self.notice.lock().unwrap_or_else(|e| e.into_inner()).take() {
            drop(watch::cancel_shared(n));
        }
        f
    }
}

/// A finalizer made by [`finalize`] (Python's `weakref.finalize`): it calls its function once,
/// when the object can no longer be reached through weak handles, when called explicitly, or
/// at process exit — whichever comes first — unless detached. Clones name the same finalizer;
/// dropping every handle does not cancel it.
#[derive(Clone)]
pub struct Finalizer(Arc<State>);

/// Call `func` once when `obj` can no longer be reached through weak handles (it died, or a
/// collection tore its garbage cycle down), as Python's `weakref.finalize(obj, func)`. `func`
/// must not hold a handle to `obj` (it would keep it alive). Unless
/// [`set_atexit(false)`](Finalizer::set_atexit), a finalizer still alive when the process
/// exits (`exit()` or the end of `main`) is called then, in reverse order of creation (Unix).
///
/// ```
/// use pyheap::{weakref, Gc};
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
///
/// let runs = Arc::new(AtomicU32::new(0));
/// let r = runs.clone();
/// let file = Gc::new(vec![1u8, 2, 3]);
/// let fin = weakref::finalize(&file, move || { r.fetch_add(1, Ordering::SeqCst); });
/// assert!(fin.alive());
/// drop(file);
/// assert_eq!(runs.load(Ordering::SeqCst), 1);
/// assert!(!fin.alive());
/// assert!(!fin.call(), "runs at most once");
/// ```
pub fn finalize<T: ?Sized + GcValue + Send + Sync>(
    obj: &Gc<T>,
    func: impl FnOnce() + Send + 'static,
) -> Finalizer {
    let state = Arc::new(State {
        func: Mutex::new(Some(Box::new(func))),
        notice: Mutex::new(None),
        atexit: AtomicBool::new(true),
    });
    let s = state.clone();
    let n = watch::watch_shared(
        Gc::object_id(obj),
        Box::new(move || {
            // Fired: the notice is gone; take the function and run it.
            s.notice.lock().unwrap_or_else(|e| e.into_inner()).take();
            let f = s.func.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(f) = f {
                f();
            }
        }),
    );
    *state.notice.lock().unwrap_or_else(|e| e.into_inner()) = Some(n);
    atexit::register(&state);
    Finalizer(state)
}

impl Finalizer {
    /// Whether the finalizer has not run and was not detached.
    pub fn alive(&self) -> bool {
        self.0
            .func
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Run the function now if the finalizer is alive (Python's `f()`); true if it ran.
    pub fn call(&self) -> bool {
        match self.0.take() {
            Some(f) => {
                f();
                true
            }
            None => false,
        }
    }

    /// Detach: the function will not be called; it is returned if the finalizer was alive
    /// (Python's `detach()`).
    ///
    /// ```
    /// let obj = pyheap::Gc::new(5u32);
    /// let fin = pyheap::weakref::finalize(&obj, || panic!("never"));
    /// assert!(fin.detach().is_some());
    /// drop(obj);
    /// assert!(!fin.alive());
    /// ```
    pub fn detach(&self) -> Option<Box<dyn FnOnce() + Send>> {
        self.0.take()
    }

    /// Whether the finalizer runs at exit if still alive (default true).
    pub fn atexit(&self) -> bool {
        self.0.atexit.load(Ordering::Relaxed)
    }

    /// Set [`atexit`](Finalizer::atexit).
    pub fn set_atexit(&self, on: bool) {
        self.0.atexit.store(on, Ordering::Relaxed)
    }
}

impl core::fmt::Debug for Finalizer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Finalizer")
            .field("alive", &self.alive())
            .field("atexit", &self.atexit())
            .finish()
    }
}

/// The finalizers to run at process exit.
mod atexit {
    use super::State;
    #[cfg(unix)]
    use std::sync::Once;
    use std::sync::{Mutex, Weak};

    static ALL: Mutex<Vec<Weak<State>>> = Mutex::new(Vec::new());
    #[cfg(unix)]
    static HOOK: Once = Once::new();

    pub(super) fn register(state: &std::sync::Arc<State>) {
        let mut all = ALL.lock().unwrap_or_else(|e| e.into_inner());
        // Forget the finalizers that are gone (amortised: when the list doubles).
        if all.len() >= 64 && all.len().is_power_of_two() {
            all.retain(|w| w.strong_count() > 0);
        }
        all.push(std::sync::Arc::downgrade(state));
        drop(all);
        #[cfg(unix)]
        HOOK.call_once(|| {
            // SAFETY: registers an `extern "C"` function valid for the process's life.
            unsafe { libc::atexit(run_at_exit) };
        });
    }

    #[cfg(unix)]
    extern "C" fn run_at_exit() {
        let all = core::mem::take(&mut *ALL.lock().unwrap_or_else(|e| e.into_inner()));
        for w in all.into_iter().rev() {
            if let Some(s) = w.upgrade() {
                if s.atexit.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Some(f) = s.take() {
                        // Nothing may unwind out of an `atexit` function.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
                    }
                }
            }
        }
    }
}
