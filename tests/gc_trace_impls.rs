//! `Trace` coverage (issue 14 item 4): every impl added for it is traced in a cycle that the
//! collector frees, in both flavors where the type is `Send + Sync` (`mod unsync`:
//! `pyheap::unsync::Gc` with `RefCell` edges; `mod shared`: `pyheap::Gc` with `Mutex` edges;
//! see `common/flavor.rs`). A cycle whose edges go through a wrapper is freed only if the
//! wrapper reports them, so each test fails if its impl reports nothing; the exact
//! `collect()` count fails it if the impl reports an edge twice (an object freed that is still
//! held) or too few. Leaves and the types that may only hold values without a `Gc` are checked
//! for `MAY_CONTAIN_GC == false` and traced inside a node of a cycle. The impls that must not
//! exist are compile-fail tests (`tests/ui/trace_*.rs`, run by `gc_derive.rs`); the cargo
//! features' impls are in `gc_trace_features.rs`.

// The tests run on the current toolchain: `LazyLock::get`/`LazyCell::get` (1.94) are fine.
#![allow(clippy::incompatible_msrv)]
// The `MAY_CONTAIN_GC` checks are assertions on constants, and the leaf structs list many
// types in one field on purpose.
#![allow(clippy::assertions_on_constants, clippy::type_complexity)]

#[macro_use]
#[path = "common/flavor.rs"]
mod flavor;

use pyheap::Trace;

/// A test named `$name`: a two-node cycle whose edges are `$field`s (a type naming `N`, the
/// node), each made by `$wrap` from a handle `$g` to the other node; once both handles are
/// dropped, counting alone keeps the pair and one collection frees exactly the two.
macro_rules! cycle_through {
    ($($name:ident: $field:ty = |$g:ident| $wrap:expr;)*) => {$(
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
            assert!(Gc::is_tracked(&a));
            let (wa, wb) = (Gc::downgrade(&a), Gc::downgrade(&b));
            drop((a, b));
            assert!(wa.upgrade().is_some(), "counting alone freed a cycle");
            assert_eq!(collect(), 2, "the cycle through {} is not freed exactly", stringify!($field));
            assert!(wa.upgrade().is_none() && wb.upgrade().is_none());
        }
    )*};
}

/// Asserts that each type is a leaf: `Trace`, and `MAY_CONTAIN_GC == false`.
macro_rules! assert_leaves {
    ($($t:ty),* $(,)?) => {$(
        assert!(!<$t as Trace>::MAY_CONTAIN_GC, "{} may contain a Gc", stringify!($t));
    )*};
}

/// The boxed initialiser of a `LazyLock` in a node of each flavor: `Send` for the shared
/// flavor (its values are `Send + Sync`), not for the single-thread one (it captures
/// single-thread handles). `Init<R>` in the tests below.
trait FlavorInit {
    type Init<R: 'static>;
}
impl FlavorInit for pyheap::unsync::Gc<u8> {
    type Init<R: 'static> = Box<dyn FnOnce() -> R>;
}
impl FlavorInit for pyheap::Gc<u8> {
    type Init<R: 'static> = Box<dyn FnOnce() -> R + Send>;
}

both_flavors! {

type Init<R> = <Gc<u8> as FlavorInit>::Init<R>;

use std::borrow::Cow;
use std::cmp::Reverse;
use std::mem::ManuallyDrop;
use std::num::{Saturating, Wrapping};
use std::ops::Bound;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};

cycle_through! {
    reverse: Reverse<Gc<N>> = |g| Reverse(g);
    wrapping: Wrapping<Gc<N>> = |g| Wrapping(g);
    saturating: Saturating<Gc<N>> = |g| Saturating(g);
    cow_owned: Cow<'static, [Gc<N>]> = |g| Cow::Owned(vec![g]);
    // Both ends hold a handle: each is reported, once.
    range: std::ops::Range<Gc<N>> = |g| g.clone()..g;
    range_inclusive: std::ops::RangeInclusive<Gc<N>> = |g| g.clone()..=g;
    range_from: std::ops::RangeFrom<Gc<N>> = |g| g..;
    range_to: std::ops::RangeTo<Gc<N>> = |g| ..g;
    range_to_inclusive: std::ops::RangeToInclusive<Gc<N>> = |g| ..=g;
    bound: (Bound<Gc<N>>, Bound<Gc<N>>, Bound<Gc<N>>) =
        |g| (Bound::Included(g.clone()), Bound::Excluded(g), Bound::Unbounded);
    pin_box: Pin<Box<Gc<N>>> = |g| Box::pin(g);
    pin_gc: Pin<Gc<N>> = |g| Pin::new(g);
    // Never dropped by its holder: the handle is forgotten with the garbage (as `mem::forget`
    // in a `Drop` would), and the cycle through it is still found and freed.
    manually_drop_forgotten: ManuallyDrop<Gc<N>> = |g| ManuallyDrop::new(g);
    lazy_lock_initialised: LazyLock<Gc<N>, Init<Gc<N>>> = |g| {
        let l = LazyLock::new(Box::new(move || g) as Init<Gc<N>>);
        LazyLock::force(&l);
        l
    };
}

/// The usual `ManuallyDrop`: the holder's `Drop` drops it. Freed with the cycle, and every
/// handle dropped once (the second node's weak count shows the first's handle went).
#[test]
fn manually_drop_dropped_by_its_holder() {
    let _s = setup();
    #[derive(Trace)]
    struct N {
        edge: Edge<Option<ManuallyDrop<Gc<N>>>>,
    }
    impl Drop for N {
        fn drop(&mut self) {
            if let Some(e) = self.edge.get_mut() {
                // SAFETY: the holder is being dropped: the field is not used (nor traced)
                // again.
                unsafe { ManuallyDrop::drop(e) }
            }
        }
    }
    let a = Gc::new(N { edge: Edge::new(None) });
    let b = Gc::new(N { edge: Edge::new(Some(ManuallyDrop::new(a.clone()))) });
    *a.edge.lock() = Some(ManuallyDrop::new(b.clone()));
    let wa = Gc::downgrade(&a);
    drop((a, b));
    assert_eq!(collect(), 2);
    assert!(wa.upgrade().is_none());
}

/// Tracing a `LazyLock` does not run its initialiser: the handle its closure captured is not
/// reported (so what it reaches is kept, conservatively), and the lock is still empty after
/// the collection; once it is initialised the cycle through it is freed.
#[test]
fn lazy_lock_is_not_initialised_by_tracing() {
    let _s = setup();
    type Lazy = LazyLock<Gc<N>, Init<Gc<N>>>;
    #[derive(Trace)]
    struct N {
        lazy: Edge<Option<Lazy>>,
    }
    let a = Gc::new(N { lazy: Edge::new(None) });
    let b = Gc::new(N { lazy: Edge::new(None) });
    let to_b = b.clone();
    *a.lazy.lock() = Some(LazyLock::new(Box::new(move || to_b) as Init<Gc<N>>));
    let to_a = a.clone();
    *b.lazy.lock() = Some(LazyLock::new(Box::new(move || to_a) as Init<Gc<N>>));
    let (wa, wb) = (Gc::downgrade(&a), Gc::downgrade(&b));
    drop((a, b));
    assert_eq!(collect(), 0, "handles inside an initialiser are not reported");
    let a = wa.upgrade().unwrap();
    assert!(LazyLock::get(a.lazy.lock().as_ref().unwrap()).is_none(), "tracing ran the initialiser");
    LazyLock::force(a.lazy.lock().as_ref().unwrap());
    LazyLock::force(wb.upgrade().unwrap().lazy.lock().as_ref().unwrap());
    drop(a);
    assert_eq!(collect(), 2);
    assert!(wa.upgrade().is_none() && wb.upgrade().is_none());
}

/// A collection started from inside a `LazyLock`'s initialiser, on the initialising thread,
/// traces the lock being initialised: it sees no value, and neither waits for the initialiser
/// (which would never end) nor runs it again.
#[test]
fn lazy_lock_traced_while_its_initialiser_runs() {
    let _s = setup();
    type Lazy = LazyLock<Option<Gc<N>>, Init<Option<Gc<N>>>>;
    #[derive(Trace)]
    struct N {
        lazy: Lazy,
    }
    let during = Arc::new(std::sync::atomic::AtomicUsize::new(usize::MAX));
    let seen = during.clone();
    let a = Gc::new_cyclic(|w: &Weak<N>| {
        let w = w.clone();
        N {
            lazy: LazyLock::new(Box::new(move || {
                seen.store(collect(), std::sync::atomic::Ordering::SeqCst);
                w.upgrade()
            })),
        }
    });
    assert!(LazyLock::force(&a.lazy).is_some());
    assert_eq!(during.load(std::sync::atomic::Ordering::SeqCst), 0);
    let w = Gc::downgrade(&a);
    drop(a);
    assert_eq!(collect(), 1);
    assert!(w.upgrade().is_none());
}

/// Leaves that are `Send + Sync`, traced in a node of a freed cycle.
#[derive(Trace)]
struct SyncLeaves {
    nonzero: (
        std::num::NonZeroU8,
        std::num::NonZeroU16,
        std::num::NonZeroU32,
        std::num::NonZeroU64,
        std::num::NonZeroU128,
        std::num::NonZeroUsize,
        std::num::NonZeroI8,
        std::num::NonZeroI16,
        std::num::NonZeroI32,
        std::num::NonZeroI64,
        std::num::NonZeroI128,
        std::num::NonZeroIsize,
    ),
    atomics: (
        std::sync::atomic::AtomicBool,
        std::sync::atomic::AtomicU8,
        std::sync::atomic::AtomicI8,
        std::sync::atomic::AtomicU16,
        std::sync::atomic::AtomicI16,
        std::sync::atomic::AtomicU32,
        std::sync::atomic::AtomicI32,
        std::sync::atomic::AtomicU64,
        std::sync::atomic::AtomicI64,
        std::sync::atomic::AtomicUsize,
        std::sync::atomic::AtomicIsize,
        std::sync::atomic::AtomicPtr<u8>,
    ),
    time: (std::time::SystemTime, std::time::Instant, std::time::Duration),
    misc: (
        std::cmp::Ordering,
        std::any::TypeId,
        std::alloc::Layout,
        std::ops::RangeFull,
        std::thread::ThreadId,
        std::net::SocketAddr,
        std::net::IpAddr,
        std::sync::atomic::Ordering,
    ),
    functions: (fn(), fn(u8) -> u8, unsafe fn(u8, u16), extern "C" fn(u8, u8, u8) -> i32),
    /// Only for a `T` without a `Gc` (a compile error otherwise, `tests/ui/trace_*`).
    gc_free: (Arc<str>, Arc<Vec<u8>>, std::sync::Weak<String>, LazyLock<String>),
}

fn sync_leaves() -> SyncLeaves {
    use std::num::*;
    SyncLeaves {
        nonzero: (
            NonZeroU8::MIN,
            NonZeroU16::MIN,
            NonZeroU32::MIN,
            NonZeroU64::MIN,
            NonZeroU128::MIN,
            NonZeroUsize::MIN,
            NonZeroI8::MIN,
            NonZeroI16::MIN,
            NonZeroI32::MIN,
            NonZeroI64::MIN,
            NonZeroI128::MIN,
            NonZeroIsize::MIN,
        ),
        atomics: Default::default(),
        time: (std::time::SystemTime::now(), std::time::Instant::now(), Default::default()),
        misc: (
            std::cmp::Ordering::Less,
            std::any::TypeId::of::<u8>(),
            std::alloc::Layout::new::<u64>(),
            ..,
            std::thread::current().id(),
            ([127, 0, 0, 1], 80).into(),
            [10, 0, 0, 1].into(),
            std::sync::atomic::Ordering::SeqCst,
        ),
        functions: (|| {}, |x| x, |_, _| {}, {
            extern "C" fn f(a: u8, b: u8, c: u8) -> i32 {
                i32::from(a) + i32::from(b) + i32::from(c)
            }
            f
        }),
        gc_free: (
            "shared".into(),
            Arc::new(vec![1, 2]),
            Arc::downgrade(&Arc::new(String::new())),
            LazyLock::new(|| "lazy".to_string()),
        ),
    }
}

#[test]
fn leaves_are_untracked_and_traced_inside_a_cycle() {
    let _s = setup();
    assert_leaves!(
        std::num::NonZeroU128,
        std::num::NonZeroI8,
        std::num::NonZeroIsize,
        std::sync::atomic::AtomicBool,
        std::sync::atomic::AtomicU64,
        std::sync::atomic::AtomicPtr<u8>,
        std::time::SystemTime,
        std::thread::ThreadId,
        fn(u8) -> u8,
        Arc<str>,
        Arc<Vec<u8>>,
        std::sync::Weak<Gc<SyncLeaves>>,
        std::rc::Weak<Gc<SyncLeaves>>,
        LazyLock<String>,
        Reverse<u8>,
        Wrapping<u8>,
        Saturating<u8>,
        Cow<'static, str>,
        std::ops::Range<u8>,
        ManuallyDrop<String>,
        Pin<Box<String>>,
        SyncLeaves,
    );
    assert!(<LazyLock<Gc<SyncLeaves>> as Trace>::MAY_CONTAIN_GC);
    assert!(<Pin<Gc<SyncLeaves>> as Trace>::MAY_CONTAIN_GC);
    assert!(!Gc::is_tracked(&Gc::new(sync_leaves())));
    assert!(!Gc::is_tracked(&Gc::new(Arc::new(5u8))));

    #[derive(Trace)]
    struct N {
        leaves: SyncLeaves,
        edge: Edge<Option<Gc<N>>>,
    }
    let a = Gc::new(N { leaves: sync_leaves(), edge: Edge::new(None) });
    *a.edge.lock() = Some(a.clone());
    let w = Gc::downgrade(&a);
    drop(a);
    assert_eq!(collect(), 1);
    assert!(w.upgrade().is_none());
}

} // both_flavors!

/// The shared flavor only: a `LazyLock` initialised by another thread while a collection
/// scans the object that holds it.
mod shared_only {
    use super::flavor::shared::*;
    use pyheap::Trace;
    use std::sync::mpsc;
    use std::sync::LazyLock;
    use std::time::Duration;

    /// The initialiser runs on another thread and is blocked there: a collection that traces
    /// the node holding the lock sees no value and returns (tracing never waits for an
    /// initialiser: it may be waiting for this very collection's thread); once the value is
    /// there, the cycle through it is freed.
    #[test]
    fn lazy_lock_initialised_by_another_thread_does_not_block_a_collection() {
        let _s = setup();
        type Lazy = LazyLock<Option<Gc<N>>, Box<dyn FnOnce() -> Option<Gc<N>> + Send>>;
        #[derive(Trace)]
        struct N {
            lazy: Lazy,
        }
        let (started_tx, started_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let a = Gc::new_cyclic(|w: &Weak<N>| {
            let w = w.clone();
            N {
                lazy: LazyLock::new(Box::new(move || {
                    started_tx.send(()).unwrap();
                    go_rx.recv().unwrap();
                    w.upgrade()
                })),
            }
        });
        let a2 = a.clone();
        let init = std::thread::spawn(move || {
            LazyLock::force(&a2.lazy);
        });
        started_rx.recv().unwrap();
        let (done_tx, done_rx) = mpsc::channel();
        std::thread::spawn(move || done_tx.send(collect()).unwrap());
        let freed = done_rx
            .recv_timeout(Duration::from_secs(120))
            .expect("a collection waited for a LazyLock's initialiser");
        assert_eq!(freed, 0);
        assert!(LazyLock::get(&a.lazy).is_none());
        go_tx.send(()).unwrap();
        init.join().unwrap();
        assert!(LazyLock::get(&a.lazy).unwrap().is_some());
        let w = Gc::downgrade(&a);
        drop(a);
        assert_eq!(collect(), 1);
        assert!(w.upgrade().is_none());
    }
}

/// The single-thread flavor only: types that are not `Sync`.
mod unsync_only {
    use super::flavor::unsync::*;
    use pyheap::Trace;
    use std::cell::{Cell, LazyCell};
    use std::rc::Rc;

    cycle_through! {
        lazy_cell_initialised: LazyCell<Gc<N>, Box<dyn FnOnce() -> Gc<N>>> = |g| {
            let l = LazyCell::new(Box::new(move || g) as Box<dyn FnOnce() -> Gc<N>>);
            LazyCell::force(&l);
            l
        };
    }

    #[test]
    fn lazy_cell_is_not_initialised_by_tracing() {
        let _s = setup();
        type Lazy = LazyCell<Gc<N>, Box<dyn FnOnce() -> Gc<N>>>;
        #[derive(Trace)]
        struct N {
            lazy: Edge<Option<Lazy>>,
        }
        let a = Gc::new(N {
            lazy: Edge::new(None),
        });
        let to_a = a.clone();
        *a.lazy.lock() = Some(LazyCell::new(
            Box::new(move || to_a) as Box<dyn FnOnce() -> Gc<N>>
        ));
        let w = Gc::downgrade(&a);
        drop(a);
        assert_eq!(collect(), 0);
        let a = w.upgrade().unwrap();
        assert!(LazyCell::get(a.lazy.lock().as_ref().unwrap()).is_none());
        LazyCell::force(a.lazy.lock().as_ref().unwrap());
        drop(a);
        assert_eq!(collect(), 1);
        assert!(w.upgrade().is_none());
    }

    /// A collection started from inside a `LazyCell`'s initialiser traces the cell being
    /// initialised: it sees no value (and does not run the initialiser again); the value the
    /// initialiser gives (a handle to the node itself) is traced afterwards.
    #[test]
    fn lazy_cell_traced_while_its_initialiser_runs() {
        let _s = setup();
        type Lazy = LazyCell<Option<Gc<N>>, Box<dyn FnOnce() -> Option<Gc<N>>>>;
        #[derive(Trace)]
        struct N {
            lazy: Lazy,
        }
        let during = Rc::new(Cell::new(usize::MAX));
        let seen = during.clone();
        let a = Gc::new_cyclic(|w: &Weak<N>| {
            let w = w.clone();
            N {
                lazy: LazyCell::new(Box::new(move || {
                    seen.set(collect());
                    w.upgrade()
                })),
            }
        });
        assert!(LazyCell::force(&a.lazy).is_some());
        assert_eq!(during.get(), 0);
        let w = Gc::downgrade(&a);
        drop(a);
        assert_eq!(collect(), 1);
        assert!(w.upgrade().is_none());
    }

    /// `!Sync` leaves, and `!Sync` types that may only hold values without a `Gc`.
    #[derive(Trace)]
    struct LocalLeaves {
        pointers: (*const u8, *mut String, std::ptr::NonNull<u64>),
        cells: (Cell<String>, Cell<u32>, Cell<Option<Box<str>>>),
        shared: (Rc<String>, Rc<[u8]>, std::rc::Weak<String>),
        lazy: LazyCell<Vec<u8>>,
    }

    #[test]
    fn local_leaves_are_untracked_and_traced_inside_a_cycle() {
        let _s = setup();
        assert_leaves!(
            *const u8,
            *mut String,
            std::ptr::NonNull<u64>,
            Cell<String>,
            Cell<Vec<Box<u8>>>,
            Cell<pyheap::unsync::Weak<LocalLeaves>>,
            Rc<String>,
            Rc<[u8]>,
            Rc<Cell<u8>>,
            LazyCell<Vec<u8>>,
            LocalLeaves,
        );
        assert!(<LazyCell<Gc<LocalLeaves>> as Trace>::MAY_CONTAIN_GC);
        let leaves = || LocalLeaves {
            pointers: (
                std::ptr::null(),
                std::ptr::null_mut(),
                std::ptr::NonNull::dangling(),
            ),
            cells: (Cell::new("c".into()), Cell::new(1), Cell::new(None)),
            shared: (
                Rc::new("r".into()),
                Rc::from(&[1u8][..]),
                std::rc::Weak::new(),
            ),
            lazy: LazyCell::new(Vec::new),
        };
        assert!(!Gc::is_tracked(&Gc::new(leaves())));
        assert!(!Gc::is_tracked(&Gc::new(Cell::new(String::from("x")))));

        #[derive(Trace)]
        struct N {
            leaves: LocalLeaves,
            edge: Edge<Option<Gc<N>>>,
        }
        let a = Gc::new(N {
            leaves: leaves(),
            edge: Edge::new(None),
        });
        *a.edge.lock() = Some(a.clone());
        a.leaves.cells.0.set("changed".into());
        let w = Gc::downgrade(&a);
        drop(a);
        assert_eq!(collect(), 1);
        assert!(w.upgrade().is_none());
    }
}
