//! Real-thread stress test of the thread-safe flavor (`pyheap::Gc`), issue 4.
//!
//! Four mutator threads (in one wave, or in eight waves of short-lived threads that adopt the
//! shards the exited ones handed back) run random create / link / unlink / move / clone / drop / downgrade /
//! upgrade / walk / `get_mut` operations on one shared graph (a table of slots holding strong
//! or weak handles, plus edges inside the nodes behind `Mutex` and `RwLock`), while another
//! thread collects in a loop (`collect_loop`) or automatic collection runs with a tiny
//! threshold on the background collector thread (`automatic`). Some nodes carry finalizers,
//! some of which resurrect their cycle by storing a handle in a slot.
//!
//! Every node has an id; per-id counters catch, at the moment it happens, a second drop or a
//! second finalizer run (the counter must go 0 -> 1), a drop or finalizer of a node whose
//! canary is damaged (freed or overwritten memory), and a `Drop` that reaches a live
//! neighbour already dropped. At the end every reachable node's canary is intact, and after
//! the roots go and the collector runs, every node ever created was dropped exactly once.
//!
//! Deterministic seeds per thread (the interleaving is not deterministic, the operation
//! sequence of each thread is). The work is a fixed number of operations, not a duration.
//! Run in release builds too: `cargo test --release --test sync_stress`; more rounds with
//! `PYHEAP_STRESS_ROUNDS=n`; progress (nodes created and live, collections per generation)
//! every half second on stderr with `PYHEAP_STRESS_MONITOR=1` and `--nocapture`, which is how
//! mutators starved by back-to-back scans were found (see `src/gc/shared/fairness.rs`).

use pyheap::{Finalize, Gc, Trace, Weak};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, RwLock};

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const MAX_IDS: usize = 1 << 20;
const SLOTS: usize = 64;
const MAGIC: u64 = 0xC0FF_EE00_DEAD_BEEF;

/// The per-run bookkeeping every node points to.
struct World {
    next_id: AtomicUsize,
    drops: Box<[AtomicU8]>,
    finals: Box<[AtomicU8]>,
    errors: AtomicUsize,
    slots: Vec<Mutex<Slot>>,
    /// Finalizers resurrect only while this is set (off for the final teardown).
    resurrect: AtomicBool,
    resurrections: AtomicUsize,
}

impl World {
    fn new() -> Arc<World> {
        Arc::new(World {
            next_id: AtomicUsize::new(0),
            drops: (0..MAX_IDS).map(|_| AtomicU8::new(0)).collect(),
            finals: (0..MAX_IDS).map(|_| AtomicU8::new(0)).collect(),
            errors: AtomicUsize::new(0),
            slots: (0..SLOTS).map(|_| Mutex::new(Slot::Empty)).collect(),
            resurrect: AtomicBool::new(true),
            resurrections: AtomicUsize::new(0),
        })
    }

    /// Record a broken invariant and panic (a panic on the background collector thread is
    /// swallowed by pyheap, so `errors` is what the test finally asserts on).
    fn fail(&self, msg: String) -> ! {
        self.errors.fetch_add(1, SeqCst);
        eprintln!("sync_stress: {msg}");
        panic!("{msg}");
    }

    fn slot(&self, i: usize) -> std::sync::MutexGuard<'_, Slot> {
        self.slots[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Store into slot `i`; the old content is dropped after the slot's lock is released (its
    /// drop may run a finalizer, which stores into a slot).
    fn put(&self, i: usize, s: Slot) {
        let old = std::mem::replace(&mut *self.slot(i), s);
        drop(old);
    }

    fn strong(&self, i: usize) -> Option<Gc<Node>> {
        match &*self.slot(i) {
            Slot::Strong(g) => Some(g.clone()),
            _ => None,
        }
    }

    fn created(&self) -> usize {
        self.next_id.load(SeqCst)
    }

    fn dropped(&self) -> usize {
        let n = self.created();
        self.drops[..n]
            .iter()
            .filter(|d| d.load(SeqCst) != 0)
            .count()
    }
}

enum Slot {
    Empty,
    Strong(Gc<Node>),
    Weak(Weak<Node>),
}

#[derive(Trace)]
struct Node {
    #[trace(skip)]
    id: usize,
    #[trace(skip)]
    canary: u64,
    edges: Mutex<Vec<Gc<Node>>>,
    side: RwLock<Option<Gc<Node>>>,
    back: Mutex<Weak<Node>>,
    #[trace(skip)]
    world: Arc<World>,
}

impl Node {
    fn check(&self, what: &str) {
        if self.canary != self.id as u64 ^ MAGIC {
            self.world.fail(format!(
                "{what}: canary of node {} damaged: {:#x}",
                self.id, self.canary
            ));
        }
        if self.world.drops[self.id].load(SeqCst) != 0 {
            self.world
                .fail(format!("{what}: node {} reached after its drop", self.id));
        }
    }

    fn edges(&self) -> std::sync::MutexGuard<'_, Vec<Gc<Node>>> {
        self.edges.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn new_node(world: &Arc<World>, rng: &mut Rng) -> Gc<Node> {
    let id = world.next_id.fetch_add(1, SeqCst);
    assert!(id < MAX_IDS, "raise MAX_IDS");
    let n = Node {
        id,
        canary: id as u64 ^ MAGIC,
        edges: Mutex::new(Vec::new()),
        side: RwLock::new(None),
        back: Mutex::new(Weak::new()),
        world: world.clone(),
    };
    match rng.below(8) {
        0 => Gc::new_finalized(n),
        1 => Gc::new_cyclic(|w| {
            *n.back.lock().unwrap() = w.clone();
            n
        }),
        _ => Gc::new(n),
    }
}

impl Finalize for Node {
    fn finalize(&self) {
        if self.canary != self.id as u64 ^ MAGIC {
            self.world
                .fail(format!("finalize: canary of node {} damaged", self.id));
        }
        if self.world.finals[self.id].fetch_add(1, SeqCst) != 0 {
            self.world
                .fail(format!("finalizer of node {} ran twice", self.id));
        }
        if self.world.drops[self.id].load(SeqCst) != 0 {
            self.world
                .fail(format!("finalizer of node {} ran after its drop", self.id));
        }
        // Resurrect the cycle (a member's handle goes into a slot) for every third node.
        if self.id % 3 == 0 && self.world.resurrect.load(SeqCst) {
            let first = self.edges().first().cloned();
            if let Some(g) = first {
                // The set is intact while finalizers run.
                match Gc::try_deref(&g) {
                    Some(n) => n.check("finalize: neighbour"),
                    None => self.world.fail(format!(
                        "finalize: neighbour of node {} already destroyed",
                        self.id
                    )),
                }
                self.world.resurrections.fetch_add(1, SeqCst);
                self.world.put(self.id % SLOTS, Slot::Strong(g));
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.canary != self.id as u64 ^ MAGIC {
            self.world.fail(format!(
                "drop: canary of node {} damaged: {:#x}",
                self.id, self.canary
            ));
        }
        let was = self.world.drops[self.id].fetch_add(1, SeqCst);
        if was != 0 {
            self.world
                .fail(format!("node {} dropped twice ({})", self.id, was + 1));
        }
        // Touch the neighbours: a live one must be intact and not dropped yet; a dead one
        // (a member of the same garbage set) reads as `None`, never as freed memory.
        let edges = std::mem::take(self.edges.get_mut().unwrap_or_else(|e| e.into_inner()));
        for e in &edges {
            if let Some(n) = Gc::try_deref(e) {
                n.check("drop: neighbour");
            }
        }
        if let Some(s) = self.side.get_mut().unwrap_or_else(|e| e.into_inner()) {
            if let Some(n) = Gc::try_deref(s) {
                n.check("drop: side neighbour");
            }
        }
        // The weak handle to itself no longer upgrades.
        let back = self.back.get_mut().unwrap_or_else(|e| e.into_inner());
        if back.upgrade().is_some() {
            self.world.fail(format!(
                "drop: node {} upgraded its own weak handle",
                self.id
            ));
        }
    }
}

/// One mutator: `ops` random operations on the slots, seeded by `seed`.
fn mutator(world: Arc<World>, seed: u64, ops: usize) {
    let mut rng = Rng::new(seed);
    // Handles this thread owns alone, for `get_mut`.
    let mut own: Vec<Gc<Node>> = Vec::new();
    for _ in 0..ops {
        let a = rng.below(SLOTS);
        let b = rng.below(SLOTS);
        match rng.below(20) {
            // Create into a slot (the old content is dropped under the slot's lock).
            0..=2 => {
                let n = new_node(&world, &mut rng);
                world.put(a, Slot::Strong(n));
            }
            // Link a -> b (edges or the RwLock side edge).
            3..=5 => {
                if let (Some(x), Some(y)) = (world.strong(a), world.strong(b)) {
                    x.check("link");
                    if rng.below(4) == 0 {
                        *x.side.write().unwrap_or_else(|e| e.into_inner()) = Some(y);
                    } else {
                        x.edges().push(y);
                    }
                }
            }
            // Unlink.
            6 => {
                if let Some(x) = world.strong(a) {
                    let mut e = x.edges();
                    if !e.is_empty() {
                        let i = rng.below(e.len());
                        let g = e.swap_remove(i);
                        drop(e);
                        drop(g);
                    }
                }
            }
            // Move a handle from a's edges to b's, both locks held when possible (the handle
            // is never cloned: counts unchanged), else through this thread's stack.
            7 | 8 => {
                if let (Some(x), Some(y)) = (world.strong(a), world.strong(b)) {
                    let mut ex = x.edges();
                    if let Some(h) = ex.pop() {
                        match y.edges.try_lock() {
                            Ok(mut ey) => ey.push(h),
                            Err(_) => {
                                drop(ex);
                                y.edges().push(h);
                            }
                        }
                    }
                }
            }
            // Clone a slot into another.
            9 => {
                if let Some(x) = world.strong(a) {
                    world.put(b, Slot::Strong(x));
                }
            }
            // Drop a slot's content.
            10 => {
                let old = std::mem::replace(&mut *world.slot(a), Slot::Empty);
                drop(old);
            }
            // Downgrade a into b.
            11 => {
                if let Some(x) = world.strong(a) {
                    world.put(b, Slot::Weak(Gc::downgrade(&x)));
                }
            }
            // Upgrade a weak slot; keep the result in another slot.
            12 => {
                let w = match &*world.slot(a) {
                    Slot::Weak(w) => Some(w.clone()),
                    _ => None,
                };
                if let Some(g) = w.and_then(|w| w.upgrade()) {
                    g.check("upgrade");
                    world.put(b, Slot::Strong(g));
                }
            }
            // Walk the graph from a, checking canaries, and keep where the walk ends.
            13 | 14 => {
                if let Some(mut cur) = world.strong(a) {
                    for _ in 0..rng.below(16) {
                        cur.check("walk");
                        let next = {
                            let e = cur.edges();
                            if e.is_empty() {
                                None
                            } else {
                                Some(e[rng.below(e.len())].clone())
                            }
                        };
                        let next = next
                            .or_else(|| cur.side.read().unwrap_or_else(|e| e.into_inner()).clone());
                        match next {
                            Some(n) => cur = n,
                            None => break,
                        }
                    }
                    cur.check("walk end");
                    let back = cur.back.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    if let Some(me) = back.upgrade() {
                        if !Gc::ptr_eq(&me, &cur) {
                            world.fail(format!("node {}: back edge to another node", cur.id));
                        }
                    }
                    world.put(b, Slot::Strong(cur));
                }
            }
            // `get_mut` on a node this thread owns alone: fill it through `&mut` while other
            // threads collect (and while this thread creates tracked objects), then publish it.
            15 | 16 => {
                let mut mine = new_node(&world, &mut rng);
                let extra = new_node(&world, &mut rng);
                if let Some(m) = Gc::get_mut(&mut mine) {
                    let e = m.edges.get_mut().unwrap();
                    e.push(extra);
                    // Tracked allocations while the `&mut` lives (may wake the collector).
                    for _ in 0..rng.below(4) {
                        let t = new_node(&world, &mut rng);
                        e.push(t);
                    }
                    if let Some(y) = world.strong(b) {
                        e.push(y);
                    }
                    *m.side.get_mut().unwrap() = e.first().cloned();
                } else if Gc::try_deref(&mine).is_none() {
                    world.fail("get_mut: a fresh node is dead".into());
                }
                // Keep some of them private a while (moved into `own`, no shared use).
                if rng.below(2) == 0 {
                    own.push(mine);
                } else {
                    world.put(a, Slot::Strong(mine));
                }
            }
            // `get_mut` on a handle taken out of a slot, if unique; or on a private one.
            17 => {
                let taken = std::mem::replace(&mut *world.slot(a), Slot::Empty);
                let mut h = match taken {
                    Slot::Strong(g) => g,
                    other => {
                        world.put(a, other);
                        match own.pop() {
                            Some(g) => g,
                            None => continue,
                        }
                    }
                };
                if let Some(m) = Gc::get_mut(&mut h) {
                    if m.canary != m.id as u64 ^ MAGIC {
                        world.fail(format!("get_mut: canary of node {} damaged", m.id));
                    }
                    let e = m.edges.get_mut().unwrap_or_else(|e| e.into_inner());
                    if e.len() > 3 {
                        e.remove(0);
                    }
                    if let Some(y) = world.strong(b) {
                        e.push(y);
                    }
                }
                h.check("after get_mut");
                // Close a cycle through it sometimes (a self-edge).
                if rng.below(3) == 0 {
                    h.edges().push(h.clone());
                }
                world.put(a, Slot::Strong(h));
            }
            // Publish a private node, or link private nodes to each other (cycles the
            // collector must find once they are dropped).
            18 => {
                if let Some(p) = own.pop() {
                    if let Some(q) = own.last() {
                        p.edges().push(q.clone());
                        q.edges().push(p.clone());
                    }
                    if rng.below(2) == 0 {
                        world.put(a, Slot::Strong(p));
                    }
                }
            }
            // A cycle made and dropped at once (garbage for the collector), hanging off a
            // slot's node sometimes.
            _ => {
                let p = new_node(&world, &mut rng);
                let q = new_node(&world, &mut rng);
                p.edges().push(q.clone());
                q.edges().push(p.clone());
                if let Some(x) = world.strong(a) {
                    q.edges().push(x);
                }
            }
        }
    }
    drop(own);
}

/// Check every node reachable from the slots (an explicit stack).
fn check_reachable(world: &World) -> usize {
    let mut seen = std::collections::HashSet::new();
    let mut stack: Vec<Gc<Node>> = (0..SLOTS).filter_map(|i| world.strong(i)).collect();
    while let Some(g) = stack.pop() {
        g.check("final walk");
        if seen.insert(g.id) {
            stack.extend(g.edges().iter().cloned());
            stack.extend(g.side.read().unwrap().iter().cloned());
        }
    }
    seen.len()
}

/// Empty the slots and collect until every created node is dropped (a finalized garbage set
/// is freed by the collection after the one that ran its finalizers).
fn teardown(world: &Arc<World>) {
    world.resurrect.store(false, SeqCst);
    for _ in 0..200 {
        for i in 0..SLOTS {
            let old = std::mem::replace(&mut *world.slot(i), Slot::Empty);
            drop(old);
        }
        pyheap::collect();
        if world.dropped() == world.created() {
            break;
        }
        // An automatic collection on the background thread may still be tearing down.
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let n = world.created();
    let mut missing = Vec::new();
    for i in 0..n {
        match world.drops[i].load(SeqCst) {
            1 => {}
            0 => missing.push(i),
            k => panic!("node {i} dropped {k} times"),
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {n} nodes never dropped (first: {:?})",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert_eq!(
        world.errors.load(SeqCst),
        0,
        "invariant violations (see stderr)"
    );
}

static SERIAL: Mutex<()> = Mutex::new(());

fn rounds() -> usize {
    std::env::var("PYHEAP_STRESS_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

const THREADS: usize = 4;
const OPS: usize = if cfg!(debug_assertions) {
    40_000
} else {
    400_000
};

/// One stress run: `THREADS` mutators at a time, in `waves` successive waves of `OPS / waves`
/// operations each (threads of a later wave adopt the shards the exited ones handed back,
/// with those threads' objects still in them).
fn run(seed: u64, collecting_thread: bool, waves: usize) {
    let world = World::new();
    let stop = Arc::new(AtomicBool::new(false));
    let collector = collecting_thread.then(|| {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut runs = 0usize;
            let mut freed = 0usize;
            while !stop.load(SeqCst) {
                freed += if runs % 4 == 3 {
                    pyheap::gc::collect_generation(0)
                } else {
                    pyheap::collect()
                };
                runs += 1;
            }
            (runs, freed)
        })
    });
    let monitor = std::env::var_os("PYHEAP_STRESS_MONITOR").map(|_| {
        let w = world.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let t0 = std::time::Instant::now();
            while !stop.load(SeqCst) {
                std::thread::sleep(std::time::Duration::from_millis(500));
                let c = w.created();
                let d = w.dropped();
                let st = pyheap::gc::stats();
                eprintln!(
                    "[{:6.1}s] created {c} live {} gc0 {} gc1 {} gc2 {} count {:?}",
                    t0.elapsed().as_secs_f64(),
                    c - d,
                    st[0].collections,
                    st[1].collections,
                    st[2].collections,
                    pyheap::gc::count()
                );
            }
        })
    });
    let mut panicked = 0;
    for wave in 0..waves {
        let ts: Vec<_> = (0..THREADS)
            .map(|t| {
                let w = world.clone();
                let k = (wave * THREADS + t) as u64;
                let s = seed.wrapping_add(k * 0x1_0000_0001);
                std::thread::spawn(move || mutator(w, s, OPS / waves))
            })
            .collect();
        for t in ts {
            panicked += t.join().is_err() as usize;
        }
    }
    stop.store(true, SeqCst);
    if let Some(m) = monitor {
        m.join().expect("monitor");
    }
    if let Some(c) = collector {
        let (runs, freed) = c.join().expect("collector thread");
        eprintln!("sync_stress seed {seed:#x}: {runs} collections freed {freed}");
        assert!(runs > 0);
        // Garbage cycles are made all the time: a collector that frees (almost) nothing while
        // the mutators run lets garbage pile up without bound.
        assert!(
            freed > world.created() / 10,
            "the collecting thread freed only {freed} of {} nodes",
            world.created()
        );
    }
    assert_eq!(panicked, 0, "a mutator panicked (see stderr)");
    assert_eq!(
        world.errors.load(SeqCst),
        0,
        "invariant violations (see stderr)"
    );
    // With the mutators stopped (and resurrection and automatic collection off), collections
    // free exactly what the slots no longer reach (a finalized set needs two: finalize, then
    // free). A background collection may still be finishing, so this polls; `check_reachable`
    // fails on any reachable node that was dropped.
    world.resurrect.store(false, SeqCst);
    let enabled = pyheap::gc::is_enabled();
    pyheap::gc::disable();
    let mut reachable = 0;
    for _ in 0..200 {
        pyheap::collect();
        pyheap::gc::wait_for_teardowns();
        reachable = check_reachable(&world);
        if world.dropped() == world.created() - reachable {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    if enabled {
        pyheap::gc::enable();
    }
    assert_eq!(
        world.dropped(),
        world.created() - reachable,
        "exactly the nodes unreachable from the slots are dropped"
    );
    let collected_before_teardown = world.dropped();
    teardown(&world);
    eprintln!(
        "sync_stress seed {seed:#x}: {} nodes created, {} dropped before teardown, {} \
         reachable at the end, {} resurrections",
        world.created(),
        collected_before_teardown,
        reachable,
        world.resurrections.load(SeqCst)
    );
}

#[test]
fn stress_with_a_collecting_thread() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    pyheap::gc::disable(); // only the collecting thread collects
    for r in 0..rounds() {
        run(0x5EED_0000 + r as u64, true, 1);
    }
    pyheap::gc::enable();
}

#[test]
fn stress_with_automatic_collection() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    pyheap::gc::set_threshold(50, 3, 3);
    pyheap::gc::enable();
    let before = pyheap::gc::stats()[0].collections;
    for r in 0..rounds() {
        run(0xA070_0000 + r as u64, false, 1);
    }
    let after = pyheap::gc::stats()[0].collections;
    pyheap::gc::set_threshold(700, 10, 10);
    assert!(after > before, "automatic collections ran");
}

/// Mutator threads that come and go: 8 waves of 4 short-lived threads, with automatic
/// collection (scans on the threads that cross the threshold). Every exited thread hands its
/// shard back with its objects (still referenced from the slots, still in cycles) in it; the
/// next wave's threads adopt those shards and link, unlink and drop the earlier threads'
/// objects while scans take the shards' lists.
#[test]
fn stress_with_short_lived_threads_adopting_shards() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    pyheap::gc::set_threshold(50, 3, 3);
    pyheap::gc::enable();
    let before = pyheap::gc::stats()[0].collections;
    for r in 0..rounds() {
        run(0xAD07_0000 + r as u64, false, 8);
    }
    let after = pyheap::gc::stats()[0].collections;
    pyheap::gc::set_threshold(700, 10, 10);
    assert!(after > before, "automatic collections ran");
}

/// Automatic collection (threshold 50, scans on the crossing threads) and an explicit
/// `collect()` loop at once, with 8 waves of short-lived threads: scans follow each other
/// back to back from several threads, and the mutators (whose creations and deaths need
/// their shard's lock) must still get their turn between them. Before scans paused for
/// blocked threads this run took 8-120 s instead of 1 s in release builds (it still passed:
/// starvation shows as time, which the CI's total time bounds).
#[test]
fn stress_with_automatic_collection_and_a_collecting_thread() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    pyheap::gc::set_threshold(50, 3, 3);
    pyheap::gc::enable();
    for r in 0..rounds() {
        run(0xB07B_0000 + r as u64, true, 8);
    }
    pyheap::gc::set_threshold(700, 10, 10);
}
