//! `WeakKeyMap` (Python's `weakref.WeakKeyDictionary`), written once for both flavors (see
//! `value_map.rs` for what the invoking module provides).

macro_rules! weak_key_map {
    (
        key_bounds: [$($kb:tt)*],
        value_bounds: [$($vb:tt)*],
        prelude: $pre:literal,
        flavor: $flavor:literal,
        len_doc: $len_doc:literal $(,)?
    ) => {
        /// An entry: the key's weak handle, the value, the entry's token, its death notice.
        pub(crate) struct KeyEntry<K: ?Sized + $crate::GcValue, V> {
            weak: Weak<K>,
            value: V,
            token: u64,
            notice: $crate::gc::watch::NoticeKey,
        }

        impl<K: ?Sized + $crate::GcValue, V> $crate::gc::weak_maps::core::Entry for KeyEntry<K, V> {
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

        // SAFETY: an entry owns its value (reported once) and a weak handle to its key (not
        // a strong edge).
        unsafe impl<K: ?Sized + $crate::GcValue, V: $crate::Trace> $crate::Trace for KeyEntry<K, V> {
            #[inline]
            fn trace(&self, tracer: &mut $crate::Tracer) {
                self.value.trace(tracer)
            }
            const MAY_CONTAIN_GC: bool = V::MAY_CONTAIN_GC;
        }

        type KeyCore<K, V> = $crate::gc::weak_maps::core::Core<
            Sync_,
            usize,
            KeyEntry<K, V>,
            $crate::gc::weak_maps::core::IdHash,
        >;

        /// A map whose keys are objects held weakly (Python's `weakref.WeakKeyDictionary`):
        /// data attached to objects without keeping them alive. When a key dies its entry
        /// goes, and its value is dropped.
        ///
        /// **Keys are compared by identity**: two `Gc`s are the same key when they point to
        /// the same object ([`Gc::ptr_eq`]), whatever their values' `Eq` says — as Python's
        /// `WeakKeyDictionary` for objects without `__eq__`/`__hash__` (the usual case for the
        /// objects it annotates). No `Hash` or `Eq` of yours runs.
        ///
        /// An entry whose key died — by refcounting, because a collection found it garbage,
        /// or moved out by `try_unwrap` — is never returned, and is removed without scanning
        /// the map: every entry registers a death notice which, when the key dies, queues the
        /// entry and removes it at once (dropping its value, on the thread where the key
        /// died) if the map is not in use at that moment, or else leaves it to the thread
        /// using it, which removes it when it releases the map (or to the next access).
        ///
        #[doc = $flavor]
        ///
        #[doc = $len_doc]
        ///
        /// All methods take `&self` (the map has its own lock); a map can be a field of a
        /// `Gc` object (it is `Trace`: its values are traced, its keys are weak edges). A
        /// value that holds a strong handle to its own key keeps the key alive as long as the
        /// map lives (as in Python). Values' `Clone` (used by the methods that return values)
        /// runs while the map is locked, so it must not use the map (the thread-safe flavor
        /// would deadlock, the single-thread one panics); nothing else of yours
        /// runs inside: values leave the map, and are dropped, only after it is released, so a
        /// value's `Drop` may use the map.
        ///
        #[doc = concat!("```\n", $pre, "
let notes: WeakKeyMap<String, &str> = WeakKeyMap::new();
let a = Gc::new(String::from(\"same\"));
let b = Gc::new(String::from(\"same\"));
notes.insert(&a, \"first\");
notes.insert(&b, \"second\"); // equal values, different objects: two keys
assert_eq!(notes.get(&a), Some(\"first\"));
assert_eq!(notes.len(), 2);
drop(a);
assert_eq!(notes.len(), 1);
```")]
        pub struct WeakKeyMap<K: ?Sized + $crate::GcValue, V> {
            core: Rc<KeyCore<K, V>>,
        }

        impl<K, V> WeakKeyMap<K, V>
        where
            K: ?Sized + $crate::GcValue $($kb)*,
            V: 'static $($vb)*,
        {
            /// An empty map.
            ///
            #[doc = concat!("```\n", $pre, "
let m: WeakKeyMap<str, u32> = WeakKeyMap::new();
assert!(m.is_empty());
```")]
            pub fn new() -> Self {
                WeakKeyMap { core: Rc::new(KeyCore::new()) }
            }

            /// An empty map with room for `capacity` entries.
            ///
            #[doc = concat!("```\n", $pre, "
let m: WeakKeyMap<u64, u32> = WeakKeyMap::with_capacity(16);
assert!(m.is_empty());
```")]
            pub fn with_capacity(capacity: usize) -> Self {
                WeakKeyMap { core: Rc::new(KeyCore::with_capacity(capacity)) }
            }

            /// A new entry for `key` (its notice registered), or `None` (and `value` back) if
            /// `key`'s weak handles were cleared by a collection.
            fn entry_for(&self, key: &Gc<K>, value: V) -> Result<KeyEntry<K, V>, V> {
                let weak = Gc::downgrade(key);
                if weak.strong_count() == 0 {
                    return Err(value);
                }
                let token = self.core.token();
                let map = Rc::downgrade(&self.core);
                let id = Gc::object_id(key);
                let notice = watch(
                    id,
                    Box::new(move || {
                        if let Some(core) = map.upgrade() {
                            core.on_death(id, token);
                        }
                    }),
                );
                Ok(KeyEntry { weak, value, token, notice })
            }

            /// Map `key` (held weakly, by identity) to `value`; returns the value it had.
            ///
            /// A key whose weak handles a collection cleared (garbage being torn down, or
            /// resurrected by a finalizer) is dead on arrival: its entry is removed and
            /// `value` dropped.
            ///
            #[doc = concat!("```\n", $pre, "
let m = WeakKeyMap::new();
let k = Gc::new(1u8);
assert_eq!(m.insert(&k, \"a\"), None);
assert_eq!(m.insert(&k, \"b\"), Some(\"a\"));
assert_eq!(m.get(&k), Some(\"b\"));
```")]
            pub fn insert(&self, key: &Gc<K>, value: V) -> Option<V> {
                let e = match self.entry_for(key, value) {
                    Ok(e) => e,
                    Err(value) => {
                        drop(value);
                        return self.remove(key);
                    }
                };
                let id = Gc::object_id(key);
                self.core.access(|t, bin| match t.get_mut(&id) {
                    Some(slot) => {
                        // The same object: keep its entry, swap the value, drop the new notice.
                        let KeyEntry { weak, value, notice, .. } = e;
                        bin.notices.push(notice);
                        drop(weak); // a live object's: frees nothing
                        Some(core::mem::replace(&mut slot.value, value))
                    }
                    None => {
                        t.insert(id, e);
                        None
                    }
                })
            }

            /// A clone of the value `key` maps to.
            ///
            #[doc = concat!("```\n", $pre, "
let m = WeakKeyMap::new();
let (k, other) = (Gc::new(()), Gc::new(()));
m.insert(&k, vec![1, 2]);
assert_eq!(m.get(&k), Some(vec![1, 2]));
assert_eq!(m.get(&other), None);
```")]
            pub fn get(&self, key: &Gc<K>) -> Option<V>
            where
                V: Clone,
            {
                let id = Gc::object_id(key);
                self.core.access(|t, _| t.get(&id).map(|e| e.value.clone()))
            }

            /// The value `key` maps to, or `make()`'s, inserted (Python's `setdefault`).
            /// `make` runs with the map unlocked (it may use the map); if another insert under
            /// `key` happened meanwhile, that value is kept and returned.
            ///
            #[doc = concat!("```\n", $pre, "
let m = WeakKeyMap::new();
let k = Gc::new(0u8);
assert_eq!(m.get_or_insert_with(&k, || 5), 5);
assert_eq!(m.get_or_insert_with(&k, || unreachable!()), 5);
```")]
            pub fn get_or_insert_with(&self, key: &Gc<K>, make: impl FnOnce() -> V) -> V
            where
                V: Clone,
            {
                if let Some(v) = self.get(key) {
                    return v;
                }
                let e = match self.entry_for(key, make()) {
                    Ok(e) => e,
                    Err(value) => return value,
                };
                let id = Gc::object_id(key);
                self.core.access(|t, bin| match t.get(&id) {
                    Some(slot) => {
                        let v = slot.value.clone();
                        bin.removed(id, e);
                        v
                    }
                    None => {
                        let v = e.value.clone();
                        t.insert(id, e);
                        v
                    }
                })
            }

            /// Whether `key` has an entry.
            ///
            #[doc = concat!("```\n", $pre, "
let m = WeakKeyMap::new();
let k = Gc::new(1u32);
m.insert(&k, ());
assert!(m.contains_key(&k));
assert!(!m.contains_key(&Gc::new(1u32)), \"identity, not equality\");
```")]
            pub fn contains_key(&self, key: &Gc<K>) -> bool {
                let id = Gc::object_id(key);
                self.core.access(|t, _| t.contains_key(&id))
            }

            /// Remove `key`'s entry; returns its value.
            ///
            #[doc = concat!("```\n", $pre, "
let m = WeakKeyMap::new();
let k = Gc::new(1u32);
m.insert(&k, String::from(\"v\"));
assert_eq!(m.remove(&k).as_deref(), Some(\"v\"));
assert_eq!(m.remove(&k), None);
```")]
            pub fn remove(&self, key: &Gc<K>) -> Option<V> {
                let id = Gc::object_id(key);
                self.core.access(|t, bin| {
                    let KeyEntry { weak, value, notice, .. } = t.remove(&id)?;
                    bin.notices.push(notice);
                    drop(weak); // a live object's: frees nothing
                    Some(value)
                })
            }

            /// The number of entries whose key's death has not been processed yet (see the
            /// type's docs for exactly when it is).
            ///
            #[doc = concat!("```\n", $pre, "
let m = WeakKeyMap::new();
let (a, b) = (Gc::new(1u8), Gc::new(2u8));
m.insert(&a, 'a');
m.insert(&b, 'b');
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
let m = WeakKeyMap::new();
let k = Gc::new(1u8);
m.insert(&k, ());
assert!(!m.is_empty());
drop(k);
assert!(m.is_empty());
```")]
            pub fn is_empty(&self) -> bool {
                self.len() == 0
            }

            /// Remove every entry (values are dropped after the map is released).
            ///
            #[doc = concat!("```\n", $pre, "
let m = WeakKeyMap::new();
let k = Gc::new(1u8);
m.insert(&k, ());
m.clear();
assert!(m.is_empty());
```")]
            pub fn clear(&self) {
                self.core.clear()
            }

            /// The live keys (a snapshot of new strong handles, in no particular order).
            ///
            #[doc = concat!("```\n", $pre, "
let m = WeakKeyMap::new();
let (a, b) = (Gc::new(1u8), Gc::new(2u8));
m.insert(&a, ());
m.insert(&b, ());
drop(b);
let keys: Vec<Gc<u8>> = m.keys().collect();
assert!(keys.len() == 1 && Gc::ptr_eq(&keys[0], &a));
```")]
            pub fn keys(&self) -> std::vec::IntoIter<Gc<K>> {
                self.core.snapshot(|_, e| e.weak.upgrade()).into_iter()
            }

            /// Clones of the live entries' values (a snapshot, in no particular order).
            ///
            #[doc = concat!("```\n", $pre, "
let m = WeakKeyMap::new();
let (a, b) = (Gc::new(1u8), Gc::new(2u8));
m.insert(&a, 10);
m.insert(&b, 20);
assert_eq!(m.values().sum::<i32>(), 30);
```")]
            pub fn values(&self) -> std::vec::IntoIter<V>
            where
                V: Clone,
            {
                self.core
                    .snapshot(|_, e| e.alive().then(|| e.value.clone()))
                    .into_iter()
            }

            /// The live entries: new strong handles to the keys, clones of the values (a
            /// snapshot, in no particular order).
            ///
            #[doc = concat!("```\n", $pre, "
let m = WeakKeyMap::new();
let a = Gc::new(String::from(\"obj\"));
m.insert(&a, 1);
for (k, v) in m.iter() {
    assert_eq!((k.as_str(), v), (\"obj\", 1));
}
```")]
            pub fn iter(&self) -> std::vec::IntoIter<(Gc<K>, V)>
            where
                V: Clone,
            {
                self.core
                    .snapshot(|_, e| e.weak.upgrade().map(|k| (k, e.value.clone())))
                    .into_iter()
            }

            /// Keep only the live entries for which `keep` returns true. `keep` runs on a
            /// snapshot with the map unlocked (it may use the map); an entry whose value was
            /// replaced meanwhile is still judged by the snapshot's value.
            ///
            #[doc = concat!("```\n", $pre, "
let m = WeakKeyMap::new();
let keys: Vec<_> = (0..4u8).map(Gc::new).collect();
for k in &keys {
    m.insert(k, u32::from(**k) * 10);
}
m.retain(|k, v| **k < 2 && *v == u32::from(**k) * 10);
assert_eq!(m.len(), 2);
```")]
            pub fn retain(&self, mut keep: impl FnMut(&Gc<K>, &V) -> bool)
            where
                V: Clone,
            {
                let snap = self.core.snapshot(|&id, e| {
                    e.weak.upgrade().map(|k| (k, e.value.clone(), id, e.token))
                });
                let mut gone = Vec::new();
                for (k, v, id, token) in snap {
                    if !keep(&k, &v) {
                        gone.push((id, token));
                    }
                }
                self.core.remove_tokens(gone);
            }
        }

        impl<K, V> Default for WeakKeyMap<K, V>
        where
            K: ?Sized + $crate::GcValue $($kb)*,
            V: 'static $($vb)*,
        {
            /// An empty map.
            ///
            #[doc = concat!("```\n", $pre, "
let m: WeakKeyMap<u8, u8> = Default::default();
assert!(m.is_empty());
```")]
            fn default() -> Self {
                Self::new()
            }
        }

        impl<K, V> Clone for WeakKeyMap<K, V>
        where
            K: ?Sized + $crate::GcValue $($kb)*,
            V: Clone + 'static $($vb)*,
        {
            /// A new map with the live entries (Python's `copy()`).
            ///
            #[doc = concat!("```\n", $pre, "
let m = WeakKeyMap::new();
let k = Gc::new(1u8);
m.insert(&k, 'x');
let c = m.clone();
m.clear();
assert_eq!(c.get(&k), Some('x'));
```")]
            fn clone(&self) -> Self {
                let m = Self::new();
                for (k, v) in self.iter() {
                    m.insert(&k, v);
                }
                m
            }
        }

        impl<K, V> core::fmt::Debug for WeakKeyMap<K, V>
        where
            K: ?Sized + $crate::GcValue + core::fmt::Debug $($kb)*,
            V: Clone + core::fmt::Debug + 'static $($vb)*,
        {
            /// The live entries.
            ///
            #[doc = concat!("```\n", $pre, "
let m = WeakKeyMap::new();
let k = Gc::new(String::from(\"key\"));
m.insert(&k, 1);
assert_eq!(format!(\"{m:?}\"), r#\"{\"key\": 1}\"#);
```")]
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.debug_map().entries(self.iter()).finish()
            }
        }

        impl<'a, K, V> Extend<(&'a Gc<K>, V)> for WeakKeyMap<K, V>
        where
            K: ?Sized + $crate::GcValue $($kb)*,
            V: 'static $($vb)*,
        {
            /// Insert each pair.
            ///
            #[doc = concat!("```\n", $pre, "
let keys = [Gc::new(1u8), Gc::new(2u8)];
let mut m = WeakKeyMap::new();
m.extend(keys.iter().map(|k| (k, **k * 2)));
assert_eq!(m.get(&keys[1]), Some(4));
```")]
            fn extend<I: IntoIterator<Item = (&'a Gc<K>, V)>>(&mut self, iter: I) {
                for (k, v) in iter {
                    self.insert(k, v);
                }
            }
        }

        impl<'a, K, V> FromIterator<(&'a Gc<K>, V)> for WeakKeyMap<K, V>
        where
            K: ?Sized + $crate::GcValue $($kb)*,
            V: 'static $($vb)*,
        {
            /// A map of the pairs.
            ///
            #[doc = concat!("```\n", $pre, "
let keys = [Gc::new(1u8), Gc::new(2u8)];
let m: WeakKeyMap<u8, usize> = keys.iter().zip(0..).collect();
assert_eq!(m.len(), 2);
```")]
            fn from_iter<I: IntoIterator<Item = (&'a Gc<K>, V)>>(iter: I) -> Self {
                let mut m = Self::new();
                m.extend(iter);
                m
            }
        }

        // SAFETY: the map owns its values, reported once each through the table's lock (the
        // `Mutex`/`RefCell` impls: a busy table reports nothing, the collector holds the
        // guard until the scan decides, so no value moves in or out meanwhile); keys are
        // weak. The table is behind an `Rc`/`Arc` that only this map owns: death notices hold
        // a weak reference to it and change the table only holding its lock (`try_lock`).
        unsafe impl<K, V> $crate::Trace for WeakKeyMap<K, V>
        where
            K: ?Sized + $crate::GcValue,
            V: $crate::Trace,
        {
            fn trace(&self, tracer: &mut $crate::Tracer) {
                if V::MAY_CONTAIN_GC {
                    $crate::Trace::trace(self.core.table(), tracer)
                }
            }
            const MAY_CONTAIN_GC: bool = V::MAY_CONTAIN_GC;
        }
    };
}

pub(crate) use weak_key_map;
