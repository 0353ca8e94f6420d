//! The four thread-safe contenders behind one trait, each with the same node type: a `u64`
//! payload and a `std::sync::Mutex<Vec<handle>>` of out-edges, traced the way each crate asks
//! (its derive where it works, a hand-written `Trace` for gcmodule).

use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::sync::Mutex;

// ---- the drop counter ---------------------------------------------------------------------

/// Shards of the live-node counter (nodes created minus nodes dropped). Nodes are created on
/// one thread and may be dropped on another (a collector thread), so a thread-local counter
/// cannot be summed; one shared atomic would add a contended read-modify-write to every
/// create and drop. Each thread gets its own cache line, which only it writes (a plain load
/// and store, as cheap as a `Cell`); threads beyond the shard count share with an atomic add.
const SHARDS: usize = 256;

#[repr(align(64))]
struct Shard(AtomicIsize);

static LIVE_SHARDS: [Shard; SHARDS] = [const { Shard(AtomicIsize::new(0)) }; SHARDS];
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

#[inline]
fn live_add(d: isize) {
    SHARD.with(|s| {
        let mut i = s.get();
        if i == usize::MAX {
            i = NEXT_SHARD.fetch_add(1, Ordering::Relaxed);
            s.set(i);
        }
        if i < SHARDS {
            let a = &LIVE_SHARDS[i].0;
            a.store(a.load(Ordering::Relaxed) + d, Ordering::Relaxed);
        } else {
            LIVE_SHARDS[i % SHARDS].0.fetch_add(d, Ordering::Relaxed);
        }
    })
}

/// Nodes created minus nodes dropped, over all threads (exact once the threads that changed
/// it are quiescent or joined).
pub fn live() -> isize {
    LIVE_SHARDS
        .iter()
        .map(|s| s.0.load(Ordering::Acquire))
        .sum()
}

/// Implements `make` and a counting `Drop` for a contender's `Node`.
macro_rules! count_drops {
    () => {
        impl Node {
            fn make(val: u64) -> Self {
                Node {
                    val,
                    edges: Mutex::new(Vec::new()),
                }
            }
        }
        impl Drop for Node {
            fn drop(&mut self) {
                live_add(-1);
            }
        }
    };
}

/// What a workload needs from a thread-safe reference-counting crate.
pub trait Contender: 'static {
    /// The name in criterion ids and in the report.
    const NAME: &'static str;
    /// Whether the crate frees cycles at all (`Arc` does not: it runs no collection workload).
    const COLLECTS: bool;
    /// Whether the crate collects on its own (else the mix workload runs the crate's collect
    /// on a third thread every `MIX_MANUAL_COLLECT_EVERY` created nodes).
    const AUTO_COLLECT: bool;
    /// A handle to a small value that holds no handle.
    type Small: Send + Sync;
    /// A handle to a graph node.
    type Node: Clone + Send + Sync;
    fn small(v: u64) -> Self::Small;
    fn small_value(s: &Self::Small) -> u64;
    fn node(v: u64) -> Self::Node;
    /// Read the node's `u64` through the handle (the crate's deref path).
    fn node_value(n: &Self::Node) -> u64;
    /// Add the edge `from -> to`, moving the handle `to` into `from`; returns the number of
    /// out-edges `from` now has.
    fn push(from: &Self::Node, to: Self::Node) -> usize;
    /// Remove and return `from`'s last out-edge.
    fn pop(from: &Self::Node) -> Option<Self::Node>;
    /// The crate's explicit full cycle collection (waits for it to finish).
    fn collect();
    /// What the crate reports about its collector (printed to stderr by the child processes).
    fn collector_stats() -> String {
        String::new()
    }
}

macro_rules! node_accessors {
    () => {
        fn small(v: u64) -> Self::Small {
            Self::Small::new(v)
        }
        fn small_value(s: &Self::Small) -> u64 {
            **s
        }
        fn node(v: u64) -> Self::Node {
            live_add(1);
            Self::Node::new(Node::make(v))
        }
        #[inline]
        fn node_value(n: &Self::Node) -> u64 {
            n.val
        }
        fn push(from: &Self::Node, to: Self::Node) -> usize {
            let mut e = from.edges.lock().unwrap();
            e.push(to);
            e.len()
        }
        fn pop(from: &Self::Node) -> Option<Self::Node> {
            from.edges.lock().unwrap().pop()
        }
    };
}

/// `std::sync::Arc`: the floor for acyclic work; leaks cycles, so it runs no collection
/// workload.
pub mod with_arc {
    use super::*;
    use std::sync::Arc;

    pub struct Node {
        val: u64,
        edges: Mutex<Vec<Arc<Node>>>,
    }
    count_drops!();
    pub struct C;
    impl Contender for C {
        const NAME: &'static str = "arc";
        const COLLECTS: bool = false;
        const AUTO_COLLECT: bool = false;
        type Small = Arc<u64>;
        type Node = Arc<Node>;
        node_accessors!();
        fn collect() {}
    }
}

/// `dumpster::sync::Gc`, default collect condition (collections run on the thread whose drop
/// meets it), `dumpster::sync::collect()`.
pub mod with_dumpster {
    use super::*;
    use ::dumpster::sync::Gc;
    use ::dumpster::Trace;

    #[derive(Trace)]
    pub struct Node {
        val: u64,
        edges: Mutex<Vec<Gc<Node>>>,
    }
    count_drops!();
    pub struct C;
    impl Contender for C {
        const NAME: &'static str = "dumpster";
        const COLLECTS: bool = true;
        const AUTO_COLLECT: bool = true;
        type Small = Gc<u64>;
        type Node = Gc<Node>;
        node_accessors!();
        fn collect() {
            ::dumpster::sync::collect();
        }
    }
}

/// `gcmodule::ThreadedCc` in one process-wide `ThreadedObjectSpace`; every access goes
/// through a `borrow()` guard (a read lock that keeps the collector out); collection by the
/// space's `collect_cycles()` only (no automatic collection).
pub mod with_gcmodule {
    use super::*;
    use ::gcmodule::{ThreadedCc, ThreadedObjectSpace, Trace, Tracer};
    use std::sync::LazyLock;

    /// The one object space every gcmodule node of this benchmark lives in.
    pub static SPACE: LazyLock<ThreadedObjectSpace> = LazyLock::new(ThreadedObjectSpace::default);

    // gcmodule's derive computes `is_type_tracked` from the fields, which recurses forever on
    // a recursive type; its docs ask for a manual `Trace` with `is_type_tracked() == true`.
    pub struct Node {
        val: u64,
        edges: Mutex<Vec<ThreadedCc<Node>>>,
    }
    impl Trace for Node {
        fn trace(&self, tracer: &mut Tracer) {
            self.edges.trace(tracer);
        }
        fn is_type_tracked() -> bool {
            true
        }
    }
    count_drops!();
    pub struct C;
    impl Contender for C {
        const NAME: &'static str = "gcmodule";
        const COLLECTS: bool = true;
        const AUTO_COLLECT: bool = false;
        type Small = ThreadedCc<u64>;
        type Node = ThreadedCc<Node>;
        fn small(v: u64) -> Self::Small {
            SPACE.create(v)
        }
        fn small_value(s: &Self::Small) -> u64 {
            *s.borrow()
        }
        fn node(v: u64) -> Self::Node {
            live_add(1);
            SPACE.create(Node::make(v))
        }
        #[inline]
        fn node_value(n: &Self::Node) -> u64 {
            n.borrow().val
        }
        fn push(from: &Self::Node, to: Self::Node) -> usize {
            let r = from.borrow();
            let mut e = r.edges.lock().unwrap();
            e.push(to);
            e.len()
        }
        fn pop(from: &Self::Node) -> Option<Self::Node> {
            let r = from.borrow();
            let e = r.edges.lock().unwrap().pop();
            e
        }
        fn collect() {
            SPACE.collect_cycles();
        }
        fn collector_stats() -> String {
            format!("tracked {}", SPACE.count_tracked())
        }
    }
}

/// `pyheap::Gc` (the thread-safe flavor), default thresholds (700, 10, 10), automatic
/// collection on the `pyheap-gc` thread, `pyheap::collect()`.
pub mod with_pyheap {
    use super::*;
    use ::pyheap::{Gc, Trace};

    #[derive(Trace)]
    pub struct Node {
        val: u64,
        edges: Mutex<Vec<Gc<Node>>>,
    }
    count_drops!();
    pub struct C;
    impl Contender for C {
        const NAME: &'static str = "pyheap";
        const COLLECTS: bool = true;
        const AUTO_COLLECT: bool = true;
        type Small = Gc<u64>;
        type Node = Gc<Node>;
        node_accessors!();
        fn collect() {
            ::pyheap::collect();
        }
        fn collector_stats() -> String {
            format!("{:?}", ::pyheap::gc::stats())
        }
    }
}
