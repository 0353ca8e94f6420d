//! Python's `weakref` for the single-thread flavor (`pyheap::unsync::weakref`): a weak
//! reference with a callback ([`WeakRef`]) and [`finalize`], on the death notices of
//! `gc::watch` (this thread's registry). "At exit" is this thread's exit here: the objects of
//! a single-thread space live and die with their thread.

use core::cell::{Cell, RefCell};
use std::rc::Rc;

use super::handle::{Gc, Weak};
use crate::gc::watch::{self, NoticeKey};
use crate::GcValue;

/// A weak reference with an optional callback (Python's `weakref.ref(obj, callback)`): the
/// callback runs once when the object can no longer be reached through weak handles (it died
/// by refcounting, after its finalizer and before its value is dropped; or a collection tore
/// its garbage cycle down, at a safe point for automatic collections), unless the `WeakRef`
/// was dropped before.
///
/// ```
/// use pyheap::unsync::weakref::WeakRef;
/// use pyheap::unsync::Gc;
/// use std::cell::Cell;
/// use std::rc::Rc;
///
/// let called = Rc::new(Cell::new(false));
/// let c = called.clone();
/// let obj = Gc::new(String::from("resource"));
/// let r = WeakRef::with_callback(&obj, move || c.set(true));
/// drop(obj);
/// assert!(called.get());
/// assert!(r.upgrade().is_none());
/// ```
pub struct WeakRef<T: ?Sized + GcValue> {
    weak: Weak<T>,
    notice: Option<NoticeKey>,
}

impl<T: ?Sized + GcValue> WeakRef<T> {
    /// A weak reference without callback (`weakref.ref(obj)`).
    pub fn new(obj: &Gc<T>) -> Self {
        WeakRef {
            weak: Gc::downgrade(obj),
            notice: None,
        }
    }

    /// A weak reference whose `callback` runs once when `obj` can no longer be reached through
    /// weak handles (see the type's docs).
    pub fn with_callback(obj: &Gc<T>, callback: impl FnOnce() + 'static) -> Self {
        WeakRef {
            weak: Gc::downgrade(obj),
            notice: Some(watch::watch_local(Gc::object_id(obj), Box::new(callback))),
        }
    }

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
            drop(watch::cancel_local(n));
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

type Callback = Box<dyn FnOnce()>;

struct State {
    func: RefCell<Option<Callback>>,
    notice: Cell<Option<NoticeKey>>,
    atexit: Cell<bool>,
}

impl State {
    fn take(&self) -> Option<Callback> {
        let f = self.func.borrow_mut().take();
        if let Some(n) = self.notice.take() {
            drop(watch::cancel_local(n));
        }
        f
    }
}

/// A finalizer made by [`finalize`] (Python's `weakref.finalize`): calls its function once,
/// when the object can no longer be reached through weak handles, when called explicitly,
/// or when this thread exits — whichever comes first — unless detached.
#[derive(Clone)]
pub struct Finalizer(Rc<State>);

/// This thread's finalizers, for its exit.
type All = Vec<std::rc::Weak<State>>;

std::thread_local! {
    /// This thread's finalizers, for its exit. No drop glue (`ManuallyDrop`), so it is not
    /// destroyed with the thread's other thread-locals before the exit hooks run
    /// (`gc::local::thread_exit`); `run_at_thread_exit` empties it and frees the buffer.
    static ALL: Cell<core::mem::ManuallyDrop<All>> =
        const { Cell::new(core::mem::ManuallyDrop::new(Vec::new())) };
}

/// Call `func` once when `obj` can no longer be reached through weak handles (Python's
/// `weakref.finalize(obj, func)`); a finalizer still alive when the thread exits is called
/// then (unless [`set_atexit(false)`](Finalizer::set_atexit)), in reverse order of creation.
///
/// ```
/// use pyheap::unsync::{weakref, Gc};
/// use std::cell::Cell;
/// use std::rc::Rc;
///
/// let runs = Rc::new(Cell::new(0));
/// let r = runs.clone();
/// let obj = Gc::new(vec![1u8]);
/// let fin = weakref::finalize(&obj, move || r.set(r.get() + 1));
/// drop(obj);
/// assert_eq!(runs.get(), 1);
/// assert!(!fin.alive());
/// ```
pub fn finalize<T: ?Sized + GcValue>(obj: &Gc<T>, func: impl FnOnce() + 'static) -> Finalizer {
    let state = Rc::new(State {
        func: RefCell::new(Some(Box::new(func))),
        notice: Cell::new(None),
        atexit: Cell::new(true),
    });
    let s = state.clone();
    let n = watch::watch_local(
        Gc::object_id(obj),
        Box::new(move || {
            s.notice.take();
            let f = s.func.borrow_mut().take();
            if let Some(f) = f {
                f();
            }
        }),
    );
    state.notice.set(Some(n));
    // The thread's exit runs its finalizers: make sure its exit hooks are armed (a thread that
    // only ever made untracked objects has not used its space yet).
    super::space::with_space(|_| ());
    let _ = ALL.try_with(|all| {
        let mut v = all.take();
        if v.len() >= 64 && v.len().is_power_of_two() {
            v.retain(|w| w.strong_count() > 0);
        }
        v.push(Rc::downgrade(&state));
        all.set(v);
    });
    Finalizer(state)
}

impl Finalizer {
    /// Whether the finalizer has not run and was not detached.
    pub fn alive(&self) -> bool {
        self.0.func.borrow().is_some()
    }

    /// Run the function now if the finalizer is alive; true if it ran.
    pub fn call(&self) -> bool {
        match self.0.take() {
            Some(f) => {
                f();
                true
            }
            None => false,
        }
    }

    /// Detach: the function will not be called; it is returned if the finalizer was alive.
    ///
    /// ```
    /// let obj = pyheap::unsync::Gc::new(5u32);
    /// let fin = pyheap::unsync::weakref::finalize(&obj, || panic!("never"));
    /// assert!(fin.detach().is_some());
    /// drop(obj);
    /// ```
    pub fn detach(&self) -> Option<Box<dyn FnOnce()>> {
        self.0.take()
    }

    /// Whether the finalizer runs at the thread's exit if still alive (default true).
    pub fn atexit(&self) -> bool {
        self.0.atexit.get()
    }

    /// Set [`atexit`](Finalizer::atexit).
    pub fn set_atexit(&self, on: bool) {
        self.0.atexit.set(on)
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

/// The thread is exiting: call its finalizers still alive with `atexit`, newest first; their
/// panics go into `panics`.
pub(crate) fn run_at_thread_exit(panics: &mut crate::gc::panics::FirstPanic) {
    let all = ALL
        .try_with(|all| core::mem::ManuallyDrop::into_inner(all.take()))
        .unwrap_or_default();
    for w in all.into_iter().rev() {
        if let Some(s) = w.upgrade() {
            if s.atexit.get() {
                if let Some(f) = s.take() {
                    panics.run(f);
                }
            }
        }
    }
}
