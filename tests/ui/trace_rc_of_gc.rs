// `Rc<T>` is `Trace` only for a `T` that holds no `Gc`: a handle behind an `Rc` is shared by
// every clone of the `Rc`, so no one holder may report it (two would count it twice).
use pyheap::unsync::Gc;
use pyheap::Trace;
use std::rc::Rc;

#[derive(Trace)]
struct Node {
    shared: Rc<Option<Gc<Node>>>,
}

fn main() {
    let _ = Gc::new(Node { shared: Rc::new(None) });
}
