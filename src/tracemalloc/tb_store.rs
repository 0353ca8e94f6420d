//! `TbStore`: one shard's tracebacks, each kept once (interned), in memory mapped from the
//! OS.
//!
//! A traceback is a record `[hash][len][frame 0]...[frame len-1]` (words; frames are raw
//! return addresses, most recent first) bumped into *chunks* of mapped memory linked
//! together; an `AddrTable` from the hash finds it again. Records never move and live until
//! the store is cleared, so a trace holds its traceback as the record's address.

#![cfg_attr(loom, allow(dead_code))] // the models use a part of it

use crate::alloc::block_table::{AddrTable, Found};
use crate::alloc::os;
use core::ptr;

/// Bytes of a chunk (a larger record gets a chunk of its own size).
const CHUNK: usize = 16 * 1024;
/// Words at the start of a chunk: the link to the previous chunk, and the chunk's size.
const CHUNK_HEADER: usize = 2;

/// # Invariants
/// `chunk` is null or the newest chunk, mapped with `os::map`, `chunk_words` words long, whose
/// first word links to the previous chunk (null for the first) and second holds its size in
/// words; `used` words of it are taken. Every record is wholly inside one chunk. The index
/// maps `hash | 1` (and, on a collision, the next odd numbers) to record addresses.
pub(crate) struct TbStore {
    chunk: *mut usize,
    chunk_words: usize,
    used: usize,
    index: AddrTable<usize>,
    bytes: usize,
}

// SAFETY: the store owns its mappings; moving it moves that ownership.
unsafe impl Send for TbStore {}

fn hash_frames(frames: &[usize]) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ frames.len() as u64;
    for &f in frames {
        h = (h ^ f as u64).wrapping_mul(0x0000_0100_0000_01b3);
        h ^= h >> 29;
    }
    h as usize
}

impl TbStore {
    pub(crate) const fn new() -> TbStore {
        TbStore {
            chunk: ptr::null_mut(),
            chunk_words: 0,
            used: 0,
            index: AddrTable::new(),
            bytes: 0,
        }
    }

    /// The frames of the record at `tb`.
    ///
    /// # Safety
    /// `tb` was returned by `intern` of a store not cleared since, and the caller keeps that
    /// store from being cleared while it uses the slice.
    pub(crate) unsafe fn frames<'a>(tb: usize) -> &'a [usize] {
        let rec = tb as *const usize;
        // SAFETY: a record: its length word and frames follow its hash (caller's contract).
        unsafe { core::slice::from_raw_parts(rec.add(2), rec.add(1).read()) }
    }

    /// The record of `frames`, made if new. `None` if no memory could be mapped.
    pub(crate) fn intern(&mut self, frames: &[usize]) -> Option<usize> {
        let h = hash_frames(frames);
        let mut key = h | 1;
        while let Found::Live(rec) = self.index.find(key) {
            // SAFETY: a record of this store, which is not cleared while we hold it.
            if unsafe { Self::frames(rec) } == frames {
                return Some(rec);
            }
            key = key.wrapping_add(2);
        }
        let rec = self.bump(frames.len() + 2)?;
        // SAFETY: `bump` returned `frames.len() + 2` words of ours.
        unsafe {
            rec.write(h);
            rec.add(1).write(frames.len());
            ptr::copy_nonoverlapping(frames.as_ptr(), rec.add(2), frames.len());
        }
        if !self.index.insert(key, rec as usize) {
            return None; // the record stays unused in its chunk until the store is cleared
        }
        Some(rec as usize)
    }

    /// `words` fresh words in a chunk.
    fn bump(&mut self, words: usize) -> Option<*mut usize> {
        if self.chunk.is_null() || self.used + words > self.chunk_words {
            let size = (CHUNK / 8).max(words + CHUNK_HEADER);
            let fresh = os::map(size * 8).cast::<usize>();
            if fresh.is_null() {
                return None;
            }
            // SAFETY: the fresh chunk has `size >= 2` words.
            unsafe {
                fresh.write(self.chunk as usize);
                fresh.add(1).write(size);
            }
            self.chunk = fresh;
            self.chunk_words = size;
            self.used = CHUNK_HEADER;
            self.bytes += size * 8;
        }
        // SAFETY: `used + words <= chunk_words`, within the chunk.
        let p = unsafe { self.chunk.add(self.used) };
        self.used += words;
        Some(p)
    }

    /// Bytes mapped (chunks and index).
    pub(crate) fn bytes_mapped(&self) -> usize {
        self.bytes + self.index.bytes_mapped()
    }

    /// Forget every traceback and give the memory back.
    pub(crate) fn clear(&mut self) {
        let mut c = self.chunk;
        while !c.is_null() {
            // SAFETY: a chunk of ours (invariants): its header words are readable.
            let (prev, words) = unsafe { (c.read() as *mut usize, c.add(1).read()) };
            os::unmap(c.cast(), words * 8);
            c = prev;
        }
        self.index.clear();
        *self = TbStore::new();
    }
}
