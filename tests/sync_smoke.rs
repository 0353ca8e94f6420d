//! First checks of the thread-safe flavor (`pyheap::Gc`): cycles found, locked interiors kept,
//! drops exactly once, across threads. The shared space is process-wide, so every test here
//! takes `SERIAL` and counts its own drops instead of trusting `collect()`'s total.

use pyheap::{Gc, Trace, Weak};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Trace)]
struct Node {
    #[trace(skip)]
    drops: Arc<AtomicUsize>,
    edges: Mutex<Vec<Gc<Node>>>,
}

impl Node {
    fn new(drops: &Arc<AtomicUsize>) -> Gc<Node> {
        Gc::new(Node {
            drops: drops.clone(),
            edges: Mutex::new(Vec::new()),
        })
    }
    fn link(&self, to: &Gc<Node>) {
        self.edges.lock().unwrap().push(to.clone());
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn pair_cycle_is_collected() {
    let _s = serial();
    let drops = Arc::new(AtomicUsize::new(0));
    let a = Node::new(&drops);
    let b = Node::new(&drops);
    a.link(&b);
    b.link(&a);
    let w = Gc::downgrade(&a);
    drop((a, b));
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    assert!(pyheap::collect() >= 2);
    assert_eq!(drops.load(Ordering::SeqCst), 2);
    assert!(w.upgrade().is_none());
}

#[test]
fn held_lock_keeps_cycle_until_released() {
    let _s = serial();
    let drops = Arc::new(AtomicUsize::new(0));
    let a = Node::new(&drops);
    let b = Node::new(&drops);
    a.link(&b);
    b.link(&a);
    let guard = a.edges.lock().unwrap();
    let wa = Gc::downgrade(&a);
    drop(b);
    // `a` is still held by us: nothing to free.
    pyheap::collect();
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    drop(guard);
    drop(a);
    pyheap::collect();
    assert_eq!(drops.load(Ordering::SeqCst), 2);
    assert!(wa.upgrade().is_none());
}

#[test]
fn collecting_while_this_thread_holds_a_member_lock_does_not_deadlock() {
    let _s = serial();
    let drops = Arc::new(AtomicUsize::new(0));
    let a = Node::new(&drops);
    a.link(&a);
    let b = a.clone();
    let g = b.edges.lock().unwrap();
    let w = Gc::downgrade(&a);
    drop(a);
    // A member's lock is held by this very thread while it collects: `try_lock` fails,
    // the edges behind it count as outside references, nothing blocks, nothing is freed.
    pyheap::collect();
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    assert!(w.upgrade().is_some());
    drop(g);
    drop(b);
    pyheap::collect();
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn poisoned_lock_is_traced_through() {
    let _s = serial();
    let drops = Arc::new(AtomicUsize::new(0));
    let a = Node::new(&drops);
    a.link(&a);
    let a2 = a.clone();
    let _ = std::thread::spawn(move || {
        let _g = a2.edges.lock().unwrap();
        panic!("poison it");
    })
    .join();
    assert!(a.edges.is_poisoned());
    drop(a);
    pyheap::collect();
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn threads_clone_and_drop_while_collecting() {
    let _s = serial();
    let drops = Arc::new(AtomicUsize::new(0));
    let n = if cfg!(miri) { 12 } else { 200 };
    let nodes: Vec<_> = (0..n).map(|_| Node::new(&drops)).collect();
    for i in 0..n {
        nodes[i].link(&nodes[(i + 1) % n]);
        nodes[i].link(&nodes[(i * 7 + 3) % n]);
    }
    let root = nodes[0].clone();
    drop(nodes);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut ts = Vec::new();
    for t in 0..3 {
        let r = root.clone();
        let stop = stop.clone();
        ts.push(std::thread::spawn(move || {
            let mut cur = r;
            let mut i = t;
            while !stop.load(Ordering::Relaxed) {
                let next = {
                    let e = cur.edges.lock().unwrap();
                    e[i % e.len()].clone()
                };
                let w = Gc::downgrade(&next);
                drop(w.upgrade());
                cur = next;
                i += 1;
            }
        }));
    }
    let collector = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                pyheap::collect();
            }
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(if cfg!(miri) {
        20
    } else {
        500
    }));
    assert_eq!(
        drops.load(Ordering::SeqCst),
        0,
        "reachable nodes were freed"
    );
    stop.store(true, Ordering::Relaxed);
    for t in ts {
        t.join().unwrap();
    }
    collector.join().unwrap();
    drop(root);
    pyheap::collect();
    assert_eq!(drops.load(Ordering::SeqCst), n);
}

#[test]
fn rwlock_and_weak_and_get_mut() {
    let _s = serial();
    #[derive(Trace, Default)]
    struct R {
        next: RwLock<Option<Gc<R>>>,
        back: Mutex<Weak<R>>,
    }
    let mut a = Gc::new(R::default());
    assert!(Gc::get_mut(&mut a).is_some());
    let b = Gc::new(R::default());
    *a.next.write().unwrap() = Some(b.clone());
    *b.next.write().unwrap() = Some(a.clone());
    *b.back.lock().unwrap() = Gc::downgrade(&a);
    let wb = Gc::downgrade(&b);
    drop((a, b));
    pyheap::collect();
    assert!(wb.upgrade().is_none());
}

#[test]
#[cfg_attr(miri, ignore = "5000 objects and a wait loop: too slow under Miri")]
fn automatic_collection_runs_on_the_collector_thread() {
    let _s = serial();
    let drops = Arc::new(AtomicUsize::new(0));
    for _ in 0..5000 {
        let a = Node::new(&drops);
        a.link(&a);
    }
    // The collector thread runs in the background (possibly still busy with an earlier test's
    // million objects, in a debug build on a loaded machine); wait for it to catch up.
    for _ in 0..3000 {
        if drops.load(Ordering::SeqCst) >= 4000 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(
        drops.load(Ordering::SeqCst) >= 4000,
        "{}",
        drops.load(Ordering::SeqCst)
    );
    // `collect()` frees what it finds and what is queued, but does not wait for a batch the
    // collector thread is tearing down (a `Drop` there could be waiting for this thread);
    // `wait_for_teardowns` does.
    pyheap::collect();
    pyheap::gc::wait_for_teardowns();
    assert_eq!(drops.load(Ordering::SeqCst), 5000);
}

#[test]
#[cfg_attr(miri, ignore = "a million nodes: too slow under Miri")]
fn long_chain_drops_without_recursion() {
    let _s = serial();
    let drops = Arc::new(AtomicUsize::new(0));
    let mut head = Node::new(&drops);
    for _ in 0..1_000_000 {
        let n = Node::new(&drops);
        n.link(&head);
        head = n;
    }
    drop(head);
    assert_eq!(drops.load(Ordering::SeqCst), 1_000_001);
}

#[test]
fn slices_and_str_and_a_cycle_through_a_tracked_slice() {
    let _s = serial();
    let s: Gc<str> = Gc::from("héllo");
    let t = s.clone();
    assert_eq!(std::thread::spawn(move || t.len()).join().unwrap(), 6);
    assert!(!Gc::is_tracked(&s));
    let nums: Gc<[u64]> = (1..=10).collect();
    assert_eq!(nums.iter().sum::<u64>(), 55);
    let strings: Gc<[String]> = Gc::from(&["a".to_string(), "b".to_string()][..]);
    assert_eq!(strings[1], "b");

    #[derive(Trace)]
    struct N {
        #[trace(skip)]
        drops: Arc<AtomicUsize>,
        s: Mutex<Option<Gc<[Gc<N>]>>>,
    }
    impl Drop for N {
        fn drop(&mut self) {
            self.drops.fetch_add(1, Ordering::SeqCst);
        }
    }
    let drops = Arc::new(AtomicUsize::new(0));
    let a = Gc::new(N {
        drops: drops.clone(),
        s: Mutex::new(None),
    });
    let slice: Gc<[Gc<N>]> = Gc::from(vec![a.clone(), a.clone()]);
    assert!(Gc::is_tracked(&slice));
    let ws = Gc::downgrade(&slice);
    *a.s.lock().unwrap() = Some(slice);
    drop(a);
    pyheap::collect();
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert!(ws.upgrade().is_none());
}

#[test]
fn a_cycle_through_a_once_lock_is_collected() {
    let _s = serial();
    #[derive(Trace)]
    struct O {
        #[trace(skip)]
        drops: Arc<AtomicUsize>,
        next: std::sync::OnceLock<Gc<O>>,
    }
    impl Drop for O {
        fn drop(&mut self) {
            self.drops.fetch_add(1, Ordering::SeqCst);
        }
    }
    const { assert!(!<std::sync::OnceLock<u32> as Trace>::MAY_CONTAIN_GC) };
    let drops = Arc::new(AtomicUsize::new(0));
    let a = Gc::new(O {
        drops: drops.clone(),
        next: std::sync::OnceLock::new(),
    });
    let b = Gc::new(O {
        drops: drops.clone(),
        next: std::sync::OnceLock::new(),
    });
    a.next.set(b.clone()).ok().unwrap();
    b.next.set(a.clone()).ok().unwrap();
    drop(a);
    pyheap::collect();
    assert_eq!(drops.load(Ordering::SeqCst), 0, "b is still held");
    drop(b);
    pyheap::collect();
    assert_eq!(drops.load(Ordering::SeqCst), 2);
}
