//! Resolving raw return addresses into frames, at snapshot time, and choosing "the line" of
//! an allocation.
//!
//! Resolution goes through the `backtrace` crate (the binary's DWARF line tables, with
//! inlined frames), which allocates: callers run it inside [`super::capture::untraced`], so
//! its allocations are not traced. An address resolved once is kept in a process-wide cache
//! (the code does not move).
//!
//! A frame is *inside* when its function belongs to pyheap or to Rust's `alloc`, `core` or
//! `std` (by the crate of its path, or of the `Self` type of a `<T as Trait>::f` path), or to
//! `hashbrown` and `allocator_api2` (the standard library's collections and allocator API as
//! crates), when it is an allocator shim (`__rust_alloc`, `__rg_alloc`), or
//! when its file is one of the standard library's sources (`/rustc/...`, the
//! standard library's own dependencies under `/rust/deps/`). A traceback drops its leading
//! inside frames.

use super::frame::{Frame, Traceback};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Resolved addresses: every frame an address stands for, innermost (most recent) first.
static CACHE: Mutex<Option<HashMap<usize, Arc<[Frame]>>>> = Mutex::new(None);

/// pyheap, the standard library, and the crates that are the standard library's collections
/// and allocator API on stable Rust (`hashbrown` is `std`'s `HashMap`; `allocator_api2` is
/// `alloc`'s `Vec`/`Box` with an allocator parameter).
const INSIDE_CRATES: [&str; 6] = [
    "pyheap",
    "alloc",
    "core",
    "std",
    "hashbrown",
    "allocator_api2",
];

/// Whether `frame` is pyheap's or the standard library's.
pub(crate) fn is_inside(frame: &Frame) -> bool {
    let name = frame.name();
    // The allocator shims (`__rust_alloc`, and `__rg_alloc`, which `#[global_allocator]`
    // generates in the user's crate).
    if name.split("::").any(|seg| {
        seg.starts_with("__rust") || seg.starts_with("__rg_") || seg.starts_with("__rdl_")
    }) {
        return true;
    }
    let file = frame.filename();
    if file.starts_with("/rustc/")
        || file.starts_with("/rust/deps/")
        || file.contains("/library/std/src/")
    {
        return true;
    }
    INSIDE_CRATES.contains(&crate_of(name))
}

/// The crate of a demangled path: `alloc` for `alloc::raw_vec::finish_grow` and for
/// `<alloc::vec::Vec<T> as core::clone::Clone>::clone`.
fn crate_of(name: &str) -> &str {
    let mut s = name.trim_start();
    loop {
        let t = s
            .trim_start_matches('<')
            .trim_start_matches('&')
            .trim_start_matches('*')
            .trim_start_matches("mut ")
            .trim_start_matches("const ")
            .trim_start_matches("dyn ")
            .trim_start_matches('(')
            .trim_start_matches('[');
        if t.len() == s.len() {
            break;
        }
        s = t;
    }
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The working directory, to show files inside it relative to it.
fn cwd_prefix() -> Option<String> {
    let mut d = std::env::current_dir().ok()?.to_str()?.to_owned();
    if !d.ends_with('/') {
        d.push('/');
    }
    Some(d)
}

/// Resolves addresses, with the process-wide cache and a per-call string interner.
pub(crate) struct Resolver {
    cwd: Option<String>,
    strings: HashMap<String, Arc<str>>,
}

impl Resolver {
    pub(crate) fn new() -> Resolver {
        Resolver {
            cwd: cwd_prefix(),
            strings: HashMap::new(),
        }
    }

    fn intern(&mut self, s: String) -> Arc<str> {
        if let Some(a) = self.strings.get(&s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s.as_str());
        self.strings.insert(s, a.clone());
        a
    }

    /// The frames the return address `ip` stands for, most recent first (more than one when
    /// calls were inlined there).
    pub(crate) fn resolve(&mut self, ip: usize) -> Arc<[Frame]> {
        if let Some(f) = CACHE
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(HashMap::new)
            .get(&ip)
        {
            return f.clone();
        }
        let mut raw: Vec<(Option<String>, u32, String)> = Vec::new();
        // The call instruction is just before the return address.
        backtrace::resolve(ip.wrapping_sub(1) as *mut core::ffi::c_void, |sym| {
            let name = sym.name().map(|n| format!("{n:#}")).unwrap_or_default();
            let file = sym.filename().and_then(|p| p.to_str()).map(str::to_owned);
            raw.push((file, sym.lineno().unwrap_or(0), name));
        });
        if raw.is_empty() {
            raw.push((None, 0, format!("{ip:#x}")));
        }
        let frames: Vec<Frame> = raw
            .into_iter()
            .map(|(file, line, name)| {
                let file = match (file, &self.cwd) {
                    (Some(f), Some(cwd)) => match f.strip_prefix(cwd.as_str()) {
                        Some(rel) => rel.to_owned(),
                        None => f,
                    },
                    (Some(f), None) => f,
                    (None, _) => "<unknown>".to_owned(),
                };
                let line = if file == "<unknown>" { 0 } else { line };
                Frame::new(self.intern(file), line, self.intern(name))
            })
            .collect();
        let frames: Arc<[Frame]> = frames.into();
        CACHE
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(HashMap::new)
            .insert(ip, frames.clone());
        frames
    }

    /// The traceback of the raw frames `raw` (most recent first): every frame they stand
    /// for, the leading inside ones dropped (all kept if every one is inside), at most
    /// `limit`.
    pub(crate) fn traceback(&mut self, raw: &[usize], limit: usize) -> Traceback {
        let mut all: Vec<Frame> = Vec::new();
        for &ip in raw {
            all.extend(self.resolve(ip).iter().cloned());
        }
        let first = all.iter().position(|f| !is_inside(f)).unwrap_or(0);
        Traceback::new(all.into_iter().skip(first).take(limit).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crates_of_paths() {
        assert_eq!(crate_of("alloc::raw_vec::finish_grow"), "alloc");
        assert_eq!(
            crate_of("<alloc::vec::Vec<T> as core::clone::Clone>::clone"),
            "alloc"
        );
        assert_eq!(crate_of("<&mut W as core::fmt::Write>::write_str"), "W");
        assert_eq!(crate_of("myapp::main::{{closure}}"), "myapp");
        assert_eq!(
            crate_of("<myapp::Foo as core::clone::Clone>::clone"),
            "myapp"
        );
        assert_eq!(crate_of("pyheap::gc::shared::handle::Gc<T>::new"), "pyheap");
    }
}
