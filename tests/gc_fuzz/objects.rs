//! The values the fuzzer's programs build, one node type per flavor, and what they record.
//!
//! Every node carries a canary (head and tail) that encodes its id, and a padding filled with
//! an id-derived pattern. The canary is checked on every access the fuzzer makes (and by
//! every `Drop`/`finalize` that reads a sibling); `Drop` checks head, tail and padding, then
//! overwrites the canary with a "dead" mark, so a second drop of the same value, or any read
//! after it, reports instead of silently passing. Freed-and-reused memory reads as garbage.
//!
//! Per id, atomic counters record drops and finalizer runs (checked against 1 at once), and
//! which flavor and thread the object belongs to (objects made by `Drop`s are learned by the
//! model from here). Atomics only: `Drop` runs on any thread, inside collections, with no
//! lock of ours held.
//!
//! A node's behaviour is fixed at creation ([`Acts`]): its `Drop` and its finalizer may read
//! their siblings, stash handles, allocate, call `collect()`, or panic with a [`FuzzPanic`].

use crate::child::violation;
use pyheap::{Finalize, Trace};
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering::*};
use std::sync::{Mutex, MutexGuard};

pub type Id = u32;
/// More ids than any program can make (each op makes at most two objects, each drop one).
pub const MAX_IDS: usize = 1 << 14;

/// Words of padding: makes every node's allocation a size nothing else in the process asks
/// for (about 12 KiB), so that `alloc_count` can count the nodes' allocations.
pub const PAD_WORDS: usize = 1500;

/// What a `Drop` or a finalizer does (a bit set).
pub mod act {
    /// Read every sibling: `try_deref` on strong edges (a finalizer must get `Some`: the set
    /// is intact), `upgrade` on weak ones, checking the canary of whatever comes back.
    pub const READ: u8 = 1;
    /// `Drop`: stash clones of its strong edges (they may be dead: "zombie" handles).
    /// Finalizer: resurrect, i.e. stash clones of its strong edges as strong roots.
    pub const STASH: u8 = 2;
    /// `Drop` only: allocate a new node of its flavor, then stash it or drop it at once.
    pub const ALLOC: u8 = 4;
    /// `Drop` only: call `pyheap::collect()`.
    pub const COLLECT: u8 = 8;
    /// Panic (a `FuzzPanic`) at the end.
    pub const PANIC: u8 = 16;
    pub const ALL: u8 = 31;
}

/// How a node is made, and what its `Drop` and finalizer do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spec {
    pub how: How,
    pub on_drop: u8,
    pub on_finalize: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum How {
    /// `Gc::new`.
    New,
    /// `Gc::new_finalized` (the finalizer does `on_finalize`).
    Finalized,
    /// `Gc::new_cyclic`, keeping the constructor's `Weak` as a weak edge to itself.
    Cyclic,
}

impl Spec {
    pub const PLAIN: Spec = Spec {
        how: How::New,
        on_drop: 0,
        on_finalize: 0,
    };
}

/// The payload of every panic the fuzzer's values raise on purpose.
#[derive(Debug, Clone, Copy)]
pub struct FuzzPanic {
    pub id: Id,
    pub in_finalize: bool,
}

// ---- the per-id registry ----

pub static NEXT_ID: AtomicU32 = AtomicU32::new(0);
pub static DROPS: [AtomicU8; MAX_IDS] = [const { AtomicU8::new(0) }; MAX_IDS];
pub static FINALIZES: [AtomicU8; MAX_IDS] = [const { AtomicU8::new(0) }; MAX_IDS];
/// `flavor | thread tag << 1`, written at creation (0 = not created).
pub static KIND: [AtomicU8; MAX_IDS] = [const { AtomicU8::new(0) }; MAX_IDS];
pub const KIND_CREATED: u8 = 0x80;
/// Set once `Gc::new` returned the object's first handle: before that, a node being made
/// (by a `Drop` on another thread, say) is held by the frame making it.
pub static BUILT: [AtomicBool; MAX_IDS] = [const { AtomicBool::new(false) }; MAX_IDS];

pub fn built(id: Id) -> bool {
    BUILT[id as usize].load(Acquire)
}
pub const KIND_SHARED: u8 = 1;

thread_local! {
    /// Which thread this is, for the model: 0 the main (interpreter) thread, `w + 1` worker
    /// `w`, 127 any other thread (collector threads).
    pub static THREAD_TAG: Cell<u8> = const { Cell::new(127) };
}

fn new_id(shared: bool) -> Id {
    let id = NEXT_ID.fetch_add(1, Relaxed);
    if id as usize >= MAX_IDS {
        violation(format!("fuzzer limit: more than {MAX_IDS} objects"));
    }
    let tag = THREAD_TAG.try_with(|t| t.get()).unwrap_or(127);
    // Release: the model waits for this store after seeing the id taken (`Model::sync_ids`).
    KIND[id as usize].store(KIND_CREATED | tag << 1 | shared as u8, Release);
    id
}

/// Forget every object (in-process mode runs one program after another).
pub fn reset() {
    let n = NEXT_ID.swap(0, AcqRel) as usize;
    for i in 0..n.min(MAX_IDS) {
        DROPS[i].store(0, Relaxed);
        FINALIZES[i].store(0, Relaxed);
        KIND[i].store(0, Relaxed);
        BUILT[i].store(false, Relaxed);
    }
}

pub fn dropped(id: Id) -> u8 {
    DROPS[id as usize].load(Acquire)
}

pub fn finalized(id: Id) -> u8 {
    FINALIZES[id as usize].load(Acquire)
}

// ---- canaries ----

const LIVE: u64 = 0x5afe_c0de << 32;
const DEAD: u64 = 0xdead_dead << 32;

pub struct Canary(AtomicU64);

impl Canary {
    fn new(id: Id) -> Self {
        Canary(AtomicU64::new(LIVE | id as u64))
    }

    /// The id, if the canary is alive; a violation otherwise.
    pub fn id(&self, at: &str) -> Id {
        let v = self.0.load(Acquire);
        if v >> 32 != LIVE >> 32 {
            let what = if v >> 32 == DEAD >> 32 {
                format!("the value of object {} was already dropped", v as u32)
            } else {
                "freed or corrupted memory".to_string()
            };
            violation(format!("canary reads {v:#018x} at {at}: {what}"));
        }
        v as u32
    }

    fn kill(&self, id: Id) {
        self.0.store(DEAD | id as u64, Release);
    }
}

struct Pad([u64; PAD_WORDS]);

fn pad_word(id: Id, i: usize) -> u64 {
    (id as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i as u64
}

impl Pad {
    fn new(id: Id) -> Self {
        let mut p = Pad([0; PAD_WORDS]);
        for (i, w) in p.0.iter_mut().enumerate() {
            *w = pad_word(id, i);
        }
        p
    }

    fn check(&self, id: Id) {
        if let Some(i) = (0..PAD_WORDS).find(|&i| self.0[i] != pad_word(id, i)) {
            violation(format!("object {id}: padding word {i} overwritten"));
        }
    }
}

/// What both node types share: canaries, padding, behaviour.
pub struct Core {
    head: Canary,
    spec: Spec,
    /// Set by the interpreter on a value `try_unwrap` moved out (its finalizer must not run).
    pub unwrapped: AtomicBool,
    pad: Pad,
    tail: Canary,
}

impl Core {
    fn new(id: Id, spec: Spec) -> Self {
        Core {
            head: Canary::new(id),
            spec,
            // A finalized value is not an object until `Gc::new_finalized` returns.
            unwrapped: AtomicBool::new(spec.how == How::Finalized),
            pad: Pad::new(id),
            tail: Canary::new(id),
        }
    }

    /// The id, checking both canaries.
    pub fn id(&self, at: &str) -> Id {
        let id = self.head.id(at);
        let t = self.tail.id(at);
        if t != id {
            violation(format!("object {id}: tail canary names {t} at {at}"));
        }
        id
    }

    /// Check that this is object `want`.
    pub fn expect(&self, want: Id, at: &str) {
        let id = self.id(at);
        if id != want {
            violation(format!(
                "a handle the model knows as object {want} leads to object {id} ({at})"
            ));
        }
    }

    /// Start of `Drop`: full check, count, mark dead. Returns the id.
    fn dropping(&self) -> Id {
        let v = self.head.0.load(Acquire);
        if v >> 32 == DEAD >> 32 {
            violation(format!(
                "object {} dropped twice (canary dead at Drop)",
                v as u32
            ));
        }
        let id = self.id("Drop");
        self.pad.check(id);
        if DROPS[id as usize].fetch_add(1, AcqRel) != 0 {
            violation(format!("object {id} dropped twice (drop counter)"));
        }
        if self.spec.how == How::Finalized && !self.unwrapped.load(Relaxed) && finalized(id) == 0 {
            violation(format!(
                "object {id} dropped without its finalizer having run"
            ));
        }
        self.head.kill(id);
        self.tail.kill(id);
        id
    }

    /// Start of `finalize`: check, count. Returns the id.
    fn finalizing(&self) -> Id {
        let id = self.id("finalize");
        if FINALIZES[id as usize].fetch_add(1, AcqRel) != 0 {
            violation(format!("object {id} finalized twice"));
        }
        if dropped(id) != 0 {
            violation(format!("object {id} finalized after its drop"));
        }
        id
    }
}

fn panic_now(id: Id, in_finalize: bool) -> ! {
    std::panic::panic_any(FuzzPanic { id, in_finalize })
}

// ---- the stashes ----

/// A handle stashed by a `Drop` (`strong == false`: it may point into a set being torn down,
/// a "zombie") or by a finalizer (`strong == true`: a resurrection, a root like any other).
pub struct Stashed<H> {
    pub id: Id,
    pub strong: bool,
    /// The handle itself: held, never read (dropping it is the point).
    #[allow(dead_code)]
    pub h: H,
}

/// The shared flavor's stash, global.
pub static S_STASH: Mutex<Vec<Stashed<pyheap::Gc<SNode>>>> = Mutex::new(Vec::new());

pub fn s_stash() -> MutexGuard<'static, Vec<Stashed<pyheap::Gc<SNode>>>> {
    S_STASH.lock().unwrap_or_else(|e| e.into_inner())
}

/// A thread-local vector of handles whose destructor drops them one by one, catching panics
/// (a panic out of a thread-local destructor would abort the process).
pub struct TlsVec<T>(pub RefCell<Vec<T>>);

impl<T> TlsVec<T> {
    pub const fn new() -> Self {
        TlsVec(RefCell::new(Vec::new()))
    }

    /// Pop one (the borrow ends before the caller drops it).
    pub fn pop(&self) -> Option<T> {
        self.0.borrow_mut().pop()
    }
}

impl<T> Drop for TlsVec<T> {
    fn drop(&mut self) {
        while let Some(x) = self.pop() {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(x)));
        }
    }
}

thread_local! {
    /// The single-thread flavor's stash (its handles cannot leave the thread).
    pub static U_STASH: TlsVec<Stashed<pyheap::unsync::Gc<UNode>>> = const { TlsVec::new() };
}

fn stash_u(id: Id, strong: bool, h: pyheap::unsync::Gc<UNode>) {
    // After the thread-local is gone (thread exit) the handle is simply dropped here.
    let _ = U_STASH.try_with(move |s| s.0.borrow_mut().push(Stashed { id, strong, h }));
}

fn stash_s(id: Id, strong: bool, h: pyheap::Gc<SNode>) {
    s_stash().push(Stashed { id, strong, h });
}

/// Ids in this thread's single-thread stash, with their kind.
pub fn u_stash_ids() -> Vec<(Id, bool)> {
    U_STASH
        .try_with(|s| s.0.borrow().iter().map(|e| (e.id, e.strong)).collect())
        .unwrap_or_default()
}

// ---- the nodes ----

/// A node of the single-thread flavor: strong edges of both flavors, weak edges.
#[derive(Trace)]
pub struct UNode {
    #[trace(skip)]
    pub core: Core,
    pub edges: RefCell<Vec<pyheap::unsync::Gc<UNode>>>,
    pub sedges: RefCell<Vec<pyheap::Gc<SNode>>>,
    pub weaks: RefCell<Vec<pyheap::unsync::Weak<UNode>>>,
}

/// A node of the thread-safe flavor.
#[derive(Trace)]
pub struct SNode {
    #[trace(skip)]
    pub core: Core,
    pub edges: Mutex<Vec<pyheap::Gc<SNode>>>,
    pub weaks: Mutex<Vec<pyheap::Weak<SNode>>>,
}

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl UNode {
    fn value(id: Id, spec: Spec) -> Self {
        UNode {
            core: Core::new(id, spec),
            edges: RefCell::new(Vec::new()),
            sedges: RefCell::new(Vec::new()),
            weaks: RefCell::new(Vec::new()),
        }
    }

    /// Make a node. `Gc::new` may run an automatic collection first, which may panic (a
    /// resumed `FuzzPanic`): then no object exists (the value, if built, is dropped by the
    /// unwinding, without its finalizer: it never was an object) and the panic is returned.
    pub fn make(spec: Spec) -> (Id, Result<pyheap::unsync::Gc<UNode>, FuzzPanic>) {
        let id = new_id(false);
        let r = crate::interp::run_user(|| match spec.how {
            How::New => pyheap::unsync::Gc::new(UNode::value(id, spec)),
            How::Finalized => {
                let g = pyheap::unsync::Gc::new_finalized(UNode::value(id, spec));
                g.core.unwrapped.store(false, Relaxed);
                g
            }
            How::Cyclic => pyheap::unsync::Gc::new_cyclic(|w| {
                if w.upgrade().is_some() {
                    violation(format!(
                        "new_cyclic: the Weak of object {id} upgraded during construction"
                    ));
                }
                let v = UNode::value(id, spec);
                v.weaks.borrow_mut().push(w.clone());
                v
            }),
        });
        if r.is_ok() {
            BUILT[id as usize].store(true, Release);
        }
        (id, r)
    }

    fn read_siblings(&self, in_finalize: bool) {
        let at = if in_finalize {
            "a sibling read by a finalizer"
        } else {
            "a sibling read by a Drop"
        };
        for e in self.edges.borrow().iter() {
            read_u(e, in_finalize, at);
        }
        for e in self.sedges.borrow().iter() {
            read_s(e, in_finalize, at);
        }
        for w in self.weaks.borrow().iter() {
            if let Some(g) = w.upgrade() {
                g.core.id(at);
            }
        }
    }

    fn stash_edges(&self, strong: bool) {
        let us: Vec<_> = self.edges.borrow().iter().cloned().collect();
        for e in us {
            let id = target_id_u(&e);
            stash_u(id, strong, e);
        }
        let ss: Vec<_> = self.sedges.borrow().iter().cloned().collect();
        for e in ss {
            let id = target_id_s(&e);
            stash_s(id, strong, e);
        }
    }
}

impl SNode {
    fn value(id: Id, spec: Spec) -> Self {
        SNode {
            core: Core::new(id, spec),
            edges: Mutex::new(Vec::new()),
            weaks: Mutex::new(Vec::new()),
        }
    }

    /// As [`UNode::make`].
    pub fn make(spec: Spec) -> (Id, Result<pyheap::Gc<SNode>, FuzzPanic>) {
        let id = new_id(true);
        let r = crate::interp::run_user(|| match spec.how {
            How::New => pyheap::Gc::new(SNode::value(id, spec)),
            How::Finalized => {
                let g = pyheap::Gc::new_finalized(SNode::value(id, spec));
                g.core.unwrapped.store(false, Relaxed);
                g
            }
            How::Cyclic => pyheap::Gc::new_cyclic(|w| {
                if w.upgrade().is_some() {
                    violation(format!(
                        "new_cyclic: the Weak of object {id} upgraded during construction"
                    ));
                }
                let v = SNode::value(id, spec);
                lock(&v.weaks).push(w.clone());
                v
            }),
        });
        if r.is_ok() {
            BUILT[id as usize].store(true, Release);
        }
        (id, r)
    }
}

/// The id behind a handle a node holds (its value may be dead: then the id is unknown to the
/// handle, but only `Drop`s stash such handles, and `u32::MAX` marks it).
fn target_id_u(h: &pyheap::unsync::Gc<UNode>) -> Id {
    pyheap::unsync::Gc::try_deref(h).map_or(u32::MAX, |n| n.core.id("a handle stashed"))
}

fn target_id_s(h: &pyheap::Gc<SNode>) -> Id {
    pyheap::Gc::try_deref(h).map_or(u32::MAX, |n| n.core.id("a handle stashed"))
}

fn read_u(e: &pyheap::unsync::Gc<UNode>, in_finalize: bool, at: &str) {
    match pyheap::unsync::Gc::try_deref(e) {
        Some(n) => {
            n.core.id(at);
        }
        None if in_finalize => violation(format!(
            "{at}: try_deref gave None in a finalizer (the set must be intact)"
        )),
        None => {}
    }
}

fn read_s(e: &pyheap::Gc<SNode>, in_finalize: bool, at: &str) {
    match pyheap::Gc::try_deref(e) {
        Some(n) => {
            n.core.id(at);
        }
        None if in_finalize => violation(format!(
            "{at}: try_deref gave None in a finalizer (the set must be intact)"
        )),
        None => {}
    }
}

impl Drop for UNode {
    fn drop(&mut self) {
        let id = self.core.dropping();
        let a = self.core.spec.on_drop;
        if a & act::READ != 0 {
            self.read_siblings(false);
        }
        if a & act::STASH != 0 {
            self.stash_edges(false);
        }
        if a & act::ALLOC != 0 {
            let (nid, g) = UNode::make(Spec::PLAIN);
            match g {
                Ok(g) if nid % 2 == 0 => stash_u(nid, false, g),
                Ok(g) => drop(g),
                Err(p) => std::panic::panic_any(p),
            }
        }
        if a & act::COLLECT != 0 {
            pyheap::collect();
        }
        if a & act::PANIC != 0 {
            panic_now(id, false);
        }
    }
}

impl Finalize for UNode {
    fn finalize(&self) {
        let id = self.core.finalizing();
        let a = self.core.spec.on_finalize;
        if a & act::READ != 0 {
            self.read_siblings(true);
        }
        if a & act::STASH != 0 {
            self.stash_edges(true);
        }
        if a & act::PANIC != 0 {
            panic_now(id, true);
        }
    }
}

impl Drop for SNode {
    fn drop(&mut self) {
        let id = self.core.dropping();
        let a = self.core.spec.on_drop;
        let edges = self.edges.get_mut().unwrap_or_else(|e| e.into_inner());
        if a & act::READ != 0 {
            let weaks = self.weaks.get_mut().unwrap_or_else(|e| e.into_inner());
            SNode::read_siblings_static(edges, weaks, false);
        }
        let edges = self.edges.get_mut().unwrap_or_else(|e| e.into_inner());
        if a & act::STASH != 0 {
            for e in edges.iter() {
                stash_s(target_id_s(e), false, e.clone());
            }
        }
        if a & act::ALLOC != 0 {
            let (nid, g) = SNode::make(Spec::PLAIN);
            match g {
                Ok(g) if nid % 2 == 0 => stash_s(nid, false, g),
                Ok(g) => drop(g),
                Err(p) => std::panic::panic_any(p),
            }
        }
        if a & act::COLLECT != 0 {
            pyheap::collect();
        }
        if a & act::PANIC != 0 {
            panic_now(id, false);
        }
    }
}

impl SNode {
    fn read_siblings_static(
        edges: &[pyheap::Gc<SNode>],
        weaks: &[pyheap::Weak<SNode>],
        in_finalize: bool,
    ) {
        // A dummy receiver is not needed: the reads only look at the handles.
        let at = if in_finalize {
            "a sibling read by a finalizer"
        } else {
            "a sibling read by a Drop"
        };
        for e in edges {
            read_s(e, in_finalize, at);
        }
        for w in weaks {
            if let Some(g) = w.upgrade() {
                g.core.id(at);
            }
        }
    }
}

impl Finalize for SNode {
    fn finalize(&self) {
        let id = self.core.finalizing();
        let a = self.core.spec.on_finalize;
        // Copies, so that no lock of ours is held while user code (a drop) runs.
        let edges: Vec<_> = lock(&self.edges).iter().cloned().collect();
        if a & act::READ != 0 {
            let weaks: Vec<_> = lock(&self.weaks).iter().cloned().collect();
            SNode::read_siblings_static(&edges, &weaks, true);
        }
        if a & act::STASH != 0 {
            for e in &edges {
                stash_s(target_id_s(e), true, e.clone());
            }
        }
        drop(edges);
        if a & act::PANIC != 0 {
            panic_now(id, true);
        }
    }
}
