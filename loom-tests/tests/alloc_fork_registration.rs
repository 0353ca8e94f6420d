//! Model: **registering the `fork()` handlers while another thread forks**
//! (`fork_registration.rs`: one word holding the registering process's id and a state).
//!
//! loom cannot fork, so `fork()` is modelled as what it does to this protocol: the child gets
//! a copy of the word as it is at the moment of the fork, and only the forking thread (which
//! is not the registering one) comes along. `getpid` and `pthread_atfork` are passed in.
//!
//! Interleavings that matter: the fork copying the word before the registering thread claims
//! it, while it registers (the window of issue 13: the child inherits "registering" and no
//! thread to finish), or after; two threads of the parent racing to register.
//!
//! Asserts: in the parent, the handlers are registered exactly once and every caller returns
//! only after that; in the child, `ensure` returns (a child waiting for the registering
//! thread would spin for ever: loom reports it as exceeding its branch bound) and registers
//! exactly when the copy it inherited did not say "done"; a child whose handlers ran (the
//! child handler marks the word done) does not register again.
#![cfg(loom)]

mod common;

use common::model;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use pyheap::alloc::model::ModelForkRegistration;

const PARENT: u32 = 100;
const CHILD: u32 = 200;

/// Two parent threads register while a third forks; the child then makes its first pool
/// request (`ensure`).
#[test]
fn fork_while_two_threads_register() {
    model(|| {
        let reg = Arc::new(ModelForkRegistration::new());
        let registered = Arc::new(AtomicUsize::new(0));
        let registrant = |reg: Arc<ModelForkRegistration>, registered: Arc<AtomicUsize>| {
            move || {
                reg.ensure(PARENT, || {
                    registered.fetch_add(1, Ordering::SeqCst);
                });
                // Returns only once the handlers are registered.
                assert_eq!(
                    registered.load(Ordering::SeqCst),
                    1,
                    "returned before registration"
                );
            }
        };
        let t1 = thread::spawn(registrant(reg.clone(), registered.clone()));
        let forker = {
            let reg = reg.clone();
            thread::spawn(move || reg.fork_copy())
        };
        registrant(reg.clone(), registered.clone())();
        t1.join().unwrap();
        let child = forker.join().unwrap();
        assert_eq!(
            registered.load(Ordering::SeqCst),
            1,
            "registered twice in one process"
        );

        // In the child: only the forking thread exists. Its first pool request must not wait
        // for a registrant that did not come along.
        let mut child_registered = 0;
        child.ensure(CHILD, || child_registered += 1);
        assert!(child_registered <= 1);
        child.ensure(CHILD, || child_registered += 1);
        assert!(child_registered <= 1, "registered twice in the child");
    });
}

/// The fork's handlers ran in the child (the registration was complete before the fork):
/// the child handler marks the word done, and the child does not register again, whatever
/// it inherited.
#[test]
fn child_whose_handlers_ran_does_not_register_again() {
    model(|| {
        let reg = Arc::new(ModelForkRegistration::new());
        let forker = {
            let reg = reg.clone();
            thread::spawn(move || reg.fork_copy())
        };
        reg.ensure(PARENT, || {});
        let child = forker.join().unwrap();
        child.mark_done();
        child.ensure(CHILD, || {
            panic!("registered again after the child handler ran")
        });
    });
}

/// Two threads of the child (the forking thread and one it started) make their first pool
/// requests while the inherited word says "registering": one of them registers, once, and
/// both return.
#[test]
fn two_child_threads_take_over_an_inherited_registration() {
    model(|| {
        // A thread of the parent was registering at the fork, and did not come along.
        let child = Arc::new(ModelForkRegistration::inherited_while_registering(PARENT));
        let registered = Arc::new(AtomicUsize::new(0));
        let t = {
            let (child, registered) = (child.clone(), registered.clone());
            thread::spawn(move || {
                child.ensure(CHILD, || {
                    registered.fetch_add(1, Ordering::SeqCst);
                })
            })
        };
        child.ensure(CHILD, || {
            registered.fetch_add(1, Ordering::SeqCst);
        });
        t.join().unwrap();
        assert_eq!(registered.load(Ordering::SeqCst), 1);
    });
}
