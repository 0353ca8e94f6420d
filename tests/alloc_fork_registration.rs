//! `fork()` while the allocator registers its `fork()` handlers: no child may hang.
//!
//! The old code registered the handlers at the first pool request: it marked the
//! registration "in progress", called `pthread_atfork`, then marked it done. A child forked
//! while another thread was between the two inherited "in progress" with no thread left to
//! finish, and spun for ever at its first pool request (issue 13: 5 to 78 of 100 children
//! hung in 3 runs of 10, with `PoolAlloc` used through `allocator_api2` while another thread
//! forked). Now the handlers are registered when the library is loaded, and a child that
//! inherits a registration in progress redoes it.
//!
//! The window is a few instructions wide, so this test opens it on purpose: it defines
//! `pthread_atfork` itself (the executable's definition wins over glibc's, which it then
//! calls as `__register_atfork`), and the first call forks `FORKS_IN_REGISTRATION` children
//! right there, while the registration is in progress, exactly what forks by other threads
//! at that moment produce (the registering thread does not come along: each child runs the
//! test's child work and exits, never returning into the registration). Each child allocates
//! through `PoolAlloc` (a pool request) under an `alarm`, so a hang becomes a SIGALRM death.
//! Then, as in the issue, a thread forks `FORKS_AROUND_FIRST_REQUEST` children back to back
//! while the main thread makes `PoolAlloc`'s first pool request, through `allocator_api2`
//! (`PoolAlloc` is not the global allocator here, so nothing uses it before the test).
//! Finally, the registration must have happened before `main`. A registration made before
//! the test is made twice, as a child that took over a registration which had in fact
//! completed would have it: the forks of the test then run every handler twice, and must
//! neither deadlock nor leave a lock held.
//!
//! Users care because `fork()` from a multithreaded program (to `exec` a subprocess, in
//! pre-fork servers) is common, and a hung child is a silent outage.
//!
//! One test in this binary: the interposed `pthread_atfork` is process-wide.
#![cfg(all(target_os = "linux", target_env = "gnu"))]

use allocator_api2::vec::Vec as AVec;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

const FORKS_IN_REGISTRATION: usize = 20;
const FORKS_AROUND_FIRST_REQUEST: usize = 40;

type Handler = Option<unsafe extern "C" fn()>;

extern "C" {
    /// glibc's registration function, which its own `pthread_atfork` calls.
    fn __register_atfork(
        prepare: Handler,
        parent: Handler,
        child: Handler,
        dso_handle: *mut libc::c_void,
    ) -> libc::c_int;
}

/// Calls of `pthread_atfork`, and those made before the test started (at load time).
static CALLS: AtomicUsize = AtomicUsize::new(0);
static CALLS_BEFORE_TEST: AtomicUsize = AtomicUsize::new(0);
static TEST_STARTED: AtomicBool = AtomicBool::new(false);
/// The children forked inside the first registration: how many, and how they ended.
static REG_FORKED: AtomicUsize = AtomicUsize::new(0);
static REG_HUNG: AtomicUsize = AtomicUsize::new(0);
static REG_FAILED: AtomicUsize = AtomicUsize::new(0);

/// The interposed `pthread_atfork`. In this binary only the allocator registers handlers
/// (the collector's shared space, the other user, is never created here).
///
/// # Safety
/// As `pthread_atfork`.
#[no_mangle]
pub unsafe extern "C" fn pthread_atfork(prepare: Handler, parent: Handler, child: Handler) -> i32 {
    if CALLS.fetch_add(1, Ordering::SeqCst) == 0 {
        if !TEST_STARTED.load(Ordering::SeqCst) {
            CALLS_BEFORE_TEST.fetch_add(1, Ordering::SeqCst);
        }
        let (hung, failed) = fork_children(FORKS_IN_REGISTRATION);
        REG_FORKED.store(FORKS_IN_REGISTRATION, Ordering::SeqCst);
        REG_HUNG.store(hung, Ordering::SeqCst);
        REG_FAILED.store(failed, Ordering::SeqCst);
    } else if !TEST_STARTED.load(Ordering::SeqCst) {
        CALLS_BEFORE_TEST.fetch_add(1, Ordering::SeqCst);
    }
    if !TEST_STARTED.load(Ordering::SeqCst) && !TWICE.swap(true, Ordering::SeqCst) {
        // What a child that took over a registration which had in fact completed ends up
        // with: the same handlers registered twice. Every later fork runs them twice.
        // SAFETY: as below.
        unsafe { __register_atfork(prepare, parent, child, std::ptr::null_mut()) };
    }
    // SAFETY: forwarded arguments; a null DSO handle (the handlers are never unregistered).
    unsafe { __register_atfork(prepare, parent, child, std::ptr::null_mut()) }
}

/// Whether a registration made before the test was doubled.
static TWICE: AtomicBool = AtomicBool::new(false);

/// In a child: allocate through `PoolAlloc` (a pool request) and check the contents.
fn child_work() -> i32 {
    let mut v: AVec<AVec<u8, pyheap::PoolAlloc>, pyheap::PoolAlloc> =
        AVec::new_in(pyheap::PoolAlloc);
    for i in 0..200usize {
        let mut inner = AVec::new_in(pyheap::PoolAlloc);
        inner.extend(std::iter::repeat_n(i as u8, 1 + i % 300));
        v.push(inner);
    }
    let ok = v
        .iter()
        .enumerate()
        .all(|(i, inner)| inner.len() == 1 + i % 300 && inner.iter().all(|&b| b == i as u8));
    if ok {
        0
    } else {
        3
    }
}

/// Fork `n` children back to back, each running `child_work` under an alarm and `_exit`ing;
/// wait for them all. Returns how many hung (SIGALRM) and how many failed otherwise.
fn fork_children(n: usize) -> (usize, usize) {
    let mut pids = [0; 64];
    assert!(n <= pids.len());
    for pid in &mut pids[..n] {
        // SAFETY: the child runs `child_work` (the crate, libc) and `_exit`s, never returning.
        *pid = unsafe { libc::fork() };
        assert!(*pid >= 0, "fork failed");
        if *pid == 0 {
            // SAFETY: alarm and _exit are async-signal-safe.
            unsafe {
                libc::alarm(5);
                let status = std::panic::catch_unwind(child_work).unwrap_or(5);
                libc::_exit(status);
            }
        }
    }
    let (mut hung, mut failed) = (0, 0);
    for &pid in &pids[..n] {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        if libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGALRM {
            hung += 1;
        } else if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
            failed += 1;
        }
    }
    (hung, failed)
}

#[test]
fn no_child_hangs_when_forked_while_the_fork_handlers_are_registered() {
    TEST_STARTED.store(true, Ordering::SeqCst);

    // The scenario: a thread forks back to back while this one makes the first pool
    // request through `allocator_api2`.
    let forking = Arc::new(AtomicBool::new(false));
    let forker = {
        let forking = forking.clone();
        thread::spawn(move || {
            forking.store(true, Ordering::SeqCst);
            fork_children(FORKS_AROUND_FIRST_REQUEST)
        })
    };
    while !forking.load(Ordering::SeqCst) {
        std::hint::spin_loop();
    }
    let mut first: AVec<u64, pyheap::PoolAlloc> = AVec::new_in(pyheap::PoolAlloc);
    first.extend(0..10);
    assert_eq!(first.iter().sum::<u64>(), 45);
    let (hung, failed) = forker.join().unwrap();

    let forked_in_registration = REG_FORKED.load(Ordering::SeqCst);
    let (reg_hung, reg_failed) = (
        REG_HUNG.load(Ordering::SeqCst),
        REG_FAILED.load(Ordering::SeqCst),
    );
    println!(
        "forked while registering: {forked_in_registration} children, {reg_hung} hung, \
         {reg_failed} failed; around the first pool request: {FORKS_AROUND_FIRST_REQUEST} \
         children, {hung} hung, {failed} failed; pthread_atfork calls: {} ({} before the test)",
        CALLS.load(Ordering::SeqCst),
        CALLS_BEFORE_TEST.load(Ordering::SeqCst)
    );
    assert_eq!(
        forked_in_registration, FORKS_IN_REGISTRATION,
        "the allocator never registered fork handlers"
    );
    assert_eq!(
        (reg_hung, reg_failed),
        (0, 0),
        "children forked while the handlers were being registered hung (SIGALRM) or failed"
    );
    assert_eq!(
        (hung, failed),
        (0, 0),
        "children forked around the first pool request hung or failed"
    );
    assert!(
        CALLS_BEFORE_TEST.load(Ordering::SeqCst) >= 1 && TWICE.load(Ordering::SeqCst),
        "the fork handlers were not registered at load time"
    );
    // The allocator still works in this process after the forks (no lock left held).
    assert_eq!(child_work(), 0);
    assert!(pyheap::alloc::stats().arenas_mapped > 0);
}
