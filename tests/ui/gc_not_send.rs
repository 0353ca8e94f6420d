fn main() {
    let g = pyheap::unsync::Gc::new(1u8);
    std::thread::spawn(move || drop(g));
}
