//! The profiler's view of the tracer: what changed since the last drain, as plain data for the
//! capture recorder (`heapscope_core::delta::ProfileDelta`).
//!
//! Stacks are the tracer's tracebacks resolved with function names and keyed by thread;
//! tracebacks that resolve to the same frames share a stack. Counters are summed per stack at
//! each drain (a pass over the tracebacks, once per flush, never on the allocation path).

use std::cell::UnsafeCell;

use hashbrown::HashMap;
use heapscope_core::delta::{NewStack, ProfileDelta, StackCounters};
use heapscope_core::profile::{StackId, StackStat};
use heapscope_core::{Frame, FrameId};

use crate::intern::TbId;
use crate::resolve::resolver;
use crate::stack::RawFrame;
use crate::state::state;
use crate::stats::{Changes, Stats};
use crate::Gil;

#[derive(Default)]
struct DrainState {
    tb_to_stack: Vec<StackId>,
    frame_ids: HashMap<Frame, FrameId>,
    /// Resolver frame index -> profile frame id (`u32::MAX`: not yet), valid for one resolver
    /// generation: spares hashing the frame's strings for every frame of every new stack.
    by_index: Vec<FrameId>,
    generation: u64,
    /// Stacks by a 128-bit hash of their frame ids, thread and domain (16 bytes a stack
    /// instead of a copy of its frames: a collision has a chance of about 2^-128 per pair).
    stack_ids: HashMap<u128, StackId>,
    /// Per stack, a 64-bit fingerprint of the counters and of the figures at the peak last
    /// written: a flag says a traceback's figures changed, but a stack's can come back to what
    /// was written (a block moved between two tracebacks of one stack; figures at the peak
    /// that changed and changed back over several peaks between two drains), and writing them
    /// again would grow the capture. 16 bytes a stack instead of a copy of the figures (56); a
    /// change goes unwritten only if the fingerprints collide, about 2^-64 per comparison.
    last_written: Vec<(u64, u64)>,
}

struct DrainCell(UnsafeCell<Option<DrainState>>);
// SAFETY: only accessed by the GIL holder, in `drain_profile`.
unsafe impl Sync for DrainCell {}
static DRAIN: DrainCell = DrainCell(UnsafeCell::new(None));

/// Forget the profiler's bookkeeping (a new capture starts).
pub fn reset_drain(_gil: Gil) {
    // SAFETY: GIL held; no other reference alive.
    unsafe { *DRAIN.0.get() = None };
}

/// New tracebacks copied out of the state, a batch at a time: resolving a frame may call into
/// Python, so no reference to the state may be held meanwhile, and copying every new stack of
/// a burst at once (an import-heavy start makes 100k+) would hold them all twice.
struct Copied {
    layout: &'static crate::stack::FrameLayout,
    /// Frames, thread and domain of each traceback interned since the last drain.
    new_tbs: Vec<(Vec<RawFrame>, u64, u32)>,
}

/// New tracebacks resolved per batch.
const BATCH: usize = 1024;

/// What changed since the last drain. Empty when not tracing.
pub fn drain_profile(gil: Gil) -> ProfileDelta {
    drain_up_to(gil, usize::MAX).0
}

/// What changed since the last drain, resolving at most `max_new` new tracebacks. If more
/// remain, the delta holds only the new frames and stacks (its figures come with the last
/// piece) and the flag is true: a burst of new stacks is then written in pieces instead of
/// held at once (a drain after an import-heavy start had 83k new stacks, ~20 MB).
pub fn drain_up_to(gil: Gil, max_new: usize) -> (ProfileDelta, bool) {
    // SAFETY: GIL held; only this function touches DRAIN and it does not re-enter.
    let ds = unsafe { (*DRAIN.0.get()).get_or_insert_with(DrainState::default) };
    let mut delta = ProfileDelta::default();
    let mut resolved = 0;
    loop {
        // Journaled native events and RAW frees first: the tracebacks they make must be
        // written with the figures that count them. (Without this, the native blocks of a
        // program's last lines were in the totals but in no row when no traced Python
        // allocation applied them before the final drain, as under --sample-rate.)
        // SAFETY: GIL held; the reference ends here.
        if let Some(st) = unsafe { state() } {
            st.apply_pending();
        }
        while resolved < max_new {
            let Some(batch) = copy_new(ds, (max_new - resolved).min(BATCH)) else {
                return (ProfileDelta::default(), false);
            };
            if batch.new_tbs.is_empty() {
                break;
            }
            resolved += batch.new_tbs.len();
            resolve_new(gil, ds, &batch, &mut delta);
        }
        // SAFETY: GIL held; the reference ends before the loop goes on.
        let Some(st) = (unsafe { state() }) else {
            return (ProfileDelta::default(), false);
        };
        if st.interner.len() <= ds.tb_to_stack.len() {
            break;
        }
        if resolved >= max_new {
            return (delta, true);
        }
    }
    // SAFETY: GIL held; the reference ends with this function, and nothing below calls into
    // Python.
    let Some(st) = (unsafe { state() }) else {
        return (ProfileDelta::default(), false);
    };
    st.stats.capture_peak();
    let s = &st.stats;
    delta.current_bytes = s.current;
    delta.peak_bytes = s.peak;
    delta.total_allocated_bytes = s.total_bytes;
    delta.total_allocations = s.total_count;
    take_changes(&mut st.stats, ds, &mut delta);
    (delta, false)
}

/// Stack not changed since the last drain (in `take_changes`'s slots).
const UNCHANGED: u32 = u32::MAX;

/// The counters and figures at the peak of every stack one of whose tracebacks changed since
/// the last drain (the tracer flags them: no copy of the last figures is kept). Memory: 4
/// bytes a stack and 56 a changed stack, for the length of the call.
fn take_changes(s: &mut Stats, ds: &mut DrainState, delta: &mut ProfileDelta) {
    let n = s.per_tb.len().min(ds.tb_to_stack.len());
    // Stack -> its index in `sums`, or UNCHANGED.
    let mut slots = vec![UNCHANGED; ds.stack_ids.len()];
    // Per changed stack: (counters, peak bytes, peak count, which changed).
    let mut sums: Vec<(StackCounters, u64, u64, Changes)> = Vec::new();
    for (tb, &stack) in ds.tb_to_stack[..n].iter().enumerate() {
        let c = s.take_changes(tb as TbId);
        if !(c.counters || c.peak) {
            continue;
        }
        let slot = &mut slots[stack as usize];
        if *slot == UNCHANGED {
            *slot = sums.len() as u32;
            let counters = StackCounters {
                stack,
                ..StackCounters::default()
            };
            sums.push((counters, 0, 0, c));
        } else {
            let which = &mut sums[*slot as usize].3;
            which.counters |= c.counters;
            which.peak |= c.peak;
        }
    }
    if sums.is_empty() {
        return;
    }
    for (f, &stack) in s.per_tb[..n].iter().zip(&ds.tb_to_stack) {
        let slot = slots[stack as usize];
        if slot == UNCHANGED {
            continue;
        }
        let (sum, peak_bytes, peak_count, _) = &mut sums[slot as usize];
        sum.live_bytes += f.live_bytes;
        sum.live_count += f.live_count();
        sum.total_bytes += f.total_bytes;
        sum.total_count += f.total_count();
        *peak_bytes += f.peak_bytes;
        *peak_count += f.peak_count();
    }
    sums.sort_unstable_by_key(|e| e.0.stack);
    for (sum, bytes, count, which) in sums {
        let last = &mut ds.last_written[sum.stack as usize];
        if which.counters {
            let fp = fingerprint(&[
                sum.live_bytes,
                sum.live_count,
                sum.total_bytes,
                sum.total_count,
            ]);
            if fp != last.0 {
                last.0 = fp;
                delta.changed.push(sum);
            }
        }
        if which.peak {
            let fp = fingerprint(&[bytes, count]);
            if fp != last.1 {
                last.1 = fp;
                delta.peak_changed.push(StackStat {
                    stack: sum.stack,
                    bytes,
                    count,
                });
            }
        }
    }
}

/// A 64-bit fingerprint of a stack's figures (the standard library's SipHash, whose keys are
/// the same for every `DefaultHasher::new()`).
fn fingerprint(figures: &[u64]) -> u64 {
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for &f in figures {
        h.write_u64(f);
    }
    h.finish()
}

/// The next batch of tracebacks interned since the last drain; `None` when not tracing.
fn copy_new(ds: &mut DrainState, max: usize) -> Option<Copied> {
    // SAFETY: GIL held by the caller; the reference ends with this function.
    let st = unsafe { state() }?;
    if !st.active {
        return None;
    }
    if st.interner.len() < ds.tb_to_stack.len() {
        // clear_traces() ran: tracebacks are numbered afresh, stacks stay.
        ds.tb_to_stack.clear();
    }
    let first = ds.tb_to_stack.len();
    let new_tbs = (first..st.interner.len().min(first + max))
        .map(|tb| {
            let tb = tb as TbId;
            let (thread, domain) = crate::domains::split_owner(st.interner.owner(tb));
            (st.interner.frames(tb).collect(), thread, domain)
        })
        .collect();
    Some(Copied {
        layout: st.layout,
        new_tbs,
    })
}

fn resolve_new(_gil: Gil, ds: &mut DrainState, c: &Copied, delta: &mut ProfileDelta) {
    // SAFETY: GIL held; no state reference alive; the frames name live code objects (a dead
    // one's frames are tombstones, see codes.rs) and nothing here frees Python objects.
    let r = unsafe { resolver() };
    if ds.generation != r.generation() {
        ds.generation = r.generation();
        ds.by_index.clear();
    }
    for (raw, thread, domain) in &c.new_tbs {
        let frames: Vec<FrameId> = raw
            .iter()
            .map(|&f| {
                // SAFETY: as above.
                let i = unsafe { r.resolve(c.layout, f) };
                let frame = r.frame(i);
                if let Some(&id) = ds
                    .by_index
                    .get(i as usize)
                    .filter(|&&id| id != FrameId::MAX)
                {
                    return id;
                }
                let id = if let Some(&id) = ds.frame_ids.get(frame) {
                    id
                } else {
                    let id = ds.frame_ids.len() as FrameId;
                    ds.frame_ids.insert(frame.clone(), id);
                    delta.new_frames.push((id, frame.clone()));
                    id
                };
                if ds.by_index.len() <= i as usize {
                    ds.by_index.resize(i as usize + 1, FrameId::MAX);
                }
                ds.by_index[i as usize] = id;
                id
            })
            .collect();
        let next = ds.stack_ids.len() as StackId;
        let key = stack_key(&frames, crate::domains::owner_key(*thread, *domain));
        let id = if let Some(&id) = ds.stack_ids.get(&key) {
            id
        } else {
            delta.new_stacks.push(NewStack {
                id: next,
                frames,
                thread_native_id: *thread,
                domain: *domain,
            });
            ds.stack_ids.insert(key, next);
            ds.last_written
                .push((fingerprint(&[0; 4]), fingerprint(&[0; 2])));
            next
        };
        ds.tb_to_stack.push(id);
    }
}

/// Two independent 64-bit hashes of a stack's frame ids and thread.
fn stack_key(frames: &[FrameId], thread: u64) -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let mut a = crate::stack::mix(thread, frames.len() as u64);
    let mut b =
        std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
            .build_hasher();
    b.write_u64(thread);
    for &f in frames {
        a = crate::stack::mix(a, u64::from(f));
        b.write_u32(f);
    }
    (u128::from(a) << 64) | u128::from(b.finish())
}

/// Bytes of memory held by the profiler's bookkeeping, per structure.
pub fn drain_memory_parts(_gil: Gil, out: &mut Vec<(&'static str, usize)>) {
    // SAFETY: GIL held; only the GIL holder touches DRAIN.
    let Some(ds) = (unsafe { (*DRAIN.0.get()).as_ref() }) else {
        return;
    };
    out.push((
        "drain.tb_to_stack",
        ds.tb_to_stack.capacity() * size_of::<StackId>(),
    ));
    out.push((
        "drain.frame_ids",
        ds.frame_ids.capacity() * (size_of::<(Frame, FrameId)>() + 1)
            + ds.by_index.capacity() * size_of::<FrameId>(),
    ));
    out.push((
        "drain.stack_ids",
        ds.stack_ids.capacity() * (size_of::<(u128, StackId)>() + 1),
    ));
    out.push((
        "drain.last_written",
        ds.last_written.capacity() * size_of::<(u64, u64)>(),
    ));
}

/// Number of profile stacks.
pub fn stack_count(_gil: Gil) -> usize {
    // SAFETY: GIL held; only the GIL holder touches DRAIN.
    unsafe { (*DRAIN.0.get()).as_ref() }.map_or(0, |ds| ds.stack_ids.len())
}
