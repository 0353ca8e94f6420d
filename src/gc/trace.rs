//! The [`Trace`] trait and the [`Tracer`] the collector hands to it.

use super::header::{Links, FLAG_UNIQUE, PREV_COLLECTING, PREV_REACHABLE, REFS_ONE, REFS_SHIFT};

/// A value the cycle collector can look into: it reports the `Gc` handles it owns.
///
/// Derive it with `#[derive(Trace)]` (always correct); fields marked `#[trace(skip)]` are not
/// looked into. Implementations exist for the primitives and the std containers.
///
/// ```
/// use pyheap::unsync::Gc;
/// use pyheap::Trace;
/// use std::cell::RefCell;
///
/// #[derive(Trace)]
/// struct Node {
///     name: String,
///     next: RefCell<Option<Gc<Node>>>,
/// }
///
/// let a = Gc::new(Node { name: "a".into(), next: RefCell::new(None) });
/// *a.next.borrow_mut() = Some(a.clone()); // a self-cycle
/// drop(a);
/// assert_eq!(pyheap::collect(), 1);
/// assert!(!<String as Trace>::MAY_CONTAIN_GC);
/// assert!(<Node as Trace>::MAY_CONTAIN_GC);
/// ```
///
/// # Safety
///
/// `trace` must report, through the `Trace` impls of the handles it owns, only `Gc` handles
/// that this value owns (that are dropped when it is dropped), each at most once per call, and
/// must not create or drop handles. Reporting fewer handles than owned is safe (the objects
/// behind the unreported ones are kept alive: a leak); reporting a handle the value does not
/// own makes the collector free objects that are still in use. `trace` must not call into
/// pyheap other than through the `Trace` impls of what it owns (no `Gc::new`, no dropping or
/// cloning handles, no `gc::freeze`): it runs while the collector's lists are mid-pass. A
/// `trace` that panics aborts the process for the same reason. `MAY_CONTAIN_GC` may only be
/// `false` if no value of the type can ever own a `Gc` (again, a wrong `false` only leaks).
pub unsafe trait Trace {
    /// Report every `Gc` handle this value owns, each exactly once, to `tracer`.
    fn trace(&self, tracer: &mut Tracer);

    /// False for types that can never own a `Gc`: a `Gc<T>` of such a `T` is never tracked by
    /// the collector (CPython untracks atomic objects the same way) and has a smaller header.
    const MAY_CONTAIN_GC: bool = true;
}

/// What a collection pass does with each edge it is told about.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Mode {
    /// `subtract_refs`: an edge to an object being collected is an internal reference.
    Subtract,
    /// `move_unreachable`: an edge from a reachable object makes its target reachable.
    Mark,
}

/// The visitor a collection passes to [`Trace::trace`]. Only the collector creates one; a
/// `Trace` impl hands it to the `Trace` impls of its fields.
///
/// ```
/// use pyheap::{Trace, Tracer};
/// struct Pair(Vec<u8>, Option<pyheap::unsync::Gc<u8>>);
/// // SAFETY: reports the fields' handles through their own impls, nothing else.
/// unsafe impl Trace for Pair {
///     fn trace(&self, tracer: &mut Tracer) {
///         self.0.trace(tracer);
///         self.1.trace(tracer);
///     }
/// }
/// ```
pub struct Tracer {
    mode: Mode,
    /// `Mark`: objects found reachable whose edges are still to be followed.
    pub(crate) stack: Vec<*const Links>,
    /// `Subtract`: objects that `Gc::get_mut` took out of the generations (`FLAG_UNIQUE`)
    /// and that a traced value reported a handle to: that handle is being read through a
    /// shared reference, so the `&mut` `get_mut` made from it is over. The collector links
    /// them back into generation 0 once the pass is done.
    pub(crate) retrack: Vec<*const Links>,
}

impl core::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Tracer")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl Tracer {
    pub(crate) fn new(mode: Mode) -> Self {
        Self {
            mode,
            stack: Vec::new(),
            retrack: Vec::new(),
        }
    }

    /// One strong edge to the tracked object whose links are `target`.
    ///
    /// Objects outside the generation being collected have a plain pointer in `prev`, whose
    /// low bits are zero, so they are ignored, as in CPython's `visit_decref`.
    ///
    /// # Safety
    /// `target` is the links of a tracked object kept alive by the handle being reported.
    #[inline]
    pub(crate) unsafe fn edge(&mut self, target: *const Links) {
        // SAFETY: per the caller the target's header is alive.
        let t = unsafe { &*target };
        let prev = t.refs();
        if prev & PREV_COLLECTING == 0 {
            if self.mode == Mode::Subtract && t.flags() & FLAG_UNIQUE != 0 {
                // Only the flag word changes here; the lists are relinked after the pass.
                t.clear_flag(FLAG_UNIQUE);
                self.retrack.push(target);
            }
            return;
        }
        match self.mode {
            Mode::Subtract => {
                // A reported edge is one of the strong references counted in update_refs,
                // so gc_refs cannot go below zero unless a Trace impl over-reports.
                if prev >> REFS_SHIFT == 0 {
                    over_reported();
                }
                t.set_refs(prev - REFS_ONE);
            }
            Mode::Mark => {
                if prev & PREV_REACHABLE == 0 {
                    t.set_refs(prev | PREV_REACHABLE);
                    self.stack.push(target);
                }
            }
        }
    }
}

#[cold]
fn over_reported() -> ! {
    // Continuing would free objects still in use; an over-reporting `Trace` impl broke its
    // safety contract. Abort rather than unwind through a half-done collection.
    eprintln!("pyheap: a Trace impl reported more edges than the value owns; aborting");
    std::process::abort()
}
