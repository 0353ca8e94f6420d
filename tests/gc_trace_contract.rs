//! What `Trace`'s contract promises when an impl reports fewer handles than it owns, and what
//! happens when an impl breaks the rule that every call within one collection reports the
//! same handles (issue 12, item 5: the single-thread scan traces each object twice).

use pyheap::unsync::{gc, Gc};
use pyheap::{Trace, Tracer};
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};

#[derive(Trace, Default)]
struct Leaf(RefCell<Option<Gc<Leaf>>>);

/// Reports its handle on odd-numbered calls only: the first trace of a collection (counting)
/// sees it, the second (marking) does not.
struct Flaky {
    calls: Cell<u32>,
    held: Gc<Leaf>,
}

// SAFETY: deliberately broken in one way only (inconsistent between the calls of one
// collection), which the test shows pyheap survives without reading freed memory.
unsafe impl Trace for Flaky {
    fn trace(&self, tracer: &mut Tracer) {
        let n = self.calls.get() + 1;
        self.calls.set(n);
        if n % 2 == 1 {
            self.held.trace(tracer);
        }
    }
}

/// Reports nothing, consistently: the handle's target is kept alive (a leak, as documented).
struct Silent {
    held: Gc<Leaf>,
}

// SAFETY: reports fewer handles than owned (none), the same on every call: allowed.
unsafe impl Trace for Silent {
    fn trace(&self, _: &mut Tracer) {}
}

#[test]
fn consistent_under_reporting_only_keeps_objects_alive() {
    gc::disable();
    gc::collect();
    let leaf = Gc::new(Leaf::default());
    *leaf.0.borrow_mut() = Some(leaf.clone()); // a self-cycle
    let s = Gc::new(Silent { held: leaf.clone() });
    drop(leaf);
    assert_eq!(
        gc::collect(),
        0,
        "the leaf is held by an unreported handle: kept"
    );
    assert!(Gc::try_deref(&s.held).is_some());
    drop(s);
    // Now only the cycle holds the leaf.
    assert_eq!(gc::collect(), 1);
}

#[test]
fn inconsistent_reporting_loses_the_value_but_never_reads_freed_memory() {
    gc::disable();
    gc::collect();
    let leaf = Gc::new(Leaf::default());
    let f = Gc::new(Flaky {
        calls: Cell::new(0),
        held: leaf.clone(),
    });
    drop(leaf);
    // The leaf's only handle is in `f`, which the stack holds: it is reachable, but the
    // marking trace does not report it. It is destroyed as garbage — the documented
    // consequence of breaking the contract —, and stays a dead object, not freed memory.
    assert_eq!(gc::collect(), 1);
    assert!(Gc::try_deref(&f.held).is_none());
    let deref = catch_unwind(AssertUnwindSafe(|| f.held.0.borrow().is_none()));
    assert!(deref.is_err(), "Deref of a destroyed object panics");
    assert_eq!(format!("{:?}", Gc::as_ptr(&f.held).is_null()), "false");
    drop(f); // releases the dead leaf's header: no double drop, no use after free
    assert_eq!(gc::collect(), 0);
}
