//! Writing a capture from tracer deltas.

use std::collections::HashMap;
use std::io::Write;

use heapscope_format::capture::{
    CaptureWriter, CounterEntry, Counters, FrameEntry, Header, NativeAddress, Nodes, Peak,
    PeakEntry, Record, SampleEntry, StackDomain, StackEntry, ThreadName, TreeStack, TreeStacks,
};
use heapscope_format::FormatError;

use crate::delta::ProfileDelta;
use crate::profile::Sample;

/// Entries per record: keeps every record far below the format's size limit.
const CHUNK: usize = 4096;

/// Writes a capture file from a stream of [`ProfileDelta`]s, samples and thread names.
///
/// Invariant: the frames and stacks of a delta are written before the counters that refer to
/// them, so a reader of any prefix of the file finds every reference defined.
pub struct Recorder<W: Write> {
    writer: CaptureWriter<W>,
    thread_names: HashMap<u64, String>,
    peak_bytes: u64,
}

impl<W: Write> Recorder<W> {
    /// Starts a capture: writes the magic, version and header.
    pub fn new(out: W, header: &Header) -> Result<Self, FormatError> {
        Ok(Recorder {
            writer: CaptureWriter::new(out, header)?,
            thread_names: HashMap::new(),
            peak_bytes: 0,
        })
    }

    /// Records one drain of the tracer, taken `t_ms` milliseconds after the start.
    pub fn record_delta(&mut self, t_ms: u64, delta: &ProfileDelta) -> Result<(), FormatError> {
        self.record_delta_with_peak_time(t_ms, t_ms, delta)
    }

    /// Like [`Recorder::record_delta`], with the time the peak of the delta was reached
    /// (its PEAK records carry it; readers take the time of the peak from them).
    pub fn record_delta_with_peak_time(
        &mut self,
        t_ms: u64,
        peak_t_ms: u64,
        delta: &ProfileDelta,
    ) -> Result<(), FormatError> {
        self.record_definitions(delta)?;
        self.record_figures(t_ms, peak_t_ms, delta)
    }

    /// Records only the new frames and stacks of a delta (a piece of a drain whose figures
    /// come with a later piece).
    pub fn record_definitions(&mut self, delta: &ProfileDelta) -> Result<(), FormatError> {
        for chunk in delta.new_frames.chunks(CHUNK) {
            let frames = chunk
                .iter()
                .map(|(id, f)| FrameEntry {
                    id: *id,
                    filename: f.filename.to_string(),
                    function: f.function.to_string(),
                    lineno: f.lineno,
                })
                .collect();
            self.writer.write(&Record::Frames(frames))?;
            let native: Vec<u32> = chunk
                .iter()
                .filter(|(_, f)| f.native)
                .map(|(id, _)| *id)
                .collect();
            if !native.is_empty() {
                self.writer.write(&Record::NativeFrames(native))?;
            }
        }
        // Before any node or stack names them: readers name these frames as they come.
        for chunk in delta.native_addresses.chunks(CHUNK) {
            let addresses = chunk
                .iter()
                .map(|&(frame, address)| NativeAddress { frame, address })
                .collect();
            self.writer.write(&Record::NativeAddresses(addresses))?;
        }
        for chunk in delta.new_stacks.chunks(CHUNK) {
            let stacks = chunk
                .iter()
                .map(|s| StackEntry {
                    id: s.id,
                    thread_native_id: s.thread_native_id,
                    frames: s.frames.clone(),
                })
                .collect();
            self.writer.write(&Record::Stacks(stacks))?;
            let domains: Vec<StackDomain> = chunk
                .iter()
                .filter(|s| s.domain != 0)
                .map(|s| StackDomain {
                    stack: s.id,
                    domain: s.domain,
                })
                .collect();
            if !domains.is_empty() {
                self.writer.write(&Record::StackDomains(domains))?;
            }
        }
        self.record_tree(delta)
    }

    /// Records the frame-tree nodes and the stacks named by them, in runs of consecutive ids.
    fn record_tree(&mut self, delta: &ProfileDelta) -> Result<(), FormatError> {
        let node_runs = consecutive_runs(&delta.new_nodes, |n| n.id, |n| (n.parent, n.frame));
        for (first, nodes) in node_runs {
            self.writer.write(&Record::Nodes(Nodes { first, nodes }))?;
        }
        let stack_runs = consecutive_runs(
            &delta.new_tree_stacks,
            |s| s.id,
            |s| TreeStack {
                thread_native_id: s.thread_native_id,
                domain: s.domain,
                leaf: s.leaf,
            },
        );
        for (first, stacks) in stack_runs {
            self.writer
                .write(&Record::TreeStacks(TreeStacks { first, stacks }))?;
        }
        Ok(())
    }

    /// Records the totals, the changed counters and the changed figures at the peak.
    fn record_figures(
        &mut self,
        t_ms: u64,
        peak_t_ms: u64,
        delta: &ProfileDelta,
    ) -> Result<(), FormatError> {
        let mut chunks = delta.changed.chunks(CHUNK).peekable();
        if chunks.peek().is_none() {
            self.writer
                .write(&Record::Counters(totals(t_ms, delta, Vec::new())))?;
        }
        for chunk in chunks {
            let stacks = chunk
                .iter()
                .map(|c| CounterEntry {
                    stack: c.stack,
                    live_bytes: c.live_bytes,
                    live_count: c.live_count,
                    total_bytes: c.total_bytes,
                    total_count: c.total_count,
                })
                .collect();
            self.writer
                .write(&Record::Counters(totals(t_ms, delta, stacks)))?;
        }
        if !delta.peak_changed.is_empty() || delta.peak_bytes != self.peak_bytes {
            self.peak_bytes = delta.peak_bytes;
            let mut chunks = delta.peak_changed.chunks(CHUNK).peekable();
            if chunks.peek().is_none() {
                let peak = Peak {
                    t_ms: peak_t_ms,
                    peak_bytes: delta.peak_bytes,
                    stacks: Vec::new(),
                };
                self.writer.write(&Record::Peak(peak))?;
            }
            for chunk in chunks {
                let stacks = chunk
                    .iter()
                    .map(|s| PeakEntry {
                        stack: s.stack,
                        bytes: s.bytes,
                        count: s.count,
                    })
                    .collect();
                self.writer.write(&Record::Peak(Peak {
                    t_ms: peak_t_ms,
                    peak_bytes: delta.peak_bytes,
                    stacks,
                }))?;
            }
        }
        Ok(())
    }

    /// Records timeline samples.
    pub fn record_samples(&mut self, samples: &[Sample]) -> Result<(), FormatError> {
        for chunk in samples.chunks(CHUNK) {
            let entries = chunk
                .iter()
                .map(|s| SampleEntry {
                    t_ms: s.t_ms,
                    traced_bytes: s.traced_bytes,
                    rss_bytes: s.rss_bytes,
                })
                .collect();
            self.writer.write(&Record::Samples(entries))?;
        }
        Ok(())
    }

    /// Records the names of threads; only names not recorded before are written.
    pub fn record_thread_names(&mut self, names: &[(u64, String)]) -> Result<(), FormatError> {
        let fresh: Vec<ThreadName> = names
            .iter()
            .filter(|(id, name)| self.thread_names.get(id) != Some(name))
            .map(|(id, name)| ThreadName {
                native_id: *id,
                name: name.clone(),
            })
            .collect();
        for chunk in fresh.chunks(CHUNK) {
            self.writer.write(&Record::ThreadNames(chunk.to_vec()))?;
        }
        for t in fresh {
            self.thread_names.insert(t.native_id, t.name);
        }
        Ok(())
    }

    /// Writes one record as it is (process facts, exit status).
    pub fn record(&mut self, record: &Record) -> Result<(), FormatError> {
        self.writer.write(record)
    }

    /// Hands everything recorded so far to the OS.
    pub fn flush(&mut self) -> Result<(), FormatError> {
        self.writer.flush()
    }

    /// The underlying writer.
    pub fn get_ref(&self) -> &W {
        self.writer.get_ref()
    }

    /// Bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.writer.bytes_written()
    }

    /// Writes the closing record and returns the output.
    pub fn finish(self, duration_ms: u64) -> Result<W, FormatError> {
        self.writer.finish(duration_ms)
    }
}

/// `items` as runs of consecutive ids (at most `CHUNK` each): (first id, entries).
fn consecutive_runs<T, E>(
    items: &[T],
    id: impl Fn(&T) -> u32,
    entry: impl Fn(&T) -> E,
) -> Vec<(u32, Vec<E>)> {
    let mut runs: Vec<(u32, Vec<E>)> = Vec::new();
    for item in items {
        match runs.last_mut() {
            Some((first, run))
                if run.len() < CHUNK && Some(id(item)) == first.checked_add(run.len() as u32) =>
            {
                run.push(entry(item));
            }
            _ => runs.push((id(item), vec![entry(item)])),
        }
    }
    runs
}

fn totals(t_ms: u64, delta: &ProfileDelta, stacks: Vec<CounterEntry>) -> Counters {
    Counters {
        t_ms,
        current_bytes: delta.current_bytes,
        peak_bytes: delta.peak_bytes,
        total_allocated_bytes: delta.total_allocated_bytes,
        total_allocations: delta.total_allocations,
        stacks,
    }
}
