//! The oracle's checks on blocks: the pattern every live block holds, zeroes, alignment, and
//! the map of live address ranges (no two live blocks overlap).
//!
//! A block of `len` bytes filled for `tag` holds, at every *written* offset, the byte
//! [`pattern`]`(tag, offset)`; the written offsets are all of them for blocks of at most
//! [`FULL_MAX`] bytes, and for larger ones the first 4 KiB, the first 16 bytes of every 4 KiB
//! page and the last 16 bytes ([`written`]). The tag is unique per allocation (slot,
//! generation, index in the group), so a block that overlaps another, or got another's
//! bytes, or stale ones, shows a wrong byte.

use crate::child::violation;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Blocks up to this size are written and checked whole (zeroes too).
pub const FULL_MAX: usize = 64 * 1024;
const PAGE: usize = 4096;
const HEAD: usize = 16;

/// The byte at offset `i` of a block filled for `tag` (a hash of the tag and the 8-byte word).
#[inline]
fn word(tag: u64, w: usize) -> u64 {
    let mut x = tag ^ (w as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 30;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

pub fn pattern(tag: u64, i: usize) -> u8 {
    (word(tag, i / 8) >> ((i % 8) * 8)) as u8
}

/// The written offsets of a block of `len` bytes, as ranges (they may overlap).
pub fn written(len: usize) -> impl Iterator<Item = (usize, usize)> {
    let whole = len <= FULL_MAX;
    let first = if whole { len } else { PAGE };
    let pages = if whole { 0 } else { len.div_ceil(PAGE) };
    std::iter::once((0, first))
        .chain((1..pages).map(move |p| (p * PAGE, (p * PAGE + HEAD).min(len))))
        .chain((!whole).then(|| (len - HEAD, len)))
}

/// Write `tag`'s pattern over `[from, to)` of the block at `p`.
///
/// # Safety
/// `p` is valid for writes of `to` bytes.
unsafe fn fill_range(p: *mut u8, from: usize, to: usize, tag: u64) {
    let mut i = from;
    while i < to {
        let w = word(tag, i / 8);
        let end = ((i / 8 + 1) * 8).min(to);
        while i < end {
            // SAFETY: `i < to` (caller's contract).
            unsafe { p.add(i).write((w >> ((i % 8) * 8)) as u8) };
            i += 1;
        }
    }
}

/// The first offset in `[from, to)` at `p` not holding `tag`'s pattern.
///
/// # Safety
/// `p` is valid for reads of `to` bytes.
unsafe fn mismatch(p: *const u8, from: usize, to: usize, tag: u64) -> Option<usize> {
    let mut i = from;
    while i < to {
        let w = word(tag, i / 8);
        let end = ((i / 8 + 1) * 8).min(to);
        while i < end {
            // SAFETY: `i < to` (caller's contract).
            if unsafe { p.add(i).read() } != (w >> ((i % 8) * 8)) as u8 {
                return Some(i);
            }
            i += 1;
        }
    }
    None
}

/// Fill the written offsets of a block of `len` bytes at `p` with `tag`'s pattern.
///
/// # Safety
/// `p` is valid for writes of `len` bytes.
pub unsafe fn fill(p: *mut u8, len: usize, tag: u64) {
    for (a, b) in written(len) {
        // SAFETY: `b <= len` (`written`), the caller's contract.
        unsafe { fill_range(p, a, b, tag) };
    }
}

/// Check the written offsets of a block of `len` bytes, the ones below `upto`, hold `tag`'s
/// pattern; `what` names the block in the report.
///
/// # Safety
/// `p` is valid for reads of `len.min(upto)` bytes.
pub unsafe fn check(p: *const u8, len: usize, upto: usize, tag: u64, what: &dyn Fn() -> String) {
    for (a, b) in written(len) {
        let b = b.min(upto);
        // SAFETY: `b <= min(len, upto)`, the caller's contract.
        if let Some(i) = unsafe { mismatch(p, a.min(b), b, tag) } {
            // SAFETY: as above, `i < b`.
            let got = unsafe { p.add(i).read() };
            violation(format!(
                "{}: byte {i} is {got:#04x}, the pattern says {:#04x} (block {p:p})",
                what(),
                pattern(tag, i)
            ));
        }
    }
}

/// Check that `[from, to)` at `p` is zero: every byte when `to - from <=` [`FULL_MAX`],
/// every 512th byte (and the last) otherwise.
///
/// # Safety
/// `p` is valid for reads of `to` bytes.
pub unsafe fn check_zero(p: *const u8, from: usize, to: usize, what: &dyn Fn() -> String) {
    let step = if to - from <= FULL_MAX { 1 } else { 512 };
    let last = to.checked_sub(1).filter(|&l| l >= from);
    for i in (from..to).step_by(step).chain(last) {
        // SAFETY: `i < to`, the caller's contract.
        let b = unsafe { p.add(i).read() };
        if b != 0 {
            violation(format!("{}: byte {i} is {b:#04x}, not zero", what()));
        }
    }
}

pub fn check_align(p: usize, align: usize, what: &dyn Fn() -> String) {
    if p % align != 0 {
        violation(format!("{}: {p:#x} is not aligned to {align}", what()));
    }
}

/// Live blocks by start address: `start -> (end, tag)`.
static RANGES: Mutex<BTreeMap<usize, (usize, u64)>> = Mutex::new(BTreeMap::new());

fn ranges() -> std::sync::MutexGuard<'static, BTreeMap<usize, (usize, u64)>> {
    RANGES.lock().unwrap_or_else(|e| e.into_inner())
}

/// Record a live block `[p, p + len)` (after its allocation); it must overlap no other.
pub fn insert(p: usize, len: usize, tag: u64, what: &dyn Fn() -> String) {
    if len == 0 {
        return;
    }
    let end = p + len;
    let mut m = ranges();
    let before = m.range(..end).next_back().map(|(&s, &v)| (s, v));
    if let Some((s, (e, other))) = before {
        if e > p {
            violation(format!(
                "{}: [{p:#x}, {end:#x}) overlaps the live block [{s:#x}, {e:#x}) of tag {other:#x}",
                what()
            ));
        }
    }
    m.insert(p, (end, tag));
}

/// Forget a live block (before it is freed or reallocated).
pub fn remove(p: usize, len: usize) {
    if len != 0 {
        ranges().remove(&p);
    }
}

/// Forget every block (a fresh program, and the end's leak check: no map nodes left).
pub fn reset() {
    drop(std::mem::take(&mut *ranges()));
}
