//! Destruction of one tracked object whose last strong handle went (either flavor's counts):
//! finalize once, drop the value, release the value's weak token, free the memory when no
//! `Weak` is left. Used by both flavors' refcount deaths and by the teardown of garbage sets.

use crate::gc::header::{Counts, Links, FLAG_FINALIZED};
use crate::gc::panics::FirstPanic;

/// Finalize (once), drop the value, release the value's weak token, free if no `Weak` is left.
/// A panicking finalizer or `Drop` still leaves the object destroyed and its token released
/// (as `Rc` frees its allocation when `T`'s `drop` panics); the panic then propagates.
///
/// # Safety
/// `links` is a dead (`FLAG_DEAD`), unlinked tracked object with strong count zero whose
/// value has not been dropped; nothing else will drop it.
pub(crate) unsafe fn destroy<C: Counts>(links: *const Links) {
    // SAFETY: per the caller the header is alive and the value initialised.
    unsafe {
        let vt = (*links).vtable();
        let mut panics = FirstPanic::new();
        if let Some(fin) = vt.finalize {
            if C::flags(links) & FLAG_FINALIZED == 0 {
                C::set_flag(links, FLAG_FINALIZED);
                // No handle to the object exists (strong is zero and weak upgrades fail), so
                // the finalizer cannot resurrect it; it sees an intact value. A panic in it
                // leaves the value intact: it is dropped next all the same.
                panics.run(|| fin(links));
            }
        }
        // Death notices (`gc::watch`): after the finalizer, before the value goes.
        let object = crate::gc::header::counts_of::<C>(links) as *const C as usize;
        crate::gc::watch::fire_catching(C::SHARED, object, &mut panics);
        {
            let _token = ReleaseToken::<C>::new(links);
            (vt.drop_value)(links);
        }
        panics.resume();
    }
}

/// Releases the value's weak token when dropped, also when the value's `drop` unwinds.
pub(crate) struct ReleaseToken<C: Counts>(*const Links, core::marker::PhantomData<C>);

impl<C: Counts> ReleaseToken<C> {
    /// # Safety
    /// When this is dropped, `links`' value has been dropped (or moved out), its strong count
    /// is zero, and the token is held (see [`release_token`]).
    #[inline]
    pub(crate) unsafe fn new(links: *const Links) -> Self {
        Self(links, core::marker::PhantomData)
    }
}

impl<C: Counts> Drop for ReleaseToken<C> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: per `new`'s contract.
        unsafe { release_token::<C>(self.0) }
    }
}

/// Release the value's weak token; free the allocation if it was the last weak reference.
///
/// # Safety
/// The value has been dropped (or moved out), the strong count is zero, and the token is held.
pub(crate) unsafe fn release_token<C: Counts>(links: *const Links) {
    // SAFETY: per the caller the header is alive until we free it here.
    unsafe {
        if crate::gc::header::counts_of::<C>(links).release_weak(true) {
            free_tracked(links);
        }
    }
}

/// Free a tracked allocation, with the layout and from the start its vtable gives (a handle's
/// own type may be a view of the object, `[T]` of an array or a trait object, so handles free
/// tracked objects through here).
///
/// # Safety
/// `links` is the header of a tracked allocation whose weak count reached zero (no handle,
/// no token: nobody else references it) and whose value is gone.
#[inline]
pub(crate) unsafe fn free_tracked(links: *const Links) {
    // SAFETY: per the caller; the vtable frees the allocation as it was made.
    unsafe { ((*links).vtable().free)(links) }
}
