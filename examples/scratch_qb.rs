use pyheap::{Gc, Trace};
use std::sync::{Arc, Mutex};
use std::time::Instant;
#[derive(Trace, Default)]
struct N {
    v: u64,
    edges: Mutex<Vec<Gc<N>>>,
}
#[derive(Default)]
struct A {
    v: u64,
    _edges: Mutex<Vec<Arc<A>>>,
}
fn main() {
    let n = 5_000_000u64;
    for t in [1usize, 2] {
        let st = Instant::now();
        let hs: Vec<_> = (0..t)
            .map(|_| {
                std::thread::spawn(move || {
                    let mut s = 0;
                    for i in 0..n {
                        let a = Arc::new(A {
                            v: i,
                            ..Default::default()
                        });
                        s += a.v;
                    }
                    s
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let ta = st.elapsed().as_nanos() as f64 / n as f64;
        let st = Instant::now();
        let hs: Vec<_> = (0..t)
            .map(|_| {
                std::thread::spawn(move || {
                    let mut s = 0;
                    for i in 0..n {
                        let a = Gc::new(N {
                            v: i,
                            ..Default::default()
                        });
                        s += a.v;
                    }
                    s
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let tg = st.elapsed().as_nanos() as f64 / n as f64;
        println!(
            "alloc+drop tracked, {t} threads: Arc {ta:.1} ns, Gc {tg:.1} ns, ratio {:.2}",
            tg / ta
        );
    }
    let a = Arc::new(A::default());
    let g = Gc::new(N::default());
    let st = Instant::now();
    for _ in 0..n {
        let b = a.clone();
        std::hint::black_box(&b);
    }
    let ta = st.elapsed().as_nanos() as f64 / n as f64;
    let st = Instant::now();
    for _ in 0..n {
        let b = g.clone();
        std::hint::black_box(&b);
    }
    let tg = st.elapsed().as_nanos() as f64 / n as f64;
    println!(
        "clone+drop: Arc {ta:.2} ns Gc {tg:.2} ns ratio {:.2}",
        tg / ta
    );
    let av: Vec<Arc<A>> = (0..1000)
        .map(|i| {
            Arc::new(A {
                v: i,
                ..Default::default()
            })
        })
        .collect();
    let gv: Vec<Gc<N>> = (0..1000)
        .map(|i| {
            Gc::new(N {
                v: i,
                ..Default::default()
            })
        })
        .collect();
    #[inline(never)]
    fn sa(v: &[Arc<A>]) -> u64 {
        v.iter().map(|x| x.v).sum()
    }
    #[inline(never)]
    fn sg(v: &[Gc<N>]) -> u64 {
        v.iter().map(|x| x.v).sum()
    }
    let mut s = 0;
    for _ in 0..3 {
        let st = Instant::now();
        for _ in 0..5000 {
            s += sa(std::hint::black_box(&av));
        }
        let ta = st.elapsed().as_nanos() as f64 / 5e6;
        let st = Instant::now();
        for _ in 0..5000 {
            s += sg(std::hint::black_box(&gv));
        }
        let tg = st.elapsed().as_nanos() as f64 / 5e6;
        println!(
            "deref sum: Arc {ta:.3} ns Gc {tg:.3} ns ratio {:.2} ({s})",
            tg / ta
        );
    }
}
