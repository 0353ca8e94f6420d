// `Arc<T>` is `Trace` only for a `T` that holds no `Gc` (as `Rc<T>`), in the shared flavor.
use pyheap::{Gc, Trace};
use std::sync::{Arc, Mutex};

#[derive(Trace)]
struct Node {
    edges: Arc<Mutex<Vec<Gc<Node>>>>,
}

fn main() {
    let _ = Gc::new(Node { edges: Arc::default() });
}
