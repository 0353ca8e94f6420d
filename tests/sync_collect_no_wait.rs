//! `collect()` never waits for a teardown running on another thread (issue 12, item 4): a
//! garbage object's `Drop` that waits for a thread calling `collect()` deadlocked, and when
//! the automatic collection ran it, the `pyheap-gc` thread stayed stuck and every later
//! `collect()` hung. CPython's `gc.collect()` during a running collection returns at once.

use pyheap::{Gc, Trace};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Mutex;
use std::time::Duration;

static SERIAL: Mutex<()> = Mutex::new(());
static DROPS: AtomicUsize = AtomicUsize::new(0);

/// A self-cycle whose `Drop` asks another thread to call `collect()` and waits for its answer.
#[derive(Trace)]
struct Waiter {
    me: Mutex<Option<Gc<Waiter>>>,
    #[trace(skip)]
    ask: Mutex<Option<(Sender<()>, Receiver<usize>)>>,
}

impl Drop for Waiter {
    fn drop(&mut self) {
        if let Some((ask, answer)) = self.ask.lock().unwrap().take() {
            ask.send(()).unwrap();
            answer
                .recv_timeout(Duration::from_secs(60))
                .expect("the other thread's collect() did not return: deadlock");
        }
        DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

/// Returns the thread that calls `collect()` when asked, and the channel ends for a `Waiter`.
fn collecting_helper() -> (
    std::thread::JoinHandle<usize>,
    (Sender<()>, Receiver<usize>),
) {
    let (ask_tx, ask_rx) = channel::<()>();
    let (ans_tx, ans_rx) = channel::<usize>();
    let helper = std::thread::spawn(move || {
        ask_rx.recv().unwrap();
        let freed = pyheap::collect();
        ans_tx.send(freed).unwrap();
        freed
    });
    (helper, (ask_tx, ans_rx))
}

fn waiter(ask: (Sender<()>, Receiver<usize>)) {
    let w = Gc::new(Waiter {
        me: Mutex::new(None),
        ask: Mutex::new(Some(ask)),
    });
    *w.me.lock().unwrap() = Some(w.clone());
}

#[test]
fn a_drop_run_by_collect_can_wait_for_another_thread_calling_collect() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    pyheap::gc::disable();
    pyheap::collect();
    let before = DROPS.load(Ordering::SeqCst);
    let (helper, ask) = collecting_helper();
    waiter(ask);
    let (done_tx, done_rx) = channel();
    std::thread::spawn(move || {
        let freed = pyheap::collect();
        done_tx.send(freed).unwrap();
    });
    let freed = done_rx
        .recv_timeout(Duration::from_secs(90))
        .expect("collect() with a Drop waiting for another thread's collect(): deadlock");
    assert_eq!(freed, 1);
    assert_eq!(
        helper.join().unwrap(),
        0,
        "the helper's collect found nothing of its own"
    );
    assert_eq!(DROPS.load(Ordering::SeqCst), before + 1);
    pyheap::gc::enable();
}

#[test]
fn a_drop_run_by_the_collector_thread_can_wait_for_a_thread_calling_collect() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    pyheap::collect();
    let before = DROPS.load(Ordering::SeqCst);
    let (helper, ask) = collecting_helper();
    waiter(ask);
    // Let automatic collection find it: the pyheap-gc thread runs the `Drop`.
    pyheap::gc::set_threshold(10, 10, 10);
    pyheap::gc::enable();
    let mut junk = Vec::new();
    for _ in 0..100 {
        junk.push(Gc::new(Mutex::new(Vec::<Gc<u8>>::new())));
    }
    pyheap::gc::set_threshold(700, 10, 10);
    helper.join().unwrap(); // returns once its collect() returned: no deadlock
                            // The collector thread is not stuck: its teardown ended, and later collections work.
    for _ in 0..600 {
        if DROPS.load(Ordering::SeqCst) == before + 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(DROPS.load(Ordering::SeqCst), before + 1);
    let (done_tx, done_rx) = channel();
    std::thread::spawn(move || {
        let c = Gc::new(Mutex::new(None::<Gc<u8>>));
        drop(c);
        done_tx.send(pyheap::collect()).unwrap();
    });
    done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("a later collect() hung");
    drop(junk);
}
