//! `Trace` for other crates' types, behind pyheap's cargo features (issue 14 item 4):
//! `cargo test --features hashbrown,indexmap,smallvec,parking_lot --test gc_trace_features`.
//! As in `gc_trace_impls.rs`, each is traced in a two-node cycle that one collection frees
//! exactly (both flavors: all these types are `Send + Sync`); `parking_lot`'s locks are also
//! checked to keep what is behind them while they are held, as std's do.
#![cfg(any(
    feature = "hashbrown",
    feature = "indexmap",
    feature = "smallvec",
    feature = "parking_lot"
))]
// The `MAY_CONTAIN_GC` checks are assertions on constants.
#![allow(clippy::assertions_on_constants)]

#[macro_use]
#[path = "common/flavor.rs"]
mod flavor;

use pyheap::Trace;

/// As in `gc_trace_impls.rs`: a test `$name` of a two-node cycle through `$field` (naming
/// `N`), each edge made by `$wrap` from a handle `$g`, freed exactly by one collection.
macro_rules! cycle_through {
    ($($(#[$attr:meta])* $name:ident: $field:ty = |$g:ident| $wrap:expr;)*) => {$(
        $(#[$attr])*
        #[test]
        fn $name() {
            let _s = setup();
            #[derive(Trace)]
            struct N {
                edge: Edge<Option<$field>>,
            }
            let a = Gc::new(N { edge: Edge::new(None) });
            let b = Gc::new(N { edge: Edge::new(None) });
            *a.edge.lock() = Some({
                let $g = b.clone();
                $wrap
            });
            *b.edge.lock() = Some({
                let $g = a.clone();
                $wrap
            });
            let (wa, wb) = (Gc::downgrade(&a), Gc::downgrade(&b));
            drop((a, b));
            assert!(wa.upgrade().is_some(), "counting alone freed a cycle");
            assert_eq!(collect(), 2, "the cycle through {} is not freed exactly", stringify!($field));
            assert!(wa.upgrade().is_none() && wb.upgrade().is_none());
        }
    )*};
}

/// A set element that holds a handle and hashes by its number only.
#[cfg(any(feature = "hashbrown", feature = "indexmap"))]
#[derive(Trace)]
struct Keyed<G: Trace + 'static> {
    #[trace(skip)]
    id: u32,
    handle: G,
}
#[cfg(any(feature = "hashbrown", feature = "indexmap"))]
impl<G: Trace> PartialEq for Keyed<G> {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}
#[cfg(any(feature = "hashbrown", feature = "indexmap"))]
impl<G: Trace> Eq for Keyed<G> {}
#[cfg(any(feature = "hashbrown", feature = "indexmap"))]
impl<G: Trace> std::hash::Hash for Keyed<G> {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.id.hash(h)
    }
}

both_flavors! {

#[cfg(feature = "hashbrown")]
cycle_through! {
    hashbrown_map: hashbrown::HashMap<u32, Gc<N>> = |g| [(1, g)].into_iter().collect();
    hashbrown_map_in_pool_alloc:
        hashbrown::HashMap<u32, Gc<N>, hashbrown::DefaultHashBuilder, pyheap::PoolAlloc> = |g| {
            let mut m = hashbrown::HashMap::with_hasher_in(Default::default(), pyheap::PoolAlloc);
            m.insert(7, g);
            m
        };
    hashbrown_set: hashbrown::HashSet<Keyed<Gc<N>>> =
        |g| [Keyed { id: 1, handle: g.clone() }, Keyed { id: 2, handle: g }].into_iter().collect();
    hashbrown_table: hashbrown::HashTable<Gc<N>> = |g| {
        let mut t = hashbrown::HashTable::new();
        t.insert_unique(1, g, |_| 1);
        t
    };
}

#[cfg(feature = "indexmap")]
cycle_through! {
    indexmap_map: indexmap::IndexMap<u32, Gc<N>, std::hash::RandomState> = |g| {
        let mut m = indexmap::IndexMap::with_hasher(Default::default());
        m.insert(1, g.clone());
        m.insert(2, g);
        m
    };
    indexmap_set: indexmap::IndexSet<Keyed<Gc<N>>, std::hash::RandomState> = |g| {
        let mut s = indexmap::IndexSet::with_hasher(Default::default());
        s.insert(Keyed { id: 1, handle: g });
        s
    };
}

#[cfg(feature = "smallvec")]
cycle_through! {
    smallvec_inline: smallvec::SmallVec<[Gc<N>; 2]> = |g| smallvec::smallvec![g];
    smallvec_spilled: smallvec::SmallVec<[Gc<N>; 2]> =
        |g| smallvec::smallvec![g.clone(), g.clone(), g];
}

#[cfg(feature = "parking_lot")]
cycle_through! {
    parking_lot_mutex: parking_lot::Mutex<Gc<N>> = |g| parking_lot::Mutex::new(g);
    parking_lot_fair_mutex: parking_lot::FairMutex<Gc<N>> = |g| parking_lot::FairMutex::new(g);
    parking_lot_rwlock: parking_lot::RwLock<Gc<N>> = |g| parking_lot::RwLock::new(g);
}

#[cfg(feature = "hashbrown")]
#[test]
fn hashbrown_constants() {
    assert!(!<hashbrown::HashMap<u32, String> as Trace>::MAY_CONTAIN_GC);
    assert!(<hashbrown::HashMap<u32, Gc<u8>> as Trace>::MAY_CONTAIN_GC);
    assert!(<hashbrown::HashMap<Gc<u8>, u32> as Trace>::MAY_CONTAIN_GC);
    assert!(!<hashbrown::HashTable<u64> as Trace>::MAY_CONTAIN_GC);
}

#[cfg(feature = "smallvec")]
#[test]
fn smallvec_constants() {
    assert!(!<smallvec::SmallVec<[u8; 4]> as Trace>::MAY_CONTAIN_GC);
    assert!(<smallvec::SmallVec<[Gc<u8>; 4]> as Trace>::MAY_CONTAIN_GC);
}

/// A `parking_lot` lock held by the collecting thread is traced without blocking (a
/// `lock()` there would deadlock this test) and reports nothing; once released, the cycle
/// through it is freed.
#[cfg(feature = "parking_lot")]
#[test]
fn parking_lot_locks_held_by_the_collecting_thread() {
    let _s = setup();
    #[derive(Trace)]
    struct N {
        m: parking_lot::Mutex<Option<Gc<N>>>,
        r: parking_lot::RwLock<Option<Gc<N>>>,
    }
    let a = Gc::new(N { m: parking_lot::Mutex::new(None), r: parking_lot::RwLock::new(None) });
    let b = Gc::new(N { m: parking_lot::Mutex::new(None), r: parking_lot::RwLock::new(None) });
    *a.m.lock() = Some(b.clone());
    *b.r.write() = Some(a.clone());
    let (wa, wb) = (Gc::downgrade(&a), Gc::downgrade(&b));
    {
        let _m = a.m.lock();
        let _w = b.r.write();
        assert_eq!(collect(), 0);
    }
    drop((a, b));
    assert_eq!(collect(), 2);
    assert!(wa.upgrade().is_none() && wb.upgrade().is_none());
}

} // both_flavors!

/// The shared flavor: a `parking_lot` lock held by another thread while a collection scans
/// does not block the collection (its content counts as reachable), and the cycle through it
/// is freed once it is released.
#[cfg(feature = "parking_lot")]
mod shared_only {
    use super::flavor::shared::*;
    use pyheap::Trace;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn parking_lot_lock_held_by_another_thread() {
        let _s = setup();
        #[derive(Trace)]
        struct N {
            m: parking_lot::Mutex<Option<Gc<N>>>,
        }
        let a = Gc::new(N {
            m: parking_lot::Mutex::new(None),
        });
        *a.m.lock() = Some(a.clone());
        let w = Gc::downgrade(&a);
        let (locked_tx, locked_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let _g = a.m.lock();
            locked_tx.send(()).unwrap();
            release_rx.recv().unwrap();
            // `a` (this thread's handle) goes after the guard.
        });
        locked_rx.recv().unwrap();
        let (done_tx, done_rx) = mpsc::channel();
        std::thread::spawn(move || done_tx.send(collect()).unwrap());
        let freed = done_rx
            .recv_timeout(Duration::from_secs(120))
            .expect("a collection waited for a parking_lot lock");
        assert_eq!(freed, 0);
        release_tx.send(()).unwrap();
        holder.join().unwrap();
        assert!(w.upgrade().is_some(), "counting alone freed a cycle");
        assert_eq!(collect(), 1);
        assert!(w.upgrade().is_none());
    }
}
