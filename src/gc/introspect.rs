//! Python's leak hunt over an object space (`gc.get_objects`, objgraph's census,
//! `gc.get_referrers`, `gc.get_referents`), written once for both flavors. Each function
//! walks the tracked objects with the flavor's locks held ([`Flavor::for_each_tracked`]) and
//! returns objects on which it took one strong reference each ([`Flavor::acquire_in_walk`]),
//! for the flavor's handle types to own. Only objects that are alive and not being torn down
//! are ever acquired: an object dying by refcounting (strong count zero), dead, or whose weak
//! handles a collection cleared is skipped, so introspection never resurrects garbage.
//!
//! Untracked objects (types that can hold no `Gc`) are not in any list, so they are never
//! found, as CPython's untracked atomic objects; neither is an object whose `get_mut` borrow
//! may still be live (it is in no list), nor garbage waiting for its teardown. Frozen objects
//! (`gc.freeze()`) are found, unlike CPython's `get_objects()`: they are live objects, and a
//! leak hunt wants to see what holds what among them too.

use super::flavor::Flavor;
use super::header::{addr, Links};
use super::trace::{Mode, Tracer};
use super::vtable::TypeInfo;

/// The objects of type `id` (all generations, or `gen`), each acquired.
pub(crate) fn objects_of_type<F: Flavor>(
    id: core::any::TypeId,
    gen: Option<usize>,
) -> Vec<*const Links> {
    let mut found = Vec::new();
    F::for_each_tracked(gen, &mut |p| {
        let Some(p) = p else { return };
        // SAFETY: `for_each_tracked` hands out live tracked objects of this flavor, under its
        // locks.
        unsafe {
            if ((*p).vtable().type_info)().id == id && F::acquire_in_walk(p) {
                found.push(p);
            }
        }
    });
    found
}

/// One line of a [`census`](crate::gc::census): how many tracked objects of a type, and their bytes (whole
/// allocations: header and value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CensusEntry {
    /// The type, as `core::any::type_name` spells it.
    pub type_name: &'static str,
    /// Live tracked objects of the type.
    pub count: usize,
    /// Their allocations' sizes, summed.
    pub bytes: usize,
}

/// Count and bytes per type over the tracked objects, largest count first (then bytes, then
/// name, for a stable order).
pub(crate) fn census<F: Flavor>() -> Census {
    let mut by_type: std::collections::HashMap<core::any::TypeId, (TypeInfo, usize, usize)> =
        std::collections::HashMap::new();
    F::for_each_tracked(None, &mut |p| {
        let Some(p) = p else { return };
        // SAFETY: as in `objects_of_type`; the layout function reads only the header.
        unsafe {
            let vt = (*p).vtable();
            let info = (vt.type_info)();
            let bytes = (vt.layout)(p).size();
            let e = by_type.entry(info.id).or_insert((info, 0, 0));
            e.1 += 1;
            e.2 += bytes;
        }
    });
    let mut v: Vec<CensusEntry> = by_type
        .into_values()
        .map(|(info, count, bytes)| CensusEntry {
            type_name: info.name,
            count,
            bytes,
        })
        .collect();
    v.sort_by(|a, b| {
        (b.count, b.bytes)
            .cmp(&(a.count, a.bytes))
            .then(a.type_name.cmp(b.type_name))
    });
    Census { entries: v }
}

/// The tracked objects whose values hold a handle to `target`, each acquired.
///
/// # Safety
/// `target` is a live tracked object of flavor `F` (the caller holds a handle to it).
pub(crate) unsafe fn referrers<F: Flavor>(target: *const Links) -> Vec<*const Links> {
    let mut found = Vec::new();
    // One tracer for the walk: in the thread-safe flavor it keeps the guards of the interior
    // locks it took until it drops, inside the walk (as a scan does).
    let mut tracer = Some(Tracer::new::<F::Counts>(
        Mode::Find { wanted: target },
        F::CONCURRENT,
    ));
    F::for_each_tracked(None, &mut |p| {
        let Some(p) = p else {
            // The end of the walk, still under its locks: the guards go now.
            drop(tracer.take());
            return;
        };
        let Some(tracer) = tracer.as_mut() else {
            return;
        };
        tracer.found = false;
        // SAFETY: as in `objects_of_type`; tracing runs only `Trace` impls (no scan runs
        // meanwhile: the walk holds the scans' locks).
        unsafe {
            ((*p).vtable().trace)(p, tracer);
            if tracer.found && F::acquire_in_walk(p) {
                found.push(p);
            }
        }
    });
    found
}

/// The tracked objects `source`'s value holds handles to (once each), each acquired.
///
/// # Safety
/// `source` is a live tracked object of flavor `F` (the caller holds a handle to it).
pub(crate) unsafe fn referents<F: Flavor>(source: *const Links) -> Vec<*const Links> {
    let mut found = Vec::new();
    // Under the walk's locks (no scan runs, so the targets' headers are not mid-pass), but
    // only `source` is traced.
    F::with_walk_locks(&mut || {
        let mut tracer = Tracer::new::<F::Counts>(Mode::Referents, F::CONCURRENT);
        // SAFETY: per the caller `source` is alive; its handles keep their targets alive
        // while the tracer holds the guards of the locks they sit behind.
        unsafe {
            ((*source).vtable().trace)(source, &mut tracer);
            let mut seen = std::collections::HashSet::new();
            for &t in &tracer.stack {
                if seen.insert(addr(t)) && F::acquire_in_walk(t) {
                    found.push(t);
                }
            }
        }
    });
    found
}

/// What [`census`](crate::gc::census) found: count and bytes per type of tracked object, largest count first
/// (objgraph's `most_common_types`, with sizes). Printing it gives a table.
///
/// ```
/// use pyheap::unsync::{gc, Gc};
/// use std::cell::RefCell;
/// #[derive(pyheap::Trace)]
/// struct Node(RefCell<Vec<Gc<Node>>>);
/// let nodes: Vec<_> = (0..3).map(|_| Gc::new(Node(RefCell::new(vec![])))).collect();
/// let census = gc::census();
/// let line = census.entries.iter().find(|e| e.type_name.ends_with("Node")).unwrap();
/// assert_eq!(line.count, 3);
/// println!("{census}");
/// # drop(nodes);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Census {
    /// One line per type, largest count first.
    pub entries: Vec<CensusEntry>,
}

impl Census {
    /// Tracked objects counted, all types.
    pub fn total_count(&self) -> usize {
        self.entries.iter().map(|e| e.count).sum()
    }

    /// Their bytes, all types.
    pub fn total_bytes(&self) -> usize {
        self.entries.iter().map(|e| e.bytes).sum()
    }
}

impl core::fmt::Display for Census {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let width = self
            .entries
            .iter()
            .map(|e| e.type_name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        writeln!(f, "{:<width$}  {:>10}  {:>12}", "type", "count", "bytes")?;
        for e in &self.entries {
            writeln!(
                f,
                "{:<width$}  {:>10}  {:>12}",
                e.type_name, e.count, e.bytes
            )?;
        }
        write!(
            f,
            "{:<width$}  {:>10}  {:>12}",
            "total",
            self.total_count(),
            self.total_bytes()
        )
    }
}
