//! The two thread-local words the fast paths read on every allocation and free: the thread's
//! heap (`thread.rs`'s `HEAP`: null, `DEAD` or a heap) and a copy of its heap's arena-map words
//! (`MAP_WORDS`).
//!
//! **Why not `thread_local!` for these.** A `thread_local!`'s value is reached through a
//! function pointer stored in its `LocalKey` (`LocalKey::with` calls it). In the program that
//! uses `PoolAlloc`, that function is a small shim compiled into one of its codegen units, and
//! the allocation paths inlined into every other unit (`Vec::push`, `BTreeMap::insert`, ...)
//! call it out of line: a call, a return, and the registers the call clobbers. Measured on the
//! `serde_json` workload (BENCHMARKS.md "The thread-local words"): building the same bench
//! with one codegen unit, which inlines the shim, took 233 ms instead of 266 ms, as fast as
//! mimalloc, whose C code reads its thread-local with one `mov` from `%fs`.
//!
//! **What is here instead,** on x86-64 Linux with glibc: one 16-byte object in the ELF TLS
//! block (`.tbss`, zero for every new thread), defined by `global_asm!`, read and written by
//! `asm!` with the *initial-exec* model (`sym@gottpoff`: one load of the word's offset from
//! the GOT, then a `%fs`-relative access). The linker turns that into a constant offset in an
//! executable; in a shared library (a `cdylib`) it stays a GOT load and marks the library
//! `STATIC_TLS`, which glibc serves from its reserve of static TLS, also for a library loaded
//! by `dlopen`. The symbol is hidden (not exported) and carries the crate's version, so two
//! versions of pyheap in one program each keep their own. Everywhere else (other targets,
//! Miri) the words are `thread_local!`s, as before.
//!
//! Either way the words have no destructor and stay readable for the whole life of the thread,
//! including while other thread-locals are destroyed (what `thread.rs` relies on), and a
//! forked child's thread starts with its parent thread's values.

use super::heap::Heap;
use crate::sync::unmodelled::AtomicU64;

#[cfg(all(
    target_arch = "x86_64",
    target_os = "linux",
    target_env = "gnu",
    not(miri)
))]
mod imp {
    use super::{AtomicU64, Heap};
    use core::arch::{asm, global_asm};

    /// The TLS object's symbol: hidden, and versioned so that two versions of the crate in one
    /// program do not share (or clash over) it.
    macro_rules! words_symbol {
        () => {
            concat!(
                "__pyheap_tls_words_",
                env!("CARGO_PKG_VERSION_MAJOR"),
                "_",
                env!("CARGO_PKG_VERSION_MINOR"),
                "_",
                env!("CARGO_PKG_VERSION_PATCH")
            )
        };
    }

    // Two zeroed words in the thread-local BSS: [0] the heap, [8] the map words.
    global_asm!(concat!(
        ".pushsection .tbss,\"awT\",@nobits\n",
        ".p2align 4\n",
        ".globl ",
        words_symbol!(),
        "\n.hidden ",
        words_symbol!(),
        "\n.type ",
        words_symbol!(),
        ",@object\n.size ",
        words_symbol!(),
        ",16\n",
        words_symbol!(),
        ":\n.zero 16\n.popsection"
    ));

    /// Read the word at byte `OFFSET` (0 or 8) of the calling thread's TLS object.
    #[inline(always)]
    fn get<const OFFSET: usize>() -> usize {
        let v: usize;
        // SAFETY: the initial-exec access to our own TLS object (module doc): the GOT entry
        // holds the object's offset from the thread pointer (`%fs`), and the object is 16
        // bytes, 16-aligned, in every thread's static TLS block. Reading it has no other
        // effect.
        unsafe {
            asm!(
                concat!("mov {v}, qword ptr [rip + ", words_symbol!(), "@gottpoff]"),
                "mov {v}, qword ptr fs:[{v} + {off}]",
                v = out(reg) v,
                off = const OFFSET,
                options(nostack, preserves_flags, readonly, pure),
            );
        }
        v
    }

    /// Write the word at byte `OFFSET` (0 or 8) of the calling thread's TLS object.
    #[inline(always)]
    fn set<const OFFSET: usize>(value: usize) {
        // SAFETY: as in `get`; the word belongs to the calling thread only.
        unsafe {
            asm!(
                concat!("mov {t}, qword ptr [rip + ", words_symbol!(), "@gottpoff]"),
                "mov qword ptr fs:[{t} + {off}], {x}",
                t = out(reg) _,
                x = in(reg) value,
                off = const OFFSET,
                options(nostack, preserves_flags),
            );
        }
    }

    #[inline(always)]
    pub(crate) fn heap() -> *mut Heap {
        get::<0>() as *mut Heap
    }
    #[inline(always)]
    pub(crate) fn set_heap(heap: *mut Heap) {
        set::<0>(heap as usize)
    }
    #[inline(always)]
    pub(crate) fn map_words() -> *const AtomicU64 {
        get::<8>() as *const AtomicU64
    }
    #[inline(always)]
    pub(crate) fn set_map_words(words: *const AtomicU64) {
        set::<8>(words as usize)
    }
}

#[cfg(not(all(
    target_arch = "x86_64",
    target_os = "linux",
    target_env = "gnu",
    not(miri)
)))]
mod imp {
    use super::{AtomicU64, Heap};
    use core::cell::Cell;
    use core::ptr;

    thread_local! {
        static HEAP: Cell<*mut Heap> = const { Cell::new(ptr::null_mut()) };
        static MAP_WORDS: Cell<*const AtomicU64> = const { Cell::new(ptr::null()) };
    }

    #[inline(always)]
    pub(crate) fn heap() -> *mut Heap {
        HEAP.with(|h| h.get())
    }
    #[inline(always)]
    pub(crate) fn set_heap(heap: *mut Heap) {
        HEAP.with(|h| h.set(heap))
    }
    #[inline(always)]
    pub(crate) fn map_words() -> *const AtomicU64 {
        MAP_WORDS.with(|w| w.get())
    }
    #[inline(always)]
    pub(crate) fn set_map_words(words: *const AtomicU64) {
        MAP_WORDS.with(|w| w.set(words))
    }
}

pub(crate) use imp::{heap, map_words, set_heap, set_map_words};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_thread_starts_with_null_words_and_keeps_its_own() {
        // On threads of their own, which no other test uses (the unit tests' global allocator
        // is `System`, so nothing binds a heap on them either).
        std::thread::spawn(|| {
            assert_eq!((heap() as usize, map_words() as usize), (0, 0));
            set_heap(0x1000 as *mut Heap);
            set_map_words(0x2000 as *const AtomicU64);
            let other = std::thread::spawn(|| {
                let start = (heap() as usize, map_words() as usize);
                set_heap(0x3000 as *mut Heap);
                set_map_words(0x4000 as *const AtomicU64);
                (start, heap() as usize, map_words() as usize)
            })
            .join()
            .unwrap();
            assert_eq!(other, ((0, 0), 0x3000, 0x4000));
            assert_eq!(
                heap() as usize,
                0x1000,
                "another thread's write reached this one"
            );
            assert_eq!(map_words() as usize, 0x2000);
            set_heap(core::ptr::null_mut());
            set_map_words(core::ptr::null());
        })
        .join()
        .unwrap();
    }
}
