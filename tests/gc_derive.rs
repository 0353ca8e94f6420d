//! `#[derive(Trace)]`: structs, tuple structs, enums, generics, `#[trace(skip)]`, and the
//! computed `MAY_CONTAIN_GC`; plus the compile-fail cases (trybuild, `tests/ui/`).

use pyheap::unsync::{Gc, Weak};
use pyheap::Trace;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

#[derive(Trace)]
struct Leaf {
    a: u32,
    b: String,
    c: Vec<(u8, char)>,
    d: HashMap<String, Option<Box<[i64]>>>,
    e: Cell<f64>,
}

#[derive(Trace)]
struct Tuple(u8, RefCell<Option<Gc<Tuple>>>);

#[derive(Trace)]
struct Skipping {
    #[trace(skip)]
    _foreign: NotTrace,
    n: u8,
}

struct NotTrace;

#[derive(Trace)]
enum Shape {
    Empty,
    One(Gc<Tuple>),
    Named {
        left: Option<Gc<Tuple>>,
        right: Vec<Gc<Tuple>>,
    },
    Skipped(#[trace(skip)] Option<Gc<Tuple>>, u8),
}

#[derive(Trace)]
struct Generic<T, U: Clone> {
    t: Vec<T>,
    #[trace(skip)]
    _u: Option<U>,
}

#[derive(Trace)]
struct WeakOnly {
    parent: Weak<Tuple>,
    cache: RefCell<HashSet<u64>>,
}

#[derive(Trace)]
enum Never {}

#[derive(Trace)]
struct Unit;

#[test]
fn may_contain_gc_is_the_or_of_the_traced_fields() {
    const {
        assert!(!<Leaf as Trace>::MAY_CONTAIN_GC);
        assert!(<Tuple as Trace>::MAY_CONTAIN_GC);
        assert!(!<Skipping as Trace>::MAY_CONTAIN_GC);
        assert!(<Shape as Trace>::MAY_CONTAIN_GC);
        assert!(!<Generic<u8, NotClone> as Trace>::MAY_CONTAIN_GC);
        assert!(<Generic<Gc<Tuple>, NotClone> as Trace>::MAY_CONTAIN_GC);
        assert!(!<WeakOnly as Trace>::MAY_CONTAIN_GC);
        assert!(!<Never as Trace>::MAY_CONTAIN_GC);
        assert!(!<Unit as Trace>::MAY_CONTAIN_GC);
        assert!(!<Vec<u64> as Trace>::MAY_CONTAIN_GC);
        assert!(!<VecDeque<String> as Trace>::MAY_CONTAIN_GC);
        assert!(<BTreeMap<u8, Gc<u8>> as Trace>::MAY_CONTAIN_GC);
        assert!(<(u8, Gc<u8>) as Trace>::MAY_CONTAIN_GC);
        assert!(!<[u8; 4] as Trace>::MAY_CONTAIN_GC);
        assert!(<std::sync::Mutex<Option<Gc<u8>>> as Trace>::MAY_CONTAIN_GC);
        assert!(!<Result<u8, String> as Trace>::MAY_CONTAIN_GC);
    }
    let leaf = Gc::new(Leaf {
        a: 1,
        b: "b".into(),
        c: vec![],
        d: HashMap::new(),
        e: Cell::new(0.0),
    });
    assert!(!Gc::is_tracked(&leaf));
    assert_eq!(
        leaf.a + leaf.b.len() as u32 + leaf.c.len() as u32 + leaf.d.len() as u32,
        2
    );
    assert_eq!(leaf.e.get(), 0.0);
    assert!(Gc::is_tracked(&Gc::new(Tuple(0, RefCell::new(None)))));
}

#[derive(Clone)]
struct NotClone;

#[test]
fn derived_traces_find_cycles_through_every_field_kind() {
    pyheap::unsync::gc::disable();
    pyheap::collect();
    let t = Gc::new(Tuple(1, RefCell::new(None)));
    *t.1.borrow_mut() = Some(t.clone());
    drop(t);
    assert_eq!(pyheap::collect(), 1);

    #[derive(Trace)]
    struct Holder(RefCell<Vec<Shape>>);
    let h = Gc::new(Holder(RefCell::new(Vec::new())));
    // Shape has no way back to Holder, so build a cycle through Tuple and an enum variant.
    let a = Gc::new(Tuple(2, RefCell::new(None)));
    let b = Gc::new(Tuple(3, RefCell::new(None)));
    *a.1.borrow_mut() = Some(b.clone());
    *b.1.borrow_mut() = Some(a.clone());
    h.0.borrow_mut().push(Shape::Named {
        left: Some(a.clone()),
        right: vec![b.clone()],
    });
    h.0.borrow_mut().push(Shape::One(a.clone()));
    h.0.borrow_mut().push(Shape::Empty);
    drop((a, b));
    assert_eq!(pyheap::collect(), 0, "kept by h");
    drop(h);
    assert_eq!(
        pyheap::collect(),
        2,
        "h died by counting; the pair is a cycle"
    );

    // A skipped field's handle is never reported: its target is a root (kept, leaked).
    let c = Gc::new(Tuple(4, RefCell::new(None)));
    let s = Gc::new(Tuple(5, RefCell::new(None)));
    let skip = Shape::Skipped(Some(s.clone()), 0);
    *s.1.borrow_mut() = Some(s.clone());
    drop(s);
    drop(c);
    assert_eq!(pyheap::collect(), 0);
    if let Shape::Skipped(Some(s), n) = &skip {
        assert_eq!((s.0, *n), (5, 0));
    }
    drop(skip);
    assert_eq!(pyheap::collect(), 1);
}

#[test]
fn generic_derive_bounds_only_traced_parameters() {
    let g: Gc<Generic<Gc<u8>, NotClone>> = Gc::new(Generic {
        t: vec![Gc::new(1)],
        _u: None,
    });
    assert!(Gc::is_tracked(&g));
    let _ = NotClone.clone();
    let _ = Skipping {
        _foreign: NotTrace,
        n: 0,
    }
    .n;
    let w = WeakOnly {
        parent: Weak::new(),
        cache: RefCell::new(HashSet::new()),
    };
    assert!(w.parent.upgrade().is_none() && w.cache.borrow().is_empty());
    let _ = Unit;
}

#[test]
fn compile_fail() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
