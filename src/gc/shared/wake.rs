//! [`Wake`]: std's `task::Wake` for `pyheap::Gc` (`Waker::from(gc)`), for executors whose
//! tasks live in the shared object space.
//!
//! std's `Wake` takes `self: Arc<Self>`, a receiver type only std's pointers can be, so this is
//! a trait of its own with the same two methods as associated functions. The `Waker` holds a
//! strong reference through a raw pointer (`Gc::into_raw`): while a waker exists the task is
//! kept, as a root of the collector (no `Trace` impl reports a raw pointer). A task that stores
//! a waker to itself inside itself is therefore never freed, cycle collector or not, exactly
//! as with `Arc`: drop the stored waker when the task completes.

use core::task::{RawWaker, RawWakerVTable, Waker};

use super::handle::Gc;
use crate::gc::trace::Trace;

/// std's [`Wake`](std::task::Wake) for [`pyheap::Gc`](crate::Gc): implement it for a task
/// type, then `Waker::from(gc)` (or `RawWaker::from(gc)`) makes a waker that calls it. No
/// allocation and no atomic operation for the conversion, one atomic add per waker clone (a
/// `Gc` clone).
///
/// ```
/// use pyheap::{Gc, Trace, Wake};
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::task::Waker;
///
/// #[derive(Trace, Default)]
/// struct Task { woken: AtomicUsize }
/// impl Wake for Task {
///     fn wake(this: Gc<Self>) {
///         this.woken.fetch_add(1, Ordering::SeqCst);
///     }
/// }
///
/// let task = Gc::new(Task::default());
/// let waker = Waker::from(task.clone());
/// waker.wake_by_ref();
/// waker.clone().wake();
/// assert_eq!(task.woken.load(Ordering::SeqCst), 2);
/// drop(waker);
/// assert_eq!(Gc::strong_count(&task), 1);
/// ```
pub trait Wake: Trace + Send + Sync + Sized + 'static {
    /// Wake this task (the waker's reference is given up).
    fn wake(this: Gc<Self>);

    /// Wake this task without giving up the waker's reference. By default, `wake` of a
    /// clone.
    fn wake_by_ref(this: &Gc<Self>) {
        Self::wake(this.clone());
    }
}

impl<W: Wake> From<Gc<W>> for Waker {
    /// A waker calling `W`'s [`Wake`], owning `gc`'s strong reference.
    fn from(gc: Gc<W>) -> Waker {
        // SAFETY: `raw_waker` builds a `RawWaker` whose functions keep the `RawWaker`
        // contract (see there).
        unsafe { Waker::from_raw(raw_waker(gc)) }
    }
}

impl<W: Wake> From<Gc<W>> for RawWaker {
    /// A raw waker calling `W`'s [`Wake`], owning `gc`'s strong reference.
    fn from(gc: Gc<W>) -> RawWaker {
        raw_waker(gc)
    }
}

/// The raw waker of `gc`: its data pointer is `Gc::into_raw(gc)`, which owns one strong
/// reference; each function below turns it back into the handle it stands for. The functions
/// are thread-safe (a `Gc<W>` is `Send + Sync`), as `Waker` requires.
fn raw_waker<W: Wake>(gc: Gc<W>) -> RawWaker {
    /// # Safety
    /// `p` is a waker's data pointer: `Gc::<W>::into_raw` with a reference still out.
    unsafe fn clone_waker<W: Wake>(p: *const ()) -> RawWaker {
        // SAFETY: per the caller; one more reference for the new waker.
        unsafe { Gc::<W>::increment_strong_count(p.cast::<W>()) };
        RawWaker::new(p, vtable::<W>())
    }
    /// # Safety
    /// As `clone_waker`; the waker's reference is given up.
    unsafe fn wake<W: Wake>(p: *const ()) {
        // SAFETY: per the caller; the reference passes to the handle.
        W::wake(unsafe { Gc::<W>::from_raw(p.cast::<W>()) });
    }
    /// # Safety
    /// As `clone_waker`.
    unsafe fn wake_by_ref<W: Wake>(p: *const ()) {
        // SAFETY: per the caller; the handle borrows the waker's reference (not dropped).
        let gc = core::mem::ManuallyDrop::new(unsafe { Gc::<W>::from_raw(p.cast::<W>()) });
        W::wake_by_ref(&gc);
    }
    /// # Safety
    /// As `clone_waker`; the waker's reference is given up.
    unsafe fn drop_waker<W: Wake>(p: *const ()) {
        // SAFETY: per the caller.
        unsafe { Gc::<W>::decrement_strong_count(p.cast::<W>()) };
    }
    fn vtable<W: Wake>() -> &'static RawWakerVTable {
        &RawWakerVTable::new(
            clone_waker::<W>,
            wake::<W>,
            wake_by_ref::<W>,
            drop_waker::<W>,
        )
    }
    RawWaker::new(Gc::into_raw(gc).cast::<()>(), vtable::<W>())
}
