//! The weak maps (`WeakValueMap`, `WeakKeyMap`, `WeakSet`; issue 15) for both flavors: a dead
//! referent's entry is never returned and leaves the map (by refcount death, by a collected
//! cycle, by `try_unwrap`), `len()` is exact once the death returned, keys and values are
//! dropped exactly once (also the clones the death notices hold), and the awkward cases: a map
//! dropped or forgotten before its referents die, a map inside a collected cycle, a value's
//! `Drop` using the map, a key's `Hash` panicking. The shared flavor's stress test at the end
//! runs real threads against one map while another thread collects.

#[macro_use]
#[path = "common/flavor.rs"]
mod flavor;

use pyheap::{Finalize, Trace};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering};
use std::sync::Arc;

/// Counts live instances: +1 when made or cloned, -1 when dropped.
#[derive(Debug)]
struct Counted {
    id: u32,
    live: Arc<AtomicIsize>,
    panic_on_hash: Arc<AtomicBool>,
}

impl Counted {
    fn new(id: u32, live: &Arc<AtomicIsize>) -> Self {
        live.fetch_add(1, Ordering::SeqCst);
        Counted {
            id,
            live: live.clone(),
            panic_on_hash: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl Clone for Counted {
    fn clone(&self) -> Self {
        self.live.fetch_add(1, Ordering::SeqCst);
        Counted {
            id: self.id,
            live: self.live.clone(),
            panic_on_hash: self.panic_on_hash.clone(),
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

impl PartialEq for Counted {
    fn eq(&self, o: &Self) -> bool {
        self.id == o.id
    }
}
impl Eq for Counted {}
impl Hash for Counted {
    fn hash<H: Hasher>(&self, h: &mut H) {
        if self.panic_on_hash.load(Ordering::SeqCst) {
            panic!("Hash panics");
        }
        self.id.hash(h)
    }
}

// SAFETY: holds no handle.
unsafe impl Trace for Counted {
    fn trace(&self, _: &mut pyheap::Tracer) {}
    const MAY_CONTAIN_GC: bool = false;
}

fn live() -> Arc<AtomicIsize> {
    Arc::new(AtomicIsize::new(0))
}

fn n(c: &Arc<AtomicIsize>) -> isize {
    c.load(Ordering::SeqCst)
}

both_flavors! {

use weakref::{WeakKeyMap, WeakSet, WeakValueMap};

/// An object that can be in a cycle and counts its drops.
#[derive(Trace)]
struct Node {
    #[trace(skip)]
    id: u32,
    #[trace(skip)]
    drops: Arc<AtomicUsize>,
    #[trace(skip)]
    finalized: AtomicBool,
    next: Edge<Option<Gc<Node>>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

impl Finalize for Node {
    fn finalize(&self) {
        self.finalized.store(true, Ordering::SeqCst);
    }
}

fn node(id: u32, drops: &Arc<AtomicUsize>) -> Gc<Node> {
    Gc::new_finalized(Node {
        id,
        drops: drops.clone(),
        finalized: AtomicBool::new(false),
        next: Edge::new(None),
    })
}

/// Two nodes pointing at each other (garbage once the handles go).
fn pair(id: u32, drops: &Arc<AtomicUsize>) -> (Gc<Node>, Gc<Node>) {
    let a = node(id, drops);
    let b = node(id + 1000, drops);
    *a.next.lock() = Some(b.clone());
    *b.next.lock() = Some(a.clone());
    (a, b)
}

#[test]
fn value_map_forgets_values_that_die_by_refcount() {
    let _g = setup();
    let keys = live();
    let drops = Arc::new(AtomicUsize::new(0));
    let m: WeakValueMap<Counted, Node> = WeakValueMap::new();
    let nodes: Vec<_> = (0..10).map(|i| node(i, &drops)).collect();
    for (i, v) in nodes.iter().enumerate() {
        assert!(m.insert(Counted::new(i as u32, &keys), v).is_none());
    }
    assert_eq!(m.len(), 10);
    let mut nodes = nodes;
    let kept = nodes.split_off(5);
    drop(nodes);
    assert_eq!(drops.load(Ordering::SeqCst), 5, "the map kept no value alive");
    assert_eq!(m.len(), 5, "len() counts the live entries");
    for i in 0..10u32 {
        let probe = Counted::new(i, &keys);
        match m.get(&probe) {
            Some(v) => {
                assert!(i >= 5);
                assert_eq!(v.id, i);
            }
            None => assert!(i < 5, "entry {i} lost"),
        }
    }
    assert_eq!(m.keys().count(), 5);
    assert_eq!(m.values().count(), 5);
    assert!(m.iter().all(|(k, v)| k.id == v.id && k.id >= 5));
    // The keys of the dead entries (and their notices' clones) are gone: 5 in the table,
    // 5 in the live entries' notices.
    assert_eq!(n(&keys), 10);
    drop(kept);
    assert!(m.is_empty());
    assert_eq!(n(&keys), 0, "every key and notice clone dropped");
    drop(m);
    assert_eq!(n(&keys), 0);
    assert_eq!(drops.load(Ordering::SeqCst), 10);
}

#[test]
fn value_map_forgets_values_a_collection_frees() {
    let _g = setup();
    let keys = live();
    let drops = Arc::new(AtomicUsize::new(0));
    let m: WeakValueMap<Counted, Node> = WeakValueMap::new();
    let (a, b) = pair(1, &drops);
    m.insert(Counted::new(1, &keys), &a);
    m.insert(Counted::new(2, &keys), &b);
    let other = node(3, &drops);
    m.insert(Counted::new(3, &keys), &other);
    drop((a, b));
    assert_eq!(m.len(), 3, "the cycle is alive until collected");
    assert_eq!(collect(), 2);
    assert_eq!(drops.load(Ordering::SeqCst), 2);
    assert_eq!(m.len(), 1);
    assert!(m.get(&Counted::new(1, &keys)).is_none());
    assert!(m.get(&Counted::new(3, &keys)).is_some());
    drop(other);
    assert_eq!(m.len(), 0);
    assert_eq!(n(&keys), 0);
}

#[test]
fn value_map_replace_remove_clear_drop_keys_once() {
    let _g = setup();
    let keys = live();
    let drops = Arc::new(AtomicUsize::new(0));
    let m: WeakValueMap<Counted, Node> = WeakValueMap::new();
    let (x, y) = (node(1, &drops), node(2, &drops));
    m.insert(Counted::new(7, &keys), &x);
    let old = m.insert(Counted::new(7, &keys), &y).expect("replaced a live value");
    assert!(Gc::ptr_eq(&old, &x));
    assert_eq!(m.len(), 1);
    // The replaced entry's notice is cancelled: x's death leaves y's entry alone.
    drop((old, x));
    assert_eq!(m.get(&Counted::new(7, &keys)).map(|v| v.id), Some(2));
    assert!(m.remove(&Counted::new(7, &keys)).is_some());
    assert!(m.is_empty());
    m.insert(Counted::new(8, &keys), &y);
    m.clear();
    assert!(m.is_empty());
    assert_eq!(n(&keys), 0, "replaced, removed and cleared keys (and clones) dropped");
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    drop(y);
}

#[test]
fn value_map_get_or_insert_with_caches_while_alive() {
    let _g = setup();
    let drops = Arc::new(AtomicUsize::new(0));
    let m: WeakValueMap<u32, Node> = WeakValueMap::new();
    let a = m.get_or_insert_with(1, || node(1, &drops));
    let b = m.get_or_insert_with(1, || unreachable!("cached"));
    assert!(Gc::ptr_eq(&a, &b));
    drop((a, b));
    let c = m.get_or_insert_with(1, || node(2, &drops));
    assert_eq!(c.id, 2, "a new value once the old one died");
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn try_unwrap_leaves_the_maps() {
    let _g = setup();
    let vm: WeakValueMap<u32, u64> = WeakValueMap::new();
    let km: WeakKeyMap<u64, u32> = WeakKeyMap::new();
    let s: WeakSet<u64> = WeakSet::new();
    let v = Gc::new(5u64);
    vm.insert(1, &v);
    km.insert(&v, 1);
    s.insert(&v);
    assert_eq!(Gc::try_unwrap(v).ok(), Some(5));
    assert_eq!((vm.len(), km.len(), s.len()), (0, 0, 0));
}

#[test]
fn make_mut_away_from_weak_handles_leaves_the_maps() {
    let _g = setup();
    let vm: WeakValueMap<u32, u64> = WeakValueMap::new();
    let km: WeakKeyMap<u64, u32> = WeakKeyMap::new();
    let s: WeakSet<u64> = WeakSet::new();
    let mut v = Gc::new(5u64);
    vm.insert(1, &v);
    km.insert(&v, 1);
    s.insert(&v);
    // Only weak handles besides: the value moves to a new object, the maps' entries die.
    *Gc::make_mut(&mut v) += 1;
    assert_eq!(*v, 6);
    assert_eq!((vm.len(), km.len(), s.len()), (0, 0, 0));
    assert!(vm.get(&1).is_none());
    assert_eq!(km.get(&v), None, "the new object is another key");
    assert!(!s.contains(&v));
}

#[test]
fn key_map_drops_the_value_when_the_key_dies() {
    let _g = setup();
    let values = live();
    let drops = Arc::new(AtomicUsize::new(0));
    let m: WeakKeyMap<Node, Counted> = WeakKeyMap::new();
    let k1 = node(1, &drops);
    let k2 = node(2, &drops);
    let (c1, c2) = pair(10, &drops);
    m.insert(&k1, Counted::new(1, &values));
    m.insert(&k2, Counted::new(2, &values));
    m.insert(&c1, Counted::new(3, &values));
    m.insert(&c2, Counted::new(4, &values));
    assert_eq!(m.len(), 4);
    assert_eq!(m.get(&k1).map(|c| c.id), Some(1));
    drop(k1);
    assert_eq!(n(&values), 3, "k1's value dropped with k1 (no access needed)");
    assert_eq!(m.len(), 3);
    drop((c1, c2));
    assert_eq!(collect(), 2);
    assert_eq!(n(&values), 1, "the cycle's values dropped when it was torn down");
    assert_eq!(m.len(), 1);
    assert_eq!(m.keys().next().map(|k| k.id), Some(2));
    // Replacing a value returns the old one; the entry keeps one notice.
    let old = m.insert(&k2, Counted::new(5, &values)).unwrap();
    assert_eq!(old.id, 2);
    drop(old);
    assert_eq!(n(&values), 1);
    drop(k2);
    assert_eq!(n(&values), 0);
    assert!(m.is_empty());
}

#[test]
fn key_map_and_set_compare_by_identity() {
    let _g = setup();
    let m: WeakKeyMap<String, u32> = WeakKeyMap::new();
    let s: WeakSet<String> = WeakSet::new();
    let a = Gc::new(String::from("same"));
    let b = Gc::new(String::from("same"));
    m.insert(&a, 1);
    m.insert(&b, 2);
    assert!(s.insert(&a));
    assert!(s.insert(&b));
    assert!(!s.insert(&a.clone()));
    assert_eq!((m.len(), s.len()), (2, 2));
    assert_eq!((m.get(&a), m.get(&b)), (Some(1), Some(2)));
    drop(a);
    assert_eq!((m.len(), s.len()), (1, 1));
    assert!(s.contains(&b));
    assert!(s.iter().all(|x| Gc::ptr_eq(&x, &b)));
}

#[test]
fn set_forgets_dead_members() {
    let _g = setup();
    let drops = Arc::new(AtomicUsize::new(0));
    let s: WeakSet<Node> = WeakSet::new();
    let singles: Vec<_> = (0..4).map(|i| node(i, &drops)).collect();
    let (c1, c2) = pair(10, &drops);
    for x in singles.iter().chain([&c1, &c2]) {
        s.insert(x);
    }
    assert_eq!(s.len(), 6);
    drop(singles);
    assert_eq!(s.len(), 2);
    drop((c1, c2));
    collect();
    assert_eq!(s.len(), 0);
    assert_eq!(s.iter().count(), 0);
    assert_eq!(drops.load(Ordering::SeqCst), 6);
}

#[test]
fn purge_leaves_nothing_behind() {
    let _g = setup();
    let keys = live();
    let values = live();
    let drops = Arc::new(AtomicUsize::new(0));
    let vm: WeakValueMap<Counted, Node> = WeakValueMap::new();
    let km: WeakKeyMap<Node, Counted> = WeakKeyMap::new();
    for round in 0..20u32 {
        let nodes: Vec<_> = (0..100).map(|i| node(round * 100 + i, &drops)).collect();
        for x in &nodes {
            vm.insert(Counted::new(x.id, &keys), x);
            km.insert(x, Counted::new(x.id, &values));
        }
        assert_eq!(vm.len(), 100);
        assert_eq!(km.len(), 100);
    }
    assert_eq!((vm.len(), km.len()), (0, 0));
    assert_eq!((n(&keys), n(&values)), (0, 0), "2000 entries purged, nothing kept");
    assert_eq!(drops.load(Ordering::SeqCst), 2000);
}

#[test]
fn a_map_dropped_before_its_referents_cancels_its_notices() {
    let _g = setup();
    let keys = live();
    let values = live();
    let drops = Arc::new(AtomicUsize::new(0));
    let nodes: Vec<_> = (0..8).map(|i| node(i, &drops)).collect();
    {
        let vm: WeakValueMap<Counted, Node> = WeakValueMap::new();
        let km: WeakKeyMap<Node, Counted> = WeakKeyMap::new();
        let s: WeakSet<Node> = WeakSet::new();
        for x in &nodes {
            vm.insert(Counted::new(x.id, &keys), x);
            km.insert(x, Counted::new(x.id, &values));
            s.insert(x);
        }
    }
    assert_eq!((n(&keys), n(&values)), (0, 0), "the notices' key clones went with the maps");
    drop(nodes);
    assert_eq!(drops.load(Ordering::SeqCst), 8);
}

#[test]
fn a_forgotten_map_is_a_leak_not_a_crash() {
    let _g = setup();
    let values = live();
    let drops = Arc::new(AtomicUsize::new(0));
    let x = node(1, &drops);
    let km: WeakKeyMap<Node, Counted> = WeakKeyMap::new();
    km.insert(&x, Counted::new(1, &values));
    let vm: WeakValueMap<u32, Node> = WeakValueMap::new();
    vm.insert(1, &x);
    std::mem::forget(vm);
    let km2 = km.clone();
    std::mem::forget(km);
    drop(x);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    // The forgotten map's notice still ran (its table is leaked, not dangling): the value
    // went with the key.
    assert_eq!(n(&values), 0);
    assert!(km2.is_empty());
}

#[derive(Trace)]
struct Holder {
    cache: WeakValueMap<u32, Node>,
    notes: WeakKeyMap<Node, Gc<Holder>>,
    members: WeakSet<Node>,
    me: Edge<Option<Gc<Holder>>>,
    #[trace(skip)]
    drops: Arc<AtomicUsize>,
}

impl Drop for Holder {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn maps_inside_a_collected_cycle() {
    let _g = setup();
    let drops = Arc::new(AtomicUsize::new(0));
    let holder_drops = Arc::new(AtomicUsize::new(0));
    let x = node(1, &drops);
    let h = Gc::new(Holder {
        cache: WeakValueMap::new(),
        notes: WeakKeyMap::new(),
        members: WeakSet::new(),
        me: Edge::new(None),
        drops: holder_drops.clone(),
    });
    *h.me.lock() = Some(h.clone());
    h.cache.insert(1, &x);
    h.members.insert(&x);
    // A value holding the holder: a cycle through the key map's value (x stays alive, so
    // the entry holds h until x dies or the holder goes).
    h.notes.insert(&x, h.clone());
    drop(h);
    // The holder is only kept by the key map's value (weak key x) and itself: garbage.
    assert_eq!(collect(), 1);
    assert_eq!(holder_drops.load(Ordering::SeqCst), 1);
    assert_eq!(drops.load(Ordering::SeqCst), 0, "weakly held: x untouched");
    assert!(!x.finalized.load(Ordering::SeqCst));
    drop(x);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn a_map_that_keeps_its_values_alive_through_the_holder_is_collected_with_them() {
    let _g = setup();
    let drops = Arc::new(AtomicUsize::new(0));
    let holder_drops = Arc::new(AtomicUsize::new(0));
    let h = Gc::new(Holder {
        cache: WeakValueMap::new(),
        notes: WeakKeyMap::new(),
        members: WeakSet::new(),
        me: Edge::new(None),
        drops: holder_drops.clone(),
    });
    let x = node(1, &drops);
    *x.next.lock() = Some(x.clone());
    h.cache.insert(1, &x);
    h.members.insert(&x);
    h.notes.insert(&x, h.clone());
    drop((h, x));
    collect();
    collect();
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert_eq!(holder_drops.load(Ordering::SeqCst), 1);
}

/// A holder whose key map's key and value are both in the holder's garbage cycle: the key's
/// notice (at the start of the teardown) drops the value's handle, one into the set being
/// torn down; and a value map whose keys are handles into the cycle.
#[derive(Trace)]
struct Owner {
    notes: WeakKeyMap<Node, Gc<Node>>,
    by_node: WeakValueMap<GcKey, Node>,
    me: Edge<Option<Gc<Owner>>>,
    #[trace(skip)]
    drops: Arc<AtomicUsize>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

/// A `Gc` as a value-map key, by identity.
#[derive(Clone, Trace)]
struct GcKey(Gc<Node>);

impl PartialEq for GcKey {
    fn eq(&self, o: &Self) -> bool {
        Gc::ptr_eq(&self.0, &o.0)
    }
}
impl Eq for GcKey {}
impl Hash for GcKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.0.id.hash(h)
    }
}

#[test]
fn a_cycle_through_the_maps_entries_is_torn_down_once() {
    let _g = setup();
    let drops = Arc::new(AtomicUsize::new(0));
    let owner_drops = Arc::new(AtomicUsize::new(0));
    let k = node(1, &drops);
    let v = node(2, &drops);
    let owner = Gc::new(Owner {
        notes: WeakKeyMap::new(),
        by_node: WeakValueMap::new(),
        me: Edge::new(None),
        drops: owner_drops.clone(),
    });
    // owner -> (value) v -> k -> ... ; k is the key; the cycle closes through v <-> k.
    *v.next.lock() = Some(k.clone());
    *k.next.lock() = Some(v.clone());
    owner.notes.insert(&k, v.clone());
    owner.by_node.insert(GcKey(v.clone()), &k);
    drop((k, v));
    assert_eq!(collect(), 0, "the owner is alive and holds v (and v holds k)");
    assert_eq!(owner.notes.len(), 1);
    drop(owner);
    // The owner went by refcount: its maps cancelled their notices and dropped v's handles:
    // k and v are a plain garbage pair now.
    assert_eq!(owner_drops.load(Ordering::SeqCst), 1);
    assert_eq!(collect(), 2);
    assert_eq!(drops.load(Ordering::SeqCst), 2);

    // Now all in one garbage set: the owner (a self-cycle), v only held by the key map's
    // value, k only by v (and weakly, as the key): the collector finds the three; k's notice,
    // at the start of the teardown, drops the map's handle to v, one into the set being torn
    // down. (No value-map entry here: its notice's key clone, untraced, would keep v.)
    let owner = Gc::new(Owner {
        notes: WeakKeyMap::new(),
        by_node: WeakValueMap::new(),
        me: Edge::new(None),
        drops: owner_drops.clone(),
    });
    *owner.me.lock() = Some(owner.clone());
    let k = node(3, &drops);
    let v = node(4, &drops);
    *v.next.lock() = Some(k.clone());
    owner.notes.insert(&k, v.clone());
    drop((owner, k, v));
    assert_eq!(collect(), 3);
    assert_eq!(drops.load(Ordering::SeqCst), 4, "k and v dropped once each");
    assert_eq!(owner_drops.load(Ordering::SeqCst), 2, "the owner dropped once");
}

#[test]
fn a_panicking_hash_leaves_a_usable_map() {
    let _g = setup();
    let keys = live();
    let drops = Arc::new(AtomicUsize::new(0));
    let m: WeakValueMap<Counted, Node> = WeakValueMap::new();
    let x = node(1, &drops);
    let y = node(2, &drops);
    m.insert(Counted::new(1, &keys), &x);
    let bad = Counted::new(2, &keys);
    bad.panic_on_hash.store(true, Ordering::SeqCst);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| m.insert(bad, &y)));
    assert!(r.is_err());
    assert_eq!(m.len(), 1);
    assert_eq!(m.get(&Counted::new(1, &keys)).map(|v| v.id), Some(1));
    drop((x, y));
    assert!(m.is_empty());
    assert_eq!(n(&keys), 0, "the panicking key and every clone dropped");
}

}

/// Single-thread flavor only: a value's `Drop` (run when its key dies, from the death notice)
/// inserts into the same map and reads its length.
mod unsync_reentrant {
    use pyheap::unsync::weakref::WeakKeyMap;
    use pyheap::unsync::Gc;
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;

    type Map = Rc<WeakKeyMap<u32, UsesMap>>;

    struct UsesMap {
        map: Rc<RefCell<Option<Map>>>,
        extra: Rc<RefCell<Vec<Gc<u32>>>>,
        seen: Rc<Cell<Option<usize>>>,
    }

    impl Drop for UsesMap {
        fn drop(&mut self) {
            let m = self.map.borrow().clone();
            if let Some(m) = m {
                let extra = Gc::new(9u32);
                m.insert(
                    &extra,
                    UsesMap {
                        map: Default::default(),
                        extra: Default::default(),
                        seen: Default::default(),
                    },
                );
                self.extra.borrow_mut().push(extra);
                self.seen.set(Some(m.len()));
            }
        }
    }

    #[test]
    fn a_value_drop_inserts_into_its_own_map() {
        let _g = super::flavor::serial();
        let map: Map = Rc::new(WeakKeyMap::new());
        let slot = Rc::new(RefCell::new(Some(map.clone())));
        let extra = Rc::new(RefCell::new(Vec::new()));
        let seen = Rc::new(Cell::new(None));
        let k = Gc::new(1u32);
        map.insert(
            &k,
            UsesMap {
                map: slot.clone(),
                extra: extra.clone(),
                seen: seen.clone(),
            },
        );
        drop(k); // the notice removes the entry, then drops the value: its Drop uses the map
        assert_eq!(
            seen.get(),
            Some(1),
            "the value's Drop saw its own insert, not the dead entry"
        );
        assert_eq!(map.len(), 1);
        extra.borrow_mut().clear();
        assert_eq!(map.len(), 0);
        slot.borrow_mut().take();
    }
}

/// Shared flavor: threads insert, look up and drop values (some in cycles) in one map while
/// another thread collects; a returned value is never one whose teardown started (finalized),
/// and once everything is dropped and collected the maps are empty and every key and value
/// was dropped exactly once.
mod shared_stress {
    use super::{live, n, Counted};
    use pyheap::weakref::{WeakKeyMap, WeakSet, WeakValueMap};
    use pyheap::{Finalize, Gc, Trace};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    #[derive(Trace)]
    struct Obj {
        #[trace(skip)]
        id: u32,
        #[trace(skip)]
        finalized: AtomicBool,
        #[trace(skip)]
        drops: Arc<AtomicUsize>,
        next: Mutex<Option<Gc<Obj>>>,
    }

    impl Finalize for Obj {
        fn finalize(&self) {
            self.finalized.store(true, Ordering::SeqCst);
        }
    }

    impl Drop for Obj {
        fn drop(&mut self) {
            self.drops.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn never_a_dead_value_under_concurrent_collection() {
        let _g = super::flavor::serial();
        pyheap::gc::disable();
        const THREADS: u32 = 3;
        const ROUNDS: u32 = 1000;
        let keys = live();
        let values = live();
        let drops = Arc::new(AtomicUsize::new(0));
        let vm: Arc<WeakValueMap<Counted, Obj>> = Arc::new(WeakValueMap::new());
        let km: Arc<WeakKeyMap<Obj, Counted>> = Arc::new(WeakKeyMap::new());
        let set: Arc<WeakSet<Obj>> = Arc::new(WeakSet::new());
        let stop = Arc::new(AtomicBool::new(false));
        let collector = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0usize;
                while !stop.load(Ordering::SeqCst) {
                    n += pyheap::collect();
                    std::thread::yield_now();
                }
                n
            })
        };
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (vm, km, set) = (vm.clone(), km.clone(), set.clone());
                let (keys, values, drops) = (keys.clone(), values.clone(), drops.clone());
                std::thread::spawn(move || {
                    let mut made = 0usize;
                    for r in 0..ROUNDS {
                        let id = t * ROUNDS + r;
                        let obj = Gc::new_finalized(Obj {
                            id,
                            finalized: AtomicBool::new(false),
                            drops: drops.clone(),
                            next: Mutex::new(None),
                        });
                        made += 1;
                        if r % 3 == 0 {
                            // A self-cycle: only a collection frees it.
                            *obj.next.lock().unwrap() = Some(obj.clone());
                        }
                        vm.insert(Counted::new(id, &keys), &obj);
                        km.insert(&obj, Counted::new(id, &values));
                        set.insert(&obj);
                        drop(obj);
                        // Look up this thread's recent keys and others': whatever comes back
                        // is alive and was never finalized.
                        for back in 0..4u32 {
                            let probe = Counted::new(id.saturating_sub(back * 7), &keys);
                            if let Some(v) = vm.get(&probe) {
                                assert!(!v.finalized.load(Ordering::SeqCst), "dead value returned");
                                assert_eq!(v.id, probe.id);
                                assert_eq!(km.get(&v).map(|c| c.id), Some(v.id));
                                assert!(set.contains(&v));
                            }
                        }
                        if r % 50 == 0 {
                            for v in vm.values().chain(set.iter()).chain(km.keys()) {
                                assert!(!v.finalized.load(Ordering::SeqCst), "dead value listed");
                            }
                        }
                    }
                    made
                })
            })
            .collect();
        let made: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
        stop.store(true, Ordering::SeqCst);
        collector.join().unwrap();
        pyheap::collect();
        pyheap::gc::wait_for_teardowns();
        assert_eq!(
            drops.load(Ordering::SeqCst),
            made,
            "every object dropped exactly once"
        );
        assert_eq!((vm.len(), km.len(), set.len()), (0, 0, 0));
        assert_eq!(n(&keys), 0, "every key and notice clone dropped");
        assert_eq!(n(&values), 0, "every key-map value dropped");
    }
}
