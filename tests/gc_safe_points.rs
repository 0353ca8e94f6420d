//! The single-thread flavor's safe points and thread exit (issue 12, item 5):
//! - automatic collections in `Gc::new` scan only; the garbage's `Drop`s run at a safe point
//!   (before: a `Drop` that locks a `Mutex` the allocating caller holds deadlocked `Gc::new`);
//! - a thread's garbage cycles never outlive it, whatever the order of its thread-locals
//!   (before: a cycle released by a thread-local destroyed after the exit collection leaked).

use pyheap::unsync::{gc, Gc};
use pyheap::Trace;
use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Trace, Default)]
struct Node(RefCell<Option<Gc<Node>>>);

/// Run `f` on a new thread; fail (instead of hanging the test run) if it does not finish in
/// `secs` seconds.
fn within<T: Send + 'static>(secs: u64, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let r = f();
        let _ = tx.send(r);
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(r) => r,
        Err(_) => panic!("{what}: no progress in {secs} s (deadlock)"),
    }
}

/// The reproducer: a self-cycle whose `Drop` locks a static `Mutex`, then 1000
/// `Gc::new` under that lock. Before: hung at about the 700th allocation (the automatic
/// collection ran the `Drop` inside `Gc::new`).
#[test]
fn gc_new_never_runs_a_drop_that_takes_a_lock_the_caller_holds() {
    static LOCK: Mutex<u32> = Mutex::new(0);
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    #[derive(Trace)]
    struct Locker(RefCell<Option<Gc<Locker>>>);
    impl Drop for Locker {
        fn drop(&mut self) {
            *LOCK.lock().unwrap() += 1;
            DROPS.fetch_add(1, Ordering::SeqCst);
        }
    }
    let (made, waiting, freed) = within(60, "Gc::new under a lock", || {
        let x = Gc::new(Locker(RefCell::new(None)));
        *x.0.borrow_mut() = Some(x.clone());
        drop(x); // garbage for the next automatic collection
        let guard = LOCK.lock().unwrap();
        let mut keep = Vec::new();
        for _ in 0..1000 {
            keep.push(Gc::new(Node::default())); // crosses the threshold (700)
        }
        let waiting = gc::waiting();
        drop(guard);
        let freed = gc::safe_point();
        (keep.len(), waiting, freed)
    });
    assert_eq!(made, 1000);
    assert_eq!(
        waiting, 1,
        "the automatic collection found the cycle and left it waiting"
    );
    assert_eq!(freed, 1);
    assert_eq!(DROPS.load(Ordering::SeqCst), 1);
}

/// A `RefCell` borrowed across `Gc::new` and borrowed again by a garbage `Drop`: before, a
/// `BorrowMutError` panic out of `Gc::new`.
#[test]
fn gc_new_never_runs_a_drop_that_borrows_a_refcell_the_caller_borrows() {
    thread_local!(static LOG: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) });
    #[derive(Trace)]
    struct Logger(RefCell<Option<Gc<Logger>>>);
    impl Drop for Logger {
        fn drop(&mut self) {
            LOG.with(|l| l.borrow_mut().push(1));
        }
    }
    within(60, "RefCell", || {
        let x = Gc::new(Logger(RefCell::new(None)));
        *x.0.borrow_mut() = Some(x.clone());
        drop(x);
        let mut keep = Vec::new();
        LOG.with(|l| {
            let mut log = l.borrow_mut();
            for _ in 0..1000 {
                keep.push(Gc::new(Node::default())); // crosses the threshold (700)
                log.push(0);
            }
        });
        assert_eq!(gc::safe_point(), 1);
        LOG.with(|l| assert_eq!(l.borrow().iter().filter(|&&v| v == 1).count(), 1));
    });
}

/// Every explicit collection is a safe point, and the waiting garbage is bounded by the
/// teardown limit when the program never reaches one.
#[test]
fn explicit_collections_are_safe_points_and_the_limit_bounds_waiting_garbage() {
    within(120, "limits", || {
        static DROPS: AtomicUsize = AtomicUsize::new(0);
        #[derive(Trace)]
        struct Counted(RefCell<Option<Gc<Counted>>>);
        impl Drop for Counted {
            fn drop(&mut self) {
                DROPS.fetch_add(1, Ordering::SeqCst);
            }
        }
        let cycle = || {
            let c = Gc::new(Counted(RefCell::new(None)));
            *c.0.borrow_mut() = Some(c.clone());
        };
        gc::set_threshold(100, 10, 10);
        for _ in 0..150 {
            cycle();
        }
        assert!(gc::waiting() >= 100);
        let before = DROPS.load(Ordering::SeqCst);
        let w = gc::waiting();
        assert_eq!(
            gc::collect(),
            50 + w,
            "the 50 still young ones and the waiting ones"
        );
        assert_eq!(DROPS.load(Ordering::SeqCst), before + 50 + w);
        assert_eq!(gc::waiting(), 0);

        // A limit of 300: waiting garbage stays within one collection's worth of it.
        gc::set_teardown_limit(Some(300));
        let mut peak = 0;
        for _ in 0..5_000 {
            cycle();
            peak = peak.max(gc::waiting());
        }
        assert!(peak <= 300 + 101, "peak {peak}");
        assert!(
            DROPS.load(Ordering::SeqCst) >= 4_000,
            "torn down past the limit"
        );
        // No limit: nothing is torn down until a safe point.
        gc::set_teardown_limit(None);
        gc::collect();
        let before = DROPS.load(Ordering::SeqCst);
        for _ in 0..5_000 {
            cycle();
        }
        assert_eq!(
            DROPS.load(Ordering::SeqCst),
            before,
            "no Drop ran in Gc::new"
        );
        assert!(gc::waiting() >= 4_900);
        assert_eq!(gc::safe_point() + gc::collect(), 5_000);
        assert_eq!(DROPS.load(Ordering::SeqCst), before + 5_000);
    });
}

/// The garbage left waiting is torn down when its thread exits.
#[test]
fn waiting_garbage_is_torn_down_at_thread_exit() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    #[derive(Trace)]
    struct Counted(RefCell<Option<Gc<Counted>>>);
    impl Drop for Counted {
        fn drop(&mut self) {
            DROPS.fetch_add(1, Ordering::SeqCst);
        }
    }
    let waited = std::thread::spawn(|| {
        gc::set_teardown_limit(None);
        for _ in 0..2_000 {
            let c = Gc::new(Counted(RefCell::new(None)));
            *c.0.borrow_mut() = Some(c.clone());
        }
        gc::waiting()
    })
    .join()
    .unwrap();
    assert!(waited > 1_000);
    assert_eq!(DROPS.load(Ordering::SeqCst), 2_000);
}

/// Thread exit, both orders of thread-locals (the measurement: 200 threads × one
/// 2-node cycle held by a thread-local touched before the first `Gc` leaked 400 nodes).
fn thread_exit_frees_cycles_held_by_thread_locals(touch_before_first_gc: bool) {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    #[derive(Trace)]
    struct Pair {
        other: RefCell<Option<Gc<Pair>>>,
        #[trace(skip)]
        _payload: Vec<u8>,
    }
    impl Drop for Pair {
        fn drop(&mut self) {
            DROPS.fetch_add(1, Ordering::SeqCst);
        }
    }
    thread_local! {
        static HOLD: RefCell<Option<Gc<Pair>>> = const { RefCell::new(None) };
    }
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let before = DROPS.load(Ordering::SeqCst);
    let threads = 200;
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || {
                if touch_before_first_gc {
                    HOLD.with(|_| ()); // its destructor runs after the first exit collection
                }
                let a = Gc::new(Pair {
                    other: RefCell::new(None),
                    _payload: vec![0; 1000],
                });
                let b = Gc::new(Pair {
                    other: RefCell::new(Some(a.clone())),
                    _payload: vec![0; 1000],
                });
                *a.other.borrow_mut() = Some(b);
                HOLD.with(|h| *h.borrow_mut() = Some(a));
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(DROPS.load(Ordering::SeqCst) - before, 2 * threads);
}

#[test]
fn thread_exit_frees_cycles_of_thread_locals_touched_before_the_first_gc() {
    thread_exit_frees_cycles_held_by_thread_locals(true);
}

#[test]
fn thread_exit_frees_cycles_of_thread_locals_touched_after_the_first_gc() {
    thread_exit_frees_cycles_held_by_thread_locals(false);
}

/// Found by the fuzzer: the last collection at thread exit runs a finalizer that resurrects
/// its object into a thread-local touched for the first time right then, whose destructor
/// glibc would never run (it ran the thread's list already). The cycle is held until that
/// destructor runs, then freed.
#[test]
fn thread_exit_frees_a_cycle_resurrected_into_a_thread_local_first_touched_at_exit() {
    use pyheap::Finalize;
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    static FINALIZED: AtomicUsize = AtomicUsize::new(0);
    #[derive(Trace)]
    struct Phoenix(RefCell<Option<Gc<Phoenix>>>);
    impl Drop for Phoenix {
        fn drop(&mut self) {
            DROPS.fetch_add(1, Ordering::SeqCst);
        }
    }
    thread_local! {
        static HOLD: RefCell<Option<Gc<Phoenix>>> = const { RefCell::new(None) };
        static STASH: RefCell<Vec<Gc<Phoenix>>> = const { RefCell::new(Vec::new()) };
    }
    impl Finalize for Phoenix {
        fn finalize(&self) {
            FINALIZED.fetch_add(1, Ordering::SeqCst);
            let me = self.0.borrow().clone();
            // First touch of STASH: during the exit collection.
            let _ = STASH.try_with(|s| s.borrow_mut().extend(me));
        }
    }
    std::thread::spawn(|| {
        HOLD.with(|_| ()); // destroyed after the first exit collection
        let p = Gc::new_finalized(Phoenix(RefCell::new(None)));
        *p.0.borrow_mut() = Some(p.clone());
        HOLD.with(|h| *h.borrow_mut() = Some(p));
    })
    .join()
    .unwrap();
    assert_eq!(FINALIZED.load(Ordering::SeqCst), 1);
    assert_eq!(
        DROPS.load(Ordering::SeqCst),
        1,
        "the resurrected cycle outlived its thread"
    );
}
