//! Native stack capture for `--native`: the return addresses of the C frames between an
//! allocation and the innermost Python frame, from the DWARF CFI (so code built without frame
//! pointers unwinds too): framehop with cached rules on x86-64 (`fast_unwind.rs`), libgcc's
//! `_Unwind_Backtrace` otherwise and whenever the fast walk cannot answer. No allocation, no
//! wait on a lock: it runs inside the malloc hooks. Symbols are looked up only when a
//! traceback is read (`symbols.rs`).
//!
//! The walk skips heapscope's own frames (the hook) and marks with `journal::EVAL_MARK` the C
//! frame of each interpreter invocation, found by its stack range: it holds the address the
//! stack reader gave for that invocation (a local variable of `_PyEval_EvalFrameDefault`,
//! see `FrameLayout::capture_segments`), so no symbol of the interpreter is needed. The
//! Python frames of that invocation go there (`journal.rs`). The walk stops once every
//! invocation asked for is found; a thread with no Python frame (a thread C code started)
//! keeps its whole native stack, up to the buffer's length.

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
    fn _Unwind_GetCFA(ctx: *mut UnwindContext) -> usize;
}

/// `_URC_NO_REASON`: go on.
const URC_NO_REASON: c_int = 0;
/// `_URC_NORMAL_STOP`: stop the walk.
const URC_NORMAL_STOP: c_int = 4;

/// `[start, end)` of heapscope's own module, found at install time.
static OWN: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];

struct Walk<'a> {
    out: &'a mut [usize],
    n: usize,
    own: (usize, usize),
    /// Still inside heapscope's frames at the top of the stack.
    in_own: bool,
    /// Stack addresses of the interpreter invocations not found yet, innermost first.
    bounds: &'a [usize],
}

/// Mark the frame just written if its stack range (up to `top`, its CFA) holds the next
/// invocation's address; one more marked copy for each further one it holds. Returns false
/// when every invocation was found (the walk can stop).
pub(super) fn mark_invocations(
    out: &mut [usize],
    n: &mut usize,
    bounds: &mut &[usize],
    top: usize,
) -> bool {
    let mut first = true;
    while let Some((&b, rest)) = bounds.split_first() {
        if b == 0 || b >= top || *n == 0 {
            break;
        }
        if first {
            out[*n - 1] |= EVAL_MARK;
            first = false;
        } else if *n < out.len() {
            out[*n] = out[*n - 1];
            *n += 1;
        }
        *bounds = rest;
    }
    !bounds.is_empty() || first
}

extern "C" fn step(ctx: *mut UnwindContext, arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Walk` passed to `_Unwind_Backtrace` by `capture`, alive for the
    // whole walk and touched by no one else.
    let w = unsafe { &mut *arg.cast::<Walk<'_>>() };
    // SAFETY: `ctx` is the context the unwinder hands its callback.
    let (ip, cfa) = unsafe { (_Unwind_GetIP(ctx), _Unwind_GetCFA(ctx)) };
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
    w.out[w.n] = ip;
    w.n += 1;
    if !mark_invocations(w.out, &mut w.n, &mut w.bounds, cfa) {
        return URC_NORMAL_STOP;
    }
    URC_NO_REASON
}

/// Write the return addresses of the calling thread's native frames, innermost first, into
/// `out`, up to the C frame of the interpreter invocation that holds the last of `bounds`
/// (the whole stack if `bounds` is empty); returns how many were written.
pub fn capture(out: &mut [usize], bounds: &[usize]) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        let own = (
            OWN[0].load(Ordering::Relaxed),
            OWN[1].load(Ordering::Relaxed),
        );
        // gimli panics on some CFI it cannot hold (a CI run on 3.14: "index out of bounds: the
        // len is 192 but the index is 1371" in the test that loads libraries while threads
        // allocate); in an allocator hook that aborted the program. Such a walk is redone by
        // libgcc's unwinder instead.
        let fast = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            super::fast_unwind::walk(out, own, bounds)
        }));
        if let Ok(super::fast_unwind::Walk::Done(n)) = fast {
            return n;
        }
    }
    capture_with_libgcc(out, bounds)
}

/// `capture` with libgcc's unwinder.
pub fn capture_with_libgcc(out: &mut [usize], bounds: &[usize]) -> usize {
    let mut w = Walk {
        out,
        n: 0,
        own: (
            OWN[0].load(Ordering::Relaxed),
            OWN[1].load(Ordering::Relaxed),
        ),
        in_own: true,
        bounds,
    };
    // SAFETY: `step` only reads the context it is given and writes into `w`.
    unsafe { _Unwind_Backtrace(step, (&raw mut w).cast()) };
    w.n
}

/// Find heapscope's own address range and build the fast walk's object list (once per
/// install).
pub fn prepare() {
    #[cfg(target_arch = "x86_64")]
    super::fast_unwind::prepare();
    let probe = prepare as *const () as usize;
    if let Some(range) = object_range(probe) {
        OWN[0].store(range.0, Ordering::Relaxed);
        OWN[1].store(range.1, Ordering::Relaxed);
    }
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
        std::hint::black_box(super::capture(out, &[]))
    }

    /// The walk sees the test's own frames (no range is set up, so nothing is skipped).
    #[test]
    fn walks_this_threads_stack() {
        let mut out = [0usize; 32];
        let n = std::hint::black_box(super::capture_with_libgcc(&mut out, &[]));
        assert!(n >= 3, "only {n} frames");
        let n = deeper(&mut out);
        assert!(n >= 3, "only {n} frames");
        assert!(out[..n]
            .iter()
            .all(|&ip| ip != 0 && ip & super::EVAL_MARK == 0));
        let mut two = [0usize; 2];
        assert_eq!(deeper(&mut two), 2);
    }

    /// A frame holding an invocation's address is marked (a copy per further address it
    /// holds); the walk may stop once the last one is found.
    #[test]
    fn frames_holding_invocations_are_marked() {
        use super::{mark_invocations, EVAL_MARK};
        let mut out = [0usize; 8];
        let mut bounds: &[usize] = &[150, 420, 430];
        let mut n = 1;
        out[0] = 0xa;
        // Frame 0 spans up to 100: holds none.
        assert!(mark_invocations(&mut out, &mut n, &mut bounds, 100));
        out[1] = 0xb;
        n = 2;
        assert!(mark_invocations(&mut out, &mut n, &mut bounds, 200));
        assert_eq!(out[1], 0xb | EVAL_MARK);
        out[2] = 0xc;
        n = 3;
        // Two in one frame (not seen in practice): two marked entries, and done.
        assert!(!mark_invocations(&mut out, &mut n, &mut bounds, 500));
        assert_eq!(
            &out[..n],
            &[0xa, 0xb | EVAL_MARK, 0xc | EVAL_MARK, 0xc | EVAL_MARK]
        );
        assert!(bounds.is_empty());
        // Nothing asked for: never stops.
        assert!(mark_invocations(&mut out, &mut n, &mut bounds, 900));
    }
}
