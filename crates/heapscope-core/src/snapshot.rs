//! Snapshots of live traces, shaped like tracemalloc's: what `take_snapshot()` returns.
//!
//! Tracebacks are interned: traces refer to them by [`TracebackId`], and two traces with the
//! same frames share one traceback (the stdlib's tests assert that identity).

use crate::frame::{Frame, FrameId};

/// Index of a [`Traceback`] in [`Snapshot::tracebacks`].
pub type TracebackId = u32;

/// The frames of one allocation, most recent call first (tracemalloc's raw order).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Traceback {
    /// Frame ids into [`Snapshot::frames`], most recent first; at most the traceback limit.
    pub frames: Box<[FrameId]>,
    /// How many frames the stack had, including those the limit cut off.
    pub total_nframe: u32,
}

/// One live memory block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trace {
    /// Address space (0 for the Python allocators).
    pub domain: u32,
    /// Size of the block in bytes.
    pub size: u64,
    /// Where it was allocated.
    pub traceback: TracebackId,
}

/// A set of live traces with the frame and traceback tables they refer to.
///
/// Invariant: every `Trace::traceback` indexes `tracebacks`, every frame id indexes `frames`,
/// and `frames`/`tracebacks` hold no duplicates.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Distinct frames.
    pub frames: Vec<Frame>,
    /// Distinct tracebacks.
    pub tracebacks: Vec<Traceback>,
    /// Live traces, in no particular order.
    pub traces: Vec<Trace>,
    /// The traceback limit in force when the snapshot was taken.
    pub traceback_limit: u32,
}
