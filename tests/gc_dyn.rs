//! Trait objects (`Gc<dyn Trait>`, `Weak<dyn Trait>`, `unsize!`, `downcast`), both flavors:
//! the collector reaches the concrete type's `trace`, `Drop` and layout through the object's
//! header; tracked and untracked concrete types behind the same `dyn` type; cycles through
//! trait objects; arrays unsized to slices.

#[path = "common/flavor.rs"]
mod flavor;

use pyheap::{gc_dyn, unsize, Trace};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A trait with no pyheap supertrait, declared for handles.
pub trait Shape {
    fn area(&self) -> u64;
    fn name(&self) -> String;
}
gc_dyn!(dyn Shape);

/// Drops per kind of value, per flavor module (each test holds the binary's lock).
pub static NODE_DROPS: AtomicUsize = AtomicUsize::new(0);
pub static LEAF_DROPS: AtomicUsize = AtomicUsize::new(0);

pub fn node_drops() -> usize {
    NODE_DROPS.load(Ordering::SeqCst)
}
pub fn leaf_drops() -> usize {
    LEAF_DROPS.load(Ordering::SeqCst)
}

/// An untracked concrete type (owns no `Gc`).
#[derive(Trace, Debug)]
pub struct Leaf(pub u64);

impl Shape for Leaf {
    fn area(&self) -> u64 {
        self.0
    }
    fn name(&self) -> String {
        format!("leaf {}", self.0)
    }
}

impl Drop for Leaf {
    fn drop(&mut self) {
        LEAF_DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

/// Both flavors, each with `DynShape` and `DynAny`: the flavor's `dyn` types (the shared
/// flavor's values must be `Send + Sync`).
macro_rules! two_flavors {
    ($($body:tt)*) => {
        mod unsync {
            #[allow(unused_imports)]
            use super::*;
            #[allow(unused_imports)]
            use crate::flavor::unsync::*;
            #[allow(dead_code)]
            type DynShape = dyn Shape;
            #[allow(dead_code)]
            type DynAny = dyn std::any::Any;
            $($body)*
        }
        mod shared {
            #[allow(unused_imports)]
            use super::*;
            #[allow(unused_imports)]
            use crate::flavor::shared::*;
            #[allow(dead_code)]
            type DynShape = dyn Shape + Send + Sync;
            #[allow(dead_code)]
            type DynAny = dyn std::any::Any + Send + Sync;
            $($body)*
        }
    };
}

two_flavors! {
    /// A tracked concrete type: its edges are trait objects.
    #[derive(Trace)]
    struct Node {
        id: u64,
        next: Edge<Vec<Gc<DynShape>>>,
    }

    impl Shape for Node {
        fn area(&self) -> u64 {
            self.id * 10
        }
        fn name(&self) -> String {
            format!("node {}", self.id)
        }
    }

    impl Drop for Node {
        fn drop(&mut self) {
            NODE_DROPS.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn node(id: u64) -> Gc<Node> {
        Gc::new(Node { id, next: Edge::new(Vec::new()) })
    }

    fn shape(g: &Gc<Node>) -> Gc<DynShape> {
        unsize!(g.clone() => DynShape)
    }

    /// A cycle a -> b -> a whose edges are `Gc<dyn Shape>`: counting alone keeps it, the
    /// collector frees it, through the concrete type's trace and drop.
    #[test]
    fn cycle_through_trait_objects_is_collected() {
        let _g = setup();
        let (n0, l0) = (node_drops(), leaf_drops());
        let a = node(1);
        let b = node(2);
        a.next.lock().push(shape(&b));
        b.next.lock().push(shape(&a));
        // An untracked leaf hangs off the cycle, behind the same `dyn` type.
        a.next.lock().push(unsize!(Gc::new(Leaf(7)) => DynShape));
        let wa: Weak<DynShape> = unsize!(Gc::downgrade(&a) => DynShape);
        assert_eq!(b.next.lock()[0].area(), 10);
        assert_eq!(a.next.lock()[1].name(), "leaf 7");
        assert_eq!(collect(), 0); // held by the test
        assert_eq!(node_drops(), n0);
        drop((a, b));
        assert_eq!(collect(), 2); // the leaf goes with `a`, by refcounting
        assert_eq!(node_drops() - n0, 2);
        assert_eq!(leaf_drops() - l0, 1);
        assert!(wa.upgrade().is_none());
    }

    /// Same as above, with the cycle still held: a collection keeps it, then frees it.
    #[test]
    fn a_held_cycle_of_trait_objects_survives_then_goes() {
        let _g = setup();
        let n0 = node_drops();
        let a = node(1);
        let b = node(2);
        a.next.lock().push(shape(&b));
        b.next.lock().push(shape(&a));
        let held: Gc<DynShape> = shape(&a);
        drop((a, b));
        assert_eq!(collect(), 0);
        assert_eq!(node_drops(), n0);
        assert_eq!(held.area(), 10);
        let w = unsize!(Gc::downgrade(&held) => DynShape);
        drop(held);
        assert_eq!(collect(), 2);
        assert_eq!(node_drops() - n0, 2);
        assert!(w.upgrade().is_none());
    }

    /// A tracked and an untracked concrete type behind one `dyn` type: each handle knows
    /// which its object is; each value is dropped once, by refcounting.
    #[test]
    fn tracked_and_untracked_behind_one_dyn_type() {
        let _g = setup();
        let (n0, l0) = (node_drops(), leaf_drops());
        let shapes: Vec<Gc<DynShape>> = vec![
            unsize!(node(3) => DynShape),
            unsize!(Gc::new(Leaf(4)) => DynShape),
            unsize!(node(5) => DynShape),
        ];
        assert_eq!(shapes.iter().map(|s| s.area()).sum::<u64>(), 30 + 4 + 50);
        let tracked: Vec<bool> = shapes.iter().map(Gc::is_tracked).collect();
        assert_eq!(tracked, [true, false, true]);
        let weaks: Vec<Weak<DynShape>> = shapes.iter().map(Gc::downgrade).collect();
        assert_eq!(weaks.iter().map(Weak::strong_count).collect::<Vec<_>>(), [1, 1, 1]);
        let copies = shapes.clone();
        drop(shapes);
        assert!(weaks.iter().all(|w| w.upgrade().is_some()));
        drop(copies);
        assert!(weaks.iter().all(|w| w.upgrade().is_none()));
        assert_eq!(node_drops() - n0, 2);
        assert_eq!(leaf_drops() - l0, 1);
        drop(weaks); // frees the headers (the allocator would catch a wrong layout)
        assert_eq!(collect(), 0);
    }

    /// `unsize!` of a handle whose object is inside a cycle: the cycle lives while the
    /// unsized handle does, and the unsized handle is an ordinary edge once stored.
    #[test]
    fn unsize_a_handle_inside_a_cycle() {
        let _g = setup();
        let n0 = node_drops();
        let a = node(1);
        a.next.lock().push(shape(&a)); // self-cycle through a trait object
        // Take the handle out of the cycle, unsize it again (a `dyn` to `dyn` identity),
        // put it back.
        let h = a.next.lock().pop().unwrap();
        let h: Gc<DynShape> = unsize!(h => DynShape);
        a.next.lock().push(h);
        let outside = shape(&a);
        drop(a);
        assert_eq!(collect(), 0); // `outside` keeps it
        assert_eq!(outside.name(), "node 1");
        drop(outside);
        assert_eq!(collect(), 1);
        assert_eq!(node_drops() - n0, 1);
    }

    /// `Weak<dyn Trait>`: from a downgrade of a `Gc<dyn>`, from `unsize!` of a `Weak<T>`, and
    /// from `Weak::new()` (points nowhere, keeps pointing nowhere).
    #[test]
    fn weak_trait_objects() {
        let _g = setup();
        let l0 = leaf_drops();
        let g = Gc::new(Leaf(9));
        let w1: Weak<DynShape> = unsize!(Gc::downgrade(&g) => DynShape);
        let d: Gc<DynShape> = unsize!(g.clone() => DynShape);
        let w2 = Gc::downgrade(&d);
        assert!(w1.ptr_eq(&w2));
        assert_eq!(w1.strong_count(), 2);
        assert_eq!(w1.weak_count(), 2);
        assert_eq!(w1.upgrade().unwrap().area(), 9);
        let nowhere: Weak<DynShape> = unsize!(Weak::<Leaf>::new() => DynShape);
        assert!(nowhere.upgrade().is_none());
        assert_eq!(nowhere.strong_count(), 0);
        assert!(nowhere.ptr_eq(&nowhere.clone()));
        drop(g);
        assert_eq!(leaf_drops(), l0);
        drop(d);
        assert_eq!(leaf_drops() - l0, 1);
        assert!(w1.upgrade().is_none());
        assert!(w2.upgrade().is_none());
        assert_eq!(w1.weak_count(), 0);
    }

    /// `downcast`: back to the concrete handle (tracked or not), `Err` for another type,
    /// the same object and counts either way.
    #[test]
    fn downcast_tracked_and_untracked() {
        let _g = setup();
        let n0 = node_drops();
        let a = node(6);
        let any: Gc<DynAny> = unsize!(a.clone() => DynAny);
        let any = Gc::downcast::<Leaf>(any).unwrap_err();
        let back: Gc<Node> = Gc::downcast(any).unwrap();
        assert!(Gc::ptr_eq(&back, &a));
        assert_eq!(Gc::strong_count(&a), 2);
        assert!(Gc::is_tracked(&back));
        let s: Gc<DynAny> = unsize!(Gc::new(String::from("s")) => DynAny);
        let s: Gc<String> = Gc::downcast(s).unwrap();
        assert_eq!(*s, "s");
        assert!(!Gc::is_tracked(&s));
        // The concrete handle is an ordinary handle: a cycle through it is collected.
        back.next.lock().push(shape(&a));
        drop((a, back));
        assert_eq!(collect(), 1);
        assert_eq!(node_drops() - n0, 1);
    }

    /// A finalized object behind a trait object: the collector runs its finalizer (the
    /// header's vtable is the concrete type's), once, then drops it.
    #[test]
    fn finalizer_behind_a_trait_object() {
        static FINALIZED: AtomicUsize = AtomicUsize::new(0);
        #[derive(Trace)]
        struct Fin(Edge<Option<Gc<DynAny>>>);
        impl pyheap::Finalize for Fin {
            fn finalize(&self) {
                FINALIZED.fetch_add(1, Ordering::SeqCst);
            }
        }
        let _g = setup();
        let f0 = FINALIZED.load(Ordering::SeqCst);
        let f = Gc::new_finalized(Fin(Edge::new(None)));
        let any: Gc<DynAny> = unsize!(f.clone() => DynAny);
        *f.0.lock() = Some(any);
        drop(f);
        assert_eq!(collect(), 1);
        assert_eq!(FINALIZED.load(Ordering::SeqCst) - f0, 1);
    }

    /// Over-aligned concrete types behind `dyn`: the links sit at a distance that depends on
    /// the alignment, which the trait object's metadata gives.
    #[test]
    fn over_aligned_values_behind_dyn() {
        #[derive(Trace)]
        #[repr(align(64))]
        struct Big {
            v: u64,
            next: Edge<Option<Gc<DynShape>>>,
        }
        impl Shape for Big {
            fn area(&self) -> u64 {
                self.v
            }
            fn name(&self) -> String {
                "big".into()
            }
        }
        #[repr(align(32))]
        struct Wide(u64);
        // SAFETY: owns no `Gc`.
        unsafe impl Trace for Wide {
            fn trace(&self, _: &mut pyheap::Tracer) {}
            const MAY_CONTAIN_GC: bool = false;
        }
        impl Shape for Wide {
            fn area(&self) -> u64 {
                self.0
            }
            fn name(&self) -> String {
                "wide".into()
            }
        }
        let _g = setup();
        let big = Gc::new(Big { v: 3, next: Edge::new(None) });
        assert_eq!(Gc::as_ptr(&big) as usize % 64, 0);
        let d: Gc<DynShape> = unsize!(big.clone() => DynShape);
        *big.next.lock() = Some(d); // a self-cycle through `dyn`
        let w = unsize!(Gc::downgrade(&big) => DynShape);
        let wide: Gc<DynShape> = unsize!(Gc::new(Wide(5)) => DynShape);
        assert_eq!(wide.area() + w.upgrade().unwrap().area(), 8);
        assert!(!Gc::is_tracked(&wide));
        drop(big);
        assert_eq!(collect(), 1);
        assert!(w.upgrade().is_none());
        drop(w);
        drop(wide);
    }

    /// An array of handles unsized to a slice: the object keeps its array layout and vtable,
    /// the slice handle finds its links; a cycle through it is collected.
    #[test]
    fn tracked_array_unsized_to_a_slice() {
        #[derive(Trace)]
        struct Holder(Edge<Option<Gc<[Gc<Holder>]>>>);
        let _g = setup();
        let a = Gc::new(Holder(Edge::new(None)));
        let b = Gc::new(Holder(Edge::new(None)));
        let arr: Gc<[Gc<Holder>; 2]> = Gc::new([a.clone(), b.clone()]);
        let slice: Gc<[Gc<Holder>]> = unsize!(arr => [Gc<Holder>]);
        assert_eq!(slice.len(), 2);
        assert!(Gc::is_tracked(&slice));
        *a.0.lock() = Some(slice.clone());
        *b.0.lock() = Some(slice);
        let w = Gc::downgrade(&a);
        drop((a, b));
        assert_eq!(collect(), 3); // a, b and the array object
        assert!(w.upgrade().is_none());
    }

    /// `try_deref` on a trait object from the `Drop` of a garbage cycle member: `None` (the
    /// member is destroyed), never a read of freed or dropped memory.
    #[test]
    fn trait_object_members_seen_from_drop() {
        static SEEN_DEAD: AtomicUsize = AtomicUsize::new(0);
        #[derive(Trace)]
        struct Peek(Edge<Option<Gc<DynAny>>>);
        impl Drop for Peek {
            fn drop(&mut self) {
                if let Some(other) = self.0.lock().as_ref() {
                    if Gc::try_deref(other).is_none() {
                        SEEN_DEAD.fetch_add(1, Ordering::SeqCst);
                        // A dead object is of no type any more.
                        assert!(Gc::downcast::<Peek>(other.clone()).is_err());
                    }
                }
            }
        }
        let _g = setup();
        let s0 = SEEN_DEAD.load(Ordering::SeqCst);
        let a = Gc::new(Peek(Edge::new(None)));
        let b = Gc::new(Peek(Edge::new(None)));
        *a.0.lock() = Some(unsize!(b.clone() => DynAny));
        *b.0.lock() = Some(unsize!(a.clone() => DynAny));
        drop((a, b));
        assert_eq!(collect(), 2);
        // Every member of the garbage set is marked destroyed before any `Drop` runs: each
        // saw the other dead.
        assert_eq!(SEEN_DEAD.load(Ordering::SeqCst) - s0, 2);
    }
}

/// The shared flavor's trait objects cross threads, and a cycle built from several threads
/// is collected.
#[test]
fn shared_trait_objects_cross_threads() {
    use pyheap::{Gc, Weak};
    use std::sync::Mutex;
    #[derive(Trace)]
    struct N(Mutex<Vec<Gc<dyn Shape + Send + Sync>>>, u64);
    impl Shape for N {
        fn area(&self) -> u64 {
            self.1
        }
        fn name(&self) -> String {
            "n".into()
        }
    }
    let _g = flavor::shared::setup();
    let a = Gc::new(N(Mutex::new(Vec::new()), 1));
    let w: Weak<dyn Shape + Send + Sync> = unsize!(Gc::downgrade(&a) => dyn Shape + Send + Sync);
    let handles: Vec<_> = (0..4u64)
        .map(|i| {
            let a = a.clone();
            std::thread::spawn(move || {
                let n = Gc::new(N(Mutex::new(Vec::new()), i + 2));
                n.0.lock()
                    .unwrap()
                    .push(unsize!(a.clone() => dyn Shape + Send + Sync));
                let d: Gc<dyn Shape + Send + Sync> = unsize!(n => dyn Shape + Send + Sync);
                a.0.lock().unwrap().push(d.clone());
                d.area()
            })
        })
        .collect();
    let sum: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(sum, 2 + 3 + 4 + 5);
    assert_eq!(w.upgrade().unwrap().area(), 1);
    drop(a);
    assert_eq!(pyheap::collect(), 5);
    assert!(w.upgrade().is_none());
}
