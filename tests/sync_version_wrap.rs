//! The count word's version at the edge of its cycle, on real objects (issue 12, item 3; the
//! concurrent protocol is loom model M11). `docs/concurrency.md` §2.3, I8: the version is a
//! 29-bit counter whose top bit T is set for the second half of its cycle; a scan that reads a
//! word with T set treats the object as touched (a root), and the next count change from such
//! a word clears T (after waiting for any scan). No clock, no assumption about the speed of
//! the machine.
//!
//! The test drives one object's version to exactly 2^28 (T just set, by a change from a word
//! with T clear), which takes 2^28 count changes: about a second in release builds, several in
//! debug ones.

use pyheap::{Gc, Trace};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

static DROPS: AtomicUsize = AtomicUsize::new(0);

#[derive(Trace)]
struct Node {
    next: Mutex<Option<Gc<Node>>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_word_read_with_the_versions_top_bit_set_is_a_root_until_the_next_change_clears_it() {
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
    // Each clone and drop adds one to A's version: 1 + 2k after k pairs, then the last drop
    // of `a` makes it 2 + 2k = 2^28, T set by a change from a word with T clear (no slow path).
    let k = (1u64 << 27) - 1;
    for _ in 0..k {
        drop(a.clone());
    }
    drop(a);
    // A and B are garbage, but A's word has T set: the collection keeps both.
    assert_eq!(pyheap::gc::collect_generation(2), 0);
    assert_eq!(DROPS.load(Ordering::SeqCst), 0);
    // An upgrade is a count change from a word with T set: it clears T.
    let again = wa.upgrade().expect("kept");
    assert!(again.next.lock().unwrap().is_some());
    drop(again);
    assert_eq!(pyheap::gc::collect_generation(2), 2);
    assert_eq!(DROPS.load(Ordering::SeqCst), 2);
    assert!(wa.upgrade().is_none());
}
