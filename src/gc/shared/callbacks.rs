//! `gc.callbacks` for the shared space: `pyheap::gc::callbacks`.
//!
//! The registry is a plain `std` mutex (not part of any protocol the collector's soundness
//! rests on): it is held only to copy the list, and callbacks run with no lock held.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::gc::debug::{CallbackId, CollectionInfo, Phase};
use crate::gc::panics::FirstPanic;

type Callback = Arc<dyn Fn(Phase, &CollectionInfo) + Send + Sync>;

static REGISTRY: Mutex<Vec<(u64, Callback)>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// Callbacks registered: collections test this before taking the registry's lock.
static COUNT: AtomicUsize = AtomicUsize::new(0);

fn registry() -> std::sync::MutexGuard<'static, Vec<(u64, Callback)>> {
    // A callback panics with no lock held, so the lock is never poisoned by one; use it as is.
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Call `f` before and after every collection of the shared space (Python's
/// `gc.callbacks.append(f)`), with the phase and what the collection did.
///
/// A callback runs on the thread that runs the collection's teardown (the caller of
/// `collect()`, or pyheap's collector thread for automatic collections, whose scan already
/// ran on the allocating thread when `Start` is called), with no pyheap lock held: it may
/// allocate, create and drop handles and call the controls; a `collect()` it calls returns 0
/// (the thread is collecting), as in CPython. A callback that panics does not stop the
/// collection: its panic is resumed (or reported) as a `Drop`'s would be.
///
/// ```
/// use pyheap::gc::{self, callbacks, Phase};
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
///
/// let stops = Arc::new(AtomicUsize::new(0));
/// let s = stops.clone();
/// let id = callbacks::add(move |phase, info| {
///     if phase == Phase::Stop {
///         s.fetch_add(1, Ordering::SeqCst);
///         assert_eq!(info.uncollectable, 0);
///         assert_eq!(gc::collect_generation(0), 0); // no nested collection
///     }
/// });
/// pyheap::collect();
/// assert!(stops.load(Ordering::SeqCst) >= 1);
/// assert!(callbacks::remove(id));
/// ```
pub fn add(f: impl Fn(Phase, &CollectionInfo) + Send + Sync + 'static) -> CallbackId {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let mut r = registry();
    r.push((id, Arc::new(f)));
    COUNT.store(r.len(), Ordering::Release);
    CallbackId(id)
}

/// Remove the callback `id` names; false if it was not registered.
///
/// ```
/// let id = pyheap::gc::callbacks::add(|_, _| {});
/// assert!(pyheap::gc::callbacks::remove(id));
/// assert!(!pyheap::gc::callbacks::remove(id));
/// ```
pub fn remove(id: CallbackId) -> bool {
    let mut r = registry();
    let before = r.len();
    r.retain(|(i, _)| *i != id.0);
    COUNT.store(r.len(), Ordering::Release);
    r.len() != before
}

/// Remove every callback (`gc.callbacks.clear()`).
///
/// ```
/// pyheap::gc::callbacks::clear();
/// ```
pub fn clear() {
    let mut r = registry();
    r.clear();
    COUNT.store(0, Ordering::Release);
}

pub(crate) fn has_callbacks() -> bool {
    COUNT.load(Ordering::Acquire) != 0
}

pub(crate) fn notify(phase: Phase, info: CollectionInfo, panics: &mut FirstPanic) {
    let list: Vec<Callback> = registry().iter().map(|(_, f)| f.clone()).collect();
    for f in list {
        panics.run(|| f(phase, &info));
    }
}
