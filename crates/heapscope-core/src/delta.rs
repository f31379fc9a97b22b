//! What the in-process tracer hands the capture recorder at each drain: the frames and stacks
//! it interned since the last drain and the per-stack counters that changed. Plain data, so the
//! recorder (and its tests) need no Python.

use crate::frame::{Frame, FrameId};
use crate::profile::{StackId, StackStat};

/// A stack interned by the tracer since the last drain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewStack {
    /// Id assigned by the tracer: dense, starting at 0, never reused during a run.
    pub id: StackId,
    /// Frame ids (see [`ProfileDelta::new_frames`]), most recent call first.
    pub frames: Vec<FrameId>,
    /// OS thread id of the thread that allocated from this stack.
    pub thread_native_id: u64,
    /// tracemalloc domain of its blocks: 0 for the interpreter's, else what an extension
    /// passed to `PyTraceMalloc_Track` (numpy: 389047).
    pub domain: u32,
}

/// Running counters of one stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StackCounters {
    /// The stack.
    pub stack: StackId,
    /// Bytes allocated from this stack and not yet freed.
    pub live_bytes: u64,
    /// Blocks allocated from this stack and not yet freed.
    pub live_count: u64,
    /// Bytes ever allocated from this stack.
    pub total_bytes: u64,
    /// Blocks ever allocated from this stack.
    pub total_count: u64,
}

/// Everything that changed in the tracer since the previous drain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileDelta {
    /// Frames first seen since the last drain, with the ids stacks use for them (dense from 0).
    pub new_frames: Vec<(FrameId, Frame)>,
    /// Stacks first seen since the last drain.
    pub new_stacks: Vec<NewStack>,
    /// Stacks whose counters changed since the last drain, with their new values.
    pub changed: Vec<StackCounters>,
    /// Stacks whose figures at the peak changed since the last drain, with the new figures
    /// (bytes and count held by that stack at the moment of the current peak).
    pub peak_changed: Vec<StackStat>,
    /// Traced bytes now.
    pub current_bytes: u64,
    /// Highest traced bytes so far.
    pub peak_bytes: u64,
    /// Bytes allocated so far, freed or not.
    pub total_allocated_bytes: u64,
    /// Blocks allocated so far.
    pub total_allocations: u64,
}
