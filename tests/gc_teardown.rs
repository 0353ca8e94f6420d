//! Teardown of garbage sets: handles stashed by Drop impls, finalizer order and resurrection
//! (ports of CPython's test_gc / test_finalization), for both flavors (`mod unsync`,
//! `mod shared`; see `common/flavor.rs`). Drop impls that touch dead members or re-enter
//! (allocate, drop, collect) are tested in `gc_peer_failures.rs`.
//!
//! Explicit collections run finalizers and drops on the calling thread in both flavors, so
//! the thread-local logs below see them.

#[macro_use]
#[path = "common/flavor.rs"]
mod flavor;

use pyheap::{Finalize, Trace};
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};

both_flavors! {

thread_local! {
    static LOG: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    static STASH: RefCell<Vec<Gc<Obj>>> = const { RefCell::new(Vec::new()) };
}

fn log(s: String) {
    LOG.with(|l| l.borrow_mut().push(s));
}

fn take_log() -> Vec<String> {
    LOG.with(|l| std::mem::take(&mut *l.borrow_mut()))
}

/// What a test's objects do when finalized or dropped.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Act {
    Nothing,
    /// Drop: stash a handle to the other (dead) member in a thread-local.
    StashOther,
    /// Finalize: stash a handle to the other member (resurrects the set).
    Resurrect,
}

#[derive(Trace, Debug)]
struct Obj {
    name: &'static str,
    other: Edge<Option<Gc<Obj>>>,
    me: Edge<Weak<Obj>>,
    #[trace(skip)]
    act: Act,
}

impl Finalize for Obj {
    fn finalize(&self) {
        let me_alive = self.me.lock().upgrade().is_some();
        log(format!("fin {} weak_alive={}", self.name, me_alive));
        if self.act == Act::Resurrect {
            if let Some(o) = &*self.other.lock() {
                STASH.with(|s| s.borrow_mut().push(o.clone()));
            }
        }
    }
}

impl Drop for Obj {
    fn drop(&mut self) {
        log(format!("drop {}", self.name));
        let other = self.other.lock();
        if let (Act::StashOther, Some(o)) = (self.act, &*other) {
            STASH.with(|s| s.borrow_mut().push(o.clone()));
        }
    }
}

impl Obj {
    fn new(name: &'static str, act: Act, _f: bool) -> Obj {
        Obj {
            name,
            other: Edge::new(None),
            me: Edge::new(Weak::new()),
            act,
        }
    }
}

fn make(name: &'static str, act: Act, finalized: bool) -> Gc<Obj> {
    let o = Obj::new(name, act, finalized);
    let g = if finalized {
        Gc::new_finalized(o)
    } else {
        Gc::new(o)
    };
    *g.me.lock() = Gc::downgrade(&g);
    g
}

fn pair(a: &Gc<Obj>, b: &Gc<Obj>) {
    *a.other.lock() = Some(b.clone());
    *b.other.lock() = Some(a.clone());
}

fn setup_log() -> std::sync::MutexGuard<'static, ()> {
    let g = setup();
    take_log();
    STASH.with(|s| s.borrow_mut().clear());
    g
}

#[test]
fn handle_stashed_by_a_drop_keeps_a_dead_header() {
    let _s = setup_log();
    let a = make("a", Act::StashOther, false);
    let b = make("b", Act::Nothing, false);
    pair(&a, &b);
    let wb = Gc::downgrade(&b);
    drop((a, b));
    assert_eq!(collect(), 2);
    let stashed = STASH.with(|s| s.borrow_mut().pop()).expect("a stashed b");
    assert!(Gc::try_deref(&stashed).is_none());
    assert!(!Gc::is_tracked(&stashed));
    assert_eq!(Gc::strong_count(&stashed), 1);
    assert!(wb.upgrade().is_none());
    assert_eq!(format!("{stashed:?}"), "<dead>");
    assert!(catch_unwind(AssertUnwindSafe(|| stashed.name)).is_err());
    let clone = stashed.clone();
    assert!(Gc::try_unwrap(clone).is_err());
    drop(stashed);
    drop(wb);
    assert_eq!(collect(), 0);
}

#[test]
fn finalizers_run_once_before_any_drop_with_weaks_already_cleared() {
    let _s = setup_log();
    let a = make("a", Act::Nothing, true);
    let b = make("b", Act::Nothing, true);
    pair(&a, &b);
    drop((a, b));
    assert_eq!(collect(), 2);
    let log = take_log();
    assert_eq!(
        log,
        [
            "fin a weak_alive=false",
            "fin b weak_alive=false",
            "drop a",
            "drop b"
        ],
        "weak handles cleared first, all finalizers before any drop"
    );
}

#[test]
fn finalizer_runs_on_refcount_death_too() {
    let _s = setup_log();
    let a = make("solo", Act::Nothing, true);
    drop(a);
    assert_eq!(take_log(), ["fin solo weak_alive=false", "drop solo"]);
}

#[test]
fn resurrection_by_a_finalizer_is_honoured() {
    // test_finalization's SelfCycleResurrector / test_gc's test_resurrection, for a pair.
    let _s = setup_log();
    let a = make("a", Act::Resurrect, true);
    let b = make("b", Act::Nothing, true);
    pair(&a, &b);
    let wa = Gc::downgrade(&a);
    drop((a, b));
    assert_eq!(collect(), 0, "resurrected: nothing freed");
    assert_eq!(
        take_log(),
        ["fin a weak_alive=false", "fin b weak_alive=false"]
    );
    assert!(wa.upgrade().is_none(), "weak handles stay cleared");
    let b = STASH.with(|s| s.borrow_mut().pop()).unwrap();
    assert_eq!(b.name, "b");
    let a = b.other.lock().clone().unwrap();
    assert_eq!(a.name, "a", "the whole set lives on with working handles");
    assert!(Gc::is_tracked(&a));
    assert_eq!(collect(), 0, "still reachable");
    drop((a, b));
    assert_eq!(collect(), 2);
    assert_eq!(
        take_log(),
        ["drop a", "drop b"],
        "finalizers never run again"
    );
}

#[test]
fn only_the_resurrected_part_of_a_garbage_set_stays() {
    // CPython's handle_resurrected_objects: one collection finds two garbage pairs; a's
    // finalizer resurrects its own pair, which stays; the other pair is freed at once.
    let _s = setup_log();
    let a = make("a", Act::Resurrect, true);
    let b = make("b", Act::Nothing, false);
    pair(&a, &b);
    let z = make("z", Act::Nothing, false);
    let w = make("w", Act::Nothing, false);
    pair(&z, &w);
    drop((a, b, z, w));
    assert_eq!(collect(), 2, "the pair nobody resurrected is freed");
    let mut log = take_log();
    log.sort();
    assert_eq!(log, ["drop w", "drop z", "fin a weak_alive=false"]);
    let b = STASH.with(|s| s.borrow_mut().pop()).expect("a stashed b");
    assert_eq!(b.other.lock().as_ref().map(|a| a.name), Some("a"));
    drop(b);
    assert_eq!(collect(), 2);
    assert_eq!(take_log(), ["drop a", "drop b"], "finalizers never run again");
}

#[test]
fn stats_count_no_collected_objects_for_a_resurrected_set() {
    let _s = setup_log();
    let a = make("a", Act::Resurrect, true);
    *a.other.lock() = Some(a.clone());
    drop(a);
    let before = gc::stats()[2];
    assert_eq!(collect(), 0);
    let after = gc::stats()[2];
    assert_eq!(after.collected, before.collected);
    assert_eq!(after.collections, before.collections + 1);
    STASH.with(|s| s.borrow_mut().clear());
    assert_eq!(collect(), 1);
    take_log();
}

#[test]
fn a_panicking_drop_in_a_cycle_leaks_but_stays_sound() {
    #[derive(Trace)]
    struct Bomb(Edge<Option<Gc<Bomb>>>);
    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("boom");
        }
    }
    let _s = setup();
    let b = Gc::new(Bomb(Edge::new(None)));
    *b.0.lock() = Some(b.clone());
    drop(b);
    assert!(catch_unwind(collect).is_err());
    // The collector is usable again afterwards.
    let c = Gc::new(Vec::<Gc<u8>>::new());
    drop(c);
    assert_eq!(collect(), 0);
}

#[test]
fn gc_of_objects_with_many_finalizers_in_a_long_ring() {
    thread_local!(static FIN: Cell<usize> = const { Cell::new(0) });
    #[derive(Trace)]
    struct R(Edge<Option<Gc<R>>>);
    impl Finalize for R {
        fn finalize(&self) {
            FIN.with(|f| f.set(f.get() + 1));
        }
    }
    let _s = setup();
    let first = Gc::new_finalized(R(Edge::new(None)));
    let mut prev = first.clone();
    for _ in 1..100_000 {
        let n = Gc::new_finalized(R(Edge::new(None)));
        *prev.0.lock() = Some(n.clone());
        prev = n;
    }
    *prev.0.lock() = Some(first.clone());
    drop((prev, first));
    assert_eq!(collect(), 100_000);
    assert_eq!(FIN.with(|f| f.get()), 100_000);
}

}
