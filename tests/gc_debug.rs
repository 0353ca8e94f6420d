//! `gc.set_debug`, `gc.garbage`, `gc.is_finalized` and `gc.callbacks` (issue 15), for both
//! flavors: SAVEALL keeps and then releases the garbage, callbacks see the right counts and
//! may call the controls, the debug lines appear on stderr.

#[macro_use]
#[path = "common/flavor.rs"]
mod flavor;

use pyheap::{Finalize, Trace};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

both_flavors! {

static DROPS: AtomicUsize = AtomicUsize::new(0);
static FINALS: AtomicUsize = AtomicUsize::new(0);

#[derive(Trace)]
struct N {
    #[trace(skip)]
    id: usize,
    next: Edge<Option<Gc<N>>>,
}

impl Drop for N {
    fn drop(&mut self) {
        DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

impl Finalize for N {
    fn finalize(&self) {
        FINALS.fetch_add(1, Ordering::SeqCst);
    }
}

/// A garbage ring of `n` finalized nodes; returns weak handles.
fn ring(n: usize) -> Vec<Weak<N>> {
    let nodes: Vec<_> = (0..n)
        .map(|id| Gc::new_finalized(N { id, next: Edge::new(None) }))
        .collect();
    for i in 0..n {
        *nodes[i].next.lock() = Some(nodes[(i + 1) % n].clone());
    }
    nodes.iter().map(Gc::downgrade).collect()
}

#[test]
fn saveall_keeps_the_garbage_usable_then_releases_it() {
    let _s = setup();
    DROPS.store(0, Ordering::SeqCst);
    FINALS.store(0, Ordering::SeqCst);
    let weaks = ring(3);
    gc::set_debug(gc::DEBUG_SAVEALL);
    assert_eq!(gc::get_debug(), gc::DEBUG_SAVEALL);
    assert_eq!(collect(), 3, "found and saved");
    gc::set_debug(0);
    assert_eq!(DROPS.load(Ordering::SeqCst), 0, "nothing freed");
    assert_eq!(FINALS.load(Ordering::SeqCst), 3, "finalizers ran, as CPython");
    assert!(weaks.iter().all(|w| w.upgrade().is_none()), "weak handles cleared");
    let saved = gc::garbage();
    assert_eq!(saved.len(), 3);
    let mut ids: Vec<usize> = Vec::new();
    for g in &saved {
        let n: Gc<N> = g.clone().downcast().map_err(|_| ()).unwrap();
        assert!(gc::is_finalized(&n));
        // The ring is intact and usable.
        let next = n.next.lock().clone().unwrap();
        assert_eq!(next.id, (n.id + 1) % 3);
        ids.push(n.id);
    }
    ids.sort();
    assert_eq!(ids, vec![0, 1, 2]);
    // Saved objects survive collections while the list holds them.
    assert_eq!(collect(), 0);
    drop(saved);
    assert_eq!(gc::clear_garbage(), 3);
    assert!(gc::garbage().is_empty());
    assert_eq!(collect(), 3, "unreachable again: freed");
    assert_eq!(DROPS.load(Ordering::SeqCst), 3);
    assert_eq!(FINALS.load(Ordering::SeqCst), 3, "finalizers never run twice");
}

#[test]
fn set_debug_rejects_unknown_flags() {
    let _s = setup();
    assert!(std::panic::catch_unwind(|| gc::set_debug(0x100)).is_err());
    gc::set_debug(gc::DEBUG_LEAK);
    assert_eq!(gc::get_debug(), gc::DEBUG_LEAK);
    gc::set_debug(0);
}

#[test]
fn callbacks_see_start_and_stop_with_the_counts_and_may_call_the_controls() {
    let _s = setup();
    type Seen = Vec<(gc::Phase, usize, usize, usize)>;
    let log: Arc<Mutex<Seen>> = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    let id = gc::callbacks::add(move |phase, info| {
        // The controls work and a nested collection returns 0.
        let _ = gc::threshold();
        let nested = gc::collect_generation(0);
        let _ = gc::get_objects::<N>();
        l.lock().unwrap().push((phase, info.generation, info.collected, nested));
    });
    let _w = ring(4);
    let freed = gc::collect_generation(2);
    assert_eq!(freed, 4);
    let got = log.lock().unwrap().clone();
    assert!(got.contains(&(gc::Phase::Start, 2, 0, 0)), "{got:?}");
    assert!(got.contains(&(gc::Phase::Stop, 2, 4, 0)), "{got:?}");
    assert!(gc::callbacks::remove(id));
    log.lock().unwrap().clear();
    collect();
    assert!(log.lock().unwrap().is_empty(), "removed");
}

#[test]
fn a_panicking_callback_does_not_stop_the_collection() {
    let _s = setup();
    DROPS.store(0, Ordering::SeqCst);
    let id = gc::callbacks::add(|phase, _| {
        if phase == gc::Phase::Start {
            panic!("callback");
        }
    });
    let _w = ring(2);
    let r = std::panic::catch_unwind(|| gc::collect_generation(2));
    assert!(r.is_err());
    assert_eq!(DROPS.load(Ordering::SeqCst), 2, "the teardown ran all the same");
    gc::callbacks::remove(id);
}

}

/// The debug lines, on stderr (a child process, whose stderr the test reads).
#[test]
fn debug_stats_and_collectable_lines() {
    if std::env::var_os("PYHEAP_DEBUG_CHILD").is_some() {
        #[derive(Trace)]
        struct Leaky(Mutex<Option<pyheap::Gc<Leaky>>>);
        pyheap::gc::disable();
        let a = pyheap::Gc::new(Leaky(Mutex::new(None)));
        *a.0.lock().unwrap() = Some(a.clone());
        drop(a);
        pyheap::gc::set_debug(pyheap::gc::DEBUG_STATS | pyheap::gc::DEBUG_COLLECTABLE);
        pyheap::gc::collect_generation(2);
        pyheap::gc::set_debug(0);
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "debug_stats_and_collectable_lines",
            "--nocapture",
        ])
        .env("PYHEAP_DEBUG_CHILD", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("gc: collecting generation 2..."), "{err}");
    assert!(
        err.contains("gc: done, 1 unreachable, 0 uncollectable"),
        "{err}"
    );
    assert!(
        err.contains("gc: collectable <gc_debug::debug_stats_and_collectable_lines::Leaky @ 0x"),
        "{err}"
    );
}
