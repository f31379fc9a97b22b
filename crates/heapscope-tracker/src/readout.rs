//! Reading the tracer: snapshots of live traces, one object's traceback, the figures at the
//! peak. Each copies what it needs out of the state first, then resolves frames (which may call
//! into Python) with no reference to the state alive.

use hashbrown::HashMap;
use heapscope_core::snapshot::{Snapshot, Trace, Traceback, TracebackId};
use heapscope_core::{Frame, FrameId};

use crate::intern::TbId;
use crate::resolve::resolver;
use crate::stack::{FrameLayout, RawFrame};
use crate::state::{state, RAW};
use crate::{traceback_limit, Gil};

/// Raw frames and total of each interned traceback that is needed, copied out of the state.
struct Copied {
    layout: &'static FrameLayout,
    tracebacks: Vec<(Vec<RawFrame>, u16)>,
}

fn copy_tracebacks(ids: impl Iterator<Item = TbId>) -> Option<Copied> {
    // SAFETY: GIL held by the callers; the reference ends with this function.
    let st = unsafe { state() }?;
    let tracebacks = ids
        .map(|tb| {
            (
                st.interner.frames(tb).collect(),
                st.interner.record(tb).total_nframe,
            )
        })
        .collect();
    Some(Copied {
        layout: st.layout,
        tracebacks,
    })
}

fn set_suspended(on: bool) {
    // SAFETY: GIL held by the callers; short-lived reference.
    if let Some(st) = unsafe { state() } {
        st.suspended = on;
    }
}

/// Builds deduplicated tables of resolved frames and tracebacks (tracemalloc identity: file
/// name and line only).
#[derive(Default)]
struct Tables {
    frames: Vec<Frame>,
    frame_ids: HashMap<(std::sync::Arc<str>, u32), FrameId>,
    tracebacks: Vec<Traceback>,
    traceback_ids: HashMap<Traceback, TracebackId>,
}

impl Tables {
    fn add(&mut self, layout: &FrameLayout, raw: &[RawFrame], total: u16) -> TracebackId {
        // SAFETY: GIL held by the callers; no state reference alive; the frames name live code
        // objects or are tombstones (codes.rs).
        let r = unsafe { resolver() };
        let frames: Box<[FrameId]> = raw
            .iter()
            .map(|&f| {
                // SAFETY: as above.
                let i = unsafe { r.resolve(layout, f) };
                let fr = r.frame(i);
                let key = (fr.filename.clone(), fr.lineno);
                let next = self.frames.len() as FrameId;
                *self.frame_ids.entry(key).or_insert_with(|| {
                    self.frames.push(Frame::new(fr.filename.clone(), fr.lineno));
                    next
                })
            })
            .collect();
        let tb = Traceback {
            frames,
            total_nframe: u32::from(total),
        };
        let next = self.tracebacks.len() as TracebackId;
        *self.traceback_ids.entry(tb).or_insert_with_key(|tb| {
            self.tracebacks.push(tb.clone());
            next
        })
    }
}

/// A snapshot of every live trace (`tracemalloc.take_snapshot`); empty when not tracing.
pub fn snapshot(_gil: Gil) -> Snapshot {
    let limit = traceback_limit();
    // SAFETY: GIL held; the reference ends before any Python call.
    let (live, used) = match unsafe { state() } {
        Some(st) if st.active => {
            st.apply_pending();
            let mut live: Vec<(u32, u64, TbId)> =
                st.table.iter().map(|(_, s, tb)| (0, s, tb)).collect();
            if let Some(r) = RAW.lock().as_ref() {
                live.extend(r.table.iter().map(|(_, s, tb)| (0, s, tb)));
                live.extend(r.domains.iter());
            }
            let mut used = vec![false; st.interner.len()];
            for &(_, _, tb) in &live {
                used[tb as usize] = true;
            }
            (live, used)
        }
        _ => {
            return Snapshot {
                traceback_limit: limit,
                ..Snapshot::default()
            }
        }
    };
    let ids: Vec<TbId> = (0..used.len() as TbId)
        .filter(|&i| used[i as usize])
        .collect();
    let Some(copied) = copy_tracebacks(ids.iter().copied()) else {
        return Snapshot::default();
    };
    set_suspended(true);
    let mut tables = Tables::default();
    let mut map = vec![0 as TracebackId; used.len()];
    for (&id, (raw, total)) in ids.iter().zip(&copied.tracebacks) {
        map[id as usize] = tables.add(copied.layout, raw, *total);
    }
    set_suspended(false);
    let traces = live
        .into_iter()
        .map(|(domain, size, tb)| Trace {
            domain,
            size,
            traceback: map[tb as usize],
        })
        .collect();
    Snapshot {
        frames: tables.frames,
        tracebacks: tables.tracebacks,
        traces,
        traceback_limit: limit,
    }
}

/// The traceback of the object `obj` (resolved frames, most recent first, and the total
/// frame count), or `None` if its memory block is not traced.
///
/// # Safety
/// `obj` is a live `PyObject*`.
pub unsafe fn object_traceback(gil: Gil, obj: *mut std::ffi::c_void) -> Option<(Vec<Frame>, u32)> {
    // SAFETY: GIL held; `obj` is a live object (the caller holds a reference).
    let st = unsafe { state() }?;
    if !st.active {
        return None;
    }
    // SAFETY: as above.
    let addr = obj as usize - unsafe { crate::stack::object_presize(obj) };
    traceback_at(gil, 0, addr)
}

/// The traceback of the block at `addr` in `domain` (`_PyTraceMalloc_GetTraceback`): domain 0
/// holds the interpreter's blocks and what extensions tracked in domain 0.
pub fn traceback_at(_gil: Gil, domain: u32, addr: usize) -> Option<(Vec<Frame>, u32)> {
    // SAFETY: GIL held (token); the reference ends before any Python call.
    let st = unsafe { state() }?;
    if !st.active {
        return None;
    }
    let found = {
        let raw = RAW.lock();
        let raw = raw.as_ref();
        let tracked = raw.and_then(|r| r.domains.get(domain, addr));
        if domain == 0 {
            st.table
                .get(addr)
                .or_else(|| raw.and_then(|r| r.table.get(addr)))
                .or(tracked)
        } else {
            tracked
        }
    };
    let (_, tb) = found?;
    let copied = copy_tracebacks(std::iter::once(tb))?;
    let (raw, total) = &copied.tracebacks[0];
    set_suspended(true);
    // SAFETY: GIL held, no state reference alive; the frames name live code objects or are
    // tombstones (codes.rs), and nothing here frees Python objects.
    let r = unsafe { resolver() };
    let frames = raw
        .iter()
        .map(|&f| {
            // SAFETY: as above.
            let i = unsafe { r.resolve(copied.layout, f) };
            let fr = r.frame(i);
            Frame::new(fr.filename.clone(), fr.lineno)
        })
        .collect();
    set_suspended(false);
    Some((frames, u32::from(*total)))
}

/// What one traceback held at the peak of traced memory.
#[derive(Debug, Clone)]
pub struct PeakTrace {
    /// Resolved frames with function names, most recent first.
    pub frames: Vec<Frame>,
    /// Frames the stack had, including those cut by the limit.
    pub total_nframe: u32,
    /// Bytes held at the peak.
    pub bytes: u64,
    /// Blocks held at the peak.
    pub count: u64,
}

/// The figures of every traceback at the peak of traced memory (since start, clear_traces or
/// reset_peak), largest first.
pub fn peak_traces(_gil: Gil) -> Vec<PeakTrace> {
    // SAFETY: GIL held; the reference ends before any Python call.
    let figures: Vec<(TbId, u64, u64)> = match unsafe { state() } {
        Some(st) if st.active => {
            st.apply_pending();
            st.stats.capture_peak();
            (0..st.interner.len() as TbId)
                .filter_map(|tb| {
                    let s = &st.stats.per_tb[tb as usize];
                    (s.peak_count() > 0).then_some((tb, s.peak_bytes, s.peak_count()))
                })
                .collect()
        }
        _ => return Vec::new(),
    };
    let Some(copied) = copy_tracebacks(figures.iter().map(|f| f.0)) else {
        return Vec::new();
    };
    set_suspended(true);
    // SAFETY: GIL held, no state reference alive.
    let r = unsafe { resolver() };
    let mut out: Vec<PeakTrace> = figures
        .iter()
        .zip(&copied.tracebacks)
        .map(|(&(_, bytes, count), (raw, total))| PeakTrace {
            frames: raw
                .iter()
                .map(|&f| {
                    // SAFETY: as above.
                    let i = unsafe { r.resolve(copied.layout, f) };
                    r.frame(i).clone()
                })
                .collect(),
            total_nframe: u32::from(*total),
            bytes,
            count,
        })
        .collect();
    set_suspended(false);
    out.sort_by_key(|t| std::cmp::Reverse(t.bytes));
    out
}
