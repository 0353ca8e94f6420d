//! The interior-lock guards a concurrent scan holds until it has decided (see
//! `Tracer::trace_locked`), type- and lifetime-erased.
//!
//! A scan holds one guard per locked value it traces, i.e. about one per object scanned, so
//! the guards are stored inline when they fit in [`INLINE_WORDS`] words (std's
//! `MutexGuard`, `RwLockReadGuard` and `RwLockWriteGuard` are two): boxing each one cost a
//! `malloc` and a `free` per object, measured at about a third of the `mix_2t` benchmark's
//! instructions. Larger guards (loom's) are boxed.
//!
//! # Invariant
//!
//! A [`Held`] owns a guard of some type `G` that it drops exactly once, when it is dropped.
//! The guard's lifetime is erased: whoever creates a `Held` guarantees it is dropped while
//! the lock (and the value it guards) is still alive — for the tracer, before the scan
//! releases the shard locks that keep the traced objects alive.

use core::mem::{align_of, size_of, MaybeUninit};

/// Words of inline storage per guard.
const INLINE_WORDS: usize = 3;

type Storage = MaybeUninit<[usize; INLINE_WORDS]>;

/// One held guard (see the module's invariant).
pub(crate) enum Held {
    Inline {
        data: Storage,
        /// Drops the `G` in `data`.
        drop_guard: unsafe fn(*mut Storage),
    },
    Boxed(#[allow(dead_code)] Box<dyn Erased>),
}

/// Any guard, as a trait object that only knows how to drop itself.
pub(crate) trait Erased {}
impl<G> Erased for G {}

/// Drop the `G` stored at `p`.
///
/// # Safety
/// `p` holds an initialised `G`, dropped by no one else.
unsafe fn drop_as<G>(p: *mut Storage) {
    // SAFETY: per the caller.
    unsafe { p.cast::<G>().drop_in_place() }
}

impl Held {
    /// Take ownership of `guard`, erasing its type and lifetime.
    ///
    /// # Safety
    /// The returned `Held` must be dropped while everything `guard` borrows is alive.
    pub(crate) unsafe fn new<'a, G: 'a>(guard: G) -> Held {
        if size_of::<G>() <= size_of::<Storage>() && align_of::<G>() <= align_of::<Storage>() {
            let mut data = Storage::uninit();
            // SAFETY: `data` is large and aligned enough for a `G` (checked above); the `G`
            // moved in is dropped once, by `drop_as::<G>` in `Held`'s drop.
            unsafe { data.as_mut_ptr().cast::<G>().write(guard) };
            Held::Inline {
                data,
                drop_guard: drop_as::<G>,
            }
        } else {
            let boxed: Box<dyn Erased + 'a> = Box::new(guard);
            // SAFETY: only the lifetime changes; per the caller the box is dropped while what
            // the guard borrows is alive.
            Held::Boxed(unsafe {
                core::mem::transmute::<Box<dyn Erased + 'a>, Box<dyn Erased>>(boxed)
            })
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Held::Inline { data, drop_guard } = self {
            // SAFETY: `data` holds the guard `drop_guard` was made for (module invariant),
            // and this is its only drop.
            unsafe { drop_guard(data) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Held;
    use std::sync::{Mutex, RwLock};

    #[test]
    fn inline_guards_release_their_locks_once() {
        let m = Mutex::new(1);
        let r = RwLock::new(2);
        {
            // SAFETY: dropped at the end of this block, while `m` and `r` live.
            let held = unsafe {
                [
                    Held::new(m.lock().unwrap()),
                    Held::new(r.read().unwrap()),
                    Held::new(r.read().unwrap()),
                ]
            };
            assert!(matches!(held[0], Held::Inline { .. }));
            assert!(m.try_lock().is_err());
            assert!(r.try_write().is_err());
        }
        assert!(m.try_lock().is_ok());
        assert!(r.try_write().is_ok());
    }

    #[test]
    fn large_guards_are_boxed_and_dropped() {
        struct Big<'a>(#[allow(dead_code)] [u64; 8], &'a std::cell::Cell<u32>);
        impl Drop for Big<'_> {
            fn drop(&mut self) {
                self.1.set(self.1.get() + 1);
            }
        }
        let drops = std::cell::Cell::new(0);
        // SAFETY: dropped at once, while `drops` lives.
        let h = unsafe { Held::new(Big([0; 8], &drops)) };
        assert!(matches!(h, Held::Boxed(_)));
        drop(h);
        assert_eq!(drops.get(), 1);
    }
}
