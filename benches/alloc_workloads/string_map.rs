//! Real crate 3 (std), `hashmap`: a string-heavy `HashMap<String, String>`.
//!
//! One iteration inserts 50,000 entries (keys `"user:<8 hex digits>"`, values 10-200
//! characters), so the table grows by doubling (its arrays reach MiBs, far above 512 bytes);
//! looks every key up once; replaces every other value by a longer one built with
//! `push_str` (reallocation); removes a third of the keys; and drops the map. That is a cache
//! or a session store: many small strings of mixed sizes and a few large tables. Throughput
//! is in entries.

use super::rng::XorShift;
use criterion::{Criterion, SamplingMode, Throughput};
use std::collections::HashMap;
use std::hint::black_box;

const ENTRIES: usize = 50_000;

fn text(rng: &mut XorShift, min: usize, max: usize) -> String {
    let len = rng.range(min, max);
    (0..len)
        .map(|_| (b' ' + rng.below(95) as u8) as char)
        .collect()
}

fn round(seed: u64) {
    let mut rng = XorShift::new(seed);
    let keys: Vec<String> = (0..ENTRIES)
        .map(|i| format!("user:{:08x}", (i as u64).wrapping_mul(0x9E37_79B9) as u32))
        .collect();
    let mut map: HashMap<String, String> = HashMap::new();
    for k in &keys {
        map.insert(k.clone(), text(&mut rng, 10, 200));
    }
    let mut total = 0;
    for k in &keys {
        total += map.get(k).map_or(0, String::len);
    }
    for k in keys.iter().step_by(2) {
        if let Some(v) = map.get_mut(k) {
            let extra = text(&mut rng, 10, 100);
            v.push_str(&extra);
        }
    }
    for k in keys.iter().step_by(3) {
        map.remove(k);
    }
    assert_eq!(map.len(), ENTRIES - ENTRIES.div_ceil(3));
    black_box((total, map, keys));
}

pub fn bench(c: &mut Criterion, contender: &str) {
    let mut group = c.benchmark_group("hashmap");
    group.throughput(Throughput::Elements(ENTRIES as u64));
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    let mut seed = 0;
    group.bench_function(contender, |b| {
        b.iter(|| {
            seed += 1;
            round(seed);
        })
    });
    group.finish();
}

/// The peak-RSS run (`super::peak`): 15 rounds.
pub fn standalone() {
    for seed in 1..=15 {
        round(seed);
    }
}
