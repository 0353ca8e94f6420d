//! std's `Rc`/`Arc` API on both flavors, combined with the collector: raw pointers out while
//! collections run, `make_mut` on cycle members, `from_raw` after a collection,
//! `new_uninit`/`assume_init` of tracked values, `into_inner` races, `pin` and introspection,
//! conversions, `Error`, marker traits; `Wake` for the shared flavor.

#[path = "common/flavor.rs"]
mod flavor;

use pyheap::{gc_dyn, unsize, Trace};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// A trait for handles to trait objects made from raw pointers.
pub trait Named {
    fn id(&self) -> u32;
}
gc_dyn!(dyn Named);

/// A raw pointer a garbage `Drop` stashed away.
pub struct Stashed(pub *const ());
// SAFETY: only an address with its provenance, handed back to `from_raw` on the thread of the
// test (the tests of one binary run one at a time: `setup()`).
unsafe impl Send for Stashed {}

/// Raw pointers that garbage `Drop`s stashed away.
pub static STASHED: Mutex<Vec<Stashed>> = Mutex::new(Vec::new());

/// Drops of `N` values (each test holds the binary's lock through `setup()`).
pub static N_DROPS: AtomicUsize = AtomicUsize::new(0);
/// Clones of `N` values.
pub static N_CLONES: AtomicUsize = AtomicUsize::new(0);
/// Finalizer runs of `F` values.
pub static FINALIZED: AtomicUsize = AtomicUsize::new(0);

pub fn n_drops() -> usize {
    N_DROPS.load(Ordering::SeqCst)
}
pub fn n_clones() -> usize {
    N_CLONES.load(Ordering::SeqCst)
}
pub fn finalized() -> usize {
    FINALIZED.load(Ordering::SeqCst)
}

fn assert_unwind_safe<T: std::panic::UnwindSafe + std::panic::RefUnwindSafe>() {}
fn assert_unpin<T: Unpin>() {}

both_flavors! {
    /// A tracked node, `Clone` (for `make_mut`), counting its drops and clones.
    #[derive(Trace)]
    struct N {
        id: u32,
        next: Edge<Option<Gc<N>>>,
    }

    impl Clone for N {
        fn clone(&self) -> Self {
            N_CLONES.fetch_add(1, Ordering::SeqCst);
            N { id: self.id, next: Edge::new(self.next.lock().clone()) }
        }
    }

    impl Drop for N {
        fn drop(&mut self) {
            N_DROPS.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn n(id: u32) -> Gc<N> {
        Gc::new(N { id, next: Edge::new(None) })
    }

    /// A two-node cycle; returns the handles.
    fn pair() -> (Gc<N>, Gc<N>) {
        let a = n(1);
        let b = n(2);
        *a.next.lock() = Some(b.clone());
        *b.next.lock() = Some(a.clone());
        (a, b)
    }

    /// A raw pointer into a cycle keeps it through collections (a reference no `Trace`
    /// reports is a root); taken back after them, the cycle is collectable again.
    #[test]
    fn collect_while_a_raw_pointer_is_out() {
        let _g = setup();
        let d0 = n_drops();
        let (a, b) = pair();
        let w = Gc::downgrade(&a);
        let p = Gc::into_raw(a);
        drop(b);
        assert_eq!(collect(), 0);
        assert_eq!(collect(), 0);
        assert_eq!(n_drops(), d0);
        // SAFETY: `p` is alive (its reference is out).
        assert_eq!(unsafe { (*p).id }, 1);
        // `from_raw` after the collector ran: the same object, with its counts.
        // SAFETY: from `into_raw` of this flavor, taken back once.
        let a = unsafe { Gc::from_raw(p) };
        assert!(Gc::ptr_eq(&a, &w.upgrade().unwrap()));
        assert_eq!(Gc::strong_count(&a), 2); // ours and b's edge
        drop(a);
        assert_eq!(collect(), 2);
        assert_eq!(n_drops() - d0, 2);
        assert!(w.upgrade().is_none());
    }

    /// `increment_strong_count`/`decrement_strong_count` move the count the collector reads.
    #[test]
    fn strong_count_through_raw_pointers() {
        let _g = setup();
        let d0 = n_drops();
        let (a, b) = pair();
        let p = Gc::as_ptr(&a);
        // SAFETY: `a` keeps the object alive; the extra reference is dropped below.
        unsafe { Gc::increment_strong_count(p) };
        assert_eq!(Gc::strong_count(&a), 3);
        drop((a, b));
        assert_eq!(collect(), 0); // the raw reference is a root
        // SAFETY: the extra reference taken above, given up once.
        unsafe { Gc::decrement_strong_count(p) };
        assert_eq!(collect(), 2);
        assert_eq!(n_drops() - d0, 2);
    }

    /// `Weak::into_raw`/`from_raw` across a collection that frees the object: the header
    /// stays for the raw weak reference; the `Weak` taken back does not upgrade.
    #[test]
    fn weak_raw_pointer_across_a_collection() {
        let _g = setup();
        let (a, b) = pair();
        let p = Weak::into_raw(Gc::downgrade(&a));
        assert_eq!(p, Gc::as_ptr(&a));
        drop((a, b));
        assert_eq!(collect(), 2);
        // SAFETY: from `Weak::into_raw` of this flavor, taken back once.
        let w = unsafe { Weak::from_raw(p) };
        assert!(w.upgrade().is_none());
        assert_eq!(w.strong_count(), 0);
        // A `Weak::new()` goes through raw pointers too.
        // SAFETY: as above.
        let nowhere = unsafe { Weak::from_raw(Weak::<N>::new().into_raw()) };
        assert!(nowhere.upgrade().is_none());
    }

    /// `make_mut` on a member of a cycle: this handle gets a copy (the cycle's own handles
    /// share the original), the cycle loses this handle and is collected.
    #[test]
    fn make_mut_on_an_object_in_a_cycle() {
        let _g = setup();
        let (d0, c0) = (n_drops(), n_clones());
        let (mut a, b) = pair();
        let original = Gc::downgrade(&a);
        Gc::make_mut(&mut a).id = 10;
        assert_eq!(n_clones() - c0, 1);
        assert!(!Gc::ptr_eq(&a, &original.upgrade().unwrap()));
        assert_eq!(original.upgrade().unwrap().id, 1);
        // The copy points into the cycle (its edge was cloned).
        assert!(Gc::ptr_eq(a.next.lock().as_ref().unwrap(), &b));
        // Unique now: in place.
        Gc::make_mut(&mut a).id = 11;
        assert_eq!(n_clones() - c0, 1);
        assert_eq!(a.id, 11);
        drop(b);
        assert_eq!(collect(), 0); // the copy reaches the cycle
        drop(a); // the copy dies by refcounting
        assert_eq!(n_drops() - d0, 1);
        assert_eq!(collect(), 2);
        assert_eq!(n_drops() - d0, 3);
        assert!(original.upgrade().is_none());
    }

    /// `make_mut` with only `Weak`s besides: the value moves (no clone, no drop), the `Weak`s
    /// stop upgrading, the moved value can close a cycle and be collected.
    #[test]
    fn make_mut_moves_when_only_weaks_remain() {
        let _g = setup();
        let (d0, c0) = (n_drops(), n_clones());
        let mut a = n(5);
        let w = Gc::downgrade(&a);
        Gc::make_mut(&mut a).id = 6;
        assert_eq!((n_clones() - c0, n_drops() - d0), (0, 0));
        assert!(w.upgrade().is_none());
        assert!(Gc::is_tracked(&a));
        *a.next.lock() = Some(a.clone());
        drop(a);
        assert_eq!(collect(), 1);
        assert_eq!(n_drops() - d0, 1);
    }

    /// A finalizer that has not run moves with the value; the copy of a shared one has none.
    #[test]
    fn make_mut_and_finalizers() {
        /// Tracked (it may hold a handle), as finalized values must be.
        #[derive(Trace, Clone)]
        struct F(u32, Option<Gc<u8>>);
        impl pyheap::Finalize for F {
            fn finalize(&self) {
                FINALIZED.fetch_add(1, Ordering::SeqCst);
            }
        }
        let _g = setup();
        let f0 = finalized();
        // Moved (only a `Weak` besides): the finalizer goes along, runs once at the end.
        let mut a = Gc::new_finalized(F(1, None));
        let w = Gc::downgrade(&a);
        Gc::make_mut(&mut a).0 = 2;
        assert!(w.upgrade().is_none());
        assert_eq!(finalized(), f0);
        drop(a);
        assert_eq!(finalized() - f0, 1);
        // Cloned (shared): the copy is a plain new object; the original keeps its finalizer.
        let mut b = Gc::new_finalized(F(3, None));
        let keep = b.clone();
        Gc::make_mut(&mut b).0 = 4;
        drop(b);
        assert_eq!(finalized() - f0, 1);
        drop(keep);
        assert_eq!(finalized() - f0, 2);
    }

    /// `into_inner` and `unwrap_or_clone`: the value comes out of the last handle only.
    #[test]
    fn into_inner_and_unwrap_or_clone() {
        let _g = setup();
        let (d0, c0) = (n_drops(), n_clones());
        let a = n(7);
        let b = a.clone();
        let w = Gc::downgrade(&a);
        assert!(Gc::into_inner(a).is_none());
        let v = Gc::into_inner(b).unwrap();
        assert_eq!(v.id, 7);
        assert!(w.upgrade().is_none());
        assert_eq!(n_drops(), d0); // moved out, not dropped
        drop(v);
        assert_eq!(n_drops() - d0, 1);
        let a = n(8);
        let b = a.clone();
        let v = Gc::unwrap_or_clone(a); // shared: cloned
        assert_eq!((v.id, n_clones() - c0), (8, 1));
        let v2 = Gc::unwrap_or_clone(b); // last: moved
        assert_eq!((v2.id, n_clones() - c0), (8, 1));
        drop((v, v2));
        assert_eq!(n_drops() - d0, 3);
    }

    /// `new_uninit` of a tracked type: collections before `assume_init` never read the value;
    /// after it, the object is traced and dropped as a `T`, and can be part of a cycle.
    #[test]
    fn new_uninit_of_a_tracked_type_with_collections() {
        let _g = setup();
        let d0 = n_drops();
        let mut u = Gc::<N>::new_uninit();
        assert!(Gc::is_tracked(&u));
        assert_eq!(collect(), 0); // scanned as a `MaybeUninit<N>`: nothing read
        let other = n(2);
        Gc::get_mut(&mut u).unwrap().write(N { id: 1, next: Edge::new(Some(other.clone())) });
        // SAFETY: written just above.
        let a = unsafe { u.assume_init() };
        assert_eq!(a.id, 1);
        *other.next.lock() = Some(a.clone()); // a cycle through the once-uninit object
        drop((a, other));
        assert_eq!(collect(), 2);
        assert_eq!(n_drops() - d0, 2);
        // Dropped before `assume_init`: nothing is dropped.
        let u = Gc::<N>::new_uninit();
        let u2 = u.clone();
        drop((u, u2));
        assert_eq!(n_drops() - d0, 2);
    }

    /// `assume_init` while other handles (still `MaybeUninit`) exist: the value, written
    /// through `as_ptr`, is dropped at most once. If the last handle is a `MaybeUninit` one,
    /// the single-thread flavor drops nothing (std's way: the handle's type says nothing is
    /// there), the thread-safe one drops the `N` (through the object's vtable): both allowed.
    #[test]
    fn assume_init_with_other_handles() {
        let _g = setup();
        let d0 = n_drops();
        let u = Gc::<N>::new_uninit();
        let other = u.clone();
        // SAFETY: nobody reads the value before it is written; the write goes through the
        // handle's pointer, which has the allocation's provenance.
        unsafe {
            Gc::as_ptr(&u)
                .cast_mut()
                .write(core::mem::MaybeUninit::new(N { id: 3, next: Edge::new(None) }))
        };
        // SAFETY: written above.
        let a = unsafe { u.assume_init() };
        assert_eq!(Gc::strong_count(&a), 2);
        drop(a);
        assert_eq!(n_drops(), d0);
        drop(other); // the last handle
        assert_eq!(n_drops() - d0, usize::from(SHARED));
        assert_eq!(collect(), 0);
    }

    /// Slices: `new_uninit_slice` of tracked elements, `From<[T; N]>` (moved, not cloned),
    /// `TryFrom` back to an array (untracked elements), `From<Cow>`, `Gc<str>` to bytes.
    #[test]
    fn slices_and_conversions() {
        let _g = setup();
        let (d0, c0) = (n_drops(), n_clones());
        let mut s = Gc::<[N]>::new_uninit_slice(3);
        for (i, e) in Gc::get_mut(&mut s).unwrap().iter_mut().enumerate() {
            e.write(N { id: i as u32, next: Edge::new(None) });
        }
        // SAFETY: every element written above.
        let s = unsafe { s.assume_init() };
        assert!(Gc::is_tracked(&s));
        assert_eq!(s.iter().map(|e| e.id).sum::<u32>(), 3);
        drop(s);
        assert_eq!(n_drops() - d0, 3);

        let arr: Gc<[N]> = Gc::from([
            N { id: 1, next: Edge::new(None) },
            N { id: 2, next: Edge::new(None) },
        ]);
        assert_eq!((arr.len(), n_clones() - c0, n_drops() - d0), (2, 0, 3));
        drop(arr);
        assert_eq!(n_drops() - d0, 5);

        let bytes: Gc<[u8]> = Gc::from([1u8, 2, 3]);
        let bytes = <Gc<[u8; 2]>>::try_from(bytes).unwrap_err();
        let three: Gc<[u8; 3]> = Gc::try_from(bytes.clone()).unwrap();
        assert!(core::ptr::addr_eq(Gc::as_ptr(&three), Gc::as_ptr(&bytes)));
        assert_eq!(Gc::strong_count(&three), 2);

        let c: Gc<str> = Gc::from(std::borrow::Cow::Borrowed("cow"));
        let owned: Gc<[u32]> = Gc::from(std::borrow::Cow::<[u32]>::Owned(vec![4, 5]));
        let b: Gc<[u8]> = Gc::from(c.clone());
        assert_eq!((&*b, &*owned), (&b"cow"[..], &[4, 5][..]));
        let mut m = String::from("mut");
        let from_mut: Gc<str> = Gc::from(m.as_mut_str());
        assert_eq!(&*from_mut, "mut");
    }

    /// `pin`: the value stays put; introspection never hands it out as a typed handle (which
    /// would let safe code move it out).
    #[test]
    fn pinned_objects_are_hidden_from_typed_introspection() {
        let _g = setup();
        let p = Gc::pin(N { id: 9, next: Edge::new(None) });
        let q = p.clone();
        assert_eq!(p.id + q.id, 18);
        assert!(gc::get_objects::<N>().iter().all(|g| g.id != 9));
        let plain = n(4);
        assert_eq!(gc::get_objects::<N>().len(), 1);
        let census = gc::census().to_string();
        assert!(census.contains("Pinned"), "{census}");
        drop((p, q, plain));
        assert!(gc::get_objects::<N>().is_empty());
    }

    /// `Error` through a handle, and the marker traits std's pointers have.
    #[test]
    fn error_and_marker_traits() {
        #[derive(Debug, Trace)]
        struct E(u8);
        impl std::fmt::Display for E {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "e{}", self.0)
            }
        }
        impl std::error::Error for E {}
        fn fails() -> Result<(), Box<dyn std::error::Error>> {
            Err(Gc::new(E(1)))?;
            Ok(())
        }
        let e = fails().unwrap_err();
        assert_eq!(e.to_string(), "e1");
        assert!(e.source().is_none());
        assert_unwind_safe::<Gc<u32>>();
        #[derive(Trace)]
        struct NotUnpin(#[trace(skip)] core::marker::PhantomPinned);
        assert_unpin::<Gc<NotUnpin>>();
        assert_unpin::<Weak<NotUnpin>>();
        let g = Gc::new(5u32);
        let r = std::panic::catch_unwind(|| *g + 1); // no `AssertUnwindSafe` needed
        assert_eq!(r.unwrap(), 6);
    }

    impl Named for N {
        fn id(&self) -> u32 {
            self.id
        }
    }

    /// `into_raw`/`from_raw` of a trait object handle (a fat pointer) and of its `Weak`,
    /// across collections: the raw reference keeps the cycle behind it; given back, the
    /// cycle is collected and the raw `Weak` taken back no longer upgrades.
    #[test]
    fn raw_pointers_of_trait_objects() {
        let _g = setup();
        let d0 = n_drops();
        let (a, b) = pair();
        let d: Gc<dyn Named> = unsize!(a.clone() => dyn Named);
        let p: *const dyn Named = Gc::into_raw(d);
        let wp = Weak::into_raw(Gc::downgrade(&b));
        drop((a, b));
        assert_eq!(collect(), 0);
        // SAFETY: `p` owns its reference: the value is alive.
        assert_eq!(unsafe { (*p).id() }, 1);
        // SAFETY: from `Gc::<dyn Named>::into_raw` of this flavor, given back once.
        let d = unsafe { Gc::<dyn Named>::from_raw(p) };
        assert_eq!((d.id(), Gc::strong_count(&d)), (1, 2));
        assert!(Gc::is_tracked(&d));
        let wd = Weak::into_raw(Gc::downgrade(&d));
        drop(d);
        assert_eq!(collect(), 2);
        assert_eq!(n_drops() - d0, 2);
        // SAFETY: from `Weak::into_raw` of this flavor, each given back once.
        let (wd, wb) = unsafe { (Weak::<dyn Named>::from_raw(wd), Weak::<N>::from_raw(wp)) };
        assert!(wd.upgrade().is_none() && wb.upgrade().is_none());
        assert_eq!((wd.strong_count(), wb.weak_count()), (0, 0));
    }

    /// A raw pointer a garbage cycle's `Drop` made from a handle into its own set: after the
    /// collection it points to a destroyed object; `from_raw` gives a handle whose
    /// `try_deref` is `None`, and dropping it (or `decrement_strong_count`) releases the
    /// header, once, without touching the value again.
    #[test]
    fn raw_pointer_into_a_destroyed_cycle() {
        #[derive(Trace)]
        struct S {
            next: Edge<Option<Gc<S>>>,
        }
        impl Drop for S {
            fn drop(&mut self) {
                N_DROPS.fetch_add(1, Ordering::SeqCst);
                if let Some(g) = self.next.take() {
                    STASHED.lock().unwrap().push(Stashed(Gc::into_raw(g).cast()));
                }
            }
        }
        let _g = setup();
        let d0 = n_drops();
        STASHED.lock().unwrap().clear();
        let a = Gc::new(S { next: Edge::new(None) });
        let b = Gc::new(S { next: Edge::new(Some(a.clone())) });
        *a.next.lock() = Some(b.clone());
        let (wa, wb) = (Gc::downgrade(&a), Gc::downgrade(&b));
        drop((a, b));
        assert_eq!(collect(), 2);
        assert_eq!(n_drops() - d0, 2);
        let ptrs = std::mem::take(&mut *STASHED.lock().unwrap());
        assert_eq!(ptrs.len(), 2);
        assert!(wa.upgrade().is_none() && wb.upgrade().is_none());
        // SAFETY: from `Gc::<S>::into_raw` of this flavor, given back once.
        let g = unsafe { Gc::<S>::from_raw(ptrs[0].0.cast::<S>()) };
        assert!(Gc::try_deref(&g).is_none());
        assert_eq!(Gc::strong_count(&g), 1);
        drop(g);
        // SAFETY: as above.
        unsafe { Gc::<S>::decrement_strong_count(ptrs[1].0.cast::<S>()) };
        assert_eq!(n_drops() - d0, 2); // nothing dropped twice
        assert_eq!((wa.strong_count(), wb.strong_count()), (0, 0));
        assert_eq!(collect(), 0);
    }

    /// `into_inner` on the last outside handle of a cycle gives `None` (the cycle's own
    /// handle remains) and leaves the cycle to the collector.
    #[test]
    fn into_inner_on_a_cycle_member() {
        let _g = setup();
        let d0 = n_drops();
        let (a, b) = pair();
        assert!(Gc::into_inner(a).is_none());
        assert_eq!(n_drops(), d0);
        // `b` is the last handle from outside; the cycle's edge to it remains.
        assert!(Gc::into_inner(b).is_none());
        assert_eq!(collect(), 2);
        assert_eq!(n_drops() - d0, 2);
    }
}

/// `into_inner` on every handle, from many threads: exactly one gets the value, every time.
#[test]
fn shared_into_inner_race_gives_the_value_once() {
    use pyheap::Gc;
    let _g = flavor::shared::setup();
    for round in 0..if cfg!(miri) { 4 } else { 200 } {
        let g = Gc::new(round);
        let handles: Vec<Gc<i32>> = (0..4).map(|_| g.clone()).collect();
        drop(g);
        let got: usize = handles
            .into_iter()
            .map(|h| std::thread::spawn(move || Gc::into_inner(h).is_some()))
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap() as usize)
            .sum();
        assert_eq!(got, 1, "round {round}");
    }
}

/// A tiny executor on `pyheap::Wake`: tasks are `Gc`s, their wakers hold raw references
/// (roots for the collector while they exist).
#[test]
fn shared_wake_runs_a_future_to_completion() {
    use pyheap::{Gc, Wake};
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Mutex;
    use std::task::{Context, Poll, Waker};

    #[derive(Trace, Default)]
    struct Flag {
        woken: AtomicUsize,
    }
    impl Wake for Flag {
        fn wake(this: Gc<Self>) {
            this.woken.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Ready on the third poll; wakes itself from another thread in between.
    struct Yield(u32, Mutex<Option<std::thread::JoinHandle<()>>>);
    impl Future for Yield {
        type Output = u32;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
            if self.0 == 2 {
                return Poll::Ready(42);
            }
            self.0 += 1;
            let w = cx.waker().clone();
            *self.1.lock().unwrap() = Some(std::thread::spawn(move || w.wake()));
            Poll::Pending
        }
    }

    let _g = flavor::shared::setup();
    let flag = Gc::new(Flag::default());
    let waker = Waker::from(flag.clone());
    let mut cx = Context::from_waker(&waker);
    let mut fut = Box::pin(Yield(0, Mutex::new(None)));
    let out = loop {
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(v) => break v,
            Poll::Pending => {
                if let Some(t) = fut.1.lock().unwrap().take() {
                    t.join().unwrap();
                }
            }
        }
    };
    assert_eq!(out, 42);
    assert_eq!(flag.woken.load(Ordering::SeqCst), 2);
    assert_eq!(Gc::strong_count(&flag), 2); // ours and the waker's
    assert_eq!(pyheap::collect(), 0);
    drop(waker);
    assert_eq!(Gc::strong_count(&flag), 1);
}

/// Shared flavor: `make_mut` (both the copy and the move) on objects in cycles while another
/// thread collects in a loop. Every value is dropped exactly once in the end (no value
/// half-cloned, lost or dropped twice), and the results are what each call wrote.
#[test]
fn shared_make_mut_while_another_thread_collects() {
    use flavor::shared::{collect, Edge};
    use pyheap::Gc;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    #[derive(Trace)]
    struct M {
        id: u32,
        next: Edge<Option<Gc<M>>>,
    }
    impl Clone for M {
        fn clone(&self) -> Self {
            N_CLONES.fetch_add(1, Ordering::SeqCst);
            M {
                id: self.id,
                next: Edge::new(self.next.lock().clone()),
            }
        }
    }
    impl Drop for M {
        fn drop(&mut self) {
            N_DROPS.fetch_add(1, Ordering::SeqCst);
        }
    }
    let m = |id| {
        Gc::new(M {
            id,
            next: Edge::new(None),
        })
    };

    let _g = flavor::shared::setup();
    let (d0, c0) = (n_drops(), n_clones());
    let stop = Arc::new(AtomicBool::new(false));
    let collector = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                pyheap::collect();
            }
        })
    };
    const ROUNDS: u32 = if cfg!(miri) { 4 } else { 300 };
    for i in 0..ROUNDS {
        // A pair in a cycle; `make_mut` on an extra handle to one of them: a copy.
        let a = m(i);
        let b = m(i + 1);
        *a.next.lock() = Some(b.clone());
        *b.next.lock() = Some(a.clone());
        let mut h = a.clone();
        Gc::make_mut(&mut h).id += 1000;
        assert_eq!((h.id, a.id), (i + 1000, i));
        assert!(Gc::ptr_eq(h.next.lock().as_ref().unwrap(), &b));
        // A lone object with a `Weak`: moved into a new object, which then closes a cycle.
        let mut c = m(i);
        let w = Gc::downgrade(&c);
        Gc::make_mut(&mut c).id = i + 2000;
        assert!(w.upgrade().is_none());
        *c.next.lock() = Some(c.clone());
        assert_eq!(c.id, i + 2000);
        drop((a, b, h, c));
    }
    stop.store(true, Ordering::SeqCst);
    collector.join().unwrap();
    collect();
    collect();
    // Three values made per round, plus every copy `make_mut` made.
    let made = 3 * ROUNDS as usize + (n_clones() - c0);
    assert_eq!(n_drops() - d0, made);
}

/// Shared flavor: `new_uninit`/`assume_init` of a tracked type while another thread collects
/// and looks for the type through introspection and through a `GcAny` made before the value
/// was written: what it finds is always the written value.
#[test]
fn shared_assume_init_under_collections_and_introspection() {
    use flavor::shared::{collect, Edge};
    use pyheap::gc::GcAny;
    use pyheap::Gc;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    #[derive(Trace)]
    struct U {
        id: u32,
        next: Edge<Option<Gc<U>>>,
    }
    impl Drop for U {
        fn drop(&mut self) {
            N_DROPS.fetch_add(1, Ordering::SeqCst);
        }
    }

    let _g = flavor::shared::setup();
    let d0 = n_drops();
    let stop = Arc::new(AtomicBool::new(false));
    let walker = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                for g in pyheap::gc::get_objects::<U>() {
                    assert_eq!(g.id % 7, 3, "a value read before it was written");
                }
                pyheap::collect();
            }
        })
    };
    const ROUNDS: u32 = if cfg!(miri) { 4 } else { 200 };
    for i in 0..ROUNDS {
        let u = Gc::<U>::new_uninit();
        let any = GcAny::from_gc(u.clone()).unwrap();
        let reader = std::thread::spawn(move || loop {
            match any.clone().downcast::<U>() {
                Ok(g) => return g.id,
                Err(_) => std::thread::yield_now(),
            }
        });
        let other = u.clone();
        // SAFETY: nobody reads the value as a `U` before `assume_init` (the reader waits
        // for the type to change, the walker asks for `U`s only).
        unsafe {
            Gc::as_ptr(&u)
                .cast_mut()
                .write(core::mem::MaybeUninit::new(U {
                    id: i * 7 + 3,
                    next: Edge::new(None),
                }))
        };
        // SAFETY: written just above.
        let a = unsafe { u.assume_init() };
        assert_eq!(reader.join().unwrap(), i * 7 + 3);
        // A cycle through the once-uninit object.
        let b = Gc::new(U {
            id: 3,
            next: Edge::new(Some(a.clone())),
        });
        *a.next.lock() = Some(b);
        drop((a, other));
    }
    stop.store(true, Ordering::SeqCst);
    walker.join().unwrap();
    collect();
    collect();
    assert_eq!(n_drops() - d0, 2 * ROUNDS as usize);
}
