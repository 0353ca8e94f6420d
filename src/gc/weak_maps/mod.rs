//! The weak maps — `WeakValueMap`, `WeakKeyMap`, `WeakSet` (Python's `WeakValueDictionary`,
//! `WeakKeyDictionary`, `WeakSet`) — written once for both flavors: `core` is the engine (the
//! table, the dead queue, purging), generic over the flavor's primitives (`core::MapSync`);
//! `value_map`, `key_map` and `set` are macros that each flavor's `weak_maps` module invokes
//! with its handles in scope (as `gc::any` does for `GcAny`).
//!
//! How dead entries go, without a scan of the map: every entry registers a death notice
//! (`gc::watch`) on its referent, which pushes `(key, token)` onto the map's dead queue and
//! then tries to take the table to purge at once; every access drains the queue first, and
//! removes an entry only if its token still matches (an entry replaced or removed since, and
//! a newer entry under the same key, are left alone). Amortised O(1) per death, one atomic
//! load (shared) or `Cell` read (single-thread) per access while nothing died. Entries taken
//! out, keys and values, are dropped after the table is released; removed entries' notices
//! are cancelled then too.

pub(crate) mod core;
pub(crate) mod key_map;
pub(crate) mod set;
pub(crate) mod value_map;

pub(crate) use key_map::weak_key_map;
pub(crate) use set::weak_set;
pub(crate) use value_map::weak_value_map;

/// All three types for one flavor: the invoking module has `Gc`, `Weak`, `Rc` (`Arc` or
/// `Rc`), `Sync_` (its `core::MapSync`), `watch` (its notice registration) and the
/// `core::Entry` trait in scope.
macro_rules! weak_maps {
    (
        value_map: [key: [$($vmk:tt)*], value: [$($vmv:tt)*]],
        key_map: [key: [$($kmk:tt)*], value: [$($kmv:tt)*]],
        set: [$($sv:tt)*],
        prelude: $pre:literal,
        flavor: $flavor:literal,
        len_doc: $len_doc:literal $(,)?
    ) => {
        $crate::gc::weak_maps::weak_value_map!(
            key_bounds: [$($vmk)*],
            value_bounds: [$($vmv)*],
            prelude: $pre,
            flavor: $flavor,
            len_doc: $len_doc,
        );
        $crate::gc::weak_maps::weak_key_map!(
            key_bounds: [$($kmk)*],
            value_bounds: [$($kmv)*],
            prelude: $pre,
            flavor: $flavor,
            len_doc: $len_doc,
        );
        $crate::gc::weak_maps::weak_set!(
            value_bounds: [$($sv)*],
            prelude: $pre,
            flavor: $flavor,
            len_doc: $len_doc,
        );
    };
}

pub(crate) use weak_maps;
