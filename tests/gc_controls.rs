//! The `pyheap::unsync::gc` controls (the per-thread space): thresholds, count(), stats(), disable(), freeze(), and the
//! generational rules (including the oldest generation's 25% long-lived rule).

use pyheap::unsync::gc;
use pyheap::unsync::Gc;
use pyheap::Trace;
use std::cell::RefCell;

#[derive(Trace, Default)]
struct N(RefCell<Option<Gc<N>>>);

fn garbage_self_cycle() {
    let n = Gc::new(N::default());
    *n.0.borrow_mut() = Some(n.clone());
}

#[test]
fn defaults() {
    assert_eq!(gc::threshold(), (700, 10, 10));
    assert!(gc::is_enabled());
    assert_eq!(gc::freeze_count(), 0);
    let s = gc::stats();
    assert_eq!(
        format!("{:?}", s[0]),
        format!("{:?}", gc::GenerationStats { ..s[0] })
    );
    assert!(format!("{:?}", s[0]).starts_with("GenerationStats { collections: "));
}

#[test]
fn count_tracks_allocations_and_collections() {
    gc::disable();
    pyheap::collect();
    assert_eq!(gc::count(), (0, 0, 0));
    let mut keep: Vec<Gc<N>> = (0..5).map(|_| Gc::new(N::default())).collect();
    let _untracked = Gc::new(String::from("not counted"));
    assert_eq!(gc::count(), (5, 0, 0));
    drop(keep.pop());
    assert_eq!(gc::count().0, 4, "a tracked death counts back");
    gc::collect_generation(0);
    assert_eq!(gc::count(), (0, 1, 0));
    gc::collect_generation(0);
    assert_eq!(gc::count(), (0, 2, 0));
    gc::collect_generation(1);
    assert_eq!(gc::count(), (0, 0, 1));
    pyheap::collect();
    assert_eq!(gc::count(), (0, 0, 0));
}

#[test]
fn stats_count_collections_and_collected_per_generation() {
    gc::disable();
    pyheap::collect();
    let s0 = gc::stats();
    garbage_self_cycle();
    garbage_self_cycle();
    assert_eq!(gc::collect_generation(0), 2);
    let s1 = gc::stats();
    assert_eq!(s1[0].collections, s0[0].collections + 1);
    assert_eq!(s1[0].collected, s0[0].collected + 2);
    assert_eq!(s1[1], s0[1]);
    garbage_self_cycle();
    assert_eq!(gc::collect_generation(1), 1);
    let s2 = gc::stats();
    assert_eq!(s2[1].collections, s1[1].collections + 1);
    assert_eq!(s2[1].collected, s1[1].collected + 1);
    assert_eq!(
        s2[0], s1[0],
        "a generation-1 collection is counted once, for generation 1"
    );
    assert_eq!(s2[2].uncollectable, 0);
}

#[test]
fn survivors_are_promoted() {
    gc::disable();
    pyheap::collect();
    let n = Gc::new(N::default());
    gc::collect_generation(0); // n survives: promoted into generation 1
    *n.0.borrow_mut() = Some(n.clone());
    drop(n);
    assert_eq!(
        gc::collect_generation(0),
        0,
        "the cycle lives in generation 1"
    );
    assert_eq!(gc::collect_generation(1), 1);
}

#[test]
fn old_objects_that_lose_a_reference_wait_for_a_generation_1_collection() {
    gc::disable();
    pyheap::collect();
    let n = Gc::new(N::default());
    gc::collect_generation(0); // promoted into generation 1
    gc::collect_generation(1); // and into generation 2
    *n.0.borrow_mut() = Some(n.clone());
    drop(n); // an old object lost a reference: it is examined by the next collection of 1
    assert_eq!(
        gc::collect_generation(0),
        0,
        "a young collection does not look at old objects"
    );
    let before = gc::stats();
    assert_eq!(gc::collect_generation(1), 1);
    let after = gc::stats();
    assert_eq!(after[1].collected, before[1].collected + 1);
    assert_eq!(after[2], before[2], "no full collection ran");
}

#[test]
fn automatic_collection_runs_past_the_threshold() {
    gc::enable();
    gc::set_threshold(10, 10, 10);
    pyheap::collect();
    let before = gc::stats();
    for _ in 0..100 {
        garbage_self_cycle();
    }
    let s = gc::stats();
    assert!(s[0].collections >= before[0].collections + 8, "{s:?}");
    assert!(gc::count().0 <= 10);
    // The automatic collections only scanned: their garbage waits for a safe point.
    assert_eq!(
        s[0].collected + s[1].collected,
        before[0].collected + before[1].collected
    );
    assert!(gc::waiting() >= 80, "{}", gc::waiting());
    let freed = gc::safe_point();
    assert!(freed >= 80);
    assert_eq!(gc::waiting(), 0);
    let s = gc::stats();
    assert_eq!(
        s[0].collected + s[1].collected,
        before[0].collected + before[1].collected + freed
    );
    gc::set_threshold(700, 10, 10);
}

#[test]
fn threshold_zero_and_disable_stop_automatic_collection() {
    gc::set_threshold(5, 10, 10);
    gc::disable();
    pyheap::collect();
    let before = gc::stats();
    for _ in 0..100 {
        garbage_self_cycle();
    }
    assert_eq!(gc::stats()[0].collections, before[0].collections);
    assert_eq!(gc::count().0, 100);
    gc::enable();
    gc::set_threshold(0, 10, 10);
    for _ in 0..100 {
        garbage_self_cycle();
    }
    assert_eq!(gc::stats()[0].collections, before[0].collections);
    assert_eq!(pyheap::collect(), 200);
    gc::set_threshold(700, 10, 10);
}

#[test]
fn oldest_generation_waits_for_25_percent_new_long_lived_objects() {
    gc::disable();
    let live: Vec<Gc<N>> = (0..100).map(|_| Gc::new(N::default())).collect();
    pyheap::collect(); // long_lived_total = 100 (plus nothing else on this thread)
    gc::set_threshold(1, 1, 1);
    gc::enable();
    let full_before = gc::stats()[2].collections;
    for _ in 0..1000 {
        garbage_self_cycle(); // young garbage only: nothing is promoted into generation 2
    }
    let s = gc::stats();
    assert!(s[1].collections > 10, "{s:?}");
    assert_eq!(
        s[2].collections, full_before,
        "no full collection without long-lived growth"
    );
    // Now let objects survive into generation 2: more than 25 of them triggers a full one.
    let mut more = Vec::new();
    for _ in 0..100 {
        more.push(Gc::new(N::default()));
        garbage_self_cycle();
    }
    assert!(gc::stats()[2].collections > full_before);
    gc::disable();
    gc::set_threshold(700, 10, 10);
    drop((live, more));
}

#[test]
fn freeze_hides_objects_from_collections() {
    gc::disable();
    pyheap::collect();
    garbage_self_cycle();
    garbage_self_cycle();
    gc::freeze();
    assert_eq!(gc::freeze_count(), 2);
    assert_eq!(gc::count().0, 0);
    assert_eq!(pyheap::collect(), 0);
    gc::unfreeze();
    assert_eq!(gc::freeze_count(), 0);
    assert_eq!(pyheap::collect(), 2);
}

#[test]
#[should_panic(expected = "invalid generation")]
fn collect_generation_rejects_bad_generations() {
    gc::collect_generation(3);
}

#[test]
fn each_thread_has_its_own_space_and_exit_collects_it() {
    thread_local!(static SEEN: RefCell<u32> = const { RefCell::new(0) });
    #[derive(Trace)]
    struct D(
        RefCell<Option<Gc<D>>>,
        #[trace(skip)] std::sync::Arc<std::sync::atomic::AtomicU32>,
    );
    impl Drop for D {
        fn drop(&mut self) {
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let h2 = hits.clone();
    std::thread::spawn(move || {
        gc::disable();
        let d = Gc::new(D(RefCell::new(None), h2));
        *d.0.borrow_mut() = Some(d.clone());
        drop(d);
        SEEN.with(|s| *s.borrow_mut() += 1);
    })
    .join()
    .unwrap();
    assert_eq!(pyheap::collect(), 0, "another thread's garbage is not ours");
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "collected at thread exit"
    );
}

#[test]
fn handles_in_other_thread_locals_outlive_the_exit_collection_safely() {
    use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
    use std::sync::Arc;
    #[derive(Trace)]
    struct D(RefCell<Option<Gc<D>>>, #[trace(skip)] Arc<AtomicU32>);
    impl Drop for D {
        fn drop(&mut self) {
            self.1.fetch_add(1, SeqCst);
        }
    }
    thread_local! {
        static EARLY: RefCell<Option<Gc<D>>> = const { RefCell::new(None) };
    }
    let drops = Arc::new(AtomicU32::new(0));
    let d2 = drops.clone();
    std::thread::spawn(move || {
        // A live cycle held from a thread-local registered before pyheap's exit guard, so it
        // may be destroyed before or after the exit collection.
        let a = Gc::new(D(RefCell::new(None), d2.clone()));
        *a.0.borrow_mut() = Some(a.clone());
        EARLY.with(|e| *e.borrow_mut() = Some(a));
        // Garbage for the exit collection.
        let g = Gc::new(D(RefCell::new(None), d2.clone()));
        *g.0.borrow_mut() = Some(g.clone());
        drop(g);
        LATE.with(|l| {
            let b = Gc::new(D(RefCell::new(None), d2));
            *l.borrow_mut() = Some(b);
        });
    })
    .join()
    .unwrap();
    thread_local! {
        static LATE: RefCell<Option<Gc<D>>> = const { RefCell::new(None) };
    }
    // The garbage cycle was collected at exit; the plain object in LATE died with its
    // thread-local; the cycle in EARLY is either collected (if EARLY went first) or leaked.
    let n = drops.load(SeqCst);
    assert!((2..=3).contains(&n), "{n}");
}
