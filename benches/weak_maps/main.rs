//! The cost of the weak maps (issue 15), both flavors: per operation (`insert`, `get`, a
//! value's death with its entry purged by the death notice), against a plain
//! `HashMap<K, Weak<V>>` doing the same work and against a value's death outside any map; and
//! what the alternative the maps avoid — a scan of the whole map on access — costs. N entries
//! (default 100,000), median of 5 runs, one line per measure.
//!
//!   cargo run --release -p pyheap-bench --bin weak_maps [N]

use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Median over 5 runs of `setup` then the timed `f` on its output; ns per `n` operations.
fn time<S, R>(label: &str, n: usize, mut setup: impl FnMut() -> S, mut f: impl FnMut(S) -> R) {
    let runs: Vec<Duration> = (0..5)
        .map(|_| {
            let s = setup();
            let t = Instant::now();
            let r = f(s);
            let d = t.elapsed();
            drop(r);
            d
        })
        .collect();
    let m = median(runs);
    println!("{label:<58} {:>8.1} ns/op", m.as_nanos() as f64 / n as f64);
}

macro_rules! flavor {
    ($name:ident, $title:literal, $gc:path, $weak:path, $maps:path) => {
        mod $name {
            use super::time;
            use std::collections::HashMap;
            use $gc as Gc;
            use $maps::{WeakKeyMap, WeakSet, WeakValueMap};
            use $weak as Weak;

            fn values(n: usize) -> Vec<Gc<u64>> {
                (0..n as u64).map(Gc::new).collect()
            }

            pub fn run(n: usize) {
                println!("{}, {n} entries:", $title);
                time(
                    "  HashMap<u64, Weak>: insert",
                    n,
                    || values(n),
                    |vs| {
                        let mut m: HashMap<u64, Weak<u64>> = HashMap::new();
                        for (i, v) in vs.iter().enumerate() {
                            m.insert(i as u64, Gc::downgrade(v));
                        }
                        (m, vs)
                    },
                );
                time(
                    "  WeakValueMap: insert",
                    n,
                    || values(n),
                    |vs| {
                        let m: WeakValueMap<u64, u64> = WeakValueMap::new();
                        for (i, v) in vs.iter().enumerate() {
                            m.insert(i as u64, v);
                        }
                        (m, vs)
                    },
                );
                let vs = values(n);
                let plain: HashMap<u64, Weak<u64>> = vs
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (i as u64, Gc::downgrade(v)))
                    .collect();
                let m: WeakValueMap<u64, u64> =
                    vs.iter().enumerate().map(|(i, v)| (i as u64, v)).collect();
                time(
                    "  HashMap<u64, Weak>: get + upgrade (hit)",
                    n,
                    || (),
                    |_| {
                        (0..n as u64)
                            .filter_map(|k| plain.get(&k).and_then(Weak::upgrade))
                            .count()
                    },
                );
                time(
                    "  WeakValueMap: get (hit)",
                    n,
                    || (),
                    |_| (0..n as u64).filter_map(|k| m.get(&k)).count(),
                );
                time(
                    "  HashMap<u64, Weak>: retain live (the scan avoided)",
                    n,
                    || plain.clone(),
                    |mut p| {
                        p.retain(|_, w| w.strong_count() > 0);
                        p
                    },
                );
                drop((m, plain, vs));
                time("  a value's death, in no map", n, || values(n), drop);
                time(
                    "  a value's death, its WeakValueMap entry purged",
                    n,
                    || {
                        let vs = values(n);
                        let m: WeakValueMap<u64, u64> =
                            vs.iter().enumerate().map(|(i, v)| (i as u64, v)).collect();
                        (vs, m)
                    },
                    |(vs, m)| {
                        drop(vs);
                        assert!(m.is_empty());
                        m
                    },
                );
                time(
                    "  WeakKeyMap: insert",
                    n,
                    || values(n),
                    |vs| {
                        let m: WeakKeyMap<u64, u64> = WeakKeyMap::new();
                        for v in &vs {
                            m.insert(v, **v);
                        }
                        (m, vs)
                    },
                );
                time(
                    "  WeakKeyMap: get (hit)",
                    n,
                    || {
                        let vs = values(n);
                        let m: WeakKeyMap<u64, u64> = vs.iter().map(|v| (v, **v)).collect();
                        (vs, m)
                    },
                    |(vs, m)| {
                        let c = vs.iter().filter_map(|v| m.get(v)).count();
                        (c, vs, m)
                    },
                );
                time(
                    "  a key's death, its WeakKeyMap entry and value purged",
                    n,
                    || {
                        let vs = values(n);
                        let m: WeakKeyMap<u64, u64> = vs.iter().map(|v| (v, **v)).collect();
                        (vs, m)
                    },
                    |(vs, m)| {
                        drop(vs);
                        assert!(m.is_empty());
                        m
                    },
                );
                time(
                    "  WeakSet: insert",
                    n,
                    || values(n),
                    |vs| {
                        let s: WeakSet<u64> = WeakSet::new();
                        for v in &vs {
                            s.insert(v);
                        }
                        (s, vs)
                    },
                );
                time(
                    "  a member's death, purged from its WeakSet",
                    n,
                    || {
                        let vs = values(n);
                        let s: WeakSet<u64> = vs.iter().collect();
                        (vs, s)
                    },
                    |(vs, s)| {
                        drop(vs);
                        assert!(s.is_empty());
                        s
                    },
                );
            }
        }
    };
}

flavor!(
    unsync_maps,
    "pyheap::unsync",
    pyheap::unsync::Gc,
    pyheap::unsync::Weak,
    pyheap::unsync::weakref
);
flavor!(
    shared_maps,
    "pyheap::Gc",
    pyheap::Gc,
    pyheap::Weak,
    pyheap::weakref
);

fn main() {
    let n = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("N: a number of entries"))
        .unwrap_or(100_000);
    unsync_maps::run(n);
    shared_maps::run(n);
}
