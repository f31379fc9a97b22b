//! Reading a capture back into a [`Profile`].

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use heapscope_format::capture::{
    CaptureReader, CorruptKind, FrameEntry, Header, NativeAddress, Nodes, Record, TreeStacks,
};
use heapscope_format::FormatError;

use crate::frame::{Frame, FrameId};
use crate::profile::{
    ExitStatus, Meta, ProcessInfo, Profile, Sample, Stack, StackId, StackStat, ThreadInfo,
};
use crate::stack_tree::StackTree;

/// Frames stacks of the frame tree may expand to, in all: a fixed allowance plus so many per
/// byte of file read. Real captures expand to a few frames a byte (sympy: 1.5); a hostile
/// file of a long chain of nodes and many stacks naming its end would otherwise cost time
/// and memory far beyond its size.
const WALK_BUDGET_BASE: u64 = 1 << 24;
const WALK_BUDGET_PER_BYTE: u64 = 256;

/// Live and total counters of one stack: `[live_bytes, live_count, total_bytes, total_count]`.
type Counters = [u64; 4];

/// Replays a capture read from `input` into a profile. `progress` is called after each record
/// with the number of bytes consumed so far.
///
/// A capture cut short (no closing record) replays up to its last complete record and sets
/// `meta.truncated`; corruption anywhere is an error.
pub fn replay<R: Read>(input: R, progress: &mut dyn FnMut(u64)) -> Result<Profile, FormatError> {
    let mut reader = CaptureReader::new(input)?;
    let mut state = State::new(reader.header());
    while let Some(record) = reader.next_record()? {
        let offset = reader.offset();
        state.note_offset(offset);
        state
            .apply(record)
            .map_err(|kind| FormatError::CorruptRecord { offset, kind })?;
        progress(offset);
    }
    Ok(state.finish(reader.truncated()))
}

/// Replays the capture file at `path` (errors name the path).
pub fn replay_file(path: &Path, progress: &mut dyn FnMut(u64)) -> Result<Profile, FormatError> {
    let file = std::fs::File::open(path).map_err(|e| with_path(&e, path))?;
    replay(std::io::BufReader::with_capacity(1 << 16, file), progress)
}

fn with_path(e: &std::io::Error, path: &Path) -> FormatError {
    FormatError::Io(std::io::Error::new(
        e.kind(),
        format!("cannot read {}: {e}", path.display()),
    ))
}

/// One stack of the file: the profile stack it is (stacks of the frame tree with the same
/// frames, thread and domain are one), its running counters and its figures at the peak.
#[derive(Clone, Copy)]
struct FileStack {
    stack: StackId,
    counters: Counters,
    peak: (u64, u64),
}

pub(super) struct State {
    profile: Profile,
    frame_ids: hashbrown::HashMap<u32, FrameId>,
    /// Profile frames by content.
    frame_content: HashMap<Frame, FrameId>,
    /// File stack id -> index into `file_stacks`.
    stack_ids: hashbrown::HashMap<u32, usize>,
    file_stacks: Vec<FileStack>,
    /// Frame-tree nodes and the stacks made of them (version 2).
    tree: StackTree,
    /// Bytes of the file read: stacks of the tree may expand to `WALK_BUDGET_*` frames.
    bytes_read: u64,
    thread_ids: HashMap<u64, u32>,
    filenames: HashMap<String, Arc<str>>,
    peak_record_time: u64,
    peak_record_bytes: u64,
    last_time: u64,
    end_time: Option<u64>,
    ppid: Option<u32>,
    exit: Option<ExitStatus>,
    /// Shared objects whose tables named native frames (NATIVE_ADDRESSES). In a mutex only so
    /// that a reader may be shared between threads (the live view's); never contended.
    symbols: std::sync::Mutex<heapscope_symbols::Symbolizer>,
}

impl State {
    pub(super) fn new(header: &Header) -> Self {
        let meta = Meta {
            command: header.command.clone(),
            python_version: header.python_version.clone(),
            pid: header.pid,
            start_time_unix_ms: header.start_time_unix_ms,
            trace_limit: header.trace_limit,
            ..Meta::default()
        };
        State {
            profile: Profile {
                meta,
                ..Profile::default()
            },
            frame_ids: hashbrown::HashMap::new(),
            frame_content: HashMap::new(),
            stack_ids: hashbrown::HashMap::new(),
            file_stacks: Vec::new(),
            tree: StackTree::default(),
            bytes_read: 0,
            thread_ids: HashMap::new(),
            filenames: HashMap::new(),
            peak_record_time: 0,
            peak_record_bytes: 0,
            last_time: 0,
            end_time: None,
            ppid: None,
            exit: None,
            symbols: std::sync::Mutex::default(),
        }
    }

    fn thread(&mut self, native_id: u64) -> u32 {
        let threads = &mut self.profile.threads;
        *self.thread_ids.entry(native_id).or_insert_with(|| {
            threads.push(ThreadInfo {
                native_id,
                name: String::new(),
            });
            (threads.len() - 1) as u32
        })
    }

    fn stack(&self, id: u32) -> Result<usize, CorruptKind> {
        self.stack_ids
            .get(&id)
            .copied()
            .ok_or(CorruptKind::UndefinedReference("stack"))
    }

    pub(super) fn apply(&mut self, record: Record) -> Result<(), CorruptKind> {
        match record {
            Record::Frames(frames) => self.apply_frames(frames),
            Record::Stacks(stacks) => {
                for s in stacks {
                    if self.stack_ids.contains_key(&s.id) {
                        continue;
                    }
                    let frames = s
                        .frames
                        .iter()
                        .map(|f| self.frame_ids.get(f).copied())
                        .collect::<Option<Vec<_>>>()
                        .ok_or(CorruptKind::UndefinedReference("frame"))?;
                    let thread = self.thread(s.thread_native_id);
                    let stack = self.profile.stacks.len() as StackId;
                    self.profile.stacks.push(Stack {
                        frames,
                        thread,
                        domain: 0,
                        process: 0,
                    });
                    self.define(s.id, stack);
                }
            }
            Record::Nodes(n) => self.apply_nodes(&n)?,
            Record::TreeStacks(t) => self.apply_tree_stacks(&t)?,
            Record::Counters(c) => {
                let meta = &mut self.profile.meta;
                meta.peak_bytes = meta.peak_bytes.max(c.peak_bytes);
                meta.total_allocated_bytes = c.total_allocated_bytes;
                meta.total_allocations = c.total_allocations;
                self.last_time = self.last_time.max(c.t_ms);
                for e in c.stacks {
                    let i = self.stack(e.stack)?;
                    self.file_stacks[i].counters =
                        [e.live_bytes, e.live_count, e.total_bytes, e.total_count];
                }
            }
            Record::Peak(p) => {
                // Compared with the last PEAK's figure, not the meta's: COUNTERS, written
                // first in a flush, carry the new peak's bytes too.
                if p.peak_bytes > self.peak_record_bytes || self.peak_record_time == 0 {
                    self.peak_record_time = p.t_ms;
                    self.peak_record_bytes = p.peak_bytes;
                }
                self.profile.meta.peak_bytes = self.profile.meta.peak_bytes.max(p.peak_bytes);
                self.last_time = self.last_time.max(p.t_ms);
                for e in p.stacks {
                    let i = self.stack(e.stack)?;
                    self.file_stacks[i].peak = (e.bytes, e.count);
                }
            }
            Record::Samples(samples) => {
                for s in samples {
                    self.last_time = self.last_time.max(s.t_ms);
                    self.profile.timeline.push(Sample {
                        t_ms: s.t_ms,
                        traced_bytes: s.traced_bytes,
                        rss_bytes: s.rss_bytes,
                    });
                }
            }
            Record::ThreadNames(names) => {
                for n in names {
                    let t = self.thread(n.native_id) as usize;
                    self.profile.threads[t].name = n.name;
                }
            }
            Record::StackDomains(domains) => {
                for d in domains {
                    let i = self.stack(d.stack)?;
                    let stack = self.file_stacks[i].stack as usize;
                    self.profile.stacks[stack].domain = d.domain;
                }
            }
            Record::NativeFrames(ids) => self.mark_native(&ids),
            Record::NativeAddresses(addresses) => self.name_native(&addresses)?,
            Record::End { t_ms } => self.end_time = Some(t_ms),
            Record::Process { ppid } => self.ppid = Some(ppid),
            Record::Exit(status) => self.exit = Some(status),
        }
        Ok(())
    }

    /// FRAMES: frames first seen.
    fn apply_frames(&mut self, frames: Vec<FrameEntry>) {
        for f in frames {
            if self.frame_ids.contains_key(&f.id) {
                continue;
            }
            let filename = if let Some(name) = self.filenames.get(&f.filename) {
                Arc::clone(name)
            } else {
                let name: Arc<str> = Arc::from(f.filename.as_str());
                self.filenames.insert(f.filename, Arc::clone(&name));
                name
            };
            let frame = Frame {
                filename,
                function: f.function.into(),
                lineno: f.lineno,
                native: false,
            };
            // Equal frames under two ids (a writer that met a frame again after
            // `clear_traces`) are one frame, so stacks made of them are one too.
            let next = self.profile.frames.len() as FrameId;
            let id = *self.frame_content.entry(frame.clone()).or_insert(next);
            if id == next {
                self.profile.frames.push(frame);
            }
            self.frame_ids.insert(f.id, id);
        }
    }

    /// NODES: frame-tree nodes, numbered on from the last.
    fn apply_nodes(&mut self, n: &Nodes) -> Result<(), CorruptKind> {
        if n.first != self.tree.next_node() {
            return Err(CorruptKind::UndefinedReference("node"));
        }
        for &(parent, frame) in &n.nodes {
            let frame = self
                .frame_ids
                .get(&frame)
                .copied()
                .ok_or(CorruptKind::UndefinedReference("frame"))?;
            self.tree.add_node(parent, frame)?;
        }
        Ok(())
    }

    /// TREE_STACKS: stacks named by their innermost node; equal ones are one profile stack.
    fn apply_tree_stacks(&mut self, t: &TreeStacks) -> Result<(), CorruptKind> {
        let budget = WALK_BUDGET_BASE + WALK_BUDGET_PER_BYTE * self.bytes_read;
        for (i, s) in t.stacks.iter().enumerate() {
            let id = t
                .first
                .checked_add(i as u32)
                .ok_or(CorruptKind::ValueOutOfRange)?;
            if self.stack_ids.contains_key(&id) {
                continue;
            }
            let thread = self.thread(s.thread_native_id);
            let stack =
                self.tree
                    .stack(s.leaf, thread, s.domain, &mut self.profile.stacks, budget)?;
            self.define(id, stack);
        }
        Ok(())
    }

    /// A file stack id now names this profile stack.
    fn define(&mut self, id: u32, stack: StackId) {
        self.stack_ids.insert(id, self.file_stacks.len());
        self.file_stacks.push(FileStack {
            stack,
            counters: [0; 4],
            peak: (0, 0),
        });
    }

    /// The file has been read up to `offset` bytes.
    pub(super) fn note_offset(&mut self, offset: u64) {
        self.bytes_read = self.bytes_read.max(offset);
    }

    /// NATIVE_FRAMES: these frames (already defined) are native ones.
    fn mark_native(&mut self, ids: &[u32]) {
        for id in ids {
            if let Some(&i) = self.frame_ids.get(id) {
                if let Some(frame) = self.profile.frames.get_mut(i as usize) {
                    frame.native = true;
                }
            }
        }
    }

    /// NATIVE_ADDRESSES: name these native frames (defined with their object as the file) from
    /// the object's tables. A name met before is that frame (equal frames are one); an
    /// object that cannot be read keeps the object and offset the writer gave.
    fn name_native(&mut self, addresses: &[NativeAddress]) -> Result<(), CorruptKind> {
        for a in addresses {
            let i = *self
                .frame_ids
                .get(&a.frame)
                .ok_or(CorruptKind::UndefinedReference("frame"))?;
            let Some(frame) = self.profile.frames.get(i as usize) else {
                continue;
            };
            let mut symbols = self
                .symbols
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let Some(named) =
                crate::native_frames::symbolize(&mut symbols, &frame.filename, a.address)
            else {
                continue;
            };
            drop(symbols);
            if let Some(&same) = self.frame_content.get(&named) {
                self.frame_ids.insert(a.frame, same);
            } else {
                self.frame_content.insert(named.clone(), i);
                self.profile.frames[i as usize] = named;
            }
        }
        Ok(())
    }

    fn finish(mut self, truncated: bool) -> Profile {
        // The last use of the state: its profile is moved, not copied.
        let profile = std::mem::take(&mut self.profile);
        self.complete(profile, truncated)
    }

    /// The profile as the records applied so far describe it (the state stays usable).
    pub(super) fn profile_now(&self, truncated: bool) -> Profile {
        self.complete(self.profile.clone(), truncated)
    }

    /// `profile` (the stacks and frames read so far) with its figures, views and facts.
    fn complete(&self, mut profile: Profile, truncated: bool) -> Profile {
        trim_runner_frames(&mut profile);
        let p = &mut profile;
        p.meta.truncated = truncated || self.end_time.is_none();
        p.meta.duration_ms = self.end_time.unwrap_or(self.last_time);
        p.timeline.sort_by_key(|s| s.t_ms);
        // The highest sample, if it shows the peak (a plateau at the peak); else the PEAK
        // records' time: the sampler's, at most one interval late (captures before 2026-12-07:
        // the flush's, up to a flush interval late), as a spike between two samples is in none.
        p.meta.peak_time_ms = p
            .timeline
            .iter()
            .max_by_key(|s| (s.traced_bytes, std::cmp::Reverse(s.t_ms)))
            .filter(|s| s.traced_bytes.saturating_mul(100) >= p.meta.peak_bytes.saturating_mul(99))
            .map_or(self.peak_record_time, |s| s.t_ms);
        // Figures per profile stack: the sum over the file stacks that are it.
        let mut counters = vec![[0u64; 4]; p.stacks.len()];
        let mut peak = vec![(0u64, 0u64); p.stacks.len()];
        for f in &self.file_stacks {
            let c = &mut counters[f.stack as usize];
            for (sum, v) in c.iter_mut().zip(f.counters) {
                *sum += v;
            }
            let at_peak = &mut peak[f.stack as usize];
            at_peak.0 += f.peak.0;
            at_peak.1 += f.peak.1;
        }
        for (i, (c, &(pb, pc))) in counters.iter().zip(&peak).enumerate() {
            let stack = i as StackId;
            if c[0] > 0 || c[1] > 0 {
                p.at_end.push(StackStat {
                    stack,
                    bytes: c[0],
                    count: c[1],
                });
            }
            if c[2] > 0 || c[3] > 0 {
                p.total.push(StackStat {
                    stack,
                    bytes: c[2],
                    count: c[3],
                });
            }
            if pb > 0 || pc > 0 {
                p.at_peak.push(StackStat {
                    stack,
                    bytes: pb,
                    count: pc,
                });
            }
        }
        let m = &p.meta;
        p.processes = vec![ProcessInfo {
            pid: m.pid,
            ppid: self.ppid,
            command: m.command.clone(),
            python_version: m.python_version.clone(),
            start_time_unix_ms: m.start_time_unix_ms,
            duration_ms: m.duration_ms,
            peak_bytes: m.peak_bytes,
            peak_time_ms: m.peak_time_ms,
            total_allocated_bytes: m.total_allocated_bytes,
            total_allocations: m.total_allocations,
            exit: self.exit,
            truncated: m.truncated,
            note: None,
            timeline: p.timeline.clone(),
        }];
        profile
    }

    /// The timeline samples applied so far, in file order.
    pub(super) fn timeline(&self) -> &[Sample] {
        &self.profile.timeline
    }

    /// True once the closing record was applied.
    pub(super) fn ended(&self) -> bool {
        self.end_time.is_some()
    }
}

/// Files of the code that runs a profiled program (`heapscope run` and `runpy`): not part of
/// the user's program, so they are cut from the bottom of stacks.
const RUNNER_FILES: &[&str] = &[
    "heapscope/cli/run.py",
    "heapscope/cli/__init__.py",
    "heapscope/__main__.py",
    "<frozen runpy>",
    "/runpy.py",
    "/bin/heapscope",
];

fn is_runner_file(filename: &str) -> bool {
    RUNNER_FILES.iter().any(|suffix| filename.ends_with(suffix))
}

/// Drops the frames of the runner from the bottom (outermost end) of every stack that has at
/// least one frame of its own, so stacks start at the program's `<module>`.
fn trim_runner_frames(profile: &mut Profile) {
    let runner: Vec<bool> = profile
        .frames
        .iter()
        .map(|f| is_runner_file(&f.filename))
        .collect();
    let is_runner = |f: &FrameId| runner.get(*f as usize).copied().unwrap_or(false);
    for stack in &mut profile.stacks {
        let keep = stack
            .frames
            .iter()
            .rposition(|f| !is_runner(f))
            .map_or(0, |i| i + 1);
        // A stack made only of runner frames is heapscope's own: kept whole.
        if keep > 0 {
            stack.frames.truncate(keep);
        }
    }
}
