// `#[trace(crate = "..")]` goes on the type, `#[trace(skip)]` on fields; nothing else exists.
#[derive(pyheap::Trace)]
#[trace(skip)]
struct SkipOnType {
    f: u8,
}

#[derive(pyheap::Trace)]
struct CrateOnField {
    #[trace(crate = "pyheap")]
    f: u8,
}

#[derive(pyheap::Trace)]
#[trace(krate = "pyheap")]
struct UnknownOnType {
    f: u8,
}

#[derive(pyheap::Trace)]
#[trace(crate = "not a path")]
struct NotAPath {
    f: u8,
}

#[derive(pyheap::Trace)]
#[trace(crate = "pyheap", crate = "pyheap")]
struct Twice {
    f: u8,
}

fn main() {}
