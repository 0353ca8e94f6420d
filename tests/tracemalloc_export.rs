//! tracemalloc: `PYHEAP_TRACEMALLOC=n` starts tracing at the first allocation (in a child
//! process, since the environment is read once), and a snapshot exported in DHAT's JSON
//! format is what DHAT's viewer reads.

#[global_allocator]
static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;

use pyheap::tracemalloc::{self, Filter, KeyType};
use std::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn env_starts_tracing_at_the_first_allocation() {
    if std::env::var_os("TRACEMALLOC_ENV_CHILD").is_some() {
        // Tracing since before `main`: the harness's first allocations are traced too.
        assert!(tracemalloc::is_tracing());
        assert_eq!(tracemalloc::get_traceback_limit(), 7);
        let line = line!() + 1;
        let v = vec![3u8; 333];
        let tb = tracemalloc::get_object_traceback(v.as_ptr()).unwrap();
        assert_eq!(tb.line().unwrap().lineno(), line);
        assert!(tracemalloc::take_snapshot().traces().len() > 1);
        println!("CHILD OK");
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "env_starts_tracing_at_the_first_allocation",
            "--exact",
            "--nocapture",
        ])
        .env("TRACEMALLOC_ENV_CHILD", "1")
        .env("PYHEAP_TRACEMALLOC", "7")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("CHILD OK"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // And without the variable, nothing traces.
    assert!(!tracemalloc::is_tracing());
}

#[test]
fn dhat_export_is_dhat_json() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    tracemalloc::start(4);
    let keep: Vec<String> = (0..100).map(|i| "z".repeat(i + 1)).collect();
    // This file's traces, but line 1: the test harness's `main`, generated there, whose
    // threads allocate as tests start and end.
    let snap = tracemalloc::take_snapshot()
        .filter_traces(&[Filter::include(file!()), Filter::exclude(file!()).lineno(1)]);
    tracemalloc::stop();
    let json: serde_json::Value = serde_json::from_str(&snap.to_dhat_json()).unwrap();
    assert_eq!(json["dhatFileVersion"], 2);
    assert_eq!(json["mode"], "rust-heap");
    assert_eq!(json["bklt"], true);
    let ftbl = json["ftbl"].as_array().unwrap();
    assert_eq!(ftbl[0], "[root]");
    let pps = json["pps"].as_array().unwrap();
    let mut bytes = 0;
    let mut blocks = 0;
    for pp in pps {
        for key in ["tb", "tbk", "tl", "mb", "mbk", "gb", "gbk", "eb", "ebk"] {
            assert!(pp[key].is_u64(), "{key} in {pp}");
        }
        assert_eq!(pp["tb"], pp["eb"]);
        bytes += pp["tb"].as_u64().unwrap() as usize;
        blocks += pp["tbk"].as_u64().unwrap() as usize;
        let fs = pp["fs"].as_array().unwrap();
        assert!(!fs.is_empty());
        for f in fs {
            let i = f.as_u64().unwrap() as usize;
            assert!(i > 0 && i < ftbl.len());
        }
        // The allocation's frame comes first and names this file.
        let first = ftbl[fs[0].as_u64().unwrap() as usize].as_str().unwrap();
        assert!(first.contains(&format!("({}:", file!())), "{first}");
    }
    let stats = snap.statistics(KeyType::Filename);
    assert_eq!(bytes, stats.iter().map(|s| s.size).sum::<usize>());
    assert_eq!(blocks, snap.traces().len());
    assert_eq!(bytes, (1..=100).sum::<usize>() + 100 * 24);
    drop(keep);
}
