//! Objects reused from free lists: the stdlib's tracemalloc re-attributes such an object to the
//! stack that reuses it (its memory block was traced where it was first allocated, but it is a
//! new object here). The interpreter tells it through `_Py_NewReference`, which every new object
//! goes through.
//!
//! CPython 3.11 calls its own tracemalloc from `_Py_NewReference` and offers no hook (3.13+
//! has `PyRefTracer`). So while heapscope traces on 3.11 (x86-64, release builds), the entry of
//! `_Py_NewReference` is redirected to [`new_reference`], which does what the original does in
//! a release build (the reference count becomes 1, and the stdlib's tracemalloc is told if it
//! traces too) and then re-attributes. The original bytes are put back on `stop()`.
//!
//! Limit: a build with link-time optimisation may have inlined `_Py_NewReference` into some
//! callers; those calls are not seen (the trace keeps its first stack).

use std::ffi::{c_void, CStr};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::state::state;

/// `movabs rax, imm64; jmp rax`.
const PATCH_LEN: usize = 12;

struct Patch {
    target: usize,
    original: [u8; PATCH_LEN],
}

struct PatchCell(std::cell::UnsafeCell<Option<Patch>>);
// SAFETY: only touched by the GIL holder (install/uninstall take the GIL token's contract).
unsafe impl Sync for PatchCell {}
static PATCH: PatchCell = PatchCell(std::cell::UnsafeCell::new(None));

/// `_Py_tracemalloc_config` (3.11: `{int initialized; int tracing; int max_nframe;}`) and the
/// stdlib's `_PyTraceMalloc_NewReference`, to keep the stdlib's tracer informed.
static STDLIB_CONFIG: AtomicUsize = AtomicUsize::new(0);
static STDLIB_NEW_REFERENCE: AtomicUsize = AtomicUsize::new(0);

fn symbol(name: &CStr) -> usize {
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only reads the loaded objects'
    // symbol tables.
    unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) as usize }
}

/// Make the page(s) holding `[addr, addr + len)` writable (and executable) or back to
/// read + execute.
unsafe fn protect(addr: usize, len: usize, writable: bool) -> bool {
    // SAFETY: sysconf is always safe to call.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    let start = addr & !(page - 1);
    let end = (addr + len + page - 1) & !(page - 1);
    let prot = if writable {
        libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC
    } else {
        libc::PROT_READ | libc::PROT_EXEC
    };
    // SAFETY: the range covers mapped text pages of the interpreter.
    unsafe { libc::mprotect(start as *mut c_void, end - start, prot) == 0 }
}

/// Redirect `_Py_NewReference` (3.11 on x86-64 only; a no-op elsewhere or if the function does
/// not look patchable). Returns whether the redirection is in place.
///
/// # Safety
/// The GIL is held (no other thread can be creating an object meanwhile).
pub unsafe fn install() -> bool {
    // SAFETY: GIL held per the contract.
    let slot = unsafe { &mut *PATCH.0.get() };
    if slot.is_some() {
        return true;
    }
    if !cfg!(all(target_arch = "x86_64", Py_3_11, not(Py_3_12))) || symbol(c"_Py_RefTotal") != 0 {
        // Debug builds count references in `_Py_NewReference`: not replaced.
        return false;
    }
    let target = symbol(c"_Py_NewReference");
    // The function's own symbol, at least as long as the patch.
    let size = crate::native::dynamic_symbol(target).filter(|&(start, _)| start == target);
    if target == 0 || size.is_none_or(|(_, n)| n < PATCH_LEN) {
        return false;
    }
    STDLIB_CONFIG.store(symbol(c"_Py_tracemalloc_config"), Ordering::Relaxed);
    STDLIB_NEW_REFERENCE.store(symbol(c"_PyTraceMalloc_NewReference"), Ordering::Relaxed);
    let mut code = [0u8; PATCH_LEN];
    code[0] = 0x48; // movabs rax, imm64
    code[1] = 0xb8;
    code[2..10].copy_from_slice(
        &(new_reference as unsafe extern "C" fn(*mut pyo3_ffi::PyObject) as usize as u64)
            .to_le_bytes(),
    );
    code[10] = 0xff; // jmp rax
    code[11] = 0xe0;
    let mut original = [0u8; PATCH_LEN];
    // SAFETY: `target` is a function of at least PATCH_LEN bytes (its symbol says so); its
    // pages are made writable for the copy and protected again; no other thread runs it
    // meanwhile (it needs the GIL, which we hold).
    unsafe {
        std::ptr::copy_nonoverlapping(target as *const u8, original.as_mut_ptr(), PATCH_LEN);
        if !protect(target, PATCH_LEN, true) {
            return false;
        }
        std::ptr::copy_nonoverlapping(code.as_ptr(), target as *mut u8, PATCH_LEN);
        protect(target, PATCH_LEN, false);
    }
    *slot = Some(Patch { target, original });
    true
}

/// Put `_Py_NewReference` back.
///
/// # Safety
/// The GIL is held.
pub unsafe fn uninstall() {
    // SAFETY: GIL held per the contract.
    let Some(patch) = (unsafe { &mut *PATCH.0.get() }).take() else {
        return;
    };
    // SAFETY: the bytes were read from this address by `install`; as there, nobody else runs
    // the function meanwhile.
    unsafe {
        if protect(patch.target, PATCH_LEN, true) {
            std::ptr::copy_nonoverlapping(
                patch.original.as_ptr(),
                patch.target as *mut u8,
                PATCH_LEN,
            );
            protect(patch.target, PATCH_LEN, false);
        }
    }
}

/// `_Py_NewReference` while heapscope traces on 3.11.
unsafe extern "C" fn new_reference(obj: *mut pyo3_ffi::PyObject) {
    let config = STDLIB_CONFIG.load(Ordering::Relaxed);
    // SAFETY: `config` is `_Py_tracemalloc_config`, whose second int is `tracing`.
    if config != 0 && unsafe { *(config as *const i32).add(1) } != 0 {
        let f = STDLIB_NEW_REFERENCE.load(Ordering::Relaxed);
        if f != 0 {
            // SAFETY: the interpreter's own `_PyTraceMalloc_NewReference(PyObject*) -> int`,
            // called exactly where the original `_Py_NewReference` calls it.
            let f = unsafe {
                std::mem::transmute::<usize, unsafe extern "C" fn(*mut pyo3_ffi::PyObject) -> i32>(
                    f,
                )
            };
            // SAFETY: as above.
            unsafe { f(obj) };
        }
    }
    // SAFETY: what the original does in a release build: `ob_refcnt`, the object's first word,
    // becomes 1.
    unsafe { obj.cast::<isize>().write(1) };
    // SAFETY: new objects are made with the GIL held; the tracer holds no state reference
    // while Python objects are created.
    if let Some(st) = unsafe { state() } {
        // SAFETY: as above; the object's type is set before `_Py_NewReference`.
        unsafe { st.on_new_reference(obj.cast()) };
    }
}
