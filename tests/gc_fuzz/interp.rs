//! The interpreter: runs a program's operations on real handles on the main thread (and on
//! workers), keeps the model in step, and runs the oracle after every operation.
//!
//! Every call that may run user code (a drop, `Gc::new`, a collection) is wrapped in
//! [`run_user`], which catches the panics our values raise on purpose: after the issue-12
//! fix a collection that meets a panic finishes its teardown and then resumes the first
//! panic in the thread that called it; a refcount drop panics like `Rc`'s. Handles are moved
//! out of the structures *before* such a call, so the model knows the structure whether the
//! call panics or not. Any other panic (pyheap's `Deref` of a dead object, an assertion) is a
//! violation.
//!
//! The oracle's checks after each operation (see `model.rs` for the judgements):
//! 1. nothing reachable from a strong root was dropped;
//! 2. the real graph from the main thread's roots matches the shadow graph, with every
//!    canary alive (read through `Gc::as_ptr`, which does not end a `get_mut` exemption);
//! 3. strong and weak counts of the main thread's roots agree with the model;
//! 4. after a full collection, everything that was garbage before it is dropped;
//! 5. after a worker exits, every single-thread object it made is dropped;
//! 6. at the end, every object dropped once, finalized as promised, every node's memory
//!    freed, and pyheap's collector thread, if it was started, still alive (panics in the
//!    teardowns it runs are reported, not fatal).

use crate::alloc_count;
use crate::child::{raw_eprint, violation};
use crate::model::{Model, Roots, WorkerModel};
use crate::objects::{self, lock, s_stash, FuzzPanic, Id, SNode, Spec, UNode, THREAD_TAG, U_STASH};
use crate::program::{Op, Sab, WOp, E, F};
use crate::worker::{Ack, Bg, Cmd, Worker};
use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

#[path = "api_ops.rs"]
mod api_ops;

type UGc = pyheap::unsync::Gc<UNode>;
type SGc = pyheap::Gc<SNode>;
type UWeak = pyheap::unsync::Weak<UNode>;
type SWeak = pyheap::Weak<SNode>;

/// Most edges of one kind a node gets (keeps graphs small and programs fast).
const MAX_EDGES: usize = 6;
/// Most roots per flavor on the main thread.
const MAX_ROOTS: usize = 40;
const MAX_WORKERS: usize = 3;

static UNEXPECTED: AtomicBool = AtomicBool::new(false);
static UNEXPECTED_MSG: Mutex<String> = Mutex::new(String::new());

/// The child's panic hook: quiet for our own `FuzzPanic`s, loud (and remembered) for any
/// other panic, wherever it happens (pyheap's collector thread catches panics: this is how
/// one of its own would still be seen).
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        if info.payload().is::<FuzzPanic>() {
            return;
        }
        let msg = format!(
            "unexpected panic on thread {:?}: {info}",
            std::thread::current().name().unwrap_or("?")
        );
        raw_eprint(&format!("{msg}\n"));
        if let Ok(mut m) = UNEXPECTED_MSG.try_lock() {
            if m.is_empty() {
                *m = msg;
            }
        }
        UNEXPECTED.store(true, Ordering::SeqCst);
    }));
}

fn payload_msg(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string payload)".into()
    }
}

/// Run user code, catching our own panics (checked: the object named must have run the
/// `Drop` or finalizer that raises it). Any other panic is a violation.
pub fn run_user<R>(f: impl FnOnce() -> R) -> Result<R, FuzzPanic> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => Ok(r),
        Err(p) => Err(check_payload(p)),
    }
}

pub fn check_payload(p: Box<dyn Any + Send>) -> FuzzPanic {
    match p.downcast::<FuzzPanic>() {
        Ok(fp) => {
            let ran = if fp.in_finalize {
                objects::finalized(fp.id)
            } else {
                objects::dropped(fp.id)
            };
            if ran == 0 {
                violation(format!(
                    "a panic of object {} surfaced, but its code never ran",
                    fp.id
                ));
            }
            *fp
        }
        Err(p) => violation(format!("unexpected panic: {}", payload_msg(&*p))),
    }
}

fn ix(a: u8, len: usize) -> Option<usize> {
    (len > 0).then(|| a as usize % len)
}

/// The main thread's state.
pub struct Interp {
    pub m: Model,
    mu: Vec<(Id, UGc)>,
    ms: Vec<(Id, SGc)>,
    wu: Vec<(Id, UWeak)>,
    ws: Vec<(Id, SWeak)>,
    workers: Vec<Option<Worker>>,
    bg: Option<Bg>,
    frozen: [bool; 2],
    /// Per id: reached from a strong root at the last checkpoint (`u32::MAX`: not).
    strong_via: Vec<u32>,
    step: usize,
    /// Panics caught during the current operation.
    panics: Vec<FuzzPanic>,
    /// The operation being run (for messages).
    what: String,
    /// pyheap's collector thread was seen (it must then live to the end).
    gc_thread_seen: bool,
    /// What the program exercised (`PYHEAP_FUZZ_STATS`).
    stats: Stats,
    /// Weak maps, `WeakRef` callbacks and raw pointers (`api_ops.rs`).
    api: api_ops::ApiState,
}

/// Counts of what a program exercised, appended as one line to the file
/// `PYHEAP_FUZZ_STATS` names (to check that the generator reaches what it should).
#[derive(Default, Debug)]
struct Stats {
    /// Full collections with garbage to free, and the garbage objects they had to free.
    full_with_garbage: u32,
    garbage_freed: u32,
    /// Panics caught (out of drops, `Gc::new`, collections, on workers).
    panics: u32,
    /// Operations whose caught panics came from a collection's teardown.
    collect_panics: u32,
    /// Objects reachable from a finalizer's stash (resurrected) at a checkpoint, at most.
    resurrected: u32,
    upgrades_some: u32,
    upgrades_none: u32,
    get_mut_some: u32,
    try_unwrap_ok: u32,
    /// Weak-map lookups (get, remove, insert's old value, iteration) that returned a value.
    map_values: u32,
    /// `WeakRef` callbacks that ran, counted at the end.
    callbacks_run: u32,
    /// Handles taken back from raw pointers.
    from_raw: u32,
    worker_exits: u32,
    /// Single-thread objects freed by worker exits.
    exit_freed: u32,
    objects: u32,
}

/// Whether pyheap's collector thread (`pyheap-gc`) exists in this process (Linux `/proc`;
/// false where that cannot be read, e.g. under Miri).
fn gc_thread_exists() -> bool {
    if cfg!(miri) {
        return false;
    }
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return false;
    };
    dir.flatten().any(|t| {
        std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim_end() == "pyheap-gc")
    })
}

impl Default for Interp {
    fn default() -> Self {
        Self::new()
    }
}

impl Interp {
    pub fn new() -> Self {
        Interp {
            m: Model::default(),
            mu: vec![],
            ms: vec![],
            wu: vec![],
            ws: vec![],
            workers: vec![],
            bg: None,
            frozen: [false; 2],
            strong_via: vec![],
            step: 0,
            panics: vec![],
            what: String::new(),
            gc_thread_seen: false,
            stats: Stats::default(),
            api: api_ops::ApiState::default(),
        }
    }

    fn note<R>(&mut self, r: Result<R, FuzzPanic>) -> Option<R> {
        match r {
            Ok(r) => Some(r),
            Err(p) => {
                self.panics.push(p);
                self.stats.panics += 1;
                None
            }
        }
    }

    /// Every root now.
    pub fn roots(&self) -> Roots {
        let mut r = Roots::default();
        for (i, (id, _)) in self.mu.iter().enumerate() {
            r.strong.push((*id, format!("main single-thread root {i}")));
        }
        for (i, (id, _)) in self.ms.iter().enumerate() {
            r.strong.push((*id, format!("main shared root {i}")));
        }
        for (w, wm) in self.m.workers.iter().enumerate() {
            if !wm.alive {
                continue;
            }
            for (what, ids) in [
                ("root", &wm.u),
                ("root", &wm.s),
                ("thread-local", &wm.tls_u),
                ("thread-local", &wm.tls_s),
            ] {
                for &id in ids {
                    r.strong.push((id, format!("worker {w} {what}")));
                }
            }
            for &(id, strong) in &wm.ustash {
                stash_root(&mut r, id, strong, format!("worker {w} stash"));
            }
        }
        for (id, strong) in objects::u_stash_ids() {
            stash_root(&mut r, id, strong, "main single-thread stash".into());
        }
        for e in s_stash().iter() {
            stash_root(&mut r, e.id, e.strong, "shared stash".into());
        }
        r.weak.extend(self.wu.iter().map(|w| w.0));
        r.weak.extend(self.ws.iter().map(|w| w.0));
        for (i, (id, _)) in self.api.ru.iter().enumerate() {
            r.strong
                .push((*id, format!("main single-thread raw pointer {i}")));
        }
        for (i, (id, _)) in self.api.rs.iter().enumerate() {
            r.strong.push((*id, format!("main shared raw pointer {i}")));
        }
        r.weak.extend(self.api.uwr.iter().map(|e| e.id));
        r.weak.extend(self.api.swr.iter().map(|e| e.id));
        r.weak.extend(self.api.map_entries());
        r
    }

    /// The oracle after each operation.
    fn checkpoint(&mut self) {
        if UNEXPECTED.load(Ordering::SeqCst) {
            let m = UNEXPECTED_MSG.lock().map(|m| m.clone()).unwrap_or_default();
            violation(format!("after {}: {m}", self.what));
        }
        self.m.sync_ids();
        let roots = self.roots();
        self.strong_via = self.m.check_reachable_alive(&roots, &self.what);
        // After `check_reachable_alive`, which marks what this operation made garbage: the
        // maps' entries of those objects may have gone. The roots again, with the maps synced.
        self.sync_maps();
        let roots = self.roots();
        self.check_callbacks();
        self.stats.resurrected = self.stats.resurrected.max(roots.resurrected.len() as u32);
        self.verify_real();
        self.check_counts(&roots);
        if !self.gc_thread_seen {
            self.gc_thread_seen = gc_thread_exists();
        }
    }

    /// Walk the real graph from the main thread's roots (raw reads through `Gc::as_ptr`) and
    /// compare it with the shadow graph.
    fn verify_real(&self) {
        let mut seen = vec![false; self.m.objs.len()];
        let mut us: Vec<(Id, *const UNode)> = self
            .mu
            .iter()
            .map(|(id, h)| (*id, UGc::as_ptr(h)))
            .collect();
        let mut ss: Vec<(Id, *const SNode)> = self
            .ms
            .iter()
            .map(|(id, h)| (*id, SGc::as_ptr(h)))
            .collect();
        let what = &self.what;
        loop {
            if let Some((id, p)) = us.pop() {
                if std::mem::replace(&mut seen[id as usize], true) {
                    continue;
                }
                // SAFETY: the model says `id` is reachable from a root, so alive (checked just
                // before); if it is not, this read is the bug being looked for, and the canary
                // or the crash reports it.
                let n = unsafe { &*p };
                n.core
                    .expect(id, &format!("the real graph walk after {what}"));
                let o = self.m.obj(id);
                let (e, se) = (n.edges.borrow(), n.sedges.borrow());
                let real: Vec<Id> = e
                    .iter()
                    .map(|h| unsafe { &*UGc::as_ptr(h) }.core.id("an edge"))
                    .collect();
                let sreal: Vec<Id> = se
                    .iter()
                    .map(|h| unsafe { &*SGc::as_ptr(h) }.core.id("an edge"))
                    .collect();
                if real != o.uedges || sreal != o.sedges || n.weaks.borrow().len() != o.weaks.len()
                {
                    violation(format!(
                        "after {what}: object {id}'s edges are {real:?}/{sreal:?}, the model says {:?}/{:?}",
                        o.uedges, o.sedges
                    ));
                }
                us.extend(e.iter().map(|h| {
                    (
                        unsafe { &*UGc::as_ptr(h) }.core.id("an edge"),
                        UGc::as_ptr(h),
                    )
                }));
                ss.extend(se.iter().map(|h| {
                    (
                        unsafe { &*SGc::as_ptr(h) }.core.id("an edge"),
                        SGc::as_ptr(h),
                    )
                }));
            } else if let Some((id, p)) = ss.pop() {
                if std::mem::replace(&mut seen[id as usize], true) {
                    continue;
                }
                // SAFETY: as above.
                let n = unsafe { &*p };
                n.core
                    .expect(id, &format!("the real graph walk after {what}"));
                let o = self.m.obj(id);
                let e = lock(&n.edges);
                let real: Vec<Id> = e
                    .iter()
                    .map(|h| unsafe { &*SGc::as_ptr(h) }.core.id("an edge"))
                    .collect();
                if real != o.sedges || lock(&n.weaks).len() != o.weaks.len() {
                    violation(format!(
                        "after {what}: object {id}'s edges are {real:?}, the model says {:?}",
                        o.sedges
                    ));
                }
                ss.extend(e.iter().map(|h| {
                    (
                        unsafe { &*SGc::as_ptr(h) }.core.id("an edge"),
                        SGc::as_ptr(h),
                    )
                }));
            } else {
                break;
            }
        }
    }

    fn check_counts(&self, roots: &Roots) {
        let all = self.m.counts_all(roots);
        for (id, h) in &self.mu {
            let ((_, su), (_, wu)) = all[*id as usize];
            let (s, w) = (UGc::strong_count(h), UGc::weak_count(h));
            if s != su || w != wu {
                violation(format!(
                    "after {}: single-thread object {id} has counts strong {s} weak {w}, the model says {su} / {wu}",
                    self.what
                ));
            }
        }
        for (id, h) in &self.ms {
            let ((sl, _), (wl, _)) = all[*id as usize];
            let (s, w) = (SGc::strong_count(h), SGc::weak_count(h));
            if s < sl || w < wl {
                violation(format!(
                    "after {}: shared object {id} has counts strong {s} weak {w}, the model says at least {sl} / {wl}",
                    self.what
                ));
            }
        }
    }

    /// After a full collection: every object of `must` is freed (or resurrected), the shared
    /// ones possibly by a teardown another thread was already running when `collect()` was
    /// called (`collect()` does not wait for it, by design: it could deadlock), so first
    /// `pyheap::gc::wait_for_teardowns()` (safe here: no `Drop` of ours waits for a thread).
    fn settle(&mut self, must: Vec<Id>) {
        if must.iter().any(|&x| self.m.obj(x).shared) {
            let r = run_user(pyheap::gc::wait_for_teardowns);
            self.note(r);
        }
        self.m.sync_ids();
        let roots = self.roots();
        let left = self.m.check_freed(&must, &roots, &self.what);
        if !left.is_empty() {
            self.m.not_freed(&left, &self.what);
        }
    }

    /// Finding F3 tolerated: deaths queued behind a panicking `Drop` wait for the thread's
    /// next refcount death; make one of each flavor.
    fn f3_flush(&mut self) {
        if crate::model::tolerated("F3") {
            let (_, u) = UNode::make(Spec::PLAIN);
            let (_, s) = SNode::make(Spec::PLAIN);
            let r = run_user(move || drop((u, s)));
            self.note(r);
        }
    }

    /// A full collection: what was garbage before must be dropped after (unless resurrected).
    fn full_collection(
        &mut self,
        shared: bool,
        local: bool,
        f: impl FnOnce() -> usize,
    ) -> Option<usize> {
        self.f3_flush();
        self.m.sync_ids();
        let must = self.m.must_free(&self.roots(), shared, local.then_some(0));
        if !must.is_empty() {
            self.stats.full_with_garbage += 1;
            self.stats.garbage_freed += must.len() as u32;
        }
        let before = self.m.drops_now();
        let r = run_user(f);
        if r.is_err() {
            self.stats.collect_panics += 1;
        }
        self.settle(must.clone());
        let n = self.note(r)?;
        if !shared && !self.frozen[0] {
            // A collection of this thread's space alone: it returns how many of its objects
            // it freed, i.e. the garbage it found that was not resurrected.
            let after = self.m.drops_now();
            let freed = must
                .iter()
                .filter(|&&x| before[x as usize] == 0 && after[x as usize] > 0)
                .count();
            if freed != n {
                violation(format!(
                    "{}: returned {n}, but {freed} of its garbage objects were dropped by it",
                    self.what
                ));
            }
        }
        Some(n)
    }

    pub fn run_op(&mut self, op: &Op) {
        self.step += 1;
        self.what = format!("step {} ({op:?})", self.step);
        self.panics.clear();
        let r = catch_unwind(AssertUnwindSafe(|| self.op(op)));
        if let Err(p) = r {
            // Only reached by a panic the op did not expect (ours are caught where they can
            // happen); `check_payload` decides.
            let fp = check_payload(p);
            violation(format!(
                "after {}: a panic escaped the interpreter: {fp:?}",
                self.what
            ));
        }
        self.checkpoint();
    }

    fn op(&mut self, op: &Op) {
        match *op {
            Op::New(f, spec) => self.new_root(f, spec),
            Op::Ring(f, ref specs) => {
                let first = if f == F::U {
                    self.mu.len()
                } else {
                    self.ms.len()
                };
                for &spec in specs {
                    self.new_root(f, spec);
                }
                let n = if f == F::U {
                    self.mu.len()
                } else {
                    self.ms.len()
                } - first;
                let e = if f == F::U { E::UU } else { E::SS };
                for k in 0..n {
                    // Indices below 256 name exactly these roots (MAX_ROOTS is smaller).
                    self.edge(e, (first + k) as u8, (first + (k + 1) % n) as u8);
                }
            }
            Op::Edge(e, a, b) => self.edge(e, a, b),
            Op::PopEdge(e, a) => self.pop_edge(e, a),
            Op::DropRoot(F::U, a) => {
                if let Some(i) = ix(a, self.mu.len()) {
                    let (_, h) = self.mu.swap_remove(i);
                    let r = run_user(move || drop(h));
                    self.note(r);
                }
            }
            Op::DropRoot(F::S, a) => {
                if let Some(i) = ix(a, self.ms.len()) {
                    let (_, h) = self.ms.swap_remove(i);
                    let r = run_user(move || drop(h));
                    self.note(r);
                }
            }
            Op::CloneRoot(F::U, a) => {
                if let (Some(i), true) = (ix(a, self.mu.len()), self.mu.len() < MAX_ROOTS) {
                    let (id, h) = (self.mu[i].0, self.mu[i].1.clone());
                    self.mu.push((id, h));
                }
            }
            Op::CloneRoot(F::S, a) => {
                if let (Some(i), true) = (ix(a, self.ms.len()), self.ms.len() < MAX_ROOTS) {
                    let (id, h) = (self.ms[i].0, self.ms[i].1.clone());
                    self.ms.push((id, h));
                }
            }
            Op::Walk(e, a) => self.walk(e, a),
            Op::Move(e, a, b) => self.move_into(e, a, b),
            Op::Downgrade(F::U, a) => {
                if let Some(i) = ix(a, self.mu.len()) {
                    let w = UGc::downgrade(&self.mu[i].1);
                    self.wu.push((self.mu[i].0, w));
                }
            }
            Op::Downgrade(F::S, a) => {
                if let Some(i) = ix(a, self.ms.len()) {
                    let w = SGc::downgrade(&self.ms[i].1);
                    self.ws.push((self.ms[i].0, w));
                }
            }
            Op::DropWeak(F::U, a) => {
                if let Some(i) = ix(a, self.wu.len()) {
                    let (_, w) = self.wu.swap_remove(i);
                    let r = run_user(move || drop(w));
                    self.note(r);
                }
            }
            Op::DropWeak(F::S, a) => {
                if let Some(i) = ix(a, self.ws.len()) {
                    let (_, w) = self.ws.swap_remove(i);
                    let r = run_user(move || drop(w));
                    self.note(r);
                }
            }
            Op::Upgrade(F::U, a) => {
                if let Some(i) = ix(a, self.wu.len()) {
                    let t = self.wu[i].0;
                    let g = self.wu[i].1.upgrade();
                    if self.upgraded(t, g.as_ref().map(|g| &g.core)) {
                        self.mu.push((t, g.unwrap()));
                    }
                }
            }
            Op::Upgrade(F::S, a) => {
                if let Some(i) = ix(a, self.ws.len()) {
                    let t = self.ws[i].0;
                    let g = self.ws[i].1.upgrade();
                    if self.upgraded(t, g.as_ref().map(|g| &g.core)) {
                        self.ms.push((t, g.unwrap()));
                    }
                }
            }
            Op::GetMut(f, a, b) => self.get_mut(f, a, b),
            Op::TryUnwrap(f, a) => self.try_unwrap(f, a),
            Op::MapPut(f, k, a) => self.map_put(f, k, a),
            Op::MapGet(f, k) => self.map_get(f, k, false),
            Op::MapRemove(f, k) => self.map_get(f, k, true),
            Op::MapScan(f) => self.map_scan(f),
            Op::MapReset(f) => self.map_reset(f),
            Op::WeakRefCb(f, a) => self.weakref_cb(f, a),
            Op::DropWeakRef(f, a) => self.drop_weakref(f, a),
            Op::IntoRaw(f, a) => self.root_into_raw(f, a),
            Op::FromRaw(f, a) => self.raw_into_root(f, a, false),
            Op::RawClone(f, a) => self.raw_into_root(f, a, true),
            Op::Collect => {
                self.full_collection(true, true, pyheap::collect);
            }
            Op::CollectGen(g) => {
                let g = g as usize % 3;
                if g == 2 {
                    self.full_collection(true, true, || pyheap::gc::collect_generation(2));
                } else {
                    let r = run_user(|| pyheap::gc::collect_generation(g));
                    self.note(r);
                }
            }
            Op::CollectGenU(g) => {
                let g = g as usize % 3;
                if g == 2 {
                    self.full_collection(false, true, || pyheap::unsync::gc::collect_generation(2));
                } else {
                    let r = run_user(|| pyheap::unsync::gc::collect_generation(g));
                    self.note(r);
                }
            }
            Op::Storm(n) => {
                for k in 0..=(n % 32) as usize {
                    let r = run_user(|| pyheap::unsync::gc::collect_generation(k % 3));
                    self.note(r);
                }
            }
            Op::Freeze(f) => self.freeze(f, true),
            Op::Unfreeze(f) => self.freeze(f, false),
            Op::Auto(F::U, on) => {
                if on {
                    pyheap::unsync::gc::enable()
                } else {
                    pyheap::unsync::gc::disable()
                }
            }
            Op::Auto(F::S, on) => {
                if on {
                    pyheap::gc::enable()
                } else {
                    pyheap::gc::disable()
                }
            }
            Op::Threshold(F::U, a, b, c) => {
                pyheap::unsync::gc::set_threshold(a as usize, b as usize, c as usize)
            }
            Op::Threshold(F::S, a, b, c) => {
                pyheap::gc::set_threshold(a as usize, b as usize, c as usize)
            }
            Op::BgStart => {
                if self.bg.is_none() {
                    self.bg = Some(Bg::start());
                }
            }
            Op::BgStop => {
                if let Some(b) = self.bg.take() {
                    b.stop();
                }
            }
            Op::Spawn { tls_first } => {
                if self.workers.iter().filter(|w| w.is_some()).count() < MAX_WORKERS {
                    let w = self.workers.len();
                    self.workers.push(Some(Worker::spawn(w, tls_first)));
                    self.m.workers.push(WorkerModel {
                        alive: true,
                        tls_first,
                        ..Default::default()
                    });
                }
            }
            Op::Send(w, a) => {
                if let (Some(w), Some(i)) = (self.worker(w), ix(a, self.ms.len())) {
                    let (id, h) = self.ms.swap_remove(i);
                    self.m.workers[w].s.push(id);
                    let ack = self.workers[w].as_ref().unwrap().call(Cmd::Take(id, h));
                    self.acked(w, ack);
                }
            }
            Op::W(w, ref o) => {
                if let Some(w) = self.worker(w) {
                    self.worker_op(w, o);
                }
            }
            Op::Exit(w) => {
                if let Some(w) = self.worker(w) {
                    self.exit_worker(w);
                }
            }
            Op::Sabotage(s) => self.sabotage(s),
        }
    }

    /// Deliberate bugs (`oracle_selftest.rs`), on the first single-thread root.
    fn sabotage(&mut self, s: Sab) {
        if s == Sab::Crash {
            std::process::abort();
        }
        if s == Sab::Hang {
            loop {
                std::thread::park();
            }
        }
        if matches!(s, Sab::MapMislabel | Sab::EarlyCallback) {
            return self.sabotage_api(s);
        }
        let Some((_, h)) = self.mu.first() else {
            return;
        };
        let p = UGc::as_ptr(h).cast_mut();
        match s {
            Sab::Leak => {
                std::mem::forget(h.clone());
                let (_, h) = self.mu.swap_remove(0);
                drop(h);
            }
            // SAFETY: none, on purpose: the value is dropped while a handle still owns it.
            Sab::DropReachable => unsafe { std::ptr::drop_in_place(p) },
            Sab::DoubleDrop => {
                // SAFETY: none, on purpose (as above).
                unsafe { std::ptr::drop_in_place(p) };
                let (_, h) = self.mu.swap_remove(0);
                let r = run_user(move || drop(h));
                self.note(r);
            }
            Sab::UseAfterFree => {
                let (_, h) = self.mu.swap_remove(0);
                let r = run_user(move || drop(h));
                self.note(r);
                // SAFETY: none, on purpose: the memory may be freed.
                unsafe { (*p).core.id("a read after free") };
            }
            Sab::Crash | Sab::Hang | Sab::MapMislabel | Sab::EarlyCallback => {}
        }
    }

    /// The index of the live worker `w` names.
    fn worker(&self, w: u8) -> Option<usize> {
        let live: Vec<usize> = (0..self.workers.len())
            .filter(|&i| self.workers[i].is_some())
            .collect();
        ix(w, live.len()).map(|i| live[i])
    }

    fn new_root(&mut self, f: F, spec: Spec) {
        match f {
            F::U if self.mu.len() < MAX_ROOTS => {
                let (id, r) = UNode::make(spec);
                self.m.made(id, spec);
                if let Some(g) = self.note(r) {
                    self.mu.push((id, g));
                } else {
                    self.m.never_made(id);
                }
            }
            F::S if self.ms.len() < MAX_ROOTS => {
                let (id, r) = SNode::make(spec);
                self.m.made(id, spec);
                if let Some(g) = self.note(r) {
                    self.ms.push((id, g));
                } else {
                    self.m.never_made(id);
                }
            }
            _ => {}
        }
    }

    fn edge(&mut self, e: E, a: u8, b: u8) {
        let (nu, ns) = (self.mu.len(), self.ms.len());
        match e {
            E::UU | E::US | E::UW => {
                let Some(a) = ix(a, nu) else { return };
                let ida = self.mu[a].0;
                let n = &self.mu[a].1;
                n.core.expect(ida, "a root");
                let o = self.m.obj_mut(ida);
                match e {
                    E::UU if o.uedges.len() < MAX_EDGES => {
                        let Some(b) = ix(b, nu) else { return };
                        n.edges.borrow_mut().push(self.mu[b].1.clone());
                        o.uedges.push(self.mu[b].0);
                    }
                    E::US if o.sedges.len() < MAX_EDGES => {
                        let Some(b) = ix(b, ns) else { return };
                        n.sedges.borrow_mut().push(self.ms[b].1.clone());
                        o.sedges.push(self.ms[b].0);
                    }
                    E::UW if o.weaks.len() < MAX_EDGES => {
                        let Some(b) = ix(b, nu) else { return };
                        n.weaks.borrow_mut().push(UGc::downgrade(&self.mu[b].1));
                        o.weaks.push(self.mu[b].0);
                    }
                    _ => {}
                }
            }
            E::SS | E::SW => {
                let (Some(a), Some(b)) = (ix(a, ns), ix(b, ns)) else {
                    return;
                };
                let (ida, idb) = (self.ms[a].0, self.ms[b].0);
                let n = &self.ms[a].1;
                n.core.expect(ida, "a root");
                let o = self.m.obj_mut(ida);
                if e == E::SS && o.sedges.len() < MAX_EDGES {
                    lock(&n.edges).push(self.ms[b].1.clone());
                    o.sedges.push(idb);
                } else if e == E::SW && o.weaks.len() < MAX_EDGES {
                    lock(&n.weaks).push(SGc::downgrade(&self.ms[b].1));
                    o.weaks.push(idb);
                }
            }
        }
    }

    fn pop_edge(&mut self, e: E, a: u8) {
        match e {
            E::UU | E::US | E::UW => {
                let Some(a) = ix(a, self.mu.len()) else {
                    return;
                };
                let (ida, n) = (self.mu[a].0, &self.mu[a].1);
                let o = self.m.obj_mut(ida);
                let r = match e {
                    E::UU => {
                        o.uedges.pop();
                        let h = n.edges.borrow_mut().pop();
                        run_user(move || drop(h))
                    }
                    E::US => {
                        o.sedges.pop();
                        let h = n.sedges.borrow_mut().pop();
                        run_user(move || drop(h))
                    }
                    _ => {
                        o.weaks.pop();
                        let h = n.weaks.borrow_mut().pop();
                        run_user(move || drop(h))
                    }
                };
                self.note(r);
            }
            E::SS | E::SW => {
                let Some(a) = ix(a, self.ms.len()) else {
                    return;
                };
                let (ida, n) = (self.ms[a].0, &self.ms[a].1);
                let o = self.m.obj_mut(ida);
                let r = if e == E::SS {
                    o.sedges.pop();
                    let h = lock(&n.edges).pop();
                    run_user(move || drop(h))
                } else {
                    o.weaks.pop();
                    let h = lock(&n.weaks).pop();
                    run_user(move || drop(h))
                };
                self.note(r);
            }
        }
    }

    /// Replace root `a` by the target of its last strong edge of kind `e`.
    fn walk(&mut self, e: E, a: u8) {
        match e {
            E::UU => {
                let Some(i) = ix(a, self.mu.len()) else {
                    return;
                };
                let Some(&t) = self.m.obj(self.mu[i].0).uedges.last() else {
                    return;
                };
                let h = self.mu[i].1.edges.borrow().last().cloned().unwrap();
                h.core.expect(t, "a walked edge");
                let (_, old) = std::mem::replace(&mut self.mu[i], (t, h));
                let r = run_user(move || drop(old));
                self.note(r);
            }
            E::US => {
                let Some(i) = ix(a, self.mu.len()) else {
                    return;
                };
                let Some(&t) = self.m.obj(self.mu[i].0).sedges.last() else {
                    return;
                };
                let h = self.mu[i].1.sedges.borrow().last().cloned().unwrap();
                h.core.expect(t, "a walked edge");
                self.ms.push((t, h));
                let (_, old) = self.mu.swap_remove(i);
                let r = run_user(move || drop(old));
                self.note(r);
            }
            _ => {
                let Some(i) = ix(a, self.ms.len()) else {
                    return;
                };
                let Some(&t) = self.m.obj(self.ms[i].0).sedges.last() else {
                    return;
                };
                let h = lock(&self.ms[i].1.edges).last().cloned().unwrap();
                h.core.expect(t, "a walked edge");
                let (_, old) = std::mem::replace(&mut self.ms[i], (t, h));
                let r = run_user(move || drop(old));
                self.note(r);
            }
        }
    }

    /// Move root `a` (the handle itself, with no shared use of it) into root `b`'s edges.
    fn move_into(&mut self, e: E, a: u8, b: u8) {
        match e {
            E::UU => {
                if self.mu.len() < 2 {
                    return;
                }
                let (ida, h) = self.mu.swap_remove(a as usize % self.mu.len());
                let j = b as usize % self.mu.len();
                let idb = self.mu[j].0;
                self.mu[j].1.core.expect(idb, "a root");
                self.mu[j].1.edges.borrow_mut().push(h);
                self.m.obj_mut(idb).uedges.push(ida);
            }
            E::US => {
                let (Some(i), Some(j)) = (ix(a, self.ms.len()), ix(b, self.mu.len())) else {
                    return;
                };
                let (ida, h) = self.ms.swap_remove(i);
                let idb = self.mu[j].0;
                self.mu[j].1.core.expect(idb, "a root");
                self.mu[j].1.sedges.borrow_mut().push(h);
                self.m.obj_mut(idb).sedges.push(ida);
            }
            _ => {
                if self.ms.len() < 2 {
                    return;
                }
                let (ida, h) = self.ms.swap_remove(a as usize % self.ms.len());
                let j = b as usize % self.ms.len();
                let idb = self.ms[j].0;
                self.ms[j].1.core.expect(idb, "a root");
                lock(&self.ms[j].1.edges).push(h);
                self.m.obj_mut(idb).sedges.push(ida);
            }
        }
    }

    /// Judge an `upgrade`; true if it gave a handle (to be kept as a root).
    fn upgraded(&mut self, t: Id, got: Option<&objects::Core>) -> bool {
        if got.is_some() {
            self.stats.upgrades_some += 1;
        } else {
            self.stats.upgrades_none += 1;
        }
        let via = self.strong_via.get(t as usize).copied().unwrap_or(u32::MAX);
        match got {
            Some(c) => {
                if !self.m.upgrade_may_succeed(t) {
                    violation(format!(
                        "{}: upgrade gave a handle to {}",
                        self.what,
                        self.m.describe(t)
                    ));
                }
                c.expect(t, "an upgraded handle");
                true
            }
            None => {
                let mut v = vec![u32::MAX; self.m.objs.len()];
                v[t as usize] = via;
                if !self.m.upgrade_may_fail(t, &v) {
                    violation(format!(
                        "{}: upgrade failed for {}, reachable from a strong root and never garbage",
                        self.what,
                        self.m.describe(t)
                    ));
                }
                false
            }
        }
    }

    fn get_mut(&mut self, f: F, a: u8, b: u8) {
        let roots = self.roots();
        let counts = self.m.counts_all(&roots);
        match f {
            F::U => {
                let (Some(i), Some(j)) = (ix(a, self.mu.len()), ix(b, self.mu.len())) else {
                    return;
                };
                let ida = self.mu[i].0;
                let target = (i != j).then(|| (self.mu[j].0, self.mu[j].1.clone()));
                let ((sl, su), (wl, wu)) = counts[ida as usize];
                let mut made = None;
                match UGc::get_mut(&mut self.mu[i].1) {
                    Some(n) => {
                        self.stats.get_mut_some += 1;
                        if sl > 1 || wl > 0 {
                            violation(format!(
                                "{}: get_mut gave &mut with {sl} strong / {wl} weak handles",
                                self.what
                            ));
                        }
                        // A tracked allocation while the `&mut` lives (may collect).
                        let (fid, g) = UNode::make(Spec::PLAIN);
                        made = Some((fid, g.is_ok()));
                        let o = &mut self.m;
                        o.made(fid, Spec::PLAIN);
                        if let Some((tid, t)) = target {
                            n.edges.get_mut().push(t);
                            o.obj_mut(ida).uedges.push(tid);
                        }
                        match g {
                            Ok(g) => {
                                n.edges.get_mut().push(g);
                                o.obj_mut(ida).uedges.push(fid);
                            }
                            Err(p) => self.panics.push(p),
                        }
                    }
                    None => {
                        if su == 1 && wu == 0 {
                            violation(format!("{}: get_mut refused the only handle", self.what));
                        }
                        let r = run_user(move || drop(target));
                        self.note(r);
                    }
                }
                if let Some((fid, false)) = made {
                    self.m.never_made(fid);
                }
            }
            F::S => {
                let (Some(i), Some(j)) = (ix(a, self.ms.len()), ix(b, self.ms.len())) else {
                    return;
                };
                let ida = self.ms[i].0;
                let target = (i != j).then(|| (self.ms[j].0, self.ms[j].1.clone()));
                let ((sl, _), (wl, _)) = counts[ida as usize];
                let mut made = None;
                match SGc::get_mut(&mut self.ms[i].1) {
                    Some(n) => {
                        self.stats.get_mut_some += 1;
                        if sl > 1 || wl > 0 {
                            violation(format!(
                                "{}: get_mut gave &mut with {sl} strong / {wl} weak handles",
                                self.what
                            ));
                        }
                        let (fid, g) = SNode::make(Spec::PLAIN);
                        made = Some((fid, g.is_ok()));
                        let o = &mut self.m;
                        o.made(fid, Spec::PLAIN);
                        let edges = n.edges.get_mut().unwrap_or_else(|e| e.into_inner());
                        if let Some((tid, t)) = target {
                            edges.push(t);
                            o.obj_mut(ida).sedges.push(tid);
                        }
                        match g {
                            Ok(g) => {
                                edges.push(g);
                                o.obj_mut(ida).sedges.push(fid);
                            }
                            Err(p) => self.panics.push(p),
                        }
                    }
                    None => {
                        let r = run_user(move || drop(target));
                        self.note(r);
                    }
                }
                if let Some((fid, false)) = made {
                    self.m.never_made(fid);
                }
            }
        }
    }

    fn try_unwrap(&mut self, f: F, a: u8) {
        let roots = self.roots();
        let counts = self.m.counts_all(&roots);
        match f {
            F::U => {
                let Some(i) = ix(a, self.mu.len()) else {
                    return;
                };
                let (id, h) = self.mu.swap_remove(i);
                let ((sl, su), _) = counts[id as usize];
                match UGc::try_unwrap(h) {
                    Ok(v) => {
                        self.stats.try_unwrap_ok += 1;
                        if sl > 1 {
                            violation(format!(
                                "{}: try_unwrap succeeded with {sl} strong handles",
                                self.what
                            ));
                        }
                        let mut v = v;
                        v.core.expect(id, "a value moved out by try_unwrap");
                        v.core.unwrapped.store(true, Ordering::Relaxed);
                        self.m.obj_mut(id).gone = true;
                        // The value is a plain Rust value now: if its `Drop` panicked while
                        // its fields held handles whose drops panic, Rust itself would abort
                        // (as with `Rc`). Its handles go one by one after it instead.
                        let e = std::mem::take(v.edges.get_mut());
                        let se = std::mem::take(v.sedges.get_mut());
                        let w = std::mem::take(v.weaks.get_mut());
                        let r = run_user(move || drop(v));
                        self.note(r);
                        self.drop_each(e);
                        self.drop_each(se);
                        self.drop_each(w);
                    }
                    Err(h) => {
                        if su == 1 {
                            violation(format!("{}: try_unwrap refused the only handle", self.what));
                        }
                        self.mu.push((id, h));
                    }
                }
            }
            F::S => {
                let Some(i) = ix(a, self.ms.len()) else {
                    return;
                };
                let (id, h) = self.ms.swap_remove(i);
                let ((sl, _), _) = counts[id as usize];
                match SGc::try_unwrap(h) {
                    Ok(v) => {
                        self.stats.try_unwrap_ok += 1;
                        if sl > 1 {
                            violation(format!(
                                "{}: try_unwrap succeeded with {sl} strong handles",
                                self.what
                            ));
                        }
                        let mut v = v;
                        v.core.expect(id, "a value moved out by try_unwrap");
                        v.core.unwrapped.store(true, Ordering::Relaxed);
                        self.m.obj_mut(id).gone = true;
                        // As above.
                        let e =
                            std::mem::take(v.edges.get_mut().unwrap_or_else(|e| e.into_inner()));
                        let w =
                            std::mem::take(v.weaks.get_mut().unwrap_or_else(|e| e.into_inner()));
                        let r = run_user(move || drop(v));
                        self.note(r);
                        self.drop_each(e);
                        self.drop_each(w);
                    }
                    Err(h) => self.ms.push((id, h)),
                }
            }
        }
    }

    /// Drop handles one at a time, each caught.
    fn drop_each<T>(&mut self, v: Vec<T>) {
        for h in v {
            let r = run_user(move || drop(h));
            self.note(r);
        }
    }

    fn freeze(&mut self, f: F, on: bool) {
        let shared = f == F::S;
        match (f, on) {
            (F::U, true) => pyheap::unsync::gc::freeze(),
            (F::U, false) => pyheap::unsync::gc::unfreeze(),
            (F::S, true) => pyheap::gc::freeze(),
            (F::S, false) => pyheap::gc::unfreeze(),
        }
        self.m.sync_ids();
        self.m.freeze(shared, on);
        self.frozen[shared as usize] = on;
    }

    fn acked(&mut self, w: usize, ack: Ack) {
        self.panics.extend(ack.panics);
        self.m.workers[w].ustash = ack.ustash;
        if let Some((id, h)) = ack.give {
            h.core.expect(id, "a handle given back by a worker");
            self.ms.push((id, h));
        }
    }

    fn worker_op(&mut self, w: usize, o: &WOp) {
        let wm = &self.m.workers[w];
        let (nu, ns) = (wm.u.len(), wm.s.len());
        let cmd = match *o {
            WOp::New(f, spec) => {
                if (f == F::U && nu >= MAX_ROOTS) || (f == F::S && ns >= MAX_ROOTS) {
                    return;
                }
                Cmd::New(f, spec)
            }
            WOp::Edge(E::UU, a, b) => {
                let (Some(a), Some(b)) = (ix(a, nu), ix(b, nu)) else {
                    return;
                };
                if self.m.obj(wm.u[a]).uedges.len() >= MAX_EDGES {
                    return;
                }
                Cmd::EdgeUU(a, wm.u[a], b, wm.u[b])
            }
            WOp::Edge(E::US, a, b) => {
                let (Some(a), Some(b)) = (ix(a, nu), ix(b, ns)) else {
                    return;
                };
                if self.m.obj(wm.u[a]).sedges.len() >= MAX_EDGES {
                    return;
                }
                Cmd::EdgeUS(a, wm.u[a], b, wm.s[b])
            }
            WOp::Edge(..) => return,
            WOp::DropRoot(F::U, a) => {
                let Some(a) = ix(a, nu) else { return };
                Cmd::DropU(a, wm.u[a])
            }
            WOp::DropRoot(F::S, a) => {
                let Some(a) = ix(a, ns) else { return };
                Cmd::DropS(a, wm.s[a])
            }
            WOp::ToTls(F::U, a) => {
                let Some(a) = ix(a, nu) else { return };
                Cmd::ToTlsU(a, wm.u[a])
            }
            WOp::ToTls(F::S, a) => {
                let Some(a) = ix(a, ns) else { return };
                Cmd::ToTlsS(a, wm.s[a])
            }
            WOp::GiveBack(a) => {
                let Some(a) = ix(a, ns) else { return };
                Cmd::Give(a, wm.s[a])
            }
            WOp::Collect => Cmd::Collect,
            WOp::CollectGenU(g) => Cmd::CollectGenU(g),
            WOp::Auto(t) => Cmd::Auto(t),
        };
        // The model's side of the command (before: it only moves ids).
        let wm = &mut self.m.workers[w];
        match cmd {
            Cmd::EdgeUU(_, ida, _, idb) => self.m.objs[ida as usize].uedges.push(idb),
            Cmd::EdgeUS(_, ida, _, idb) => self.m.objs[ida as usize].sedges.push(idb),
            Cmd::DropU(a, _) => {
                wm.u.swap_remove(a);
            }
            Cmd::DropS(a, _) | Cmd::Give(a, _) => {
                wm.s.swap_remove(a);
            }
            Cmd::ToTlsU(a, _) => {
                let id = wm.u.swap_remove(a);
                wm.tls_u.push(id);
            }
            Cmd::ToTlsS(a, _) => {
                let id = wm.s.swap_remove(a);
                wm.tls_s.push(id);
            }
            _ => {}
        }
        let full = match cmd {
            Cmd::Collect => Some(true),
            Cmd::CollectGenU(g) if g % 3 == 2 => Some(false),
            _ => None,
        };
        let must = full.map(|shared| {
            self.m.sync_ids();
            self.m.must_free(&self.roots(), shared, Some(w as u8 + 1))
        });
        let new = if let Cmd::New(f, spec) = cmd {
            Some((f, spec))
        } else {
            None
        };
        let ack = self.workers[w].as_ref().unwrap().call(cmd);
        if let (Some((f, spec)), Some((id, ok))) = (new, ack.made) {
            self.m.made(id, spec);
            if ok {
                let wm = &mut self.m.workers[w];
                if f == F::U {
                    wm.u.push(id);
                } else {
                    wm.s.push(id);
                }
            } else {
                self.m.never_made(id);
            }
        }
        self.acked(w, ack);
        if let Some(must) = must {
            self.settle(must);
        }
    }

    fn exit_worker(&mut self, w: usize) {
        let worker = self.workers[w].take().unwrap();
        worker.exit();
        let wm = &mut self.m.workers[w];
        wm.alive = false;
        wm.u.clear();
        wm.s.clear();
        wm.tls_u.clear();
        wm.tls_s.clear();
        wm.ustash.clear();
        self.m.sync_ids();
        self.m.check_thread_exit(w);
        self.stats.worker_exits += 1;
        self.stats.exit_freed += self
            .m
            .objs
            .iter()
            .filter(|o| !o.shared && o.owner as usize == w + 1)
            .count() as u32;
    }

    /// The end of a program: everything goes, and everything must have gone exactly once.
    pub fn finish(&mut self) {
        self.what = "the end".into();
        self.finish_raw();
        if let Some(b) = self.bg.take() {
            b.stop();
        }
        for w in 0..self.workers.len() {
            if self.workers[w].is_some() {
                self.what = format!("the end (worker {w} exits)");
                self.exit_worker(w);
            }
        }
        for f in [F::U, F::S] {
            if self.frozen[(f == F::S) as usize] {
                self.freeze(f, false);
            }
        }
        self.what = "the end (a full collection)".into();
        self.full_collection(true, true, pyheap::collect);
        self.checkpoint();
        self.what = "the end (dropping every handle)".into();
        while let Some((_, w)) = self.wu.pop() {
            let r = run_user(move || drop(w));
            self.note(r);
        }
        while let Some((_, w)) = self.ws.pop() {
            let r = run_user(move || drop(w));
            self.note(r);
        }
        while let Some((_, h)) = self.mu.pop() {
            let r = run_user(move || drop(h));
            self.note(r);
        }
        while let Some((_, h)) = self.ms.pop() {
            let r = run_user(move || drop(h));
            self.note(r);
        }
        self.checkpoint();
        for round in 0..32 {
            self.what = format!("the end (stashes emptied, collection round {round})");
            self.f3_flush();
            let mut had = false;
            loop {
                let e = s_stash().pop();
                let Some(e) = e else { break };
                had = true;
                let r = run_user(move || drop(e));
                self.note(r);
            }
            loop {
                let e = U_STASH.with(|s| s.pop());
                let Some(e) = e else { break };
                had = true;
                let r = run_user(move || drop(e));
                self.note(r);
            }
            let before = self.m.drops_now().iter().filter(|&&d| d > 0).count();
            let n = run_user(pyheap::collect);
            let n = self.note(n);
            self.m.sync_ids();
            let after = self.m.drops_now().iter().filter(|&&d| d > 0).count();
            let stashed = !s_stash().is_empty() || !objects::u_stash_ids().is_empty();
            if !had && n == Some(0) && before == after && !stashed {
                break;
            }
        }
        if UNEXPECTED.load(Ordering::SeqCst) {
            self.checkpoint();
        }
        // Teardowns other threads started may still be running (see `settle`).
        let pending = self.m.end_pending();
        self.settle(pending);
        self.m.sync_ids();
        self.m.check_end();
        self.finish_callbacks();
        if self.gc_thread_seen && !gc_thread_exists() {
            violation("pyheap's collector thread (pyheap-gc) died during the program".into());
        }
        if let Ok(path) = std::env::var("PYHEAP_FUZZ_STATS") {
            self.stats.objects = self.m.objs.len() as u32;
            let line = format!("{:?}\n", self.stats);
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = std::io::Write::write_all(&mut f, line.as_bytes());
            }
        }
        let live = alloc_count::live_nodes();
        if live != 0 && !crate::model::memory_check_tolerated(&self.m) {
            violation(format!(
                "at the end: {live} node allocation(s) still live (every value was dropped, but the memory was not freed)"
            ));
        }
    }
}

fn stash_root(r: &mut Roots, id: Id, strong: bool, wh: String) {
    if id == u32::MAX {
        return;
    }
    if strong {
        r.strong.push((id, wh));
        r.resurrected.push(id);
    } else {
        r.zombie.push(id);
    }
}

/// Run one program: the whole of a child process's work.
pub fn run_program(ops: &[Op]) {
    THREAD_TAG.with(|t| t.set(0));
    if crate::child::in_process() {
        // The previous program passed (a failure aborts), so it left nothing behind but
        // its ids and pyheap's settings.
        objects::reset();
        pyheap::unsync::gc::unfreeze();
        pyheap::gc::unfreeze();
        pyheap::unsync::gc::set_threshold(700, 10, 10);
        pyheap::unsync::gc::enable();
        pyheap::gc::set_threshold(700, 10, 10);
        pyheap::gc::enable();
    }
    if alloc_count::live_nodes() != 0 {
        violation("fuzzer: node allocations live before the program started".into());
    }
    let mut it = Interp::new();
    for op in ops {
        it.run_op(op);
    }
    it.finish();
}
