//! Panics in the user code a teardown runs (`Drop`, `Finalize::finalize`): the teardown goes
//! on, and the first panic is resumed once it is over.
//!
//! std's rule for a panicking element `Drop` (a `Vec`'s, a struct's fields) is to keep dropping
//! the rest and then propagate; CPython prints "Exception ignored in" for an exception in
//! `__del__` and goes on. A collection follows both: every member of a garbage set is
//! finalized at most once and dropped exactly once, its memory freed, whatever panics; then
//! the first panic is resumed in the thread that called `collect()`, or reported on stderr
//! when the teardown ran on the `pyheap-gc` collector thread, which lives on. A second panic
//! never aborts the process: it is caught like the first, and its payload dropped (a payload
//! whose own `drop` panics is forgotten).
//!
//! The refcount path keeps `Rc`'s behaviour: a `Drop` that panics when the last handle goes
//! unwinds out of `Gc::drop`, with the object's memory freed on the way; deaths queued by
//! that cascade are destroyed during the unwinding (their panics caught and dropped, since a
//! second panic in flight would abort).
//!
//! **Never a second panic in flight.** A death met while the thread is already unwinding (a
//! `Gc` dropped by the drop glue of a value whose `Drop` panicked, whichever flavor either
//! belongs to — the fuzzer's F4) destroys its object with panics caught and dropped
//! ([`while_unwinding`]); a collection run during an unwinding (a `Drop` calling `collect()`)
//! reports its first panic instead of resuming it ([`FirstPanic::resume`]). `Rc` and `Arc`
//! abort the process there; a collector whose teardown runs arbitrary `Drop`s cannot.

use std::any::Any;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

/// A panic payload.
pub(crate) type Payload = Box<dyn Any + Send + 'static>;

/// The first panic met by a teardown; later ones are dropped. Dropping it drops the panic
/// (through [`discard`]): call [`FirstPanic::resume`] or [`FirstPanic::report`] to use it.
#[derive(Default)]
pub(crate) struct FirstPanic(Option<Payload>);

impl Drop for FirstPanic {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            discard(p);
        }
    }
}

impl FirstPanic {
    pub(crate) const fn new() -> Self {
        Self(None)
    }

    /// Run `f` (user code, or pyheap code that runs user code), catching a panic.
    ///
    /// Unwind safety: what `f` leaves behind when it panics is either state the caller goes
    /// on to tear down anyway (a value whose `drop` panicked counts as dropped, as in std) or
    /// pyheap state each caller puts right before calling on (stated at each call).
    #[inline]
    pub(crate) fn run(&mut self, f: impl FnOnce()) {
        if let Err(p) = catch_unwind(AssertUnwindSafe(f)) {
            self.keep(p);
        }
    }

    /// Keep `p` if it is the first, else drop it.
    pub(crate) fn keep(&mut self, p: Payload) {
        if self.0.is_none() {
            self.0 = Some(p);
        } else {
            discard(p);
        }
    }

    /// Unwind with the first panic, if any; if the thread is already unwinding (this runs in
    /// a destructor called by the unwinding), report it instead: a second panic in flight
    /// would abort the process.
    pub(crate) fn resume(mut self) {
        if let Some(p) = self.0.take() {
            if std::thread::panicking() {
                eprintln!(
                    "pyheap: panic ignored (another panic is unwinding): {}",
                    message(&p)
                );
                discard(p);
                return;
            }
            resume_unwind(p);
        }
    }

    /// Report the first panic on stderr instead of unwinding (for threads that must live on),
    /// as CPython's "Exception ignored in".
    pub(crate) fn report(mut self, context: &str) {
        if let Some(p) = self.0.take() {
            eprintln!("pyheap: panic ignored in {context}: {}", message(&p));
            discard(p);
        }
    }
}

/// Run `f` (a refcount death's destruction) on a thread that is already unwinding: its panics
/// are caught and dropped (the panic hook printed them), since one escaping here would be a
/// second panic in flight.
#[cold]
#[inline(never)]
pub(crate) fn while_unwinding(f: impl FnOnce()) {
    drop(FirstPanic::run_new(f));
}

impl FirstPanic {
    /// A new `FirstPanic` holding `f`'s panic, if any.
    fn run_new(f: impl FnOnce()) -> Self {
        let mut p = Self::new();
        p.run(f);
        p
    }
}

/// Drop a payload that will not be resumed. Its own `drop` may panic (a payload can be any
/// type): that panic is caught and its payload forgotten, never a double panic.
pub(crate) fn discard(p: Payload) {
    if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(p))) {
        core::mem::forget(again);
    }
}

/// A payload's message, as the panic hook would print it.
pub(crate) fn message(p: &Payload) -> &str {
    if let Some(s) = p.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = p.downcast_ref::<String>() {
        s
    } else {
        "Box<dyn Any>"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_and_drops_the_rest_even_a_payload_whose_drop_panics() {
        struct Bomb;
        impl Drop for Bomb {
            fn drop(&mut self) {
                panic!("payload drop");
            }
        }
        let mut first = FirstPanic::new();
        first.run(|| {});
        assert!(first.0.is_none());
        first.run(|| panic!("one"));
        first.run(|| std::panic::panic_any(Bomb));
        first.run(|| panic!("three"));
        let p = catch_unwind(AssertUnwindSafe(|| first.resume())).unwrap_err();
        assert_eq!(message(&p), "one");
    }
}
