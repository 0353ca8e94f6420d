//! `?Sized` handles: `Gc<str>`, `Gc<[T]>` and their `Weak`s, as std's `Rc<str>`/`Rc<[T]>`.
//! Slices of tracked elements are tracked and traced; slices of untracked ones are not.
//! Clean under `MIRIFLAGS=-Zmiri-strict-provenance cargo +nightly miri test --test gc_unsized`
//! (Stacked and Tree Borrows).

use pyheap::unsync::{Gc, Weak};
use pyheap::Trace;
use std::cell::{Cell, RefCell};
use std::collections::hash_map::DefaultHasher;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::rc::Rc;

thread_local!(static DROPS: Cell<usize> = const { Cell::new(0) });

fn drops() -> usize {
    DROPS.with(|d| d.get())
}

/// A node whose edges are a replaceable `Gc<[Gc<Node>]>`.
#[derive(Trace, Default)]
struct Node {
    edges: RefCell<Option<Gc<[Gc<Node>]>>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        DROPS.with(|d| d.set(d.get() + 1));
    }
}

fn node() -> Gc<Node> {
    Gc::new(Node::default())
}

fn setup() -> usize {
    pyheap::unsync::gc::disable();
    pyheap::collect();
    drops()
}

/// An untracked element type that counts its drops, for leak checks.
struct Probe(Rc<Cell<usize>>);

// SAFETY: owns no `Gc`.
unsafe impl Trace for Probe {
    fn trace(&self, _: &mut pyheap::Tracer) {}
    const MAY_CONTAIN_GC: bool = false;
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

impl Clone for Probe {
    fn clone(&self) -> Self {
        Probe(self.0.clone())
    }
}

fn hash_of<T: Hash + ?Sized>(v: &T) -> u64 {
    let mut h = DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

#[test]
fn str_from_every_source_and_its_traits() {
    let a: Gc<str> = Gc::from("hello");
    let b: Gc<str> = Gc::from(String::from("hello"));
    let c: Gc<str> = Gc::from(Box::<str>::from("world"));
    let e: Gc<str> = Gc::default();
    assert_eq!(&*a, "hello");
    assert_eq!(&*e, "");
    assert!(!Gc::is_tracked(&a));
    assert_eq!(a, b);
    assert!(!Gc::ptr_eq(&a, &b));
    assert!(a < c);
    assert_eq!(a.cmp(&c), std::cmp::Ordering::Less);
    assert_eq!(hash_of(&a), hash_of("hello"));
    assert_eq!(format!("{a:?}"), "\"hello\"");
    assert_eq!(format!("{a}"), "hello");
    assert_eq!(format!("{:p}", a), format!("{:p}", Gc::as_ptr(&a)));
    assert_eq!(Gc::try_deref(&a), Some("hello"));
    let s: &str = a.as_ref();
    assert_eq!(s.len(), 5);
    // Borrow<str> lets a set of Gc<str> be queried with &str, as Python's interned strings.
    let set: HashSet<Gc<str>> = [a.clone(), c.clone()].into_iter().collect();
    assert!(set.contains("world"));
    // SAFETY: `as_ptr` points at the live value.
    assert_eq!(unsafe { &*Gc::as_ptr(&c) }, "world");
}

#[test]
fn str_counts_weak_and_clone() {
    let a: Gc<str> = Gc::from("abc");
    let b = a.clone();
    assert_eq!(Gc::strong_count(&a), 2);
    assert!(Gc::ptr_eq(&a, &b));
    let w: Weak<str> = Gc::downgrade(&a);
    let w2 = w.clone();
    assert_eq!(Gc::weak_count(&a), 2);
    assert_eq!(w.strong_count(), 2);
    assert_eq!(w.weak_count(), 2);
    assert!(w.ptr_eq(&w2));
    assert_eq!(format!("{w:?}"), "(Weak)");
    assert_eq!(&*w.upgrade().unwrap(), "abc");
    drop(a);
    drop(b);
    assert!(w.upgrade().is_none());
    assert_eq!(w.strong_count(), 0);
    assert_eq!(w.weak_count(), 0);
    drop(w2);
    drop(w); // frees the header last
}

#[test]
fn str_get_mut() {
    let mut a: Gc<str> = Gc::from("abc");
    Gc::get_mut(&mut a).unwrap().make_ascii_uppercase();
    assert_eq!(&*a, "ABC");
    let _w = Gc::downgrade(&a);
    assert!(Gc::get_mut(&mut a).is_none());
}

#[test]
fn untracked_slices_from_every_source() {
    let a: Gc<[u32]> = Gc::from(vec![1, 2, 3]);
    let b: Gc<[u32]> = Gc::from(&[1, 2, 3][..]);
    let c: Gc<[u32]> = (1..=3).collect();
    let d: Gc<[u32]> = Gc::from(vec![1, 2, 3].into_boxed_slice());
    let e: Gc<[u32]> = Gc::default();
    let z: Gc<[()]> = Gc::from(vec![(); 1000]);
    assert!(!Gc::is_tracked(&a));
    assert_eq!(a, b);
    assert_eq!(b, c);
    assert_eq!(c, d);
    assert!(e.is_empty());
    assert_eq!(z.len(), 1000);
    assert!(e < a);
    assert_eq!(hash_of(&a), hash_of(&[1u32, 2, 3][..]));
    assert_eq!(format!("{a:?}"), "[1, 2, 3]");
    assert_eq!(Gc::try_deref(&a), Some(&[1, 2, 3][..]));
    let w = Gc::downgrade(&a);
    assert_eq!(w.upgrade().as_deref(), Some(&[1, 2, 3][..]));
    // Over-aligned elements: the layout follows the element's alignment.
    #[derive(Clone, Copy, PartialEq, Debug)]
    #[repr(align(64))]
    struct Big(u8);
    // SAFETY: owns no `Gc`.
    unsafe impl Trace for Big {
        fn trace(&self, _: &mut pyheap::Tracer) {}
        const MAY_CONTAIN_GC: bool = false;
    }
    let big: Gc<[Big]> = Gc::from(vec![Big(1), Big(2)]);
    assert_eq!(Gc::as_ptr(&big) as *const Big as usize % 64, 0);
    assert_eq!(big[1], Big(2));
}

#[test]
fn slice_elements_drop_exactly_once_without_leaks() {
    let count = Rc::new(Cell::new(0));
    let probes: Vec<Probe> = (0..10).map(|_| Probe(count.clone())).collect();
    let a: Gc<[Probe]> = Gc::from(probes);
    assert_eq!(count.get(), 0, "moved, not dropped");
    let b: Gc<[Probe]> = Gc::from(&a[..5]);
    let w = Gc::downgrade(&a);
    drop(a);
    assert_eq!(count.get(), 10);
    assert!(w.upgrade().is_none());
    drop(w);
    drop(b);
    assert_eq!(count.get(), 15);
    // from_iter, and a panicking iterator: already produced elements are dropped, not leaked.
    let c: Gc<[Probe]> = (0..3).map(|_| Probe(count.clone())).collect();
    drop(c);
    assert_eq!(count.get(), 18);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _: Gc<[Probe]> = (0..3)
            .map(|i| {
                if i == 2 {
                    panic!("boom");
                }
                Probe(count.clone())
            })
            .collect();
    }));
    assert!(r.is_err());
    assert_eq!(count.get(), 20);
}

#[test]
fn tracked_slice_is_tracked_and_its_elements_are_traced() {
    let d0 = setup();
    let x = node();
    let y = node();
    let s: Gc<[Gc<Node>]> = Gc::from(vec![x.clone(), y.clone()]);
    assert!(Gc::is_tracked(&s));
    assert!(Gc::ptr_eq(&s[0], &x));
    // A reachable slice keeps its elements: a collection frees nothing.
    drop(x);
    drop(y);
    assert_eq!(pyheap::collect(), 0);
    assert_eq!(drops(), d0);
    let w = Gc::downgrade(&s[1]);
    drop(s);
    assert_eq!(drops(), d0 + 2, "acyclic: freed by refcounting");
    assert!(w.upgrade().is_none());
}

#[test]
fn cycle_through_a_slice_is_collected() {
    let d0 = setup();
    let count0 = pyheap::unsync::gc::count().0;
    // a -> [b, c], b -> [a], c -> [] : the cycle a -> slice -> b -> slice -> a.
    let a = node();
    let b = node();
    let c = node();
    let wa = Gc::downgrade(&a);
    let sa: Gc<[Gc<Node>]> = Gc::from(&[b.clone(), c.clone()][..]);
    let wsa = Gc::downgrade(&sa);
    *a.edges.borrow_mut() = Some(sa);
    *b.edges.borrow_mut() = Some([a.clone()].into_iter().collect());
    assert!(
        pyheap::unsync::gc::count().0 >= count0 + 5,
        "slices count as tracked allocations"
    );
    drop((a, b, c));
    assert_eq!(drops(), d0, "a cycle survives refcounting");
    assert_eq!(pyheap::collect(), 5, "three nodes and the two slices");
    assert_eq!(drops(), d0 + 3);
    assert!(wa.upgrade().is_none());
    assert!(wsa.upgrade().is_none());
    assert_eq!(wsa.strong_count(), 0);
    assert_eq!(pyheap::collect(), 0);
}

#[test]
fn slice_self_cycle_through_a_cell() {
    #[derive(Trace)]
    struct Holder {
        me: RefCell<Option<Gc<[Holder]>>>,
    }
    setup();
    let s: Gc<[Holder]> = Gc::from(vec![
        Holder {
            me: RefCell::new(None),
        },
        Holder {
            me: RefCell::new(None),
        },
    ]);
    *s[1].me.borrow_mut() = Some(s.clone());
    let w = Gc::downgrade(&s);
    drop(s);
    assert_eq!(w.strong_count(), 1);
    assert_eq!(pyheap::collect(), 1);
    assert!(w.upgrade().is_none());
}

#[test]
fn big_ring_of_slices_is_collected() {
    let d0 = setup();
    let n = if cfg!(miri) { 50 } else { 20_000 };
    let first = node();
    let mut prev = first.clone();
    for _ in 1..n {
        let next = node();
        *prev.edges.borrow_mut() = Some(Gc::from(vec![next.clone()]));
        prev = next;
    }
    *prev.edges.borrow_mut() = Some(Gc::from(vec![first.clone()]));
    drop((first, prev));
    assert_eq!(pyheap::collect(), 2 * n);
    assert_eq!(drops(), d0 + n);
}

#[test]
fn slice_drop_can_touch_dead_siblings_safely() {
    // A garbage cycle through a slice whose elements' `Drop` looks at each other.
    #[derive(Trace)]
    struct Peer {
        peers: RefCell<Option<Gc<[Gc<Peer>]>>>,
        #[trace(skip)]
        saw: Rc<Cell<(usize, usize)>>,
    }
    impl Drop for Peer {
        fn drop(&mut self) {
            if let Some(peers) = self.peers.borrow().as_ref() {
                let (mut live, mut dead) = (0, 0);
                // The slice is a member of the garbage set too: it may be dead already.
                if Gc::try_deref(peers).is_none() {
                    dead += 1;
                }
                for p in Gc::try_deref(peers).into_iter().flatten() {
                    match Gc::try_deref(p) {
                        Some(_) => live += 1,
                        None => dead += 1,
                    }
                }
                let (l, d) = self.saw.get();
                self.saw.set((l + live, d + dead));
            }
        }
    }
    setup();
    let saw = Rc::new(Cell::new((0, 0)));
    let a = Gc::new(Peer {
        peers: RefCell::new(None),
        saw: saw.clone(),
    });
    let b = Gc::new(Peer {
        peers: RefCell::new(None),
        saw: saw.clone(),
    });
    let both: Gc<[Gc<Peer>]> = Gc::from(vec![a.clone(), b.clone()]);
    *a.peers.borrow_mut() = Some(both.clone());
    *b.peers.borrow_mut() = Some(both);
    drop((a, b));
    assert_eq!(pyheap::collect(), 3);
    let (live, dead) = saw.get();
    assert_eq!(live, 0, "every member of the garbage set reads as dead");
    assert!(dead > 0, "the drops did look at their peers");
}

#[test]
fn over_aligned_tracked_slice_in_a_cycle() {
    // Elements aligned above the links: the box (and the length before it) move to offset 64.
    #[derive(Trace)]
    #[repr(align(64))]
    struct A64 {
        back: RefCell<Option<Gc<[A64]>>>,
    }
    setup();
    let s: Gc<[A64]> = (0..3)
        .map(|_| A64 {
            back: RefCell::new(None),
        })
        .collect();
    assert!(Gc::is_tracked(&s));
    assert_eq!(Gc::as_ptr(&s) as *const A64 as usize % 64, 0);
    *s[2].back.borrow_mut() = Some(s.clone());
    let w = Gc::downgrade(&s);
    drop(s);
    assert_eq!(pyheap::collect(), 1);
    assert!(w.upgrade().is_none());
    drop(w); // frees the (over-aligned) header with the layout it was allocated with
}

#[test]
fn from_slice_with_a_panicking_clone_drops_the_clones_made() {
    struct Flaky(Rc<Cell<usize>>, bool);
    // SAFETY: owns no `Gc`.
    unsafe impl Trace for Flaky {
        fn trace(&self, _: &mut pyheap::Tracer) {}
        const MAY_CONTAIN_GC: bool = false;
    }
    impl Clone for Flaky {
        fn clone(&self) -> Self {
            assert!(!self.1, "clone fails");
            Flaky(self.0.clone(), false)
        }
    }
    impl Drop for Flaky {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    let count = Rc::new(Cell::new(0));
    let src = vec![
        Flaky(count.clone(), false),
        Flaky(count.clone(), false),
        Flaky(count.clone(), true),
    ];
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Gc::<[Flaky]>::from(&src[..])
    }));
    assert!(r.is_err());
    assert_eq!(count.get(), 2, "the two clones made were dropped");
    let ok: Gc<[Flaky]> = Gc::from(&src[..2]);
    drop(ok);
    assert_eq!(count.get(), 4);
    drop(src);
    assert_eq!(count.get(), 7);
}
