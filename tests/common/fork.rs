//! Forking a test process and checking its child (`alloc_fork`, `sync_fork`). A test file
//! includes it with `#[path = "common/fork.rs"] mod fork;`.

/// Fork; in the child run `work` under an `alarm(alarm_secs)` (a deadlock becomes a SIGALRM
/// death) and `_exit` with its status (`panic_status` if it panics), never returning into the
/// test harness. In the parent wait for the child and assert that it exited with status 0,
/// naming fork `fork_no` and whether it deadlocked or crashed otherwise.
pub fn fork_and_check(fork_no: usize, alarm_secs: u32, panic_status: i32, work: fn() -> i32) {
    // SAFETY: the child only runs `work` (which uses the crate, std and libc), then `_exit`s
    // without running at-exit handlers or unwinding into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: alarm and _exit are async-signal-safe.
        unsafe {
            libc::alarm(alarm_secs);
            let status = std::panic::catch_unwind(work).unwrap_or(panic_status);
            libc::_exit(status);
        }
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status),
        "fork {fork_no}: child killed by signal {} ({})",
        libc::WTERMSIG(status),
        if libc::WTERMSIG(status) == libc::SIGALRM {
            "deadlock"
        } else {
            "crash"
        }
    );
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "fork {fork_no}: child failed (see the test's child_work for its exit statuses)"
    );
}
