//! Cycles of every shape, matched against drop counters, for both flavors (`mod unsync`:
//! `pyheap::unsync::Gc` with `RefCell` edges; `mod shared`: `pyheap::Gc` with `Mutex` edges;
//! see `common/flavor.rs`). The tests of a binary run one at a time (`setup()`), so the exact
//! `collect()` results hold for the shared space too.

#[macro_use]
#[path = "common/flavor.rs"]
mod flavor;

use pyheap::Trace;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

static DROPS: AtomicUsize = AtomicUsize::new(0);

fn drops() -> usize {
    DROPS.load(SeqCst)
}

both_flavors! {

#[derive(Trace, Default)]
struct Node {
    edges: Edge<Vec<Gc<Node>>>,
    label: u32,
}

impl Drop for Node {
    fn drop(&mut self) {
        DROPS.fetch_add(1, SeqCst);
    }
}

fn node(label: u32) -> Gc<Node> {
    Gc::new(Node {
        edges: Edge::new(Vec::new()),
        label,
    })
}

fn link(a: &Gc<Node>, b: &Gc<Node>) {
    a.edges.lock().push(b.clone());
}

#[test]
fn self_cycle() {
    let _s = setup();
    let d0 = drops();
    let a = node(0);
    link(&a, &a);
    drop(a);
    assert_eq!(drops(), d0);
    assert_eq!(collect(), 1);
    assert_eq!(drops(), d0 + 1);
    assert_eq!(collect(), 0);
}

#[test]
fn pair_cycle() {
    let _s = setup();
    let d0 = drops();
    let a = node(0);
    let b = node(1);
    link(&a, &b);
    link(&b, &a);
    drop(a);
    assert_eq!(collect(), 0, "b still holds a, and b is held by us");
    drop(b);
    assert_eq!(collect(), 2);
    assert_eq!(drops(), d0 + 2);
}

/// Build a ring of `n` nodes, drop every handle, and check that `collect()` frees exactly
/// the ring.
fn collect_ring(n: u32) {
    let _s = setup();
    let d0 = drops();
    let first = node(0);
    let mut prev = first.clone();
    for i in 1..n {
        let next = node(i);
        link(&prev, &next);
        prev = next;
    }
    link(&prev, &first);
    drop(prev);
    drop(first);
    assert_eq!(collect(), n as usize);
    assert_eq!(drops(), d0 + n as usize);
}

#[test]
fn ring_of_100k() {
    collect_ring(100_000);
}

#[test]
fn ring_of_a_million_collected_without_stack_overflow() {
    collect_ring(1_000_000);
}

#[test]
fn cycle_hanging_off_a_live_root_is_kept() {
    let _s = setup();
    let d0 = drops();
    let root = node(0);
    let a = node(1);
    let b = node(2);
    link(&root, &a);
    link(&a, &b);
    link(&b, &a);
    drop((a, b));
    assert_eq!(collect(), 0);
    assert_eq!(drops(), d0);
    let a = root.edges.lock()[0].clone();
    assert_eq!(a.label, 1);
    assert_eq!(a.edges.lock()[0].label, 2);
    drop(a);
    root.edges.lock().clear();
    assert_eq!(collect(), 2);
    assert_eq!(drops(), d0 + 2);
}

#[test]
fn objects_reached_only_from_younger_ones_are_kept() {
    // A chain built leaf first, held by its head (the youngest node), with a self-cycle at
    // the leaf. In the single-thread scan every node but the head is met before the node
    // that points to it, with no reference from outside: it is moved to the tentatively
    // unreachable list and must be brought back when the walk reaches its parent.
    let _s = setup();
    let d0 = drops();
    let n = 10_000;
    let mut head = node(0);
    link(&head, &head);
    for i in 1..n {
        let p = node(i);
        link(&p, &head);
        head = p;
    }
    assert_eq!(collect(), 0);
    assert_eq!(drops(), d0);
    let mut seen = 1;
    let mut cur = head.clone();
    while cur.label != 0 {
        let next = cur.edges.lock()[0].clone();
        cur = next;
        seen += 1;
    }
    assert_eq!(seen, n);
    drop(cur);
    drop(head);
    // Refcounting frees the chain down to the leaf, whose self-cycle is the collector's.
    assert_eq!(drops(), d0 + n as usize - 1);
    assert_eq!(collect(), 1);
    assert_eq!(drops(), d0 + n as usize);
}

#[test]
fn garbage_cycle_pointing_at_a_live_object_leaves_it_intact() {
    let _s = setup();
    let d0 = drops();
    let live = node(7);
    let a = node(1);
    let b = node(2);
    link(&a, &b);
    link(&b, &a);
    link(&a, &live);
    assert_eq!(Gc::strong_count(&live), 2);
    drop((a, b));
    assert_eq!(collect(), 2);
    assert_eq!(drops(), d0 + 2);
    assert_eq!(Gc::strong_count(&live), 1);
    assert_eq!(live.label, 7);
}

#[test]
fn acyclic_tree_hanging_off_a_cycle_is_freed_with_it() {
    let _s = setup();
    let d0 = drops();
    let a = node(0);
    link(&a, &a);
    let mut leaf = node(1);
    link(&a, &leaf);
    for i in 2..1000 {
        let n = node(i);
        link(&leaf, &n);
        leaf = n;
    }
    drop(leaf);
    drop(a);
    assert_eq!(collect(), 1000);
    assert_eq!(drops(), d0 + 1000);
}

#[test]
fn garbage_cycle_holding_untracked_objects() {
    #[derive(Trace)]
    struct Holder {
        me: Edge<Option<Gc<Holder>>>,
        text: Gc<String>,
    }
    let _s = setup();
    let text = Gc::new(String::from("kept"));
    let w = Gc::downgrade(&text);
    let h = Gc::new(Holder {
        me: Edge::new(None),
        text: text.clone(),
    });
    *h.me.lock() = Some(h.clone());
    drop(h);
    drop(text);
    assert!(w.upgrade().is_some());
    assert_eq!(collect(), 1, "untracked objects are not counted");
    assert!(w.upgrade().is_none());
}

#[test]
fn weak_edges_do_not_keep_cycles() {
    #[derive(Trace)]
    struct P {
        child: Edge<Option<Gc<C>>>,
    }
    #[derive(Trace)]
    struct C {
        parent: Weak<P>,
    }
    let _s = setup();
    let p = Gc::new(P {
        child: Edge::new(None),
    });
    let c = Gc::new(C {
        parent: Gc::downgrade(&p),
    });
    *p.child.lock() = Some(c.clone());
    assert!(!Gc::is_tracked(&c), "a struct of weak handles is untracked");
    let wc = Gc::downgrade(&c);
    drop((p, c));
    assert!(wc.upgrade().is_none(), "no cycle: freed by counting");
    assert_eq!(collect(), 0);
}

/// A cell borrowed (unsync: `RefCell::borrow_mut`) or locked (shared: a `Mutex` held by the
/// collecting thread itself) while a collection runs: what it holds counts as referenced from
/// outside; no panic, no deadlock, no miscount.
#[test]
fn mutably_borrowed_cells_are_roots() {
    let _s = setup();
    let d0 = drops();
    let a = node(0);
    link(&a, &a);
    let w = Gc::downgrade(&a);
    let guard_owner = a.clone();
    drop(a);
    {
        let _b = guard_owner.edges.lock();
        // The cycle is reachable from `guard_owner` anyway; the borrowed cell must not make
        // the collector miscount.
        assert_eq!(collect(), 0);
    }
    drop(guard_owner);
    assert!(w.upgrade().is_some());
    assert_eq!(collect(), 1);
    assert_eq!(drops(), d0 + 1);
}


}

// Locked and poisoned `Mutex`/`RwLock` interiors: see `gc_peer_failures.rs`.
