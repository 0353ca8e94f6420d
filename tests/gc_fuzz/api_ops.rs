//! The weak-reference and raw-pointer API under the fuzzer: `WeakValueMap` (insert, get,
//! remove, iteration, the map dropped while its entries' objects live on), `weakref::WeakRef`
//! callbacks, and `into_raw` / `from_raw` / `increment_strong_count`, for both flavors, in
//! the same programs as everything else (threads, panics, collections, resurrection).
//!
//! The oracle's judgements (besides the interpreter's, which see map entries and `WeakRef`s as
//! weak handles and raw pointers as strong roots, so that the counts still add up):
//! * a map never returns an object the model says may be dead, and always returns one it
//!   says is alive (as `Weak::upgrade`, `Interp::upgraded`); an entry never vanishes while its
//!   object is alive and was never garbage (only a death notice, a `remove`, a replacing
//!   `insert` or the map's drop take entries away);
//! * a `WeakRef`'s callback runs at most once, never while its object may still be upgraded,
//!   exactly once by the end of the program for a `WeakRef` made on a live object that was
//!   never garbage, and never after its `WeakRef` was dropped while its object was alive;
//! * a raw pointer keeps its object alive through collections and comes back as a handle
//!   with the counts the model expects.

use super::{ix, Interp, MAX_ROOTS};
use crate::child::violation;
use crate::interp::run_user;
use crate::objects::{self, Core, Id, SNode, UNode};
use crate::program::F;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Keys per map (small, so that keys are reused and entries replaced).
pub const MAP_KEYS: usize = 8;

type UMap = pyheap::unsync::weakref::WeakValueMap<u8, UNode>;
type SMap = pyheap::weakref::WeakValueMap<u8, SNode>;
type UWeakRef = pyheap::unsync::weakref::WeakRef<UNode>;
type SWeakRef = pyheap::weakref::WeakRef<SNode>;
type UGc = pyheap::unsync::Gc<UNode>;
type SGc = pyheap::Gc<SNode>;

/// A `WeakRef` with its callback's call counter.
pub struct WeakRefEntry<R> {
    pub id: Id,
    _r: R,
    calls: Arc<AtomicU32>,
    /// Made on a live object that was never garbage: its callback must have run once by the
    /// end.
    sure: bool,
}

/// The state of the API the interpreter drives here.
pub struct ApiState {
    umap: UMap,
    smap: SMap,
    /// Per flavor (0 single-thread, 1 shared) and key: the object the model says the map
    /// holds an entry for.
    keys: [[Option<Id>; MAP_KEYS]; 2],
    pub uwr: Vec<WeakRefEntry<UWeakRef>>,
    pub swr: Vec<WeakRefEntry<SWeakRef>>,
    /// Dropped `WeakRef`s whose object was alive and never garbage when they were dropped:
    /// their call counters, which must not move again.
    dropped: Vec<(Id, Arc<AtomicU32>, u32)>,
    /// Raw pointers from `into_raw`, each a strong root until `from_raw`.
    pub ru: Vec<(Id, *const UNode)>,
    pub rs: Vec<(Id, *const SNode)>,
}

impl Default for ApiState {
    fn default() -> Self {
        ApiState {
            umap: UMap::new(),
            smap: SMap::new(),
            keys: [[None; MAP_KEYS]; 2],
            uwr: vec![],
            swr: vec![],
            dropped: vec![],
            ru: vec![],
            rs: vec![],
        }
    }
}

impl ApiState {
    /// The objects the maps hold entries for (each entry is one weak handle).
    pub fn map_entries(&self) -> impl Iterator<Item = Id> + '_ {
        self.keys.iter().flatten().filter_map(|k| *k)
    }
}

fn fl(f: F) -> usize {
    (f == F::S) as usize
}

impl Interp {
    fn alive_and_clean(&self, t: Id) -> bool {
        self.m.upgrade_may_succeed(t)
            && !self.m.obj(t).ever_garbage
            && self
                .strong_via
                .get(t as usize)
                .is_some_and(|&v| v != u32::MAX)
    }

    /// Judge what a map returned for key `k` (the model expects `self.api.keys[f][k]`) and
    /// keep it as a root. `got` is `(id, core)` of the returned object, if any.
    fn judge_map_value(&mut self, f: F, k: usize, got: Option<(Id, &Core)>) -> bool {
        let expected = self.api.keys[fl(f)][k];
        match (expected, got) {
            (None, None) => false,
            (None, Some(_)) => violation(format!(
                "{}: the map returned an object for key {k}, which holds no entry in the model",
                self.what
            )),
            (Some(t), got) => {
                let ok = self.upgraded(t, got.map(|g| g.1));
                self.stats.map_values += ok as u32;
                if !ok {
                    self.api.keys[fl(f)][k] = None;
                }
                ok
            }
        }
    }

    pub(super) fn map_put(&mut self, f: F, k: u8, a: u8) {
        let k = k as usize % MAP_KEYS;
        match f {
            F::U => {
                let Some(i) = ix(a, self.mu.len()) else {
                    return;
                };
                let (id, h) = (self.mu[i].0, self.mu[i].1.clone());
                let old = self.api.umap.insert(k as u8, &h);
                let got = old
                    .as_ref()
                    .map(|g| (self.api.keys[0][k].unwrap_or(u32::MAX), &g.core));
                if self.judge_map_value(f, k, got) {
                    self.keep_u(self.api.keys[0][k].unwrap(), old.unwrap());
                } else if let Some(o) = old {
                    let r = run_user(move || drop(o));
                    self.note(r);
                }
                self.api.keys[0][k] = self.api.umap.contains_key(&(k as u8)).then_some(id);
                self.dead_on_arrival(f, k, id);
                let r = run_user(move || drop(h));
                self.note(r);
            }
            F::S => {
                let Some(i) = ix(a, self.ms.len()) else {
                    return;
                };
                let (id, h) = (self.ms[i].0, self.ms[i].1.clone());
                let old = self.api.smap.insert(k as u8, &h);
                let got = old
                    .as_ref()
                    .map(|g| (self.api.keys[1][k].unwrap_or(u32::MAX), &g.core));
                if self.judge_map_value(f, k, got) {
                    self.keep_s(self.api.keys[1][k].unwrap(), old.unwrap());
                } else if let Some(o) = old {
                    let r = run_user(move || drop(o));
                    self.note(r);
                }
                let smap = &self.api.smap;
                let present = run_user(|| smap.contains_key(&(k as u8)));
                let present = self.note(present).unwrap_or(false);
                self.api.keys[1][k] = present.then_some(id);
                self.dead_on_arrival(f, k, id);
                let r = run_user(move || drop(h));
                self.note(r);
            }
        }
    }

    /// After an insert of root `id` under `k`: no entry is only right for an object whose weak
    /// handles a collection cleared (a resurrected one).
    fn dead_on_arrival(&self, f: F, k: usize, id: Id) {
        if self.api.keys[fl(f)][k].is_none() && !self.m.obj(id).ever_garbage {
            violation(format!(
                "{}: inserting live root {} under key {k} left no entry",
                self.what,
                self.m.describe(id)
            ));
        }
    }

    fn keep_u(&mut self, id: Id, g: UGc) {
        if self.mu.len() < MAX_ROOTS {
            self.mu.push((id, g));
        } else {
            let r = run_user(move || drop(g));
            self.note(r);
        }
    }

    fn keep_s(&mut self, id: Id, g: SGc) {
        if self.ms.len() < MAX_ROOTS {
            self.ms.push((id, g));
        } else {
            let r = run_user(move || drop(g));
            self.note(r);
        }
    }

    pub(super) fn map_get(&mut self, f: F, k: u8, remove: bool) {
        let k = k as usize % MAP_KEYS;
        let key = k as u8;
        let expected = self.api.keys[fl(f)][k].unwrap_or(u32::MAX);
        match f {
            F::U => {
                let g = if remove {
                    self.api.umap.remove(&key)
                } else {
                    self.api.umap.get(&key)
                };
                if self.judge_map_value(f, k, g.as_ref().map(|g| (expected, &g.core))) {
                    self.keep_u(expected, g.unwrap());
                }
            }
            F::S => {
                let g = if remove {
                    self.api.smap.remove(&key)
                } else {
                    self.api.smap.get(&key)
                };
                if self.judge_map_value(f, k, g.as_ref().map(|g| (expected, &g.core))) {
                    self.keep_s(expected, g.unwrap());
                }
            }
        }
        if remove {
            self.api.keys[fl(f)][k] = None;
        }
    }

    pub(super) fn map_scan(&mut self, f: F) {
        let mut seen = [false; MAP_KEYS];
        match f {
            F::U => {
                let entries = self.api.umap.iter();
                for (k, g) in entries {
                    let k = k as usize;
                    seen[k] = true;
                    let expected = self.api.keys[0][k].unwrap_or(u32::MAX);
                    if self.judge_map_value(f, k, Some((expected, &g.core))) {
                        self.keep_u(expected, g);
                    }
                }
            }
            F::S => {
                let entries = self.api.smap.iter();
                for (k, g) in entries {
                    let k = k as usize;
                    seen[k] = true;
                    let expected = self.api.keys[1][k].unwrap_or(u32::MAX);
                    if self.judge_map_value(f, k, Some((expected, &g.core))) {
                        self.keep_s(expected, g);
                    }
                }
            }
        }
        // Entries the iteration left out must be of objects that may be dead.
        for (k, seen) in seen.into_iter().enumerate() {
            if !seen {
                if let Some(t) = self.api.keys[fl(f)][k] {
                    self.upgraded(t, None);
                    self.api.keys[fl(f)][k] = None;
                }
            }
        }
    }

    pub(super) fn map_reset(&mut self, f: F) {
        match f {
            F::U => {
                let m = std::mem::replace(&mut self.api.umap, UMap::new());
                let r = run_user(move || drop(m));
                self.note(r);
            }
            F::S => {
                let m = std::mem::replace(&mut self.api.smap, SMap::new());
                let r = run_user(move || drop(m));
                self.note(r);
            }
        }
        self.api.keys[fl(f)] = [None; MAP_KEYS];
    }

    /// At a checkpoint, before the roots are taken: entries the maps dropped since (death
    /// notices) leave the model, and only entries of objects that may be dead may go.
    pub(super) fn sync_maps(&mut self) {
        for f in [F::U, F::S] {
            for k in 0..MAP_KEYS {
                let Some(t) = self.api.keys[fl(f)][k] else {
                    continue;
                };
                let present = match f {
                    F::U => self.api.umap.contains_key(&(k as u8)),
                    F::S => {
                        let smap = &self.api.smap;
                        let r = run_user(|| smap.contains_key(&(k as u8)));
                        self.note(r).unwrap_or(true)
                    }
                };
                if !present {
                    let o = self.m.obj(t);
                    if objects::dropped(t) == 0 && !o.gone && !o.ever_garbage {
                        violation(format!(
                            "after {}: the map lost key {k}'s entry, but its object {} lives and was never garbage",
                            self.what,
                            self.m.describe(t)
                        ));
                    }
                    self.api.keys[fl(f)][k] = None;
                }
            }
        }
    }

    pub(super) fn weakref_cb(&mut self, f: F, a: u8) {
        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        let callback = move || {
            c.fetch_add(1, Ordering::SeqCst);
        };
        match f {
            F::U => {
                let Some(i) = ix(a, self.mu.len()) else {
                    return;
                };
                let id = self.mu[i].0;
                let sure = self.alive_and_clean(id);
                let r = UWeakRef::with_callback(&self.mu[i].1, callback);
                self.api.uwr.push(WeakRefEntry {
                    id,
                    _r: r,
                    calls,
                    sure,
                });
            }
            F::S => {
                let Some(i) = ix(a, self.ms.len()) else {
                    return;
                };
                let id = self.ms[i].0;
                let sure = self.alive_and_clean(id);
                let r = SWeakRef::with_callback(&self.ms[i].1, callback);
                self.api.swr.push(WeakRefEntry {
                    id,
                    _r: r,
                    calls,
                    sure,
                });
            }
        }
    }

    pub(super) fn drop_weakref(&mut self, f: F, a: u8) {
        let (id, calls) = match f {
            F::U => {
                let Some(i) = ix(a, self.api.uwr.len()) else {
                    return;
                };
                let e = self.api.uwr.swap_remove(i);
                let (id, calls) = (e.id, e.calls.clone());
                let r = run_user(move || drop(e));
                self.note(r);
                (id, calls)
            }
            F::S => {
                let Some(i) = ix(a, self.api.swr.len()) else {
                    return;
                };
                let e = self.api.swr.swap_remove(i);
                let (id, calls) = (e.id, e.calls.clone());
                let r = run_user(move || drop(e));
                self.note(r);
                (id, calls)
            }
        };
        // Only an object that cannot be dying on another thread right now (reachable from a
        // strong root, never garbage) makes "never after the drop" a promise.
        if self.alive_and_clean(id) {
            let at = calls.load(Ordering::SeqCst);
            self.api.dropped.push((id, calls, at));
        }
    }

    /// At a checkpoint (after `strong_via` was computed): the callbacks' judgements.
    pub(super) fn check_callbacks(&self) {
        let held = self
            .api
            .uwr
            .iter()
            .map(|e| (e.id, &e.calls))
            .chain(self.api.swr.iter().map(|e| (e.id, &e.calls)));
        for (id, calls) in held {
            let n = calls.load(Ordering::SeqCst);
            if n > 1 {
                violation(format!(
                    "after {}: a WeakRef callback for {} ran {n} times",
                    self.what,
                    self.m.describe(id)
                ));
            }
            if n == 1 && !self.m.upgrade_may_fail(id, &self.strong_via) {
                violation(format!(
                    "after {}: a WeakRef callback ran while {} lives (reachable from a strong root, never garbage)",
                    self.what,
                    self.m.describe(id)
                ));
            }
        }
        for (id, calls, at) in &self.api.dropped {
            let n = calls.load(Ordering::SeqCst);
            if n != *at {
                violation(format!(
                    "after {}: the callback of a dropped WeakRef for {} ran after the drop ({at} -> {n} calls)",
                    self.what,
                    self.m.describe(*id)
                ));
            }
        }
    }

    /// At the end, every object freed: every sure `WeakRef`'s callback ran exactly once. Then
    /// the `WeakRef`s and maps go.
    pub(super) fn finish_callbacks(&mut self) {
        let held = self
            .api
            .uwr
            .iter()
            .map(|e| (e.id, &e.calls, e.sure))
            .chain(self.api.swr.iter().map(|e| (e.id, &e.calls, e.sure)));
        let mut run = 0;
        for (id, calls, sure) in held {
            let n = calls.load(Ordering::SeqCst);
            run += n;
            if sure && n != 1 {
                violation(format!(
                    "at the end: the callback of a WeakRef made on live {} ran {n} times (once expected: the object was freed)",
                    self.m.describe(id)
                ));
            }
        }
        self.stats.callbacks_run += run;
        let (u, s) = (
            std::mem::take(&mut self.api.uwr),
            std::mem::take(&mut self.api.swr),
        );
        let r = run_user(move || drop((u, s)));
        self.note(r);
        self.map_reset(F::U);
        self.map_reset(F::S);
    }

    pub(super) fn root_into_raw(&mut self, f: F, a: u8) {
        match f {
            F::U => {
                let Some(i) = ix(a, self.mu.len()) else {
                    return;
                };
                let (id, h) = self.mu.swap_remove(i);
                self.api.ru.push((id, UGc::into_raw(h)));
            }
            F::S => {
                let Some(i) = ix(a, self.ms.len()) else {
                    return;
                };
                let (id, h) = self.ms.swap_remove(i);
                self.api.rs.push((id, SGc::into_raw(h)));
            }
        }
    }

    pub(super) fn raw_into_root(&mut self, f: F, a: u8, clone: bool) {
        match f {
            F::U => {
                let Some(i) = ix(a, self.api.ru.len()) else {
                    return;
                };
                if clone && self.mu.len() >= MAX_ROOTS {
                    return;
                }
                let (id, p) = if clone {
                    let (id, p) = self.api.ru[i];
                    // SAFETY: `p` came from `into_raw` and its handle was not taken back: the
                    // object is alive (a raw pointer is a strong root).
                    unsafe { UGc::increment_strong_count(p) };
                    (id, p)
                } else {
                    self.api.ru.swap_remove(i)
                };
                // SAFETY: as above; the strong count this handle owns is the raw pointer's (or
                // the one just added).
                let h = unsafe { UGc::from_raw(p) };
                h.core.expect(id, "a handle back from a raw pointer");
                self.stats.from_raw += 1;
                self.mu.push((id, h));
            }
            F::S => {
                let Some(i) = ix(a, self.api.rs.len()) else {
                    return;
                };
                if clone && self.ms.len() >= MAX_ROOTS {
                    return;
                }
                let (id, p) = if clone {
                    let (id, p) = self.api.rs[i];
                    // SAFETY: as for the single-thread flavor.
                    unsafe { SGc::increment_strong_count(p) };
                    (id, p)
                } else {
                    self.api.rs.swap_remove(i)
                };
                // SAFETY: as for the single-thread flavor.
                let h = unsafe { SGc::from_raw(p) };
                h.core.expect(id, "a handle back from a raw pointer");
                self.stats.from_raw += 1;
                self.ms.push((id, h));
            }
        }
    }

    /// Deliberate bugs for the oracle's own tests (`oracle_selftest.rs`).
    pub(super) fn sabotage_api(&mut self, s: crate::program::Sab) {
        match s {
            crate::program::Sab::MapMislabel => {
                if self.mu.len() < 2 {
                    return;
                }
                self.api.umap.insert(0, &self.mu[1].1);
                self.api.keys[0][0] = Some(self.mu[0].0);
            }
            _ => {
                if let Some(e) = self.api.uwr.first() {
                    e.calls.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    }

    /// At the end: every raw pointer back into a root (so that the end drops it).
    pub(super) fn finish_raw(&mut self) {
        while !self.api.ru.is_empty() {
            self.raw_into_root(F::U, 0, false);
        }
        while !self.api.rs.is_empty() {
            self.raw_into_root(F::S, 0, false);
        }
    }
}
