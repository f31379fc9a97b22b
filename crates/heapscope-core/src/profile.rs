//! A profile: what a capture file says about a whole run, ready to be rendered.
//!
//! Produced by replaying a capture file; consumed by every renderer in `heapscope-report`.
//! Stacks are interned; each view (`at_peak`, `at_end`, `total`) lists per-stack figures.

use crate::frame::{Frame, FrameId};

/// Index of a [`Stack`] in [`Profile::stacks`].
pub type StackId = u32;

/// A call stack, most recent call first, with the thread that ran it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Stack {
    /// Frame ids into [`Profile::frames`], most recent first (the leaf is `frames[0]`).
    pub frames: Vec<FrameId>,
    /// Index into [`Profile::threads`].
    pub thread: u32,
}

/// A thread seen during the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadInfo {
    /// The OS thread id.
    pub native_id: u64,
    /// The Python thread name, if known.
    pub name: String,
}

/// Bytes and block count attributed to one stack in one view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StackStat {
    /// The stack.
    pub stack: StackId,
    /// Bytes.
    pub bytes: u64,
    /// Number of memory blocks.
    pub count: u64,
}

/// One point of the memory timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Milliseconds since the start of the run.
    pub t_ms: u64,
    /// Traced bytes (current) at that moment.
    pub traced_bytes: u64,
    /// Resident set size of the process at that moment.
    pub rss_bytes: u64,
}

/// Facts about the run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    /// The command line that was profiled.
    pub command: Vec<String>,
    /// e.g. "3.11.7".
    pub python_version: String,
    /// Process id of the profiled program.
    pub pid: u32,
    /// Start of the run, milliseconds since the Unix epoch.
    pub start_time_unix_ms: u64,
    /// How long the run lasted, in milliseconds (up to the last flush if cut short).
    pub duration_ms: u64,
    /// Highest traced memory.
    pub peak_bytes: u64,
    /// When the peak was reached, milliseconds since the start.
    pub peak_time_ms: u64,
    /// Bytes allocated over the whole run, including what was freed.
    pub total_allocated_bytes: u64,
    /// Blocks allocated over the whole run.
    pub total_allocations: u64,
    /// The traceback limit used while recording.
    pub trace_limit: u32,
    /// True if the capture ended without its closing record (the process was killed).
    pub truncated: bool,
}

/// Which figures of a profile a report shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Memory held at the high-water mark of traced memory.
    Peak,
    /// Memory still held when recording ended (leaks).
    End,
    /// Everything allocated, including what was freed.
    Total,
}

/// Everything a capture file says about a run.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    /// Run metadata.
    pub meta: Meta,
    /// Distinct frames.
    pub frames: Vec<Frame>,
    /// Distinct stacks.
    pub stacks: Vec<Stack>,
    /// Threads, indexed by [`Stack::thread`].
    pub threads: Vec<ThreadInfo>,
    /// Live memory per stack at the peak.
    pub at_peak: Vec<StackStat>,
    /// Live memory per stack when recording ended.
    pub at_end: Vec<StackStat>,
    /// All allocations per stack over the run.
    pub total: Vec<StackStat>,
    /// Memory over time.
    pub timeline: Vec<Sample>,
}

impl Profile {
    /// The per-stack figures of one view.
    pub fn view(&self, view: View) -> &[StackStat] {
        match view {
            View::Peak => &self.at_peak,
            View::End => &self.at_end,
            View::Total => &self.total,
        }
    }
}
