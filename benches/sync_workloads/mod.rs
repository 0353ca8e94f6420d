//! The thread-safe Gc benchmarks: `Arc`, `dumpster::sync::Gc`, `gcmodule::ThreadedCc` and
//! `pyheap::Gc` side by side in one binary, on the workloads of the thread-safe Gc issue.
//! Criterion names them `sync_<workload>/<contender>`; see BENCHMARKS.md (## Thread-safe Gc
//! benchmarks) and `benches/sync_run.sh`. Built like `benches/gc_workloads/` (the
//! single-thread flavor's harness).
//!
//! The heavy workloads (1M cycles, the 200k graph, the 2-thread mix) first run once per
//! contender in a **child process** (this binary re-executed with
//! `SYNC_BENCH_CHILD=<workload>/<contender>`): that measures peak RSS (`VmHWM`) without one
//! contender's high-water mark hiding another's, checks that every node was dropped, and finds
//! the contenders that crash (a stack overflow aborts the child, not this process). Criterion
//! then times only the contenders whose child exited cleanly; the others are reported as
//! failing in `<criterion dir>/sync_children.tsv`, which `benches/sync_report.py` reads.

pub mod contenders;

use contenders::{live, Contender};
use criterion::{BatchSize, Criterion, SamplingMode, Throughput};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

/// Two-node cycles in the cycles workload.
pub const CYCLES: usize = 1_000_000;
/// Nodes in the random graph; every node has `GRAPH_EDGES` out-edges to random nodes, and
/// every `GRAPH_ROOT_EVERY`th node keeps its handle (10% roots).
pub const GRAPH_NODES: usize = 200_000;
pub const GRAPH_EDGES: usize = 4;
pub const GRAPH_ROOT_EVERY: usize = 10;
/// Handles read per iteration of the deref workload (1,024 nodes: 64-96 KiB, beyond L1) and
/// of `deref_l1` (128 nodes: at most 12 KiB, L1-resident for every contender).
pub const DEREF_HANDLES: usize = 1024;
pub const DEREF_L1_HANDLES: usize = 128;
/// The mix: shared slots, maximum out-edges per node, operations per thread per criterion
/// iteration, operations per thread in the child process.
pub const MIX_SLOTS: usize = 10_000;
pub const MIX_MAX_EDGES: usize = 4;
pub const MIX_OPS: usize = 5_000;
pub const MIX_CHILD_OPS: usize = 500_000;
/// For crates without automatic collection, the mix's third thread calls their collect every
/// time the mutators have created this many more nodes.
pub const MIX_MANUAL_COLLECT_EVERY: usize = 10_000;

pub use crate::harness::Rng;
use crate::harness::{status_kib, Suite};

// ---- the workloads, generic over the contender -------------------------------------------

/// `threads` threads each clone and drop `h` `iters` times, all at once; returns the longest
/// thread's time (from a common start barrier to its last drop).
pub fn clone_threads<C: Contender>(h: &C::Node, threads: usize, iters: u64) -> Duration {
    let barrier = Barrier::new(threads);
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let t = Instant::now();
                    for _ in 0..iters {
                        drop(black_box(black_box(h).clone()));
                    }
                    t.elapsed()
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("clone thread"))
            .max()
            .unwrap_or_default()
    })
}

/// Sum the payloads of `hs` through their handles.
#[inline(never)]
pub fn deref_sum<C: Contender>(hs: &[C::Node]) -> u64 {
    let mut s = 0u64;
    for h in hs {
        s = s.wrapping_add(C::node_value(h));
    }
    s
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

/// The 2-thread mix: `MIX_SLOTS` shared slots (each a `Mutex<Option<handle>>`, outside the
/// object graph) that both mutator threads use at once. Each operation picks a random slot
/// `a` and does, at random:
/// * 40% **create**: a new node with one edge to the node in a random slot `b` (if any),
///   half of the time closed into a two-node ring with a second new node, stored into slot
///   `a` (the node there loses its slot handle);
/// * 25% **link**: an edge from the node in `a` to the node in a random `b` (when `a`
///   already has `MIX_MAX_EDGES` out-edges, its last one is removed first);
/// * 20% **unlink**: remove the last out-edge of the node in `a`;
/// * 15% **drop**: empty slot `a`.
///
/// Handles are cloned out of the slots (slot lock held only for the clone or swap) and every
/// handle is dropped with no lock held (a crate that collects on the dropping thread may trace
/// any node). Random links close cycles, so nodes that lose their last slot handle become
/// garbage cycles: automatic collection (pyheap's `pyheap-gc` thread, dumpster's collections
/// on the dropping thread) or, for gcmodule, a third thread calling its collect every
/// `MIX_MANUAL_COLLECT_EVERY` created nodes, runs concurrently with the mutators.
pub struct Mix<C: Contender> {
    slots: Vec<Mutex<Option<C::Node>>>,
    /// Nodes created by the mutators (published in batches; read by the manual collector).
    created: AtomicUsize,
    stop: AtomicBool,
}

impl<C: Contender> Mix<C> {
    pub fn new() -> Self {
        Mix {
            slots: (0..MIX_SLOTS)
                .map(|i| Mutex::new(Some(C::node(i as u64))))
                .collect(),
            created: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        }
    }

    fn get(&self, i: usize) -> Option<C::Node> {
        self.slots[i].lock().unwrap().clone()
    }

    /// One mutator thread: `ops` operations.
    pub fn mutate(&self, ops: usize, rng: &mut Rng) {
        let n = self.slots.len();
        let mut created = 0;
        for i in 0..ops {
            let r = rng.below(100);
            let a = rng.below(n);
            if r < 40 {
                let nd = C::node(i as u64);
                if let Some(t) = self.get(rng.below(n)) {
                    C::push(&nd, t);
                }
                created += 1;
                if rng.next_u64() & 1 == 1 {
                    // A ring: garbage for the collector once nothing else points into it.
                    let partner = C::node(i as u64);
                    C::push(&partner, nd.clone());
                    C::push(&nd, partner);
                    created += 1;
                }
                let old = self.slots[a].lock().unwrap().replace(nd);
                drop(old);
                if created >= 100 {
                    self.created.fetch_add(created, Ordering::Relaxed);
                    created = 0;
                }
            } else if r < 65 {
                let b = rng.below(n);
                if let (Some(x), Some(y)) = (self.get(a), self.get(b)) {
                    let len = C::push(&x, y);
                    if len > MIX_MAX_EDGES {
                        // Keep the newest edge: drop the oldest-but-one by popping twice.
                        let newest = C::pop(&x);
                        drop(C::pop(&x));
                        if let Some(nw) = newest {
                            C::push(&x, nw);
                        }
                    }
                }
            } else if r < 85 {
                if let Some(x) = self.get(a) {
                    drop(C::pop(&x));
                }
            } else {
                let old = self.slots[a].lock().unwrap().take();
                drop(old);
            }
        }
        self.created.fetch_add(created, Ordering::Relaxed);
    }

    /// Run two mutator threads of `ops` operations each (plus, for a crate without automatic
    /// collection, the collector thread); returns the longest mutator's time.
    pub fn run2(&self, ops: usize, seed: u64) -> Duration {
        let barrier = Barrier::new(2);
        self.stop.store(false, Ordering::Relaxed);
        std::thread::scope(|s| {
            if !C::AUTO_COLLECT && C::COLLECTS {
                s.spawn(|| self.manual_collector());
            }
            let ts: Vec<_> = (0..2u64)
                .map(|k| {
                    let barrier = &barrier;
                    s.spawn(move || {
                        let mut rng = Rng::new(seed.wrapping_mul(31).wrapping_add(k));
                        barrier.wait();
                        let t = Instant::now();
                        self.mutate(ops, &mut rng);
                        t.elapsed()
                    })
                })
                .collect();
            let d = ts
                .into_iter()
                .map(|h| h.join().expect("mutator"))
                .max()
                .unwrap_or_default();
            self.stop.store(true, Ordering::Relaxed);
            d
        })
    }

    /// The third thread for crates without automatic collection: collect every
    /// `MIX_MANUAL_COLLECT_EVERY` created nodes (polling every 100 µs) until told to stop.
    fn manual_collector(&self) {
        let mut next = self.created.load(Ordering::Relaxed) + MIX_MANUAL_COLLECT_EVERY;
        while !self.stop.load(Ordering::Relaxed) {
            let c = self.created.load(Ordering::Relaxed);
            if c >= next {
                C::collect();
                next = c + MIX_MANUAL_COLLECT_EVERY;
            } else {
                std::thread::sleep(Duration::from_micros(100));
            }
        }
    }
}

impl<C: Contender> Default for Mix<C> {
    fn default() -> Self {
        Self::new()
    }
}

// ---- child processes: RSS, drop check, crash detection -----------------------------------

/// The workloads that run in a child process first.
pub const HEAVY: [&str; 3] = ["cycles", "graph", "mix_2t"];

/// Whether contender `C` runs workload `w` at all (`Arc` runs no collection workload).
fn applicable<C: Contender>(w: &str) -> bool {
    C::COLLECTS || !HEAVY.contains(&w)
}

/// Collect until every node is dropped (a background collector may still be tearing down a
/// garbage set it found) or 2 s have passed; returns the nodes still alive.
fn settle<C: Contender>() -> isize {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        C::collect();
        let l = live();
        if l == 0 || Instant::now() > deadline {
            return l;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Run workload `w` once for `C` in this (child) process; print the result line.
fn child<C: Contender>(w: &str) {
    // SYNC_BENCH_SCALE=k divides the sizes by k (for quick checks only).
    let k: usize = std::env::var("SYNC_BENCH_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let (cycles_n, graph_nodes, mix_ops) = (CYCLES / k, GRAPH_NODES / k, MIX_CHILD_OPS / k);
    // SYNC_BENCH_PYHEAP_THRESHOLD=a,b,c: pyheap::gc's thresholds in this child (default
    // 700,10,10; for experiments with the policy only, never used by the suite).
    if let Some((t0, t1, t2)) = crate::harness::thresholds_from_env("SYNC_BENCH_PYHEAP_THRESHOLD") {
        pyheap::gc::set_threshold(t0, t1, t2);
    }
    let base = status_kib("VmRSS:");
    let (elapsed, objects) = match w {
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
        "mix_2t" => {
            let m = Mix::<C>::new();
            let e = m.run2(mix_ops, 1);
            eprintln!(
                "child {w}/{}: created {} nodes, {} alive at the end",
                C::NAME,
                m.created.load(Ordering::Relaxed),
                live()
            );
            drop(m);
            (e, 2 * mix_ops)
        }
        _ => panic!("unknown child workload {w}"),
    };
    let peak = status_kib("VmHWM:");
    eprintln!(
        "child {w}/{}: workload done {}",
        C::NAME,
        C::collector_stats()
    );
    let live = settle::<C>();
    println!(
        "RESULT\t{:.2}\t{peak}\t{base}\t{live}",
        elapsed.as_nanos() as f64 / objects as f64
    );
}

macro_rules! dispatch {
    ($name:expr, $f:ident $(, $arg:expr)*) => {
        match $name {
            "arc" => $f::<contenders::with_arc::C>($($arg),*),
            "dumpster" => $f::<contenders::with_dumpster::C>($($arg),*),
            "gcmodule" => $f::<contenders::with_gcmodule::C>($($arg),*),
            "pyheap" => $f::<contenders::with_pyheap::C>($($arg),*),
            other => panic!("unknown contender {other}"),
        }
    };
}

pub const CONTENDERS: [&str; 4] = ["arc", "dumpster", "gcmodule", "pyheap"];

fn is_applicable(contender: &str, w: &str) -> bool {
    dispatch!(contender, applicable, w)
}

// ---- criterion --------------------------------------------------------------------------

fn bench_micro<C: Contender>(c: &mut Criterion, w: &str) {
    let mut g = c.benchmark_group(format!("sync_{w}"));
    g.throughput(Throughput::Elements(1));
    match w {
        "clone" => {
            let h = C::node(1);
            g.bench_function(C::NAME, |b| {
                b.iter(|| drop(black_box(black_box(&h).clone())))
            });
        }
        "clone_2t" => {
            // One iteration = one clone+drop on each of the 2 threads: ns per op = mean / 2.
            g.throughput(Throughput::Elements(2));
            let h = C::node(1);
            g.bench_function(C::NAME, |b| {
                b.iter_custom(|iters| clone_threads::<C>(&h, 2, iters))
            });
        }
        "deref" | "deref_l1" => {
            let n = if w == "deref" {
                DEREF_HANDLES
            } else {
                DEREF_L1_HANDLES
            };
            g.throughput(Throughput::Elements(n as u64));
            let hs: Vec<C::Node> = (0..n).map(|i| C::node(i as u64)).collect();
            g.bench_function(C::NAME, |b| b.iter(|| deref_sum::<C>(black_box(&hs[..]))));
        }
        "deref1" => {
            let h = C::node(7);
            g.bench_function(C::NAME, |b| b.iter(|| C::node_value(black_box(&h))));
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
    let mut g = c.benchmark_group(format!("sync_{w}"));
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    match w {
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
        "mix_2t" => {
            // One iteration = MIX_OPS operations on each of the 2 mutator threads.
            g.throughput(Throughput::Elements(2 * MIX_OPS as u64));
            let m = Mix::<C>::new();
            m.run2(20 * MIX_OPS, 0); // reach the steady state
            let mut seed = 0;
            g.bench_function(C::NAME, |b| {
                b.iter_custom(|iters| {
                    seed += 1;
                    m.run2(MIX_OPS * iters as usize, seed)
                })
            });
            drop(m);
        }
        _ => unreachable!(),
    }
    g.finish();
    C::collect();
}

pub const MICRO: [&str; 7] = [
    "clone",
    "clone_2t",
    "deref",
    "deref_l1",
    "deref1",
    "alloc_small",
    "alloc_node",
];

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
    prefix: "sync",
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
