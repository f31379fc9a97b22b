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
//! The interposer is generic over (symbol, replacement) pairs (`got.rs`): `--native` uses a
//! second one for the malloc family and `mmap`/`munmap` (`malloc.rs`), whose events go to a
//! journal the GIL holder applies (`journal.rs`), with native frames from `unwind.rs`.

mod capi;
mod dl;
mod elf;
pub use elf::dynamic_symbol;
#[cfg(target_arch = "x86_64")]
mod fast_unwind;
mod got;
pub mod journal;
mod malloc;
pub mod symbols;
mod unwind;

use std::ffi::CStr;

use crate::spin::SpinLock;
use got::Interposer;

static INTERPOSER: SpinLock<Option<Interposer>> = SpinLock::new(None);
/// The malloc family's interposer, while `--native` traces.
static MALLOC_INTERPOSER: SpinLock<Option<Interposer>> = SpinLock::new(None);

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

/// Objects whose malloc-family imports are left alone: the C library and the loader (their
/// internal calls are the allocator's own), and allocators a program preloads (jemalloc,
/// tcmalloc, mimalloc: their `mmap`s are their arenas, whose blocks their `malloc` already
/// counts).
fn is_allocator(path: &[u8]) -> bool {
    if path.is_empty() && SKIP_MAIN.load(std::sync::atomic::Ordering::Relaxed) {
        return true;
    }
    let file = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
    [
        &b"libc.so"[..],
        b"libc-",
        b"ld-linux",
        b"ld64.so",
        b"libjemalloc",
        b"libtcmalloc",
        b"libmimalloc",
    ]
    .iter()
    .any(|p| file.starts_with(p))
}

/// Leave the main program's malloc-family imports alone: set when its PLT entry is the
/// canonical address of `malloc` (a non-PIE executable that takes malloc's address, as
/// Debian's static CPython 3.13+ executables do). The loader's own allocations then go
/// through the executable's GOT slot (`__rtld_malloc` is bound to that address), including
/// the one that creates a thread's TLS block for heapscope's module on first use: patching it
/// would send that allocation into the hook, whose first thread-local access needs it.
static SKIP_MAIN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// True if the global `malloc` symbol resolves into the main program (whose link map has an
/// empty name).
fn malloc_is_canonical_in_main() -> bool {
    #[repr(C)]
    struct LinkMap {
        addr: usize,
        name: *const libc::c_char,
    }
    // SAFETY: dlsym/dladdr1 with a NUL-terminated name and valid out-parameters; the link
    // map's name is a NUL-terminated string owned by the loader.
    unsafe {
        let canonical = libc::dlsym(libc::RTLD_DEFAULT, c"malloc".as_ptr());
        if canonical.is_null() {
            return false;
        }
        let mut info: libc::Dl_info = std::mem::zeroed();
        let mut map: *const LinkMap = std::ptr::null();
        let found = libc::dladdr1(
            canonical,
            &raw mut info,
            (&raw mut map).cast::<*mut libc::c_void>(),
            2, // RTLD_DL_LINKMAP
        );
        found != 0 && !map.is_null() && ((*map).name.is_null() || *(*map).name == 0)
    }
}

/// `--native`: point every loaded object's malloc-family and `mmap`/`munmap` imports (but the
/// allocators', see `is_allocator`) at the recording replacements, and keep doing so for
/// objects loaded later; their `dlsym` imports too, so that an allocator function looked up by
/// name is the replacement (`dl.rs`). Returns the number of slots patched.
pub fn install_malloc(layout: &'static crate::stack::FrameLayout) -> usize {
    malloc::start(layout);
    SKIP_MAIN.store(
        malloc_is_canonical_in_main(),
        std::sync::atomic::Ordering::Relaxed,
    );
    let mut guard = MALLOC_INTERPOSER.lock();
    let interposer = guard.get_or_insert_with(|| {
        let mut targets = malloc::targets().to_vec();
        targets.push((c"dlsym", dl::dlsym_replacement()));
        Interposer::new(&targets, install as *const () as usize).skipping(is_allocator)
    });
    // SAFETY: serialised by the lock; each replacement has the signature of its symbol.
    unsafe { interposer.scan() };
    interposer.patched()
}

/// Put the malloc family's slots back and stop recording native blocks.
pub fn uninstall_malloc() {
    if let Some(mut interposer) = MALLOC_INTERPOSER.lock().take() {
        // SAFETY: serialised by the lock.
        unsafe { interposer.restore() };
    }
    malloc::stop();
}

/// Sample native blocks (one per `rate` bytes on average; 0: every block).
pub fn set_native_sample_rate(rate: u64) {
    malloc::set_sample_rate(rate);
}

/// True while `--native` records.
pub fn native_on() -> bool {
    malloc::is_on()
}

/// Python stacks of native blocks stop before this interpreter frame (0: none).
pub fn set_native_floor(frame: usize) {
    malloc::set_floor(frame);
}

/// Put back every patched slot.
pub fn uninstall() {
    if let Some(mut interposer) = INTERPOSER.lock().take() {
        // SAFETY: serialised by INTERPOSER's lock.
        unsafe { interposer.restore() };
    }
}

/// Run `dlopen` or `dlclose` (`f`) and the rescan after it; with `--native`, native stack walks
/// meanwhile do not use the object list being changed (`fast_unwind::loading`).
fn loading<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if malloc::is_on() {
        return fast_unwind::loading(f);
    }
    f()
}

/// Patch objects loaded since the last scan and forget unloaded ones (after `dlopen` and
/// `dlclose`); nothing when not installed.
fn rescan() {
    if let Some(interposer) = INTERPOSER.lock().as_mut() {
        // SAFETY: serialised by INTERPOSER's lock.
        unsafe { interposer.scan() };
    }
    if let Some(interposer) = MALLOC_INTERPOSER.lock().as_mut() {
        // SAFETY: serialised by the lock.
        unsafe { interposer.scan() };
    }
}

/// Number of GOT slots patched now (0 when not tracing).
pub fn patched_slots() -> usize {
    INTERPOSER.lock().as_ref().map_or(0, Interposer::patched)
}

/// Number of malloc-family GOT slots patched now (0 when `--native` is off).
pub fn malloc_slots() -> usize {
    MALLOC_INTERPOSER
        .lock()
        .as_ref()
        .map_or(0, Interposer::patched)
}

/// Fork handlers: hold the interposers' and the journal's locks across `fork()` so the
/// child's copies are usable.
pub fn fork_prepare() {
    std::mem::forget(INTERPOSER.lock());
    std::mem::forget(MALLOC_INTERPOSER.lock());
    std::mem::forget(journal::JOURNAL.lock());
}

/// After `fork()`, in the parent and in the child (its only thread is the forking one).
///
/// # Safety
/// Only after `fork_prepare` in the same thread.
pub unsafe fn fork_release() {
    // SAFETY: per the contract, this thread holds the locks and forgot their guards.
    unsafe {
        journal::JOURNAL.force_unlock();
        MALLOC_INTERPOSER.force_unlock();
        INTERPOSER.force_unlock();
    }
}

/// After `fork()` in the child, once the locks are released.
pub fn after_fork_in_child() {
    #[cfg(target_arch = "x86_64")]
    fast_unwind::after_fork_in_child();
    malloc::after_fork_in_child();
}
