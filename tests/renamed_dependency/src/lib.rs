//! `#[derive(Trace)]` with `#[trace(crate = "...")]` (issue 14 item 4), in a crate that has
//! pyheap only as the renamed dependency `engine` (see `Cargo.toml`): `::pyheap` names nothing
//! here, so each derive below compiles only because it follows its attribute (the doc test
//! on [`WithoutTheAttribute`] shows the same derive without it failing). Both forms: the
//! renamed crate itself, and a re-export of it inside this crate.
//!
//! ```compile_fail
//! // Without the attribute the derive names `::pyheap`, which this crate does not have.
//! #[derive(engine::Trace)]
//! struct NoAttribute {
//!     next: std::cell::RefCell<Option<engine::unsync::Gc<NoAttribute>>>,
//! }
//! ```

use engine::unsync::Gc;
use std::cell::RefCell;

/// A runtime that re-exports pyheap under a path of its own.
pub mod runtime {
    pub use engine as gc;
}

/// Through the renamed crate.
#[derive(engine::Trace)]
#[trace(crate = "::engine")]
pub struct Renamed {
    pub next: RefCell<Option<Gc<Renamed>>>,
    #[trace(skip)]
    pub label: &'static str,
}

/// Through the re-export, generic (the derive's bound on `T` names the path too).
#[derive(runtime::gc::Trace)]
#[trace(crate = "crate::runtime::gc")]
pub struct Reexported<T: runtime::gc::Trace + 'static> {
    pub value: T,
    pub next: RefCell<Option<Gc<Reexported<T>>>>,
}

/// An enum, through the renamed crate.
#[derive(engine::Trace)]
#[trace(crate = "engine")]
pub enum Either {
    Leaf(u32),
    Node(RefCell<Vec<Gc<Either>>>),
}

/// See the crate's doc test: the same shape without the attribute does not compile.
pub struct WithoutTheAttribute;

#[cfg(test)]
#[allow(clippy::assertions_on_constants)] // the `MAY_CONTAIN_GC` checks
mod tests {
    use super::*;
    use engine::Trace;

    #[test]
    fn derives_through_a_renamed_crate_and_a_reexport_find_cycles() {
        assert!(<Renamed as Trace>::MAY_CONTAIN_GC);
        assert!(<Reexported<u8> as Trace>::MAY_CONTAIN_GC);
        assert!(<Either as Trace>::MAY_CONTAIN_GC);

        let a = Gc::new(Renamed {
            next: RefCell::new(None),
            label: "a",
        });
        *a.next.borrow_mut() = Some(a.clone());
        let b = Gc::new(Reexported {
            value: String::from("b"),
            next: RefCell::new(None),
        });
        *b.next.borrow_mut() = Some(b.clone());
        let c = Gc::new(Either::Node(RefCell::new(Vec::new())));
        if let Either::Node(v) = &*c {
            v.borrow_mut().push(c.clone());
            v.borrow_mut().push(Gc::new(Either::Leaf(1)));
        }
        let (wa, wb, wc) = (Gc::downgrade(&a), Gc::downgrade(&b), Gc::downgrade(&c));
        drop((a, b, c));
        assert!(wa.upgrade().is_some() && wb.upgrade().is_some() && wc.upgrade().is_some());
        engine::unsync::gc::collect();
        assert!(wa.upgrade().is_none());
        assert!(wb.upgrade().is_none());
        assert!(wc.upgrade().is_none());
    }
}
