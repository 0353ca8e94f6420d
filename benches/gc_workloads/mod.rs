//! The Gc benchmarks: six reference-counting crates side by side in one binary, on the
//! workloads of the Gc issue. Criterion names them `gc_<workload>/<contender>`; see
//! BENCHMARKS.md (## Gc benchmarks) and `benches/gc_run.sh`.
//!
//! The heavy workloads (1M-node tree and chain, 1M cycles, the 200k graph, churn) first run
//! once per contender in a **child process** (this binary re-executed with
//! `GC_BENCH_CHILD=<workload>/<contender>`): that measures peak RSS (`VmHWM`) without one
//! contender's high-water mark hiding another's, checks that every node was dropped, and finds
//! the contenders that crash (a stack overflow aborts the child, not this process). Criterion
//! then times only the contenders whose child exited cleanly; the others are reported as
//! failing in `<criterion dir>/gc_children.tsv`, which `benches/gc_report.py` reads.

pub mod contenders;

use contenders::Contender;
use criterion::{BatchSize, Criterion, SamplingMode, Throughput};
use std::cell::Cell;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Nodes in the tree and chain workloads.
pub const TREE_NODES: usize = 1_000_000;
/// Two-node cycles in the cycles workload.
pub const CYCLES: usize = 1_000_000;
/// Nodes in the random graph; every node has `GRAPH_EDGES` out-edges to random nodes, and
/// every `GRAPH_ROOT_EVERY`th node keeps its handle (10% roots).
pub const GRAPH_NODES: usize = 200_000;
pub const GRAPH_EDGES: usize = 4;
pub const GRAPH_ROOT_EVERY: usize = 10;
/// Churn: live slots, and operations per criterion iteration.
pub const CHURN_SLOTS: usize = 10_000;
pub const CHURN_OPS: usize = 1_000;
/// Operations of the churn workload in the child process (RSS, drop check).
pub const CHURN_CHILD_OPS: usize = 1_000_000;
/// For crates without automatic collection, the churn workload calls their `collect` every
/// time this many more nodes have been created.
pub const CHURN_MANUAL_COLLECT_EVERY: usize = 10_000;

use contenders::LIVE;

pub use crate::harness::Rng;
use crate::harness::{status_kib, Suite};

// ---- the workloads, generic over the contender -------------------------------------------

/// Build a complete 4-ary tree of `n` nodes bottom-up (children are moved into their parent,
/// no handle is ever cloned) and drop it from the root: a refcount cascade, depth ~log4(n).
pub fn tree<C: Contender>(n: usize) {
    let mut slots: Vec<Option<C::Node>> = Vec::with_capacity(n);
    slots.resize_with(n, || None);
    for i in (0..n).rev() {
        let nd = C::node(i as u64);
        let first = (4 * i + 1).min(n);
        let end = (4 * i + 5).min(n);
        for child in &mut slots[first..end] {
            C::push(&nd, child.take().expect("child built"));
        }
        slots[i] = Some(nd);
    }
    let root = slots[0].take().expect("root built");
    drop(slots);
    black_box(C::node_value(&root));
    drop(root);
}

/// Build a linked list of `n` nodes (each new node owns the previous head) and drop it from
/// the head: a refcount cascade of depth `n`, the classic stack overflow of recursive drops.
pub fn chain<C: Contender>(n: usize) {
    let mut head = C::node(0);
    for i in 1..n {
        let nd = C::node(i as u64);
        C::push(&nd, head);
        head = nd;
    }
    black_box(C::node_value(&head));
    drop(head);
}

/// Create `n` two-node cycles, dropping the handles as they go, then collect them.
pub fn cycles<C: Contender>(n: usize) {
    for i in 0..n {
        let a = C::node(i as u64);
        let b = C::node(i as u64);
        C::push(&a, b.clone());
        C::push(&b, a);
    }
    C::collect();
}

/// A random graph of `n` nodes with `GRAPH_EDGES` random out-edges each, split into the
/// handles kept (every `GRAPH_ROOT_EVERY`th node) and the handles to drop.
pub fn graph_build<C: Contender>(n: usize, seed: u64) -> (Vec<C::Node>, Vec<C::Node>) {
    let mut rng = Rng::new(seed);
    let nodes: Vec<C::Node> = (0..n).map(|i| C::node(i as u64)).collect();
    for nd in &nodes {
        for _ in 0..GRAPH_EDGES {
            C::push(nd, nodes[rng.below(n)].clone());
        }
    }
    let mut roots = Vec::with_capacity(n / GRAPH_ROOT_EVERY + 1);
    let mut rest = Vec::with_capacity(n);
    for (i, nd) in nodes.into_iter().enumerate() {
        if i % GRAPH_ROOT_EVERY == 0 {
            roots.push(nd);
        } else {
            rest.push(nd);
        }
    }
    (roots, rest)
}

/// The timed part of the graph workload: drop the non-root handles, collect.
pub fn graph_collect<C: Contender>(rest: Vec<C::Node>) {
    drop(rest);
    C::collect();
}

/// Churn, a steady state with garbage cycles: `CHURN_PERMANENT` long-lived nodes (think
/// classes and modules) and `slots` slots each holding a small cluster. Operation `i` builds a
/// cluster of `i % 4 + 1` nodes linked in a chain, closed into a ring (a cycle; one node: a
/// self-loop) every other time at random, every node also pointing at a random permanent node,
/// and stores it in a random slot, dropping the cluster there: an open chain dies by
/// refcount, a ring becomes a garbage cycle for the collector. Live set: about
/// `2.5 * slots + CHURN_PERMANENT` nodes; 2.5 nodes are created per operation on average.
pub struct Churn<C: Contender> {
    permanent: Vec<C::Node>,
    slots: Vec<C::Node>,
    rng: Rng,
    ops: usize,
    created: usize,
}

/// Permanent nodes of the churn workload.
pub const CHURN_PERMANENT: usize = 1_000;

impl<C: Contender> Churn<C> {
    pub fn new(slots: usize, seed: u64) -> Self {
        Churn {
            permanent: (0..CHURN_PERMANENT).map(|i| C::node(i as u64)).collect(),
            slots: (0..slots).map(|i| C::node(i as u64)).collect(),
            rng: Rng::new(seed),
            ops: 0,
            created: 0,
        }
    }
    /// Run `ops` operations (a multiple of 4 creates exactly `2.5 * ops` nodes).
    pub fn run(&mut self, ops: usize) {
        let n = self.slots.len();
        let p = self.permanent.len();
        for _ in 0..ops {
            let k = self.ops % 4 + 1;
            let ring = self.rng.next_u64() & 1 == 1;
            let head = C::node(self.ops as u64);
            C::push(&head, self.permanent[self.rng.below(p)].clone());
            let mut tail = head.clone();
            for j in 1..k {
                let nd = C::node(j as u64);
                C::push(&nd, self.permanent[self.rng.below(p)].clone());
                C::push(&tail, nd.clone());
                tail = nd;
            }
            if ring {
                C::push(&tail, head.clone());
            }
            drop(tail);
            self.slots[self.rng.below(n)] = head;
            self.ops += 1;
            let before = self.created;
            self.created += k;
            if !C::AUTO_COLLECT
                && self.created / CHURN_MANUAL_COLLECT_EVERY != before / CHURN_MANUAL_COLLECT_EVERY
            {
                C::collect();
            }
        }
    }
}

// ---- child processes: RSS, drop check, crash detection -----------------------------------

/// The workloads that run in a child process first.
pub const HEAVY: [&str; 5] = ["tree", "chain", "cycles", "graph", "churn"];

/// Whether contender `C` runs workload `w` at all (`Rc` runs no collection workload).
fn applicable<C: Contender>(w: &str) -> bool {
    C::COLLECTS || matches!(w, "clone" | "alloc_small" | "alloc_node" | "tree" | "chain")
}

/// Run workload `w` once for `C` in this (child) process; print the result line.
fn child<C: Contender>(w: &str) {
    // GC_BENCH_SCALE=k divides the sizes by k (for quick checks only).
    let k: usize = std::env::var("GC_BENCH_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let (tree_nodes, cycles_n, graph_nodes, churn_ops) = (
        TREE_NODES / k,
        CYCLES / k,
        GRAPH_NODES / k,
        CHURN_CHILD_OPS / k,
    );
    // GC_BENCH_PYHEAP_THRESHOLD=a,b,c: pyheap's thresholds in this child (default CPython's
    // 700,10,10; for experiments with the policy only, never used by the suite).
    if let Some((t0, t1, t2)) = crate::harness::thresholds_from_env("GC_BENCH_PYHEAP_THRESHOLD") {
        pyheap::unsync::gc::set_threshold(t0, t1, t2);
    }
    let base = status_kib("VmRSS:");
    let (elapsed, objects) = match w {
        "tree" => {
            let t = Instant::now();
            tree::<C>(tree_nodes);
            (t.elapsed(), tree_nodes)
        }
        "chain" => {
            let t = Instant::now();
            chain::<C>(tree_nodes);
            (t.elapsed(), tree_nodes)
        }
        "cycles" => {
            let t = Instant::now();
            cycles::<C>(cycles_n);
            (t.elapsed(), 2 * cycles_n)
        }
        "graph" => {
            let (roots, rest) = graph_build::<C>(graph_nodes, 1);
            let t = Instant::now();
            graph_collect::<C>(rest);
            let e = t.elapsed();
            drop(roots);
            (e, graph_nodes)
        }
        "churn" => {
            let mut ch = Churn::<C>::new(CHURN_SLOTS, 1);
            let t = Instant::now();
            ch.run(churn_ops);
            let e = t.elapsed();
            drop(ch);
            (e, churn_ops * 5 / 2)
        }
        _ => panic!("unknown child workload {w}"),
    };
    let peak = status_kib("VmHWM:");
    eprintln!(
        "child {w}/{}: workload done {}",
        C::NAME,
        C::collector_stats()
    );
    C::collect();
    let live = LIVE.with(Cell::get);
    println!(
        "RESULT\t{:.2}\t{peak}\t{base}\t{live}",
        elapsed.as_nanos() as f64 / objects as f64
    );
}

macro_rules! dispatch {
    ($name:expr, $f:ident $(, $arg:expr)*) => {
        match $name {
            "rc" => $f::<contenders::with_rc::C>($($arg),*),
            "rust-cc" => $f::<contenders::with_rust_cc::C>($($arg),*),
            "gcmodule" => $f::<contenders::with_gcmodule::C>($($arg),*),
            "dumpster" => $f::<contenders::with_dumpster::C>($($arg),*),
            "bacon_rajan_cc" => $f::<contenders::with_bacon_rajan_cc::C>($($arg),*),
            "pyheap" => $f::<contenders::with_pyheap::C>($($arg),*),
            other => panic!("unknown contender {other}"),
        }
    };
}

pub const CONTENDERS: [&str; 6] = [
    "rc",
    "rust-cc",
    "gcmodule",
    "dumpster",
    "bacon_rajan_cc",
    "pyheap",
];

fn is_applicable(contender: &str, w: &str) -> bool {
    dispatch!(contender, applicable, w)
}

// ---- criterion --------------------------------------------------------------------------

fn bench_micro<C: Contender>(c: &mut Criterion, w: &str) {
    let mut g = c.benchmark_group(format!("gc_{w}"));
    g.throughput(Throughput::Elements(1));
    match w {
        "clone" => {
            let h = C::node(1);
            g.bench_function(C::NAME, |b| {
                b.iter(|| drop(black_box(black_box(&h).clone())))
            });
        }
        "alloc_small" => {
            g.bench_function(C::NAME, |b| {
                b.iter(|| {
                    let s = black_box(C::small(black_box(7)));
                    black_box(C::small_value(&s))
                })
            });
        }
        "alloc_node" => {
            g.bench_function(C::NAME, |b| {
                b.iter(|| {
                    let s = black_box(C::node(black_box(7)));
                    black_box(C::node_value(&s))
                })
            });
        }
        _ => unreachable!(),
    }
    g.finish();
    C::collect();
}

fn bench_heavy<C: Contender>(c: &mut Criterion, w: &str) {
    let mut g = c.benchmark_group(format!("gc_{w}"));
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    match w {
        "tree" => {
            g.throughput(Throughput::Elements(TREE_NODES as u64));
            g.bench_function(C::NAME, |b| b.iter(|| tree::<C>(TREE_NODES)));
        }
        "chain" => {
            g.throughput(Throughput::Elements(TREE_NODES as u64));
            g.bench_function(C::NAME, |b| b.iter(|| chain::<C>(TREE_NODES)));
        }
        "cycles" => {
            g.throughput(Throughput::Elements(2 * CYCLES as u64));
            g.bench_function(C::NAME, |b| b.iter(|| cycles::<C>(CYCLES)));
        }
        "graph" => {
            g.throughput(Throughput::Elements(GRAPH_NODES as u64));
            let mut seed = 0;
            g.bench_function(C::NAME, |b| {
                b.iter_batched(
                    || {
                        // The previous iteration's roots are garbage now: free them untimed.
                        C::collect();
                        seed += 1;
                        graph_build::<C>(GRAPH_NODES, seed)
                    },
                    |(roots, rest)| {
                        graph_collect::<C>(rest);
                        roots
                    },
                    BatchSize::PerIteration,
                )
            });
        }
        "churn" => {
            g.throughput(Throughput::Elements((CHURN_OPS * 5 / 2) as u64));
            let mut ch = Churn::<C>::new(CHURN_SLOTS, 1);
            ch.run(20 * CHURN_SLOTS); // reach the steady state
            g.bench_function(C::NAME, |b| b.iter(|| ch.run(CHURN_OPS)));
            drop(ch);
        }
        _ => unreachable!(),
    }
    g.finish();
    C::collect();
}

pub const MICRO: [&str; 3] = ["clone", "alloc_small", "alloc_node"];

fn run_child(c: &str, w: &str) {
    dispatch!(c, child, w)
}

fn run_bench(crit: &mut Criterion, c: &str, w: &str) {
    if MICRO.contains(&w) {
        dispatch!(c, bench_micro, crit, w)
    } else {
        dispatch!(c, bench_heavy, crit, w)
    }
}

const SUITE: Suite = Suite {
    prefix: "gc",
    micro: &MICRO,
    heavy: &HEAVY,
    contenders: &CONTENDERS,
    applicable: is_applicable,
    child: run_child,
    bench: run_bench,
};

/// The bench binary's `main` (the harness in `benches/bench_harness.rs`).
pub fn main() {
    SUITE.main()
}
