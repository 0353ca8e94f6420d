// `Cell<T>` is `Trace` only for a `T` that holds no `Gc`: it cannot be looked into through
// `&self` (use `RefCell`).
use pyheap::unsync::Gc;
use pyheap::Trace;
use std::cell::Cell;

#[derive(Trace)]
struct Alone {
    next: Cell<Option<Gc<Alone>>>,
}

fn main() {
    let _ = Gc::new(Alone { next: Cell::new(None) });
}
