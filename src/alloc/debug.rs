//! The debug allocator (`PYHEAP_MALLOC=debug`): CPython's debug hooks on every block.
//!
//! Each block handed out is the *data* of a larger *inner* block, served by the normal
//! paths (a pool, or the system allocator):
//!
//! ```text
//!  inner: [ 0xFD ... ][ size ][ serial ][ magic | align ][ 0xFD x 8 ][ data: size bytes ][ 0xFD x 8 ]
//!                      ^-- p - 32                        ^-- p - 8   ^-- p                ^-- tail
//! ```
//!
//! The header is `max(32, align)` bytes, so the data keeps the requested alignment; its last
//! 32 bytes hold the requested size, a serial number (the count of debug allocations so
//! far, CPython's `serialno`), a magic word that says whether the block is live or freed, the
//! requested alignment, and 8 guard bytes (0xFD, CPython's `FORBIDDENBYTE`); 8 more guard
//! bytes follow the data. New data is filled with 0xCD (`CLEANBYTE`) unless zeroed was asked
//! for, freed data with 0xDD (`DEADBYTE`).
//!
//! Every live block is also in a registry (`block_table.rs`: sharded tables in mapped
//! memory, keyed by the data address), which is how a free tells a live block from a pointer
//! pyheap never returned without reading memory it may not own, how it recognises a double
//! free (the registry keeps a freed block's entry as a tombstone until its table is
//! rehashed), and what [`check_heap`] walks.
//!
//! A free or `realloc` checks the registry, the magic word, both guards and the `Layout`'s
//! size and alignment against the allocation's; any fault stops the program with a report
//! (`debug_report.rs`). The registry's lock is held while a block is checked and taken off,
//! so two threads freeing one block find it live once.

use super::block_table::{shards_of, AddrTable, Found, Shards};
use super::debug_report::{report, Fault};
use super::fallback::Fallback;
use super::pool_alloc::PoolAlloc;
use crate::sync::unmodelled::{AtomicU64, Ordering};
use core::alloc::Layout;
use core::ptr;

/// New data (`CLEANBYTE`).
pub(crate) const CLEAN: u8 = 0xCD;
/// Freed data (`DEADBYTE`).
pub(crate) const DEAD: u8 = 0xDD;
/// Guard bytes (`FORBIDDENBYTE`).
pub(crate) const GUARD: u8 = 0xFD;
/// Guard bytes on each side.
pub(crate) const GUARD_BYTES: usize = 8;
/// The header fields' bytes before the data (size, serial, magic and align, front guard).
const FIELDS: usize = 32;
const LIVE_MAGIC: u32 = 0x5059_4845; // "PYHE"
const FREED_MAGIC: u32 = 0xDEAD_F4EE;

/// A live block's entry in the registry (and a freed one's tombstone).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Record {
    pub(crate) size: usize,
    pub(crate) align: usize,
    pub(crate) serial: u64,
}

static REGISTRY: Shards<AddrTable<Record>> = shards_of!(AddrTable::new());
static SERIAL: AtomicU64 = AtomicU64::new(0);

/// The header size for `align`, and the inner block's layout for a request of `layout`.
fn inner_layout(layout: Layout) -> Option<(usize, Layout)> {
    let header = FIELDS.max(layout.align());
    let size = header
        .checked_add(layout.size())?
        .checked_add(GUARD_BYTES)?;
    let inner = Layout::from_size_align(size, layout.align().max(8)).ok()?;
    Some((header, inner))
}

/// Where the header fields of the block with data at `p` are.
struct Fields {
    size: *mut usize,
    serial: *mut u64,
    magic: *mut u32,
    align: *mut u32,
    front: *mut u8,
}

fn fields(p: *mut u8) -> Fields {
    let base = p.wrapping_sub(FIELDS);
    Fields {
        size: base.cast(),
        serial: base.wrapping_add(8).cast(),
        magic: base.wrapping_add(16).cast(),
        align: base.wrapping_add(20).cast(),
        front: base.wrapping_add(24),
    }
}

/// A debug block for `layout` (null if out of memory); its inner block from the pools or `f`.
pub(crate) fn alloc<A: Fallback>(f: A, layout: Layout, zeroed: bool) -> *mut u8 {
    let Some((header, inner)) = inner_layout(layout) else {
        return ptr::null_mut();
    };
    // SAFETY: a non-zero size.
    let raw = unsafe { PoolAlloc::alloc_raw(f, inner, false) };
    if raw.is_null() {
        return raw;
    }
    let serial = SERIAL.fetch_add(1, Ordering::Relaxed) + 1;
    // SAFETY: `raw` has `inner.size()` = header + size + 8 writable bytes, aligned to at
    // least 8, so the fields (8-aligned: `header` is a multiple of 8) and guards are in it.
    let p = unsafe {
        let p = raw.add(header);
        ptr::write_bytes(raw, GUARD, header - FIELDS + 8);
        let f = fields(p);
        f.size.write(layout.size());
        f.serial.write(serial);
        f.magic.write(LIVE_MAGIC);
        f.align.write(layout.align() as u32);
        ptr::write_bytes(f.front, GUARD, GUARD_BYTES);
        ptr::write_bytes(p, if zeroed { 0 } else { CLEAN }, layout.size());
        ptr::write_bytes(p.add(layout.size()), GUARD, GUARD_BYTES);
        p
    };
    let rec = Record {
        size: layout.size(),
        align: layout.align(),
        serial,
    };
    if !REGISTRY.with_key(p as usize, |t| t.insert(p as usize, rec)) {
        // No memory for the registry: the block could not be recognised when freed.
        // SAFETY: the block just allocated with `inner`.
        unsafe { PoolAlloc::dealloc_raw(f, raw, inner) };
        return ptr::null_mut();
    }
    p
}

/// What is wrong with the live block at `p` whose entry is `rec`, freed with `layout` (or
/// checked with none): `None` if nothing.
///
/// # Safety
/// `p` is a live debug block (its registry entry is live and the caller holds its lock).
unsafe fn damage(p: *mut u8, rec: &Record, layout: Option<Layout>) -> Option<Fault> {
    let f = fields(p);
    // SAFETY: a live block: its header and tail are readable (caller's contract).
    unsafe {
        if f.magic.read() != LIVE_MAGIC
            || f.size.read() != rec.size
            || f.serial.read() != rec.serial
            || f.align.read() as usize != rec.align
        {
            return Some(Fault::Header);
        }
        let front = core::slice::from_raw_parts(f.front, GUARD_BYTES);
        if front.iter().any(|&b| b != GUARD) {
            return Some(Fault::FrontGuard);
        }
        let tail = core::slice::from_raw_parts(p.add(rec.size), GUARD_BYTES);
        if tail.iter().any(|&b| b != GUARD) {
            return Some(Fault::TailGuard);
        }
    }
    match layout {
        Some(l) if l.size() != rec.size || l.align() != rec.align => Some(Fault::Layout),
        _ => None,
    }
}

/// Check the block `p` freed with `layout` and take it off the registry; stop the program
/// with a report if anything is wrong. Returns the block's record.
fn retire(p: *mut u8, layout: Layout, what: &'static str) -> Record {
    let key = p as usize;
    let outcome = REGISTRY.with_key(key, |t| match t.find(key) {
        Found::Live(rec) => {
            // SAFETY: live in the registry, whose lock we hold.
            match unsafe { damage(p, &rec, Some(layout)) } {
                None => {
                    t.remove(key);
                    Ok(rec)
                }
                Some(fault) => Err((fault, Some(rec))),
            }
        }
        Found::Gone(rec) => Err((Fault::DoubleFree, Some(rec))),
        Found::Absent => Err((Fault::Unknown, None)),
    });
    match outcome {
        Ok(rec) => rec,
        Err((Fault::Unknown, None)) if freed_pool_block(p) => {
            report(what, Fault::DoubleFree, p, None, Some(layout))
        }
        Err((fault, rec)) => report(what, fault, p, rec, Some(layout)),
    }
}

/// Whether `p` is the data of a freed debug block in one of pyheap's arenas (a double free
/// whose tombstone the registry no longer has).
fn freed_pool_block(p: *mut u8) -> bool {
    let magic = fields(p).magic;
    if !super::global::GLOBAL.map.contains(magic.cast()) {
        return false;
    }
    // SAFETY: the address is in a mapped arena (arenas stay mapped while registered);
    // reading a word there is reading memory pyheap owns. `read_unaligned`: `p` may be any
    // address.
    unsafe { magic.read_unaligned() == FREED_MAGIC }
}

/// Free the debug block `p` (checked first).
///
/// # Safety
/// `GlobalAlloc::dealloc`'s contract; a caller that breaks it is reported, as far as the
/// registry can tell.
pub(crate) unsafe fn dealloc<A: Fallback>(f: A, p: *mut u8, layout: Layout) {
    // SAFETY: forwarded contract.
    unsafe { free_checked(f, p, layout, "dealloc") }
}

/// `dealloc` on behalf of `what` (named in a report).
///
/// # Safety
/// As for [`dealloc`].
unsafe fn free_checked<A: Fallback>(f: A, p: *mut u8, layout: Layout, what: &'static str) {
    let rec = retire(p, layout, what);
    crate::tracemalloc::forget(p);
    let (header, inner) = inner_layout(layout).expect("checked against the allocation");
    // SAFETY: the block was live with this layout (checked) and is ours now: fill it and
    // free the inner block it came from.
    unsafe {
        ptr::write_bytes(p, DEAD, rec.size);
        fields(p).magic.write(FREED_MAGIC);
        PoolAlloc::dealloc_raw(f, p.sub(header), inner);
    }
}

/// `realloc` of the debug block `p`: a new block, the contents copied, the old one freed
/// (checked).
///
/// # Safety
/// `GlobalAlloc::realloc`'s contract.
pub(crate) unsafe fn realloc<A: Fallback>(
    f: A,
    p: *mut u8,
    layout: Layout,
    new_size: usize,
) -> *mut u8 {
    let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
        return ptr::null_mut();
    };
    // Check the old block first, so that a damaged one is reported as `realloc`'s.
    let key = p as usize;
    let fault = REGISTRY.with_key(key, |t| match t.find(key) {
        // SAFETY: live in the registry, whose lock we hold.
        Found::Live(rec) => unsafe { damage(p, &rec, Some(layout)) }.map(|f| (f, Some(rec))),
        Found::Gone(rec) => Some((Fault::DoubleFree, Some(rec))),
        Found::Absent => Some((Fault::Unknown, None)),
    });
    if let Some((f, rec)) = fault {
        let f = if rec.is_none() && freed_pool_block(p) {
            Fault::DoubleFree
        } else {
            f
        };
        report("realloc", f, p, rec, Some(layout));
    }
    let q = alloc(f, new_layout, false);
    if q.is_null() {
        return q;
    }
    // SAFETY: both blocks are live and distinct; the old one has at least `layout.size()`
    // bytes (the copy of a damaged block is harmless: `dealloc` reports it next).
    unsafe {
        ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
        free_checked(f, p, layout, "realloc");
    }
    q
}

/// Check every live block of the debug allocator (`PYHEAP_MALLOC=debug`): its header, its
/// guard bytes before and after the data. Returns the number of blocks checked, or `None`
/// when the debug allocator is off (no block has guard bytes then). At the first damaged
/// block it stops the program with the same report a free would give (what is wrong, the
/// address, the block's requested size and serial number, the bytes around the damage, and
/// the traceback of its allocation when [`tracemalloc`](crate::tracemalloc) traced it).
///
/// ```
/// // Without PYHEAP_MALLOC=debug in the environment there is nothing to check.
/// if std::env::var_os("PYHEAP_MALLOC").is_none() {
///     assert_eq!(pyheap::alloc::check_heap(), None);
/// }
/// ```
///
/// Other threads may allocate and free meanwhile: each registry shard is locked while its
/// blocks are checked, so no block is freed under the check (a block allocated or freed
/// during the walk may or may not be counted).
pub fn check_heap() -> Option<usize> {
    if !super::hooks::debug_on() {
        return None;
    }
    let mut checked = 0;
    for i in 0..super::block_table::SHARDS {
        let bad = REGISTRY.with(i, |t| {
            let mut bad = None;
            t.for_each(|key, rec| {
                if bad.is_some() {
                    return;
                }
                checked += 1;
                // SAFETY: live in the registry, whose lock we hold.
                if let Some(fault) = unsafe { damage(key as *mut u8, rec, None) } {
                    bad = Some((key, *rec, fault));
                }
            });
            bad
        });
        if let Some((key, rec, fault)) = bad {
            report("check_heap", fault, key as *mut u8, Some(rec), None);
        }
    }
    Some(checked)
}

/// The debug allocator's registry locks, for the fork handlers (taken after tracemalloc's,
/// before the heap registry's and the arenas').
#[cfg(unix)]
pub(crate) fn fork_lock() {
    REGISTRY.lock_all();
}

#[cfg(unix)]
pub(crate) fn fork_unlock() {
    REGISTRY.unlock_all();
}

#[cfg(unix)]
pub(crate) fn fork_child() {
    REGISTRY.force_unlock_all();
}

/// The header size of a block allocated with `align` (for `get_object_traceback`, which
/// finds the data of the block containing an address).
pub(crate) fn header_size(align: usize) -> usize {
    FIELDS.max(align)
}
