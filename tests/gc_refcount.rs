//! Reference counting and weak-handle semantics of `pyheap::unsync::{Gc, Weak}`.

use pyheap::unsync::{Gc, Weak};
use pyheap::Trace;
use std::cell::{Cell, RefCell};
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::rc::Rc;

/// Counts its drops in a shared counter.
#[derive(Trace)]
struct Probe {
    #[trace(skip)]
    drops: Rc<Cell<usize>>,
    next: RefCell<Option<Gc<Probe>>>,
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.drops.set(self.drops.get() + 1);
    }
}

fn probe(d: &Rc<Cell<usize>>) -> Gc<Probe> {
    Gc::new(Probe {
        drops: d.clone(),
        next: RefCell::new(None),
    })
}

#[test]
fn counts_follow_clones_and_drops() {
    let d = Rc::new(Cell::new(0));
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
    assert_eq!(d.get(), 0);
    drop(a);
    assert_eq!(d.get(), 1, "dropped the moment the last strong handle went");
    assert!(w.upgrade().is_none());
    assert_eq!(w.strong_count(), 0);
    assert_eq!(w.weak_count(), 0);
}

#[test]
fn untracked_values_drop_deterministically() {
    let s = Gc::new(String::from("hello"));
    assert!(!Gc::is_tracked(&s));
    let w = Gc::downgrade(&s);
    assert_eq!(&*w.upgrade().unwrap(), "hello");
    drop(s);
    assert!(w.upgrade().is_none());
}

#[test]
fn weak_new_and_default_never_upgrade() {
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
    let d = Rc::new(Cell::new(0));
    let a = probe(&d);
    let w1 = Gc::downgrade(&a);
    let w2 = w1.clone();
    drop(a);
    assert_eq!(d.get(), 1);
    assert!(w1.upgrade().is_none() && w2.upgrade().is_none());
    drop(w1);
    drop(w2);
}

#[test]
fn try_unwrap_and_get_mut() {
    let d = Rc::new(Cell::new(0));
    let a = probe(&d);
    let b = a.clone();
    let Err(a) = Gc::try_unwrap(a) else {
        panic!("two handles")
    };
    drop(b);
    let w = Gc::downgrade(&a);
    let v = Gc::try_unwrap(a).ok().expect("only handle");
    assert!(w.upgrade().is_none(), "a moved-out value does not upgrade");
    assert_eq!(d.get(), 0);
    drop(v);
    assert_eq!(d.get(), 1);

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
fn new_cyclic_sees_no_value_yet_and_links_itself() {
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
    let escaped: RefCell<Option<Weak<Vec<Gc<u8>>>>> = RefCell::new(None);
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
    assert_eq!(unsafe { *Gc::as_ptr(&a) }, 3);
    assert_eq!(Gc::try_deref(&a), Some(&3));
}

#[test]
fn drop_of_a_million_node_chain_does_not_overflow_the_stack() {
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
    thread_local!(static FIN: Cell<usize> = const { Cell::new(0) });
    #[derive(Trace)]
    struct Link(Option<Gc<Link>>);
    impl pyheap::Finalize for Link {
        fn finalize(&self) {
            FIN.with(|f| f.set(f.get() + 1));
        }
    }
    let mut head = Gc::new_finalized(Link(None));
    for _ in 0..1_000_000 {
        head = Gc::new_finalized(Link(Some(head)));
    }
    drop(head);
    assert_eq!(FIN.with(|f| f.get()), 1_000_001);
}

/// A `&mut` from `get_mut` held across automatic collections: the collector must not read the
/// value meanwhile (Miri checks the aliasing), and the object is tracked again, its cycles
/// collectable, from the next shared use of its handle.
#[test]
fn get_mut_borrow_held_across_collections() {
    #[derive(pyheap::Trace)]
    struct C {
        next: std::cell::RefCell<Option<Gc<C>>>,
        n: Vec<Gc<u8>>,
    }
    fn c() -> C {
        C {
            next: std::cell::RefCell::new(None),
            n: Vec::new(),
        }
    }
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

/// The natural way to build with `get_mut`: fill a fresh node through `&mut`, then move its
/// handle into another node, never using it through `&` again. The cycle that closes is
/// still found by the next collection (which sees the handle inside a traced value).
#[test]
fn cycle_through_a_handle_moved_after_get_mut_is_collected() {
    #[derive(pyheap::Trace)]
    struct N {
        edges: RefCell<Vec<Gc<N>>>,
        #[trace(skip)]
        drops: Rc<Cell<usize>>,
    }
    impl Drop for N {
        fn drop(&mut self) {
            self.drops.set(self.drops.get() + 1);
        }
    }
    pyheap::unsync::gc::disable();
    pyheap::collect();
    let drops = Rc::new(Cell::new(0));
    let n = |d: &Rc<Cell<usize>>| {
        Gc::new(N {
            edges: RefCell::new(Vec::new()),
            drops: d.clone(),
        })
    };
    let x = n(&drops);
    let mut b = n(&drops);
    Gc::get_mut(&mut b).unwrap().edges.get_mut().push(x.clone());
    x.edges.borrow_mut().push(b); // moved: no shared use of b's handle
    drop(x);
    assert_eq!(drops.get(), 0);
    assert_eq!(pyheap::collect(), 2);
    assert_eq!(drops.get(), 2);
}
