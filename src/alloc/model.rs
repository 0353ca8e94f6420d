//! The allocator's internals with explicit heaps, for the loom models in `loom-tests/`.
//!
//! Only built under `--cfg loom`. Under loom there is no `static` state and no thread-local
//! binding: a model makes a [`ModelAllocator`] (one allocator's global state), gives each loom
//! thread a [`ModelHeap`], and calls the same `Heap`, `remote` and `ArenaManager` code that
//! `PoolAlloc` calls in normal builds.

use super::global::Global;
use super::heap::Heap;
use super::size_class::size_class;
use super::stats::AllocStats;
use core::alloc::Layout;

/// One allocator's global state (arenas, heaps, arena map).
pub struct ModelAllocator {
    global: Box<Global>,
}

// SAFETY: `Global` is Sync and Send (see global.rs).
unsafe impl Sync for ModelAllocator {}
// SAFETY: as above.
unsafe impl Send for ModelAllocator {}

impl ModelAllocator {
    /// A fresh allocator state that keeps `retained` empty arenas mapped (0 makes models see
    /// arenas go back to the OS as soon as they are empty).
    pub fn new(retained: usize) -> Self {
        let mut global = Box::new(Global::new());
        global.arenas.set_min_retained(retained);
        ModelAllocator { global }
    }

    /// Bind a heap for the calling (loom) thread: adopts an abandoned one if there is one.
    pub fn heap(&self) -> ModelHeap<'_> {
        let heap = self.global.heaps.bind(&*self.global);
        assert!(!heap.is_null(), "could not map a heap");
        ModelHeap { alloc: self, heap }
    }

    /// Free `ptr` (allocated from this allocator with `layout`) from a thread that holds no
    /// heap, as a thread does after its heap was torn down.
    ///
    /// # Safety
    /// As `GlobalAlloc::dealloc`.
    pub unsafe fn dealloc_without_heap(&self, ptr: *mut u8, layout: Layout) {
        let class = size_class(layout.size(), layout.align()).expect("small layouts only");
        // SAFETY: caller's contract.
        unsafe { self.global.free_without_heap(ptr, class) }
    }

    /// A statistics snapshot.
    pub fn stats(&self) -> AllocStats {
        AllocStats::collect(&self.global)
    }

    /// Sweep abandoned heaps (as taking a new pool does).
    pub fn sweep_abandoned(&self) {
        self.global.heaps.sweep_abandoned();
    }

    /// Whether `ptr` lies in one of this allocator's arenas now.
    pub fn owns(&self, ptr: *const u8) -> bool {
        self.global.map.contains(ptr)
    }
}

/// A heap held by the calling loom thread.
pub struct ModelHeap<'a> {
    alloc: &'a ModelAllocator,
    heap: *mut Heap,
}

// SAFETY: a heap may move to another thread together with its holding right (this handle).
unsafe impl Send for ModelHeap<'_> {}

impl ModelHeap<'_> {
    /// Allocate a small block (`layout` must have a size class). Panics if no arena can be
    /// mapped.
    pub fn alloc(&self, layout: Layout) -> *mut u8 {
        let class = size_class(layout.size(), layout.align()).expect("small layouts only");
        // SAFETY: we hold the heap.
        let p = unsafe { (*self.heap).alloc(class) };
        assert!(!p.is_null(), "no arena could be mapped");
        p
    }

    /// Allocate a zeroed small block.
    pub fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let class = size_class(layout.size(), layout.align()).expect("small layouts only");
        // SAFETY: we hold the heap.
        let p = unsafe { (*self.heap).alloc_zeroed(class) };
        assert!(!p.is_null(), "no arena could be mapped");
        p
    }

    /// Free a block allocated from this allocator with `layout`, by whichever heap.
    ///
    /// # Safety
    /// As `GlobalAlloc::dealloc`.
    pub unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let class = size_class(layout.size(), layout.align()).expect("small layouts only");
        // SAFETY: we hold the heap; caller's contract for the block.
        unsafe { (*self.heap).free(ptr, class) }
    }

    /// Take back blocks other threads freed into this heap's pools.
    pub fn collect_remote_frees(&self) {
        // SAFETY: we hold the heap.
        unsafe { (*self.heap).collect_remote_frees() };
    }

    /// Exit: abandon the heap as a thread's exit does.
    pub fn exit(self) {
        // SAFETY: we hold the heap and give the handle up.
        unsafe { self.alloc.global.heaps.abandon(&*self.heap) };
    }
}
