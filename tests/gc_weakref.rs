//! `weakref.ref(obj, callback)` and `weakref.finalize` (issue 15), for both flavors, on every
//! way an object stops being reachable through weak handles: refcount death (tracked and
//! untracked values), a garbage cycle's teardown (also one a finalizer resurrects),
//! `try_unwrap`, DEBUG_SAVEALL; a callback runs exactly once, after the object's finalizer
//! on a refcount death, and never once its `WeakRef` is gone.

#[macro_use]
#[path = "common/flavor.rs"]
mod flavor;

use pyheap::{Finalize, Trace};
use std::sync::{Arc, Mutex};

type Log = Arc<Mutex<Vec<String>>>;

fn log() -> Log {
    Arc::new(Mutex::new(Vec::new()))
}

fn push(l: &Log, s: impl Into<String>) {
    l.lock().unwrap().push(s.into());
}

fn take(l: &Log) -> Vec<String> {
    std::mem::take(&mut *l.lock().unwrap())
}

both_flavors! {

#[derive(Trace)]
struct Obj {
    #[trace(skip)]
    name: &'static str,
    #[trace(skip)]
    log: Log,
    next: Edge<Option<Gc<Obj>>>,
}

impl Drop for Obj {
    fn drop(&mut self) {
        push(&self.log, format!("drop {}", self.name));
    }
}

impl Finalize for Obj {
    fn finalize(&self) {
        push(&self.log, format!("finalize {}", self.name));
    }
}

fn obj(l: &Log, name: &'static str) -> Gc<Obj> {
    Gc::new_finalized(Obj { name, log: l.clone(), next: Edge::new(None) })
}

fn callback(l: &Log, s: &'static str) -> impl FnOnce() + Send + 'static {
    let l = l.clone();
    move || push(&l, s)
}

#[test]
fn refcount_death_runs_the_callback_after_the_finalizer_before_the_drop() {
    let _s = setup();
    let l = log();
    let a = obj(&l, "a");
    let r = weakref::WeakRef::with_callback(&a, callback(&l, "callback a"));
    drop(a);
    assert_eq!(take(&l), vec!["finalize a", "callback a", "drop a"]);
    assert!(r.upgrade().is_none());
    // Untracked values too.
    let s = Gc::new(String::from("x"));
    let r2 = weakref::WeakRef::with_callback(&s, callback(&l, "callback s"));
    drop(s);
    assert_eq!(take(&l), vec!["callback s"]);
    drop((r, r2));
    assert!(take(&l).is_empty());
}

#[test]
fn a_dropped_weakref_never_calls_back() {
    let _s = setup();
    let l = log();
    let a = obj(&l, "a");
    let r = weakref::WeakRef::with_callback(&a, callback(&l, "never"));
    let plain = weakref::WeakRef::new(&a);
    drop(r);
    assert!(plain.upgrade().is_some());
    drop(a);
    assert_eq!(take(&l), vec!["finalize a", "drop a"]);
    assert!(plain.upgrade().is_none());
}

#[test]
fn a_garbage_cycle_calls_back_once_when_its_teardown_starts() {
    let _s = setup();
    let l = log();
    let a = obj(&l, "a");
    let b = obj(&l, "b");
    *a.next.lock() = Some(b.clone());
    *b.next.lock() = Some(a.clone());
    let ra = weakref::WeakRef::with_callback(&a, callback(&l, "callback a"));
    let rb = weakref::WeakRef::with_callback(&b, callback(&l, "callback b"));
    drop((a, b));
    assert!(take(&l).is_empty(), "nothing before the collection");
    assert_eq!(collect(), 2);
    let got = take(&l);
    // Callbacks first (the weak handles are cleared), then finalizers, then drops.
    assert_eq!(got.len(), 6, "{got:?}");
    let pos = |s: &str| got.iter().position(|x| x == s).unwrap();
    assert!(pos("callback a") < pos("finalize a") && pos("callback b") < pos("finalize b"));
    assert!(pos("finalize a") < pos("drop a") && pos("finalize b") < pos("drop b"));
    assert!(ra.upgrade().is_none() && rb.upgrade().is_none());
    assert_eq!(collect(), 0);
    assert!(take(&l).is_empty());
}

#[test]
fn try_unwrap_calls_back() {
    let _s = setup();
    let l = log();
    let s = Gc::new(5u64);
    let r = weakref::WeakRef::with_callback(&s, callback(&l, "callback"));
    assert_eq!(Gc::try_unwrap(s).ok(), Some(5));
    assert_eq!(take(&l), vec!["callback"]);
    assert!(r.upgrade().is_none());
}

#[test]
fn saveall_calls_back_when_it_clears_the_weak_handles() {
    let _s = setup();
    let l = log();
    let a = obj(&l, "a");
    *a.next.lock() = Some(a.clone());
    let r = weakref::WeakRef::with_callback(&a, callback(&l, "callback"));
    drop(a);
    gc::set_debug(gc::DEBUG_SAVEALL);
    assert_eq!(collect(), 1);
    gc::set_debug(0);
    assert_eq!(take(&l), vec!["callback", "finalize a"]);
    assert!(r.upgrade().is_none());
    gc::clear_garbage();
    assert_eq!(collect(), 1);
    assert_eq!(take(&l), vec!["drop a"], "once only");
}

#[test]
fn finalize_runs_once_and_can_be_detached_or_called() {
    let _s = setup();
    let l = log();
    let a = obj(&l, "a");
    let f = weakref::finalize(&a, callback(&l, "fin"));
    assert!(f.alive() && f.atexit());
    drop(a);
    assert_eq!(take(&l), vec!["finalize a", "fin", "drop a"]);
    assert!(!f.alive());
    assert!(!f.call());

    let b = obj(&l, "b");
    let f = weakref::finalize(&b, callback(&l, "fin b"));
    assert!(f.call(), "called explicitly");
    assert!(!f.alive());
    drop(b);
    assert_eq!(take(&l), vec!["fin b", "finalize b", "drop b"]);

    let c = obj(&l, "c");
    let f = weakref::finalize(&c, callback(&l, "never"));
    let g = f.clone();
    assert!(g.detach().is_some());
    assert!(!f.alive());
    drop(c);
    assert_eq!(take(&l), vec!["finalize c", "drop c"]);
}

}

/// The thread-safe flavor's finalizers still alive run when the process exits (a child
/// process); the single-thread flavor's when their thread exits.
#[test]
fn finalizers_run_at_exit() {
    if std::env::var_os("PYHEAP_WEAKREF_CHILD").is_some() {
        let keep = pyheap::Gc::new(1u32);
        let f = pyheap::weakref::finalize(&keep, || println!("ran at exit"));
        let quiet = pyheap::weakref::finalize(&keep, || println!("should not run"));
        quiet.set_atexit(false);
        std::mem::forget((keep, f, quiet));
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "finalizers_run_at_exit", "--nocapture"])
        .env("PYHEAP_WEAKREF_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(stdout.contains("ran at exit"), "{stdout}");
    assert!(!stdout.contains("should not run"), "{stdout}");

    let l = log();
    let l2 = l.clone();
    std::thread::spawn(move || {
        let keep = pyheap::unsync::Gc::new(1u32);
        let _f = pyheap::unsync::weakref::finalize(&keep, move || push(&l2, "thread exit"));
        std::mem::forget(keep);
    })
    .join()
    .unwrap();
    assert_eq!(take(&l), vec!["thread exit"]);

    // A callback on a single-thread garbage cycle that only the thread's exit collection
    // finds runs then (the registry outlives the thread's other thread-locals).
    #[derive(Trace)]
    struct C(std::cell::RefCell<Option<pyheap::unsync::Gc<C>>>);
    let l2 = l.clone();
    std::thread::spawn(move || {
        pyheap::unsync::gc::disable();
        let c = pyheap::unsync::Gc::new(C(Default::default()));
        *c.0.borrow_mut() = Some(c.clone());
        let r = pyheap::unsync::weakref::WeakRef::with_callback(&c, move || push(&l2, "cycle"));
        std::mem::forget(r); // the reference outlives the thread: its callback stays
        drop(c);
    })
    .join()
    .unwrap();
    assert_eq!(take(&l), vec!["cycle"]);
}
