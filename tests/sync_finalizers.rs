//! Finalizers in the shared flavor (`pyheap::Gc`): after the finalizers of a garbage set ran,
//! the collection checks the set again with a validated scan of its own, so a set nobody
//! resurrected is freed by the same collection (as in CPython and the single-thread flavor),
//! and one a finalizer handed to another thread is kept while that thread holds it. (An
//! earlier version kept every finalized set for one collection; before that, the whole
//! garbage of a collection was kept as soon as any finalizer in it ran, so a program that
//! keeps making finalized cycles never had anything freed: `sync_stress.rs` found it.)

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
fn a_finalized_cycle_is_freed_by_the_collection_that_finalizes_it() {
    let _s = serial();
    let plain = Counters::new();
    let fin = Counters::new();
    plain.garbage_pair(false);
    fin.garbage_pair(true);
    assert_eq!(pyheap::collect(), 4);
    assert_eq!(fin.fins.load(SeqCst), 1, "the finalizer ran");
    assert_eq!(fin.drops(), 2, "nobody resurrected the finalized pair");
    assert_eq!(plain.drops(), 2);
    assert_eq!(pyheap::collect(), 0);
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
        assert_eq!(fin.drops(), 2 * i, "collection {i}");
    }
}

#[test]
fn what_a_finalizer_can_reach_is_freed_with_it_when_not_resurrected() {
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
    assert_eq!(pyheap::collect(), 3);
    assert_eq!(c.fins.load(SeqCst), 1);
    assert_eq!(c.drops(), 3);
}

/// Where the resurrecting finalizer below puts its handle.
static STASH: Mutex<Option<Gc<R>>> = Mutex::new(None);

#[derive(Trace)]
struct R {
    next: Mutex<Option<Gc<R>>>,
    #[trace(skip)]
    drops: Arc<AtomicUsize>,
    #[trace(skip)]
    canary: u64,
}

impl Drop for R {
    fn drop(&mut self) {
        assert_eq!(self.canary, 0xC0FFEE, "dropped twice or corrupted");
        self.canary = 0;
        self.drops.fetch_add(1, SeqCst);
    }
}

impl Finalize for R {
    fn finalize(&self) {
        // Resurrect the cycle: a handle to the other member goes where another thread finds it.
        let other = self.next.lock().unwrap().clone();
        *STASH.lock().unwrap() = other;
    }
}

#[test]
fn a_cycle_handed_to_another_thread_by_its_finalizer_is_kept_while_that_thread_holds_it() {
    let _s = serial();
    let drops = Arc::new(AtomicUsize::new(0));
    let mk = || {
        Gc::new_finalized(R {
            next: Mutex::new(None),
            drops: drops.clone(),
            canary: 0xC0FFEE,
        })
    };
    let a = mk();
    let b = mk();
    *a.next.lock().unwrap() = Some(b.clone());
    *b.next.lock().unwrap() = Some(a.clone());
    drop((a, b));
    let (took_tx, took_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        // Wait for the stash, take the handle, use it, then hold it until told.
        let h = loop {
            if let Some(h) = STASH.lock().unwrap().take() {
                break h;
            }
            std::thread::yield_now();
        };
        let c = h.clone();
        assert_eq!(c.canary, 0xC0FFEE);
        took_tx.send(()).unwrap();
        done_rx.recv().unwrap();
        assert_eq!(h.canary, 0xC0FFEE, "kept alive while held");
        drop((h, c));
    });
    // Both finalizers run (each stashes); the other thread holds one handle.
    assert_eq!(pyheap::collect(), 0, "resurrected: nothing freed");
    took_rx.recv().unwrap();
    assert_eq!(drops.load(SeqCst), 0);
    assert_eq!(pyheap::collect(), 0, "still held by the other thread");
    done_tx.send(()).unwrap();
    holder.join().unwrap();
    STASH.lock().unwrap().take();
    assert_eq!(
        pyheap::collect(),
        2,
        "freed once nobody holds it; finalizers do not run again"
    );
    assert_eq!(drops.load(SeqCst), 2);
}
