//! Death notices: functions called once when an object can no longer be reached through weak
//! handles (the mechanism under `weakref`'s callbacks, `finalize` and the weak maps), for both
//! flavors.
//!
//! A notice fires, on the thread where it happens:
//! - when the object dies by refcounting: after its finalizer, before its value is dropped;
//! - when a collection tears down the garbage set it is in: at the start of the teardown
//!   (the collection cleared the set's weak handles when it committed it), before the
//!   finalizers run — CPython's `handle_weakrefs` order — so also for a set a finalizer then
//!   resurrects, whose weak handles stay cleared;
//! - when `try_unwrap` (or `into_inner`) moves the value out.
//!
//! Objects are named by the address of their box (`GcBox`: the counts), which stays the same
//! for the object's life and is not reused before its memory goes, which happens after the
//! notice fired (every path above fires before freeing). The registries are keyed by it: one
//! process-wide for the thread-safe flavor (notices must be `Send`: they may fire on another
//! thread, pyheap's collector thread included), one per thread for the single-thread flavor.
//! A process-wide count of watched objects keeps the death paths at one relaxed load of a
//! global when nothing is watched.

use crate::sync::{AtomicU64, AtomicUsize, Mutex, MutexGuard, Ordering};
use core::cell::RefCell;
use std::collections::HashMap;

type SharedNotice = Box<dyn FnOnce() + Send>;
type LocalNotice = Box<dyn FnOnce()>;
/// Notices by object, with their keys.
type Registry<N> = HashMap<usize, Vec<(u64, N)>>;

/// The process-wide state: the count of watched objects, the key counter and the
/// thread-safe flavor's registry. A `static` in normal builds; under loom (whose atomics and
/// locks cannot be made in a `const`) one per model execution, so that the models of the
/// weak maps and the introspection explore this protocol too.
struct Globals {
    /// Objects with at least one notice, both flavors (see [`watched`]).
    watched: AtomicUsize,
    next_key: AtomicU64,
    shared: Mutex<Option<Registry<SharedNotice>>>,
}

#[cfg(not(loom))]
static GLOBALS: Globals = Globals {
    watched: AtomicUsize::new(0),
    next_key: AtomicU64::new(1),
    shared: Mutex::new(None),
};

#[cfg(loom)]
loom::lazy_static! {
    static ref GLOBALS: Globals = Globals {
        watched: AtomicUsize::new(0),
        next_key: AtomicU64::new(1),
        shared: Mutex::new(None),
    };
}

/// Objects with at least one notice, both flavors.
///
/// Why a relaxed load of it on a death path never misses a notice: a notice is registered by
/// a thread holding a strong handle, and the increment is sequenced before that thread drops
/// the handle (a `Release` change of the count word). The death is either the last drop —
/// whose `Acquire` fence orders it after every earlier drop's `Release`, so after the
/// increment — or a collection's teardown, which found the object unreachable by reading its
/// count (`Acquire`) after that drop. Either way the increment happens before the load, which
/// therefore sees it (or a later value). A zero read is then exact: nothing is registered.
/// The single-thread flavor's deaths and registrations are on one thread.
#[inline(always)]
fn watched() -> &'static AtomicUsize {
    &GLOBALS.watched
}

crate::sync::thread_local! {
    /// This thread's registry. No drop glue (`ManuallyDrop`): it must outlive the thread's
    /// other thread-locals, whose destruction (and the exit collections after it) may fire
    /// notices. What is left at the thread's end (objects still alive) is leaked with them.
    static LOCAL: RefCell<core::mem::ManuallyDrop<Option<Registry<LocalNotice>>>> =
        const { RefCell::new(core::mem::ManuallyDrop::new(None)) };
}

fn shared() -> MutexGuard<'static, Option<Registry<SharedNotice>>> {
    // Notices run with the lock released, so it is never poisoned by one; use it as is.
    GLOBALS.shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// A registered notice, to cancel it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct NoticeKey {
    object: usize,
    key: u64,
}

/// Register `f` to be called once when the shared-space object `object` (its box address)
/// stops being reachable through weak handles.
///
/// The caller holds a strong handle to the object (so it is alive now and cannot die before
/// this returns).
pub(crate) fn watch_shared(object: usize, f: SharedNotice) -> NoticeKey {
    let key = GLOBALS.next_key.fetch_add(1, Ordering::Relaxed);
    let mut r = shared();
    let list = r
        .get_or_insert_with(HashMap::new)
        .entry(object)
        .or_default();
    if list.is_empty() {
        watched().fetch_add(1, Ordering::Release);
    }
    list.push((key, f));
    NoticeKey { object, key }
}

/// As [`watch_shared`], for an object of this thread's single-thread space.
pub(crate) fn watch_local(object: usize, f: LocalNotice) -> NoticeKey {
    let key = GLOBALS.next_key.fetch_add(1, Ordering::Relaxed);
    LOCAL.with(|r| {
        let mut r = r.borrow_mut();
        let list = r
            .get_or_insert_with(HashMap::new)
            .entry(object)
            .or_default();
        if list.is_empty() {
            watched().fetch_add(1, Ordering::Release);
        }
        list.push((key, f));
    });
    NoticeKey { object, key }
}

/// Cancel a notice that has not fired; returns it (false if it fired or was cancelled).
pub(crate) fn cancel_shared(n: NoticeKey) -> Option<SharedNotice> {
    let mut r = shared();
    let map = r.as_mut()?;
    let list = map.get_mut(&n.object)?;
    let i = list.iter().position(|(k, _)| *k == n.key)?;
    let (_, f) = list.swap_remove(i);
    if list.is_empty() {
        map.remove(&n.object);
        watched().fetch_sub(1, Ordering::Relaxed);
    }
    Some(f)
}

/// As [`cancel_shared`], for this thread's registry.
pub(crate) fn cancel_local(n: NoticeKey) -> Option<LocalNotice> {
    LOCAL
        .try_with(|r| {
            let mut r = r.borrow_mut();
            let r = r.as_mut()?;
            let list = r.get_mut(&n.object)?;
            let i = list.iter().position(|(k, _)| *k == n.key)?;
            let (_, f) = list.swap_remove(i);
            if list.is_empty() {
                r.remove(&n.object);
                watched().fetch_sub(1, Ordering::Relaxed);
            }
            Some(f)
        })
        .ok()
        .flatten()
}

/// [`fire`], its panics kept in `panics` (a death that must go on: drop the value, free the
/// memory, then resume).
#[inline]
pub(crate) fn fire_catching(
    shared_flavor: bool,
    object: usize,
    panics: &mut crate::gc::panics::FirstPanic,
) {
    if watched().load(Ordering::Relaxed) != 0 {
        panics.run(|| fire_slow(shared_flavor, object));
    }
}

/// The object whose box is at `object` can no longer be reached through weak handles: run its
/// notices (here, in registration order). One relaxed load when nothing is watched.
#[inline]
pub(crate) fn fire(shared_flavor: bool, object: usize) {
    if watched().load(Ordering::Relaxed) != 0 {
        fire_slow(shared_flavor, object);
    }
}

#[cold]
#[inline(never)]
fn fire_slow(shared_flavor: bool, object: usize) {
    if shared_flavor {
        let list = shared().as_mut().and_then(|m| m.remove(&object));
        if let Some(list) = list {
            watched().fetch_sub(1, Ordering::Relaxed);
            run_all(list);
        }
    } else {
        let list = LOCAL
            .try_with(|r| r.borrow_mut().as_mut().and_then(|m| m.remove(&object)))
            .ok()
            .flatten();
        if let Some(list) = list {
            watched().fetch_sub(1, Ordering::Relaxed);
            run_all(list);
        }
    }
}

/// Run every notice, then resume the first panic (`gc::panics`: reported instead if the
/// thread is already unwinding).
fn run_all<F: FnOnce() + ?Sized>(list: Vec<(u64, Box<F>)>) {
    let mut panics = crate::gc::panics::FirstPanic::new();
    for (_, f) in list {
        panics.run(f);
    }
    panics.resume();
}
