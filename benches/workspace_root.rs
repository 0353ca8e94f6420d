//! Cargo starts a bench binary in its package's directory, `benches/`. These benches were
//! pyheap's own before they got their package, and their paths (`target/criterion`, a relative
//! `CRITERION_HOME` or `CARGO_TARGET_DIR` as in BENCHMARKS.md's commands) are the workspace
//! root's, as the scripts' are: so a binary started by cargo changes into the workspace root
//! first. One started by hand (`target/release/deps/gc_bench-<hash>`) stays where it was run.

pub fn enter() {
    let package = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let here = std::env::current_dir().and_then(|d| d.canonicalize());
    if here.ok().as_deref() == package.canonicalize().ok().as_deref() {
        if let Some(root) = package.parent() {
            std::env::set_current_dir(root).expect("change into the workspace root");
        }
    }
}
