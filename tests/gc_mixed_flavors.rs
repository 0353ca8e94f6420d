//! Both flavors in one program: single-thread values owning thread-safe handles (issue 12,
//! item 1). Each collector must treat the other flavor's objects as outside its space: the
//! single-thread collector once read a shared object's header as its own, unlinked it from its
//! shard without the lock and tore it down, and the shared refcount path then dropped it
//! again (a double free from safe code).

use pyheap::Trace;
use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// This binary's tests share the process-wide space and the drop counters.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

static SHARED_DROPS: AtomicUsize = AtomicUsize::new(0);
static LOCAL_DROPS: AtomicUsize = AtomicUsize::new(0);
const CANARY: u64 = 0x5AFE_C0DE_D00D_F00D;

#[derive(Trace)]
struct Shared {
    #[trace(skip)]
    canary: u64,
    name: String,
    edges: Mutex<Vec<pyheap::Gc<Shared>>>,
}

impl Shared {
    fn new(name: &str) -> pyheap::Gc<Shared> {
        pyheap::Gc::new(Shared {
            canary: CANARY,
            name: name.to_string(),
            edges: Mutex::new(Vec::new()),
        })
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        assert_eq!(
            self.canary, CANARY,
            "Shared dropped twice or freed ({:?})",
            self.name
        );
        self.canary = 0;
        SHARED_DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Trace)]
struct Local {
    #[trace(skip)]
    canary: u64,
    me: RefCell<Option<pyheap::unsync::Gc<Local>>>,
    xs: Vec<pyheap::Gc<Shared>>,
}

impl Local {
    fn new(xs: Vec<pyheap::Gc<Shared>>) -> pyheap::unsync::Gc<Local> {
        let h = pyheap::unsync::Gc::new(Local {
            canary: CANARY,
            me: RefCell::new(None),
            xs,
        });
        *h.me.borrow_mut() = Some(h.clone()); // a self-cycle: only the collector frees it
        h
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        assert_eq!(self.canary, CANARY, "Local dropped twice");
        self.canary = 0;
        LOCAL_DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

fn reset() -> std::sync::MutexGuard<'static, ()> {
    let g = serial();
    pyheap::gc::disable();
    pyheap::unsync::gc::disable();
    pyheap::collect();
    SHARED_DROPS.store(0, Ordering::SeqCst);
    LOCAL_DROPS.store(0, Ordering::SeqCst);
    g
}

/// The issue's reproducer: a shared object with a huge count (bit 31 of its count word set,
/// which the single-thread collector read as its watch bit) held 64 times by a single-thread
/// cycle. Before the fix: `Shared::drop` twice, then `free(): double free detected`.
#[test]
fn issue_reproducer_shared_handles_in_a_single_thread_cycle() {
    let _g = reset();
    let x = Shared::new(&"x".repeat(40));
    let h = Local::new(vec![x.clone(); 64]);
    for _ in pyheap::Gc::strong_count(&x)..(1 << 25) + 1 {
        std::mem::forget(x.clone());
    }
    let keep = x.clone();
    std::mem::forget(x);
    pyheap::unsync::gc::collect_generation(2);
    drop(h.clone());
    drop(h);
    assert_eq!(
        pyheap::unsync::gc::collect_generation(1),
        1,
        "the Local cycle"
    );
    assert_eq!(LOCAL_DROPS.load(Ordering::SeqCst), 1);
    assert_eq!(SHARED_DROPS.load(Ordering::SeqCst), 0, "x is still held");
    // Its 64 handles went with the Local; the forgotten ones and `keep` stay.
    assert_eq!(pyheap::Gc::strong_count(&keep), (1 << 25) + 2 - 64);
    assert_eq!(keep.name.len(), 40);
    assert_eq!(pyheap::gc::collect_generation(2), 0);
    assert_eq!(SHARED_DROPS.load(Ordering::SeqCst), 0);
}

/// Every count adds up: a single-thread cycle holding shared handles (one of them to a shared
/// cycle) is freed by the single-thread collector alone, which releases its shared handles;
/// the shared cycle is then the shared collector's garbage, freed once.
#[test]
fn single_thread_cycle_releases_its_shared_handles_and_each_space_frees_its_own() {
    let _g = reset();
    let a = Shared::new("a");
    let b = Shared::new("b");
    a.edges.lock().unwrap().push(b.clone());
    b.edges.lock().unwrap().push(a.clone());
    let lone = Shared::new("lone");
    let h = Local::new(vec![a.clone(), b.clone(), lone.clone(), a.clone()]);
    let wa = pyheap::Gc::downgrade(&a);
    let wlone = pyheap::Gc::downgrade(&lone);
    drop((a, b, lone));
    // The shared collector sees the pair held from outside (the Local's handles).
    assert_eq!(pyheap::gc::collect_generation(2), 0);
    assert!(wa.upgrade().is_some());
    drop(h);
    // The single-thread collector frees its cycle and nothing of the shared space.
    assert_eq!(pyheap::unsync::gc::collect_generation(2), 1);
    assert_eq!(LOCAL_DROPS.load(Ordering::SeqCst), 1);
    assert_eq!(
        SHARED_DROPS.load(Ordering::SeqCst),
        1,
        "lone died by refcount"
    );
    assert!(wlone.upgrade().is_none());
    assert!(
        wa.upgrade().is_some(),
        "the shared pair is the shared collector's"
    );
    assert_eq!(pyheap::gc::collect_generation(2), 2);
    assert_eq!(SHARED_DROPS.load(Ordering::SeqCst), 3);
    assert!(wa.upgrade().is_none());
}

/// A shared collection on another thread while this thread's collector scans single-thread
/// values holding handles to the objects that collection scans. Before the fix the
/// single-thread `Tracer::edge` read and wrote the shared objects' `prev` word while the
/// shared scan owned it (an abort: "a Trace impl reported more edges than the value owns",
/// a null write in `move_unreachable`, or a live shared object torn down).
#[test]
fn shared_collections_on_another_thread_while_single_thread_cycles_hold_shared_handles() {
    let _g = reset();
    // A large live shared ring: every shared scan spends its time on these objects, which
    // the single-thread values below hold handles to.
    let n = 20_000;
    let ring: Vec<_> = (0..n).map(|i| Shared::new(&format!("r{i}"))).collect();
    for i in 0..n {
        ring[i]
            .edges
            .lock()
            .unwrap()
            .push(ring[(i + 1) % n].clone());
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let collector = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut freed = 0;
            while !stop.load(Ordering::Relaxed) {
                freed += pyheap::gc::collect_generation(2);
            }
            freed
        })
    };
    let rounds = 200;
    let mut loose = 0;
    for round in 0..rounds {
        // A Local cycle holding 500 handles into the ring and a few loose shared objects.
        let mut xs: Vec<_> = (0..500)
            .map(|i| ring[(round * 97 + i * 31) % n].clone())
            .collect();
        xs.extend((0..3).map(|i| Shared::new(&format!("l{round}.{i}"))));
        loose += 3;
        let h = Local::new(xs);
        for g in 0..3 {
            pyheap::unsync::gc::collect_generation(g);
        }
        assert!(h.xs.iter().all(|s| s.canary == CANARY));
        drop(h);
        assert_eq!(pyheap::unsync::gc::collect_generation(2), 1);
    }
    stop.store(true, Ordering::Relaxed);
    assert_eq!(collector.join().unwrap(), 0, "nothing shared was garbage");
    assert_eq!(LOCAL_DROPS.load(Ordering::SeqCst), rounds);
    assert_eq!(SHARED_DROPS.load(Ordering::SeqCst), loose);
    assert!(ring.iter().all(|s| pyheap::Gc::strong_count(s) == 2));
    drop(ring);
    assert_eq!(pyheap::gc::collect_generation(2), n);
    assert_eq!(SHARED_DROPS.load(Ordering::SeqCst), loose + n);
}

/// Old single-thread objects (the generation-1 examination of old objects that lost a
/// reference gathers along edges) and frozen ones holding shared handles.
#[test]
fn gathering_and_freezing_single_thread_objects_never_touch_shared_ones() {
    let _g = reset();
    let shared: Vec<_> = (0..10).map(|i| Shared::new(&format!("s{i}"))).collect();
    let frozen = Local::new(shared.clone());
    pyheap::unsync::gc::freeze();
    let h = Local::new(shared.clone());
    pyheap::unsync::gc::collect_generation(2); // old now, watched
    drop(frozen);
    drop(h.clone()); // h lost a reference: touched
    drop(h);
    assert_eq!(pyheap::unsync::gc::collect_generation(1), 1);
    assert_eq!(pyheap::unsync::gc::collect_generation(2), 0, "frozen stays");
    pyheap::unsync::gc::unfreeze();
    assert_eq!(pyheap::unsync::gc::collect_generation(2), 1);
    assert_eq!(LOCAL_DROPS.load(Ordering::SeqCst), 2);
    assert!(shared.iter().all(|s| pyheap::Gc::strong_count(s) == 1));
    drop(shared);
    assert_eq!(SHARED_DROPS.load(Ordering::SeqCst), 10);
}
