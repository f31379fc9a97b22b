//! Native stack capture for `--native`: the return addresses of the C frames between an
//! allocation and the innermost Python frame, from the DWARF CFI (so code built without frame
//! pointers unwinds too): framehop with cached rules on x86-64 (`fast_unwind.rs`), libgcc's
//! `_Unwind_Backtrace` otherwise and whenever the fast walk cannot answer. No allocation, no
//! wait on a lock: it runs inside the malloc hooks. Symbols are looked up only when a
//! traceback is read (`symbols.rs`).
//!
//! The walk skips heapscope's own frames (the hook) and marks each frame inside
//! `_PyEval_EvalFrameDefault` with `journal::EVAL_MARK` (the Python frames of that invocation
//! go there, `journal.rs`); it stops after as many of those as the Python stack kept needs. A
//! thread with no Python frame (a thread C code started) keeps its whole native stack, up to
//! the buffer's length.

use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::journal::EVAL_MARK;

#[repr(C)]
struct UnwindContext {
    _opaque: [u8; 0],
}

type TraceFn = extern "C" fn(*mut UnwindContext, *mut c_void) -> c_int;

extern "C" {
    fn _Unwind_Backtrace(trace: TraceFn, arg: *mut c_void) -> c_int;
    fn _Unwind_GetIP(ctx: *mut UnwindContext) -> usize;
}

/// `_URC_NO_REASON`: go on.
const URC_NO_REASON: c_int = 0;
/// `_URC_NORMAL_STOP`: stop the walk.
const URC_NORMAL_STOP: c_int = 4;

/// `[start, end)` of heapscope's own module and of `_PyEval_EvalFrameDefault`, found at
/// install time.
static OWN: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];
static EVAL: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];

struct Walk<'a> {
    out: &'a mut [usize],
    n: usize,
    own: (usize, usize),
    eval: (usize, usize),
    /// Still inside heapscope's frames at the top of the stack.
    in_own: bool,
    /// Interpreter invocations still to walk past.
    evals: usize,
}

extern "C" fn step(ctx: *mut UnwindContext, arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Walk` passed to `_Unwind_Backtrace` by `capture`, alive for the
    // whole walk and touched by no one else.
    let w = unsafe { &mut *arg.cast::<Walk<'_>>() };
    // SAFETY: `ctx` is the context the unwinder hands its callback.
    let ip = unsafe { _Unwind_GetIP(ctx) };
    if ip == 0 {
        return URC_NORMAL_STOP;
    }
    if w.in_own {
        if ip >= w.own.0 && ip < w.own.1 {
            return URC_NO_REASON;
        }
        w.in_own = false;
    }
    if w.n == w.out.len() {
        return URC_NORMAL_STOP;
    }
    let eval = ip >= w.eval.0 && ip < w.eval.1;
    w.out[w.n] = if eval { ip | EVAL_MARK } else { ip };
    w.n += 1;
    if eval {
        w.evals -= 1;
        if w.evals == 0 {
            return URC_NORMAL_STOP;
        }
    }
    URC_NO_REASON
}

/// Write the return addresses of the calling thread's native frames, innermost first, into
/// `out`, up to and including the `evals`-th frame of `_PyEval_EvalFrameDefault` (`evals` > 0);
/// returns how many were written.
pub fn capture(out: &mut [usize], evals: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        let own = (
            OWN[0].load(Ordering::Relaxed),
            OWN[1].load(Ordering::Relaxed),
        );
        let eval = (
            EVAL[0].load(Ordering::Relaxed),
            EVAL[1].load(Ordering::Relaxed),
        );
        if let super::fast_unwind::Walk::Done(n) = super::fast_unwind::walk(out, own, eval, evals) {
            return n;
        }
    }
    capture_with_libgcc(out, evals)
}

/// `capture` with libgcc's unwinder.
pub fn capture_with_libgcc(out: &mut [usize], evals: usize) -> usize {
    let mut w = Walk {
        out,
        n: 0,
        own: (
            OWN[0].load(Ordering::Relaxed),
            OWN[1].load(Ordering::Relaxed),
        ),
        eval: (
            EVAL[0].load(Ordering::Relaxed),
            EVAL[1].load(Ordering::Relaxed),
        ),
        in_own: true,
        evals: evals.max(1),
    };
    // SAFETY: `step` only reads the context it is given and writes into `w`.
    unsafe { _Unwind_Backtrace(step, (&raw mut w).cast()) };
    w.n
}

/// `RTLD_DL_SYMENT` of `dladdr1`: return the symbol's `Elf64_Sym`.
const RTLD_DL_SYMENT: c_int = 1;

use super::elf::Sym;

/// Find the address ranges the walk needs and build the fast walk's object list (once per
/// install).
pub fn prepare() {
    #[cfg(target_arch = "x86_64")]
    super::fast_unwind::prepare();
    let probe = prepare as *const () as usize;
    if let Some(range) = object_range(probe) {
        OWN[0].store(range.0, Ordering::Relaxed);
        OWN[1].store(range.1, Ordering::Relaxed);
    }
    // SAFETY: dlsym with a NUL-terminated name; RTLD_DEFAULT searches the global scope.
    let eval = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"_PyEval_EvalFrameDefault".as_ptr()) };
    if eval.is_null() {
        return;
    }
    let mut info: libc::Dl_info = libc::Dl_info {
        dli_fname: std::ptr::null(),
        dli_fbase: std::ptr::null_mut(),
        dli_sname: std::ptr::null(),
        dli_saddr: std::ptr::null_mut(),
    };
    let mut sym: *const Sym = std::ptr::null();
    // SAFETY: a query about a mapped address; `sym` receives a pointer into the object's
    // symbol table.
    let ok = unsafe {
        libc::dladdr1(
            eval,
            &raw mut info,
            (&raw mut sym).cast::<*mut c_void>(),
            RTLD_DL_SYMENT,
        )
    };
    if ok == 0 || sym.is_null() {
        return;
    }
    // SAFETY: `sym` points into the symbol table of a mapped object.
    let size = unsafe { (*sym).size } as usize;
    let start = eval as usize;
    EVAL[0].store(start, Ordering::Relaxed);
    EVAL[1].store(start + size.max(1), Ordering::Relaxed);
}

/// `[lowest, highest)` address of the loadable segments of the object holding `probe`.
fn object_range(probe: usize) -> Option<(usize, usize)> {
    struct Find {
        probe: usize,
        found: Option<(usize, usize)>,
    }
    unsafe extern "C" fn each(info: *mut libc::dl_phdr_info, _: usize, data: *mut c_void) -> c_int {
        // SAFETY: `data` is the `Find` below; `info` a valid descriptor from the loader.
        let (find, info) = unsafe { (&mut *data.cast::<Find>(), &*info) };
        if info.dlpi_phdr.is_null() {
            return 0;
        }
        // SAFETY: the loader gives `dlpi_phnum` program headers at `dlpi_phdr`.
        let phdrs =
            unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) };
        let base = info.dlpi_addr as usize;
        let (mut lo, mut hi, mut holds) = (usize::MAX, 0usize, false);
        for ph in phdrs.iter().filter(|p| p.p_type == libc::PT_LOAD) {
            let s = base.wrapping_add(ph.p_vaddr as usize);
            let e = s + ph.p_memsz as usize;
            lo = lo.min(s);
            hi = hi.max(e);
            holds |= find.probe >= s && find.probe < e;
        }
        if holds {
            find.found = Some((lo, hi));
            return 1;
        }
        0
    }
    let mut find = Find { probe, found: None };
    // SAFETY: the callback only reads the loader's descriptors.
    unsafe { libc::dl_iterate_phdr(Some(each), (&raw mut find).cast()) };
    find.found
}

#[cfg(test)]
mod tests {
    #[inline(never)]
    fn deeper(out: &mut [usize]) -> usize {
        std::hint::black_box(super::capture(out, usize::MAX))
    }

    /// The walk sees the test's own frames (no range is set up, so nothing is skipped).
    #[test]
    fn walks_this_threads_stack() {
        let mut out = [0usize; 32];
        let n = std::hint::black_box(super::capture_with_libgcc(&mut out, usize::MAX));
        assert!(n >= 3, "only {n} frames");
        let n = deeper(&mut out);
        assert!(n >= 3, "only {n} frames");
        assert!(out[..n]
            .iter()
            .all(|&ip| ip != 0 && ip & super::EVAL_MARK == 0));
        let mut two = [0usize; 2];
        assert_eq!(deeper(&mut two), 2);
    }
}
