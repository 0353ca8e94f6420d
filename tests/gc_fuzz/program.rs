//! The fuzzer's programs: a list of operations, and how proptest generates them.
//!
//! Operations name roots, edges and workers by small indices taken modulo what exists when
//! the operation runs (an operation with nothing to act on does nothing), so every
//! subsequence of a program is a program: proptest shrinks by deleting operations and
//! simplifying the rest, with no preconditions to maintain. `Debug` prints valid Rust, so a
//! shrunk program pastes into `regressions.rs` as is.

use crate::model::tolerated;
use crate::objects::{act, How, Spec};
use proptest::prelude::*;

/// Which flavor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum F {
    /// `pyheap::unsync` (this thread's space).
    U,
    /// `pyheap` (the shared space).
    S,
}

/// A kind of edge: `UU`, `US` (a single-thread node holding a shared handle), `SS` strong;
/// `UW`, `SW` weak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum E {
    UU,
    US,
    SS,
    UW,
    SW,
}

#[derive(Clone, Debug)]
pub enum Op {
    /// A new node, as a root of the main thread.
    New(F, Spec),
    /// New nodes, as roots, linked into a ring (a cycle waiting for its roots to go).
    Ring(F, Vec<Spec>),
    /// Root `a` gets an edge of kind `E` to root `b` (a clone of it, or a `Weak`).
    Edge(E, u8, u8),
    /// Root `a` loses its last edge of kind `E`.
    PopEdge(E, u8),
    DropRoot(F, u8),
    CloneRoot(F, u8),
    /// Replace root `a` by the target of its last strong edge of kind `E` (walks the graph;
    /// `US` turns a single-thread root into a shared one).
    Walk(E, u8),
    /// Move root `a` itself (no clone, no shared use of its handle) into root `b`'s edges
    /// (`UU`, `US`: a shared root into a single-thread node, `SS`).
    Move(E, u8, u8),
    /// A `Weak` root to root `a`.
    Downgrade(F, u8),
    DropWeak(F, u8),
    /// Upgrade weak root `a` into a root.
    Upgrade(F, u8),
    /// `Gc::get_mut` on root `a`; if it gives the `&mut`, add an edge to root `b` through it
    /// and allocate a node while it lives (which may collect), pushed into it too.
    GetMut(F, u8, u8),
    /// `Gc::try_unwrap` on root `a`; the value taken out is then dropped.
    TryUnwrap(F, u8),
    /// Root `a` into the flavor's `WeakValueMap` under key `k % MAP_KEYS`; what `insert`
    /// returns (the value it replaces) is judged like an upgrade.
    MapPut(F, u8, u8),
    /// `get(k % MAP_KEYS)` on the flavor's map: a value the model says may be dead is never
    /// returned, a live one always is.
    MapGet(F, u8),
    /// `remove(k % MAP_KEYS)`, judged like a `get`.
    MapRemove(F, u8),
    /// Every entry of the flavor's map (`iter`), each judged like a `get`.
    MapScan(F),
    /// Drop the flavor's map (its entries' death notices then find it gone) for a new one.
    MapReset(F),
    /// A `weakref::WeakRef` with a callback to root `a`: the callback runs at most once, never
    /// while the object is alive, and exactly once by the end unless the `WeakRef` is dropped
    /// first (after which it never runs).
    WeakRefCb(F, u8),
    /// Drop `WeakRef` `a`.
    DropWeakRef(F, u8),
    /// `Gc::into_raw` on root `a`: the raw pointer is a root until `FromRaw`.
    IntoRaw(F, u8),
    /// `Gc::from_raw` on raw pointer `a`: a root again.
    FromRaw(F, u8),
    /// `increment_strong_count` on raw pointer `a`, then `from_raw`: one more root, the raw
    /// pointer stays.
    RawClone(F, u8),
    /// `pyheap::collect()` (shared space, then this thread's).
    Collect,
    /// `pyheap::gc::collect_generation(g % 3)` (both spaces).
    CollectGen(u8),
    /// `pyheap::unsync::gc::collect_generation(g % 3)` (this thread's space only).
    CollectGenU(u8),
    /// `n % 32 + 1` collections of this thread's space in a row (generations 0, 1, 2 in
    /// turn): races the shared space's collections on other threads.
    Storm(u8),
    Freeze(F),
    Unfreeze(F),
    /// Automatic collection of a flavor on or off (`enable`/`disable`).
    Auto(F, bool),
    /// `set_threshold` for a flavor (small: collections happen often).
    Threshold(F, u8, u8, u8),
    /// Start / stop a thread that collects the shared space in a loop.
    BgStart,
    BgStop,
    /// A worker thread; `tls_first`: it touches its thread-locals (the holder and the stash)
    /// before its first `Gc`, so their destructors run after pyheap's thread-exit collection.
    Spawn {
        tls_first: bool,
    },
    /// Move main's shared root `a` to worker `w`.
    Send(u8, u8),
    /// Worker `w` runs an operation.
    W(u8, WOp),
    /// Worker `w` exits holding whatever it holds (its roots, its thread-locals).
    Exit(u8),
    /// A deliberate bug, for the oracle's own tests (never generated).
    #[cfg_attr(miri, allow(dead_code))]
    Sabotage(Sab),
}

/// Deliberate bugs the oracle must catch (`oracle_selftest.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(miri, allow(dead_code))]
pub enum Sab {
    /// Leak a clone of the first single-thread root, then drop the root: a leaked object.
    Leak,
    /// Drop the first root's value in place while it is reachable.
    DropReachable,
    /// Drop the first root's value in place, then its only handle: a double drop.
    DoubleDrop,
    /// Read the first root's value after its last handle went (a use after free).
    UseAfterFree,
    /// Insert the second single-thread root into the map under key 0 but tell the model it
    /// is the first one's entry: the next lookup must notice the wrong object.
    MapMislabel,
    /// Run the first held single-thread `WeakRef`'s callback counter by hand while its object
    /// lives: a callback that runs early must be reported.
    EarlyCallback,
    /// Abort the process (a crash).
    Crash,
    /// Never return (a deadlock).
    Hang,
}

/// What a worker does (indices into its own roots).
#[derive(Clone, Debug)]
pub enum WOp {
    New(F, Spec),
    /// `UU` or `US` (any other kind does nothing).
    Edge(E, u8, u8),
    DropRoot(F, u8),
    /// Move root `a` into the worker's `thread_local!` holder.
    ToTls(F, u8),
    /// Give shared root `a` back to the main thread.
    GiveBack(u8),
    Collect,
    CollectGenU(u8),
    /// This worker's single-thread space: automatic collection on with threshold `t`, or off.
    Auto(Option<u8>),
}

/// Which operations a program may use.
#[derive(Clone, Copy, Debug)]
pub struct Profile {
    /// Threads: workers, the background collecting thread, and automatic collection of the
    /// shared space (which runs on pyheap's collector thread). Off for Miri.
    pub threads: bool,
    pub max_ops: usize,
}

fn flavor() -> impl Strategy<Value = F> {
    prop_oneof![Just(F::U), Just(F::S)]
}

fn edge_kind() -> impl Strategy<Value = E> {
    prop_oneof![
        3 => Just(E::UU),
        3 => Just(E::US),
        3 => Just(E::SS),
        1 => Just(E::UW),
        1 => Just(E::SW),
    ]
}

/// The acts a run may generate (`PYHEAP_FUZZ_ACTS`, a mask of `act::*`, default all), less
/// panics while issue 12 item 2 is open (`I2`).
fn acts_mask() -> u8 {
    let m = std::env::var("PYHEAP_FUZZ_ACTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(act::ALL);
    if tolerated("I2") {
        m & !act::PANIC
    } else {
        m
    }
}

/// A bit set where each bit is rare (most nodes do little; a few do a lot).
fn acts(allowed: u8) -> impl Strategy<Value = u8> {
    let allowed = allowed & acts_mask();
    prop_oneof![
        3 => Just(0u8),
        2 => (0u8..=act::ALL).prop_map(move |b| b & allowed & (act::READ | act::STASH)),
        2 => (0u8..=act::ALL).prop_map(move |b| b & allowed),
        1 => Just(act::PANIC & allowed),
    ]
}

/// A spec for a node of flavor `f`. While F4 is open, shared nodes never panic nor call
/// `collect()` in `Drop` (which may resume another object's panic): a shared node's death
/// during the unwinding of a panic out of a single-thread node's `Drop` (or its drop glue)
/// aborts the process if it panics.
pub fn spec_for(f: F) -> impl Strategy<Value = Spec> {
    spec().prop_map(move |mut s| {
        if f == F::S && tolerated("F4") {
            s.on_drop &= !(act::PANIC | act::COLLECT);
            s.on_finalize &= !act::PANIC;
        }
        s
    })
}

pub fn spec() -> impl Strategy<Value = Spec> {
    (
        prop_oneof![4 => Just(How::New), 3 => Just(How::Finalized), 1 => Just(How::Cyclic)],
        acts(act::ALL),
        acts(act::READ | act::STASH | act::PANIC),
    )
        .prop_map(|(how, on_drop, on_finalize)| Spec {
            how,
            on_drop,
            on_finalize: if how == How::Finalized {
                on_finalize
            } else {
                0
            },
        })
}

fn wop() -> impl Strategy<Value = WOp> {
    let i = any::<u8>;
    prop_oneof![
        // While item 5 is open, workers' finalizers do not resurrect (into a thread-local
        // first touched at exit: the exit collection has run by the time it is dropped).
        4 => flavor().prop_flat_map(|f| (Just(f), spec_for(f))).prop_map(|(f, mut s)| {
            if tolerated("I5") {
                s.on_finalize &= !act::STASH;
            }
            WOp::New(f, s)
        }),
        4 => (prop_oneof![Just(E::UU), Just(E::US)], i(), i()).prop_map(|(e, a, b)| WOp::Edge(e, a, b)),
        2 => (flavor(), i()).prop_map(|(f, a)| WOp::DropRoot(f, a)),
        2 => (flavor(), i()).prop_map(|(f, a)| WOp::ToTls(f, a)),
        1 => i().prop_map(WOp::GiveBack),
        1 => Just(WOp::Collect),
        1 => i().prop_map(WOp::CollectGenU),
        1 => proptest::option::of(1u8..8).prop_map(WOp::Auto),
    ]
}

pub fn op(p: Profile) -> BoxedStrategy<Op> {
    let i = any::<u8>;
    let single = prop_oneof![
        8 => flavor().prop_flat_map(|f| (Just(f), spec_for(f))).prop_map(|(f, s)| Op::New(f, s)),
        3 => flavor()
            .prop_flat_map(|f| (Just(f), proptest::collection::vec(spec_for(f), 2..6)))
            .prop_map(|(f, v)| Op::Ring(f, v)),
        10 => (edge_kind(), i(), i()).prop_map(|(e, a, b)| Op::Edge(e, a, b)),
        2 => (edge_kind(), i()).prop_map(|(e, a)| Op::PopEdge(e, a)),
        7 => (flavor(), i()).prop_map(|(f, a)| Op::DropRoot(f, a)),
        1 => (flavor(), i()).prop_map(|(f, a)| Op::CloneRoot(f, a)),
        2 => (prop_oneof![Just(E::UU), Just(E::US), Just(E::SS)], i()).prop_map(|(e, a)| Op::Walk(e, a)),
        2 => (prop_oneof![Just(E::UU), Just(E::US), Just(E::SS)], i(), i()).prop_map(|(e, a, b)| Op::Move(e, a, b)),
        2 => (flavor(), i()).prop_map(|(f, a)| Op::Downgrade(f, a)),
        1 => (flavor(), i()).prop_map(|(f, a)| Op::DropWeak(f, a)),
        2 => (flavor(), i()).prop_map(|(f, a)| Op::Upgrade(f, a)),
        1 => (flavor(), i(), i()).prop_map(|(f, a, b)| Op::GetMut(f, a, b)),
        1 => (flavor(), i()).prop_map(|(f, a)| Op::TryUnwrap(f, a)),
        2 => (flavor(), i(), i()).prop_map(|(f, k, a)| Op::MapPut(f, k, a)),
        2 => (flavor(), i()).prop_map(|(f, k)| Op::MapGet(f, k)),
        1 => (flavor(), i()).prop_map(|(f, k)| Op::MapRemove(f, k)),
        1 => flavor().prop_map(Op::MapScan),
        1 => flavor().prop_map(Op::MapReset),
        2 => (flavor(), i()).prop_map(|(f, a)| Op::WeakRefCb(f, a)),
        1 => (flavor(), i()).prop_map(|(f, a)| Op::DropWeakRef(f, a)),
        1 => (flavor(), i()).prop_map(|(f, a)| Op::IntoRaw(f, a)),
        1 => (flavor(), i()).prop_map(|(f, a)| Op::FromRaw(f, a)),
        1 => (flavor(), i()).prop_map(|(f, a)| Op::RawClone(f, a)),
        3 => Just(Op::Collect),
        1 => i().prop_map(Op::CollectGen),
        1 => i().prop_map(Op::CollectGenU),
        1 => i().prop_map(Op::Storm),
        1 => flavor().prop_map(Op::Freeze),
        1 => flavor().prop_map(Op::Unfreeze),
        1 => (0u8..8, 1u8..4, 1u8..4).prop_map(|(a, b, c)| Op::Threshold(F::U, a, b, c)),
        1 => (0u8..8, 1u8..4, 1u8..4).prop_map(|(a, b, c)| Op::Threshold(F::S, a, b, c)),
        1 => any::<bool>().prop_map(|on| Op::Auto(F::U, on)),
    ];
    if !p.threads {
        return single.boxed();
    }
    prop_oneof![
        30 => single,
        1 => any::<bool>().prop_map(|on| Op::Auto(F::S, on)),
        1 => Just(Op::BgStart),
        1 => Just(Op::BgStop),
        1 => any::<bool>().prop_map(|t| Op::Spawn { tls_first: t && !tolerated("I5") }),
        2 => (i(), i()).prop_map(|(w, a)| Op::Send(w, a)),
        6 => (i(), wop()).prop_map(|(w, o)| Op::W(w, o)),
        1 => i().prop_map(Op::Exit),
    ]
    .boxed()
}

pub fn program(p: Profile) -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op(p), 1..p.max_ops)
}
