//! Reference counting and weak-handle semantics, for both flavors (`mod unsync`:
//! `pyheap::unsync::{Gc, Weak}`; `mod shared`: `pyheap::{Gc, Weak}`; see `common/flavor.rs`).
//! Flavor-specific tests (automatic collections while a `get_mut` borrow lives: on the
//! allocating thread for unsync, on other threads for shared) are at the end.

#[macro_use]
#[path = "common/flavor.rs"]
mod flavor;

use pyheap::Trace;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

both_flavors! {

/// Counts its drops in a shared counter.
#[derive(Trace)]
struct Probe {
    #[trace(skip)]
    drops: Arc<AtomicUsize>,
    next: Edge<Option<Gc<Probe>>>,
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.drops.fetch_add(1, SeqCst);
    }
}

fn probe(d: &Arc<AtomicUsize>) -> Gc<Probe> {
    Gc::new(Probe {
        drops: d.clone(),
        next: Edge::new(None),
    })
}

#[test]
fn counts_follow_clones_and_drops() {
    let _s = setup();
    let d = Arc::new(AtomicUsize::new(0));
    let a = probe(&d);
    assert_eq!(Gc::strong_count(&a), 1);
    assert_eq!(Gc::weak_count(&a), 0);
    let b = a.clone();
    assert_eq!(Gc::strong_count(&a), 2);
    let w = Gc::downgrade(&a);
    assert_eq!(Gc::weak_count(&a), 1);
    assert_eq!(w.strong_count(), 2);
    assert_eq!(w.weak_count(), 1);
    drop(b);
    assert_eq!(d.load(SeqCst), 0);
    drop(a);
    assert_eq!(d.load(SeqCst), 1, "dropped the moment the last strong handle went");
    assert!(w.upgrade().is_none());
    assert_eq!(w.strong_count(), 0);
    assert_eq!(w.weak_count(), 0);
}

#[test]
fn untracked_values_drop_deterministically() {
    let _s = setup();
    let s = Gc::new(String::from("hello"));
    assert!(!Gc::is_tracked(&s));
    let w = Gc::downgrade(&s);
    assert_eq!(&*w.upgrade().unwrap(), "hello");
    drop(s);
    assert!(w.upgrade().is_none());
}

#[test]
fn weak_new_and_default_never_upgrade() {
    let _s = setup();
    let w: Weak<Probe> = Weak::new();
    assert!(w.upgrade().is_none());
    assert_eq!(w.strong_count(), 0);
    assert_eq!(w.weak_count(), 0);
    let d: Weak<u32> = Weak::default();
    assert!(d.upgrade().is_none());
    assert!(Weak::ptr_eq(&Weak::<u32>::new(), &d));
    assert_eq!(format!("{:?}", d), "(Weak)");
}

#[test]
fn weak_outliving_value_keeps_only_the_header() {
    let _s = setup();
    let d = Arc::new(AtomicUsize::new(0));
    let a = probe(&d);
    let w1 = Gc::downgrade(&a);
    let w2 = w1.clone();
    drop(a);
    assert_eq!(d.load(SeqCst), 1);
    assert!(w1.upgrade().is_none() && w2.upgrade().is_none());
    drop(w1);
    drop(w2);
}

#[test]
fn try_unwrap_and_get_mut() {
    let _s = setup();
    let d = Arc::new(AtomicUsize::new(0));
    let a = probe(&d);
    let b = a.clone();
    let Err(a) = Gc::try_unwrap(a) else {
        panic!("two handles")
    };
    drop(b);
    let w = Gc::downgrade(&a);
    let v = Gc::try_unwrap(a).ok().expect("only handle");
    assert!(w.upgrade().is_none(), "a moved-out value does not upgrade");
    assert_eq!(d.load(SeqCst), 0);
    drop(v);
    assert_eq!(d.load(SeqCst), 1);

    let mut x = Gc::new(vec![1u32]);
    Gc::get_mut(&mut x).unwrap().push(2);
    let w = Gc::downgrade(&x);
    assert!(Gc::get_mut(&mut x).is_none(), "a Weak exists");
    drop(w);
    let y = x.clone();
    assert!(Gc::get_mut(&mut x).is_none());
    drop(y);
    assert_eq!(*Gc::get_mut(&mut x).unwrap(), vec![1, 2]);
}

#[test]
fn try_unwrap_of_a_tracked_value_untracks_it() {
    let _s = setup();
    let d = Arc::new(AtomicUsize::new(0));
    let a = probe(&d);
    assert!(Gc::is_tracked(&a));
    let p = Gc::try_unwrap(a).ok().expect("only handle");
    // The collector must not look at the moved-out object any more.
    assert_eq!(collect(), 0);
    assert_eq!(d.load(SeqCst), 0);
    drop(p);
    assert_eq!(d.load(SeqCst), 1);
}

#[test]
fn new_cyclic_sees_no_value_yet_and_links_itself() {
    let _s = setup();
    #[derive(Trace)]
    struct Me {
        me: Weak<Me>,
        seen: bool,
    }
    let g = Gc::new_cyclic(|w: &Weak<Me>| Me {
        me: w.clone(),
        seen: w.upgrade().is_some(),
    });
    assert!(!g.seen);
    assert!(Gc::ptr_eq(&g.me.upgrade().unwrap(), &g));
    assert_eq!(Gc::weak_count(&g), 1);
    let w = g.me.clone();
    drop(g);
    assert!(w.upgrade().is_none());
}

#[test]
fn new_cyclic_panic_releases_the_allocation() {
    let _s = setup();
    let escaped: std::cell::RefCell<Option<Weak<Vec<Gc<u8>>>>> = std::cell::RefCell::new(None);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Gc::<Vec<Gc<u8>>>::new_cyclic(|w| {
            *escaped.borrow_mut() = Some(w.clone());
            panic!("constructor failed")
        })
    }));
    assert!(r.is_err());
    let w = escaped.borrow_mut().take().unwrap();
    assert!(w.upgrade().is_none());
    drop(w);
}

#[test]
fn traits_delegate_to_the_value() {
    let _s = setup();
    let a = Gc::new(3u32);
    let b = Gc::new(3u32);
    let c: Gc<u32> = 4.into();
    assert_eq!(a, b);
    assert!(!Gc::ptr_eq(&a, &b));
    assert!(a < c);
    assert_eq!(a.cmp(&c), std::cmp::Ordering::Less);
    let h = |x: &dyn Fn(&mut DefaultHasher)| {
        let mut s = DefaultHasher::new();
        x(&mut s);
        s.finish()
    };
    assert_eq!(h(&|s| a.hash(s)), h(&|s| 3u32.hash(s)));
    assert_eq!(format!("{a:?} {a}"), "3 3");
    assert!(format!("{a:p}").starts_with("0x"));
    let r: &u32 = std::borrow::Borrow::borrow(&a);
    assert_eq!(*r, 3);
    assert_eq!(*a.as_ref(), 3);
    assert_eq!(*Gc::<u32>::default(), 0);
    // SAFETY: `a` is a live handle.
    assert_eq!(unsafe { *Gc::as_ptr(&a) }, 3);
    assert_eq!(Gc::try_deref(&a), Some(&3));
}

#[test]
fn drop_of_a_million_node_chain_does_not_overflow_the_stack() {
    let _s = setup();
    #[derive(Trace)]
    struct Link(Option<Gc<Link>>);
    let mut head = Gc::new(Link(None));
    for _ in 0..1_000_000 {
        head = Gc::new(Link(Some(head)));
    }
    let w = Gc::downgrade(&head);
    drop(head);
    assert!(w.upgrade().is_none());
}

#[test]
fn drop_of_a_million_node_chain_with_finalizers() {
    let _s = setup();
    static FIN: AtomicUsize = AtomicUsize::new(0);
    #[derive(Trace)]
    struct Link(Option<Gc<Link>>);
    impl pyheap::Finalize for Link {
        fn finalize(&self) {
            FIN.fetch_add(1, SeqCst);
        }
    }
    FIN.store(0, SeqCst);
    let mut head = Gc::new_finalized(Link(None));
    for _ in 0..1_000_000 {
        head = Gc::new_finalized(Link(Some(head)));
    }
    drop(head);
    assert_eq!(FIN.load(SeqCst), 1_000_001);
}

/// The natural way to build with `get_mut`: fill a fresh node through `&mut`, then move its
/// handle into another node, never using it through `&` again. The cycle that closes is
/// still found by the next collection (which sees the handle inside a traced value).
#[test]
fn cycle_through_a_handle_moved_after_get_mut_is_collected() {
    #[derive(pyheap::Trace)]
    struct N {
        edges: Edge<Vec<Gc<N>>>,
        #[trace(skip)]
        drops: Arc<AtomicUsize>,
    }
    impl Drop for N {
        fn drop(&mut self) {
            self.drops.fetch_add(1, SeqCst);
        }
    }
    let _s = setup();
    let drops = Arc::new(AtomicUsize::new(0));
    let n = |d: &Arc<AtomicUsize>| {
        Gc::new(N {
            edges: Edge::new(Vec::new()),
            drops: d.clone(),
        })
    };
    let x = n(&drops);
    let mut b = n(&drops);
    Gc::get_mut(&mut b).unwrap().edges.get_mut().push(x.clone());
    x.edges.lock().push(b); // moved: no shared use of b's handle
    drop(x);
    assert_eq!(drops.load(SeqCst), 0);
    assert_eq!(collect(), 2);
    assert_eq!(drops.load(SeqCst), 2);
}

/// An object `get_mut` took out of the generations and that nothing shared-used since is
/// still freed by counting when its handle goes, and its garbage neighbours by the collector.
#[test]
fn object_dropped_while_out_of_the_generations_by_get_mut() {
    #[derive(pyheap::Trace)]
    struct N {
        edges: Edge<Vec<Gc<N>>>,
        #[trace(skip)]
        drops: Arc<AtomicUsize>,
    }
    impl Drop for N {
        fn drop(&mut self) {
            self.drops.fetch_add(1, SeqCst);
        }
    }
    let _s = setup();
    let drops = Arc::new(AtomicUsize::new(0));
    let mut a = Gc::new(N {
        edges: Edge::new(Vec::new()),
        drops: drops.clone(),
    });
    let b = Gc::new(N {
        edges: Edge::new(Vec::new()),
        drops: drops.clone(),
    });
    b.edges.lock().push(b.clone());
    Gc::get_mut(&mut a).unwrap().edges.get_mut().push(b);
    assert_eq!(collect(), 0, "b is held by a, which is held by us");
    drop(a);
    assert_eq!(drops.load(SeqCst), 1, "a dies by counting");
    assert_eq!(collect(), 1, "b's self-cycle is garbage now");
    assert_eq!(drops.load(SeqCst), 2);
}

}

/// Flavor-specific: the unsync flavor collects on the allocating thread.
mod unsync_only {
    use pyheap::unsync::Gc;
    use std::cell::RefCell;

    /// A `&mut` from `get_mut` held across automatic collections: the collector must not
    /// read the value meanwhile (Miri checks the aliasing), and the object is tracked again,
    /// its cycles collectable, from the next shared use of its handle.
    #[test]
    fn get_mut_borrow_held_across_collections() {
        #[derive(pyheap::Trace)]
        struct C {
            next: RefCell<Option<Gc<C>>>,
            n: Vec<Gc<u8>>,
        }
        fn c() -> C {
            C {
                next: RefCell::new(None),
                n: Vec::new(),
            }
        }
        let _s = crate::flavor::unsync::setup();
        pyheap::unsync::gc::enable();
        pyheap::unsync::gc::set_threshold(1, 10, 10);
        let runs = pyheap::unsync::gc::stats()[0].collections;
        let mut a = Gc::new(c());
        let m = Gc::get_mut(&mut a).unwrap();
        m.n.push(Gc::new(1));
        // Tracked allocations past the threshold: automatic collections.
        let keep: Vec<Gc<C>> = (0..4).map(|_| Gc::new(c())).collect();
        m.n.push(Gc::new(2));
        *m.next.get_mut() = None;
        assert!(
            pyheap::unsync::gc::stats()[0].collections > runs,
            "collections ran meanwhile"
        );
        assert_eq!(a.n.len(), 2);
        assert!(Gc::is_tracked(&a));
        // Back in a generation: a cycle through it is found.
        *a.next.borrow_mut() = Some(a.clone());
        let w = Gc::downgrade(&a);
        drop((a, keep));
        pyheap::unsync::gc::disable();
        assert_eq!(pyheap::collect(), 1);
        assert!(w.upgrade().is_none());
        pyheap::unsync::gc::set_threshold(700, 10, 10);
    }
}

/// Flavor-specific: the shared flavor collects on other threads (the background collector
/// or any thread calling `pyheap::collect()`), while this one holds `get_mut`'s `&mut`.
mod shared_only {
    use pyheap::Gc;
    use std::sync::Mutex;

    #[test]
    fn get_mut_borrow_held_while_other_threads_collect() {
        #[derive(pyheap::Trace)]
        struct C {
            next: Mutex<Option<Gc<C>>>,
            n: Vec<Gc<u8>>,
            k: Vec<Gc<C>>,
        }
        fn c() -> C {
            C {
                next: Mutex::new(None),
                n: Vec::new(),
                k: Vec::new(),
            }
        }
        let _s = crate::flavor::shared::setup();
        let runs = pyheap::gc::stats()[2].collections;
        let mut a = Gc::new(c());
        let m = Gc::get_mut(&mut a).unwrap();
        m.n.push(Gc::new(1));
        for _ in 0..3 {
            // Collections on another thread while the `&mut` lives: they must not read the
            // value, nor free what it holds (a garbage-looking self-cycle moved into it).
            let g = Gc::new(c());
            *g.next.lock().unwrap() = Some(g.clone());
            m.k.push(g);
            std::thread::spawn(pyheap::collect).join().unwrap();
            m.n.push(Gc::new(2));
        }
        assert!(pyheap::gc::stats()[2].collections >= runs + 3);
        for g in &m.k {
            assert!(Gc::try_deref(g).is_some(), "held through the &mut: alive");
        }
        assert_eq!(a.n.len(), 4);
        assert!(Gc::is_tracked(&a));
        *a.next.lock().unwrap() = Some(a.clone());
        let w = Gc::downgrade(&a);
        drop(a);
        assert_eq!(pyheap::collect(), 4, "a's self-cycle and the three it held");
        assert!(w.upgrade().is_none());
    }
}
