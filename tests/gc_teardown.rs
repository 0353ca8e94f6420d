//! Teardown of garbage sets: Drop impls touching dead members, allocating, collecting;
//! finalizer order and resurrection (ports of CPython's test_gc / test_finalization).

use pyheap::unsync::{Gc, Weak};
use pyheap::{Finalize, Trace};
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};

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
    /// Drop: look at the other member through `try_deref` and `Deref`.
    Peek,
    /// Drop: stash a handle to the other (dead) member in a thread-local.
    StashOther,
    /// Finalize: stash a handle to the other member (resurrects the set).
    Resurrect,
    /// Drop: create a new garbage cycle and call collect().
    AllocAndCollect,
}

#[derive(Trace, Debug)]
struct Obj {
    name: &'static str,
    other: RefCell<Option<Gc<Obj>>>,
    me: RefCell<Weak<Obj>>,
    #[trace(skip)]
    act: Act,
}

impl Finalize for Obj {
    fn finalize(&self) {
        let me_alive = self.me.borrow().upgrade().is_some();
        log(format!("fin {} weak_alive={}", self.name, me_alive));
        if self.act == Act::Resurrect {
            if let Some(o) = &*self.other.borrow() {
                STASH.with(|s| s.borrow_mut().push(o.clone()));
            }
        }
    }
}

impl Drop for Obj {
    fn drop(&mut self) {
        log(format!("drop {}", self.name));
        let other = self.other.borrow();
        match (self.act, &*other) {
            (Act::Peek, Some(o)) => {
                log(format!("try_deref {}", Gc::try_deref(o).is_some()));
                let r = catch_unwind(AssertUnwindSafe(|| o.name.len()));
                log(format!("deref panicked {}", r.is_err()));
                log(format!("debug {:?}", Gc::try_deref(o).map(|o| o.name)));
            }
            (Act::StashOther, Some(o)) => STASH.with(|s| s.borrow_mut().push(o.clone())),
            (Act::AllocAndCollect, _) => {
                let n = Gc::new(Obj::new("new", Act::Nothing, false));
                *n.other.borrow_mut() = Some(n.clone());
                log(format!("nested collect {}", pyheap::collect()));
            }
            _ => {}
        }
    }
}

impl Obj {
    fn new(name: &'static str, act: Act, _f: bool) -> Obj {
        Obj {
            name,
            other: RefCell::new(None),
            me: RefCell::new(Weak::new()),
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
    *g.me.borrow_mut() = Gc::downgrade(&g);
    g
}

fn pair(a: &Gc<Obj>, b: &Gc<Obj>) {
    *a.other.borrow_mut() = Some(b.clone());
    *b.other.borrow_mut() = Some(a.clone());
}

fn setup() {
    pyheap::gc::disable();
    pyheap::collect();
    take_log();
    STASH.with(|s| s.borrow_mut().clear());
}

#[test]
fn drop_touching_a_dead_member_gets_none_and_a_panic() {
    setup();
    let a = make("a", Act::Peek, false);
    let b = make("b", Act::Peek, false);
    pair(&a, &b);
    drop((a, b));
    assert_eq!(pyheap::collect(), 2);
    let log = take_log();
    assert_eq!(
        log,
        [
            "drop a",
            "try_deref false",
            "deref panicked true",
            "debug None",
            "drop b",
            "try_deref false",
            "deref panicked true",
            "debug None",
        ]
    );
}

#[test]
fn handle_stashed_by_a_drop_keeps_a_dead_header() {
    setup();
    let a = make("a", Act::StashOther, false);
    let b = make("b", Act::Nothing, false);
    pair(&a, &b);
    let wb = Gc::downgrade(&b);
    drop((a, b));
    assert_eq!(pyheap::collect(), 2);
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
    assert_eq!(pyheap::collect(), 0);
}

#[test]
fn drop_that_allocates_and_collects() {
    setup();
    let a = make("a", Act::AllocAndCollect, false);
    *a.other.borrow_mut() = Some(a.clone());
    drop(a);
    assert_eq!(pyheap::collect(), 1);
    assert_eq!(take_log(), ["drop a", "nested collect 0"]);
    // The cycle made inside the drop is ordinary garbage for the next collection.
    assert_eq!(pyheap::collect(), 1);
    assert_eq!(take_log(), ["drop new"]);
}

#[test]
fn drop_by_refcount_that_collects() {
    setup();
    let g = make("g", Act::Nothing, false);
    *g.other.borrow_mut() = Some(g.clone());
    drop(g);
    let a = make("a", Act::AllocAndCollect, false);
    drop(a);
    // a's drop ran a real collection: it found g's self-cycle, but not the new cycle, which
    // the drop's own frame still held.
    let log = take_log();
    assert_eq!(log[0], "drop a");
    assert!(log.contains(&"drop g".to_string()));
    assert_eq!(log.last().unwrap(), "nested collect 1");
    assert_eq!(pyheap::collect(), 1);
}

#[test]
fn finalizers_run_once_before_any_drop_with_weaks_already_cleared() {
    setup();
    let a = make("a", Act::Nothing, true);
    let b = make("b", Act::Nothing, true);
    pair(&a, &b);
    drop((a, b));
    assert_eq!(pyheap::collect(), 2);
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
    setup();
    let a = make("solo", Act::Nothing, true);
    drop(a);
    assert_eq!(take_log(), ["fin solo weak_alive=false", "drop solo"]);
}

#[test]
fn resurrection_by_a_finalizer_is_honoured() {
    // test_finalization's SelfCycleResurrector / test_gc's test_resurrection, for a pair.
    setup();
    let a = make("a", Act::Resurrect, true);
    let b = make("b", Act::Nothing, true);
    pair(&a, &b);
    let wa = Gc::downgrade(&a);
    drop((a, b));
    assert_eq!(pyheap::collect(), 0, "resurrected: nothing freed");
    assert_eq!(
        take_log(),
        ["fin a weak_alive=false", "fin b weak_alive=false"]
    );
    assert!(wa.upgrade().is_none(), "weak handles stay cleared");
    let b = STASH.with(|s| s.borrow_mut().pop()).unwrap();
    assert_eq!(b.name, "b");
    let a = b.other.borrow().clone().unwrap();
    assert_eq!(a.name, "a", "the whole set lives on with working handles");
    assert!(Gc::is_tracked(&a));
    assert_eq!(pyheap::collect(), 0, "still reachable");
    drop((a, b));
    assert_eq!(pyheap::collect(), 2);
    assert_eq!(
        take_log(),
        ["drop a", "drop b"],
        "finalizers never run again"
    );
}

#[test]
fn stats_count_no_collected_objects_for_a_resurrected_set() {
    setup();
    let a = make("a", Act::Resurrect, true);
    *a.other.borrow_mut() = Some(a.clone());
    drop(a);
    let before = pyheap::gc::stats()[2];
    assert_eq!(pyheap::collect(), 0);
    let after = pyheap::gc::stats()[2];
    assert_eq!(after.collected, before.collected);
    assert_eq!(after.collections, before.collections + 1);
    STASH.with(|s| s.borrow_mut().clear());
    assert_eq!(pyheap::collect(), 1);
    take_log();
}

#[test]
fn a_panicking_drop_in_a_cycle_leaks_but_stays_sound() {
    #[derive(Trace)]
    struct Bomb(RefCell<Option<Gc<Bomb>>>);
    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("boom");
        }
    }
    pyheap::gc::disable();
    pyheap::collect();
    let b = Gc::new(Bomb(RefCell::new(None)));
    *b.0.borrow_mut() = Some(b.clone());
    drop(b);
    assert!(catch_unwind(pyheap::collect).is_err());
    // The collector is usable again afterwards.
    let c = Gc::new(Vec::<Gc<u8>>::new());
    drop(c);
    assert_eq!(pyheap::collect(), 0);
}

#[test]
fn gc_of_objects_with_many_finalizers_in_a_long_ring() {
    thread_local!(static FIN: Cell<usize> = const { Cell::new(0) });
    #[derive(Trace)]
    struct R(RefCell<Option<Gc<R>>>);
    impl Finalize for R {
        fn finalize(&self) {
            FIN.with(|f| f.set(f.get() + 1));
        }
    }
    pyheap::gc::disable();
    let first = Gc::new_finalized(R(RefCell::new(None)));
    let mut prev = first.clone();
    for _ in 1..100_000 {
        let n = Gc::new_finalized(R(RefCell::new(None)));
        *prev.0.borrow_mut() = Some(n.clone());
        prev = n;
    }
    *prev.0.borrow_mut() = Some(first.clone());
    drop((prev, first));
    assert_eq!(pyheap::collect(), 100_000);
    assert_eq!(FIN.with(|f| f.get()), 100_000);
}
