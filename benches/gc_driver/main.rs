//! `gcdrv <mode> <n>`: run one Gc hot path `n` times, for callgrind. Modes: `alloc_node`
//! (allocate + drop the benchmark node), `rc` (the same with `std::rc::Rc`), `tree` (a 4-ary
//! tree of about `n` nodes built bottom-up, children cloned into parents, then dropped),
//! `cycles` (`n` two-node cycles, then `pyheap::collect()`). Count per unit as the difference
//! between two runs with different `n` divided by the difference in `n`, so start-up cancels.

use pyheap::unsync::Gc;
use pyheap::Trace;
use std::cell::{Cell, RefCell};
use std::hint::black_box;

thread_local! { static LIVE: Cell<isize> = const { Cell::new(0) }; }

#[derive(Trace)]
pub struct Node {
    val: u64,
    edges: RefCell<Vec<Gc<Node>>>,
}
impl Drop for Node {
    fn drop(&mut self) {
        LIVE.with(|l| l.set(l.get() - 1));
    }
}
#[inline(never)]
fn node(v: u64) -> Gc<Node> {
    LIVE.with(|l| l.set(l.get() + 1));
    Gc::new(Node {
        val: v,
        edges: RefCell::new(Vec::new()),
    })
}

fn tree(n: usize) {
    let mut level: Vec<Gc<Node>> = (0..n.div_ceil(4) * 3).map(|i| node(i as u64)).collect();
    let mut made = level.len();
    while level.len() > 1 && made < n {
        let mut next = Vec::new();
        for ch in level.chunks(4) {
            let p = node(made as u64);
            made += 1;
            for c in ch {
                p.edges.borrow_mut().push(c.clone());
            }
            next.push(p);
        }
        level = next;
    }
    drop(level);
}

fn cycles(n: usize) {
    for i in 0..n {
        let a = node(i as u64);
        let b = node(i as u64);
        a.edges.borrow_mut().push(b.clone());
        b.edges.borrow_mut().push(a);
    }
    pyheap::collect();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args[2].parse().unwrap();
    match args[1].as_str() {
        "alloc_node" => {
            for i in 0..n {
                let s = black_box(node(black_box(i as u64)));
                black_box(s.val);
            }
        }
        "rc" => {
            struct RNode {
                val: u64,
                _e: RefCell<Vec<std::rc::Rc<RNode>>>,
            }
            impl Drop for RNode {
                fn drop(&mut self) {
                    LIVE.with(|l| l.set(l.get() - 1));
                }
            }
            for i in 0..n {
                LIVE.with(|l| l.set(l.get() + 1));
                let s = black_box(std::rc::Rc::new(RNode {
                    val: black_box(i as u64),
                    _e: RefCell::new(Vec::new()),
                }));
                black_box(s.val);
            }
        }
        "tree" => tree(n),
        "cycles" => cycles(n),
        _ => panic!(),
    }
    assert_eq!(LIVE.with(|l| l.get()), 0);
}
