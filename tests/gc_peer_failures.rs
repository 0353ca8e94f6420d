//! The known failures of the peer crates (rust-cc, gcmodule, dumpster, bacon_rajan_cc,
//! shredder), one test each, named after the failure, proving pyheap does not have them, for
//! both flavors (`mod unsync`: `pyheap::unsync::Gc` with `RefCell` edges; `mod shared`:
//! `pyheap::Gc` with `Mutex` edges; see `common/flavor.rs`), plus shared-flavor failures
//! that need threads (`mod shared_only`). This file is the one place for them; the other
//! `gc_*` test files point here. (The million-node chain and ring tests in `gc_refcount.rs`
//! and `gc_cycles.rs` cover the stack overflow failure for plain refcount teardown and for a
//! ring; the test here covers a random graph on a deliberately small stack.)
//!
//! Run them in release builds too (the dead-object check must not be a `debug_assert`):
//! `cargo test --release --test gc_peer_failures`, and under Miri (the graph shrinks to 2,000
//! nodes there): `MIRIFLAGS=-Zmiri-strict-provenance cargo +nightly miri test --test
//! gc_peer_failures` (also clean with `-Zmiri-tree-borrows`).

#[macro_use]
#[path = "common/flavor.rs"]
mod flavor;

use pyheap::Trace;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Mutex;

// The tests run one at a time (`setup()`); drops may happen on other threads (the small-stack
// thread, the shared flavor's collector), so the bookkeeping is global.
/// Per-node-id drop flags: a second drop of the same id is a double drop.
static DROPPED: Mutex<Vec<bool>> = Mutex::new(Vec::new());
static DOUBLE_DROPS: AtomicUsize = AtomicUsize::new(0);

fn reset_drops(n: usize) {
    *DROPPED.lock().unwrap() = vec![false; n];
    DOUBLE_DROPS.store(0, SeqCst);
}

fn mark_dropped(id: usize) {
    let mut d = DROPPED.lock().unwrap_or_else(|e| e.into_inner());
    if std::mem::replace(&mut d[id], true) {
        DOUBLE_DROPS.fetch_add(1, SeqCst);
    }
}

fn dropped() -> Vec<bool> {
    DROPPED.lock().unwrap().clone()
}

fn dropped_count() -> usize {
    DROPPED.lock().unwrap().iter().filter(|&&b| b).count()
}

fn double_drops() -> usize {
    DOUBLE_DROPS.load(SeqCst)
}

/// SplitMix64: a deterministic PRNG, so a failure reproduces exactly.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

both_flavors! {

#[derive(Trace)]
struct Node {
    edges: Edge<Vec<Gc<Node>>>,
    #[trace(skip)]
    id: usize,
}

impl Drop for Node {
    fn drop(&mut self) {
        mark_dropped(self.id);
    }
}

fn node(id: usize) -> Gc<Node> {
    Gc::new(Node {
        edges: Edge::new(Vec::new()),
        id,
    })
}

/// Peers that mark or tear down recursively (rust-cc, bacon_rajan_cc, dumpster) overflow the
/// stack on large graphs. A 200k-node random graph (4 edges per node, 10% of the nodes kept
/// as roots) is built, partly dropped, and collected on a thread with a 256 KiB stack (an
/// eighth of the default): no pass may recurse with the size of the graph. Exactly the nodes
/// unreachable from the roots are dropped, each once.
#[test]
fn stack_overflow_on_a_large_random_graph() {
    const STACK: usize = 256 * 1024;
    let _s = setup();
    let n = if cfg!(miri) { 2_000 } else { 200_000 };
    std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(move || random_graph(n))
        .unwrap()
        .join()
        .expect("the collection must not overflow a 256 KiB stack");
}

fn random_graph(n: usize) {
    const EDGES: usize = 4;
    gc::disable(); // only the explicit collection below runs (unsync: this thread's space)
    reset_drops(n);
    let mut rng = SplitMix(0x5EED_0F9C_2024);
    let nodes: Vec<Gc<Node>> = (0..n).map(node).collect();
    let mut adj = vec![[0usize; EDGES]; n];
    for (i, a) in adj.iter_mut().enumerate() {
        for t in a.iter_mut() {
            *t = rng.below(n);
            nodes[i].edges.lock().push(nodes[*t].clone());
        }
    }
    let mut is_root = vec![false; n];
    for _ in 0..n / 10 {
        is_root[rng.below(n)] = true;
    }
    // Expected: what the roots reach (an explicit stack here too).
    let mut reachable = is_root.clone();
    let mut stack: Vec<usize> = (0..n).filter(|&i| is_root[i]).collect();
    while let Some(i) = stack.pop() {
        for &t in &adj[i] {
            if !reachable[t] {
                reachable[t] = true;
                stack.push(t);
            }
        }
    }
    let unreachable = reachable.iter().filter(|&&r| !r).count();
    assert!(unreachable > 0 && unreachable < n, "a graph worth the test");

    // Keep the roots' handles, drop the others: acyclic garbage dies by counting now, the
    // rest is left to the collector.
    let roots: Vec<Gc<Node>> = nodes
        .into_iter()
        .enumerate()
        .filter(|&(i, _)| is_root[i])
        .map(|(_, g)| g)
        .collect();
    let by_counting = dropped_count();
    let freed = collect();
    assert_eq!(by_counting + freed, unreachable);
    let d = dropped();
    for i in 0..n {
        assert_eq!(d[i], !reachable[i], "node {i}: dropped iff unreachable");
    }
    // Releasing the roots frees the rest (chains by counting, cycles by the collector).
    drop(roots);
    collect();
    assert_eq!(dropped_count(), n);
    assert_eq!(double_drops(), 0);
}

/// Peers that drop cycle members one by one let a `Drop` reach a sibling that is already
/// dropped (use-after-free in bacon_rajan_cc and early rust-cc; gcmodule forbids `Deref`).
/// Here the sibling reads as dead: `try_deref` gives `None`, `Deref` panics (a catchable
/// panic, in release builds too), `Debug` prints `<dead>`: never undefined behaviour.
#[test]
fn use_after_free_when_a_drop_touches_a_dead_cycle_sibling() {
    #[derive(Trace)]
    struct Sibling {
        other: Edge<Option<Gc<Sibling>>>,
        #[trace(skip)]
        id: usize,
    }
    static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());
    impl Drop for Sibling {
        fn drop(&mut self) {
            mark_dropped(self.id);
            if let Some(o) = &*self.other.lock() {
                let none = Gc::try_deref(o).is_none();
                let panicked = catch_unwind(AssertUnwindSafe(|| o.id)).is_err();
                let debug = format!("{o:?}");
                SEEN.lock().unwrap().push(format!("{none} {panicked} {debug}"));
            }
        }
    }
    impl std::fmt::Debug for Sibling {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "Sibling({})", self.id)
        }
    }
    let _s = setup();
    reset_drops(2);
    let a = Gc::new(Sibling {
        other: Edge::new(None),
        id: 0,
    });
    let b = Gc::new(Sibling {
        other: Edge::new(None),
        id: 1,
    });
    *a.other.lock() = Some(b.clone());
    *b.other.lock() = Some(a.clone());
    drop((a, b));
    // (The two caught `Deref` panics print their message into the test's captured output.)
    assert_eq!(collect(), 2);
    assert_eq!(
        std::mem::take(&mut *SEEN.lock().unwrap()),
        ["true true <dead>", "true true <dead>"],
        "both drops saw a dead sibling"
    );
    assert_eq!(dropped_count(), 2);
    assert_eq!(double_drops(), 0);
}

/// Peers that lock interiors while tracing panic or abort on a poisoned lock (`lock().unwrap()`
/// in a `Trace` impl). pyheap traces through a poisoned `Mutex` or `RwLock`: the cycle through
/// it is collected, no panic, no abort. A lock that is *held* during a collection (here by the
/// collecting thread itself) makes its contents roots (kept, never freed wrongly, no
/// deadlock).
#[test]
fn abort_on_a_poisoned_lock_inside_a_traced_value() {
    use std::sync::RwLock;
    #[derive(Trace)]
    struct M(Mutex<Option<Gc<M>>>);
    #[derive(Trace)]
    struct R(RwLock<Option<Gc<R>>>);
    let _s = setup();

    let a = Gc::new(M(Mutex::new(None)));
    *a.0.lock().unwrap() = Some(a.clone());
    let r = Gc::new(R(RwLock::new(None)));
    *r.0.write().unwrap() = Some(r.clone());
    let (wa, wr) = (Gc::downgrade(&a), Gc::downgrade(&r));
    {
        let _held = a.0.lock().unwrap();
        let _read = r.0.read().unwrap();
        // Reachable through `a` and `r` anyway; held locks must neither block nor miscount.
        assert_eq!(collect(), 0);
    }
    // Poison both locks, then let the cycles become garbage.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let _g = a.0.lock().unwrap();
        let _w = r.0.write().unwrap();
        panic!("poison");
    }));
    assert!(a.0.is_poisoned() && r.0.is_poisoned());
    drop((a, r));
    assert!(wa.upgrade().is_some() && wr.upgrade().is_some());
    assert_eq!(collect(), 2);
    assert!(wa.upgrade().is_none() && wr.upgrade().is_none());
}

/// Peers that hold a lock or a borrow of their collector state while running `Drop` deadlock
/// or panic when a `Drop` re-enters (gcmodule's and shredder's locks, dumpster's `RefCell`s),
/// and peers that free while a drop is still running double-drop. Here a `Drop` that drops
/// other handles, creates new objects and cycles, and calls `pyheap::collect()` runs both
/// inside a collection's teardown and inside a refcount death: no deadlock, no double drop,
/// and everything is freed exactly once in the end.
#[test]
fn deadlock_or_double_drop_on_a_reentrant_drop() {
    #[derive(Trace)]
    struct Re {
        other: Edge<Option<Gc<Re>>>,
        held: Edge<Vec<Gc<Re>>>,
        #[trace(skip)]
        id: usize,
        #[trace(skip)]
        reenter: bool,
    }
    static NEXT_ID: AtomicUsize = AtomicUsize::new(0);
    static NESTED: Mutex<Vec<usize>> = Mutex::new(Vec::new());
    fn re(reenter: bool) -> Gc<Re> {
        let id = NEXT_ID.fetch_add(1, SeqCst);
        Gc::new(Re {
            other: Edge::new(None),
            held: Edge::new(Vec::new()),
            id,
            reenter,
        })
    }
    impl Drop for Re {
        fn drop(&mut self) {
            mark_dropped(self.id);
            if !self.reenter {
                return;
            }
            // Drop other handles (one of them the last handle of an object).
            self.held.lock().clear();
            // Create new objects: a garbage self-cycle and an acyclic one.
            let c = re(false);
            *c.other.lock() = Some(c.clone());
            drop(c);
            drop(re(false));
            // And collect, from inside the drop.
            let n = pyheap::collect();
            NESTED.lock().unwrap().push(n);
        }
    }
    let _s = setup();
    NEXT_ID.store(0, SeqCst);
    reset_drops(64);

    // 1. Inside a collection's teardown: a garbage pair whose members re-enter.
    let a = re(true);
    let b = re(true);
    *a.other.lock() = Some(b.clone());
    *b.other.lock() = Some(a.clone());
    a.held.lock().push(re(false)); // only `a` holds it: garbage with the pair
    drop((a, b));
    assert_eq!(collect(), 3);
    // A collection is running, so the nested requests do nothing (CPython's rule) and the
    // self-cycles made inside the drops are left for the next one.
    assert_eq!(std::mem::take(&mut *NESTED.lock().unwrap()), [0, 0]);
    assert_eq!(collect(), 2, "the two self-cycles made by the drops");

    // 2. Inside a refcount death: the nested collection is a real one; it frees an unrelated
    //    garbage cycle and the self-cycle the drop just made and dropped.
    let g = re(false);
    *g.other.lock() = Some(g.clone());
    drop(g);
    let r = re(true);
    r.held.lock().push(re(false)); // dies by counting inside r's drop
    drop(r);
    assert_eq!(std::mem::take(&mut *NESTED.lock().unwrap()), [2]);
    assert_eq!(collect(), 0);

    let made = NEXT_ID.load(SeqCst);
    assert_eq!(dropped_count(), made, "everything created was dropped");
    assert_eq!(double_drops(), 0);
}

}

/// Failures that need threads: the thread-safe flavor only.
mod shared_only {
    use super::*;
    use pyheap::Gc;
    use std::sync::{Arc, Barrier};

    #[derive(Trace)]
    struct Node {
        edges: Mutex<Vec<Gc<Node>>>,
        #[trace(skip)]
        id: usize,
    }

    impl Drop for Node {
        fn drop(&mut self) {
            mark_dropped(self.id);
        }
    }

    fn node(id: usize) -> Gc<Node> {
        Gc::new(Node {
            edges: Mutex::new(Vec::new()),
            id,
        })
    }

    /// Peers whose collector takes interior locks with `lock()` deadlock when another thread
    /// holds one during a collection (or wait for it: shredder blocks). Here a thread holds a
    /// cycle member's `Mutex` while this one collects: the collection neither blocks nor frees
    /// anything behind the held lock; once it is released, the cycle is freed.
    #[test]
    fn deadlock_when_another_thread_holds_a_member_lock_during_a_collection() {
        let _s = flavor::shared::setup();
        reset_drops(3);
        let a = node(0);
        let b = node(1);
        let c = node(2);
        a.edges.lock().unwrap().push(b.clone());
        b.edges.lock().unwrap().push(c.clone());
        c.edges.lock().unwrap().push(a.clone());
        let locked = Arc::new(Barrier::new(2));
        let release = Arc::new(Barrier::new(2));
        let holder = {
            let b = b.clone();
            let (locked, release) = (locked.clone(), release.clone());
            std::thread::spawn(move || {
                let guard = b.edges.lock().unwrap();
                locked.wait();
                release.wait();
                drop(guard);
                // The holder's handle goes last, after the lock.
            })
        };
        drop((a, b, c));
        locked.wait();
        // `b` is held by the other thread (its handle and its lock): everything is reachable.
        assert_eq!(pyheap::collect(), 0);
        assert_eq!(dropped_count(), 0);
        release.wait();
        holder.join().unwrap();
        assert_eq!(pyheap::collect(), 3);
        assert_eq!(dropped_count(), 3);
        assert_eq!(double_drops(), 0);
    }

    /// Re-entrancy on the background collector thread: garbage whose `Drop` creates objects,
    /// drops handles and calls `pyheap::collect()`, torn down by automatic collections; no
    /// deadlock, every object dropped once.
    #[test]
    fn deadlock_on_a_reentrant_drop_run_by_the_collector_thread() {
        #[derive(Trace)]
        struct Re {
            other: Mutex<Option<Gc<Re>>>,
            #[trace(skip)]
            id: usize,
            #[trace(skip)]
            reenter: bool,
        }
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        fn re(reenter: bool) -> Gc<Re> {
            Gc::new(Re {
                other: Mutex::new(None),
                id: NEXT.fetch_add(1, SeqCst),
                reenter,
            })
        }
        impl Drop for Re {
            fn drop(&mut self) {
                mark_dropped(self.id);
                if self.reenter {
                    let c = re(false);
                    *c.other.lock().unwrap() = Some(c.clone());
                    drop(c);
                    drop(self.other.lock().unwrap().take());
                    pyheap::collect();
                }
            }
        }
        let _s = flavor::shared::setup();
        NEXT.store(0, SeqCst);
        reset_drops(10_000);
        pyheap::gc::set_threshold(20, 2, 2);
        pyheap::gc::enable();
        for _ in 0..1000 {
            let a = re(true);
            let b = re(false);
            *a.other.lock().unwrap() = Some(b.clone());
            *b.other.lock().unwrap() = Some(a);
        }
        // The collector thread tears garbage down without any explicit collection.
        for _ in 0..5_000 {
            if dropped_count() > 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(dropped_count() > 0, "the collector thread freed garbage");
        pyheap::gc::disable();
        pyheap::gc::set_threshold(700, 10, 10);
        let mut left = usize::MAX;
        for _ in 0..500 {
            pyheap::collect();
            left = NEXT.load(SeqCst) - dropped_count();
            if left == 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        assert_eq!(left, 0, "every object dropped");
        assert_eq!(double_drops(), 0);
    }
}
