//! The fast native stack walk of `--native` (x86-64): framehop's DWARF CFI unwinder over the
//! loaded objects' `.eh_frame`, read in place, with its cache of unwind rules per return
//! address. libgcc's `_Unwind_Backtrace` (the fallback in `unwind.rs`) finds and decodes the
//! FDE of every frame on every walk, about 0.2 us a frame; a cached rule is one hash probe.
//!
//! One unwinder and its caches, behind a spinlock that the hooks only *try*: a thread that
//! finds it taken (another thread walking, or the object list being changed) walks with libgcc
//! instead, so no hook ever waits. The walk allocates nothing (framehop's
//! `MustNotAllocateDuringUnwind`). While any thread is in `dlopen`/`dlclose` (`LOADING`), every
//! walk takes the fallback, so none reads the unwind tables of an object being mapped or
//! unmapped or trusts a stale object list; the list is read from the loader *before* the lock
//! is taken to apply it, so the lock is never held while waiting for the loader's lock (a
//! constructor that calls `dlopen` inside another thread's `dlopen` cannot deadlock with it).
//! A return address outside every known object (code loaded by other means, a JIT) makes the
//! walk start over with libgcc.

use std::cell::Cell;
use std::ffi::{c_int, c_void, CStr};
use std::ops::{Deref, Range};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use framehop::x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64};
use framehop::{ExplicitModuleSectionInfo, FrameAddress, MustNotAllocateDuringUnwind, Unwinder};

use crate::spin::SpinLock;

/// Bytes of a loaded object's mapped unwind tables, read in place.
pub struct Mapped {
    ptr: *const u8,
    len: usize,
}

// SAFETY: the bytes are read-only mappings of a loaded object; an object's tables are dropped
// from the unwinder (under the lock) before any walk could see its unmapped memory.
unsafe impl Send for Mapped {}
// SAFETY: as above: shared reads of immutable bytes.
unsafe impl Sync for Mapped {}

impl Default for Mapped {
    fn default() -> Self {
        Mapped {
            ptr: std::ptr::NonNull::dangling().as_ptr(),
            len: 0,
        }
    }
}

impl Deref for Mapped {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr..ptr+len` lies in a PT_LOAD segment of a loaded object (see `Mapped`).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

type Unw = UnwinderX86_64<Mapped, MustNotAllocateDuringUnwind>;
type Cache = CacheX86_64<MustNotAllocateDuringUnwind>;

/// framehop's cache is direct-mapped (509 rules by address modulo 509): a program that calls
/// malloc from more return addresses evicts rules it needs again on every walk (a quarter of
/// the lookups missed on a numpy workload). Several caches, picked by other address bits,
/// keep colliding addresses apart.
const CACHES: usize = 8;

struct Fast {
    unwinder: Unw,
    caches: Box<[Cache; CACHES]>,
    /// `[start, end)` of every object given to the unwinder, sorted.
    ranges: Vec<Range<u64>>,
}

static FAST: SpinLock<Option<Fast>> = SpinLock::new(None);
/// Set in a forked child if another thread held the lock at `fork()`: its state may be half
/// updated, so the child walks with libgcc only.
static BROKEN: AtomicBool = AtomicBool::new(false);
/// Threads inside `dlopen`/`dlclose` (`loading`).
static LOADING: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// `[lowest, highest)` address of the calling thread's stack (0, 0: not asked yet).
    static STACK: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// The calling thread's stack range, asked of libc once per thread. A walk reads only there:
/// a wrong rule (framehop falls back to the frame pointer where an object has no CFI for an
/// address, and optimised C code uses rbp as a plain register) must not read past the stack's
/// top into whatever is mapped above it (a C thread's stack is an mmap among others, and the
/// old bound, 1 GiB above sp, reached far past it). `None` when libc cannot say or the walk is
/// on another stack (a signal's alternate stack): that walk is left to libgcc.
fn stack_range(sp: u64) -> Option<(u64, u64)> {
    let (lo, hi) = STACK.get();
    if sp >= lo && sp < hi {
        return Some((lo, hi));
    }
    if hi != 0 {
        return None;
    }
    let mut attr = std::mem::MaybeUninit::<libc::pthread_attr_t>::uninit();
    // SAFETY: fills `attr` for the calling thread (its own malloc passes through the hooks:
    // the walk runs with the recording guard set); destroyed below once read.
    if unsafe { libc::pthread_getattr_np(libc::pthread_self(), attr.as_mut_ptr()) } != 0 {
        return None;
    }
    let (mut addr, mut size) = (std::ptr::null_mut::<c_void>(), 0usize);
    // SAFETY: `attr` was initialised by `pthread_getattr_np` just above.
    let rc = unsafe { libc::pthread_attr_getstack(attr.as_ptr(), &raw mut addr, &raw mut size) };
    // SAFETY: as above; destroyed once.
    unsafe { libc::pthread_attr_destroy(attr.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    let lo = addr as u64;
    let hi = lo.saturating_add(size as u64);
    STACK.set((lo, hi));
    (sp >= lo && sp < hi).then_some((lo, hi))
}

/// What a walk found.
pub enum Walk {
    /// Frames written.
    Done(usize),
    /// The lock was taken or an address was outside every known object: walk another way.
    Fallback,
}

/// Build the unwinder over the objects loaded now (once per `--native` start).
pub fn prepare() {
    if BROKEN.load(Ordering::Relaxed) {
        return;
    }
    let mut fast = Fast {
        unwinder: Unw::new(),
        caches: Box::new(std::array::from_fn(|_| Cache::new_in())),
        ranges: Vec::new(),
    };
    apply(&mut fast, loaded_objects());
    *FAST.lock() = Some(fast);
}

/// Run the loader (`dlopen`, `dlclose` and the GOT rescan after them) with the walks on the
/// fallback, then bring the object list up to date.
pub fn loading<R>(f: impl FnOnce() -> R) -> R {
    LOADING.fetch_add(1, Ordering::SeqCst);
    let r = f();
    if !BROKEN.load(Ordering::Relaxed) {
        let now = loaded_objects();
        if let Some(fast) = FAST.lock().as_mut() {
            apply(fast, now);
        }
    }
    LOADING.fetch_sub(1, Ordering::SeqCst);
    r
}

/// In a forked child (one thread): keep the fast walk only if no thread held it at `fork()`.
pub fn after_fork_in_child() {
    if FAST.is_locked() {
        BROKEN.store(true, Ordering::Relaxed);
        // SAFETY: the child's only thread never took this lock; the state it guards is never
        // read again (taken out and leaked below), only the flag is reset.
        unsafe { FAST.force_unlock() };
        // A walk may have stopped halfway through a cache (gimli's context mid-update): no
        // walk may see it (walks find `None` and take libgcc's), and dropping it could free
        // what a half-done update left inconsistent.
        std::mem::forget(FAST.lock().take());
    }
    LOADING.store(0, Ordering::Relaxed);
}

/// Walk the calling thread's stack from the registers of this function. Frames inside `own`
/// at the top are skipped; the frames holding `bounds` (interpreter invocations) are marked,
/// and the walk stops at the last of them (see `unwind::capture`).
#[inline(never)]
pub fn walk(out: &mut [usize], own: (usize, usize), mut bounds: &[usize]) -> Walk {
    let (ip, sp, bp): (u64, u64, u64);
    // SAFETY: reads three registers; touches no memory and no stack.
    unsafe {
        std::arch::asm!(
            "lea {ip}, [rip]",
            "mov {sp}, rsp",
            "mov {bp}, rbp",
            ip = out(reg) ip,
            sp = out(reg) sp,
            bp = out(reg) bp,
            options(nomem, nostack, preserves_flags),
        );
    }
    if LOADING.load(Ordering::Acquire) != 0 {
        return Walk::Fallback;
    }
    let Some((_, stack_top)) = stack_range(sp) else {
        return Walk::Fallback;
    };
    let Some(mut guard) = FAST.try_lock() else {
        return Walk::Fallback;
    };
    let Some(fast) = guard.as_mut() else {
        return Walk::Fallback;
    };
    let mut read = |addr: u64| -> Result<u64, ()> {
        if addr < sp || addr >= stack_top || addr % 8 != 0 {
            return Err(());
        }
        // SAFETY: an aligned word of this thread's stack, between the walk's own frame and
        // the stack's top: mapped, and the callers' frames there are live during the walk.
        Ok(unsafe { (addr as *const u64).read() })
    };
    let mut regs = UnwindRegsX86_64::new(ip, sp, bp);
    let mut n = 0usize;
    let mut frame = FrameAddress::from_instruction_pointer(ip);
    loop {
        let addr = frame.address() as usize;
        let own_frame = n == 0 && addr >= own.0 && addr < own.1;
        if !own_frame {
            if n == out.len() {
                return Walk::Done(n);
            }
            if !known(&fast.ranges, addr as u64) {
                return Walk::Fallback;
            }
            out[n] = addr;
            n += 1;
        }
        let lookup = frame.address_for_lookup();
        let cache = &mut fast.caches[(lookup >> 9 ^ lookup >> 3) as usize % CACHES];
        frame = match fast
            .unwinder
            .unwind_frame(frame, &mut regs, cache, &mut read)
        {
            Ok(Some(ra)) => match FrameAddress::from_return_address(ra) {
                Some(f) => f,
                None => return Walk::Done(n),
            },
            Ok(None) | Err(_) => return Walk::Done(n),
        };
        // The caller's stack pointer is the top of the frame just unwound.
        if !own_frame
            && !super::unwind::mark_invocations(out, &mut n, &mut bounds, regs.sp() as usize)
        {
            return Walk::Done(n);
        }
    }
}

fn known(ranges: &[Range<u64>], addr: u64) -> bool {
    let i = ranges.partition_point(|r| r.start <= addr);
    i > 0 && addr < ranges[i - 1].end
}

/// One loaded object's unwind facts, read from its program headers.
struct Object {
    name: String,
    range: Range<u64>,
    base: u64,
    hdr: Range<u64>,
    eh_frame: Range<u64>,
}

/// Add the objects of `now` (the loaded objects) not known yet, drop those no longer loaded.
fn apply(fast: &mut Fast, now: Vec<Object>) {
    for old in fast.ranges.clone() {
        if !now.iter().any(|o| o.range == old) {
            fast.unwinder.remove_module(old.start);
        }
    }
    fast.ranges.retain(|r| now.iter().any(|o| o.range == *r));
    for o in now {
        if fast.ranges.contains(&o.range) {
            continue;
        }
        let base = o.base;
        let svma = |r: &Range<u64>| r.start - base..r.end - base;
        let info = ExplicitModuleSectionInfo {
            base_svma: 0,
            eh_frame_hdr_svma: Some(svma(&o.hdr)),
            eh_frame_hdr: Some(Mapped {
                ptr: o.hdr.start as *const u8,
                len: (o.hdr.end - o.hdr.start) as usize,
            }),
            eh_frame_svma: Some(svma(&o.eh_frame)),
            eh_frame: Some(Mapped {
                ptr: o.eh_frame.start as *const u8,
                len: (o.eh_frame.end - o.eh_frame.start) as usize,
            }),
            ..Default::default()
        };
        let module = framehop::Module::new(o.name, o.range.clone(), base, info);
        fast.unwinder.add_module(module);
        fast.ranges.push(o.range);
    }
    fast.ranges.sort_by_key(|r| r.start);
}

/// The objects mapped now that have `.eh_frame_hdr` with a usable `.eh_frame` pointer.
fn loaded_objects() -> Vec<Object> {
    struct Found {
        objects: Vec<Object>,
    }
    unsafe extern "C" fn each(info: *mut libc::dl_phdr_info, _: usize, data: *mut c_void) -> c_int {
        // SAFETY: `data` is the `Found` below; `info` a valid descriptor from the loader.
        let (found, info) = unsafe { (&mut *data.cast::<Found>(), &*info) };
        // SAFETY: as above.
        if let Some(o) = unsafe { object(info) } {
            found.objects.push(o);
        }
        0
    }
    let mut found = Found {
        objects: Vec::with_capacity(256),
    };
    // SAFETY: the callback only reads the loader's descriptors.
    unsafe { libc::dl_iterate_phdr(Some(each), (&raw mut found).cast()) };
    found.objects
}

/// # Safety
/// `info` is a descriptor the loader passed to a `dl_iterate_phdr` callback.
unsafe fn object(info: &libc::dl_phdr_info) -> Option<Object> {
    if info.dlpi_phdr.is_null() {
        return None;
    }
    // SAFETY: the loader gives `dlpi_phnum` program headers at `dlpi_phdr`.
    let phdrs = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) };
    let base = info.dlpi_addr;
    let loads: Vec<Range<u64>> = phdrs
        .iter()
        .filter(|p| p.p_type == libc::PT_LOAD)
        .map(|p| base + p.p_vaddr..base + p.p_vaddr + p.p_memsz)
        .collect();
    let lo = loads.iter().map(|r| r.start).min()?;
    let hi = loads.iter().map(|r| r.end).max()?;
    let hdr_ph = phdrs.iter().find(|p| p.p_type == libc::PT_GNU_EH_FRAME)?;
    let hdr = base + hdr_ph.p_vaddr..base + hdr_ph.p_vaddr + hdr_ph.p_memsz;
    if hdr.end - hdr.start < 8 {
        return None;
    }
    // SAFETY: the header lies in a mapped, readable segment of the object.
    let eh_frame = unsafe { eh_frame_start(hdr.start) }?;
    let seg = loads.iter().find(|r| r.contains(&eh_frame))?;
    let name = if info.dlpi_name.is_null() {
        String::new()
    } else {
        // SAFETY: the loader's NUL-terminated name of a mapped object.
        unsafe { CStr::from_ptr(info.dlpi_name) }
            .to_string_lossy()
            .into_owned()
    };
    Some(Object {
        name,
        range: lo..hi,
        base,
        hdr,
        eh_frame: eh_frame..seg.end,
    })
}

/// `.eh_frame`'s address from `.eh_frame_hdr`'s `eh_frame_ptr` (LSB Core, "eh_frame_hdr").
///
/// # Safety
/// `hdr` is the mapped start of an `.eh_frame_hdr` of at least 8 bytes.
unsafe fn eh_frame_start(hdr: u64) -> Option<u64> {
    const PCREL: u8 = 0x10;
    let p = hdr as *const u8;
    // SAFETY: per the contract, the first bytes are mapped.
    let (version, enc) = unsafe { (p.read(), p.add(1).read()) };
    if version != 1 {
        return None;
    }
    let field = hdr + 4;
    // SAFETY: as above: a 4- or 8-byte field follows the 4-byte preamble (the caller checked 8).
    let value = unsafe {
        match enc & 0x0f {
            0x03 => u64::from((field as *const u32).read_unaligned()),
            0x0b => i64::from((field as *const i32).read_unaligned()) as u64,
            0x00 | 0x04 | 0x0c => (field as *const u64).read_unaligned(),
            _ => return None,
        }
    };
    match enc & 0x70 {
        0 => Some(value),
        PCREL => Some(field.wrapping_add(value)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn deeper(out: &mut [usize]) -> Walk {
        std::hint::black_box(walk(out, (0, 0), &[]))
    }

    #[test]
    fn walks_like_libgcc() {
        prepare();
        let mut fast = [0usize; 12];
        let Walk::Done(n) = deeper(&mut fast) else {
            panic!("fell back");
        };
        assert!(n >= 4, "only {n} frames");
        let mut slow = [0usize; 16];
        let m = super::super::unwind::capture_with_libgcc(&mut slow, &[]);
        // The walks start from different calls in this test; from the test's caller on, the
        // stack is the same.
        let at = slow[..m]
            .iter()
            .position(|&a| a == fast[3])
            .expect("common frame");
        let k = (n - 3).min(m - at);
        assert!(k >= 1);
        assert_eq!(&fast[3..3 + k], &slow[at..at + k]);
    }
}
