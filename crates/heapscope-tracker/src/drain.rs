//! The profiler's view of the tracer: what changed since the last drain, as plain data for the
//! capture recorder (`heapscope_core::delta::ProfileDelta`).
//!
//! The capture gets the tracer's frame tree: each node once (its parent and its resolved
//! frame), each traceback once as a stack named by its innermost node, then the figures of the
//! tracebacks that changed. No stack is kept here (4 bytes per traceback and per node name
//! their ids in the file), and after each drain the tracebacks that hold nothing and whose
//! figures are written are evicted from the tracer (`State::sweep`): a run's memory follows
//! what is alive and recent, not every stack it ever met. Readers merge stacks with the same
//! frames (a stack evicted and met again is written again).

use std::cell::UnsafeCell;

use heapscope_core::delta::{NewNode, NewTreeStack, ProfileDelta, StackCounters};
use heapscope_core::profile::{StackId, StackStat};
use heapscope_core::FrameId;

use crate::intern::{NodeId, TbId, NO_PARENT};
use crate::resolve::resolver;
use crate::stack::RawFrame;
use crate::state::state;
use crate::stats::{Changes, Stats, TbStats};
use crate::Gil;

/// A traceback or node slot with nothing written for it.
const UNWRITTEN: u32 = u32::MAX;

#[derive(Default)]
struct DrainState {
    /// Traceback slot -> its stack id in the capture, or UNWRITTEN.
    tb_stack: Vec<StackId>,
    /// Node slot -> its node id in the capture (from 1), or UNWRITTEN.
    node_file: Vec<u32>,
    next_stack: StackId,
    next_node: u32,
    /// The interner's `clears()` these ids belong to.
    clears: u64,
    /// Resolver frame index (distinct frames) -> frame id in the capture (`u32::MAX`: not
    /// written yet), valid for one resolver generation.
    by_index: Vec<FrameId>,
    next_frame: FrameId,
    /// Where the next piece of a drain goes on taking changed figures (0: from the start).
    figures_from: usize,

    generation: u64,
}

impl DrainState {
    fn stack_of(&self, tb: TbId) -> StackId {
        self.tb_stack.get(tb as usize).copied().unwrap_or(UNWRITTEN)
    }

    fn node_of(&self, node: NodeId) -> u32 {
        self.node_file
            .get(node as usize)
            .copied()
            .unwrap_or(UNWRITTEN)
    }
}

struct DrainCell(UnsafeCell<Option<DrainState>>);
// SAFETY: only accessed by the GIL holder, in `drain_profile`.
unsafe impl Sync for DrainCell {}
static DRAIN: DrainCell = DrainCell(UnsafeCell::new(None));

/// Forget the profiler's bookkeeping (a new capture starts).
pub fn reset_drain(_gil: Gil) {
    // SAFETY: GIL held; no other reference alive.
    unsafe { *DRAIN.0.get() = None };
    // Every live traceback is unwritten for the new capture: the next drain finds them by a
    // scan, then lists new ones again.
    // SAFETY: GIL held; the reference ends with this statement.
    if let Some(st) = unsafe { state() } {
        st.fresh = None;
    }
}

/// Nodes and tracebacks to write, copied out of the state, a batch at a time: resolving a
/// frame may call into Python, so no reference to the state may be held meanwhile.
struct Copied {
    layout: &'static crate::stack::FrameLayout,
    /// New nodes, parents first: (capture id, parent's capture id or 0, frame).
    nodes: Vec<(u32, u32, RawFrame)>,
    /// New stacks: (capture id, innermost node's capture id, thread, domain).
    stacks: Vec<(StackId, u32, u64, u32)>,
}

/// New tracebacks resolved per batch.
const BATCH: usize = 1024;

/// What changed since the last drain. Empty when not tracing.
pub fn drain_profile(gil: Gil) -> ProfileDelta {
    drain_up_to(gil, usize::MAX).0
}

/// What changed since the last drain, resolving at most `max_new` new tracebacks and taking
/// about as many changed figures. If more remain, the delta holds what was taken (new frames,
/// nodes and stacks; figures of tracebacks forgotten or taken so far) and the flag is true: a
/// burst of new stacks or of changes is then written in pieces instead of held at once (a
/// drain after an import-heavy start had 83k new stacks).
pub fn drain_up_to(gil: Gil, max_new: usize) -> (ProfileDelta, bool) {
    // SAFETY: GIL held; only this function touches DRAIN and it does not re-enter.
    let ds = unsafe { (*DRAIN.0.get()).get_or_insert_with(DrainState::default) };
    let mut delta = ProfileDelta::default();
    // SAFETY: GIL held; the reference ends with this block.
    match unsafe { state() } {
        Some(st) if st.active => {
            if st.interner.clears() != ds.clears {
                // clear_traces() ran: tracebacks and nodes are numbered afresh; the ids
                // written stay taken.
                ds.clears = st.interner.clears();
                ds.tb_stack.clear();
                ds.node_file.clear();
            }
            // Journaled native events and RAW frees first (`sweep` applies them): the
            // tracebacks they make must be written with the figures that count them.
            let tb_stack = &ds.tb_stack;
            let swept = st.sweep(|tb| tb_stack.get(tb as usize).is_some_and(|&s| s != UNWRITTEN));
            for (tb, changes, f) in &swept.last_changes {
                push_figures(&mut delta, ds.stack_of(*tb), *changes, f);
            }
            for tb in swept.tracebacks {
                ds.tb_stack[tb as usize] = UNWRITTEN;
            }
            for node in swept.nodes {
                if let Some(n) = ds.node_file.get_mut(node as usize) {
                    *n = UNWRITTEN;
                }
            }
            // The figures of forgotten tracebacks may be written with a partial piece: the
            // totals go with them.
            set_totals(&mut delta, &st.stats);
        }
        _ => return (ProfileDelta::default(), false),
    }
    finish_piece(gil, ds, delta, max_new)
}

/// Write the tracebacks not written yet, at most `max_new`, then take the changed figures.
fn finish_piece(
    gil: Gil,
    ds: &mut DrainState,
    mut delta: ProfileDelta,
    max_new: usize,
) -> (ProfileDelta, bool) {
    let mut resolved = 0;
    loop {
        // SAFETY: GIL held; the reference ends with this statement.
        let Some((todo, interned)) =
            (unsafe { state() }).map(|st| (unwritten(st, ds), st.new_since_sweep))
        else {
            return (ProfileDelta::default(), false);
        };
        if todo.is_empty() {
            break;
        }
        for chunk in todo.chunks(BATCH) {
            if resolved >= max_new {
                return (delta, true);
            }
            let take = chunk.len().min(max_new - resolved);
            let Some(batch) = copy_new(ds, &chunk[..take]) else {
                return (ProfileDelta::default(), false);
            };
            resolved += take;
            resolve_new(gil, ds, &batch, &mut delta);
        }
        // Resolving may run Python code (a code object dying there buries its frames and
        // applies journaled native events): scan again only if that interned anything (no
        // sweep runs meanwhile, so the count only grows).
        // SAFETY: GIL held; the reference ends with this statement.
        if (unsafe { state() }).is_none_or(|st| st.new_since_sweep == interned) {
            break;
        }
    }
    // SAFETY: GIL held; the reference ends with this function, and nothing below calls into
    // Python.
    let Some(st) = (unsafe { state() }) else {
        return (ProfileDelta::default(), false);
    };
    st.stats.capture_peak();
    set_totals(&mut delta, &st.stats);
    let done = take_changes(&mut st.stats, ds, &mut delta, max_new);
    (delta, !done)
}

/// The live tracebacks not written yet (pending events applied first). The first call after
/// the profiler (re)starts scans every slot and turns the tracer's list of new tracebacks on;
/// later calls read that list, which keeps what a partial piece left for the next one.
fn unwritten(st: &mut crate::state::State, ds: &DrainState) -> Vec<TbId> {
    st.apply_pending();
    let interner = &st.interner;
    let unwritten = |tb: TbId| interner.is_live(tb) && ds.stack_of(tb) == UNWRITTEN;
    let fresh = match &mut st.fresh {
        Some(fresh) => {
            fresh.retain(|&tb| unwritten(tb));
            fresh
        }
        None => st.fresh.insert(
            (0..interner.len() as TbId)
                .filter(|&tb| unwritten(tb))
                .collect(),
        ),
    };
    fresh.clone()
}

/// The counters and figures at the peak of the written tracebacks that changed since the
/// last drain (the tracer flags them: no copy of the last figures is kept), at most about
/// `max` entries: true when all are taken, else the next piece goes on from there (a drain
/// of 100k changed tracebacks is then not held whole).
fn take_changes(s: &mut Stats, ds: &mut DrainState, delta: &mut ProfileDelta, max: usize) -> bool {
    let n = s.per_tb.len().min(ds.tb_stack.len());
    let from = ds.figures_from.min(n);
    for (tb, &stack) in ds.tb_stack[..n].iter().enumerate().skip(from) {
        if stack == UNWRITTEN {
            continue;
        }
        let changes = s.take_changes(tb as TbId);
        push_figures(delta, stack, changes, &s.per_tb[tb]);
        if delta.changed.len() + delta.peak_changed.len() >= max {
            ds.figures_from = tb + 1;
            return false;
        }
    }
    ds.figures_from = 0;
    true
}

/// The whole process's figures, which go at the front of every counters record.
fn set_totals(delta: &mut ProfileDelta, s: &Stats) {
    delta.current_bytes = s.current;
    delta.peak_bytes = s.peak;
    delta.total_allocated_bytes = s.total_bytes;
    delta.total_allocations = s.total_count;
}

/// The figures of a traceback that changed, under its stack id in the capture.
fn push_figures(delta: &mut ProfileDelta, stack: StackId, changes: Changes, f: &TbStats) {
    if changes.counters {
        delta.changed.push(StackCounters {
            stack,
            live_bytes: f.live_bytes,
            live_count: f.live_count(),
            total_bytes: f.total_bytes,
            total_count: f.total_count(),
        });
    }
    if changes.peak {
        delta.peak_changed.push(StackStat {
            stack,
            bytes: f.peak_bytes,
            count: f.peak_count(),
        });
    }
}

/// Give capture ids to these tracebacks and to their nodes not written yet, and copy out
/// what resolving them needs; `None` when not tracing.
fn copy_new(ds: &mut DrainState, tbs: &[TbId]) -> Option<Copied> {
    // SAFETY: GIL held by the caller; the reference ends with this function.
    let st = unsafe { state() }?;
    if !st.active {
        return None;
    }
    let need = st.interner.node_slots();
    if ds.node_file.len() < need {
        ds.node_file.resize(need, UNWRITTEN);
    }
    let need = st.interner.len();
    if ds.tb_stack.len() < need {
        ds.tb_stack.resize(need, UNWRITTEN);
    }
    let mut copied = Copied {
        layout: st.layout,
        nodes: Vec::new(),
        stacks: Vec::with_capacity(tbs.len()),
    };
    let mut chain: Vec<NodeId> = Vec::new();
    for &tb in tbs {
        if !st.interner.is_live(tb) || ds.stack_of(tb) != UNWRITTEN {
            continue;
        }
        chain.clear();
        let mut node = st.interner.leaf(tb);
        while node != NO_PARENT && ds.node_of(node) == UNWRITTEN {
            chain.push(node);
            node = st.interner.node_parent(node);
        }
        let mut parent = if node == NO_PARENT {
            0
        } else {
            ds.node_of(node)
        };
        for &n in chain.iter().rev() {
            ds.next_node += 1;
            let id = ds.next_node;
            ds.node_file[n as usize] = id;
            copied.nodes.push((id, parent, st.interner.node_frame(n)));
            parent = id;
        }
        let leaf = ds.node_of(st.interner.leaf(tb));
        let stack = ds.next_stack;
        ds.next_stack += 1;
        ds.tb_stack[tb as usize] = stack;
        st.stats.mark_changed(tb);
        let (thread, domain) = crate::domains::split_owner(st.interner.owner(tb));
        copied.stacks.push((stack, leaf, thread, domain));
    }
    Some(copied)
}

fn resolve_new(_gil: Gil, ds: &mut DrainState, c: &Copied, delta: &mut ProfileDelta) {
    // SAFETY: GIL held; no state reference alive; the frames name live code objects (a dead
    // one's frames are tombstones, see codes.rs) and nothing here frees Python objects.
    let r = unsafe { resolver() };
    if ds.generation != r.generation() {
        ds.generation = r.generation();
        ds.by_index.clear();
    }
    for &(id, parent, raw) in &c.nodes {
        // SAFETY: as above.
        let i = unsafe { r.resolve_unnamed(c.layout, raw) };
        let known = ds
            .by_index
            .get(i as usize)
            .copied()
            .filter(|&f| f != FrameId::MAX);
        let frame = known.unwrap_or_else(|| {
            // A frame first met in this resolver generation (after `clear_traces` a frame may
            // be written again under a new id: readers merge equal frames).
            let id = ds.next_frame;
            ds.next_frame += 1;
            delta.new_frames.push((id, r.frame(i).clone()));
            if let Some(address) = r.native_address(i) {
                delta.native_addresses.push((id, address));
            }
            if ds.by_index.len() <= i as usize {
                ds.by_index.resize(i as usize + 1, FrameId::MAX);
            }
            ds.by_index[i as usize] = id;
            id
        });
        delta.new_nodes.push(NewNode { id, parent, frame });
    }
    for &(id, leaf, thread_native_id, domain) in &c.stacks {
        delta.new_tree_stacks.push(NewTreeStack {
            id,
            leaf,
            thread_native_id,
            domain,
        });
    }
}

/// Bytes of memory held by the profiler's bookkeeping, per structure.
pub fn drain_memory_parts(_gil: Gil, out: &mut Vec<(&'static str, usize)>) {
    // SAFETY: GIL held; only the GIL holder touches DRAIN.
    let Some(ds) = (unsafe { (*DRAIN.0.get()).as_ref() }) else {
        return;
    };
    out.push((
        "drain.tb_stack",
        ds.tb_stack.capacity() * size_of::<StackId>(),
    ));
    out.push((
        "drain.node_file",
        ds.node_file.capacity() * size_of::<u32>(),
    ));
    out.push((
        "drain.frame_ids",
        ds.by_index.capacity() * size_of::<FrameId>(),
    ));
}

/// Number of stacks written to the capture so far.
pub fn stack_count(_gil: Gil) -> usize {
    // SAFETY: GIL held; only the GIL holder touches DRAIN.
    unsafe { (*DRAIN.0.get()).as_ref() }.map_or(0, |ds| ds.next_stack as usize)
}
