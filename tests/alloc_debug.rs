//! The debug allocator (`PYHEAP_MALLOC=debug`): every fault it must catch, provoked through
//! raw `GlobalAlloc` calls in a child process (the report stops the program), and the report
//! asserted: what was wrong, the address, the requested size, the serial number, the bytes
//! around the damage, and the allocation's traceback when tracemalloc traces.
//!
//! Each test runs itself again as a child (the same test binary, `--exact` on its own name)
//! with `PYHEAP_MALLOC=debug` and `PYHEAP_DEBUG_CHILD` set; the child runs the scenario.

use pyheap::PoolAlloc;
use std::alloc::{GlobalAlloc, Layout};
use std::os::unix::process::ExitStatusExt;
use std::process::Command;

#[global_allocator]
static GLOBAL: PoolAlloc = PoolAlloc;

struct Child {
    status: std::process::ExitStatus,
    stderr: String,
    stdout: String,
}

/// Run `scenario` in a child with the debug allocator (and `PYHEAP_TRACEMALLOC=trace` frames
/// if not 0). In the child, this runs the scenario and exits 0 if it returns.
fn child(name: &str, trace: usize, scenario: fn()) -> Child {
    if std::env::var("PYHEAP_DEBUG_CHILD").as_deref() == Ok(name) {
        assert_eq!(
            std::env::var("PYHEAP_MALLOC").as_deref(),
            Ok("debug"),
            "the child runs with the debug allocator"
        );
        scenario();
        std::process::exit(0);
    }
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env("PYHEAP_DEBUG_CHILD", name)
        .env("PYHEAP_MALLOC", "debug")
        .env_remove("PYHEAP_TRACEMALLOC");
    if trace > 0 {
        cmd.env("PYHEAP_TRACEMALLOC", trace.to_string());
    }
    let out = cmd.output().unwrap();
    Child {
        status: out.status,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    }
}

/// The child stopped with a report (SIGABRT) containing every one of `expected`.
fn assert_report(c: &Child, expected: &[&str]) {
    assert_eq!(
        c.status.signal(),
        Some(libc::SIGABRT),
        "the child must abort; status {:?}\nstderr:\n{}\nstdout:\n{}",
        c.status,
        c.stderr,
        c.stdout
    );
    for e in expected {
        assert!(
            c.stderr.contains(e),
            "the report lacks {e:?}:\n{}",
            c.stderr
        );
    }
}

/// The address the child printed on stdout as `ADDR 0x...`.
fn printed_addr(c: &Child) -> String {
    let line = c
        .stdout
        .lines()
        .find_map(|l| l.split_once("ADDR ").map(|x| x.1))
        .unwrap_or_else(|| panic!("no ADDR line in {}", c.stdout));
    line.trim().to_owned()
}

fn print_addr(p: *mut u8) {
    use std::io::Write;
    println!("ADDR {p:p}");
    std::io::stdout().flush().unwrap();
}

/// Allocate `size` bytes (align 8), filled with 0x11..; print the address.
fn block(size: usize) -> (*mut u8, Layout) {
    let l = Layout::from_size_align(size, 8).unwrap();
    // SAFETY: non-zero size.
    let p = unsafe { GLOBAL.alloc(l) };
    assert!(!p.is_null());
    for i in 0..size {
        // SAFETY: within the block.
        unsafe { p.add(i).write(0x11 + (i % 16) as u8) };
    }
    print_addr(p);
    (p, l)
}

#[test]
fn overrun_is_reported_at_free() {
    let c = child("overrun_is_reported_at_free", 0, || {
        let (p, l) = block(24);
        // SAFETY: a deliberate one-byte overrun, inside the debug block's guard bytes.
        unsafe {
            p.add(24).write(0x41);
            GLOBAL.dealloc(p, l);
        }
    });
    assert_report(
        &c,
        &[
            "bad trailing guard bytes (a write past the end of the block)",
            &format!("Debug memory block at address p={}", printed_addr(&c)),
            "24 bytes originally requested (alignment 8)",
            "The 8 guard bytes at p-8 are 0xFD, as expected.",
            "are not all 0xFD:",
            "at tail+0: 0x41 *** OUCH",
            "at tail+1: 0xfd\n",
            "Data at p: 11 12 13 14 15 16 17 18 ... 11 12 13 14 15 16 17 18",
            "(its serial number)",
            "pyheap: fatal error in dealloc",
        ],
    );
}

#[test]
fn underrun_is_reported_at_free() {
    let c = child("underrun_is_reported_at_free", 0, || {
        let (p, l) = block(100);
        // SAFETY: a deliberate write just before the block, inside its guard bytes.
        unsafe {
            p.sub(1).write(0);
            GLOBAL.dealloc(p, l);
        }
    });
    assert_report(
        &c,
        &[
            "bad leading guard bytes (a write before the start of the block)",
            &format!("p={}", printed_addr(&c)),
            "100 bytes originally requested",
            "at p-1: 0x00 *** OUCH",
            "at p-2: 0xfd\n",
            "The 8 guard bytes at tail=",
        ],
    );
}

#[test]
fn overrun_of_a_large_block_is_reported() {
    let c = child("overrun_of_a_large_block_is_reported", 0, || {
        let (p, l) = block(5000);
        // SAFETY: a deliberate overrun into the guard bytes of a system-allocator block.
        unsafe {
            p.add(5003).write(0x42);
            GLOBAL.dealloc(p, l);
        }
    });
    assert_report(
        &c,
        &[
            "bad trailing guard bytes",
            "5000 bytes originally requested",
            "at tail+3: 0x42 *** OUCH",
        ],
    );
}

/// A block of 300,000 bytes is a large block of the arenas (with the debug header and guards
/// around it); an overrun past its end is caught at its free as any other.
#[test]
fn overrun_of_an_arena_large_block_is_reported() {
    let c = child("overrun_of_an_arena_large_block_is_reported", 0, || {
        let (p, l) = block(300_000);
        // SAFETY: a deliberate overrun into the guard bytes of a large block.
        unsafe {
            p.add(300_002).write(0x42);
            GLOBAL.dealloc(p, l);
        }
    });
    assert_report(
        &c,
        &[
            "bad trailing guard bytes",
            "300000 bytes originally requested",
            "at tail+2: 0x42 *** OUCH",
        ],
    );
}

/// A large block kept by its thread and freed again is reported as a double free by the
/// debug allocator (its registry knows the block is freed), before the large-block code
/// would see it.
#[test]
fn double_free_of_a_large_block_is_reported() {
    let c = child("double_free_of_a_large_block_is_reported", 0, || {
        let (p, l) = block(1 << 20);
        // SAFETY: deliberately freed twice.
        unsafe {
            GLOBAL.dealloc(p, l);
            GLOBAL.dealloc(p, l);
        }
    });
    assert_report(
        &c,
        &[
            "the block was already freed (a double free)",
            "1048576 bytes originally requested",
        ],
    );
}

/// Large blocks under the debug allocator: new data is CLEANBYTE even when a kept block is
/// handed out again, `realloc` across shapes keeps the bytes, and the heap check passes.
#[test]
fn large_blocks_under_the_debug_allocator() {
    let c = child("large_blocks_under_the_debug_allocator", 0, || {
        let sizes = [300_000, 1 << 20, 3 << 20];
        // SAFETY: non-zero sizes; every block freed with its layout; reads within blocks.
        unsafe {
            for round in 0..3 {
                for &n in &sizes {
                    let l = Layout::from_size_align(n, 16).unwrap();
                    let p = GLOBAL.alloc(l);
                    assert!(!p.is_null());
                    assert!(
                        [0, n / 2, n - 1].iter().all(|&i| p.add(i).read() == 0xCD),
                        "round {round}, {n} bytes: new data is not CLEANBYTE"
                    );
                    p.write_bytes(round as u8 + 1, n);
                    GLOBAL.dealloc(p, l);
                }
            }
            let l = Layout::from_size_align(300_000, 16).unwrap();
            let p = GLOBAL.alloc(l);
            p.write_bytes(0x5A, 300_000);
            let q = GLOBAL.realloc(p, l, 5 << 20);
            assert!(!q.is_null());
            assert!((0..300_000).step_by(997).all(|i| q.add(i).read() == 0x5A));
            let r = GLOBAL.realloc(q, Layout::from_size_align(5 << 20, 16).unwrap(), 600_000);
            assert!((0..300_000).step_by(997).all(|i| r.add(i).read() == 0x5A));
            assert!(pyheap::alloc::check_heap().unwrap() > 0);
            GLOBAL.dealloc(r, Layout::from_size_align(600_000, 16).unwrap());
        }
        println!("OK");
    });
    assert!(
        c.status.success() && c.stdout.contains("OK"),
        "status {:?}\n{}\n{}",
        c.status,
        c.stdout,
        c.stderr
    );
}

#[test]
fn double_free_is_reported() {
    let c = child("double_free_is_reported", 0, || {
        let (p, l) = block(40);
        // SAFETY: a deliberate double free.
        unsafe {
            GLOBAL.dealloc(p, l);
            GLOBAL.dealloc(p, l);
        }
    });
    assert_report(
        &c,
        &[
            "the block was already freed (a double free)",
            &format!("p={}", printed_addr(&c)),
            "40 bytes originally requested",
            "freed with Layout { size: 40, align: 8 }",
        ],
    );
}

/// A double free where the first free is a remote free held in the freeing thread's batch
/// (`remote_batch.rs` links batched blocks through their first word) and the second comes
/// from a third thread: still reported as a double free.
#[test]
fn double_free_across_threads_is_reported() {
    let c = child("double_free_across_threads_is_reported", 0, || {
        let (p, l) = block(40);
        let addr = p as usize;
        // SAFETY: the first free, on another thread: a remote free, batched there.
        std::thread::spawn(move || unsafe { GLOBAL.dealloc(addr as *mut u8, l) })
            .join()
            .unwrap();
        // SAFETY: a deliberate double free, from a third thread.
        std::thread::spawn(move || unsafe { GLOBAL.dealloc(addr as *mut u8, l) })
            .join()
            .unwrap();
    });
    assert_report(
        &c,
        &[
            "the block was already freed (a double free)",
            &format!("p={}", printed_addr(&c)),
            "40 bytes originally requested",
        ],
    );
}

/// A double free of a medium block (513 B - 32 KiB), which the first free put in the
/// thread's medium cache (linked through its first word): still reported.
#[test]
fn double_free_of_a_medium_block_is_reported() {
    let c = child("double_free_of_a_medium_block_is_reported", 0, || {
        let (p, l) = block(3000);
        // SAFETY: a deliberate double free.
        unsafe {
            GLOBAL.dealloc(p, l);
            GLOBAL.dealloc(p, l);
        }
    });
    assert_report(
        &c,
        &[
            "the block was already freed (a double free)",
            &format!("p={}", printed_addr(&c)),
            "3000 bytes originally requested",
        ],
    );
}

#[test]
fn foreign_pointer_is_reported() {
    let c = child("foreign_pointer_is_reported", 0, || {
        // SAFETY: malloc; the pointer is deliberately handed to the wrong allocator.
        unsafe {
            let p = libc::malloc(64).cast::<u8>();
            print_addr(p);
            GLOBAL.dealloc(p, Layout::from_size_align(64, 8).unwrap());
        }
    });
    assert_report(
        &c,
        &[
            "a pointer pyheap never returned",
            &format!("p={}", printed_addr(&c)),
            "not a block pyheap's debug allocator knows",
            "freed with Layout { size: 64, align: 8 }",
        ],
    );
}

#[test]
fn mismatched_size_is_reported() {
    let c = child("mismatched_size_is_reported", 0, || {
        let (p, _) = block(24);
        // SAFETY: a deliberately wrong layout.
        unsafe { GLOBAL.dealloc(p, Layout::from_size_align(16, 8).unwrap()) };
    });
    assert_report(
        &c,
        &[
            "the Layout does not match the allocation's",
            "24 bytes originally requested (alignment 8)",
            "freed with Layout { size: 16, align: 8 }",
        ],
    );
}

#[test]
fn mismatched_alignment_is_reported() {
    let c = child("mismatched_alignment_is_reported", 0, || {
        let l = Layout::from_size_align(32, 16).unwrap();
        // SAFETY: non-zero size; then a deliberately wrong alignment.
        unsafe {
            let p = GLOBAL.alloc(l);
            print_addr(p);
            GLOBAL.dealloc(p, Layout::from_size_align(32, 8).unwrap());
        }
    });
    assert_report(
        &c,
        &[
            "the Layout does not match the allocation's",
            "32 bytes originally requested (alignment 16)",
            "freed with Layout { size: 32, align: 8 }",
        ],
    );
}

#[test]
fn damaged_block_is_reported_at_realloc() {
    let c = child("damaged_block_is_reported_at_realloc", 0, || {
        let (p, l) = block(16);
        // SAFETY: a deliberate overrun, then a realloc of the damaged block.
        unsafe {
            p.add(17).write(0);
            GLOBAL.realloc(p, l, 64);
        }
    });
    assert_report(
        &c,
        &[
            "pyheap: debug allocator: realloc: bad trailing guard bytes",
            "16 bytes originally requested",
            "at tail+1: 0x00 *** OUCH",
        ],
    );
}

#[test]
fn check_heap_finds_damage_without_a_free() {
    let c = child("check_heap_finds_damage_without_a_free", 0, || {
        let keep: Vec<Box<[u8; 48]>> = (0..100).map(|i| Box::new([i as u8; 48])).collect();
        assert!(pyheap::alloc::check_heap().unwrap() >= 100);
        let (p, _) = block(48);
        // SAFETY: a deliberate overrun; the block is never freed.
        unsafe { p.add(50).write(7) };
        pyheap::alloc::check_heap();
        drop(keep);
    });
    assert_report(
        &c,
        &[
            "pyheap: debug allocator: check_heap: bad trailing guard bytes",
            &format!("p={}", printed_addr(&c)),
            "48 bytes originally requested",
            "at tail+2: 0x07 *** OUCH",
        ],
    );
}

#[test]
fn report_shows_the_allocation_traceback_when_tracing() {
    let c = child(
        "report_shows_the_allocation_traceback_when_tracing",
        5,
        || {
            assert!(
                pyheap::tracemalloc::is_tracing(),
                "PYHEAP_TRACEMALLOC starts tracing"
            );
            let l = Layout::from_size_align(24, 8).unwrap();
            {
                use std::io::Write;
                println!("LINE {}", line!() + 4);
                std::io::stdout().flush().unwrap();
            }
            // SAFETY: non-zero size.
            let p = unsafe { GLOBAL.alloc(l) };
            // SAFETY: a deliberate overrun.
            unsafe {
                p.add(24).write(1);
                GLOBAL.dealloc(p, l);
            }
        },
    );
    let line = c
        .stdout
        .lines()
        .find_map(|l| l.split_once("LINE ").map(|x| x.1))
        .unwrap()
        .to_owned();
    assert_report(
        &c,
        &[
            "bad trailing guard bytes",
            "Memory block allocated at (most recent call first):",
            &format!("  File \"tests/alloc_debug.rs\", line {line}, in alloc_debug::"),
            "let p = unsafe { GLOBAL.alloc(l) };",
        ],
    );
}

#[test]
fn fills_and_a_normal_workload() {
    let c = child("fills_and_a_normal_workload", 0, || {
        let l = Layout::from_size_align(64, 8).unwrap();
        // SAFETY: non-zero sizes; reads within the blocks; the freed block is read through
        // raw pointers while its pool still holds it (the test of the DEADBYTE fill).
        unsafe {
            let p = GLOBAL.alloc(l);
            assert!(
                (0..64).all(|i| p.add(i).read() == 0xCD),
                "new memory is CLEANBYTE"
            );
            let z = GLOBAL.alloc_zeroed(l);
            assert!(
                (0..64).all(|i| z.add(i).read() == 0),
                "zeroed memory is zero"
            );
            let keep = GLOBAL.alloc(l);
            GLOBAL.dealloc(p, l);
            // The first words may hold the free list's link; the rest is DEADBYTE.
            assert!(
                (16..64).all(|i| p.add(i).read_volatile() == 0xDD),
                "freed memory is DEADBYTE"
            );
            let q = GLOBAL.realloc(z, l, 1000);
            assert!(
                (0..64).all(|i| q.add(i).read() == 0),
                "realloc keeps the contents"
            );
            GLOBAL.dealloc(q, Layout::from_size_align(1000, 8).unwrap());
            GLOBAL.dealloc(keep, l);
        }
        // Ordinary code, threads included, runs under the debug allocator.
        let mut m = std::collections::HashMap::new();
        for i in 0..10_000u32 {
            m.insert(i, i.to_string());
        }
        let h = std::thread::spawn(move || m.values().map(String::len).sum::<usize>());
        assert_eq!(h.join().unwrap(), 38_890);
        let mut v: allocator_api2::vec::Vec<u64, PoolAlloc> =
            allocator_api2::vec::Vec::new_in(PoolAlloc);
        v.extend(0..1000);
        assert_eq!(v.iter().sum::<u64>(), 499_500);
        assert!(pyheap::alloc::check_heap().unwrap() > 0);
        println!("OK");
    });
    assert!(
        c.status.success() && c.stdout.contains("OK"),
        "status {:?}\n{}\n{}",
        c.status,
        c.stdout,
        c.stderr
    );
}
