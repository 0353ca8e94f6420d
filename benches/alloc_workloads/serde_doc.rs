//! Real crate 1, `serde_json`: a JSON document built, serialized and parsed back.
//!
//! One iteration builds a `serde_json::Value` of 10,000 records (each an object of six
//! fields: an id, a name and an email of 8-40 characters, a score, a list of 0-7 tag strings
//! and a nested address object), serializes it with `serde_json::to_string` (about 2.6 MB of
//! text, grown by reallocation), parses the text back into a second `Value`, checks that
//! the two are equal, and drops all three. That is what a web service does with every
//! request and response body: many small strings and maps (serde_json's `Map` is a
//! `BTreeMap`, so its nodes are above 512 bytes), one large growing buffer. Throughput is in
//! records.

use super::rng::XorShift;
use criterion::{Criterion, SamplingMode, Throughput};
use serde_json::{json, Map, Value};
use std::hint::black_box;

const RECORDS: usize = 10_000;
const TAGS: [&str; 8] = [
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta",
];

fn word(rng: &mut XorShift, min: usize, max: usize) -> String {
    let len = rng.range(min, max);
    (0..len)
        .map(|_| (b'a' + rng.below(26) as u8) as char)
        .collect()
}

fn document(seed: u64) -> Value {
    let mut rng = XorShift::new(seed);
    let records: Vec<Value> = (0..RECORDS)
        .map(|i| {
            let tags: Vec<Value> = (0..rng.below(8))
                .map(|_| Value::String(TAGS[rng.below(TAGS.len())].to_string()))
                .collect();
            let mut address = Map::new();
            address.insert("street".into(), Value::String(word(&mut rng, 8, 24)));
            address.insert("zip".into(), json!(rng.below(100_000)));
            json!({
                "id": i,
                "name": word(&mut rng, 8, 40),
                "email": format!("{}@example.org", word(&mut rng, 4, 20)),
                "score": rng.below(1_000_000) as f64 / 4.0, // exact in binary and in decimal
                "tags": tags,
                "address": address,
            })
        })
        .collect();
    json!({ "version": 1, "records": records })
}

/// One iteration: build, serialize, parse back, compare, drop.
fn round_trip(seed: u64) {
    let doc = document(seed);
    let text = serde_json::to_string(&doc).expect("serialize");
    let back: Value = serde_json::from_str(&text).expect("parse");
    assert!(
        back == doc,
        "the parsed document differs from the built one"
    );
    black_box((doc, text, back));
}

pub fn bench(c: &mut Criterion, contender: &str) {
    let mut group = c.benchmark_group("serde_json");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    let mut seed = 0;
    group.bench_function(contender, |b| {
        b.iter(|| {
            seed += 1;
            round_trip(seed);
        })
    });
    group.finish();
}

/// The peak-RSS run (`super::peak`): 10 round trips.
pub fn standalone() {
    for seed in 1..=10 {
        round_trip(seed);
    }
}
