//! The in-process recorder: PyMem allocator hooks, Python stack capture, the live table of
//! traced blocks and interned tracebacks. The only crate with real `unsafe`.
//!
//! Every public function needs the GIL and takes a [`Gil`] token to say so, except
//! [`traced_memory`], which any thread may call.

use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};

#[cfg(feature = "ablation")]
mod ablation;
mod codes;
mod domains;
mod drain;
mod filter;
mod fork;
mod hooks;
mod intern;
mod interp;
mod linetable;
mod monitor;
mod native;
mod newref;
mod pool_probe;
mod readout;
mod reftrace;
mod resolve;
mod sampling;
mod spin;
mod stack;
mod state;
mod stats;
mod table;

pub use drain::{drain_profile, drain_up_to, reset_drain};
pub use readout::{object_traceback, peak_traces, snapshot, traceback_at, PeakTrace};
pub use reftrace::take_warning;
pub use stack::SUPPORTED;

use state::{init_state, state, RawShared, CURRENT, PEAK, RAW};

/// Errors raised by the tracer.
#[derive(Debug, thiserror::Error)]
pub enum TrackerError {
    /// This Python's frame layout is not implemented.
    #[error("heapscope does not support Python {found}: supported versions are {supported}")]
    UnsupportedPython {
        /// The running version.
        found: String,
        /// The versions heapscope implements.
        supported: String,
    },
    /// The running interpreter's frames do not look like the layout heapscope expects.
    #[error("heapscope cannot read this Python's frames (layout check failed for {0}{1}): tracing disabled")]
    LayoutMismatch(&'static str, String),
    /// `--native` could not be set up; nothing of it is installed.
    #[error("heapscope cannot trace native allocations here: {0}")]
    NativeUnavailable(String),
    /// A traceback limit outside [1; 65535].
    #[error("the number of frames must be in range [1; 65535]")]
    InvalidLimit,
}

/// Proof that the caller holds the GIL.
#[derive(Clone, Copy)]
pub struct Gil(());

impl Gil {
    /// # Safety
    /// The calling thread holds the GIL for as long as the token is used.
    pub unsafe fn assume() -> Gil {
        Gil(())
    }
}

static LIMIT: AtomicU16 = AtomicU16::new(1);
static TRACING: AtomicBool = AtomicBool::new(false);

pub(crate) fn python_version_hex() -> u64 {
    // SAFETY: Py_GetVersion returns a static NUL-terminated string.
    let v = unsafe { std::ffi::CStr::from_ptr(pyo3_ffi::Py_GetVersion()) };
    let v = v.to_string_lossy();
    let mut parts = v
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse::<u64>().ok());
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major << 24) | (minor << 16)
}

/// How to trace.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Key tracebacks by thread too (for the profiler).
    pub by_thread: bool,
    /// Record one block per this many bytes on average, scaled to unbiased estimates
    /// (`None`: record every block).
    pub sample_rate: Option<u64>,
    /// Also trace what native code takes with the malloc family and `mmap` (`--native`).
    pub native: bool,
}

/// Start tracing with `limit` frames per traceback (`tracemalloc.start`). If already tracing,
/// only the limit and the sampling rate change, and native tracing starts if asked for (it is
/// never turned off before `stop`).
pub fn start(_gil: Gil, limit: u32, options: Options) -> Result<(), TrackerError> {
    let limit = u16::try_from(limit)
        .ok()
        .filter(|&l| l >= 1)
        .ok_or(TrackerError::InvalidLimit)?;
    let layout = stack::layout_for(python_version_hex())?;
    // SAFETY: the GIL is held (token); no state reference is alive.
    let st = unsafe { init_state(layout) };
    st.scratch.resize(
        usize::from(limit),
        stack::RawFrame {
            code: std::ptr::null_mut(),
            offset: 0,
        },
    );
    // The cached walk's frames were written under the old limit.
    st.walk_cache = stack::WalkCache::default();
    LIMIT.store(limit, Ordering::Relaxed);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0x9E37_79B9, |d| d.as_nanos() as u64);
    st.sampler = options
        .sample_rate
        .map(|rate| sampling::Sampler::new(rate, seed));
    let sampled = st.sampler.is_some();
    // SAFETY: GIL held; this is the tracer's GIL-domain table.
    unsafe { st.table.set_filtered(sampled) };
    if st.active {
        if hooks::installed_sampled() != sampled {
            // SAFETY: GIL held, hooks installed; swapped for the other mode's set.
            unsafe {
                hooks::uninstall();
                // Not direct: blocks traced so far may sit in pymalloc's pools, and their
                // frees must still reach a hook.
                hooks::install(sampled, false);
            }
            set_ref_tracer(!sampled);
            set_frame_cache(st, !sampled);
        } else if options.native && hooks::installed_direct() {
            // `--native`'s hooks tell Python's memory (pymalloc's arenas) by the nesting mark
            // of the PyMem hooks, which direct sampling leaves out for pool-sized blocks: the
            // ordinary sampling hooks, as a start with `--native` installs.
            // SAFETY: GIL held, hooks installed.
            unsafe {
                hooks::uninstall();
                hooks::install(sampled, false);
            }
        }
        if options.native && !native::native_on() {
            start_native(layout)?;
        }
        hooks::arm_direct(st);
        native::set_native_sample_rate(options.sample_rate.unwrap_or(0));
        return Ok(());
    }
    (layout.check)(python_version_hex())
        .map_err(|detail| TrackerError::LayoutMismatch(layout.name, format!(": {detail}")))?;
    check_layout(layout)?;
    // SAFETY: GIL held by the main interpreter (PyO3 imports heapscope nowhere else); the
    // layout was just checked.
    unsafe { interp::init(layout) };
    interp::init_311();
    // SAFETY: GIL held, hooks not installed yet: the probe's blocks are not traced.
    st.table
        .set_pooled(unsafe { pool_probe::pool_layout_holds() });
    *RAW.lock() = Some(RawShared::default());
    st.by_thread = options.by_thread;
    // Before the hooks: what sys.monitoring allocates for it is not traced.
    set_frame_cache(st, !sampled);
    st.active = true;
    fork::register();
    // SAFETY: GIL held, hooks not installed (active was false).
    unsafe {
        resolve::intern_names();
        codes::install();
        // Direct sampling leaves frees to pymalloc; not with `--native`, whose hooks tell
        // Python's memory by the PyMem hooks running underneath. HEAPSCOPE_SAMPLING_FREE_HOOK=1
        // keeps the free hook (to compare, or if the probe were ever fooled).
        let free_hook = std::env::var_os("HEAPSCOPE_SAMPLING_FREE_HOOK").is_some_and(|v| v == "1");
        hooks::install(sampled, !options.native && !free_hook);
    }
    hooks::arm_direct(st);
    set_ref_tracer(!sampled);
    TRACING.store(true, Ordering::Release);
    // What extensions report through PyTraceMalloc_Track reaches the tracer from now on.
    native::install();
    native::set_native_sample_rate(options.sample_rate.unwrap_or(0));
    if options.native {
        if let Err(e) = start_native(layout) {
            stop(Gil(()));
            return Err(e);
        }
    }
    Ok(())
}

/// `--native`: trace the malloc family and `mmap` of every loaded object.
fn start_native(layout: &'static stack::FrameLayout) -> Result<(), TrackerError> {
    if !cfg!(all(
        target_os = "linux",
        target_env = "gnu",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )) {
        return Err(TrackerError::NativeUnavailable(
            "only Linux (glibc) on x86-64 and aarch64 is supported".into(),
        ));
    }
    if native::install_malloc(layout) == 0 {
        native::uninstall_malloc();
        return Err(TrackerError::NativeUnavailable(
            "no loaded object's malloc could be redirected".into(),
        ));
    }
    Ok(())
}

/// Install (full tracing) or remove (sampling, stop) what re-attributes objects reused from
/// free lists: the reference tracer on 3.13+ (`reftrace.rs`), the redirected
/// `_Py_NewReference` on 3.11 (`newref.rs`); each is a no-op on the other versions.
fn set_ref_tracer(on: bool) {
    // SAFETY: the callers hold the GIL (a `Gil` token).
    unsafe {
        if on {
            reftrace::install();
            newref::install();
        } else {
            reftrace::uninstall();
            newref::uninstall();
        }
    }
}

/// Count Python function starts for the stack-walk cache (full tracing on 3.13+,
/// `monitor.rs`), or stop counting; heapscope's own allocations for it are not traced.
fn set_frame_cache(st: &mut state::State, on: bool) {
    let suspended = std::mem::replace(&mut st.suspended, true);
    // SAFETY: the callers hold the GIL (a `Gil` token).
    unsafe {
        if on {
            monitor::install();
        } else {
            monitor::uninstall();
        }
    }
    st.suspended = suspended;
    st.walk_cache = stack::WalkCache::default();
    st.capture_cached = if on && monitor::verifying() {
        st.layout.capture_cached_checked
    } else {
        st.layout.capture_cached
    };
}

/// Compare what the stack walk sees with what the interpreter reports for the caller's frame.
fn check_layout(layout: &'static stack::FrameLayout) -> Result<(), TrackerError> {
    let mut out = [stack::RawFrame {
        code: std::ptr::null_mut(),
        offset: 0,
    }; 1];
    // SAFETY: GIL held: the current thread state is ours.
    let captured = unsafe { (layout.capture)(state::current_tstate(), &mut out, std::ptr::null()) };
    // SAFETY: GIL held; PyEval_GetFrame returns a borrowed frame or NULL.
    let frame = unsafe { pyo3_ffi::PyEval_GetFrame() };
    if frame.is_null() {
        return if captured.nframe == 0 {
            Ok(())
        } else {
            Err(TrackerError::LayoutMismatch(layout.name, String::new()))
        };
    }
    // SAFETY: live frame; PyFrame_GetCode returns a new reference we release.
    let code = unsafe { pyo3_ffi::PyFrame_GetCode(frame) };
    let ok = captured.nframe == 1 && out[0].code == code.cast();
    // SAFETY: releasing the reference taken above.
    unsafe { pyo3_ffi::Py_DECREF(code.cast()) };
    if ok {
        Ok(())
    } else {
        Err(TrackerError::LayoutMismatch(layout.name, String::new()))
    }
}

/// Stop tracing and forget every trace (`tracemalloc.stop`).
pub fn stop(_gil: Gil) {
    // SAFETY: GIL held; the reference ends with the block.
    match unsafe { state() } {
        Some(st) if st.active => {
            native::uninstall_malloc();
            native::set_native_floor(0);
            native::uninstall();
            // SAFETY: GIL held, hooks installed.
            unsafe {
                hooks::uninstall();
                codes::uninstall();
            }
            set_ref_tracer(false);
            set_frame_cache(st, false);
            st.active = false;
            st.floor = 0;
            // The threads ignored were this session's helpers: a new session registers its
            // own, and a thread state freed since may be reused by one of the program's.
            st.ignored = [0; 4];
            TRACING.store(false, Ordering::Release);
            st.clear();
        }
        _ => return,
    }
    *RAW.lock() = None;
    forget_resolved();
}

fn forget_resolved() {
    // SAFETY: GIL held by the callers; no other resolver reference alive.
    unsafe { resolve::resolver().clear() };
}

/// Number of GOT slots of loaded objects pointing at heapscope's `PyTraceMalloc_Track` family
/// and `dlopen`/`dlclose` replacements (0 when not tracing).
pub fn interposed_slots() -> usize {
    native::patched_slots()
}

/// True if tracing samples with pymalloc's own frees on MEM/OBJ (`hooks/direct.rs`).
pub fn sampling_direct() -> bool {
    TRACING.load(Ordering::Acquire) && hooks::installed_direct()
}

/// Number of GOT slots redirected to the `--native` malloc-family hooks (0 when off).
pub fn native_slots() -> usize {
    native::malloc_slots()
}

/// True while native allocations are traced (`--native`).
pub fn native_tracing() -> bool {
    native::native_on()
}

/// True while tracing.
pub fn is_tracing() -> bool {
    TRACING.load(Ordering::Acquire)
}

/// The traceback limit (the last one `start` was given; 1 before any).
pub fn traceback_limit() -> u32 {
    u32::from(LIMIT.load(Ordering::Relaxed))
}

/// Forget every trace but keep tracing (`tracemalloc.clear_traces`).
pub fn clear_traces(_gil: Gil) {
    // SAFETY: GIL held; the reference ends with the block.
    match unsafe { state() } {
        Some(st) if st.active => st.clear(),
        _ => return,
    }
    forget_resolved();
}

/// (current, peak) traced bytes, from any thread; RAW frees made without the GIL since the
/// last GIL-holding event are not counted yet.
pub fn traced_memory() -> (u64, u64) {
    if !is_tracing() {
        return (0, 0);
    }
    (
        CURRENT.load(Ordering::Relaxed),
        PEAK.load(Ordering::Relaxed),
    )
}

/// (current, peak) traced bytes, exact (`tracemalloc.get_traced_memory`).
pub fn traced_memory_exact(_gil: Gil) -> (u64, u64) {
    // SAFETY: GIL held.
    match unsafe { state() } {
        Some(st) if st.active => {
            st.apply_pending();
            (st.stats.current, st.stats.peak)
        }
        _ => (0, 0),
    }
}

/// Set the peak to the current traced memory (`tracemalloc.reset_peak`).
pub fn reset_peak(_gil: Gil) {
    // SAFETY: GIL held.
    if let Some(st) = unsafe { state() } {
        if st.active {
            st.apply_pending();
            st.stats.reset_peak();
            st.publish();
        }
    }
}

/// Bytes of memory the tracer uses (`tracemalloc.get_tracemalloc_memory`): the live table,
/// the interned stacks, the counters, the resolved names and the profiler's bookkeeping.
pub fn tracer_memory(gil: Gil) -> usize {
    tracer_memory_parts(gil).iter().map(|&(_, b)| b).sum()
}

/// (tracebacks, frame tree nodes, tracebacks distinct without their total depth, profile
/// stacks): the shape of what the tracer holds, for measurements.
pub fn tracer_shape(gil: Gil) -> (usize, usize, usize, usize) {
    // SAFETY: GIL held; the reference ends with the statement.
    let (t, n, d) = unsafe { state() }.map_or((0, 0, 0), |st| st.interner.shape());
    (t, n, d, drain::stack_count(gil))
}

/// (traceback slots, frame tree node slots): what the interner's vectors hold, slots freed by
/// the profiler's sweep included (they are reused), for measurements.
pub fn tracer_slots(_gil: Gil) -> (usize, usize) {
    // SAFETY: GIL held; the reference ends with the statement.
    unsafe { state() }.map_or((0, 0), |st| (st.interner.len(), st.interner.node_slots()))
}

/// [`tracer_memory`] per structure (name, bytes): what the figure is made of.
pub fn tracer_memory_parts(gil: Gil) -> Vec<(&'static str, usize)> {
    let mut parts = Vec::new();
    // SAFETY: GIL held; the reference ends with the statement.
    if let Some(st) = unsafe { state() } {
        st.memory_parts(&mut parts);
    }
    // SAFETY: GIL held, no other resolver reference alive.
    unsafe { resolve::resolver() }.memory_parts(&mut parts);
    drain::drain_memory_parts(gil, &mut parts);
    parts
}

/// Tracebacks interned since the profiler's last drain swept the tracer.
pub fn new_tracebacks_since_sweep(_gil: Gil) -> usize {
    // SAFETY: GIL held; the reference ends here.
    unsafe { state() }.map_or(0, |st| st.new_since_sweep)
}

/// How many shared objects this process read to name native frames.
pub fn objects_symbolized(_gil: Gil) -> usize {
    // SAFETY: GIL held; no other resolver reference is alive.
    unsafe { resolve::resolver() }.objects_symbolized()
}

/// Number of live traced blocks.
pub fn trace_count(_gil: Gil) -> usize {
    let raw = RAW
        .lock()
        .as_ref()
        .map_or(0, |r| r.table.len() + r.domains.len());
    // SAFETY: GIL held.
    unsafe { state() }.map_or(0, |st| st.table.len()) + raw
}

/// Run `f` with the calling thread's allocations untraced (unless they already are), as the
/// stdlib builds a snapshot's raw data (`_tracemalloc._get_traces` sets its reentrancy flag):
/// the tuples a snapshot hands to Python are not the program's.
pub fn untraced<T>(gil: Gil, f: impl FnOnce() -> T) -> T {
    struct Restore(Gil);
    impl Drop for Restore {
        fn drop(&mut self) {
            set_thread_ignored(self.0, false);
        }
    }
    // SAFETY: GIL held; the reference ends here.
    let already = unsafe { state() }.is_none_or(|st| st.ignores(state::current_tstate()));
    if already {
        return f();
    }
    set_thread_ignored(gil, true);
    let _restore = Restore(gil);
    f()
}

/// Stop or resume tracing the calling thread's allocations (its frees are always traced).
pub fn set_thread_ignored(_gil: Gil, ignored: bool) {
    // SAFETY: GIL held.
    let (Some(st), tstate) = (unsafe { state() }, state::current_tstate() as usize) else {
        return;
    };
    if ignored {
        if let Some(slot) = st.ignored.iter_mut().find(|s| **s == 0 || **s == tstate) {
            *slot = tstate;
        }
    } else if let Some(slot) = st.ignored.iter_mut().find(|s| **s == tstate) {
        *slot = 0;
    }
    st.ignored.sort_unstable_by(|a, b| b.cmp(a));
}
pub mod recorder;

/// The sampling rate in force, if sampling.
pub fn sample_rate(_gil: Gil) -> Option<u64> {
    // SAFETY: GIL held.
    unsafe { state() }.and_then(|st| st.sampler.as_ref().map(sampling::Sampler::rate))
}

/// (blocks, bytes) allocated since start or `clear_traces` (sampled figures when sampling).
pub fn allocation_totals(_gil: Gil) -> (u64, u64) {
    // SAFETY: GIL held.
    unsafe { state() }.map_or((0, 0), |st| (st.stats.total_count, st.stats.total_bytes))
}

/// The RESUME-family opcodes the stack-walk cache knows for the running interpreter (empty:
/// no cache on this version); the tests compare them with `opcode`.
pub fn frame_cache_resume_opcodes() -> Vec<u8> {
    monitor::resume_opcodes(python_version_hex()).to_vec()
}

/// Stack-walk cache hits checked against a full walk, and those that disagreed (both 0 unless
/// `HEAPSCOPE_VERIFY_FRAME_CACHE=1` when tracing started; 3.13+).
pub fn frame_cache_checks() -> (u64, u64) {
    monitor::checked()
}

/// Make the calling thread's current Python frame the floor of stack walks: it and the frames
/// below it (a runner's) are left out of tracebacks. `false` clears the floor; it must be
/// cleared before that frame returns (its memory is reused by later frames).
pub fn set_stack_floor(_gil: Gil, on: bool) {
    // SAFETY: GIL held.
    if let Some(st) = unsafe { state() } {
        let frame = if on {
            // SAFETY: GIL held: the current thread state is ours.
            unsafe { (st.layout.current_frame)(state::current_tstate()) as usize }
        } else {
            0
        };
        st.floor = frame;
        native::set_native_floor(frame);
    }
}

/// Mismatches between heapscope's location-table reader and `PyCode_Addr2Line` over the first
/// `code_bytes` bytes of instructions of `code` (`None`: the table could not be read).
///
/// # Safety
/// `code` is a live code object.
pub unsafe fn check_line_table(
    _gil: Gil,
    code: *mut std::ffi::c_void,
    code_bytes: usize,
) -> Option<usize> {
    // SAFETY: GIL held (token), per the contract.
    unsafe {
        resolve::intern_names();
        resolve::check_lines(code, code_bytes)
    }
}
