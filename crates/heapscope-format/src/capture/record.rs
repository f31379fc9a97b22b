//! The records of a capture file and their payload encodings (see `docs/capture-format.md`).
//!
//! All integers in payloads are unsigned LEB128 varints; strings are a varint byte length
//! followed by UTF-8. Lists are a varint count followed by the entries.

use super::codec::{put_str, put_varint, Decoder};
use super::CorruptKind;

/// Record kind bytes. A reader skips kinds it does not know (checksummed like the others).
pub mod kind {
    /// The header, always the first record.
    pub const HEADER: u8 = 0;
    /// Frames first seen.
    pub const FRAMES: u8 = 1;
    /// Stacks first seen.
    pub const STACKS: u8 = 2;
    /// Totals and per-stack counters that changed.
    pub const COUNTERS: u8 = 3;
    /// Per-stack figures at the peak that changed.
    pub const PEAK: u8 = 4;
    /// Timeline samples.
    pub const SAMPLES: u8 = 5;
    /// Thread names.
    pub const THREAD_NAMES: u8 = 6;
    /// The closing record of a run that ended normally.
    pub const END: u8 = 7;
    /// The tracemalloc domain of stacks whose blocks are not the interpreter's (what C
    /// extensions report through `PyTraceMalloc_Track`). Added in format version 1 as a new
    /// kind: readers that predate it skip it and see those stacks as domain 0.
    pub const STACK_DOMAINS: u8 = 8;
    /// The parent of the process (captures of child processes).
    pub const PROCESS: u8 = 9;
    /// How the process ended (before END).
    pub const EXIT: u8 = 10;
    /// Frames that are native (C) frames (`--native`). Added in format version 1 as a new
    /// kind: readers that predate it skip it and show those frames as Python frames.
    pub const NATIVE_FRAMES: u8 = 11;
    /// Nodes of the frame tree first seen (format version 2).
    pub const NODES: u8 = 12;
    /// Stacks first seen, each named by its innermost node (format version 2).
    pub const TREE_STACKS: u8 = 13;
    /// Native frames whose function, file and line the reader looks up in their shared object
    /// (`--native`: the traced process does not read debug information). Added to version 2
    /// as a new kind: readers that predate it skip it and show the object and offset.
    pub const NATIVE_ADDRESSES: u8 = 14;
}

/// How a process ended, as far as it could tell itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// It exited with this status (`sys.exit`, `os._exit`, the end of the program).
    Code(u32),
    /// It was ended by this signal (after flushing its capture).
    Signal(u32),
    /// It replaced its program with `os.exec*` (the new program's capture follows).
    Exec,
}

impl ExitStatus {
    fn encode(self, buf: &mut Vec<u8>) {
        let (how, value) = match self {
            ExitStatus::Code(c) => (0, c),
            ExitStatus::Signal(s) => (1, s),
            ExitStatus::Exec => (2, 0),
        };
        put_varint(buf, how);
        put_varint(buf, u64::from(value));
    }

    fn decode(d: &mut Decoder<'_>) -> Result<Self, CorruptKind> {
        let how = d.varint()?;
        let value = d.varint_u32()?;
        match how {
            0 => Ok(ExitStatus::Code(value)),
            1 => Ok(ExitStatus::Signal(value)),
            2 => Ok(ExitStatus::Exec),
            _ => Err(CorruptKind::ValueOutOfRange),
        }
    }
}

/// Facts about the run, written once at the start of the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    /// e.g. "3.11.7".
    pub python_version: String,
    /// The profiled command line.
    pub command: Vec<String>,
    /// Start of the run, milliseconds since the Unix epoch.
    pub start_time_unix_ms: u64,
    /// Process id of the profiled program.
    pub pid: u32,
    /// Traceback limit used while recording.
    pub trace_limit: u32,
}

/// A frame first seen: `id` is what stacks refer to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameEntry {
    /// Id assigned by the tracer.
    pub id: u32,
    /// `co_filename`.
    pub filename: String,
    /// `co_qualname` (may be empty).
    pub function: String,
    /// Line number (0 if unknown).
    pub lineno: u32,
}

/// A stack first seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackEntry {
    /// Id assigned by the tracer.
    pub id: u32,
    /// OS thread id that allocated from this stack.
    pub thread_native_id: u64,
    /// Frame ids, most recent call first.
    pub frames: Vec<u32>,
}

/// Nodes of the frame tree, numbered from `first` on (ids are never reused in a file).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Nodes {
    /// Id of the first node; the others follow one by one.
    pub first: u32,
    /// Per node: its parent (0 for an outermost frame; else a node defined earlier) and its
    /// frame id.
    pub nodes: Vec<(u32, u32)>,
}

/// A stack first seen, named by its innermost node: its frames are that node's path to the
/// root, most recent call first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TreeStack {
    /// OS thread id that allocated from this stack.
    pub thread_native_id: u64,
    /// tracemalloc domain (0: the interpreter's own).
    pub domain: u32,
    /// Innermost node.
    pub leaf: u32,
}

/// Stacks first seen, numbered from `first` on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TreeStacks {
    /// Id of the first stack; the others follow one by one.
    pub first: u32,
    /// The stacks.
    pub stacks: Vec<TreeStack>,
}

/// The domain of one stack (stacks without such an entry are domain 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StackDomain {
    /// Stack id (defined by an earlier or the same flush's STACKS record).
    pub stack: u32,
    /// tracemalloc domain (numpy: 389047).
    pub domain: u32,
}

/// A native frame and the address in its shared object where its code is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NativeAddress {
    /// Frame id (defined by an earlier FRAMES record, named by NATIVE_FRAMES).
    pub frame: u32,
    /// The address of the call in the object's own virtual addresses (the return address
    /// less one, less the object's load bias).
    pub address: u64,
}

/// The new running counters of one stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CounterEntry {
    /// Stack id.
    pub stack: u32,
    /// Bytes allocated and not yet freed.
    pub live_bytes: u64,
    /// Blocks allocated and not yet freed.
    pub live_count: u64,
    /// Bytes ever allocated.
    pub total_bytes: u64,
    /// Blocks ever allocated.
    pub total_count: u64,
}

/// Totals at one flush and the per-stack counters that changed since the previous one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Counters {
    /// Milliseconds since the start of the run.
    pub t_ms: u64,
    /// Traced bytes now.
    pub current_bytes: u64,
    /// Highest traced bytes so far.
    pub peak_bytes: u64,
    /// Bytes allocated so far.
    pub total_allocated_bytes: u64,
    /// Blocks allocated so far.
    pub total_allocations: u64,
    /// Changed stacks.
    pub stacks: Vec<CounterEntry>,
}

/// Bytes and blocks one stack held at the peak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PeakEntry {
    /// Stack id.
    pub stack: u32,
    /// Bytes held at the peak.
    pub bytes: u64,
    /// Blocks held at the peak.
    pub count: u64,
}

/// Per-stack figures at the peak that changed since the previous flush.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Peak {
    /// Milliseconds since the start when this was flushed (the peak happened before).
    pub t_ms: u64,
    /// The peak, in traced bytes.
    pub peak_bytes: u64,
    /// Changed stacks; a stack absent from the peak is written with zeros.
    pub stacks: Vec<PeakEntry>,
}

/// One point of the memory timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SampleEntry {
    /// Milliseconds since the start of the run.
    pub t_ms: u64,
    /// Traced bytes.
    pub traced_bytes: u64,
    /// Resident set size.
    pub rss_bytes: u64,
}

/// The Python name of an OS thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadName {
    /// OS thread id.
    pub native_id: u64,
    /// `threading.Thread.name`.
    pub name: String,
}

/// One record after the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// Frames first seen.
    Frames(Vec<FrameEntry>),
    /// Stacks first seen.
    Stacks(Vec<StackEntry>),
    /// Totals and changed counters.
    Counters(Counters),
    /// Changed figures at the peak.
    Peak(Peak),
    /// Timeline samples.
    Samples(Vec<SampleEntry>),
    /// Thread names (a later name for the same thread replaces an earlier one).
    ThreadNames(Vec<ThreadName>),
    /// Domains of stacks first seen (only stacks of a domain other than 0).
    StackDomains(Vec<StackDomain>),
    /// Ids of frames first seen that are native (C) frames.
    NativeFrames(Vec<u32>),
    /// Native frames (defined earlier, their `filename` the shared object's path) with the
    /// address to look up in that object (an address of its own file, not of the process).
    NativeAddresses(Vec<NativeAddress>),
    /// Nodes of the frame tree first seen (version 2).
    Nodes(Nodes),
    /// Stacks first seen, by innermost node (version 2).
    TreeStacks(TreeStacks),
    /// The process was started by the process `ppid` (a child of the traced program).
    Process {
        /// The parent's process id.
        ppid: u32,
    },
    /// How the process ended.
    Exit(ExitStatus),
    /// The run ended normally after `t_ms` milliseconds.
    End {
        /// Duration of the run in milliseconds.
        t_ms: u64,
    },
}

impl Header {
    /// Appends the header payload to `buf`.
    pub fn encode(&self, buf: &mut Vec<u8>) {
        put_str(buf, &self.python_version);
        put_varint(buf, self.command.len() as u64);
        for arg in &self.command {
            put_str(buf, arg);
        }
        put_varint(buf, self.start_time_unix_ms);
        put_varint(buf, u64::from(self.pid));
        put_varint(buf, u64::from(self.trace_limit));
    }

    /// Decodes a header payload.
    pub fn decode(payload: &[u8]) -> Result<Self, CorruptKind> {
        let mut d = Decoder::new(payload);
        let python_version = d.string()?;
        let n = d.count(1)?;
        let mut command = Vec::with_capacity(n);
        for _ in 0..n {
            command.push(d.string()?);
        }
        let header = Header {
            python_version,
            command,
            start_time_unix_ms: d.varint()?,
            pid: d.varint_u32()?,
            trace_limit: d.varint_u32()?,
        };
        d.finish()?;
        Ok(header)
    }
}

impl Record {
    /// The kind byte of this record.
    pub fn kind(&self) -> u8 {
        match self {
            Record::Frames(_) => kind::FRAMES,
            Record::Stacks(_) => kind::STACKS,
            Record::Counters(_) => kind::COUNTERS,
            Record::Peak(_) => kind::PEAK,
            Record::Samples(_) => kind::SAMPLES,
            Record::ThreadNames(_) => kind::THREAD_NAMES,
            Record::StackDomains(_) => kind::STACK_DOMAINS,
            Record::NativeFrames(_) => kind::NATIVE_FRAMES,
            Record::NativeAddresses(_) => kind::NATIVE_ADDRESSES,
            Record::Nodes(_) => kind::NODES,
            Record::TreeStacks(_) => kind::TREE_STACKS,
            Record::End { .. } => kind::END,
            Record::Process { .. } => kind::PROCESS,
            Record::Exit(_) => kind::EXIT,
        }
    }

    /// Appends the payload of this record to `buf`.
    pub fn encode(&self, buf: &mut Vec<u8>) {
        match self {
            Record::Frames(frames) => {
                put_varint(buf, frames.len() as u64);
                for f in frames {
                    put_varint(buf, u64::from(f.id));
                    put_str(buf, &f.filename);
                    put_str(buf, &f.function);
                    put_varint(buf, u64::from(f.lineno));
                }
            }
            Record::Stacks(stacks) => {
                put_varint(buf, stacks.len() as u64);
                for s in stacks {
                    put_varint(buf, u64::from(s.id));
                    put_varint(buf, s.thread_native_id);
                    put_varint(buf, s.frames.len() as u64);
                    for &f in &s.frames {
                        put_varint(buf, u64::from(f));
                    }
                }
            }
            Record::Counters(c) => {
                for v in [
                    c.t_ms,
                    c.current_bytes,
                    c.peak_bytes,
                    c.total_allocated_bytes,
                ] {
                    put_varint(buf, v);
                }
                put_varint(buf, c.total_allocations);
                put_varint(buf, c.stacks.len() as u64);
                for e in &c.stacks {
                    put_varint(buf, u64::from(e.stack));
                    for v in [e.live_bytes, e.live_count, e.total_bytes, e.total_count] {
                        put_varint(buf, v);
                    }
                }
            }
            Record::Peak(p) => {
                put_varint(buf, p.t_ms);
                put_varint(buf, p.peak_bytes);
                put_varint(buf, p.stacks.len() as u64);
                for e in &p.stacks {
                    put_varint(buf, u64::from(e.stack));
                    put_varint(buf, e.bytes);
                    put_varint(buf, e.count);
                }
            }
            Record::Samples(samples) => {
                // Times are delta-encoded against the previous sample of the record.
                put_varint(buf, samples.len() as u64);
                let mut prev = 0;
                for s in samples {
                    put_varint(buf, s.t_ms.wrapping_sub(prev));
                    prev = s.t_ms;
                    put_varint(buf, s.traced_bytes);
                    put_varint(buf, s.rss_bytes);
                }
            }
            Record::ThreadNames(names) => {
                put_varint(buf, names.len() as u64);
                for n in names {
                    put_varint(buf, n.native_id);
                    put_str(buf, &n.name);
                }
            }
            Record::StackDomains(domains) => {
                put_varint(buf, domains.len() as u64);
                for d in domains {
                    put_varint(buf, u64::from(d.stack));
                    put_varint(buf, u64::from(d.domain));
                }
            }
            Record::NativeFrames(ids) => encode_ids(buf, ids),
            Record::NativeAddresses(addresses) => encode_native_addresses(buf, addresses),
            Record::Nodes(n) => {
                put_varint(buf, u64::from(n.first));
                put_varint(buf, n.nodes.len() as u64);
                for &(parent, frame) in &n.nodes {
                    put_varint(buf, u64::from(parent));
                    put_varint(buf, u64::from(frame));
                }
            }
            Record::TreeStacks(t) => {
                put_varint(buf, u64::from(t.first));
                put_varint(buf, t.stacks.len() as u64);
                for s in &t.stacks {
                    put_varint(buf, s.thread_native_id);
                    put_varint(buf, u64::from(s.domain));
                    put_varint(buf, u64::from(s.leaf));
                }
            }
            Record::End { t_ms } => put_varint(buf, *t_ms),
            Record::Process { ppid } => put_varint(buf, u64::from(*ppid)),
            Record::Exit(status) => status.encode(buf),
        }
    }

    /// Decodes the payload of a record of kind `kind`; `None` for a kind this version does
    /// not know.
    pub fn decode(kind: u8, payload: &[u8]) -> Result<Option<Self>, CorruptKind> {
        let mut d = Decoder::new(payload);
        let record = match kind {
            kind::FRAMES => {
                let n = d.count(4)?;
                let mut frames = Vec::with_capacity(n);
                for _ in 0..n {
                    frames.push(FrameEntry {
                        id: d.varint_u32()?,
                        filename: d.string()?,
                        function: d.string()?,
                        lineno: d.varint_u32()?,
                    });
                }
                Record::Frames(frames)
            }
            kind::STACKS => decode_stacks(&mut d)?,
            kind::COUNTERS => decode_counters(&mut d)?,
            kind::PEAK => {
                let t_ms = d.varint()?;
                let peak_bytes = d.varint()?;
                let n = d.count(3)?;
                let mut stacks = Vec::with_capacity(n);
                for _ in 0..n {
                    stacks.push(PeakEntry {
                        stack: d.varint_u32()?,
                        bytes: d.varint()?,
                        count: d.varint()?,
                    });
                }
                Record::Peak(Peak {
                    t_ms,
                    peak_bytes,
                    stacks,
                })
            }
            kind::SAMPLES => {
                let n = d.count(3)?;
                let mut samples = Vec::with_capacity(n);
                let mut prev: u64 = 0;
                for _ in 0..n {
                    let t_ms = prev.wrapping_add(d.varint()?);
                    prev = t_ms;
                    samples.push(SampleEntry {
                        t_ms,
                        traced_bytes: d.varint()?,
                        rss_bytes: d.varint()?,
                    });
                }
                Record::Samples(samples)
            }
            kind::THREAD_NAMES => {
                let n = d.count(2)?;
                let mut names = Vec::with_capacity(n);
                for _ in 0..n {
                    names.push(ThreadName {
                        native_id: d.varint()?,
                        name: d.string()?,
                    });
                }
                Record::ThreadNames(names)
            }
            kind::STACK_DOMAINS => {
                let n = d.count(2)?;
                let mut domains = Vec::with_capacity(n);
                for _ in 0..n {
                    domains.push(StackDomain {
                        stack: d.varint_u32()?,
                        domain: d.varint_u32()?,
                    });
                }
                Record::StackDomains(domains)
            }
            kind::NATIVE_FRAMES => Record::NativeFrames(decode_ids(&mut d)?),
            kind::NATIVE_ADDRESSES => decode_native_addresses(&mut d)?,
            kind::NODES => decode_nodes(&mut d)?,
            kind::TREE_STACKS => decode_tree_stacks(&mut d)?,
            kind::END => Record::End { t_ms: d.varint()? },
            kind::PROCESS => Record::Process {
                ppid: d.varint_u32()?,
            },
            kind::EXIT => Record::Exit(ExitStatus::decode(&mut d)?),
            _ => return Ok(None),
        };
        d.finish()?;
        Ok(Some(record))
    }
}

fn encode_ids(buf: &mut Vec<u8>, ids: &[u32]) {
    put_varint(buf, ids.len() as u64);
    for &id in ids {
        put_varint(buf, u64::from(id));
    }
}

fn encode_native_addresses(buf: &mut Vec<u8>, addresses: &[NativeAddress]) {
    put_varint(buf, addresses.len() as u64);
    for a in addresses {
        put_varint(buf, u64::from(a.frame));
        put_varint(buf, a.address);
    }
}

fn decode_native_addresses(d: &mut Decoder<'_>) -> Result<Record, CorruptKind> {
    let n = d.count(2)?;
    let mut addresses = Vec::with_capacity(n);
    for _ in 0..n {
        addresses.push(NativeAddress {
            frame: d.varint_u32()?,
            address: d.varint()?,
        });
    }
    Ok(Record::NativeAddresses(addresses))
}

fn decode_stacks(d: &mut Decoder<'_>) -> Result<Record, CorruptKind> {
    let n = d.count(3)?;
    let mut stacks = Vec::with_capacity(n);
    for _ in 0..n {
        let id = d.varint_u32()?;
        let thread_native_id = d.varint()?;
        let nf = d.count(1)?;
        let mut frames = Vec::with_capacity(nf);
        for _ in 0..nf {
            frames.push(d.varint_u32()?);
        }
        stacks.push(StackEntry {
            id,
            thread_native_id,
            frames,
        });
    }
    Ok(Record::Stacks(stacks))
}

fn decode_nodes(d: &mut Decoder<'_>) -> Result<Record, CorruptKind> {
    let first = d.varint_u32()?;
    let n = d.count(2)?;
    let mut nodes = Vec::with_capacity(n);
    for _ in 0..n {
        nodes.push((d.varint_u32()?, d.varint_u32()?));
    }
    Ok(Record::Nodes(Nodes { first, nodes }))
}

fn decode_tree_stacks(d: &mut Decoder<'_>) -> Result<Record, CorruptKind> {
    let first = d.varint_u32()?;
    let n = d.count(3)?;
    let mut stacks = Vec::with_capacity(n);
    for _ in 0..n {
        stacks.push(TreeStack {
            thread_native_id: d.varint()?,
            domain: d.varint_u32()?,
            leaf: d.varint_u32()?,
        });
    }
    Ok(Record::TreeStacks(TreeStacks { first, stacks }))
}

fn decode_ids(d: &mut Decoder<'_>) -> Result<Vec<u32>, CorruptKind> {
    let n = d.count(1)?;
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(d.varint_u32()?);
    }
    Ok(ids)
}

fn decode_counters(d: &mut Decoder<'_>) -> Result<Record, CorruptKind> {
    let t_ms = d.varint()?;
    let current_bytes = d.varint()?;
    let peak_bytes = d.varint()?;
    let total_allocated_bytes = d.varint()?;
    let total_allocations = d.varint()?;
    let n = d.count(5)?;
    let mut stacks = Vec::with_capacity(n);
    for _ in 0..n {
        stacks.push(CounterEntry {
            stack: d.varint_u32()?,
            live_bytes: d.varint()?,
            live_count: d.varint()?,
            total_bytes: d.varint()?,
            total_count: d.varint()?,
        });
    }
    Ok(Record::Counters(Counters {
        t_ms,
        current_bytes,
        peak_bytes,
        total_allocated_bytes,
        total_allocations,
        stacks,
    }))
}
