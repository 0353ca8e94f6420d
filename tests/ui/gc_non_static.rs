fn main() {
    let s = String::from("x");
    let r: &str = &s;
    let _g = pyheap::unsync::Gc::new(r);
}
