//! `tracemalloc::start` as the process's very first use of the allocator, with
//! `PYHEAP_TRACEMALLOC` in the environment: `start` must read the environment (which starts
//! tracing under the same lock) before it takes its lock, not deadlock on it. A constructor in
//! `.init_array` calls `start(2)` before Rust's runtime has allocated anything; the test runs
//! in a child process with the variable set and a deadline.
//!
//! Users care because "start tracing first thing" is how tracemalloc is used, and
//! `PYHEAP_TRACEMALLOC` is how it is turned on from outside.

#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;

extern "C" fn before_main() {
    // `getenv`, not `std::env::var_os`, which allocates (that allocation would read the
    // environment first).
    // SAFETY: a NUL-terminated name; nothing changes the environment meanwhile.
    if !unsafe { libc::getenv(c"TRACEMALLOC_FIRST_CHILD".as_ptr()) }.is_null() {
        pyheap::tracemalloc::start(2);
    }
}

#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = before_main;

#[test]
fn start_before_any_allocation_with_the_variable_set() {
    if std::env::var_os("TRACEMALLOC_FIRST_CHILD").is_some() {
        // The variable started tracing with 4 frames, then `start(2)` set the limit.
        assert!(pyheap::tracemalloc::is_tracing());
        assert_eq!(pyheap::tracemalloc::get_traceback_limit(), 2);
        let v = Box::new([1u8; 100]);
        assert!(pyheap::tracemalloc::get_object_traceback(&v).is_some());
        println!("CHILD OK");
        return;
    }
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["start_before_any_allocation", "--nocapture"])
        .env("TRACEMALLOC_FIRST_CHILD", "1")
        .env("PYHEAP_TRACEMALLOC", "4")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the child hangs: start() deadlocked on the first allocation's lock");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = std::io::read_to_string(child.stdout.take().unwrap()).unwrap();
    assert!(
        status.success() && out.contains("CHILD OK"),
        "{status}: {out}"
    );
}
