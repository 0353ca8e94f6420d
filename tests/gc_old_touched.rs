//! The single-thread flavor's collections of generation 1 also examine the old objects that
//! lost a reference since the last one, and the old objects those reach up to a budget
//! (`gc::old_touched` in the sources). These tests pin down what users can rely on: garbage
//! cycles of the oldest generation are freed without waiting for a full collection, live
//! objects never are, the budget bounds the work (a larger structure waits for the full
//! collection), and freezing, `get_mut` and resurrection keep the generations consistent.

use pyheap::unsync::gc;
use pyheap::unsync::Gc;
use pyheap::{Finalize, Trace};
use std::cell::{Cell, RefCell};

thread_local! {
    static DROPS: Cell<usize> = const { Cell::new(0) };
}

fn drops() -> usize {
    DROPS.with(Cell::get)
}

#[derive(Trace, Default)]
struct N {
    next: RefCell<Vec<Gc<N>>>,
    #[trace(skip)]
    value: u64,
}

impl Drop for N {
    fn drop(&mut self) {
        DROPS.with(|d| d.set(d.get() + 1));
    }
}

fn node(value: u64) -> Gc<N> {
    Gc::new(N {
        next: RefCell::new(Vec::new()),
        value,
    })
}

/// Promote everything alive into the oldest generation.
fn promote() {
    gc::collect_generation(0);
    gc::collect_generation(1);
}

/// A ring of `n` nodes; returns a handle to its first node.
fn ring(n: usize) -> Gc<N> {
    let head = node(0);
    let mut tail = head.clone();
    for i in 1..n {
        let nd = node(i as u64);
        tail.next.borrow_mut().push(nd.clone());
        tail = nd;
    }
    tail.next.borrow_mut().push(head.clone());
    head
}

fn fresh() {
    gc::disable();
    gc::set_threshold(700, 10, 10);
    pyheap::collect();
}

#[test]
fn an_old_garbage_ring_is_freed_by_a_generation_1_collection() {
    fresh();
    let r = ring(500);
    promote();
    let d0 = drops();
    drop(r);
    assert_eq!(gc::collect_generation(0), 0);
    assert_eq!(drops(), d0);
    assert_eq!(gc::collect_generation(1), 500);
    assert_eq!(drops(), d0 + 500);
    assert_eq!(
        pyheap::collect(),
        0,
        "nothing was left for the full collection"
    );
}

#[test]
fn a_structure_larger_than_the_budget_waits_for_the_full_collection() {
    fresh();
    // One touched object: the budget is 4 * 1 + 1024 gathered objects, a fraction of the
    // ring. The part gathered is referenced from the part left behind, so it is kept whole.
    let r = ring(20_000);
    promote();
    let d0 = drops();
    drop(r);
    assert_eq!(gc::collect_generation(1), 0);
    assert_eq!(drops(), d0, "no part of a garbage ring is freed early");
    assert_eq!(gc::collect_generation(1), 0, "the survivors are old again");
    assert_eq!(gc::collect_generation(2), 20_000);
    assert_eq!(drops(), d0 + 20_000);
}

#[test]
fn live_old_objects_that_lose_references_are_kept_intact() {
    fresh();
    // A live tree of old objects whose root and some inner nodes are cloned and dropped.
    let root = node(0);
    let mut all = vec![root.clone()];
    for i in 1..3000u64 {
        let parent = all[(i as usize - 1) / 4].clone();
        let child = node(i);
        parent.next.borrow_mut().push(child.clone());
        all.push(child);
    }
    drop(all);
    promote();
    let d0 = drops();
    for _ in 0..3 {
        drop(root.clone());
        let inner = root.next.borrow()[1].clone();
        drop(inner.next.borrow()[2].clone());
        drop(inner);
        assert_eq!(gc::collect_generation(1), 0);
    }
    assert_eq!(drops(), d0);
    // Every value is intact: walk the tree and sum.
    let mut sum = 0;
    let mut stack = vec![root.clone()];
    while let Some(n) = stack.pop() {
        sum += n.value;
        stack.extend(n.next.borrow().iter().cloned());
    }
    assert_eq!(sum, (0..3000u64).sum());
    drop((root, stack));
    assert_eq!(drops(), d0 + 3000, "an acyclic tree dies by refcount");
}

#[test]
fn a_ring_pointing_into_a_live_old_structure_leaves_it_intact() {
    fresh();
    let live = ring(10);
    let garbage = ring(10);
    garbage.next.borrow_mut().push(live.clone());
    promote();
    let d0 = drops();
    drop(garbage);
    assert_eq!(gc::collect_generation(1), 10);
    assert_eq!(drops(), d0 + 10);
    assert_eq!(
        Gc::strong_count(&live),
        2,
        "the garbage's edge to it was dropped"
    );
    drop(live);
    assert_eq!(gc::collect_generation(1), 10);
}

#[test]
fn frozen_objects_stay_frozen_when_they_lose_references() {
    fresh();
    let r = ring(3);
    promote();
    gc::freeze();
    let frozen = gc::freeze_count();
    assert!(frozen >= 3);
    let d0 = drops();
    drop(r);
    assert_eq!(
        gc::freeze_count(),
        frozen,
        "a frozen object left the permanent generation"
    );
    assert_eq!(gc::collect_generation(1), 0);
    assert_eq!(pyheap::collect(), 0);
    gc::unfreeze();
    assert_eq!(gc::freeze_count(), 0);
    // Unfrozen objects are old (but did not lose a reference since): a full collection
    // frees them.
    assert_eq!(gc::collect_generation(1), 0);
    assert_eq!(pyheap::collect(), 3);
    assert_eq!(drops(), d0 + 3);
}

#[test]
fn unfrozen_objects_that_lose_a_reference_are_examined_again() {
    fresh();
    let r = ring(4);
    promote();
    gc::freeze();
    gc::unfreeze();
    let d0 = drops();
    drop(r);
    assert_eq!(gc::collect_generation(1), 4);
    assert_eq!(drops(), d0 + 4);
}

#[test]
fn an_old_object_taken_by_get_mut_is_young_again() {
    fresh();
    let mut n = node(1);
    promote();
    let m = Gc::get_mut(&mut n).expect("unique");
    m.value = 2;
    // The shared use tracks it again, in generation 0.
    n.next.borrow_mut().push(n.clone());
    let d0 = drops();
    drop(n);
    assert_eq!(
        gc::collect_generation(0),
        1,
        "the cycle is young: found by a collection of generation 0"
    );
    assert_eq!(drops(), d0 + 1);
}

#[test]
fn old_survivors_are_not_counted_as_new_long_lived_objects() {
    fresh();
    // 100 long-lived objects survive the full collection.
    let live: Vec<Gc<N>> = (0..100).map(node).collect();
    pyheap::collect();
    gc::set_threshold(1, 1, 1);
    gc::enable();
    let full_before = gc::stats()[2].collections;
    // Every one of them loses a reference, many times, between young collections that
    // promote nothing new: gathered and found alive, they are not new promotions, so the
    // 25% rule never lets a full collection run.
    for _ in 0..50 {
        for l in &live {
            drop(l.clone());
        }
        // Young garbage (nothing is promoted): runs the automatic collections.
        for _ in 0..3 {
            let g = node(0);
            g.next.borrow_mut().push(g.clone());
        }
    }
    let s = gc::stats();
    assert!(s[1].collections > 10, "{s:?}");
    assert_eq!(s[2].collections, full_before, "{s:?}");
    gc::disable();
    gc::set_threshold(700, 10, 10);
    drop(live);
}

#[derive(Trace)]
struct Phoenix {
    me: RefCell<Option<Gc<Phoenix>>>,
    #[trace(skip)]
    finalized: Cell<u32>,
}

thread_local! {
    static SAVED: RefCell<Option<Gc<Phoenix>>> = const { RefCell::new(None) };
}

impl Finalize for Phoenix {
    fn finalize(&self) {
        self.finalized.set(self.finalized.get() + 1);
        let me = self.me.borrow().clone();
        SAVED.with(|s| *s.borrow_mut() = me);
    }
}

#[test]
fn an_old_object_resurrected_by_its_finalizer_is_old_again() {
    fresh();
    let p = Gc::new_finalized(Phoenix {
        me: RefCell::new(None),
        finalized: Cell::new(0),
    });
    *p.me.borrow_mut() = Some(p.clone());
    promote();
    drop(p);
    // Its finalizer saves it: it stays, back in the oldest generation.
    assert_eq!(gc::collect_generation(1), 0);
    let saved = SAVED.with(|s| s.borrow_mut().take()).expect("resurrected");
    assert_eq!(saved.finalized.get(), 1);
    // Dropping the saved handle makes it garbage again, found by the next collection of
    // generation 1 (the finalizer does not run twice).
    drop(saved);
    assert_eq!(gc::collect_generation(1), 1);
    assert!(SAVED.with(|s| s.borrow().is_none()));
}

#[derive(Trace)]
struct Pair {
    other: RefCell<Option<Gc<Pair>>>,
    #[trace(skip)]
    finalized: Cell<bool>,
}

impl Finalize for Pair {
    fn finalize(&self) {
        self.finalized.set(true);
        // Clone and drop a handle to a member of the garbage set being torn down: its count
        // stays above zero (the collector's pin), and it must not be moved anywhere.
        let o = self.other.borrow().clone();
        drop(o);
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        DROPS.with(|d| d.set(d.get() + 1));
    }
}

#[test]
fn finalizers_dropping_handles_to_old_garbage_members_leave_the_lists_intact() {
    for full in [false, true] {
        finalizers_dropping_handles(full);
    }
}

fn finalizers_dropping_handles(full: bool) {
    fresh();
    let d0 = drops();
    let pairs: Vec<Gc<Pair>> = (0..3)
        .map(|_| {
            let a = Gc::new_finalized(Pair {
                other: RefCell::new(None),
                finalized: Cell::new(false),
            });
            let b = Gc::new_finalized(Pair {
                other: RefCell::new(Some(a.clone())),
                finalized: Cell::new(false),
            });
            *a.other.borrow_mut() = Some(b);
            a
        })
        .collect();
    promote();
    drop(pairs);
    // In a full collection the partners were never touched: they come from the oldest
    // generation's own list.
    let freed = if full {
        pyheap::collect()
    } else {
        gc::collect_generation(1)
    };
    assert_eq!(freed, 6);
    assert_eq!(drops(), d0 + 6);
    // A member left in the touched list would be met again here, freed.
    let r = ring(3);
    promote();
    drop(r);
    assert_eq!(gc::collect_generation(1), 3);
    assert_eq!(pyheap::collect(), 0);
    assert_eq!(drops(), d0 + 9);
}
