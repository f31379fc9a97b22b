//! A profile: what a capture file says about a whole run, ready to be rendered.
//!
//! Produced by replaying a capture file; consumed by every renderer in `heapscope-report`.
//! Stacks are interned; each view (`at_peak`, `at_end`, `total`) lists per-stack figures.

use std::collections::HashMap;

use crate::frame::{Frame, FrameId};
pub use heapscope_format::capture::ExitStatus;

/// Index of a [`Stack`] in [`Profile::stacks`].
pub type StackId = u32;

/// A call stack, most recent call first, with the thread that ran it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Stack {
    /// Frame ids into [`Profile::frames`], most recent first (the leaf is `frames[0]`).
    pub frames: Vec<FrameId>,
    /// Index into [`Profile::threads`].
    pub thread: u32,
    /// tracemalloc domain of the blocks allocated here (0: the interpreter's own; an
    /// extension's domain for what it reported through `PyTraceMalloc_Track`).
    pub domain: u32,
    /// Index into [`Profile::processes`] (0 when the profile has one process or none listed).
    pub process: u32,
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

/// One process of the traced program's tree (a capture holds one stream per process).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Process id.
    pub pid: u32,
    /// Parent process id, for processes started by the traced program (`None` for the root).
    pub ppid: Option<u32>,
    /// The process's command line (`sys.orig_argv` for children).
    pub command: Vec<String>,
    /// e.g. "3.11.7" (empty for a process that could not be traced).
    pub python_version: String,
    /// Start of the process's recording, milliseconds since the Unix epoch.
    pub start_time_unix_ms: u64,
    /// How long its recording lasted, in milliseconds.
    pub duration_ms: u64,
    /// Highest traced memory of this process.
    pub peak_bytes: u64,
    /// When this process reached its peak, milliseconds since its own start.
    pub peak_time_ms: u64,
    /// Bytes allocated by this process over its run.
    pub total_allocated_bytes: u64,
    /// Blocks allocated by this process over its run.
    pub total_allocations: u64,
    /// How it ended, if it recorded that (`None`: killed without warning, or unknown).
    pub exit: Option<ExitStatus>,
    /// True if its stream ended without its closing record (e.g. SIGKILL).
    pub truncated: bool,
    /// Why the process is listed without figures (not traced, stream unreadable).
    pub note: Option<String>,
    /// Its own memory over time (times relative to its own start).
    pub timeline: Vec<Sample>,
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
    /// Memory over time (for several processes: their traced memory summed).
    pub timeline: Vec<Sample>,
    /// The processes the profile covers, the root first (empty for profiles not read from a
    /// capture, which describe one process through [`Meta`]).
    pub processes: Vec<ProcessInfo>,
}

impl Profile {
    /// The same profile with the native (C) frames of `--native` taken out of every stack
    /// (`--hide-native`): a stack left with no frame (a thread C code started) keeps one
    /// `<native>` frame. Figures are unchanged.
    #[must_use]
    pub fn without_native_frames(mut self) -> Profile {
        if !self.frames.iter().any(|f| f.native) {
            return self;
        }
        let placeholder = self.frames.len() as FrameId;
        let mut used = false;
        for stack in &mut self.stacks {
            let frames = &self.frames;
            stack
                .frames
                .retain(|&f| frames.get(f as usize).is_none_or(|f| !f.native));
            if stack.frames.is_empty() {
                stack.frames.push(placeholder);
                used = true;
            }
        }
        if used {
            self.frames.push(Frame::new("<native>", 0));
        }
        self
    }

    /// The per-stack figures of one view.
    pub fn view(&self, view: View) -> &[StackStat] {
        match view {
            View::Peak => &self.at_peak,
            View::End => &self.at_end,
            View::Total => &self.total,
        }
    }
}

/// The index of a thread in `threads`, added if new.
fn thread_index(threads: &mut Vec<ThreadInfo>, native_id: u64) -> u32 {
    let known = threads.iter().position(|t| t.native_id == native_id);
    known.unwrap_or_else(|| {
        threads.push(ThreadInfo {
            native_id,
            name: String::new(),
        });
        threads.len() - 1
    }) as u32
}

/// The stacks of the frame tree in a delta, added to `stacks` (those with the same frames,
/// thread and domain as one); returns the delta's stack id -> profile stack id. The delta is
/// the tracer's own: nodes come in order from 1 and name frames by their profile ids.
/// Name the native frames of a drain from their objects' tables (`native_frames`); returns
/// the frame each frame id is (frames named alike are one: the first of them).
fn name_native_frames(frames: &mut [Frame], addresses: &[(FrameId, u64)]) -> Vec<FrameId> {
    let mut canon: Vec<FrameId> = (0..frames.len() as FrameId).collect();
    if addresses.is_empty() {
        return canon;
    }
    let mut symbols = heapscope_symbols::Symbolizer::default();
    let mut named: HashMap<Frame, FrameId> = HashMap::new();
    for &(id, address) in addresses {
        let Some(frame) = frames.get(id as usize) else {
            continue;
        };
        let Some(frame) = crate::native_frames::symbolize(&mut symbols, &frame.filename, address)
        else {
            continue;
        };
        if let Some(&same) = named.get(&frame) {
            canon[id as usize] = same;
        } else {
            named.insert(frame.clone(), id);
            frames[id as usize] = frame;
        }
    }
    canon
}

/// The frame `id` is, per `name_native_frames`.
fn canonical(canon: &[FrameId], id: FrameId) -> FrameId {
    canon.get(id as usize).copied().unwrap_or(id)
}

fn tree_stacks(
    delta: &crate::delta::ProfileDelta,
    canon: &[FrameId],
    stacks: &mut Vec<Stack>,
    threads: &mut Vec<ThreadInfo>,
) -> HashMap<StackId, StackId> {
    let mut tree = crate::stack_tree::StackTree::default();
    for n in &delta.new_nodes {
        let frame = canonical(canon, n.frame);
        if n.id != tree.next_node() || tree.add_node(n.parent, frame).is_err() {
            break;
        }
    }
    let mut remap: HashMap<StackId, StackId> = HashMap::new();
    for s in &delta.new_tree_stacks {
        let thread = thread_index(threads, s.thread_native_id);
        if let Ok(id) = tree.stack(s.leaf, thread, s.domain, stacks, u64::MAX) {
            remap.insert(s.id, id);
        }
    }
    remap
}

/// Figures summed per profile stack (`remap` maps delta ids to profile ids), without zeros.
fn sum_by_stack(
    entries: &mut dyn Iterator<Item = (StackId, u64, u64)>,
    remap: &HashMap<StackId, StackId>,
) -> Vec<StackStat> {
    let mut sums: HashMap<StackId, (u64, u64)> = HashMap::new();
    for (stack, bytes, count) in entries {
        let stack = remap.get(&stack).copied().unwrap_or(stack);
        let e = sums.entry(stack).or_default();
        e.0 += bytes;
        e.1 += count;
    }
    let mut out: Vec<StackStat> = sums
        .into_iter()
        .filter(|&(_, (_, count))| count > 0)
        .map(|(stack, (bytes, count))| StackStat {
            stack,
            bytes,
            count,
        })
        .collect();
    out.sort_by_key(|s| s.stack);
    out
}

impl Profile {
    /// A profile of everything the tracer drained since it started: `delta` must be the first
    /// drain (it then holds every frame, stack and counter). Stacks keep the thread ids the
    /// tracer gave them.
    pub fn from_first_delta(delta: &crate::delta::ProfileDelta, mut meta: Meta) -> Profile {
        let mut frames = vec![crate::frame::Frame::new("<unknown>", 0); delta.new_frames.len()];
        for (id, frame) in &delta.new_frames {
            if let Some(slot) = frames.get_mut(*id as usize) {
                *slot = frame.clone();
            }
        }
        let canon = name_native_frames(&mut frames, &delta.native_addresses);
        let mut threads: Vec<ThreadInfo> = Vec::new();
        let mut stacks = vec![
            Stack {
                frames: Vec::new(),
                thread: 0,
                domain: 0,
                process: 0,
            };
            delta.new_stacks.len()
        ];
        for s in &delta.new_stacks {
            let thread = thread_index(&mut threads, s.thread_native_id);
            if let Some(slot) = stacks.get_mut(s.id as usize) {
                *slot = Stack {
                    frames: s.frames.iter().map(|&f| canonical(&canon, f)).collect(),
                    thread,
                    domain: s.domain,
                    process: 0,
                };
            }
        }
        let remap = tree_stacks(delta, &canon, &mut stacks, &mut threads);
        let merge =
            |entries: &mut dyn Iterator<Item = (StackId, u64, u64)>| sum_by_stack(entries, &remap);
        meta.peak_bytes = delta.peak_bytes;
        meta.total_allocated_bytes = delta.total_allocated_bytes;
        meta.total_allocations = delta.total_allocations;
        Profile {
            meta,
            frames,
            at_peak: merge(
                &mut delta
                    .peak_changed
                    .iter()
                    .map(|p| (p.stack, p.bytes, p.count)),
            ),
            at_end: merge(
                &mut delta
                    .changed
                    .iter()
                    .map(|c| (c.stack, c.live_bytes, c.live_count)),
            ),
            total: merge(
                &mut delta
                    .changed
                    .iter()
                    .map(|c| (c.stack, c.total_bytes, c.total_count)),
            ),
            stacks,
            threads,
            timeline: Vec::new(),
            processes: Vec::new(),
        }
    }
}

#[cfg(test)]
mod from_delta_tests {
    use super::{Meta, Profile, View};
    use crate::delta::{NewStack, ProfileDelta, StackCounters};
    use crate::frame::Frame;

    #[test]
    fn a_first_drain_becomes_a_profile() {
        let delta = ProfileDelta {
            new_nodes: Vec::new(),
            new_tree_stacks: Vec::new(),
            new_frames: vec![(0, Frame::new("a.py", 1)), (1, Frame::new("b.py", 2))],
            native_addresses: Vec::new(),
            new_stacks: vec![
                NewStack {
                    id: 0,
                    frames: vec![0, 1],
                    thread_native_id: 7,
                    domain: 0,
                },
                NewStack {
                    id: 1,
                    frames: vec![1],
                    thread_native_id: 9,
                    domain: 0,
                },
            ],
            changed: vec![
                StackCounters {
                    stack: 0,
                    live_bytes: 10,
                    live_count: 1,
                    total_bytes: 30,
                    total_count: 3,
                },
                StackCounters {
                    stack: 1,
                    live_bytes: 0,
                    live_count: 0,
                    total_bytes: 5,
                    total_count: 1,
                },
            ],
            peak_changed: vec![crate::profile::StackStat {
                stack: 1,
                bytes: 5,
                count: 1,
            }],
            current_bytes: 10,
            peak_bytes: 15,
            total_allocated_bytes: 35,
            total_allocations: 4,
        };
        let p = Profile::from_first_delta(&delta, Meta::default());
        assert_eq!(p.frames[1].filename.as_ref(), "b.py");
        assert_eq!((p.stacks[0].thread, p.stacks[1].thread), (0, 1));
        assert_eq!(p.view(View::End).len(), 1);
        assert_eq!(p.view(View::Total).iter().map(|s| s.bytes).sum::<u64>(), 35);
        assert_eq!(p.view(View::Peak)[0].stack, 1);
        assert_eq!((p.meta.peak_bytes, p.meta.total_allocations), (15, 4));
    }
}
