//! Header sizes: 32 bytes in front of a tracked value, 8 in front of an untracked one (64-bit).
//! Measured through the global allocator, so only the public API is used.

use pyheap::unsync::Gc;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Recorder;

thread_local!(static LAST: Cell<usize> = const { Cell::new(0) });

// SAFETY: forwards to `System`; records sizes in a const-initialised thread-local without
// allocating.
unsafe impl GlobalAlloc for Recorder {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let _ = LAST.try_with(|c| c.set(l.size()));
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Recorder = Recorder;

fn size_of_allocation<T: pyheap::Trace + 'static>(v: T) -> usize {
    pyheap::unsync::gc::disable();
    let g = Gc::new(v);
    let s = LAST.with(|c| c.get());
    drop(g);
    s
}

#[test]
#[cfg(target_pointer_width = "64")]
fn header_sizes() {
    assert_eq!(size_of_allocation(0u64) - 8, 8, "untracked header");
    assert_eq!(
        size_of_allocation(String::new()) - 24,
        8,
        "untracked header"
    );
    assert_eq!(
        size_of_allocation(Vec::<Gc<u8>>::new()) - 24,
        32,
        "tracked header"
    );
    assert_eq!(
        size_of_allocation(Option::<Gc<u8>>::None) - 8,
        32,
        "tracked header"
    );
    #[derive(pyheap::Trace)]
    struct Leafy {
        a: u64,
        b: String,
    }
    const { assert!(!<Leafy as pyheap::Trace>::MAY_CONTAIN_GC) };
    assert_eq!(
        size_of_allocation(Leafy {
            a: 0,
            b: String::new()
        }) - 32,
        8
    );
    assert_eq!(std::mem::size_of::<Gc<u8>>(), 8);
    assert_eq!(std::mem::size_of::<Option<Gc<u8>>>(), 8);
    assert_eq!(std::mem::size_of::<pyheap::unsync::Weak<u8>>(), 8);
}

#[test]
#[cfg(target_pointer_width = "64")]
fn unsized_header_sizes() {
    pyheap::unsync::gc::disable();
    // Untracked slices and strings: the 8-byte header of their sized peers, length in the handle.
    let s: Gc<str> = Gc::from("0123456789");
    // 8 + 10 bytes, padded to the counts' 4-byte alignment.
    assert_eq!(LAST.with(|c| c.get()), 20, "Gc<str> header");
    let b: Gc<[u64]> = Gc::from(vec![1u64, 2, 3]);
    assert_eq!(LAST.with(|c| c.get()), 8 + 24, "Gc<[u64]> header");
    // Tracked slices also store their length for the collector (CPython's ob_size): 40 bytes.
    let g: Gc<[Option<Gc<u8>>]> = Gc::from(vec![None, None]);
    assert_eq!(
        LAST.with(|c| c.get()),
        40 + 16,
        "Gc<[Option<Gc<u8>>]> header"
    );
    assert!(Gc::is_tracked(&g));
    assert_eq!(std::mem::size_of::<Gc<str>>(), 16);
    assert_eq!(std::mem::size_of::<Option<Gc<[u8]>>>(), 16);
    drop((s, b, g));
}
