//! Python stack capture behind one small interface, one module per CPython frame layout.
//!
//! The allocation hook records, per frame, the code object and the byte offset of the current
//! instruction: no line numbers, no Python calls, no allocation. Lines are resolved later, when
//! a traceback is read (see `resolve.rs`).

use std::ffi::c_void;

use crate::TrackerError;

mod py311;
mod py313;
mod py314;
mod py315;
mod since313;

/// One captured frame: a code object (borrowed: when it dies, interned copies become
/// tombstones, see `codes.rs`) and the byte offset of the instruction the frame was executing,
/// as `PyCode_Addr2Line` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct RawFrame {
    /// `PyCodeObject*`.
    pub code: *mut c_void,
    /// Byte offset into the code's instructions.
    pub offset: isize,
}

impl RawFrame {
    /// Stands for a stack with no Python frame at all (an allocation made by the interpreter
    /// outside any frame). It resolves to tracemalloc's `<unknown>:0`, as the stdlib's empty
    /// traceback does.
    pub const UNKNOWN: RawFrame = RawFrame {
        code: std::ptr::null_mut(),
        offset: 0,
    };

    /// A frame whose code object died (see `codes.rs`): an odd word no object address can be,
    /// naming entry `index` of the resolver's dead code objects, and the frame's line.
    pub fn dead(index: u32, line: i32) -> RawFrame {
        RawFrame {
            code: ((index as usize) << 1 | 1) as *mut c_void,
            offset: line as isize,
        }
    }

    /// True for a tombstone made by [`RawFrame::dead`].
    #[inline]
    pub fn is_dead(&self) -> bool {
        self.code as usize & 1 == 1
    }

    /// The dead code object's index, for a tombstone.
    pub fn dead_index(&self) -> u32 {
        (self.code as usize >> 1) as u32
    }

    /// A native frame (`--native`): the return address `ip` of a C function, tagged so no
    /// code object address (aligned) nor tombstone (odd) can equal it. Symbolized when read.
    pub fn native(ip: usize) -> RawFrame {
        RawFrame {
            code: (ip << 2 | 2) as *mut c_void,
            offset: 0,
        }
    }

    /// True for a frame made by [`RawFrame::native`].
    #[inline]
    pub fn is_native(&self) -> bool {
        self.code as usize & 3 == 2
    }

    /// The instruction address of a native frame.
    pub fn native_ip(&self) -> usize {
        self.code as usize >> 2
    }
}

/// What a stack walk found.
#[derive(Debug, Clone, Copy)]
pub struct Captured {
    /// Frames written to the buffer (at most the limit).
    pub nframe: usize,
    /// Frames on the stack, including those past the limit (saturates at `u16::MAX`).
    pub total_nframe: u16,
    /// Hash of the written frames, folded in during the walk: [`finish_hash`] of `chain`,
    /// the total and the innermost frame's offset.
    pub hash: u64,
    /// Hash of the written frames but the innermost frame's offset (its code is in): what a
    /// cached walk whose innermost frame moved needs to hash the new stack at once.
    pub chain: u64,
    /// The innermost frame written (`_PyInterpreterFrame*`), 0 if none or not reported.
    pub top: usize,
    /// The second hash of the written frames ([`Check`]).
    pub check: u64,
    /// The interpreter is instrumenting the innermost frame's code for heapscope's PY_START
    /// counter (`monitor.rs`): its allocation, not the program's, is not traced.
    pub instrumenting: bool,
}

/// One frame folded into a walk's chained hash (the innermost frame of a 3.13+ walk with offset
/// 0: its offset comes last, in [`finish_hash`]).
#[inline(always)]
pub fn chain_step(hash: u64, code: *const c_void, offset: isize) -> u64 {
    mix(hash, (code as u64).rotate_left(24) ^ offset as u64)
}

/// The stack's hash from the hash of its frames but the innermost one's offset, the number of
/// frames and that offset (last, so that a cached walk can change it).
#[inline(always)]
pub fn finish_hash(chain: u64, total_nframe: u16, offset0: isize) -> u64 {
    mix(mix(chain, u64::from(total_nframe)), offset0 as u64)
}

/// Most frames a cached walk checks under an innermost generator frame (see [`WalkCache`]).
pub const RELINKED: usize = 6;

/// What the last stack walk found, for `capture_cached` (3.13+, see `monitor.rs`): valid while
/// no Python function started since ([`crate::monitor::epoch`]), the innermost frame is
/// still `top`, and, when that is a generator's frame, the frames `relinked` lists are still
/// under it as they were. The frames themselves stay in the walk's buffer, which nothing else
/// writes.
#[derive(Debug, Clone, Copy, Default)]
pub struct WalkCache {
    pub valid: bool,
    pub epoch: u64,
    pub tstate: usize,
    pub floor: usize,
    pub top: usize,
    pub code: usize,
    pub nframe: usize,
    pub total_nframe: u16,
    pub chain: u64,
    /// The walk's [`Check`] and innermost offset, from which a hit computes its own.
    pub check: u64,
    pub offset0: isize,
    /// Offset of the innermost frame's first traceable instruction: below it the frame in
    /// that place is a new activation in its prologue (the walk skips it).
    pub first_offset: isize,
    /// Under an innermost generator frame, which its resumer relinks without a PY_START: the
    /// frames down to the first frame of a function that is not a generator, inclusive, each
    /// as (address, instruction pointer). Frames under that one cannot have moved.
    pub relinked: [(usize, usize); RELINKED],
    pub relinked_len: u8,
}

/// [`FrameLayout::capture_cached`].
pub type CaptureCached = unsafe fn(
    tstate: *mut c_void,
    out: &mut [RawFrame],
    floor: *const c_void,
    cache: &mut WalkCache,
) -> Captured;

/// [`FrameLayout::capture_segments`].
pub type CaptureSegments = unsafe fn(
    tstate: *mut c_void,
    out: &mut [RawFrame],
    floor: *const c_void,
    segs: &mut [u16],
    bounds: &mut [usize],
) -> Captured;

/// The operations that depend on the interpreter's frame layout.
#[derive(Clone, Copy)]
pub struct FrameLayout {
    /// The versions this layout serves, for messages.
    pub name: &'static str,
    /// Compare the layout's facts with what the running interpreter (of `version_hex`,
    /// `PY_VERSION_HEX`) publishes about itself, before any hook is installed; `Err` says
    /// what differs.
    pub check: fn(version_hex: u64) -> Result<(), String>,
    /// Walk the stack of `tstate` (a `PyThreadState*` of the calling thread, which holds the
    /// GIL or whose frames are otherwise frozen), writing at most `out.len()` frames, and
    /// stopping before the interpreter frame `floor` (null: walk to the bottom).
    pub capture:
        unsafe fn(tstate: *mut c_void, out: &mut [RawFrame], floor: *const c_void) -> Captured,
    /// `capture` through a [`WalkCache`] (the allocation path): `out` must hold what the
    /// last call wrote while `cache` is valid. Without `sys.monitoring` (3.11) it is
    /// `capture`.
    pub capture_cached: CaptureCached,
    /// `capture_cached` checking every cache hit against a full walk
    /// (`HEAPSCOPE_VERIFY_FRAME_CACHE=1`, `monitor::record_check`).
    pub capture_cached_checked: CaptureCached,
    /// `capture`, also writing for each frame written how many invocations of
    /// `_PyEval_EvalFrameDefault` separate it from the innermost frame (`segs`, as long as
    /// `out`), and for the innermost invocations an address on the C stack inside each one's
    /// C frame (`bounds`; entries it cannot tell are left as the caller set them, zeros):
    /// `--native` finds those C frames by their stack
    /// range, so that it needs no symbol of the interpreter (Debian's are stripped, its eval
    /// loop split across local functions). Not on the allocation hot path.
    pub capture_segments: CaptureSegments,
    /// The innermost interpreter frame of `tstate` (null if none).
    pub current_frame: unsafe fn(tstate: *mut c_void) -> *const c_void,
    /// The OS thread id stored in a `PyThreadState*`.
    pub native_thread_id: unsafe fn(tstate: *mut c_void) -> u64,
    /// Borrowed `co_filename` and `co_qualname` of a live code object.
    pub code_names: unsafe fn(code: *mut c_void) -> (*mut c_void, *mut c_void),
    /// Where the interpreters and their GILs are (3.13+; `None` where every interpreter
    /// shares one GIL): see `interp.rs`.
    pub interpreters: Option<InterpreterFacts>,
}

/// Offsets that tell which GIL a thread holds (3.13+), checked against `_Py_DebugOffsets`.
#[derive(Debug, Clone, Copy)]
pub struct InterpreterFacts {
    /// `offsetof(_PyRuntimeState, interpreters.head)`: the newest interpreter; the main one
    /// when it is alone.
    pub runtime_head: usize,
    /// `offsetof(_PyRuntimeState, interpreters.mutex)` (`HEAD_LOCK`, a one-byte `PyMutex`).
    pub runtime_mutex: usize,
    /// `offsetof(PyInterpreterState, ceval.gil)`.
    pub ceval_gil: usize,
}

/// The versions heapscope implements, for error messages.
pub const SUPPORTED: &str = "3.11, 3.13, 3.14, 3.15";

/// True when this module was built for a free-threaded (`Py_GIL_DISABLED`) interpreter: the
/// tracer's hooks rely on the GIL (docs/architecture.md), so such builds refuse to start.
pub const FREE_THREADED: bool = cfg!(Py_GIL_DISABLED);

/// The layout of the running interpreter, or an error naming the supported versions.
///
/// 3.12 has a layout of its own that no test here can run (no 3.12 interpreter is
/// reachable), so it is refused rather than shipped untested.
pub fn layout_for(version_hex: u64) -> Result<&'static FrameLayout, TrackerError> {
    let (major, minor) = ((version_hex >> 24) & 0xff, (version_hex >> 16) & 0xff);
    let unsupported = |found: String| TrackerError::UnsupportedPython {
        found,
        supported: SUPPORTED.to_string(),
    };
    if FREE_THREADED {
        return Err(unsupported(format!(
            "{major}.{minor} (free-threaded build)"
        )));
    }
    match (major, minor) {
        (3, 11) => Ok(&py311::LAYOUT),
        (3, 13) => Ok(&py313::LAYOUT),
        (3, 14) => Ok(&py314::LAYOUT),
        (3, 15) => Ok(&py315::LAYOUT),
        _ => Err(unsupported(format!("{major}.{minor}"))),
    }
}

/// The thread state of the thread holding the GIL (the caller, when it holds it), without
/// the checks of `PyThreadState_Get`. The symbol is `_PyThreadState_UncheckedGet` up to
/// 3.12 and `PyThreadState_GetUnchecked` from 3.13 on (the old name became a macro), so it is
/// chosen when the module is built for a version.
#[inline(always)]
pub fn current_tstate() -> *mut c_void {
    #[cfg(not(Py_3_13))]
    extern "C" {
        fn _PyThreadState_UncheckedGet() -> *mut c_void;
    }
    // SAFETY: a plain read of the runtime's current thread state, valid from any thread.
    #[cfg(not(Py_3_13))]
    return unsafe { _PyThreadState_UncheckedGet() };
    // SAFETY: as above.
    #[cfg(Py_3_13)]
    return unsafe { pyo3_ffi::PyThreadState_GetUnchecked().cast() };
}

/// Bytes the interpreter puts before a live object of this type (`_PyType_PreHeaderSize`): the
/// GC header, and two words for a managed dict (3.11) or a managed dict and weak references
/// (3.12+; `Py_TPFLAGS_PREHEADER`). The object's memory block starts that far before the
/// object. Chosen when the module is built for a version, and inlined: the reference tracer
/// asks it of every object reused from a free list, and a call through the frame layout then
/// `PyType_GetFlags` cost two calls each time.
///
/// # Safety
/// `obj` is a live object (its type is alive while it is).
#[inline(always)]
pub unsafe fn object_presize(obj: *mut c_void) -> usize {
    const HAVE_GC: std::ffi::c_ulong = 1 << 14;
    #[cfg(not(Py_3_12))]
    const PREHEADER: std::ffi::c_ulong = 1 << 4;
    #[cfg(Py_3_12)]
    const PREHEADER: std::ffi::c_ulong = (1 << 4) | (1 << 3);
    // SAFETY: per the contract; `tp_flags` is a plain field of a GIL build's type object.
    let flags = unsafe { (*pyo3_ffi::Py_TYPE(obj.cast())).tp_flags };
    let gc = if flags & HAVE_GC != 0 { 16 } else { 0 };
    let preheader = if flags & PREHEADER != 0 { 16 } else { 0 };
    gc + preheader
}

/// The second hash of a stack (the interner's `check`, beside the walk's chained hash): a sum
/// of one folded 64x64->128 multiply per frame, salted by position. The terms do not depend on
/// each other, so a walk folds them in as it goes at little cost in time (its loop waits on the
/// frame chain's loads), instead of a second pass over the frames.
#[derive(Clone, Copy)]
pub struct Check {
    acc: u64,
    salt: u64,
}

impl Default for Check {
    fn default() -> Self {
        Check {
            acc: 0,
            salt: Check::K1,
        }
    }
}

impl Check {
    const K1: u64 = 0x2d35_8dcc_aa6c_78a5;
    const K2: u64 = 0x8bb8_4b93_962e_acc9;
    const K3: u64 = 0x4b33_a62e_d433_d4a3;

    /// Fold in the next frame (innermost first).
    #[inline(always)]
    pub fn push(&mut self, code: *const c_void, offset: isize) {
        // A code address uses the low 47 bits and is 8-aligned; the offset goes to the top
        // bits (offsets below 2^20 keep the word one-to-one).
        let word = (code as u64) ^ (offset as u64).rotate_left(47);
        let m = u128::from(word ^ self.salt) * u128::from(Check::K2);
        self.acc = self.acc.wrapping_add((m as u64) ^ ((m >> 64) as u64));
        self.salt = self.salt.wrapping_add(Check::K3);
    }

    /// The hash of the `nframe` frames pushed.
    #[inline(always)]
    pub fn finish(self, nframe: usize) -> u64 {
        self.acc.wrapping_add(nframe as u64)
    }

    /// `check` of frames whose innermost frame (of `code`) moved from offset `old` to `new`
    /// (a cached walk's).
    #[inline(always)]
    pub fn moved_top(check: u64, code: *const c_void, old: isize, new: isize) -> u64 {
        let mut was = Check::default();
        was.push(code, old);
        let mut now = Check::default();
        now.push(code, new);
        check.wrapping_sub(was.acc).wrapping_add(now.acc)
    }

    /// The hash of `frames` in one pass (what a walk folding them in gets).
    #[inline(always)]
    pub fn of(frames: &[RawFrame]) -> u64 {
        let mut check = Check::default();
        for f in frames {
            check.push(f.code, f.offset);
        }
        check.finish(frames.len())
    }
}

/// Folds one value into a running hash (the FxHash step: cheap, and good enough as the
/// interner compares the frames on a hash match).
#[inline(always)]
pub fn mix(hash: u64, value: u64) -> u64 {
    (hash.rotate_left(5) ^ value).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95)
}

#[cfg(test)]
mod tests {
    use super::{chain_step, finish_hash, layout_for, mix, Check, RawFrame};
    use std::collections::HashSet;

    fn frame(code: usize, offset: isize) -> RawFrame {
        RawFrame {
            code: code as *mut std::ffi::c_void,
            offset,
        }
    }

    #[test]
    fn a_walk_folding_frames_in_gets_the_check_of_its_frames() {
        let mut frames = vec![
            frame(0x7f00_1000, 42),
            frame(0x7f00_2000, 8),
            frame(0x7f00_1000, 0),
        ];
        let mut walk = Check::default();
        for f in &frames {
            walk.push(f.code, f.offset);
        }
        assert_eq!(walk.finish(frames.len()), Check::of(&frames));
        // A cached walk whose innermost frame moved.
        let moved = Check::moved_top(Check::of(&frames), frames[0].code, 42, 58);
        frames[0].offset = 58;
        assert_eq!(moved, Check::of(&frames));
        // Order, position and length count.
        let swapped = [frames[1], frames[0], frames[2]];
        assert_ne!(Check::of(&swapped), Check::of(&frames));
        assert_ne!(Check::of(&frames[..2]), Check::of(&frames));
    }

    /// Every stack of a recursion with two call sites on one line (a binary tree's `make`),
    /// depths 0 to 12: stacks that differ only in offsets, and only in the high bits of the
    /// check's word. Both walks' hashes and the check tell them all apart, and the hashes
    /// spread over the table's buckets, its control tags and the interner's recent slots (a
    /// hash summing each frame's high product half had 205 values for these 8191 stacks,
    /// and a tree-building workload ran 1.35x slower).
    #[test]
    fn recursive_stacks_get_distinct_well_spread_hashes() {
        let make = frame(0x7f3a_1c2b_4d60, 0);
        let stacks: Vec<Vec<RawFrame>> = (0..=12u32)
            .flat_map(|depth| {
                (0..1u32 << depth).map(move |path| {
                    let mut frames = vec![RawFrame { offset: 4, ..make }];
                    frames.extend((0..depth).map(|i| RawFrame {
                        offset: if path >> i & 1 == 0 { 40 } else { 56 },
                        ..make
                    }));
                    frames.push(frame(0x7f3a_1c2b_5e20, 30));
                    frames
                })
            })
            .collect();
        let since313 = |frames: &[RawFrame]| {
            let chain = frames[1..]
                .iter()
                .fold(chain_step(0, frames[0].code, 0), |h, f| {
                    chain_step(h, f.code, f.offset)
                });
            finish_hash(chain, frames.len() as u16, frames[0].offset)
        };
        let py311 = |frames: &[RawFrame]| {
            let chain = frames
                .iter()
                .fold(0, |h, f| chain_step(h, f.code, f.offset));
            mix(chain, frames.len() as u64)
        };
        let all = |hash: &dyn Fn(&[RawFrame]) -> u64| -> Vec<u64> {
            stacks.iter().map(|f| hash(f)).collect()
        };
        for (name, hashes) in [
            ("3.13+", all(&since313)),
            ("3.11", all(&py311)),
            ("check", all(&Check::of)),
        ] {
            let distinct = |key: &dyn Fn(u64) -> u64| {
                hashes
                    .iter()
                    .map(|&h| key(h))
                    .collect::<HashSet<u64>>()
                    .len()
            };
            assert_eq!(distinct(&|h| h), stacks.len(), "{name}");
            // 8191 keys into 4096 buckets fill ~3540 of them when spread at random.
            assert!(distinct(&|h| h & 0xfff) > 3300, "{name}: buckets");
            if name != "check" {
                assert_eq!(distinct(&|h| h >> 57), 128, "{name}: control tags");
                assert_eq!(distinct(&|h| (h >> 32) & 0xff), 256, "{name}: recent slots");
            }
        }
    }

    #[test]
    fn other_versions_get_a_clear_error() {
        for hex in [0x030b_07f0, 0x030d_12f0, 0x030e_0af0, 0x030f_02f0] {
            assert!(layout_for(hex).is_ok(), "{hex:#x}");
        }
        for (hex, found) in [
            (0x030c_00f0, "3.12"),
            (0x030a_00f0, "3.10"),
            (0x0310_00a0, "3.16"),
        ] {
            let err = layout_for(hex)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert_eq!(
                err,
                format!(
                    "heapscope does not support Python {found}: supported versions are \
                     3.11, 3.13, 3.14, 3.15"
                )
            );
        }
    }
}
