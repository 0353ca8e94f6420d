//! `Tagged`: a fallback allocator for `PoolAllocWith` tests that knows its own blocks.
//!
//! Each block is served by `System` with a header in front: a magic word and the size it was
//! asked for. `dealloc` checks both, so a block of someone else's (a pool block, a block of
//! `System`'s own) or a wrong layout is caught: it is counted in `foreign_frees` and not freed
//! (leaked), and the test asserts the count is zero. A block of `Tagged`'s handed to `System`
//! instead would make glibc abort (`free(): invalid pointer`), the header being in front.
//! Nothing here allocates through the global allocator (it may be the global allocator's
//! fallback).
#![allow(dead_code)] // each test binary uses a different subset

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

const MAGIC: usize = 0x7a66_6c62_u64 as usize;

pub struct Tagged {
    /// Blocks handed out and not freed.
    pub live: AtomicUsize,
    /// Bytes asked for by the live blocks.
    pub live_bytes: AtomicUsize,
    /// Blocks handed out, ever.
    pub allocs: AtomicUsize,
    /// Frees of a pointer this allocator did not hand out, or with another size.
    pub foreign_frees: AtomicUsize,
    /// The largest alignment asked for.
    pub max_align: AtomicUsize,
}

impl Tagged {
    pub const fn new() -> Tagged {
        Tagged {
            live: AtomicUsize::new(0),
            live_bytes: AtomicUsize::new(0),
            allocs: AtomicUsize::new(0),
            foreign_frees: AtomicUsize::new(0),
            max_align: AtomicUsize::new(0),
        }
    }

    /// The header's size for `layout`: room for two words, keeping the block's alignment.
    fn header(layout: Layout) -> usize {
        layout.align().max(16)
    }

    fn outer(layout: Layout) -> Layout {
        let h = Self::header(layout);
        Layout::from_size_align(layout.size() + h, h).expect("test sizes are small")
    }
}

unsafe impl GlobalAlloc for Tagged {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let outer = Self::outer(layout);
        // SAFETY: a non-zero size.
        let raw = unsafe { System.alloc(outer) };
        if raw.is_null() {
            return raw;
        }
        // SAFETY: the header lies inside the block, word-aligned.
        unsafe {
            let p = raw.add(Self::header(layout));
            p.cast::<usize>().sub(2).write(MAGIC);
            p.cast::<usize>().sub(1).write(layout.size());
            self.live.fetch_add(1, Relaxed);
            self.live_bytes.fetch_add(layout.size(), Relaxed);
            self.allocs.fetch_add(1, Relaxed);
            self.max_align.fetch_max(layout.align(), Relaxed);
            p
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // A pool block or a block of System's has no header: reading the two words before it
        // is reading memory of the same allocation region (pool blocks: the previous block
        // or the pool header; System blocks: malloc's chunk header), never unmapped.
        // SAFETY: see above.
        let (magic, size) = unsafe {
            (
                ptr.cast::<usize>().sub(2).read(),
                ptr.cast::<usize>().sub(1).read(),
            )
        };
        if magic != MAGIC || size != layout.size() {
            self.foreign_frees.fetch_add(1, Relaxed);
            return;
        }
        // SAFETY: our block, allocated with `outer(layout)`.
        unsafe {
            ptr.cast::<usize>().sub(2).write(0);
            System.dealloc(ptr.sub(Self::header(layout)), Self::outer(layout));
        }
        self.live.fetch_sub(1, Relaxed);
        self.live_bytes.fetch_sub(layout.size(), Relaxed);
    }
}
