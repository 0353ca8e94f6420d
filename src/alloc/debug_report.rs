//! The debug allocator's fatal report, in the spirit of CPython's
//! `_PyObject_DebugDumpAddress` and `Py_FatalError`: what was wrong, the block's address,
//! requested size and serial number, its guard bytes and the data around the damage, and
//! where it was allocated when tracemalloc traced it. Then the process aborts.
//!
//! The report is written with `write(2)` through `core::fmt`, which allocates nothing; only
//! the traceback (resolving symbols) allocates, after every lock of the allocator's hooks was
//! released.

use super::debug::{Record, GUARD, GUARD_BYTES};
use core::alloc::Layout;
use core::fmt::{self, Write};

/// What a check found.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Fault {
    /// The header before the guard bytes was overwritten (an underrun, or a stray write).
    Header,
    /// The guard bytes before the data were overwritten (an underrun).
    FrontGuard,
    /// The guard bytes after the data were overwritten (an overrun).
    TailGuard,
    /// Freed with a `Layout` whose size or alignment is not the allocation's.
    Layout,
    /// Freed a second time.
    DoubleFree,
    /// Not a block pyheap handed out (or freed long ago).
    Unknown,
}

/// Standard error, unbuffered, without allocation.
struct Stderr;

impl Write for Stderr {
    #[cfg(not(unix))]
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Not on Unix the debug allocator is never on (`hooks.rs`); kept for the build.
        let _ = s;
        Ok(())
    }

    #[cfg(unix)]
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut b = s.as_bytes();
        while !b.is_empty() {
            // SAFETY: writes `b.len()` bytes from a valid slice.
            let n = unsafe { libc::write(2, b.as_ptr().cast(), b.len()) };
            if n <= 0 {
                return Err(fmt::Error);
            }
            b = &b[n as usize..];
        }
        Ok(())
    }
}

fn headline(fault: Fault) -> &'static str {
    match fault {
        Fault::Header => "the block's header was overwritten (an underrun, or a stray write)",
        Fault::FrontGuard => "bad leading guard bytes (a write before the start of the block)",
        Fault::TailGuard => "bad trailing guard bytes (a write past the end of the block)",
        Fault::Layout => "the Layout does not match the allocation's",
        Fault::DoubleFree => "the block was already freed (a double free)",
        Fault::Unknown => "a pointer pyheap never returned (or freed long ago)",
    }
}

/// Print the report for `fault` found by `what` (`dealloc`, `realloc`, `check_heap`) at the
/// block whose data is at `p` (registry record `rec`, freed with `layout`), and abort.
#[cold]
#[inline(never)]
pub(crate) fn report(
    what: &str,
    fault: Fault,
    p: *mut u8,
    rec: Option<Record>,
    layout: Option<Layout>,
) -> ! {
    let _ = write_report(&mut Stderr, what, fault, p, rec, layout);
    std::process::abort()
}

fn write_report(
    w: &mut Stderr,
    what: &str,
    fault: Fault,
    p: *mut u8,
    rec: Option<Record>,
    layout: Option<Layout>,
) -> fmt::Result {
    writeln!(w, "pyheap: debug allocator: {what}: {}", headline(fault))?;
    writeln!(w, "Debug memory block at address p={p:p}:")?;
    match rec {
        Some(r) => {
            writeln!(
                w,
                "    {} bytes originally requested (alignment {})",
                r.size, r.align
            )?;
        }
        None => writeln!(w, "    not a block pyheap's debug allocator knows")?,
    }
    if let Some(l) = layout {
        let verb = if what == "check_heap" {
            "checked"
        } else {
            "freed"
        };
        writeln!(
            w,
            "    {verb} with Layout {{ size: {}, align: {} }}",
            l.size(),
            l.align()
        )?;
    }
    let live = matches!(
        fault,
        Fault::Header | Fault::FrontGuard | Fault::TailGuard | Fault::Layout
    );
    if let (true, Some(r)) = (live, rec) {
        // SAFETY: a live block (its registry entry was live under the lock, and only this
        // thread could have freed it: it is the one freeing or checking it): its header and
        // tail guard are readable.
        unsafe { dump_block(w, p, r)? };
    }
    if let Some(r) = rec {
        writeln!(
            w,
            "    The block was made by call #{} to debug malloc/realloc (its serial number).",
            r.serial
        )?;
    }
    if let Some(tb) = crate::tracemalloc::traceback_for_report(p) {
        writeln!(w, "Memory block allocated at (most recent call first):")?;
        for line in tb.format(None, true) {
            writeln!(w, "{line}")?;
        }
    } else if live {
        writeln!(
            w,
            "    (run with PYHEAP_TRACEMALLOC=1 or tracemalloc::start(n) to see where it was allocated)"
        )?;
    }
    writeln!(
        w,
        "pyheap: fatal error in {what}: {}; aborting",
        headline(fault)
    )
}

/// The guard bytes on both sides and the data's first and last bytes.
///
/// # Safety
/// `p` is the data of a live debug block of `r.size` bytes.
unsafe fn dump_block(w: &mut Stderr, p: *mut u8, r: Record) -> fmt::Result {
    // SAFETY: caller's contract: the 8 guard bytes before the data and after it are ours.
    let (front, tail, data) = unsafe {
        (
            core::slice::from_raw_parts(p.sub(GUARD_BYTES), GUARD_BYTES),
            core::slice::from_raw_parts(p.add(r.size), GUARD_BYTES),
            core::slice::from_raw_parts(p, r.size),
        )
    };
    guards(w, &"at p-8", front, "p-")?;
    let tail_name = TailName(p.wrapping_add(r.size));
    guards(w, &tail_name, tail, "tail+")?;
    write!(w, "    Data at p:")?;
    if data.len() <= 16 {
        for b in data {
            write!(w, " {b:02x}")?;
        }
    } else {
        for b in &data[..8] {
            write!(w, " {b:02x}")?;
        }
        write!(w, " ...")?;
        for b in &data[data.len() - 8..] {
            write!(w, " {b:02x}")?;
        }
    }
    writeln!(w)
}

struct TailName(*mut u8);

impl fmt::Display for TailName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at tail={:p}", self.0)
    }
}

fn guards(w: &mut Stderr, at: &dyn fmt::Display, bytes: &[u8], name: &str) -> fmt::Result {
    if bytes.iter().all(|&b| b == GUARD) {
        return writeln!(
            w,
            "    The {} guard bytes {at} are 0x{GUARD:02X}, as expected.",
            bytes.len()
        );
    }
    writeln!(
        w,
        "    The {} guard bytes {at} are not all 0x{GUARD:02X}:",
        bytes.len()
    )?;
    for (i, &b) in bytes.iter().enumerate() {
        let off = if name == "p-" { bytes.len() - i } else { i };
        write!(w, "        at {name}{off}: 0x{b:02x}")?;
        if b != GUARD {
            write!(w, " *** OUCH")?;
        }
        writeln!(w)?;
    }
    Ok(())
}
