//! Property test, for both flavors: random graph operations, then `collect()`; exactly the
//! objects unreachable from the live handles must have been dropped (each once), and the rest
//! must be intact. With automatic collection on, the thread-safe flavor's collections run on
//! pyheap's collector thread, concurrently with the operations.

#[macro_use]
#[path = "common/flavor.rs"]
mod flavor;

use proptest::prelude::*;
use pyheap::Trace;
use std::collections::{BTreeSet, HashSet};
use std::sync::Mutex;

#[derive(Clone, Debug)]
enum Op {
    New,
    Edge(usize, usize),
    Unedge(usize),
    DropRoot(usize),
    CloneRoot(usize),
    /// Replace root `a` by the target of its last edge (walks the graph).
    Walk(usize),
    /// `Gc::get_mut` on root `a` (if unique): add an edge to root `b` through the `&mut`,
    /// keeping the borrow across a tracked allocation (which may collect).
    GetMut(usize, usize),
    /// Move root `a` into root `b`'s edges without any shared use of its handle.
    MoveInto(usize, usize),
    Collect,
    /// Collect generation `g % 3` only (a young one examines only part of the objects; a
    /// generation-1 one also the old objects that lost a reference).
    CollectGeneration(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::New),
        4 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Op::Edge(a, b)),
        1 => any::<usize>().prop_map(Op::Unedge),
        3 => any::<usize>().prop_map(Op::DropRoot),
        1 => any::<usize>().prop_map(Op::CloneRoot),
        1 => any::<usize>().prop_map(Op::Walk),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Op::GetMut(a, b)),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Op::MoveInto(a, b)),
        1 => Just(Op::Collect),
        1 => any::<usize>().prop_map(Op::CollectGeneration),
    ]
}

both_flavors! {

/// Drops, in order (a `Mutex`: the shared flavor's collector thread drops too).
static DROPPED: Mutex<Vec<usize>> = Mutex::new(Vec::new());

fn dropped() -> std::sync::MutexGuard<'static, Vec<usize>> {
    DROPPED.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Trace)]
struct Node {
    #[trace(skip)]
    id: usize,
    edges: Edge<Vec<Gc<Node>>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        dropped().push(self.id);
    }
}

fn node(id: usize) -> Gc<Node> {
    Gc::new(Node {
        id,
        edges: Edge::new(Vec::new()),
    })
}

fn run(ops: Vec<Op>, threshold0: usize) -> Result<(), TestCaseError> {
    let _serial = setup();
    gc::set_threshold(threshold0, 2, 2);
    if threshold0 > 0 {
        gc::enable();
    }
    collect();
    dropped().clear();
    let mut roots: Vec<Gc<Node>> = Vec::new();
    let mut next_id = 0;
    for op in ops {
        let n = roots.len();
        match op {
            Op::New => {
                roots.push(node(next_id));
                next_id += 1;
            }
            Op::Edge(a, b) if n > 0 => {
                let t = roots[b % n].clone();
                roots[a % n].edges.lock().push(t);
            }
            Op::Unedge(a) if n > 0 => {
                let e = roots[a % n].edges.lock().pop();
                drop(e);
            }
            Op::DropRoot(a) if n > 0 => {
                roots.swap_remove(a % n);
            }
            Op::CloneRoot(a) if n > 0 => roots.push(roots[a % n].clone()),
            Op::Walk(a) if n > 0 => {
                let t = roots[a % n].edges.lock().last().cloned();
                if let Some(t) = t {
                    roots[a % n] = t;
                }
            }
            Op::GetMut(a, b) if n > 0 => {
                let t = roots[b % n].clone();
                let fresh = node(next_id);
                next_id += 1;
                let mut r = roots.swap_remove(a % n);
                if let Some(m) = Gc::get_mut(&mut r) {
                    // A tracked allocation while the `&mut` lives: may run a collection
                    // (on this thread, or on the collector thread for the shared flavor).
                    let g = node(next_id);
                    next_id += 1;
                    m.edges.get_mut().push(t);
                    m.edges.get_mut().push(g);
                }
                roots.push(r);
                roots.push(fresh);
            }
            Op::MoveInto(a, b) if n > 1 => {
                let r = roots.swap_remove(a % n);
                let n = roots.len();
                roots[b % n].edges.lock().push(r);
            }
            Op::Collect => {
                collect();
            }
            Op::CollectGeneration(g) => {
                gc::collect_generation(g % 3);
            }
            _ => {}
        }
    }
    // Waits for any collection running on the collector thread, then collects.
    collect();
    // Reachable ids, walking from the live handles.
    let mut reachable = HashSet::new();
    let mut stack: Vec<Gc<Node>> = roots.clone();
    while let Some(g) = stack.pop() {
        if reachable.insert(g.id) {
            let next: Vec<Gc<Node>> = g.edges.lock().iter().cloned().collect();
            stack.extend(next);
        }
    }
    let dropped_ids = dropped().clone();
    let dropped_set: BTreeSet<usize> = dropped_ids.iter().copied().collect();
    prop_assert_eq!(
        dropped_ids.len(),
        dropped_set.len(),
        "an object was dropped twice"
    );
    let expected: BTreeSet<usize> = (0..next_id).filter(|i| !reachable.contains(i)).collect();
    prop_assert_eq!(dropped_set, expected);
    drop(stack);
    drop(roots);
    collect();
    let all = dropped().len();
    prop_assert_eq!(all, next_id, "everything is freed once the roots go");
    gc::set_threshold(700, 10, 10);
    gc::disable();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn collect_frees_exactly_the_unreachable(ops in proptest::collection::vec(op(), 0..200)) {
        run(ops, 0)?;
    }

    #[test]
    fn automatic_collections_free_nothing_reachable(
        ops in proptest::collection::vec(op(), 0..300),
        t0 in 1usize..8,
    ) {
        run(ops, t0)?;
    }
}

}
