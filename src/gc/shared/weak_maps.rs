//! The thread-safe flavor's weak maps (`pyheap::weakref::{WeakValueMap, WeakKeyMap,
//! WeakSet}`): the macros of `gc::weak_maps` with `pyheap::Gc`, `Arc`, a `Mutex` table and the
//! process-wide notice registry.

use super::handle::{Gc, Weak};
use crate::gc::watch::{self, watch_shared as watch, NoticeKey};
use crate::gc::weak_maps::core::{Entry as _, MapSync, SharedQueue};
use crate::sync::unmodelled::AtomicU64;
use crate::sync::Mutex;
use std::sync::Arc as Rc;

/// The thread-safe flavor's primitives: a `Mutex` table, a locked queue with a flag read
/// without the lock, atomic tokens.
pub(crate) enum Sync_ {}

impl MapSync for Sync_ {
    type Lock<T> = Mutex<T>;
    type Queue<T> = SharedQueue<T>;
    type Counter = AtomicU64;
    fn cancel(n: NoticeKey) {
        drop(watch::cancel_shared(n));
    }
    /// No cheap way to know whether a collection cleared weak handles whose notices have not
    /// fired (the teardown queue is behind the space's lock): `len()` documents the lag.
    #[inline]
    fn uncleared_epoch() -> Option<u64> {
        None
    }
}

crate::gc::weak_maps::weak_maps!(
    value_map: [key: [+ Send], value: [+ Send + Sync]],
    key_map: [key: [+ Send + Sync], value: [+ Send]],
    set: [+ Send + Sync],
    prelude: "use pyheap::Gc;\nuse pyheap::weakref::{WeakKeyMap, WeakSet, WeakValueMap};\n",
    flavor: "Thread-safe flavor (`pyheap::weakref`): `Send + Sync` when its keys and values \
        are, usable from any number of threads at once. A death notice runs on the thread \
        where the referent stops being reachable through weak handles: the one that drops \
        its last handle, or the one that tears down its garbage cycle — pyheap's collector \
        thread (`pyheap-gc`) for garbage automatic collections find, the caller of \
        `pyheap::collect()` for what it finds — so what it removes (and, for a `WeakKeyMap`, \
        the value) may be dropped on that thread.",
    len_doc: "**What `len()` counts.** The entries whose referent's death has not been \
        processed yet: every entry `get` would return, and besides (a) an entry whose \
        referent is dying at this moment on another thread (between its last handle's drop \
        and the notice that drop fires), (b) an entry whose referent an automatic collection \
        found to be garbage: the collection clears its weak handles at once, so lookups and \
        snapshots already skip it (and remove it when they meet it), but its notice fires \
        only when the teardown starts, on the collector thread. `len()` is exact when no \
        death is in flight: once the thread that dropped a referent's last handle has \
        returned from that drop, once `pyheap::collect()` has returned for the garbage it \
        tore down, and after `pyheap::gc::wait_for_teardowns()` for the garbage automatic \
        collections found. (An exact count at every instant would need a scan per call: \
        with other threads dropping handles, it would be stale when returned anyway.)",
);
