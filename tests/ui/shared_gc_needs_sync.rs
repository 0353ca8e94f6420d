// The thread-safe Gc requires `Send + Sync` values: the collector traces them on its own
// thread. A `RefCell` graph belongs in `pyheap::unsync`.
use std::cell::RefCell;

#[derive(pyheap::Trace)]
struct Node(RefCell<Option<pyheap::Gc<Node>>>);

fn main() {
    let _ = pyheap::Gc::new(Node(RefCell::new(None)));
}
