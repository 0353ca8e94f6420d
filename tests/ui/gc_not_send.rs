// A single-thread `Gc` cannot move to another thread. (The bound is this file's own, so the
// expected output does not depend on whether the toolchain ships std's sources.)
fn require_send<T: Send>(_: T) {}

fn main() {
    let g = pyheap::unsync::Gc::new(1u8);
    require_send(g);
}
