//! Interposition on functions other objects import: the unsafe core that sees what C code
//! calls through its GOT.
//!
//! While tracing, every loaded object's GOT slots for `PyTraceMalloc_Track`,
//! `PyTraceMalloc_Untrack` and `_PyTraceMalloc_GetTraceback` point at heapscope's versions
//! (`capi.rs`), and its `dlopen`/`dlclose` slots at replacements (`dl.rs`) that patch the
//! objects a `dlopen` brings in before the caller gets the handle. `stop()` puts every slot
//! back. Extensions import these functions from libpython or, when the interpreter is a static
//! executable, from the executable: both are just the defining object of the symbol, so
//! nothing here depends on how the interpreter was linked.
//!
//! The interposer is generic over (symbol, replacement) pairs (`got.rs`), so the malloc family
//! of `--native` can reuse it.

mod capi;
mod dl;
mod elf;
mod got;

use std::ffi::CStr;

use crate::spin::SpinLock;
use got::Interposer;

static INTERPOSER: SpinLock<Option<Interposer>> = SpinLock::new(None);

/// The functions replaced while tracing.
fn targets() -> [(&'static CStr, usize); 5] {
    [
        (c"PyTraceMalloc_Track", capi::track as *const () as usize),
        (
            c"PyTraceMalloc_Untrack",
            capi::untrack as *const () as usize,
        ),
        (
            c"_PyTraceMalloc_GetTraceback",
            capi::get_traceback as *const () as usize,
        ),
        (c"dlopen", dl::dlopen_replacement()),
        (c"dlclose", dl::dlclose_replacement()),
    ]
}

/// Patch every loaded object (and, through the `dlopen` replacement, those loaded later).
/// Returns the number of slots patched.
pub fn install() -> usize {
    let mut guard = INTERPOSER.lock();
    let interposer =
        guard.get_or_insert_with(|| Interposer::new(&targets(), install as *const () as usize));
    // SAFETY: serialised by INTERPOSER's lock; each replacement has the signature of the
    // symbol it replaces.
    unsafe { interposer.scan() };
    interposer.patched()
}

/// Put back every patched slot.
pub fn uninstall() {
    if let Some(mut interposer) = INTERPOSER.lock().take() {
        // SAFETY: serialised by INTERPOSER's lock.
        unsafe { interposer.restore() };
    }
}

/// Patch objects loaded since the last scan and forget unloaded ones (after `dlopen` and
/// `dlclose`); nothing when not installed.
fn rescan() {
    if let Some(interposer) = INTERPOSER.lock().as_mut() {
        // SAFETY: serialised by INTERPOSER's lock.
        unsafe { interposer.scan() };
    }
}

/// Number of GOT slots patched now (0 when not tracing).
pub fn patched_slots() -> usize {
    INTERPOSER.lock().as_ref().map_or(0, Interposer::patched)
}

/// Fork handlers: hold the interposer's lock across `fork()` so the child's copy is usable.
pub fn fork_prepare() {
    std::mem::forget(INTERPOSER.lock());
}

/// After `fork()`, in the parent and in the child (its only thread is the forking one).
///
/// # Safety
/// Only after `fork_prepare` in the same thread.
pub unsafe fn fork_release() {
    // SAFETY: per the contract, this thread holds the lock and forgot its guard.
    unsafe { INTERPOSER.force_unlock() };
}
