//! Python's leak hunt (issue 15): `get_objects`, `census`, `get_referrers`, `get_referents`
//! and `GcAny`, for both flavors, against what users rely on: exactly the live objects,
//! every referrer and nothing else (across generations, frozen objects included), never a
//! handle to an object being torn down, and safe while other threads mutate and collect.

#[macro_use]
#[path = "common/flavor.rs"]
mod flavor;

use pyheap::Trace;
use std::sync::atomic::{AtomicUsize, Ordering};

both_flavors! {

#[derive(Trace)]
struct Node {
    #[trace(skip)]
    id: usize,
    edges: Edge<Vec<Gc<Node>>>,
}

fn node(id: usize) -> Gc<Node> {
    Gc::new(Node { id, edges: Edge::new(Vec::new()) })
}

/// Another type, to check the type filter.
#[derive(Trace)]
struct Holder {
    items: Edge<Vec<Gc<Node>>>,
}

fn ids(v: &[Gc<Node>]) -> Vec<usize> {
    let mut ids: Vec<usize> = v.iter().map(|n| n.id).collect();
    ids.sort();
    ids
}

#[test]
fn get_objects_finds_exactly_the_live_objects_of_a_type() {
    let _s = setup();
    let nodes: Vec<_> = (0..10).map(node).collect();
    let h = Gc::new(Holder { items: Edge::new(vec![nodes[0].clone()]) });
    assert_eq!(ids(&gc::get_objects::<Node>()), (0..10).collect::<Vec<_>>());
    assert_eq!(gc::get_objects::<Holder>().len(), 1);
    // A garbage cycle not collected yet is still alive to the collector (as in Python).
    nodes[3].edges.lock().push(nodes[4].clone());
    nodes[4].edges.lock().push(nodes[3].clone());
    let mut nodes = nodes;
    nodes.truncate(3); // drops 3..9; 3 and 4 are a garbage cycle, the rest die now
    assert_eq!(ids(&gc::get_objects::<Node>()), vec![0, 1, 2, 3, 4]);
    assert_eq!(collect(), 2);
    assert_eq!(ids(&gc::get_objects::<Node>()), vec![0, 1, 2]);
    // Generations: a full collection's survivors are in generation 2; a new object is in
    // generation 0 until a collection of generation 0 promotes it into generation 1.
    assert_eq!(ids(&gc::get_objects_in::<Node>(2)), vec![0, 1, 2]);
    let young = node(99);
    assert_eq!(ids(&gc::get_objects_in::<Node>(0)), vec![99]);
    gc::collect_generation(0);
    assert_eq!(gc::get_objects_in::<Node>(0).len(), 0);
    assert_eq!(ids(&gc::get_objects_in::<Node>(1)), vec![99]);
    // Frozen objects are found too.
    gc::freeze();
    assert_eq!(gc::get_objects::<Node>().len(), 4);
    gc::unfreeze();
    drop((nodes, h, young));
    collect();
    assert!(gc::get_objects::<Node>().is_empty());
    assert!(gc::get_objects::<Holder>().is_empty());
}

#[test]
fn census_counts_and_sizes_per_type() {
    let _s = setup();
    let nodes: Vec<_> = (0..7).map(node).collect();
    let h = Gc::new(Holder { items: Edge::new(nodes.clone()) });
    let c = gc::census();
    let n = c.entries.iter().find(|e| e.type_name.ends_with("::Node")).unwrap();
    assert_eq!(n.count, 7);
    assert!(n.bytes >= 7 * std::mem::size_of::<Node>());
    let hold = c.entries.iter().find(|e| e.type_name.ends_with("::Holder")).unwrap();
    assert_eq!(hold.count, 1);
    // Largest count first.
    assert!(c.entries.windows(2).all(|w| w[0].count >= w[1].count));
    assert_eq!(c.total_count(), c.entries.iter().map(|e| e.count).sum::<usize>());
    let table = c.to_string();
    assert!(table.lines().next().unwrap().contains("count"));
    assert!(table.contains("Node"));
    drop((nodes, h));
    collect();
    assert!(!gc::census().entries.iter().any(|e| e.type_name.ends_with("::Node")));
}

#[test]
fn get_referrers_finds_every_referrer_and_nothing_else() {
    let _s = setup();
    let target = node(0);
    let old_ref = node(1);
    old_ref.edges.lock().push(target.clone());
    collect(); // old_ref (and target) now in the oldest generation
    let frozen_ref = node(2);
    frozen_ref.edges.lock().push(target.clone());
    gc::freeze();
    let young_ref = node(3);
    young_ref.edges.lock().push(target.clone());
    young_ref.edges.lock().push(target.clone()); // twice: still one referrer
    let holder = Gc::new(Holder { items: Edge::new(vec![target.clone()]) });
    let unrelated = node(4);
    unrelated.edges.lock().push(young_ref.clone());
    let on_stack = vec![target.clone(), target.clone()]; // not an object: not a referrer

    let refs = gc::get_referrers(&target);
    assert_eq!(refs.len(), 4, "{refs:?}");
    let mut found: Vec<usize> = Vec::new();
    let mut holders = 0;
    for r in refs {
        if r.is::<Holder>() {
            holders += 1;
            let h: Gc<Holder> = r.downcast().map_err(|_| ()).unwrap();
            assert!(Gc::ptr_eq(&h, &holder));
        } else {
            assert!(r.type_name().ends_with("::Node"));
            let n: Gc<Node> = r.downcast().map_err(|_| ()).unwrap();
            found.push(n.id);
        }
    }
    found.sort();
    assert_eq!((found, holders), (vec![1, 2, 3], 1));
    // A GcAny names its object too.
    let any = gc::GcAny::from_gc(young_ref.clone()).unwrap();
    let of_young = gc::get_referrers(&any);
    assert_eq!(of_young.len(), 1);
    assert!(gc::GcAny::ptr_eq_gc(&of_young[0], &unrelated));
    // A downcast to the wrong type gives the handle back.
    let Err(wrong) = any.downcast::<Holder>() else { panic!("a Node downcast to Holder") };
    assert!(wrong.is::<Node>());
    gc::unfreeze();
    drop((on_stack, wrong, of_young));
    drop((old_ref, frozen_ref, young_ref, holder, unrelated));
    collect();
    assert!(gc::get_referrers(&target).is_empty());
    assert!(gc::get_referrers(&Gc::new(5u8)).is_empty(), "untracked: no referrers");
}

#[test]
fn get_referents_lists_each_target_once() {
    let _s = setup();
    let a = node(0);
    let b = node(1);
    let root = node(2);
    root.edges.lock().extend([a.clone(), b.clone(), a.clone(), root.clone()]);
    let r = gc::get_referents(&root);
    assert_eq!(r.len(), 3);
    for x in [&a, &b, &root] {
        assert_eq!(r.iter().filter(|g| gc::GcAny::ptr_eq_gc(g, x)).count(), 1);
    }
    assert!(gc::get_referents(&a).is_empty());
    root.edges.lock().clear();
    drop(r);
}

/// Introspection called from a `Drop` of a garbage set being torn down never hands out a
/// handle to a member of that set (no resurrection by introspection), and the handles it
/// gives keep their objects alive after the collection.
#[test]
fn introspection_never_resurrects_garbage() {
    #[derive(Trace)]
    struct Spy {
        #[trace(skip)]
        id: usize,
        edges: Edge<Vec<Gc<Spy>>>,
    }
    static SEEN: AtomicUsize = AtomicUsize::new(usize::MAX);
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    impl Drop for Spy {
        fn drop(&mut self) {
            if self.id == 0 {
                // Members 0..3 are being torn down; member 9 is alive.
                let found = gc::get_objects::<Spy>();
                SEEN.store(found.len(), Ordering::SeqCst);
                assert!(found.iter().all(|s| s.id == 9));
                assert!(gc::census().entries.iter().all(|e| !e.type_name.ends_with("::Spy") || e.count == 1));
            }
            DROPS.fetch_add(1, Ordering::SeqCst);
        }
    }
    let _s = setup();
    let live = Gc::new(Spy { id: 9, edges: Edge::new(vec![]) });
    let ring: Vec<_> = (0..3).map(|id| Gc::new(Spy { id, edges: Edge::new(vec![]) })).collect();
    for i in 0..3 {
        ring[i].edges.lock().push(ring[(i + 1) % 3].clone());
    }
    ring[1].edges.lock().push(live.clone());
    drop(ring);
    assert_eq!(collect(), 3);
    assert_eq!(SEEN.load(Ordering::SeqCst), 1);
    assert_eq!(DROPS.load(Ordering::SeqCst), 3);
    assert_eq!(gc::get_objects::<Spy>().len(), 1);
    drop(live);
    assert!(gc::get_objects::<Spy>().is_empty());
}

}

/// The shared flavor's introspection while other threads create, link, drop and collect:
/// every handle it gives is to a live object (canary intact), and nothing deadlocks.
#[test]
fn shared_introspection_while_threads_mutate_and_collect() {
    use pyheap::{gc, Gc};
    use std::sync::atomic::AtomicBool;
    use std::sync::{Arc, Mutex};
    const CANARY: u64 = 0xFEED_F00D_CAFE_D00D;
    #[derive(Trace)]
    struct S {
        #[trace(skip)]
        canary: u64,
        edges: Mutex<Vec<Gc<S>>>,
    }
    impl Drop for S {
        fn drop(&mut self) {
            assert_eq!(self.canary, CANARY);
            self.canary = 0;
        }
    }
    let _s = flavor::serial();
    gc::set_threshold(50, 10, 10);
    gc::enable();
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for t in 0..3u64 {
        let stop = stop.clone();
        workers.push(std::thread::spawn(move || {
            let mut rng = t * 7919 + 1;
            let mut next = || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng
            };
            let mut mine: Vec<Gc<S>> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let n = Gc::new(S {
                    canary: CANARY,
                    edges: Mutex::new(vec![]),
                });
                if let Some(m) = mine.get(next() as usize % (mine.len() + 1)) {
                    n.edges.lock().unwrap().push(m.clone());
                    m.edges.lock().unwrap().push(n.clone());
                }
                mine.push(n);
                if mine.len() > 200 {
                    mine.drain(..100);
                }
                if next() % 50 == 0 {
                    pyheap::collect();
                }
            }
        }));
    }
    let mut rounds = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(1500);
    while std::time::Instant::now() < deadline {
        let objs = gc::get_objects::<S>();
        for o in objs.iter().take(20) {
            assert_eq!(o.canary, CANARY);
            for r in gc::get_referrers(o) {
                let r: Gc<S> = r.downcast().map_err(|_| ()).unwrap();
                assert_eq!(r.canary, CANARY);
            }
            for r in gc::get_referents(o) {
                assert_eq!(r.downcast::<S>().map_err(|_| ()).unwrap().canary, CANARY);
            }
        }
        let c = gc::census();
        assert!(c.total_count() >= objs.len().min(1));
        rounds += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    assert!(rounds > 0);
    gc::set_threshold(700, 10, 10);
    gc::disable();
    pyheap::collect();
    gc::wait_for_teardowns();
    assert!(gc::get_objects::<S>().is_empty());
}
