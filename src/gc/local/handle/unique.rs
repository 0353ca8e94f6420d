//! The single-thread flavor's operations that take a value out of its object or make the
//! object unique: `try_unwrap`'s body ([`Gc::take`]), [`Gc::make_mut`] and [`Gc::into_inner`].

use core::mem::ManuallyDrop;
use core::ptr;

use super::super::old_touched;
use super::super::space::with_space;
use super::{Gc, C};
use crate::gc::destroy::release_token;
use crate::gc::header::{Counts, FLAG_DEAD, FLAG_FINALIZED};
use crate::gc::trace::Trace;
use crate::gc::value::GcValue;
use crate::gc::vtable::{VTable, VTables};

/// Aborts the process if dropped: guards the few instructions during which a handle's memory
/// holds a reference that was already given up (`make_mut`'s move), which must not unwind.
struct AbortOnUnwind;

impl Drop for AbortOnUnwind {
    fn drop(&mut self) {
        std::process::abort()
    }
}

impl<T: GcValue> Gc<T> {
    /// `try_unwrap`: move the value out if this is the only strong handle. Also gives the
    /// object's vtable if it has a finalizer that has not run, for a value that moves to a new
    /// object (`make_mut`) and should take it along.
    pub(super) fn take(this: Self) -> Result<(T, Option<&'static VTable>), Self> {
        if this.inner().counts.strong() != 1 || this.is_dead() {
            return Err(this);
        }
        let this = ManuallyDrop::new(this);
        let tracked = this.has_links();
        let mut keep = None;
        if tracked {
            let l = this.links();
            // SAFETY: a live tracked object of this thread (in a list, or out of every list
            // after `get_mut`); nobody can reach the value any more; in no list afterwards, so
            // neither old nor watched.
            unsafe {
                with_space(|s| s.untrack(l));
                let (f, vt) = ((*l).flags(), (*l).vtable());
                if vt.finalize.is_some() && f & FLAG_FINALIZED == 0 {
                    keep = Some(vt);
                }
                (*l).set_flag(FLAG_DEAD);
                old_touched::leave_oldest(l);
            }
        }
        let inner = this.inner();
        inner.counts.set_strong(0);
        // SAFETY: we own the only strong handle; the value is initialised and read once.
        let value = unsafe { ManuallyDrop::into_inner(ptr::read(inner.value.get())) };
        // Weak handles no longer upgrade: death notices (`gc::watch`).
        crate::gc::watch::fire(false, this.ptr.as_ptr().cast::<u8>() as usize);
        if tracked {
            // SAFETY: value moved out, strong is zero, the token is held.
            unsafe { release_token::<C>(this.links()) };
        } else if inner.counts.release_weak(false) {
            // SAFETY: no handle and no token remain.
            unsafe { super::deallocate(this.ptr) };
        }
        Ok((value, keep))
    }

    /// Give back the value if this is the last strong handle, else drop the handle and give
    /// `None` (std's `Rc::into_inner`): when every handle goes through `into_inner`, the last
    /// one gets the value. `Weak` handles stop upgrading. The value is not destroyed, so a
    /// finalizer does not run. A destroyed object (seen only through a handle a garbage
    /// cycle's `Drop` stashed) has no value to give: `None`.
    ///
    /// ```
    /// use pyheap::unsync::Gc;
    /// let a = Gc::new(String::from("v"));
    /// let b = a.clone();
    /// assert_eq!(Gc::into_inner(a), None); // `b` remains
    /// assert_eq!(Gc::into_inner(b).as_deref(), Some("v"));
    /// ```
    pub fn into_inner(this: Self) -> Option<T> {
        Gc::take(this).ok().map(|(value, _)| value)
    }
}

impl<T: Trace + Clone + 'static> Gc<T> {
    /// A mutable reference to the value, cloned into a new object first if other handles
    /// share it (clone-on-write, std's `Rc::make_mut`):
    ///
    /// * the only handle: the value itself, as [`Gc::get_mut`];
    /// * other `Gc` handles: `*this` becomes a new object (`Gc::new` of a clone of the
    ///   value); the others keep the original;
    /// * only `Weak` handles besides: the value moves to a new object (not cloned), and the
    ///   `Weak`s no longer upgrade; a finalizer (`Gc::new_finalized`) that has not run moves
    ///   with it.
    ///
    /// Under the collector: the reference lives as `get_mut`'s (the object is out of its
    /// generation meanwhile); on an object in a cycle, other handles exist (the cycle's
    /// own), so `*this` gets a copy and the cycle loses this handle, which may leave it
    /// garbage for the next collection. A copy starts as a new object (no finalizer; the
    /// original keeps its own).
    ///
    /// # Panics
    /// If the object was destroyed by the collector (as `Deref`: seen only through a handle a
    /// garbage cycle's `Drop` stashed).
    ///
    /// ```
    /// use pyheap::unsync::Gc;
    /// let mut a = Gc::new(vec![1, 2]);
    /// let b = a.clone();
    /// Gc::make_mut(&mut a).push(3); // `b` shares the object: `a` gets a copy
    /// assert_eq!((a.as_slice(), b.as_slice()), (&[1, 2, 3][..], &[1, 2][..]));
    /// let w = Gc::downgrade(&a);
    /// Gc::make_mut(&mut a).push(4); // only a `Weak` besides: moved, not cloned
    /// assert!(w.upgrade().is_none());
    /// assert_eq!(*a, [1, 2, 3, 4]);
    /// ```
    pub fn make_mut(this: &mut Self) -> &mut T {
        while !Gc::make_unique(this) {
            // Only `Weak`s besides this handle: move the value to a new object. If that
            // fails (handles appeared meanwhile, or the object is dead), the clone below.
            if Gc::strong_count(this) == 1 && Gc::move_to_new(this) {
                continue;
            }
            // Shared with other strong handles: a copy (`Deref` panics on a destroyed object).
            *this = Gc::new((**this).clone());
        }
        // SAFETY: `make_unique` made this the only handle of any kind and took the object
        // out of its generation, as `get_mut` does; the borrow of `this` covers the result.
        unsafe { &mut *this.inner().value.get() }
    }

    /// `make_mut`'s move: the value goes to a new object, which takes `*this`'s place, and
    /// keeps a finalizer that has not run. False if the value could not be taken (another
    /// strong handle exists, or the object is dead): `*this` is unchanged.
    ///
    /// The new object is allocated first (which may scan, and run a teardown's user code),
    /// while `*this` is still a handle; from the moment the value is taken until `*this` is
    /// written again, `*this` holds a reference already given up, and nothing runs that could
    /// unwind (moves, a lock, flag updates). Until the value is written the new object is
    /// `FLAG_UNIQUE` (`make_unique`: in no list, so no scan and no introspection meets it)
    /// with `MaybeUninit<T>`'s vtable; the value's vtable (`T`'s, or the finalized one) is put
    /// in before the handle is.
    fn move_to_new(this: &mut Self) -> bool {
        let mut fresh = Gc::<T>::new_uninit();
        if !Gc::make_unique(&mut fresh) {
            // Introspection took a handle to it meanwhile (thread-safe flavor): try again.
            return false;
        }
        // SAFETY: `old` takes `*this`'s place; `*this` is overwritten before it is used again
        // (`Ok`), or `old`, still the very same handle, is forgotten (`Err`).
        let old = unsafe { ptr::read(this) };
        let (value, keep) = match Gc::take(old) {
            Ok(taken) => taken,
            Err(old) => {
                core::mem::forget(old);
                return false;
            }
        };
        let guard = AbortOnUnwind;
        let fresh = ManuallyDrop::new(fresh);
        let vtable = keep.unwrap_or(&VTables::<C, T>::PLAIN);
        // SAFETY: `fresh` is the only handle of its object and `FLAG_UNIQUE` (nobody else
        // reads the value); the value is written, then the object is given the vtable of its
        // type (same head as `MaybeUninit<T>`'s; the finalized one if the finalizer moves),
        // then the handle its type; `*this` was read out above and is replaced unread.
        unsafe {
            (*fresh.inner().value.get()).write(value);
            if T::MAY_CONTAIN_GC {
                super::swap_vtable(fresh.links(), vtable.head_ptr());
            }
            ptr::write(
                this,
                Gc {
                    ptr: fresh.ptr.cast::<super::Inner<T>>(),
                    _owns: core::marker::PhantomData,
                },
            );
        }
        core::mem::forget(guard);
        true
    }
}
