//! Intrusive circular doubly-linked lists of [`Links`] with a sentinel head: the generations.
//!
//! Every function takes raw pointers to links that are alive (an object's header or a
//! sentinel that has been [`init`]ed and not moved since) and belong to lists the caller owns
//! (its thread's object space, or a shard of the shared space whose lock it holds); none may
//! be called while a collection has overwritten `prev` with its collection bits for the nodes
//! it touches (the collector restores the pointers before user code runs).

use super::header::Links;

/// Make `head` an empty list (a self-loop).
///
/// # Safety
/// `head` is valid and will not move while the list is in use.
#[inline]
pub(crate) unsafe fn init(head: *const Links) {
    // SAFETY: caller guarantees `head` is valid.
    let h = unsafe { &*head };
    h.next.set(head);
    h.set_prev(head);
}

/// Whether the list is empty.
///
/// # Safety
/// `head` is an initialised list head.
#[inline]
pub(crate) unsafe fn is_empty(head: *const Links) -> bool {
    // SAFETY: caller guarantees `head` is valid.
    unsafe { (*head).next.get() == head }
}

/// Append `node` (which must not be in a list) at the tail of `head`.
///
/// # Safety
/// Both are valid; `node` is not linked into any list (its `prev` may hold anything).
#[inline]
pub(crate) unsafe fn push_back(head: *const Links, node: *const Links) {
    // SAFETY: caller guarantees validity; `head.prev` is a node pointer of an intact list.
    unsafe {
        let last = (*head).prev();
        (*last).next.set(node);
        (*node).set_prev(last);
        (*node).next.set(head);
        (*head).set_prev(node);
    }
}

/// Take `node` out of whatever list it is in and leave it as a self-loop. A self-loop stays a
/// self-loop, so calling this on an unlinked node is a no-op.
///
/// # Safety
/// `node` is valid and its neighbours (if any) are valid nodes of an intact list.
#[inline]
pub(crate) unsafe fn unlink(node: *const Links) {
    // SAFETY: caller guarantees the list around `node` is intact.
    unsafe {
        let next = (*node).next.get();
        let prev = (*node).prev();
        (*prev).next.set(next);
        (*next).set_prev(prev);
        (*node).next.set(node);
        (*node).set_prev(node);
    }
}

/// Move every node of `from` to the tail of `to`, leaving `from` empty.
///
/// # Safety
/// Both are initialised, intact lists.
pub(crate) unsafe fn merge(from: *const Links, to: *const Links) {
    // SAFETY: caller guarantees both lists are intact.
    unsafe {
        if is_empty(from) {
            return;
        }
        let to_tail = (*to).prev();
        let first = (*from).next.get();
        let last = (*from).prev();
        (*to_tail).next.set(first);
        (*first).set_prev(to_tail);
        (*last).next.set(to);
        (*to).set_prev(last);
        init(from);
    }
}

/// Run `f` on every node of the list at `head`, in order.
///
/// # Safety
/// `head` is an initialised list whose `next` chain is intact, and `f` does not relink.
pub(crate) unsafe fn for_each_node(head: *const Links, f: &mut dyn FnMut(*const Links)) {
    // SAFETY: per the caller the list is intact and `f` does not relink.
    unsafe {
        let mut p = (*head).next.get();
        while p != head {
            let next = (*p).next.get();
            f(p);
            p = next;
        }
    }
}

/// Number of nodes in the list.
///
/// # Safety
/// `head` is an initialised list whose `next` chain is intact.
pub(crate) unsafe fn len(head: *const Links) -> usize {
    let mut n = 0;
    // SAFETY: caller guarantees the chain is intact.
    unsafe {
        let mut p = (*head).next.get();
        while p != head {
            n += 1;
            p = (*p).next.get();
        }
    }
    n
}
