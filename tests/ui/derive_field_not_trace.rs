struct Foreign;

#[derive(pyheap::Trace)]
struct S {
    f: Foreign,
}

fn main() {}
