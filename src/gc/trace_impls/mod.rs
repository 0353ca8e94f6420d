//! `Trace` for the primitives and the std types, and for a few crates' types behind cargo
//! features. Leaves report nothing and say `MAY_CONTAIN_GC = false`; containers report their
//! elements and inherit the element's constant, so `Vec<u64>` or `HashMap<String, i32>` stay
//! untracked.
//!
//! | file | what |
//! |---|---|
//! | `leaves.rs` | primitives, strings, paths, time, `NonZero*`, atomics, pointers, `PhantomData`, std's `Weak`s |
//! | `containers.rs` | `Box`, the collections, `Option`/`Result`, tuples, arrays, slices, `Cow`, `Reverse`, `Wrapping`, `Saturating`, ranges, `ManuallyDrop`, `Pin` |
//! | `cells.rs` | `Cell`, `RefCell`, `OnceCell`, `LazyCell`: the single-thread interiors |
//! | `sync.rs` | `Mutex`, `RwLock`, `OnceLock`, `LazyLock`: the interiors other threads share |
//! | `shared_ownership.rs` | `Rc`, `Arc`: only of types that hold no `Gc` |
//! | `features.rs` | `hashbrown`, `indexmap`, `smallvec`, `parking_lot` (cargo features of the same names) |
//!
//! Interior-mutable containers never block or panic while being traced: a `RefCell` that is
//! mutably borrowed, or a `Mutex`/`RwLock` that is held, reports nothing, which makes the
//! objects behind it roots for this collection (kept alive, never freed wrongly). A poisoned
//! lock is traced through.
//!
//! # Types that may only hold values without a `Gc`
//!
//! Some types cannot report the handles they hold: a `Cell` gives its content only by value
//! (taking it out through `&self` would move a handle while the collector counts it), an
//! `Rc`/`Arc` shares it (a handle behind an `Rc` is owned by every clone of the `Rc` at once,
//! so no one value may report it: two would count one handle twice), and a `LazyLock` before
//! Rust 1.94 has no way to look at its value without running its initialiser. Each is `Trace`
//! for any `T: Trace`, reports nothing, says `MAY_CONTAIN_GC = false`, and **fails to compile
//! where `T::MAY_CONTAIN_GC` is true** (`gc_free`): the assertion sits in its
//! `MAY_CONTAIN_GC`, which every `Gc::new` of a type holding it evaluates (through the
//! derive's OR of the fields' constants), and again in its `trace`, which the collector's
//! vtable instantiates, so a value of such a type never reaches the collector. It is an error
//! at `cargo build` (a constant evaluated after monomorphisation), not at `cargo check`.
//!
//! Why an assertion on `MAY_CONTAIN_GC` and not a marker trait (`T: NoGc`): the constant is
//! already computed for every `Trace` type, by the derive for the user's own, so `Cell<MyStruct>`
//! works as soon as `MyStruct` derives `Trace`; a marker would need a second derive and an
//! impl for every std type. Soundness does not rest on the assertion: reporting nothing and a
//! wrong `false` only ever leak (see `Trace`'s safety section); the assertion turns that leak
//! into a compile error. `Cell<T>` was `Trace` for `T: Copy` before; it now needs `T: Trace`
//! (every std `Copy` type is, raw and function pointers included; a foreign `Copy` type that
//! is not goes behind `#[trace(skip)]`).

mod cells;
mod containers;
mod features;
mod leaves;
mod shared_ownership;
mod sync;

/// The `MAY_CONTAIN_GC` of a type that may only hold values without a `Gc` (see the module):
/// `false`, or, evaluated in a constant, a compile error saying `why` if `may_contain_gc`
/// (the held type's constant). `track_caller` makes the error point here, at the impl, rather
/// than into `core`'s panic machinery (whose source a toolchain may or may not ship).
#[track_caller]
pub(crate) const fn gc_free(may_contain_gc: bool, why: &'static str) -> bool {
    if may_contain_gc {
        panic!("{}", why)
    }
    false
}

/// `Trace` for a type generic over `T` that reports nothing and may only hold a `T` without a
/// `Gc` (see the module): its `MAY_CONTAIN_GC` is `gc_free`, and its `trace` checks the same
/// (for a holder whose own constant is never evaluated, or skips it). The derive and the
/// containers combine their fields' constants with `|`, not `||`, so that every field's
/// constant is evaluated, this one included. `[..]` are the impl's generics; `$why` the error.
macro_rules! gc_free_only {
    ([$($gen:tt)*] $ty:ty, $why:literal) => {
        // SAFETY: reports nothing, which is always allowed (it can only keep objects alive);
        // `MAY_CONTAIN_GC = false` is exact for a `T` that holds no `Gc` and a compile error
        // for any other `T`. Why the type cannot report its content is said where this macro
        // is used.
        unsafe impl<$($gen)*> $crate::gc::trace::Trace for $ty {
            #[inline(always)]
            fn trace(&self, _: &mut $crate::gc::trace::Tracer) {
                let _ = const { $crate::gc::trace_impls::gc_free(T::MAY_CONTAIN_GC, $why) };
            }
            const MAY_CONTAIN_GC: bool =
                $crate::gc::trace_impls::gc_free(T::MAY_CONTAIN_GC, $why);
        }
    };
}
pub(crate) use gc_free_only;
