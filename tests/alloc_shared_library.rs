//! `PoolAlloc` as the global allocator of a shared library loaded with `dlopen` by a program
//! that allocates with the system allocator (a Python extension module, a plugin): the
//! library's allocations work from the program's threads and from its own, blocks freed on
//! other threads come back, and each calling thread gets a heap of its own. This is what the
//! initial-exec thread-local words of `src/alloc/tls_words.rs` must survive (a library loaded
//! after start takes them from glibc's reserve of static TLS).
//!
//! The library is the `shared_library` example, which `cargo test` builds
//! (`target/<profile>/examples/libshared_library.so`).
#![cfg(all(target_os = "linux", target_env = "gnu"))]

use std::ffi::{c_void, CString};
use std::path::PathBuf;

fn library_path() -> PathBuf {
    // target/<profile>/deps/<this test> → target/<profile>/examples/
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join("examples")
        .join("libshared_library.so")
}

#[test]
fn pool_alloc_works_in_a_dlopened_library() {
    let path = library_path();
    if !path.exists() {
        // `cargo test --test alloc_shared_library` alone does not build examples; the README's
        // `cargo test --workspace` does.
        eprintln!(
            "SKIPPED: {} not built (run `cargo build --examples` or `cargo test --workspace`)",
            path.display()
        );
        return;
    }
    let c_path = CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a path to a shared library built from this repository; RTLD_NOW resolves all.
    let lib = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!lib.is_null(), "dlopen failed: {:?}", unsafe {
        std::ffi::CStr::from_ptr(libc::dlerror())
    });
    let sym = |name: &str| -> *mut c_void {
        let n = CString::new(name).unwrap();
        // SAFETY: a handle from dlopen, a NUL-terminated name.
        let f = unsafe { libc::dlsym(lib, n.as_ptr()) };
        assert!(!f.is_null(), "{name} not found");
        f
    };
    // SAFETY: the example's `extern "C" fn(u64) -> u64` and `extern "C" fn() -> u64`.
    let work: extern "C" fn(u64) -> u64 =
        unsafe { std::mem::transmute(sym("pyheap_shared_library_work")) };
    let heaps: extern "C" fn() -> u64 =
        unsafe { std::mem::transmute(sym("pyheap_shared_library_heaps")) };

    let expected = work(1);
    assert_ne!(expected, 0, "a block lost its bytes in the library");
    assert_eq!(work(1), expected, "the same work gave another result");
    // From four of the program's threads at once.
    let results: Vec<u64> = (0..4)
        .map(|_| std::thread::spawn(move || (work(1), heaps())))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| {
            let (sum, heaps_then) = h.join().unwrap();
            assert!(heaps_then >= 1, "a calling thread had no heap");
            sum
        })
        .collect();
    assert!(
        results.iter().all(|&r| r == expected),
        "{results:?} vs {expected}"
    );
    // The calling thread's heap stays bound; the others exited.
    assert!(heaps() >= 1);
}
