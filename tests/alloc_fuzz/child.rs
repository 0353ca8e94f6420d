//! Containment: each program runs in a forked child, so that a crash (SIGSEGV, an abort on a
//! double free), a hang (killed by `alarm`, `PYHEAP_ALLOC_FUZZ_WATCHDOG_SECS`, default 60 s) or
//! a violation ends the child with a report on its stderr, which the parent reads through a
//! pipe and turns into a failed case for proptest to shrink. The parent only generates
//! programs (it never runs one), and this binary's tests fork one at a time ([`serial`]).
//! In the child every panic, on any thread, ends the process at once with its message.

use std::io::Read;
use std::os::fd::FromRawFd;
use std::sync::{Mutex, MutexGuard};

/// Exit status of a child whose oracle found a violation.
const EXIT_VIOLATION: i32 = 3;
/// Exit status of a child that panicked.
const EXIT_PANIC: i32 = 4;

static SERIAL: Mutex<()> = Mutex::new(());

/// This binary's tests fork one at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Write to fd 2 without std's locks (another thread may hold them).
fn raw_eprint(s: &str) {
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

/// The oracle found a broken promise: report and end the child, from any of its threads.
pub fn violation(msg: String) -> ! {
    raw_eprint(&format!("\nVIOLATION: {msg}\n"));
    // SAFETY: `_exit` ends the process without running anything else.
    unsafe { libc::_exit(EXIT_VIOLATION) }
}

fn watchdog_secs() -> u32 {
    std::env::var("PYHEAP_ALLOC_FUZZ_WATCHDOG_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60)
}

/// Run `work` in a forked child; `Err` with how it ended and the tail of its stderr.
pub fn contain(work: impl FnOnce()) -> Result<(), String> {
    let secs = watchdog_secs();
    let mut fds = [0; 2];
    // SAFETY: a fresh pipe into a valid array of two fds.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
    // SAFETY: the child runs `work` and `_exit`s, never returning into the harness; the
    // allocator's own fork handlers keep its locks sane, and the child writes only with
    // `write(2)`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: plain fd and signal calls on fds this child owns.
        unsafe {
            libc::close(fds[0]);
            libc::dup2(fds[1], 2);
            libc::close(fds[1]);
            libc::alarm(secs);
        }
        std::panic::set_hook(Box::new(|info| {
            raw_eprint(&format!("\nPANIC: {info}\n"));
            // SAFETY: ends the process at once, whatever thread panicked.
            unsafe { libc::_exit(EXIT_PANIC) }
        }));
        work();
        // SAFETY: ends the child without at-exit handlers or the harness.
        unsafe { libc::_exit(0) }
    }
    // SAFETY: the parent's copy of the write end, which it owns.
    unsafe { libc::close(fds[1]) };
    // SAFETY: the read end is ours alone; the `File` closes it.
    let mut f = unsafe { std::fs::File::from_raw_fd(fds[0]) };
    let mut out = Vec::new();
    let _ = f.read_to_end(&mut out);
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        return Ok(());
    }
    let how = if libc::WIFSIGNALED(status) {
        match libc::WTERMSIG(status) {
            libc::SIGALRM => format!("hung: killed by the {secs} s watchdog"),
            libc::SIGABRT => "aborted (SIGABRT)".to_string(),
            libc::SIGSEGV => "crashed (SIGSEGV)".to_string(),
            sig => format!("killed by signal {sig}"),
        }
    } else {
        match libc::WEXITSTATUS(status) {
            EXIT_VIOLATION => "oracle violation".to_string(),
            EXIT_PANIC => "panicked".to_string(),
            c => format!("exited with status {c}"),
        }
    };
    let out = String::from_utf8_lossy(&out);
    let mut from = out.len().saturating_sub(16000);
    while !out.is_char_boundary(from) {
        from += 1;
    }
    let tail = &out[from..];
    Err(format!("{how}\n--- child stderr (tail) ---\n{tail}"))
}
