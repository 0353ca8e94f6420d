//! Worker threads (driven one command at a time by the main thread, so the model stays
//! deterministic) and the background thread that collects the shared space in a loop (the
//! concurrency the model tolerates: it may free shared garbage at any moment).
//!
//! A worker holds roots of both flavors, moves shared handles to and from the main thread,
//! keeps handles in `thread_local!` holders, and exits holding whatever it holds. With
//! `tls_first` it touches its thread-locals before its first `Gc`, so their destructors run
//! after pyheap's thread-exit collection (destructors run newest first).

use crate::interp::run_user;
use crate::objects::{self, FuzzPanic, Id, SNode, Spec, TlsVec, UNode, THREAD_TAG, U_STASH};
use crate::program::F;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

type UGc = pyheap::unsync::Gc<UNode>;
type SGc = pyheap::Gc<SNode>;

thread_local! {
    static HOLD_U: TlsVec<(Id, UGc)> = const { TlsVec::new() };
    static HOLD_S: TlsVec<(Id, SGc)> = const { TlsVec::new() };
}

/// A command, with positions resolved by the main thread and the ids it expects there.
pub enum Cmd {
    New(F, Spec),
    EdgeUU(usize, Id, usize, Id),
    EdgeUS(usize, Id, usize, Id),
    DropU(usize, Id),
    DropS(usize, Id),
    ToTlsU(usize, Id),
    ToTlsS(usize, Id),
    Give(usize, Id),
    Take(Id, SGc),
    Collect,
    CollectGenU(u8),
    Auto(Option<u8>),
    Exit,
}

#[derive(Default)]
pub struct Ack {
    pub panics: Vec<FuzzPanic>,
    /// `New`: the id, and whether the object exists (its `Gc::new` did not panic).
    pub made: Option<(Id, bool)>,
    pub give: Option<(Id, SGc)>,
    /// The worker's single-thread stash after the command.
    pub ustash: Vec<(Id, bool)>,
    /// What `collect` returned.
    pub collected: Option<usize>,
}

pub struct Worker {
    tx: mpsc::Sender<Cmd>,
    rx: mpsc::Receiver<Ack>,
    join: JoinHandle<()>,
}

fn at<T>(v: &[(Id, T)], i: usize, id: Id) -> &T {
    match v.get(i) {
        Some((got, t)) if *got == id => t,
        _ => crate::child::violation(format!(
            "fuzzer: worker roots out of step at {i} (want #{id})"
        )),
    }
}

fn take<T>(v: &mut Vec<(Id, T)>, i: usize, id: Id) -> T {
    at(v, i, id);
    v.swap_remove(i).1
}

fn exec(c: Cmd, wu: &mut Vec<(Id, UGc)>, ws: &mut Vec<(Id, SGc)>, ack: &mut Ack) {
    let mut note = |r: Result<(), FuzzPanic>| {
        if let Err(p) = r {
            ack.panics.push(p)
        }
    };
    match c {
        Cmd::New(F::U, spec) => {
            let (id, r) = UNode::make(spec);
            ack.made = Some((id, r.is_ok()));
            match r {
                Ok(g) => wu.push((id, g)),
                Err(p) => note(Err(p)),
            }
        }
        Cmd::New(F::S, spec) => {
            let (id, r) = SNode::make(spec);
            ack.made = Some((id, r.is_ok()));
            match r {
                Ok(g) => ws.push((id, g)),
                Err(p) => note(Err(p)),
            }
        }
        Cmd::EdgeUU(a, ida, b, idb) => {
            let t = at(wu, b, idb).clone();
            let n = at(wu, a, ida);
            n.core.expect(ida, "a worker's root");
            n.edges.borrow_mut().push(t);
        }
        Cmd::EdgeUS(a, ida, b, idb) => {
            let t = at(ws, b, idb).clone();
            let n = at(wu, a, ida);
            n.core.expect(ida, "a worker's root");
            n.sedges.borrow_mut().push(t);
        }
        Cmd::DropU(a, id) => {
            let h = take(wu, a, id);
            note(run_user(move || drop(h)));
        }
        Cmd::DropS(a, id) => {
            let h = take(ws, a, id);
            note(run_user(move || drop(h)));
        }
        Cmd::ToTlsU(a, id) => {
            let h = take(wu, a, id);
            HOLD_U.with(|t| t.0.borrow_mut().push((id, h)));
        }
        Cmd::ToTlsS(a, id) => {
            let h = take(ws, a, id);
            HOLD_S.with(|t| t.0.borrow_mut().push((id, h)));
        }
        Cmd::Give(a, id) => ack.give = Some((id, take(ws, a, id))),
        Cmd::Take(id, h) => ws.push((id, h)),
        Cmd::Collect => match run_user(pyheap::collect) {
            Ok(n) => ack.collected = Some(n),
            Err(p) => ack.panics.push(p),
        },
        Cmd::CollectGenU(g) => {
            match run_user(|| pyheap::unsync::gc::collect_generation(g as usize % 3)) {
                Ok(n) => ack.collected = Some(n),
                Err(p) => ack.panics.push(p),
            }
        }
        Cmd::Auto(Some(t)) => {
            pyheap::unsync::gc::set_threshold(t as usize, 2, 2);
            pyheap::unsync::gc::enable();
        }
        Cmd::Auto(None) => pyheap::unsync::gc::disable(),
        Cmd::Exit => unreachable!(),
    }
    for (id, h) in wu.iter() {
        h.core.expect(*id, "a worker's root");
    }
}

impl Worker {
    pub fn spawn(w: usize, tls_first: bool) -> Worker {
        let (tx, crx) = mpsc::channel::<Cmd>();
        let (ctx, rx) = mpsc::channel::<Ack>();
        let join = std::thread::Builder::new()
            .name(format!("fuzz-worker-{w}"))
            .spawn(move || {
                THREAD_TAG.with(|t| t.set(w as u8 + 1));
                if tls_first {
                    HOLD_U.with(|_| ());
                    HOLD_S.with(|_| ());
                    U_STASH.with(|_| ());
                }
                let mut wu = Vec::new();
                let mut ws = Vec::new();
                while let Ok(c) = crx.recv() {
                    if matches!(c, Cmd::Exit) {
                        break;
                    }
                    let mut ack = Ack::default();
                    exec(c, &mut wu, &mut ws, &mut ack);
                    ack.ustash = objects::u_stash_ids();
                    if ctx.send(ack).is_err() {
                        break;
                    }
                }
                // Exit holding the roots: they go one by one (a panic in one must not abort).
                while let Some((_, h)) = wu.pop() {
                    let _ = run_user(move || drop(h));
                }
                while let Some((_, h)) = ws.pop() {
                    let _ = run_user(move || drop(h));
                }
            })
            .expect("spawn a worker");
        Worker { tx, rx, join }
    }

    pub fn call(&self, c: Cmd) -> Ack {
        if self.tx.send(c).is_err() {
            crate::child::violation("fuzzer: a worker died".into());
        }
        match self.rx.recv() {
            Ok(a) => a,
            Err(_) => crate::child::violation("fuzzer: a worker died".into()),
        }
    }

    /// Tell the worker to exit and wait until it has (thread-local destructors included).
    pub fn exit(self) {
        let _ = self.tx.send(Cmd::Exit);
        if self.join.join().is_err() {
            crate::child::violation("a worker thread panicked out of its exit".into());
        }
    }
}

/// The thread that collects the shared space in a loop while the program runs.
pub struct Bg {
    stop: Arc<AtomicBool>,
    join: JoinHandle<()>,
}

impl Bg {
    pub fn start() -> Bg {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let join = std::thread::Builder::new()
            .name("fuzz-collector".into())
            .spawn(move || {
                let mut i = 0u32;
                while !s.load(Ordering::Relaxed) {
                    let _ = run_user(|| match i % 4 {
                        0 => pyheap::collect(),
                        k => pyheap::gc::collect_generation(k as usize - 1),
                    });
                    i = i.wrapping_add(1);
                    std::thread::yield_now();
                }
            })
            .expect("spawn the collecting thread");
        Bg { stop, join }
    }

    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        if self.join.join().is_err() {
            crate::child::violation("the collecting thread panicked".into());
        }
    }
}
