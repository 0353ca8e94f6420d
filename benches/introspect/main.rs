//! The cost of Python's leak hunt on a large heap (issue 15): `get_objects::<T>()`,
//! `census()`, `get_referrers(&x)` and `get_referents(&x)` on a heap of N tracked objects
//! (default 1,000,000), for both flavors. Prints one line per call with its time, median of
//! 5 runs.
//!
//!   cargo run --release -p pyheap-bench --bin introspect [N]

use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time<R>(label: &str, n: usize, mut f: impl FnMut() -> R) {
    let runs: Vec<Duration> = (0..5)
        .map(|_| {
            let t = Instant::now();
            let r = f();
            let d = t.elapsed();
            drop(r);
            d
        })
        .collect();
    let m = median(runs);
    println!(
        "{label:<44} {:>9.2} ms  ({:.1} ns per object)",
        m.as_secs_f64() * 1e3,
        m.as_nanos() as f64 / n as f64
    );
}

mod unsync_heap {
    use pyheap::unsync::{gc, Gc};
    use std::cell::RefCell;

    #[derive(pyheap::Trace)]
    pub struct Node(RefCell<Vec<Gc<Node>>>);
    #[derive(pyheap::Trace)]
    pub struct Other(RefCell<Option<Gc<Node>>>);

    pub fn run(n: usize) {
        gc::disable();
        // A chain of n nodes (each points to the previous one), one `Other` per 100.
        let mut nodes: Vec<Gc<Node>> = Vec::with_capacity(n);
        let mut others = Vec::new();
        for i in 0..n {
            let e = nodes.last().cloned().into_iter().collect();
            nodes.push(Gc::new(Node(RefCell::new(e))));
            if i % 100 == 0 {
                others.push(Gc::new(Other(RefCell::new(Some(nodes[i].clone())))));
            }
        }
        gc::collect(); // all in the oldest generation
        let x = nodes[n / 2].clone();
        println!("pyheap::unsync, {n} nodes + {} others:", others.len());
        super::time("  get_objects::<Other>()", n, gc::get_objects::<Other>);
        super::time("  get_objects::<Node>()", n, gc::get_objects::<Node>);
        super::time("  census()", n, gc::census);
        super::time("  get_referrers(&x)", n, || gc::get_referrers(&x));
        super::time("  get_referents(&x)", n, || gc::get_referents(&x));
        drop((nodes, others, x));
    }
}

mod shared_heap {
    use pyheap::{gc, Gc};
    use std::sync::Mutex;

    #[derive(pyheap::Trace)]
    pub struct Node(Mutex<Vec<Gc<Node>>>);
    #[derive(pyheap::Trace)]
    pub struct Other(Mutex<Option<Gc<Node>>>);

    pub fn run(n: usize) {
        gc::disable();
        let mut nodes: Vec<Gc<Node>> = Vec::with_capacity(n);
        let mut others = Vec::new();
        for i in 0..n {
            let e = nodes.last().cloned().into_iter().collect();
            nodes.push(Gc::new(Node(Mutex::new(e))));
            if i % 100 == 0 {
                others.push(Gc::new(Other(Mutex::new(Some(nodes[i].clone())))));
            }
        }
        gc::collect_generation(2);
        let x = nodes[n / 2].clone();
        println!("pyheap::Gc, {n} nodes + {} others:", others.len());
        super::time("  get_objects::<Other>()", n, gc::get_objects::<Other>);
        super::time("  get_objects::<Node>()", n, gc::get_objects::<Node>);
        super::time("  census()", n, gc::census);
        super::time("  get_referrers(&x)", n, || gc::get_referrers(&x));
        super::time("  get_referents(&x)", n, || gc::get_referents(&x));
        super::time("  (a full collection, for scale)", n, || {
            gc::collect_generation(2)
        });
        drop((nodes, others, x));
    }
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    unsync_heap::run(n);
    shared_heap::run(n);
}
