//! Shared by the `gc_*` models: the node type, the per-execution drop log, and the end-of-
//! execution checks.
//!
//! A [`Node`] has three kinds of edges: `imm` (a plain field, fixed at construction), `cell`
//! (a set-once `OnceLock`, set before the threads start) and `m` (an optional loom `Mutex`,
//! traced with `try_lock` through the same helper as std's `Mutex`). Its `payload` is a loom
//! `UnsafeCell` that `Trace` reads and `get_mut` holders write, so loom reports a collector
//! read racing a `&mut`. Its `Drop` checks the canary, counts the drop in the execution's
//! [`Log`], then runs an optional hook; `Finalize` counts and runs another hook.
//!
//! The log uses std atomics and a std `Mutex`: it is bookkeeping of the model, not part of
//! the protocol (loom's would only add interleavings), and loom runs every thread of an
//! execution on one OS thread.

use pyheap::{Finalize, Gc, Trace, Tracer};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex as StdMutex, OnceLock};

pub const ALIVE: u64 = 0xA11F_E0F0_A11F_E0F0;
pub const DEAD: u64 = 0xDEAD_DEAD_DEAD_DEAD;

/// What one execution records.
pub struct Log {
    drops: Vec<AtomicUsize>,
    finals: Vec<AtomicUsize>,
    /// A "global" the hooks may store handles in (taken and dropped by the model at the end).
    pub stash: StdMutex<Vec<Gc<Node>>>,
    /// What re-entrant `collect()` calls from hooks returned.
    pub reentrant: StdMutex<Vec<usize>>,
}

impl Log {
    pub fn new(nodes: usize) -> Arc<Log> {
        Arc::new(Log {
            drops: (0..nodes).map(|_| AtomicUsize::new(0)).collect(),
            finals: (0..nodes).map(|_| AtomicUsize::new(0)).collect(),
            stash: StdMutex::new(Vec::new()),
            reentrant: StdMutex::new(Vec::new()),
        })
    }
    pub fn drops(&self, id: usize) -> usize {
        self.drops[id].load(Relaxed)
    }
    pub fn finals(&self, id: usize) -> usize {
        self.finals[id].load(Relaxed)
    }
    /// Take the stash out (its handles are dropped by the caller).
    pub fn take_stash(&self) -> Vec<Gc<Node>> {
        std::mem::take(&mut *self.stash.lock().unwrap())
    }
}

pub type Hook = fn(&Node);

pub struct Node {
    pub id: usize,
    pub canary: u64,
    pub log: Arc<Log>,
    pub imm: Option<Gc<Node>>,
    pub cell: OnceLock<Gc<Node>>,
    pub m: Option<loom::sync::Mutex<Vec<Gc<Node>>>>,
    pub payload: loom::cell::UnsafeCell<u64>,
    pub on_drop: Option<Hook>,
    pub on_finalize: Option<Hook>,
}

// SAFETY: every field but `payload` is `Send + Sync`. `payload` is written only through a
// `&mut Node` (from `Gc::get_mut`) and otherwise only read (by `Trace`); loom's `UnsafeCell`
// checks that no read races a write, which is what the models want to find out.
unsafe impl Send for Node {}
// SAFETY: as above.
unsafe impl Sync for Node {}

impl Node {
    pub fn new(log: &Arc<Log>, id: usize) -> Node {
        Node {
            id,
            canary: ALIVE,
            log: log.clone(),
            imm: None,
            cell: OnceLock::new(),
            m: None,
            payload: loom::cell::UnsafeCell::new(0),
            on_drop: None,
            on_finalize: None,
        }
    }
    pub fn with_mutex(mut self, edges: Vec<Gc<Node>>) -> Node {
        self.m = Some(loom::sync::Mutex::new(edges));
        self
    }
    pub fn with_imm(mut self, to: &Gc<Node>) -> Node {
        self.imm = Some(to.clone());
        self
    }
    pub fn on_drop(mut self, h: Hook) -> Node {
        self.on_drop = Some(h);
        self
    }
    pub fn on_finalize(mut self, h: Hook) -> Node {
        self.on_finalize = Some(h);
        self
    }
    /// The edges behind the mutex (panics if the node has none).
    pub fn edges(&self) -> loom::sync::MutexGuard<'_, Vec<Gc<Node>>> {
        self.m
            .as_ref()
            .expect("node without a mutex")
            .lock()
            .unwrap()
    }
    /// Read the payload (a loom-checked read).
    pub fn payload(&self) -> u64 {
        // SAFETY: a read; loom reports it if it races a write.
        self.payload.with(|p| unsafe { *p })
    }
}

// SAFETY: reports exactly the handles the node owns: `imm`, `cell`'s content, `m`'s content
// (through `Mutex`'s impl, which only tries the lock). Reads `payload` (no handle) so that
// loom sees every collector read of the value.
unsafe impl Trace for Node {
    fn trace(&self, tracer: &mut Tracer) {
        let _ = self.payload();
        self.imm.trace(tracer);
        if let Some(g) = self.cell.get() {
            g.trace(tracer);
        }
        self.m.trace(tracer);
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        assert_eq!(
            self.canary, ALIVE,
            "node {} dropped twice or corrupt",
            self.id
        );
        self.canary = DEAD;
        let n = self.log.drops[self.id].fetch_add(1, Relaxed);
        assert_eq!(n, 0, "node {} dropped twice", self.id);
        if let Some(h) = self.on_drop {
            h(self);
        }
    }
}

impl Finalize for Node {
    fn finalize(&self) {
        assert_eq!(
            self.canary, ALIVE,
            "node {} finalized after its drop",
            self.id
        );
        self.log.finals[self.id].fetch_add(1, Relaxed);
        if let Some(h) = self.on_finalize {
            h(self);
        }
    }
}

/// `h` is usable: not dropped, canary intact, `Deref` works.
pub fn assert_live(h: &Gc<Node>) {
    let n = Gc::try_deref(h).expect("a held handle's object was destroyed");
    assert_eq!(n.canary, ALIVE, "node {} corrupt", n.id);
    assert_eq!(n.log.drops(n.id), 0, "node {} dropped while held", n.id);
}

/// End of an execution: after the models dropped every handle, full collections leave the
/// space empty, and every node was dropped exactly once.
pub fn finish(log: &Arc<Log>) {
    for _ in 0..3 {
        if pyheap::gc::model::tracked_count() == 0 {
            break;
        }
        pyheap::gc::model::collect(2);
    }
    assert_eq!(
        pyheap::gc::model::tracked_count(),
        0,
        "objects left in the space"
    );
    for id in 0..log.drops.len() {
        assert_eq!(
            log.drops(id),
            1,
            "node {id} dropped {} times",
            log.drops(id)
        );
    }
}

/// Two nodes `a -> b -> a` through their mutexes; returns the handles.
pub fn mutex_pair(log: &Arc<Log>, a: usize, b: usize) -> (Gc<Node>, Gc<Node>) {
    let ga = Gc::new(Node::new(log, a).with_mutex(Vec::new()));
    let gb = Gc::new(Node::new(log, b).with_mutex(vec![ga.clone()]));
    ga.edges().push(gb.clone());
    (ga, gb)
}
