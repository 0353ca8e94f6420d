//! The six contenders behind one trait, each with the same node type: a `u64` payload and a
//! `RefCell<Vec<handle>>` of out-edges, traced the way each crate asks (its derive where it
//! has one, a hand-written `Trace` for `bacon_rajan_cc`).

use std::cell::{Cell, RefCell};

thread_local! {
    /// Nodes created minus nodes dropped, on this thread (checked by the child processes).
    pub static LIVE: Cell<isize> = const { Cell::new(0) };
}

/// A zero-sized field counting down [`LIVE`] when dropped (for `rust-cc`, whose derive
/// forbids `Drop` on the node itself).
pub struct LiveToken;
impl Drop for LiveToken {
    fn drop(&mut self) {
        LIVE.with(|l| l.set(l.get() - 1));
    }
}

/// Implements `Drop` for a contender's `Node` (counting down [`LIVE`]).
macro_rules! count_drops {
    () => {
        impl Node {
            fn make(val: u64) -> Self {
                Node {
                    val,
                    edges: RefCell::new(Vec::new()),
                }
            }
        }
        impl Drop for Node {
            fn drop(&mut self) {
                LIVE.with(|l| l.set(l.get() - 1));
            }
        }
    };
}

/// What a workload needs from a reference-counting crate.
pub trait Contender {
    /// The name in criterion ids and in the report.
    const NAME: &'static str;
    /// Whether the crate frees cycles at all (`Rc` does not: it only runs acyclic workloads).
    const COLLECTS: bool;
    /// Whether the crate collects on its own (else the churn workload calls `collect` every
    /// `CHURN_MANUAL_COLLECT_EVERY` operations).
    const AUTO_COLLECT: bool;
    /// A handle to a small value that holds no handle.
    type Small;
    /// A handle to a graph node.
    type Node: Clone;
    fn small(v: u64) -> Self::Small;
    fn small_value(s: &Self::Small) -> u64;
    fn node(v: u64) -> Self::Node;
    fn node_value(n: &Self::Node) -> u64;
    /// Add the edge `from -> to`, moving the handle `to` into `from`.
    fn push(from: &Self::Node, to: Self::Node);
    /// The crate's explicit full cycle collection.
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
            LIVE.with(|l| l.set(l.get() + 1));
            Self::Node::new(Node::make(v))
        }
        fn node_value(n: &Self::Node) -> u64 {
            n.val
        }
        fn push(from: &Self::Node, to: Self::Node) {
            from.edges.borrow_mut().push(to);
        }
    };
}

/// `std::rc::Rc`: the floor for acyclic work; leaks cycles, so it runs no collection workload.
pub mod with_rc {
    use super::*;
    use std::rc::Rc;

    pub struct Node {
        val: u64,
        edges: RefCell<Vec<Rc<Node>>>,
    }
    count_drops!();
    pub struct C;
    impl Contender for C {
        const NAME: &'static str = "rc";
        const COLLECTS: bool = false;
        const AUTO_COLLECT: bool = false;
        type Small = Rc<u64>;
        type Node = Rc<Node>;
        node_accessors!();
        fn collect() {}
    }
}

/// `rust-cc` (`rust_cc::Cc`), default features (auto-collect on).
pub mod with_rust_cc {
    use super::*;
    use ::rust_cc::{Cc, Finalize, Trace};

    #[derive(Trace, Finalize)]
    pub struct Node {
        val: u64,
        edges: RefCell<Vec<Cc<Node>>>,
        #[rust_cc(ignore)]
        _live: LiveToken,
    }
    impl Node {
        fn make(val: u64) -> Self {
            Node {
                val,
                edges: RefCell::new(Vec::new()),
                _live: LiveToken,
            }
        }
    }
    pub struct C;
    impl Contender for C {
        const NAME: &'static str = "rust-cc";
        const COLLECTS: bool = true;
        const AUTO_COLLECT: bool = true;
        type Small = Cc<u64>;
        type Node = Cc<Node>;
        node_accessors!();
        fn collect() {
            ::rust_cc::collect_cycles();
        }
    }
}

/// `gcmodule::Cc` (no automatic collection).
pub mod with_gcmodule {
    use super::*;
    use ::gcmodule::{Cc, Trace, Tracer};

    // gcmodule's derive computes `is_type_tracked` from the fields, which recurses forever on
    // a recursive type (a stack overflow at the first `Cc::new`); its docs ask for a manual
    // `Trace` with `is_type_tracked() == true` on such types.
    pub struct Node {
        val: u64,
        edges: RefCell<Vec<Cc<Node>>>,
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
        type Small = Cc<u64>;
        type Node = Cc<Node>;
        node_accessors!();
        fn collect() {
            ::gcmodule::collect_thread_cycles();
        }
    }
}

/// `dumpster::unsync::Gc`, default collect condition.
pub mod with_dumpster {
    use super::*;
    use ::dumpster::unsync::Gc;
    use ::dumpster::Trace;

    #[derive(Trace)]
    pub struct Node {
        val: u64,
        edges: RefCell<Vec<Gc<Node>>>,
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
            ::dumpster::unsync::collect();
        }
    }
}

/// `bacon_rajan_cc::Cc` (no automatic collection, no derive).
pub mod with_bacon_rajan_cc {
    use super::*;
    use ::bacon_rajan_cc::{Cc, Trace, Tracer};

    pub struct Node {
        val: u64,
        edges: RefCell<Vec<Cc<Node>>>,
    }
    impl Trace for Node {
        fn trace(&self, tracer: &mut Tracer) {
            for e in self.edges.borrow().iter() {
                e.trace(tracer);
            }
        }
    }
    count_drops!();
    pub struct C;
    impl Contender for C {
        const NAME: &'static str = "bacon_rajan_cc";
        const COLLECTS: bool = true;
        const AUTO_COLLECT: bool = false;
        type Small = Cc<u64>;
        type Node = Cc<Node>;
        node_accessors!();
        fn collect() {
            ::bacon_rajan_cc::collect_cycles();
        }
    }
}

/// `pyheap::unsync::Gc`, default thresholds (700, 10, 10).
pub mod with_pyheap {
    use super::*;
    use ::pyheap::unsync::Gc;
    use ::pyheap::Trace;

    #[derive(Trace)]
    pub struct Node {
        val: u64,
        edges: RefCell<Vec<Gc<Node>>>,
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
            format!("{:?}", ::pyheap::unsync::gc::stats())
        }
    }
}
