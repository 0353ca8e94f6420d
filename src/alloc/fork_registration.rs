//! `Registration`: registering the `fork()` handlers exactly once per process image, safe
//! against a `fork()` that happens while another thread registers.
//!
//! The handlers are normally registered when the library is loaded (`fork.rs`), before any
//! thread can fork; this state machine is what makes the lazy path (an allocation that comes
//! before the load-time constructor, or a platform without one) safe too.
//!
//! One word: the registering thread's process id and a state, `NONE`, `REGISTERING` or
//! `DONE`. A thread that finds `NONE` claims the word (its pid, `REGISTERING`), registers, and
//! stores `DONE`; others wait for `DONE`. The hazard is `fork()`: a child forked while the
//! word says `REGISTERING` has no thread left to finish (only the forking thread comes along),
//! so waiting would hang it for ever (issue 13). Such a child sees a pid other than its own in
//! the word, and takes over: it claims the word with its own pid and registers itself.
//!
//! Whether the handlers are registered in that child's memory is not known: `pthread_atfork`
//! may have completed in the parent after the fork took its list of handlers to run and
//! before it copied the memory. So a child may register them a second time; the handlers
//! tolerate being registered twice (`fork.rs`). A child whose fork did run the handlers knows
//! they are registered: the child handler marks the word `DONE` ([`Registration::mark_done`]).
//!
//! Loom checks this protocol (`loom-tests/tests/alloc_fork_registration.rs`), with `fork()`
//! modelled as a copy of the word taken at any moment, and the process id passed in.

use crate::sync::{spin_wait, AtomicU64, Ordering};

const NONE: u64 = 0;
const REGISTERING: u64 = 1;
const DONE: u64 = 2;
const STATE: u64 = 3;

fn word(pid: u32, state: u64) -> u64 {
    (u64::from(pid) << 2) | state
}

fn pid_of(w: u64) -> u32 {
    (w >> 2) as u32
}

/// # Invariant
/// `word` is `NONE`; or `pid|REGISTERING` while the thread of process `pid` that claimed it
/// registers; or `DONE` once the handlers are registered in this process image.
pub(crate) struct Registration {
    word: AtomicU64,
}

impl Registration {
    crate::sync::maybe_const_fn! {
        pub(crate) fn new() -> Registration {
            Registration { word: AtomicU64::new(NONE) }
        }
    }

    /// Whether the handlers are known to be registered (the fast check).
    #[cfg_attr(loom, allow(dead_code))] // models call `ensure` directly
    #[inline]
    pub(crate) fn is_done(&self) -> bool {
        self.word.load(Ordering::Acquire) == DONE
    }

    /// Return once the handlers are registered in this process image, calling `register` if
    /// no thread of this process did or is doing it. `my_pid` gives the calling process's id
    /// (called only on this slow path).
    pub(crate) fn ensure(&self, my_pid: impl Fn() -> u32, register: impl FnOnce()) {
        let me = my_pid();
        let mut w = self.word.load(Ordering::Acquire);
        let mut round = 0;
        loop {
            let claim = match w & STATE {
                DONE => return,
                NONE => true,
                // Registering in another process: we are a child forked meanwhile, and the
                // registering thread did not come along.
                _ => pid_of(w) != me,
            };
            if claim {
                match self.word.compare_exchange(
                    w,
                    word(me, REGISTERING),
                    Ordering::Acquire,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        register();
                        self.word.store(DONE, Ordering::Release);
                        return;
                    }
                    Err(now) => w = now,
                }
            } else {
                spin_wait(round);
                round = round.saturating_add(1);
                w = self.word.load(Ordering::Acquire);
            }
        }
    }

    /// The handlers ran in this process image (the child handler says so): they are
    /// registered.
    pub(crate) fn mark_done(&self) {
        self.word.store(DONE, Ordering::Release);
    }

    /// Loom models only: the word as a child inherits it when a thread of process `pid` was
    /// registering at the fork.
    #[cfg(loom)]
    pub(crate) fn inherited_while_registering(pid: u32) -> Registration {
        Registration {
            word: AtomicU64::new(word(pid, REGISTERING)),
        }
    }

    /// Loom models only: what a child forked now would inherit (`fork()` copies the word).
    #[cfg(loom)]
    pub(crate) fn fork_copy(&self) -> Registration {
        Registration {
            word: AtomicU64::new(self.word.load(Ordering::SeqCst)),
        }
    }
}
