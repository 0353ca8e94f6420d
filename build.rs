//! What the compiler offers beyond pyheap's minimum (`rust-version` in Cargo.toml): `cfg`s for
//! the few std APIs newer than it that pyheap uses when they are there.
//!
//! * `pyheap_lazy_get`: `LazyLock::get` and `LazyCell::get` (Rust 1.94), which let `Trace`
//!   look into a `LazyLock`/`LazyCell` without running its initialiser. Without them those
//!   are `Trace` only for values that hold no `Gc` (`src/gc/trace_impls/`).
//!
//! Read from `$RUSTC --version` (no probe compilation: one process, no temporary files). A
//! nightly or beta of 1.94 counts as older: the API may not be stable in it yet.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=RUSTC");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let Some((minor, stable)) = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|v| parse(&v))
    else {
        // Unknown compiler: assume only the minimum.
        return;
    };
    if minor > 94 || (minor == 94 && stable) {
        println!("cargo:rustc-cfg=pyheap_lazy_get");
    }
}

/// `rustc 1.95.0 (59807616e 2026-04-14)` → `(95, true)`; `rustc 1.94.0-nightly (…)` →
/// `(94, false)`.
fn parse(version: &str) -> Option<(u32, bool)> {
    let v = version.strip_prefix("rustc ")?.split_whitespace().next()?;
    let mut parts = v.splitn(3, '.');
    if parts.next()? != "1" {
        return None;
    }
    let minor = parts.next()?.parse().ok()?;
    let stable = !parts.next()?.contains('-');
    Some((minor, stable))
}
