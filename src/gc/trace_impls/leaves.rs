//! Leaves: types that own no `Gc`. Each reports nothing, which is exact, and says
//! `MAY_CONTAIN_GC = false`.

use crate::gc::trace::{Trace, Tracer};

macro_rules! leaf {
    ($($t:ty),* $(,)?) => {$(
        // SAFETY: this type owns no `Gc`; reporting nothing is exact.
        unsafe impl Trace for $t {
            #[inline(always)]
            fn trace(&self, _: &mut Tracer) {}
            const MAY_CONTAIN_GC: bool = false;
        }
    )*};
}

leaf!(
    (),
    bool,
    char,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    str,
    String,
    core::num::NonZeroU8,
    core::num::NonZeroU16,
    core::num::NonZeroU32,
    core::num::NonZeroU64,
    core::num::NonZeroU128,
    core::num::NonZeroUsize,
    core::num::NonZeroI8,
    core::num::NonZeroI16,
    core::num::NonZeroI32,
    core::num::NonZeroI64,
    core::num::NonZeroI128,
    core::num::NonZeroIsize,
    core::cmp::Ordering,
    core::convert::Infallible,
    core::any::TypeId,
    core::alloc::Layout,
    core::ops::RangeFull,
    core::sync::atomic::Ordering,
    std::time::Duration,
    std::time::Instant,
    std::time::SystemTime,
    std::thread::ThreadId,
    std::net::IpAddr,
    std::net::Ipv4Addr,
    std::net::Ipv6Addr,
    std::net::SocketAddr,
    std::net::SocketAddrV4,
    std::net::SocketAddrV6,
    std::path::PathBuf,
    std::path::Path,
    std::ffi::OsString,
    std::ffi::OsStr,
    std::ffi::CString,
    std::ffi::CStr,
);

// Atomics hold plain numbers (an `AtomicPtr` is a raw pointer, below). Each exists where
// the target has atomics of its width.
#[cfg(target_has_atomic = "8")]
leaf!(
    core::sync::atomic::AtomicBool,
    core::sync::atomic::AtomicU8,
    core::sync::atomic::AtomicI8
);
#[cfg(target_has_atomic = "16")]
leaf!(core::sync::atomic::AtomicU16, core::sync::atomic::AtomicI16);
#[cfg(target_has_atomic = "32")]
leaf!(core::sync::atomic::AtomicU32, core::sync::atomic::AtomicI32);
#[cfg(target_has_atomic = "64")]
leaf!(core::sync::atomic::AtomicU64, core::sync::atomic::AtomicI64);
#[cfg(target_has_atomic = "ptr")]
leaf!(
    core::sync::atomic::AtomicUsize,
    core::sync::atomic::AtomicIsize
);

/// `Trace` for types generic over a `T` they own none of.
macro_rules! leaf_generic {
    ($($why:literal: $t:ty),* $(,)?) => {$(
        // SAFETY: see the reason given with the type: it owns no `Gc`, whatever `T` is, as far
        // as the collector can know; reporting nothing only ever leaks.
        unsafe impl<T: ?Sized> Trace for $t {
            #[inline(always)]
            fn trace(&self, _: &mut Tracer) {}
            const MAY_CONTAIN_GC: bool = false;
        }
    )*};
}

leaf_generic!(
    "a PhantomData owns nothing": core::marker::PhantomData<T>,
    "a shared reference owns nothing (what it points to is owned elsewhere)": &T,
    // A raw pointer owns nothing the collector knows of. One from `Gc::into_raw` does hold a
    // strong count; not reporting it keeps its target alive, as `into_raw` promises anyway.
    "raw pointers: see above": *const T,
    "raw pointers: see above": *mut T,
    "raw pointers: see above": core::ptr::NonNull<T>,
    // A std `Weak` never owns its value: the `Rc`/`Arc` strong handles do, and the value is
    // dropped when the last of them goes, whatever `Weak`s remain.
    "a std Weak owns no value": std::rc::Weak<T>,
    "a std Weak owns no value": std::sync::Weak<T>,
);

// SAFETY: an `AtomicPtr` is a raw pointer (see above).
#[cfg(target_has_atomic = "ptr")]
unsafe impl<T> Trace for core::sync::atomic::AtomicPtr<T> {
    #[inline(always)]
    fn trace(&self, _: &mut Tracer) {}
    const MAY_CONTAIN_GC: bool = false;
}

/// Function pointers (code, no data) of up to six arguments, Rust and C ABIs, safe and not.
macro_rules! fn_ptrs {
    ($($arg:ident),*) => {
        // SAFETY: a function pointer owns no data.
        unsafe impl<R $(, $arg)*> Trace for fn($($arg),*) -> R {
            #[inline(always)]
            fn trace(&self, _: &mut Tracer) {}
            const MAY_CONTAIN_GC: bool = false;
        }
        // SAFETY: as above.
        unsafe impl<R $(, $arg)*> Trace for unsafe fn($($arg),*) -> R {
            #[inline(always)]
            fn trace(&self, _: &mut Tracer) {}
            const MAY_CONTAIN_GC: bool = false;
        }
        // SAFETY: as above.
        unsafe impl<R $(, $arg)*> Trace for extern "C" fn($($arg),*) -> R {
            #[inline(always)]
            fn trace(&self, _: &mut Tracer) {}
            const MAY_CONTAIN_GC: bool = false;
        }
        // SAFETY: as above.
        unsafe impl<R $(, $arg)*> Trace for unsafe extern "C" fn($($arg),*) -> R {
            #[inline(always)]
            fn trace(&self, _: &mut Tracer) {}
            const MAY_CONTAIN_GC: bool = false;
        }
    };
}
fn_ptrs!();
fn_ptrs!(A);
fn_ptrs!(A, B);
fn_ptrs!(A, B, C);
fn_ptrs!(A, B, C, D);
fn_ptrs!(A, B, C, D, E);
fn_ptrs!(A, B, C, D, E, F);
