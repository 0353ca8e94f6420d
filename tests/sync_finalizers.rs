//! Finalizers in the shared flavor (`pyheap::Gc`): a garbage cycle whose finalizers ran is
//! kept until the next collection (documented on `pyheap::Gc::new_finalized`), but only that
//! cycle: garbage the finalizers cannot reach is freed by the same collection. Before the fix
//! the whole garbage of a collection was kept as soon as any finalizer in it ran, so a
//! program that keeps making finalized cycles never had anything freed (the stress test
//! `sync_stress.rs` found it: thousands of collections, almost nothing freed).

use pyheap::{Finalize, Gc, Trace};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

static SERIAL: Mutex<()> = Mutex::new(());

#[derive(Trace)]
struct N {
    edges: Mutex<Vec<Gc<N>>>,
    #[trace(skip)]
    drops: Arc<AtomicUsize>,
    #[trace(skip)]
    fins: Arc<AtomicUsize>,
}

impl Drop for N {
    fn drop(&mut self) {
        self.drops.fetch_add(1, SeqCst);
    }
}

impl Finalize for N {
    fn finalize(&self) {
        self.fins.fetch_add(1, SeqCst);
    }
}

struct Counters {
    drops: Arc<AtomicUsize>,
    fins: Arc<AtomicUsize>,
}

impl Counters {
    fn new() -> Self {
        Counters {
            drops: Arc::new(AtomicUsize::new(0)),
            fins: Arc::new(AtomicUsize::new(0)),
        }
    }
    fn node(&self, finalized: bool) -> Gc<N> {
        let n = N {
            edges: Mutex::new(Vec::new()),
            drops: self.drops.clone(),
            fins: self.fins.clone(),
        };
        if finalized {
            Gc::new_finalized(n)
        } else {
            Gc::new(n)
        }
    }
    /// A garbage pair (`a <-> b`), `a` finalized if asked.
    fn garbage_pair(&self, finalized: bool) {
        let a = self.node(finalized);
        let b = self.node(false);
        a.edges.lock().unwrap().push(b.clone());
        b.edges.lock().unwrap().push(a.clone());
    }
    fn drops(&self) -> usize {
        self.drops.load(SeqCst)
    }
}

fn serial() -> std::sync::MutexGuard<'static, ()> {
    let g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    pyheap::gc::disable();
    pyheap::collect();
    pyheap::collect();
    g
}

#[test]
fn a_cycle_without_finalizers_is_freed_next_to_a_finalized_one() {
    let _s = serial();
    let plain = Counters::new();
    let fin = Counters::new();
    plain.garbage_pair(false);
    fin.garbage_pair(true);
    pyheap::collect();
    assert_eq!(fin.fins.load(SeqCst), 1, "the finalizer ran");
    assert_eq!(
        fin.drops(),
        0,
        "the finalized pair waits for the next collection"
    );
    assert_eq!(
        plain.drops(),
        2,
        "the pair no finalizer can reach is freed by this collection"
    );
    pyheap::collect();
    assert_eq!(fin.drops(), 2);
    assert_eq!(fin.fins.load(SeqCst), 1, "finalizers never run twice");
}

#[test]
fn garbage_does_not_pile_up_while_finalized_cycles_keep_coming() {
    let _s = serial();
    let plain = Counters::new();
    let fin = Counters::new();
    for i in 1..=20 {
        plain.garbage_pair(false);
        fin.garbage_pair(true);
        pyheap::collect();
        assert_eq!(plain.drops(), 2 * i, "collection {i}");
        // Each finalized pair is freed by the collection after the one that finalized it.
        assert_eq!(fin.drops(), 2 * (i - 1), "collection {i}");
    }
    pyheap::collect();
    assert_eq!(fin.drops(), 40);
}

#[test]
fn what_a_finalizer_can_reach_is_kept_with_it() {
    // A finalized object pointing into a plain cycle: the plain cycle is reachable from the
    // finalizer, so it waits too (the finalizer could have stored a handle to it anywhere).
    let _s = serial();
    let c = Counters::new();
    let f = c.node(true);
    let a = c.node(false);
    let b = c.node(false);
    a.edges.lock().unwrap().push(b.clone());
    b.edges.lock().unwrap().push(a.clone());
    f.edges.lock().unwrap().push(a.clone());
    f.edges.lock().unwrap().push(f.clone());
    drop((f, a, b));
    pyheap::collect();
    assert_eq!(c.fins.load(SeqCst), 1);
    assert_eq!(c.drops(), 0);
    pyheap::collect();
    assert_eq!(c.drops(), 3);
}
