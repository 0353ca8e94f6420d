//! `WeakSet` (Python's `weakref.WeakSet`), written once for both flavors (see
//! `value_map.rs` for what the invoking module provides).

macro_rules! weak_set {
    (
        value_bounds: [$($vb:tt)*],
        prelude: $pre:literal,
        flavor: $flavor:literal,
        len_doc: $len_doc:literal $(,)?
    ) => {
        /// An entry: the member's weak handle, the entry's token, its death notice.
        pub(crate) struct SetEntry<T: ?Sized + $crate::GcValue> {
            weak: Weak<T>,
            token: u64,
            notice: $crate::gc::watch::NoticeKey,
        }

        impl<T: ?Sized + $crate::GcValue> $crate::gc::weak_maps::core::Entry for SetEntry<T> {
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

        type SetCore<T> = $crate::gc::weak_maps::core::Core<
            Sync_,
            usize,
            SetEntry<T>,
            $crate::gc::weak_maps::core::IdHash,
        >;

        /// A set of objects held weakly (Python's `weakref.WeakSet`): a registry of live
        /// instances that does not keep them alive. Members are compared by identity (the
        /// object a `Gc` points to, as [`Gc::ptr_eq`]); a member that dies leaves the set.
        ///
        /// A dead member is never returned, and is removed without scanning the set: every
        /// member registers a death notice that queues it, removed at once if the set is not
        /// in use at that moment, else by the thread using it or the next access.
        ///
        #[doc = $flavor]
        ///
        #[doc = $len_doc]
        ///
        /// All methods take `&self` (the set has its own lock); no code of yours runs while
        /// it is locked. It is `Trace` (holding only weak edges), so it can be a field of a
        /// `Gc` object.
        ///
        #[doc = concat!("```\n", $pre, "
let live: WeakSet<String> = WeakSet::new();
let a = Gc::new(String::from(\"a\"));
let b = Gc::new(String::from(\"b\"));
live.insert(&a);
live.insert(&b);
drop(a);
let names: Vec<String> = live.iter().map(|s| (*s).clone()).collect();
assert_eq!(names, [\"b\"]);
```")]
        pub struct WeakSet<T: ?Sized + $crate::GcValue> {
            core: Rc<SetCore<T>>,
        }

        impl<T> WeakSet<T>
        where
            T: ?Sized + $crate::GcValue $($vb)*,
        {
            /// An empty set.
            ///
            #[doc = concat!("```\n", $pre, "
let s: WeakSet<str> = WeakSet::new();
assert!(s.is_empty());
```")]
            pub fn new() -> Self {
                WeakSet { core: Rc::new(SetCore::new()) }
            }

            /// An empty set with room for `capacity` members.
            ///
            #[doc = concat!("```\n", $pre, "
let s: WeakSet<u8> = WeakSet::with_capacity(8);
assert!(s.is_empty());
```")]
            pub fn with_capacity(capacity: usize) -> Self {
                WeakSet { core: Rc::new(SetCore::with_capacity(capacity)) }
            }

            /// Add `value`'s object; true if it was not a member. An object whose weak
            /// handles a collection cleared (garbage being torn down, or resurrected by a
            /// finalizer) is not added (and is removed if it was a member).
            ///
            #[doc = concat!("```\n", $pre, "
let s = WeakSet::new();
let v = Gc::new(1u8);
assert!(s.insert(&v));
assert!(!s.insert(&v.clone()), \"the same object\");
assert!(s.insert(&Gc::new(1u8)), \"another object\");
```")]
            pub fn insert(&self, value: &Gc<T>) -> bool {
                let weak = Gc::downgrade(value);
                let id = Gc::object_id(value);
                if weak.strong_count() == 0 {
                    self.remove(value);
                    return false;
                }
                let token = self.core.token();
                let set = Rc::downgrade(&self.core);
                let notice = watch(
                    id,
                    Box::new(move || {
                        if let Some(core) = set.upgrade() {
                            core.on_death(id, token);
                        }
                    }),
                );
                let e = SetEntry { weak, token, notice };
                self.core.access(|t, bin| {
                    if t.contains_key(&id) {
                        bin.removed(id, e);
                        return false;
                    }
                    t.insert(id, e);
                    true
                })
            }

            /// Whether `value`'s object is a member.
            ///
            #[doc = concat!("```\n", $pre, "
let s = WeakSet::new();
let v = Gc::new(1u8);
s.insert(&v);
assert!(s.contains(&v));
assert!(!s.contains(&Gc::new(1u8)));
```")]
            pub fn contains(&self, value: &Gc<T>) -> bool {
                let id = Gc::object_id(value);
                self.core.access(|t, _| t.contains_key(&id))
            }

            /// Remove `value`'s object; true if it was a member.
            ///
            #[doc = concat!("```\n", $pre, "
let s = WeakSet::new();
let v = Gc::new(1u8);
s.insert(&v);
assert!(s.remove(&v));
assert!(!s.remove(&v));
```")]
            pub fn remove(&self, value: &Gc<T>) -> bool {
                let id = Gc::object_id(value);
                self.core.access(|t, bin| match t.remove(&id) {
                    Some(e) => {
                        bin.removed(id, e);
                        true
                    }
                    None => false,
                })
            }

            /// The number of members whose death has not been processed yet (see the type's
            /// docs for exactly when it is).
            ///
            #[doc = concat!("```\n", $pre, "
let s = WeakSet::new();
let (a, b) = (Gc::new(1u8), Gc::new(2u8));
s.insert(&a);
s.insert(&b);
drop(b);
assert_eq!(s.len(), 1);
```")]
            pub fn len(&self) -> usize {
                self.core.len()
            }

            /// Whether [`len`](Self::len) is 0.
            ///
            #[doc = concat!("```\n", $pre, "
let s = WeakSet::new();
let v = Gc::new(1u8);
s.insert(&v);
drop(v);
assert!(s.is_empty());
```")]
            pub fn is_empty(&self) -> bool {
                self.len() == 0
            }

            /// Remove every member.
            ///
            #[doc = concat!("```\n", $pre, "
let s = WeakSet::new();
let v = Gc::new(1u8);
s.insert(&v);
s.clear();
assert!(!s.contains(&v));
```")]
            pub fn clear(&self) {
                self.core.clear()
            }

            /// The live members (a snapshot of new strong handles, in no particular order).
            ///
            #[doc = concat!("```\n", $pre, "
let s = WeakSet::new();
let v = Gc::new(7u8);
s.insert(&v);
assert_eq!(s.iter().map(|m| *m).collect::<Vec<u8>>(), [7]);
```")]
            pub fn iter(&self) -> std::vec::IntoIter<Gc<T>> {
                self.core.snapshot(|_, e| e.weak.upgrade()).into_iter()
            }

            /// Keep only the live members for which `keep` returns true (run on a snapshot,
            /// with the set unlocked: it may use the set).
            ///
            #[doc = concat!("```\n", $pre, "
let vals: Vec<_> = (0..10u8).map(Gc::new).collect();
let s: WeakSet<u8> = vals.iter().collect();
s.retain(|v| **v >= 5);
assert_eq!(s.len(), 5);
```")]
            pub fn retain(&self, mut keep: impl FnMut(&Gc<T>) -> bool) {
                let snap = self
                    .core
                    .snapshot(|&id, e| e.weak.upgrade().map(|g| (g, id, e.token)));
                let mut gone = Vec::new();
                for (g, id, token) in snap {
                    if !keep(&g) {
                        gone.push((id, token));
                    }
                }
                self.core.remove_tokens(gone);
            }
        }

        impl<T> Default for WeakSet<T>
        where
            T: ?Sized + $crate::GcValue $($vb)*,
        {
            /// An empty set.
            ///
            #[doc = concat!("```\n", $pre, "
let s: WeakSet<u8> = Default::default();
assert!(s.is_empty());
```")]
            fn default() -> Self {
                Self::new()
            }
        }

        impl<T> Clone for WeakSet<T>
        where
            T: ?Sized + $crate::GcValue $($vb)*,
        {
            /// A new set with the live members (Python's `copy()`).
            ///
            #[doc = concat!("```\n", $pre, "
let s = WeakSet::new();
let v = Gc::new(1u8);
s.insert(&v);
let c = s.clone();
s.clear();
assert!(c.contains(&v));
```")]
            fn clone(&self) -> Self {
                let s = Self::new();
                for v in self.iter() {
                    s.insert(&v);
                }
                s
            }
        }

        impl<T> core::fmt::Debug for WeakSet<T>
        where
            T: ?Sized + $crate::GcValue + core::fmt::Debug $($vb)*,
        {
            /// The live members.
            ///
            #[doc = concat!("```\n", $pre, "
let s = WeakSet::new();
let v = Gc::new(3u8);
s.insert(&v);
assert_eq!(format!(\"{s:?}\"), \"{3}\");
```")]
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.debug_set().entries(self.iter()).finish()
            }
        }

        impl<'a, T> Extend<&'a Gc<T>> for WeakSet<T>
        where
            T: ?Sized + $crate::GcValue $($vb)*,
        {
            /// Add each object.
            ///
            #[doc = concat!("```\n", $pre, "
let vals = [Gc::new(1u8), Gc::new(2u8)];
let mut s = WeakSet::new();
s.extend(&vals);
assert_eq!(s.len(), 2);
```")]
            fn extend<I: IntoIterator<Item = &'a Gc<T>>>(&mut self, iter: I) {
                for v in iter {
                    self.insert(v);
                }
            }
        }

        impl<'a, T> FromIterator<&'a Gc<T>> for WeakSet<T>
        where
            T: ?Sized + $crate::GcValue $($vb)*,
        {
            /// A set of the objects.
            ///
            #[doc = concat!("```\n", $pre, "
let vals = [Gc::new(1u8), Gc::new(2u8)];
let s: WeakSet<u8> = vals.iter().collect();
assert!(s.contains(&vals[0]));
```")]
            fn from_iter<I: IntoIterator<Item = &'a Gc<T>>>(iter: I) -> Self {
                let mut s = Self::new();
                s.extend(iter);
                s
            }
        }

        // SAFETY: the set owns no strong handle (its members are weak edges).
        unsafe impl<T: ?Sized + $crate::GcValue> $crate::Trace for WeakSet<T> {
            #[inline(always)]
            fn trace(&self, _: &mut $crate::Tracer) {}
            const MAY_CONTAIN_GC: bool = false;
        }
    };
}

pub(crate) use weak_set;
