//! A tour of pyheap. Run it with `cargo run --release --example tour`.
//!
//! Chapter 1, the allocator: `PoolAlloc` is installed as the global allocator below, a short
//! realistic workload (strings, maps, a few threads handing blocks to each other) runs and is
//! freed, and the allocator's statistics are printed before, at the peak and after, showing
//! the pools filling and the arenas going back to the OS.
//!
//! Chapter 2, `Gc` and the cycle collector: a small graph with a cycle, its strong and weak
//! counts as Python's `sys.getrefcount` would print them, the cycle surviving reference
//! counting, `pyheap::collect()` freeing it, `gc::stats()` before and after, and a cache of
//! weak references that empties by itself when its values die.
//!
//! Chapter 3, the thread-safe `pyheap::Gc`: worker threads share a graph of nodes whose edges
//! sit behind `Mutex`es, building and abandoning cycles, while another thread collects in a
//! loop and pyheap's own collector thread runs automatic collections; the shared space's
//! `gc::stats()` show what was found, and the drop counter shows that every abandoned node
//! was freed exactly once while every reachable one stayed intact.
//!
//! Chapter 4, the leak hunt (Python's `gc.get_objects`, `gc.get_referrers`, objgraph's most
//! common types, `weakref.WeakValueDictionary`): the `LeakyContainer` of the Python guides —
//! every instance appends itself to a class-level cache and is never removed — run for a
//! thousand requests; `gc::get_objects` finds the instances that should be gone,
//! `gc::census` shows what the heap holds by type, `gc::get_referrers` names the cache that
//! keeps them, and the same program with the cache made a `WeakValueMap` leaves nothing.
//!
//! Chapter 5, finding memory problems (Python's `tracemalloc`): a snapshot, a request handler
//! that leaks through a cache that never evicts, another snapshot; the top statistics by
//! line, the difference between the snapshots pointing at the leaking line, and the traceback
//! of one leaked `Gc`. (The debug allocator, `PYHEAP_MALLOC=debug`, is in the README.)

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;

use pyheap::unsync::weakref::WeakValueMap;
use pyheap::unsync::Gc;
use pyheap::Trace;

#[global_allocator]
static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;

fn resident_bytes() -> Option<usize> {
    if !cfg!(unix) {
        return None;
    }
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    #[cfg(unix)]
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    #[cfg(not(unix))]
    let page = 0;
    Some(pages * page.max(1) as usize)
}

fn summary(label: &str) {
    let s = pyheap::alloc::stats();
    let rss = resident_bytes().map_or("n/a".to_string(), |b| {
        format!("{:.1} MiB", b as f64 / 1048576.0)
    });
    println!(
        "{label:<8} blocks in use {:>9}  pools {:>6}  arenas mapped {:>4} (high-water {:>4}, returned {:>4})  resident {rss}",
        s.blocks_in_use(),
        s.pools_in_use(),
        s.arenas_mapped,
        s.arenas_high_water,
        s.arenas_returned,
    );
}

/// What the workload leaves alive until the tour frees it.
type WorkloadData = (
    BTreeMap<String, Vec<u32>>,
    HashMap<u64, String>,
    Vec<Vec<Box<[u8]>>>,
);

/// The workload: an index of words, a map of small records, and worker threads whose results
/// are freed by the main thread (cross-thread frees).
fn workload() -> WorkloadData {
    let mut index: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for i in 0..200_000u32 {
        let word = format!("word-{}", i.wrapping_mul(2_654_435_761) % 50_000);
        index.entry(word).or_default().push(i);
    }
    let records: HashMap<u64, String> = (0..100_000u64)
        .map(|i| (i, format!("record #{i:08}")))
        .collect();

    let (tx, rx) = mpsc::channel();
    let workers: Vec<_> = (0..4u8)
        .map(|t| {
            let tx = tx.clone();
            thread::spawn(move || {
                for batch in 0..8 {
                    let blocks: Vec<Box<[u8]>> = (0..10_000)
                        .map(|i| vec![t; 8 + (i * 7 + batch) % 500].into_boxed_slice())
                        .collect();
                    tx.send(blocks).expect("main thread is listening");
                }
            })
        })
        .collect();
    drop(tx);
    let batches: Vec<Vec<Box<[u8]>>> = rx.iter().collect();
    for w in workers {
        w.join().expect("worker panicked");
    }
    (index, records, batches)
}

fn main() {
    println!("== Chapter 1: PoolAlloc, pymalloc's scheme as the global allocator ==\n");
    println!(
        "requests <= {} bytes come from {} size classes in {} KiB pools of {} KiB arenas\n",
        pyheap::alloc::SMALL_REQUEST_THRESHOLD,
        pyheap::alloc::NUM_SIZE_CLASSES,
        pyheap::alloc::POOL_SIZE / 1024,
        pyheap::alloc::ARENA_SIZE / 1024
    );
    summary("before");
    let data = workload();
    summary("peak");
    println!("\n-- the allocator at the peak (sys._debugmallocstats style) --\n");
    println!("{}", pyheap::alloc::stats());
    let (index, records, batches) = data;
    println!(
        "workload: {} distinct words, {} records, {} blocks from 4 worker threads (freed here, by main)\n",
        index.len(),
        records.len(),
        batches.iter().map(Vec::len).sum::<usize>()
    );
    drop((index, records, batches));
    summary("after");
    let s = pyheap::alloc::stats();
    println!(
        "\n{} of {} arenas went back to the OS; {} stay mapped (kept empty for reuse, or holding live blocks).",
        s.arenas_returned, s.arenas_mapped_total, s.arenas_mapped
    );

    chapter_2_gc();
    chapter_3_shared();
    chapter_4_leak_hunt();
    chapter_5_tracemalloc();
}

thread_local! {
    /// How many `Node`s have been dropped (the tour's drop counter).
    static DROPPED: Cell<usize> = const { Cell::new(0) };
}

fn dropped() -> usize {
    DROPPED.with(Cell::get)
}

/// A graph node, as a Python object with a `name` and a list of references.
#[derive(Trace)]
struct Node {
    name: String,
    edges: RefCell<Vec<Gc<Node>>>,
    /// An untracked leaf: `Gc<String>` holds no `Gc`, so the collector never looks at it.
    label: Gc<String>,
}

impl Node {
    fn new(name: &str) -> Gc<Node> {
        Gc::new(Node {
            name: name.to_string(),
            edges: RefCell::new(Vec::new()),
            label: Gc::new(format!("node {name}")),
        })
    }
    fn link(&self, to: &Gc<Node>) {
        self.edges.borrow_mut().push(to.clone());
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        DROPPED.with(|d| d.set(d.get() + 1));
    }
}

/// `sys.getrefcount(x)`: Python counts the argument's own temporary reference too.
fn getrefcount(n: &Gc<Node>) -> usize {
    Gc::strong_count(n) + 1
}

fn print_stats(label: &str) {
    let [g0, g1, g2] = pyheap::unsync::gc::stats();
    println!(
        "{label:<7} gc.get_count() = {:?}   gc.get_stats(): gen0 {} collections / {} collected, gen1 {} / {}, gen2 {} / {}",
        pyheap::unsync::gc::count(),
        g0.collections,
        g0.collected,
        g1.collections,
        g1.collected,
        g2.collections,
        g2.collected,
    );
}

/// A cached, expensive value; `parent` lets values form cycles.
#[derive(Trace)]
struct Page {
    text: String,
    parent: RefCell<Option<Gc<Page>>>,
}

fn chapter_2_gc() {
    println!("\n== Chapter 2: Gc, Weak and the cycle collector (Python's gc module) ==\n");
    pyheap::collect(); // start from a clean object space
    print_stats("start"); // (after that first collection)

    // a -> b -> c -> a, and a -> c: a cycle of three tracked objects.
    let a = Node::new("a");
    let b = Node::new("b");
    let c = Node::new("c");
    a.link(&b);
    b.link(&c);
    c.link(&a);
    a.link(&c);
    let wb = Gc::downgrade(&b);
    println!("\nbuilt a -> b -> c -> a (and a -> c), plus one Weak to b:");
    println!("  (Gc::strong_count is sys.getrefcount - 1: Python's count includes the argument's own reference)");
    for (n, who) in [
        (&a, "the handle `a`, c's edge"),
        (&b, "the handle `b`, a's edge"),
        (&c, "the handle `c`, edges from a and b"),
    ] {
        println!(
            "  sys.getrefcount({}) = {}   strong_count {}  weak_count {}   ({who})",
            n.name,
            getrefcount(n),
            Gc::strong_count(n),
            Gc::weak_count(n),
        );
    }
    println!(
        "  gc.is_tracked(a) = {}, gc.is_tracked(a.label) = {} (a Gc<String> can hold no Gc: never scanned)",
        Gc::is_tracked(&a),
        Gc::is_tracked(&a.label),
    );
    print_stats("built");

    drop((a, b, c));
    println!("\ndropped the handles a, b, c: reference counting alone cannot free the cycle");
    let b_alive = wb.upgrade().expect("the cycle is still alive");
    println!(
        "  Node drops so far: {}   the Weak still upgrades: b = {:?}, getrefcount(b) = {} (its in-edge, plus this upgrade)",
        dropped(),
        b_alive.name,
        getrefcount(&b_alive),
    );
    drop(b_alive);
    print_stats("leaked");

    let freed = pyheap::collect();
    println!("\npyheap::collect() = {freed}   (Python: gc.collect() returns the unreachable objects found)");
    println!(
        "  Node drops now: {}   the Weak upgrades: {}   (each node's untracked label went by refcount with it)",
        dropped(),
        wb.upgrade().is_some(),
    );
    print_stats("after");

    println!("\n-- a weak-value cache (weakref.WeakValueDictionary: pyheap::unsync::weakref::WeakValueMap) --\n");
    let cache: WeakValueMap<&str, Page> = WeakValueMap::new();
    let loads = Cell::new(0);
    let load = |key: &str| {
        loads.set(loads.get() + 1);
        Gc::new(Page {
            text: format!("<contents of {key}>"),
            parent: RefCell::new(None),
        })
    };
    let index = cache.get_or_insert_with("index", || load("index"));
    let about = cache.get_or_insert_with("about", || load("about"));
    let again = cache.get_or_insert_with("index", || load("index"));
    println!(
        "  3 lookups of 2 keys, {} loads; the second \"index\" is the same object: {}",
        loads.get(),
        Gc::ptr_eq(&index, &again),
    );
    println!("  live entries: {}   ({})", cache.len(), index.text);
    drop((index, again));
    println!(
        "  dropped both handles to \"index\": live entries {} (it died at once, by refcount)",
        cache.len()
    );
    // Two pages pointing at each other: only the collector frees them.
    let help = cache.get_or_insert_with("help", || load("help"));
    *help.parent.borrow_mut() = Some(about.clone());
    *about.parent.borrow_mut() = Some(help.clone());
    drop((about, help));
    println!(
        "  \"about\" and \"help\" now point at each other, handles dropped: live entries {} (a cycle)",
        cache.len()
    );
    let freed = pyheap::collect();
    println!(
        "  pyheap::collect() = {freed}: live entries {}; the cache emptied by itself",
        cache.len()
    );
}

/// Chapter 3's node: `Send + Sync`, its edges behind a `Mutex` (the collector traces it with
/// `try_lock`, so a node locked by a worker is simply treated as reachable for that scan).
#[derive(Trace)]
struct SharedNode {
    id: u64,
    /// `id * 31`, checked by every visit and by `Drop`: a freed node read by mistake shows.
    canary: u64,
    edges: std::sync::Mutex<Vec<pyheap::Gc<SharedNode>>>,
}

static SHARED_CREATED: AtomicUsize = AtomicUsize::new(0);
static SHARED_DROPPED: AtomicUsize = AtomicUsize::new(0);

impl SharedNode {
    fn new(id: u64) -> pyheap::Gc<SharedNode> {
        SHARED_CREATED.fetch_add(1, Ordering::Relaxed);
        pyheap::Gc::new(SharedNode {
            id,
            canary: id * 31,
            edges: std::sync::Mutex::new(Vec::new()),
        })
    }
    fn check(&self) {
        assert_eq!(
            self.canary,
            self.id * 31,
            "canary of node {} damaged",
            self.id
        );
    }
}

impl Drop for SharedNode {
    fn drop(&mut self) {
        self.check();
        SHARED_DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

fn print_shared_stats(label: &str) {
    let s = pyheap::gc::stats();
    println!(
        "  {label:<7} shared gc.get_stats(): collections {:>4} {:>4} {:>3}   collected {:>6} {:>6} {:>6}",
        s[0].collections, s[1].collections, s[2].collections, s[0].collected, s[1].collected, s[2].collected,
    );
}

fn chapter_3_shared() {
    use pyheap::Gc;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    println!("\n== Chapter 3: the thread-safe pyheap::Gc, collected while threads run ==\n");
    pyheap::collect();
    print_shared_stats("before");

    // A shared graph: 256 roots in a ring, held by every worker through an Arc'd Vec.
    let roots: Arc<Vec<Gc<SharedNode>>> = Arc::new((0..256).map(SharedNode::new).collect());
    for (i, r) in roots.iter().enumerate() {
        r.edges
            .lock()
            .unwrap()
            .push(roots[(i + 1) % roots.len()].clone());
    }
    let stop = Arc::new(AtomicBool::new(false));
    let collector = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut runs = 0u32;
            let mut freed = 0usize;
            while !stop.load(Ordering::Relaxed) {
                freed += pyheap::collect();
                runs += 1;
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            (runs, freed)
        })
    };
    let workers: Vec<_> = (0..4u64)
        .map(|t| {
            let roots = roots.clone();
            std::thread::spawn(move || {
                let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (t + 1);
                let mut rand = move || {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x
                };
                for i in 0..25_000u64 {
                    let id = 1_000 + t * 1_000_000 + i;
                    let root = &roots[(rand() % 256) as usize];
                    root.check();
                    match rand() % 4 {
                        // A three-node ring hanging off a root for a while...
                        0 | 1 => {
                            let (a, b, c) = (
                                SharedNode::new(id),
                                SharedNode::new(id + 500_000),
                                SharedNode::new(id + 700_000),
                            );
                            a.edges.lock().unwrap().push(b.clone());
                            b.edges.lock().unwrap().push(c.clone());
                            c.edges.lock().unwrap().push(a.clone());
                            c.edges.lock().unwrap().push(root.clone());
                            let mut e = root.edges.lock().unwrap();
                            e.push(a);
                            if e.len() > 4 {
                                e.remove(1); // ...then cut loose: a garbage cycle
                            }
                        }
                        // Walk a few edges, cloning handles as we go.
                        2 => {
                            let mut cur = root.clone();
                            for _ in 0..4 {
                                let next = {
                                    let e = cur.edges.lock().unwrap();
                                    e[(rand() as usize) % e.len()].clone()
                                };
                                next.check();
                                cur = next;
                            }
                        }
                        // A node that dies by refcount alone.
                        _ => drop(SharedNode::new(id)),
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let (runs, freed_during) = collector.join().unwrap();
    println!(
        "  4 workers x 25,000 operations, while a thread ran pyheap::collect() {runs} times (it freed {freed_during})"
    );
    print_shared_stats("during");
    let alive_before_cut =
        SHARED_CREATED.load(Ordering::Relaxed) - SHARED_DROPPED.load(Ordering::Relaxed);
    for r in roots.iter() {
        r.check();
        r.edges.lock().unwrap().truncate(1); // keep the ring of roots, cut everything else
    }
    let freed = pyheap::collect();
    println!(
        "  cut every side branch: pyheap::collect() = {freed} (objects alive before: {alive_before_cut}, the 256 roots stay)"
    );
    drop(roots);
    let freed = pyheap::collect();
    println!("  dropped the ring of roots: pyheap::collect() = {freed}");
    // collect() waits for no teardown on another thread (a garbage Drop there might be
    // waiting for this one); before counting, wait for the collector thread's last batch.
    pyheap::gc::wait_for_teardowns();
    print_shared_stats("after");
    let (created, dropped) = (
        SHARED_CREATED.load(Ordering::Relaxed),
        SHARED_DROPPED.load(Ordering::Relaxed),
    );
    println!("  nodes created {created}, dropped {dropped}: every one freed exactly once, canaries intact");
    assert_eq!(created, dropped);
}

/// The Python guides' `LeakyContainer` (`cache = []` at class level, `LeakyContainer.cache
/// .append(self)` in `__init__`): the class and its cache are an object of their own here.
#[derive(Trace)]
struct LeakyContainerClass {
    cache: RefCell<Vec<Gc<LeakyContainer>>>,
}

/// One instance: some data, and (as objects do) references to others, so the collector
/// tracks it (a type that can hold no `Gc` is never tracked, as CPython untracks atoms).
#[derive(Trace)]
struct LeakyContainer {
    data: String,
    related: RefCell<Vec<Gc<LeakyContainer>>>,
}

impl LeakyContainer {
    fn new(class: &LeakyContainerClass, data: String) -> Gc<LeakyContainer> {
        let obj = Gc::new(LeakyContainer {
            data,
            related: RefCell::new(Vec::new()),
        });
        class.cache.borrow_mut().push(obj.clone()); // the leak: never removed
        obj
    }
}

/// The fix: the class-level cache holds its instances weakly (a `WeakValueDictionary`
/// keyed by an id), so an instance lives as long as someone uses it.
#[derive(Trace)]
struct ContainerClass {
    cache: WeakValueMap<u64, Container>,
    next_id: Cell<u64>,
}

#[derive(Trace)]
struct Container {
    data: String,
    related: RefCell<Vec<Gc<Container>>>,
}

impl Container {
    fn new(class: &ContainerClass, data: String) -> Gc<Container> {
        let obj = Gc::new(Container {
            data,
            related: RefCell::new(Vec::new()),
        });
        let id = class.next_id.get();
        class.next_id.set(id + 1);
        class.cache.insert(id, &obj);
        obj
    }
}

/// A request handler: makes a container, uses it, lets it go.
fn handle_request<C>(i: usize, make: impl Fn(String) -> Gc<C>, data: impl Fn(&C) -> &str) -> usize
where
    C: Trace + 'static,
{
    let obj = make(format!("request {i} payload"));
    data(&obj).len()
}

/// The census's first `rows` rows (the table is sorted, largest first).
fn print_census(rows: usize) {
    let census = pyheap::unsync::gc::census().to_string();
    let lines: Vec<&str> = census.lines().collect();
    if lines.len() <= rows + 2 {
        lines.iter().for_each(|l| println!("    {l}"));
        return;
    }
    lines[..=rows].iter().for_each(|l| println!("    {l}"));
    println!("    ...");
    println!("    {}", lines[lines.len() - 1]);
}

fn chapter_4_leak_hunt() {
    use pyheap::unsync::gc;
    println!("\n== Chapter 4: the leak hunt (gc.get_objects, gc.get_referrers, WeakValueDictionary) ==\n");
    pyheap::collect();

    let class = Gc::new(LeakyContainerClass {
        cache: RefCell::new(Vec::new()),
    });
    let bytes: usize = (0..1000)
        .map(|i| handle_request(i, |d| LeakyContainer::new(&class, d), |c| c.data.as_str()))
        .sum();
    println!("handled 1000 requests ({bytes} bytes of payload); each dropped its LeakyContainer");
    println!(
        "  pyheap::collect() = {}   (nothing is garbage: what leaks is still reachable)",
        pyheap::collect()
    );

    // Python: [o for o in gc.get_objects() if isinstance(o, LeakyContainer)]
    let remaining = gc::get_objects::<LeakyContainer>();
    println!(
        "  gc::get_objects::<LeakyContainer>() finds {} instances that should be gone",
        remaining.len()
    );
    println!("  gc::census(), the largest types first (objgraph's show_most_common_types):");
    print_census(3);

    // Python: gc.get_referrers(remaining[0])
    let obj = remaining[0].clone();
    drop(remaining);
    println!("  gc::get_referrers(<{:?}>):", obj.data);
    for r in gc::get_referrers(&obj) {
        let name = r.type_name();
        match r.downcast::<LeakyContainerClass>() {
            Ok(holder) => println!(
                "    {name}, whose cache holds {} instances: the class-level cache keeps them",
                holder.cache.borrow().len()
            ),
            Err(other) => println!("    {}", other.type_name()),
        }
    }
    drop(obj);
    drop(class);
    println!(
        "  dropping the class drops its cache: LeakyContainers alive now {}",
        gc::get_objects::<LeakyContainer>().len()
    );

    println!("\n-- the same program, its cache a WeakValueMap (weakref.WeakValueDictionary) --\n");
    let class = Gc::new(ContainerClass {
        cache: WeakValueMap::new(),
        next_id: Cell::new(0),
    });
    let kept = Container::new(&class, String::from("still in use"));
    let bytes: usize = (0..1000)
        .map(|i| handle_request(i, |d| Container::new(&class, d), |c| c.data.as_str()))
        .sum();
    println!("handled 1000 requests ({bytes} bytes of payload), and one container is still in use");
    println!(
        "  gc::get_objects::<Container>() finds {} (the one in use, {:?}); the cache's len() = {}",
        gc::get_objects::<Container>().len(),
        kept.data,
        class.cache.len()
    );
    println!(
        "  gc::get_referrers(kept) finds {} objects: the cache holds it weakly, so it is no referrer",
        gc::get_referrers(&kept).len()
    );
    drop(kept);
    println!(
        "  dropped it: the cache's len() = {}, Containers alive {}",
        class.cache.len(),
        gc::get_objects::<Container>().len()
    );
}

/// Chapter 5's response, cached by request id.
#[derive(Trace)]
struct Response {
    id: u64,
    body: String,
}

/// A request handler with a cache that never evicts: the leak chapter 5 finds.
struct Handler {
    cache: HashMap<u64, Gc<Response>>,
}

impl Handler {
    fn handle(&mut self, id: u64) -> usize {
        // Temporary work, freed before returning: not a leak.
        let words: Vec<String> = (0..8).map(|i| format!("w{i}-{id}")).collect();
        let body = words.join(" ");
        // The leak: every response stays in the cache for ever.
        let response = self
            .cache
            .entry(id)
            .or_insert_with(|| Gc::new(Response { id, body }));
        response.body.len() + response.id as usize % 2
    }
}

fn chapter_5_tracemalloc() {
    use pyheap::tracemalloc::{self, Filter, KeyType};
    println!("\n== Chapter 5: finding memory problems (Python's tracemalloc) ==\n");
    tracemalloc::start(5); // tracemalloc.start(5)
    let mut handler = Handler {
        cache: HashMap::new(),
    };
    let mut served = 0;
    for id in 0..200 {
        served += handler.handle(id);
    }
    let snapshot1 = tracemalloc::take_snapshot();
    for id in 200..5_000 {
        served += handler.handle(id);
    }
    let snapshot2 = tracemalloc::take_snapshot();
    let (current, peak) = tracemalloc::get_traced_memory();
    println!(
        "served {served} bytes; traced now {current} bytes, at the peak {peak} bytes, tracemalloc's own tables {} bytes\n",
        tracemalloc::get_tracemalloc_memory()
    );
    // The tour's own lines only (the test harness or libraries would add theirs).
    let mine = [Filter::include(file!())];
    println!("-- top 3 lines (snapshot.statistics('lineno')) --\n");
    for stat in snapshot2
        .filter_traces(&mine)
        .statistics(KeyType::Lineno)
        .iter()
        .take(3)
    {
        println!("{stat}");
    }
    println!("\n-- what grew (snapshot2.compare_to(snapshot1, 'lineno')) --\n");
    let diff = snapshot2
        .filter_traces(&mine)
        .compare_to(&snapshot1.filter_traces(&mine), KeyType::Lineno);
    for stat in diff.iter().take(3) {
        println!("{stat}");
    }
    let leaked = handler.cache.get(&4_999).unwrap();
    println!(
        "\n-- where one leaked Gc<Response> was allocated (tracemalloc.get_object_traceback) --\n"
    );
    match tracemalloc::get_object_traceback(leaked) {
        Some(tb) => {
            println!("{tb}");
            // With debug info (this workspace's profiles have it), the most recent frame is
            // the `Gc::new` in `Handler::handle`, not the loop that called it.
            if let Some(line) = tb.line().filter(|f| f.lineno() != 0) {
                assert!(line.name().contains("Handler::handle"), "{line}");
            }
        }
        None => println!("(not traced)"),
    }
    println!(
        "\nThe top difference is the line that keeps every response: a cache that never evicts. \
         (Frames come from the binary's debug info: [profile.release] debug = \"line-tables-only\".)"
    );
    tracemalloc::stop();
}
