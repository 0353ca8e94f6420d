//! `WeakValueMap` (Python's `weakref.WeakValueDictionary`), written once for both flavors:
//! each flavor's `weak_maps` module invokes [`weak_value_map!`] with its handles and
//! primitives in scope (`Gc`, `Weak`, `Rc`/`RcWeak`: `Arc` or `Rc`, `Sync_`: its
//! `core::MapSync`, and `watch`: its notice registration).

macro_rules! weak_value_map {
    (
        key_bounds: [$($kb:tt)*],
        value_bounds: [$($vb:tt)*],
        prelude: $pre:literal,
        flavor: $flavor:literal,
        len_doc: $len_doc:literal $(,)?
    ) => {
        /// An entry: the value's weak handle, the entry's token, its death notice.
        pub(crate) struct ValueEntry<V: ?Sized + $crate::GcValue> {
            weak: Weak<V>,
            token: u64,
            notice: $crate::gc::watch::NoticeKey,
        }

        impl<V: ?Sized + $crate::GcValue> $crate::gc::weak_maps::core::Entry for ValueEntry<V> {
            #[inline]
            fn token(&self) -> u64 {
                self.token
            }
            #[inline]
            fn notice(&self) -> $crate::gc::watch::NoticeKey {
                self.notice
            }
            #[inline]
            fn alive(&self) -> bool {
                self.weak.strong_count() > 0
            }
        }

        // SAFETY: an entry owns no strong handle (a `Weak` is not a strong edge).
        unsafe impl<V: ?Sized + $crate::GcValue> $crate::Trace for ValueEntry<V> {
            #[inline(always)]
            fn trace(&self, _: &mut $crate::Tracer) {}
            const MAY_CONTAIN_GC: bool = false;
        }

        type ValueCore<K, V> =
            $crate::gc::weak_maps::core::Core<Sync_, K, ValueEntry<V>, std::hash::RandomState>;

        /// A map whose values are held weakly (Python's `weakref.WeakValueDictionary`): an
        /// entry lives as long as its value does, a cache that never keeps what it caches
        /// alive.
        ///
        /// Keys are ordinary owned keys, hashed and compared by value (`Hash + Eq`, as
        /// `HashMap`'s); values are objects, held by `Weak` handles: inserting takes a `&Gc`,
        /// reading gives a new `Gc` ([`get`](Self::get) upgrades). An entry whose value died
        /// — by refcounting, or because a collection found it garbage (a cycle), or moved out
        /// by `try_unwrap` — is never returned, and is removed without scanning the map: every
        /// entry registers a death notice that queues its key, and every access first removes
        /// the queued entries (amortised O(1) per death). A notice that finds the map free
        /// removes its entry at once, on the thread where the value died; one that finds it in
        /// use leaves it to the next access.
        ///
        #[doc = $flavor]
        ///
        #[doc = $len_doc]
        ///
        /// All methods take `&self` (the map has its own lock, as Python's dict is shared):
        /// a map can be a field of a `Gc` object (it is `Trace`: its keys are traced, its
        /// values are weak edges) or a global. Keys' `Hash` and `Eq` run while the map is
        /// locked, so they must not use the map (the thread-safe flavor would deadlock, the
        /// single-thread one panics). Nothing else of yours runs inside: keys and values
        /// leave the map (and may be dropped) only after it is released, so a `Drop` may use
        /// the map. Each entry keeps a clone of its key in its notice (Python's `KeyedRef`
        /// does the same), hence `K: Clone`; that clone is not traced, so a key holding a
        /// `Gc` keeps its referent alive until the entry goes (its value dies, or it is
        /// removed or replaced): a key that refers back to the object holding the map makes
        /// a cycle the collector cannot see through the map. The listing methods
        /// ([`keys`](Self::keys), [`values`](Self::values), [`iter`](Self::iter)) return
        /// snapshots of the live entries.
        ///
        #[doc = concat!("```\n", $pre, "
let cache: WeakValueMap<String, String> = WeakValueMap::new();
let obj = Gc::new(String::from(\"image data\"));
cache.insert(\"logo\".to_string(), &obj);
assert_eq!(cache.get(\"logo\").as_deref().map(String::as_str), Some(\"image data\"));
drop(obj); // the last handle: the entry goes with the value
assert!(cache.get(\"logo\").is_none());
assert_eq!(cache.len(), 0);
```")]
        pub struct WeakValueMap<K, V: ?Sized + $crate::GcValue> {
            core: Rc<ValueCore<K, V>>,
        }

        impl<K, V> WeakValueMap<K, V>
        where
            K: Clone + Eq + std::hash::Hash + 'static $($kb)*,
            V: ?Sized + $crate::GcValue $($vb)*,
        {
            /// An empty map.
            ///
            #[doc = concat!("```\n", $pre, "
let m: WeakValueMap<u32, str> = WeakValueMap::new();
assert!(m.is_empty());
```")]
            pub fn new() -> Self {
                WeakValueMap { core: Rc::new(ValueCore::new()) }
            }

            /// An empty map with room for `capacity` entries.
            ///
            #[doc = concat!("```\n", $pre, "
let m: WeakValueMap<u32, u64> = WeakValueMap::with_capacity(100);
assert_eq!(m.len(), 0);
```")]
            pub fn with_capacity(capacity: usize) -> Self {
                WeakValueMap { core: Rc::new(ValueCore::with_capacity(capacity)) }
            }

            /// A new entry for `value` (its notice registered), or `None` if `value`'s weak
            /// handles were cleared (a member of a garbage set being torn down, or one a
            /// finalizer resurrected: no `Weak` to it upgrades any more).
            fn entry_for(&self, key: &K, value: &Gc<V>) -> Option<ValueEntry<V>> {
                let weak = Gc::downgrade(value);
                if weak.strong_count() == 0 {
                    return None;
                }
                let token = self.core.token();
                let map = Rc::downgrade(&self.core);
                let key = key.clone();
                let notice = watch(
                    Gc::object_id(value),
                    Box::new(move || {
                        if let Some(core) = map.upgrade() {
                            core.on_death(key, token);
                        }
                    }),
                );
                Some(ValueEntry { weak, token, notice })
            }

            /// Map `key` to `value` (held weakly); returns the value it replaces, if alive.
            ///
            /// A value whose weak handles a collection cleared (garbage being torn down, or
            /// resurrected by a finalizer) is dead on arrival: the key is removed instead.
            ///
            #[doc = concat!("```\n", $pre, "
let m = WeakValueMap::new();
let (a, b) = (Gc::new(1u32), Gc::new(2u32));
assert!(m.insert(\"k\", &a).is_none());
assert_eq!(m.insert(\"k\", &b).as_deref(), Some(&1));
assert_eq!(m.get(\"k\").as_deref(), Some(&2));
```")]
            pub fn insert(&self, key: K, value: &Gc<V>) -> Option<Gc<V>> {
                let Some(e) = self.entry_for(&key, value) else {
                    return self.remove(&key);
                };
                self.core.access(|t, bin| match t.get_mut(&key) {
                    Some(slot) => {
                        let old = core::mem::replace(slot, e);
                        let r = old.weak.upgrade();
                        bin.removed(key, old);
                        r
                    }
                    None => {
                        t.insert(key, e);
                        None
                    }
                })
            }

            /// The value `key` maps to, if it is alive.
            ///
            #[doc = concat!("```\n", $pre, "
let m = WeakValueMap::new();
let v = Gc::new(String::from(\"x\"));
m.insert(String::from(\"k\"), &v);
assert_eq!(*m.get(\"k\").unwrap(), \"x\");
assert!(m.get(\"other\").is_none());
```")]
            pub fn get<Q>(&self, key: &Q) -> Option<Gc<V>>
            where
                K: core::borrow::Borrow<Q>,
                Q: ?Sized + std::hash::Hash + Eq,
            {
                self.core.access(|t, bin| {
                    let g = t.get(key)?.weak.upgrade();
                    if g.is_none() {
                        // Found dead before its notice came: remove it now.
                        if let Some((k, e)) = t.remove_entry(key) {
                            bin.removed(k, e);
                        }
                    }
                    g
                })
            }

            /// The value `key` maps to if alive, otherwise `make()`'s, inserted (Python's
            /// `setdefault`, the usual cache lookup). `make` runs with the map unlocked (it
            /// may use the map); if another insert under `key` happened meanwhile and its
            /// value is alive, that value is returned and `make`'s is dropped.
            ///
            #[doc = concat!("```\n", $pre, "
let m = WeakValueMap::new();
let a = m.get_or_insert_with(7u32, || Gc::new(String::from(\"seven\")));
let b = m.get_or_insert_with(7u32, || unreachable!(\"cached\"));
assert!(Gc::ptr_eq(&a, &b));
```")]
            pub fn get_or_insert_with(&self, key: K, make: impl FnOnce() -> Gc<V>) -> Gc<V> {
                if let Some(g) = self.get(&key) {
                    return g;
                }
                let value = make();
                let Some(e) = self.entry_for(&key, &value) else {
                    self.remove(&key);
                    return value;
                };
                let raced = self.core.access(|t, bin| match t.get_mut(&key) {
                    Some(slot) => {
                        if let Some(live) = slot.weak.upgrade() {
                            bin.removed(key, e);
                            return Some(live);
                        }
                        let old = core::mem::replace(slot, e);
                        bin.removed(key, old);
                        None
                    }
                    None => {
                        t.insert(key, e);
                        None
                    }
                });
                raced.unwrap_or(value)
            }

            /// Whether `key` maps to a live value.
            ///
            #[doc = concat!("```\n", $pre, "
let m = WeakValueMap::new();
let v = Gc::new(0u8);
m.insert(1, &v);
assert!(m.contains_key(&1));
drop(v);
assert!(!m.contains_key(&1));
```")]
            pub fn contains_key<Q>(&self, key: &Q) -> bool
            where
                K: core::borrow::Borrow<Q>,
                Q: ?Sized + std::hash::Hash + Eq,
            {
                self.core.access(|t, bin| {
                    let Some(e) = t.get(key) else { return false };
                    if e.alive() {
                        return true;
                    }
                    if let Some((k, e)) = t.remove_entry(key) {
                        bin.removed(k, e);
                    }
                    false
                })
            }

            /// Remove `key`'s entry; returns its value if it was alive.
            ///
            #[doc = concat!("```\n", $pre, "
let m = WeakValueMap::new();
let v = Gc::new(5i64);
m.insert(\"k\", &v);
assert_eq!(m.remove(\"k\").as_deref(), Some(&5));
assert!(m.remove(\"k\").is_none());
```")]
            pub fn remove<Q>(&self, key: &Q) -> Option<Gc<V>>
            where
                K: core::borrow::Borrow<Q>,
                Q: ?Sized + std::hash::Hash + Eq,
            {
                self.core.access(|t, bin| {
                    let (k, e) = t.remove_entry(key)?;
                    let g = e.weak.upgrade();
                    bin.removed(k, e);
                    g
                })
            }

            /// The number of entries whose value's death has not been processed yet (see the
            /// type's docs for exactly when it is).
            ///
            #[doc = concat!("```\n", $pre, "
let m = WeakValueMap::new();
let (a, b) = (Gc::new(1u8), Gc::new(2u8));
m.insert(\"a\", &a);
m.insert(\"b\", &b);
assert_eq!(m.len(), 2);
drop(a);
assert_eq!(m.len(), 1);
```")]
            pub fn len(&self) -> usize {
                self.core.len()
            }

            /// Whether [`len`](Self::len) is 0.
            ///
            #[doc = concat!("```\n", $pre, "
let m = WeakValueMap::new();
let v = Gc::new(1u8);
m.insert(0, &v);
assert!(!m.is_empty());
drop(v);
assert!(m.is_empty());
```")]
            pub fn is_empty(&self) -> bool {
                self.len() == 0
            }

            /// Remove every entry.
            ///
            #[doc = concat!("```\n", $pre, "
let m = WeakValueMap::new();
let v = Gc::new(1u8);
m.insert(0, &v);
m.clear();
assert!(m.is_empty());
assert_eq!(*v, 1, \"values are not touched\");
```")]
            pub fn clear(&self) {
                self.core.clear()
            }

            /// The keys of the live entries (a snapshot, in no particular order).
            ///
            #[doc = concat!("```\n", $pre, "
let m = WeakValueMap::new();
let (a, b) = (Gc::new(1u8), Gc::new(2u8));
m.insert(\"a\", &a);
m.insert(\"b\", &b);
drop(b);
assert_eq!(m.keys().collect::<Vec<_>>(), [\"a\"]);
```")]
            pub fn keys(&self) -> std::vec::IntoIter<K> {
                self.core
                    .snapshot(|k, e| e.alive().then(|| k.clone()))
                    .into_iter()
            }

            /// The live values (a snapshot of new strong handles, in no particular order).
            ///
            #[doc = concat!("```\n", $pre, "
let m = WeakValueMap::new();
let a = Gc::new(10u32);
m.insert(\"a\", &a);
let total: u32 = m.values().map(|v| *v).sum();
assert_eq!(total, 10);
```")]
            pub fn values(&self) -> std::vec::IntoIter<Gc<V>> {
                self.core.snapshot(|_, e| e.weak.upgrade()).into_iter()
            }

            /// The live entries (a snapshot: keys cloned, values as new strong handles, in
            /// no particular order).
            ///
            #[doc = concat!("```\n", $pre, "
let m = WeakValueMap::new();
let a = Gc::new(10u32);
m.insert(\"a\", &a);
for (k, v) in m.iter() {
    assert_eq!((k, *v), (\"a\", 10));
}
```")]
            pub fn iter(&self) -> std::vec::IntoIter<(K, Gc<V>)> {
                self.core
                    .snapshot(|k, e| e.weak.upgrade().map(|g| (k.clone(), g)))
                    .into_iter()
            }

            /// Keep only the live entries for which `keep` returns true. `keep` runs on a
            /// snapshot with the map unlocked (it may use the map); an entry replaced
            /// meanwhile is not removed.
            ///
            #[doc = concat!("```\n", $pre, "
let m = WeakValueMap::new();
let vals: Vec<_> = (0..6u32).map(Gc::new).collect();
for (i, v) in vals.iter().enumerate() {
    m.insert(i, v);
}
m.retain(|_, v| **v % 2 == 0);
assert_eq!(m.len(), 3);
```")]
            pub fn retain(&self, mut keep: impl FnMut(&K, &Gc<V>) -> bool) {
                let snap = self.core.snapshot(|k, e| {
                    e.weak.upgrade().map(|g| (k.clone(), g, e.token))
                });
                let mut gone = Vec::new();
                for (k, g, token) in snap {
                    if !keep(&k, &g) {
                        gone.push((k, token));
                    }
                }
                self.core.remove_tokens(gone);
            }
        }

        impl<K, V> Default for WeakValueMap<K, V>
        where
            K: Clone + Eq + std::hash::Hash + 'static $($kb)*,
            V: ?Sized + $crate::GcValue $($vb)*,
        {
            /// An empty map.
            ///
            #[doc = concat!("```\n", $pre, "
let m: WeakValueMap<String, u8> = Default::default();
assert!(m.is_empty());
```")]
            fn default() -> Self {
                Self::new()
            }
        }

        impl<K, V> Clone for WeakValueMap<K, V>
        where
            K: Clone + Eq + std::hash::Hash + 'static $($kb)*,
            V: ?Sized + $crate::GcValue $($vb)*,
        {
            /// A new map with the live entries (Python's `copy()`).
            ///
            #[doc = concat!("```\n", $pre, "
let m = WeakValueMap::new();
let v = Gc::new(1u8);
m.insert(1, &v);
let c = m.clone();
m.clear();
assert_eq!(c.len(), 1);
```")]
            fn clone(&self) -> Self {
                let m = Self::new();
                for (k, v) in self.iter() {
                    m.insert(k, &v);
                }
                m
            }
        }

        impl<K, V> core::fmt::Debug for WeakValueMap<K, V>
        where
            K: Clone + Eq + std::hash::Hash + 'static + core::fmt::Debug $($kb)*,
            V: ?Sized + $crate::GcValue + core::fmt::Debug $($vb)*,
        {
            /// The live entries.
            ///
            #[doc = concat!("```\n", $pre, "
let m = WeakValueMap::new();
let v = Gc::new(1u8);
m.insert(\"k\", &v);
assert_eq!(format!(\"{m:?}\"), r#\"{\"k\": 1}\"#);
```")]
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.debug_map().entries(self.iter()).finish()
            }
        }

        impl<K, V> Extend<(K, Gc<V>)> for WeakValueMap<K, V>
        where
            K: Clone + Eq + std::hash::Hash + 'static $($kb)*,
            V: ?Sized + $crate::GcValue $($vb)*,
        {
            /// Insert each pair (an entry whose handle was the value's last dies at once).
            ///
            #[doc = concat!("```\n", $pre, "
let v = Gc::new(1u8);
let mut m = WeakValueMap::new();
m.extend([(\"a\", v.clone()), (\"b\", Gc::new(2u8))]);
assert_eq!(m.len(), 1, \"b's value had no other handle\");
```")]
            fn extend<I: IntoIterator<Item = (K, Gc<V>)>>(&mut self, iter: I) {
                for (k, v) in iter {
                    self.insert(k, &v);
                }
            }
        }

        impl<'a, K, V> Extend<(K, &'a Gc<V>)> for WeakValueMap<K, V>
        where
            K: Clone + Eq + std::hash::Hash + 'static $($kb)*,
            V: ?Sized + $crate::GcValue $($vb)*,
        {
            /// Insert each pair.
            ///
            #[doc = concat!("```\n", $pre, "
let vals = [Gc::new(1u8), Gc::new(2u8)];
let mut m = WeakValueMap::new();
m.extend([(\"a\", &vals[0]), (\"b\", &vals[1])]);
assert_eq!(m.len(), 2);
```")]
            fn extend<I: IntoIterator<Item = (K, &'a Gc<V>)>>(&mut self, iter: I) {
                for (k, v) in iter {
                    self.insert(k, v);
                }
            }
        }

        impl<K, V> FromIterator<(K, Gc<V>)> for WeakValueMap<K, V>
        where
            K: Clone + Eq + std::hash::Hash + 'static $($kb)*,
            V: ?Sized + $crate::GcValue $($vb)*,
        {
            /// A map of the pairs.
            ///
            #[doc = concat!("```\n", $pre, "
let vals: Vec<_> = (0..3u8).map(Gc::new).collect();
let m: WeakValueMap<usize, u8> = vals.iter().cloned().enumerate().collect();
assert_eq!(m.len(), 3);
```")]
            fn from_iter<I: IntoIterator<Item = (K, Gc<V>)>>(iter: I) -> Self {
                let mut m = Self::new();
                m.extend(iter);
                m
            }
        }

        impl<'a, K, V> FromIterator<(K, &'a Gc<V>)> for WeakValueMap<K, V>
        where
            K: Clone + Eq + std::hash::Hash + 'static $($kb)*,
            V: ?Sized + $crate::GcValue $($vb)*,
        {
            /// A map of the pairs.
            ///
            #[doc = concat!("```\n", $pre, "
let vals: Vec<_> = (0..3u8).map(Gc::new).collect();
let m: WeakValueMap<usize, u8> = vals.iter().enumerate().collect();
assert_eq!(m.len(), 3);
```")]
            fn from_iter<I: IntoIterator<Item = (K, &'a Gc<V>)>>(iter: I) -> Self {
                let mut m = Self::new();
                m.extend(iter);
                m
            }
        }

        // SAFETY: the map owns its keys, reported once each through the table's lock (the
        // `Mutex`/`RefCell` impls: a busy table reports nothing, the collector holds the
        // guard until the scan decides, so no key moves in or out meanwhile); values are
        // weak. The table is behind an `Rc`/`Arc` that only this map owns: death notices hold
        // a weak reference to it, upgraded only while they queue a key, and they never copy
        // or drop a handle of the table (keys leave the table only through an access of the
        // map, which holds the lock). The key clones in notices and the dead queue are not
        // reported: outside references, which only keep their referents.
        unsafe impl<K, V> $crate::Trace for WeakValueMap<K, V>
        where
            K: $crate::Trace,
            V: ?Sized + $crate::GcValue,
        {
            fn trace(&self, tracer: &mut $crate::Tracer) {
                if K::MAY_CONTAIN_GC {
                    $crate::Trace::trace(self.core.table(), tracer)
                }
            }
            const MAY_CONTAIN_GC: bool = K::MAY_CONTAIN_GC;
        }
    };
}

pub(crate) use weak_value_map;
