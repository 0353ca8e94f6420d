//! Containment: every program runs in a forked child process, so that a double free, a
//! segfault, an abort or a hang ends the child, not the test: the parent (the proptest
//! runner) turns it into a failed case and goes on shrinking.
//!
//! Why `fork()` rather than re-executing the test binary: a fork costs well under a
//! millisecond and the child already has the program in memory (no encoding); the parent
//! never touches pyheap (it only generates programs), so each child starts from fresh object
//! spaces. The usual hazard of forking a multi-threaded process (a lock held by another
//! thread stays held in the child) is avoided by serialising this binary's tests
//! ([`serial`]) and by the child never using std's stdout/stderr locks: it writes its report
//! with `write(2)` to a pipe the parent reads. Everything the child prints on stderr (an
//! unexpected panic's message, pyheap's report of a panic on its collector thread) goes to
//! that pipe too, and is shown only if the case fails.
//!
//! A child that hangs is killed by `alarm()` (the watchdog, `PYHEAP_FUZZ_WATCHDOG_SECS`,
//! default 120 s): a deadlock is a failure like any other. No assertion depends on timing.
//!
//! In-process mode (`PYHEAP_FUZZ_INPROCESS=1`, and always under Miri, which cannot fork):
//! programs run in the test process; a violation prints and aborts.

use std::io::Read;
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Exit status of a child that found a violation.
pub const EXIT_VIOLATION: i32 = 3;
/// Exit status of a child whose program panicked unexpectedly out of the interpreter.
pub const EXIT_PANIC: i32 = 4;

static IN_CHILD: AtomicBool = AtomicBool::new(false);
static SERIAL: Mutex<()> = Mutex::new(());

/// This binary's tests run one at a time (see the module docs).
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn in_process() -> bool {
    cfg!(miri) || std::env::var_os("PYHEAP_FUZZ_INPROCESS").is_some()
}

/// Write to fd 2 without std's locks.
pub fn raw_eprint(s: &str) {
    let mut b = s.as_bytes();
    while !b.is_empty() {
        // SAFETY: writing a valid buffer to a file descriptor.
        let n = unsafe { libc::write(2, b.as_ptr().cast(), b.len()) };
        if n <= 0 {
            return;
        }
        b = &b[n as usize..];
    }
}

/// The oracle found a broken promise: report and end the program (the child process).
pub fn violation(msg: String) -> ! {
    raw_eprint(&format!("\nVIOLATION: {msg}\n"));
    if IN_CHILD.load(Ordering::Relaxed) {
        // SAFETY: _exit ends the process without running anything else.
        unsafe { libc::_exit(EXIT_VIOLATION) }
    }
    std::process::abort()
}

/// The outcome of one program.
#[derive(Debug)]
pub enum Outcome {
    Pass,
    /// How the child ended, and the tail of what it printed.
    Fail(String),
}

/// Keep the last `n` bytes of `s` (at a char boundary).
fn tail(s: &str, n: usize) -> &str {
    if s.len() <= n {
        return s;
    }
    let mut i = s.len() - n;
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}

fn watchdog_secs() -> u32 {
    std::env::var("PYHEAP_FUZZ_WATCHDOG_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120)
}

/// Run `work` in a forked child (or in process, see the module docs).
pub fn contain(work: impl FnOnce()) -> Outcome {
    contain_with(watchdog_secs(), work)
}

/// [`contain`] with a given watchdog.
pub fn contain_with(secs: u32, work: impl FnOnce()) -> Outcome {
    if in_process() {
        work();
        return Outcome::Pass;
    }
    let mut fds = [0; 2];
    // SAFETY: a fresh pipe.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
    // SAFETY: the child runs the program and `_exit`s, never returning into the harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        IN_CHILD.store(true, Ordering::Relaxed);
        // SAFETY: plain fd and signal calls in the child.
        unsafe {
            libc::close(fds[0]);
            libc::dup2(fds[1], 2);
            libc::close(fds[1]);
            libc::alarm(secs);
        }
        // glibc's own fatal messages ("double free detected") to stderr, not the tty.
        std::env::set_var("LIBC_FATAL_STDERR_", "1");
        crate::interp::install_panic_hook();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
        let code = if r.is_ok() { 0 } else { EXIT_PANIC };
        // SAFETY: ends the child at once (no at-exit handlers, no harness).
        unsafe { libc::_exit(code) }
    }
    // SAFETY: the parent's copy of the write end.
    unsafe { libc::close(fds[1]) };
    // SAFETY: we own the read end.
    let mut f = unsafe { std::fs::File::from_raw_fd(fds[0]) };
    let mut out = Vec::new();
    let _ = f.read_to_end(&mut out);
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    let out = String::from_utf8_lossy(&out);
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        return Outcome::Pass;
    }
    let how = if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        match sig {
            libc::SIGALRM => format!("hung: killed by the {secs} s watchdog (deadlock?)"),
            libc::SIGABRT => {
                "aborted (SIGABRT: double free, or a panic that could not unwind)".into()
            }
            libc::SIGSEGV => "crashed (SIGSEGV)".into(),
            _ => format!("killed by signal {sig}"),
        }
    } else {
        match libc::WEXITSTATUS(status) {
            EXIT_VIOLATION => "oracle violation".into(),
            EXIT_PANIC => "unexpected panic out of the interpreter".into(),
            c => format!("exited with status {c}"),
        }
    };
    Outcome::Fail(format!(
        "{how}\n--- child stderr (tail) ---\n{}",
        tail(&out, 6000)
    ))
}
