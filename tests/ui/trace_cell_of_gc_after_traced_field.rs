// As `trace_cell_of_gc.rs`, with a field before the `Cell` that makes the holder's
// `MAY_CONTAIN_GC` true, so that the derive's OR of the fields' constants never evaluates the
// `Cell`'s: the check in the `Cell`'s `trace` (instantiated by `Gc::new`) catches it.
use pyheap::unsync::Gc;
use pyheap::Trace;
use std::cell::{Cell, RefCell};

#[derive(Trace)]
struct AfterATracedField {
    traced: RefCell<Option<Gc<AfterATracedField>>>,
    next: Cell<Option<Gc<AfterATracedField>>>,
}

fn main() {
    let _ = Gc::new(AfterATracedField { traced: RefCell::new(None), next: Cell::new(None) });
}
