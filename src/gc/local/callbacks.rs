//! `gc.callbacks` for the calling thread's single-thread space:
//! `pyheap::unsync::gc::callbacks`.

use core::cell::{Cell, RefCell};
use std::rc::Rc;

use crate::gc::debug::{CallbackId, CollectionInfo, Phase};
use crate::gc::panics::FirstPanic;

type Callback = Rc<dyn Fn(Phase, &CollectionInfo)>;

std::thread_local! {
    static REGISTRY: RefCell<Vec<(u64, Callback)>> = const { RefCell::new(Vec::new()) };
    static NEXT_ID: Cell<u64> = const { Cell::new(1) };
}

/// Call `f` before and after every collection of this thread's space (Python's
/// `gc.callbacks.append(f)`), with the phase and what the collection did. A callback runs
/// where the collection's teardown runs (an explicit collection, or the safe point that
/// tears down an automatic collection's garbage, whose scan already ran in `Gc::new`), with
/// the thread marked as collecting: a `collect()` it calls returns 0. A panicking callback
/// does not stop the collection.
///
/// ```
/// use pyheap::unsync::gc::{self, callbacks, Phase};
/// use std::cell::Cell;
/// use std::rc::Rc;
///
/// let seen = Rc::new(Cell::new(0));
/// let s = seen.clone();
/// let id = callbacks::add(move |phase, info| {
///     if phase == Phase::Stop {
///         s.set(s.get() + info.collected);
///     }
/// });
/// #[derive(pyheap::Trace)]
/// struct N(std::cell::RefCell<Option<pyheap::unsync::Gc<N>>>);
/// let n = pyheap::unsync::Gc::new(N(Default::default()));
/// *n.0.borrow_mut() = Some(n.clone());
/// drop(n);
/// gc::collect();
/// assert_eq!(seen.get(), 1);
/// callbacks::remove(id);
/// ```
pub fn add(f: impl Fn(Phase, &CollectionInfo) + 'static) -> CallbackId {
    let id = NEXT_ID.with(|n| n.replace(n.get() + 1));
    REGISTRY.with(|r| r.borrow_mut().push((id, Rc::new(f))));
    CallbackId(id)
}

/// Remove the callback `id` names; false if it was not registered on this thread.
///
/// ```
/// let id = pyheap::unsync::gc::callbacks::add(|_, _| {});
/// assert!(pyheap::unsync::gc::callbacks::remove(id));
/// ```
pub fn remove(id: CallbackId) -> bool {
    REGISTRY.with(|r| {
        let mut r = r.borrow_mut();
        let before = r.len();
        r.retain(|(i, _)| *i != id.0);
        r.len() != before
    })
}

/// Remove every callback of this thread.
///
/// ```
/// pyheap::unsync::gc::callbacks::clear();
/// ```
pub fn clear() {
    let _ = REGISTRY.try_with(|r| r.borrow_mut().clear());
}

pub(crate) fn has_callbacks() -> bool {
    REGISTRY
        .try_with(|r| r.try_borrow().map(|r| !r.is_empty()).unwrap_or(false))
        .unwrap_or(false)
}

pub(crate) fn notify(phase: Phase, info: CollectionInfo, panics: &mut FirstPanic) {
    let list: Vec<Callback> = REGISTRY
        .try_with(|r| r.borrow().iter().map(|(_, f)| f.clone()).collect())
        .unwrap_or_default();
    for f in list {
        panics.run(|| f(phase, &info));
    }
}
