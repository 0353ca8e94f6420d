//! The count word's version at the edge of its cycle, on real objects (issue 12, item 3; the
//! concurrent protocol is loom model M11). `docs/concurrency.md` §2.3, I8: the version is a
//! 29-bit counter whose top bit T is set once it reaches the second half of its cycle; the
//! next count change from such a word clears T after waiting for any scan, and a scan clears
//! it before reading the word. No clock, no assumption about the speed of the machine.
//!
//! The test drives one object's version to exactly 2^28 (T just set, by a change from a word
//! with T clear), which takes 2^28 count changes: about a second in release builds, several in
//! debug ones.

use pyheap::{Gc, Trace};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

static DROPS: AtomicUsize = AtomicUsize::new(0);
/// The tests count drops in `DROPS`: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

#[derive(Trace)]
struct Node {
    next: Mutex<Option<Gc<Node>>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

fn drive_to_top(a: &Gc<Node>) {
    // Each clone and drop adds one to the version; see the callers for where it starts.
    let k = (1u64 << 27) - 1;
    for _ in 0..k {
        drop(a.clone());
    }
}

/// A garbage cycle whose last count change set T is freed by the next collection (which
/// clears T under the space lock), not kept for ever.
#[test]
fn garbage_whose_last_count_change_set_the_versions_top_bit_is_freed() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    pyheap::gc::disable();
    pyheap::collect();
    let a = Gc::new(Node {
        next: Mutex::new(None),
    }); // A: version 0
    let b = Gc::new(Node {
        next: Mutex::new(Some(a.clone())), // A: 1
    });
    *a.next.lock().unwrap() = Some(b.clone());
    drop(b);
    let wa = Gc::downgrade(&a);
    // A's version: 1, then 1 + 2k after k pairs, then the last drop of `a` makes it
    // 2 + 2k = 2^28: T set by a change from a word with T clear (no slow path), and no
    // change follows.
    drive_to_top(&a);
    drop(a);
    let before = DROPS.load(Ordering::SeqCst);
    assert_eq!(pyheap::gc::collect_generation(2), 2);
    assert_eq!(DROPS.load(Ordering::SeqCst), before + 2);
    assert!(wa.upgrade().is_none());
}

/// Count changes from a word with T set take the slow path (wait for the space lock, clear
/// T) and go on working: clones, drops and upgrades keep exact counts across the edge.
#[test]
fn count_changes_across_the_versions_top_bit_keep_exact_counts() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    pyheap::gc::disable();
    let a = Gc::new(Node {
        next: Mutex::new(None),
    }); // version 0
    let w = Gc::downgrade(&a);
    drive_to_top(&a); // 2^28 - 2
    let b = a.clone(); // 2^28 - 1
    let c = a.clone(); // 2^28: T set
    assert_eq!(Gc::strong_count(&a), 3);
    let d = w.upgrade().unwrap(); // from a word with T set: slow path, T cleared
    assert_eq!(Gc::strong_count(&a), 4);
    drop((b, c, d));
    assert_eq!(Gc::strong_count(&a), 1);
    let before = DROPS.load(Ordering::SeqCst);
    drop(a);
    assert_eq!(DROPS.load(Ordering::SeqCst), before + 1);
    assert!(w.upgrade().is_none());
}
