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

/// A node of the tracer's frame tree, first written in this drain: a frame under its parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewNode {
    /// Id assigned by the drain: dense from 1, never reused during a run.
    pub id: u32,
    /// The parent node (an id of an earlier node), or 0 for an outermost frame.
    pub parent: u32,
    /// Frame id (see [`ProfileDelta::new_frames`]).
    pub frame: FrameId,
}

/// A stack first written in this drain, named by its innermost node: its frames are that
/// node's path to the root, most recent call first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewTreeStack {
    /// Id assigned by the drain: dense from 0, never reused during a run. Several stacks may
    /// have the same frames (the tracer forgot one and met it again): readers merge them.
    pub id: StackId,
    /// Innermost node.
    pub leaf: u32,
    /// OS thread id of the thread that allocated from this stack.
    pub thread_native_id: u64,
    /// tracemalloc domain of its blocks.
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
    /// Of the new frames, native ones not named yet ([`crate::native_frames::placeholder`]:
    /// the object is the frame's file) with the address to look up in their object.
    pub native_addresses: Vec<(FrameId, u64)>,
    /// Stacks first seen since the last drain.
    pub new_stacks: Vec<NewStack>,
    /// Frame-tree nodes first written in this drain (before the stacks that name them).
    pub new_nodes: Vec<NewNode>,
    /// Stacks first written in this drain, by innermost node.
    pub new_tree_stacks: Vec<NewTreeStack>,
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
