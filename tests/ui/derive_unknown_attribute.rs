#[derive(pyheap::Trace)]
struct S {
    #[trace(ignore)]
    f: u8,
}

fn main() {}
