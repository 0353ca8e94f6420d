//! The single-thread flavor's weak maps (`pyheap::unsync::weakref::{WeakValueMap,
//! WeakKeyMap, WeakSet}`): the macros of `gc::weak_maps` with `pyheap::unsync::Gc`, `Rc`, a
//! `RefCell` table and this thread's notice registry.

use super::handle::{Gc, Weak};
use crate::gc::watch::{self, watch_local as watch, NoticeKey};
use crate::gc::weak_maps::core::{Entry as _, LocalQueue, MapSync};
use core::cell::{Cell, RefCell};
use std::rc::Rc;

/// The single-thread flavor's primitives: a `RefCell` table, a `Cell` queue and tokens.
pub(crate) enum Sync_ {}

impl MapSync for Sync_ {
    type Lock<T> = RefCell<T>;
    type Queue<T> = LocalQueue<T>;
    type Counter = Cell<u64>;
    fn cancel(n: NoticeKey) {
        drop(watch::cancel_local(n));
    }
    /// Garbage automatic collections found waits for a safe point with its weak handles
    /// cleared and its notices not fired: while some waits, the epoch is the number of
    /// collections of this thread's space (each may have added some).
    #[inline]
    fn uncleared_epoch() -> Option<u64> {
        if super::controls::waiting() == 0 {
            return None;
        }
        Some(
            super::controls::stats()
                .iter()
                .map(|s| s.collections as u64)
                .sum(),
        )
    }
}

crate::gc::weak_maps::weak_maps!(
    value_map: [key: [], value: []],
    key_map: [key: [], value: []],
    set: [],
    prelude: "use pyheap::unsync::Gc;\nuse pyheap::unsync::weakref::{WeakKeyMap, WeakSet, WeakValueMap};\n",
    flavor: "Single-thread flavor (`pyheap::unsync::weakref`), for this thread's \
        `pyheap::unsync::Gc` objects; not `Send`. Death notices run on this thread: inside \
        the drop of a referent's last handle, inside the `collect()` that finds it garbage, \
        or at the safe point (`pyheap::unsync::gc::safe_point`, an explicit collection, the \
        thread's exit) that tears down the garbage an automatic collection found.",
    len_doc: "**What `len()` counts.** Exactly the entries whose referent is alive — those \
        `get` and the snapshots return. A referent that dies by refcounting leaves inside \
        the drop of its last handle; garbage `collect()` finds leaves before it returns; \
        garbage an automatic collection found waits for a safe point with its weak handles \
        cleared and its notices not yet fired: while such garbage waits \
        (`pyheap::unsync::gc::waiting() > 0`), the first `len()` after each collection sweeps \
        the map once (O(n)) to remove it. One exception: called from a death callback \
        (a `WeakRef` callback or `finalize`) that a teardown runs, `len()` may still count \
        the members of the garbage set being torn down whose notices come later.",
);
