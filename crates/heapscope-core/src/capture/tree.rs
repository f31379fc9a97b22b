//! Captures of a process tree: the root's file `OUT.hsc` plus one stream per child process in
//! the directory `OUT.hsc.d/` (`<pid>.hsc`, or `<pid>.<n>.hsc` for a later program of the same
//! process after `exec`), and `<pid>.untraced` notes for Python children that could not be
//! traced. Each stream is a capture file on its own (crash-safe on its own); [`replay_tree`]
//! reads them all and [`merge`] folds them into one profile whose stacks know their process.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use heapscope_format::FormatError;

use super::replay::replay_file;
use crate::error::CoreError;
use crate::frame::{Frame, FrameId};
use crate::profile::{ProcessInfo, Profile, Sample, Stack, StackStat};

/// Suffix of the directory that holds the streams of child processes, next to the root file.
pub const CHILDREN_DIR_SUFFIX: &str = ".d";

/// Suffix of a child stream in the children directory.
pub const STREAM_SUFFIX: &str = ".hsc";

/// Suffix of a note about a Python child that could not be traced.
pub const UNTRACED_SUFFIX: &str = ".untraced";

/// The directory of child streams that belongs to the capture `root`.
pub fn children_dir(root: &Path) -> PathBuf {
    let mut name = root.as_os_str().to_owned();
    name.push(CHILDREN_DIR_SUFFIX);
    PathBuf::from(name)
}

/// Replays the capture at `root` and the streams of its child processes, merged (the root's
/// stream first). `progress` gets the bytes read so far, over all streams.
///
/// The root stream must be readable (its errors are returned). A child stream that cannot be
/// read is listed as a process with a note saying why, so the rest of the tree is reported.
pub fn replay_tree(root: &Path, progress: &mut dyn FnMut(u64)) -> Result<Profile, FormatError> {
    let mut parts = vec![replay_file(root, progress)?];
    let mut done = std::fs::metadata(root).map_or(0, |m| m.len());
    let mut notes = Vec::new();
    for entry in child_entries(&children_dir(root)) {
        let name = entry.file_name().map(|n| n.to_string_lossy().into_owned());
        let Some(name) = name else { continue };
        if name.ends_with(STREAM_SUFFIX) {
            let base = done;
            match replay_file(&entry, &mut |offset| progress(base + offset)) {
                Ok(part) => parts.push(part),
                Err(err) => notes.push(unreadable(&name, &err)),
            }
            done += std::fs::metadata(&entry).map_or(0, |m| m.len());
        } else if name.ends_with(UNTRACED_SUFFIX) {
            if let Ok(bytes) = std::fs::read(&entry) {
                notes.push(parse_untraced_note(&bytes));
            }
        }
    }
    let mut merged = merge(parts);
    merged.processes.extend(notes);
    Ok(merged)
}

/// The stream and note files of a children directory, sorted by name (none if it is absent).
fn child_entries(dir: &Path) -> Vec<PathBuf> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = read
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    // By pid, then a process's programs in order (`<pid>.hsc`, `<pid>.1.hsc`, ...).
    paths.sort_by_key(|p| {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.unwrap_or_default();
        let mut parts = name.split('.');
        let pid: u64 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(u64::MAX);
        let n: u64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        (pid, n, name)
    });
    paths
}

fn unreadable(name: &str, err: &FormatError) -> ProcessInfo {
    let pid = name
        .split('.')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    ProcessInfo {
        pid,
        note: Some(format!("stream {name} unreadable: {err}")),
        ..ProcessInfo::default()
    }
}

/// Parses a `<pid>.untraced` note: NUL-separated `pid`, `ppid`, `python version`, `reason`,
/// then the command's arguments. Fields that do not parse are left empty.
pub fn parse_untraced_note(bytes: &[u8]) -> ProcessInfo {
    let text = String::from_utf8_lossy(bytes);
    let mut fields = text.split('\0');
    let pid = fields.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let parent = fields.next().and_then(|s| s.parse().ok());
    let python_version = fields.next().unwrap_or_default().to_owned();
    let reason = fields.next().unwrap_or("unknown reason").to_owned();
    let command = fields
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    ProcessInfo {
        pid,
        ppid: parent,
        command,
        python_version,
        note: Some(format!("not traced: {reason}")),
        ..ProcessInfo::default()
    }
}

/// Folds single-process profiles (as [`super::replay`] returns them) into one: frames shared,
/// stacks tagged with their process, every view summed over the processes. `parts[0]` is the
/// root and gives the run's metadata.
///
/// The peak view of a merged profile takes each process at its own peak. Its timeline sums
/// the processes' traced memory (each counted from its first to its last sample), and
/// `meta.peak_bytes` is the highest of that sum and of any single process's exact peak.
pub fn merge(parts: Vec<Profile>) -> Profile {
    let mut parts = parts.into_iter();
    let Some(mut out) = parts.next() else {
        return Profile::default();
    };
    let rest: Vec<Profile> = parts.collect();
    if rest.is_empty() {
        return out;
    }
    let mut frame_index: HashMap<Frame, FrameId> = out
        .frames
        .iter()
        .enumerate()
        .map(|(i, f)| (f.clone(), i as FrameId))
        .collect();
    for part in rest {
        let process_base = out.processes.len() as u32;
        let thread_base = out.threads.len() as u32;
        let stack_base = out.stacks.len() as u32;
        let frame_map: Vec<FrameId> = part
            .frames
            .into_iter()
            .map(|f| {
                let next = out.frames.len() as FrameId;
                *frame_index.entry(f.clone()).or_insert_with(|| {
                    out.frames.push(f);
                    next
                })
            })
            .collect();
        out.threads.extend(part.threads);
        for s in part.stacks {
            out.stacks.push(Stack {
                frames: s
                    .frames
                    .iter()
                    .filter_map(|&f| frame_map.get(f as usize).copied())
                    .collect(),
                thread: thread_base + s.thread,
                domain: s.domain,
                process: process_base + s.process,
            });
        }
        let shift = |v: Vec<StackStat>| {
            v.into_iter().map(move |s| StackStat {
                stack: stack_base + s.stack,
                ..s
            })
        };
        out.at_peak.extend(shift(part.at_peak));
        out.at_end.extend(shift(part.at_end));
        out.total.extend(shift(part.total));
        out.processes.extend(part.processes);
    }
    finish_merged(&mut out);
    out
}

/// The merged run's metadata and summed timeline, from its processes.
fn finish_merged(out: &mut Profile) {
    let start = out
        .processes
        .iter()
        .map(|p| p.start_time_unix_ms)
        .min()
        .unwrap_or(out.meta.start_time_unix_ms);
    let end = out
        .processes
        .iter()
        .map(|p| p.start_time_unix_ms + p.duration_ms)
        .max()
        .unwrap_or(start);
    out.timeline = summed_timeline(&out.processes, start);
    let meta = &mut out.meta;
    meta.start_time_unix_ms = start;
    meta.duration_ms = end.saturating_sub(start);
    meta.total_allocated_bytes = out.processes.iter().map(|p| p.total_allocated_bytes).sum();
    meta.total_allocations = out.processes.iter().map(|p| p.total_allocations).sum();
    let sampled = out
        .timeline
        .iter()
        .max_by_key(|s| (s.traced_bytes, std::cmp::Reverse(s.t_ms)));
    let single = out.processes.iter().max_by_key(|p| p.peak_bytes);
    match (sampled, single) {
        (Some(s), Some(p)) if s.traced_bytes >= p.peak_bytes => {
            meta.peak_bytes = s.traced_bytes;
            meta.peak_time_ms = s.t_ms;
        }
        (_, Some(p)) => {
            meta.peak_bytes = p.peak_bytes;
            meta.peak_time_ms = (p.start_time_unix_ms + p.peak_time_ms).saturating_sub(start);
        }
        (Some(s), None) => {
            meta.peak_bytes = s.traced_bytes;
            meta.peak_time_ms = s.t_ms;
        }
        (None, None) => {}
    }
}

/// Traced and resident memory of all processes summed, at every sample time of any of them
/// (times from `start`, in Unix milliseconds). A process counts from its first sample to its
/// last, with its latest values in between.
fn summed_timeline(processes: &[ProcessInfo], start: u64) -> Vec<Sample> {
    let mut events: Vec<(u64, usize, Sample)> = Vec::new();
    for (i, p) in processes.iter().enumerate() {
        let offset = p.start_time_unix_ms.saturating_sub(start);
        let last = p.timeline.len().saturating_sub(1);
        for (j, s) in p.timeline.iter().enumerate() {
            events.push((offset + s.t_ms, i, *s));
            if j == last {
                // After its last sample the process holds nothing.
                events.push((
                    offset + s.t_ms + 1,
                    i,
                    Sample {
                        t_ms: s.t_ms + 1,
                        traced_bytes: 0,
                        rss_bytes: 0,
                    },
                ));
            }
        }
    }
    events.sort_by_key(|&(t, i, _)| (t, i));
    let mut current = vec![(0u64, 0u64); processes.len()];
    let (mut traced, mut rss) = (0u64, 0u64);
    let mut out: Vec<Sample> = Vec::with_capacity(events.len());
    for (t, i, s) in events {
        let (old_traced, old_rss) = current[i];
        traced = traced - old_traced + s.traced_bytes;
        rss = rss - old_rss + s.rss_bytes;
        current[i] = (s.traced_bytes, s.rss_bytes);
        let sample = Sample {
            t_ms: t,
            traced_bytes: traced,
            rss_bytes: rss,
        };
        match out.last_mut() {
            Some(last) if last.t_ms == t => *last = sample,
            _ => out.push(sample),
        }
    }
    out
}

impl Profile {
    /// The part of a (merged) profile that belongs to process `pid`: its stacks' figures, its
    /// own timeline and metadata. Several streams of one pid (a program and the ones it
    /// `exec`ed) are kept together.
    pub fn only_process(&self, pid: u32) -> Result<Profile, CoreError> {
        let wanted: Vec<bool> = self
            .processes
            .iter()
            .map(|p| p.pid == pid && p.note.is_none())
            .collect();
        let Some(first) = wanted.iter().position(|&w| w) else {
            let known: Vec<String> = self
                .processes
                .iter()
                .filter(|p| p.note.is_none())
                .map(|p| p.pid.to_string())
                .collect();
            return Err(CoreError::InvalidArgument(format!(
                "no process {pid} in this capture (processes: {})",
                known.join(", ")
            )));
        };
        let processes: Vec<ProcessInfo> = self
            .processes
            .iter()
            .zip(&wanted)
            .filter(|(_, &w)| w)
            .map(|(p, _)| p.clone())
            .collect();
        let p = &self.processes[first];
        let mut meta = self.meta.clone();
        meta.pid = p.pid;
        meta.command.clone_from(&p.command);
        meta.python_version.clone_from(&p.python_version);
        meta.start_time_unix_ms = p.start_time_unix_ms;
        meta.duration_ms = processes.iter().map(|q| q.duration_ms).sum();
        meta.peak_bytes = processes.iter().map(|q| q.peak_bytes).max().unwrap_or(0);
        meta.peak_time_ms = p.peak_time_ms;
        meta.total_allocated_bytes = processes.iter().map(|q| q.total_allocated_bytes).sum();
        meta.total_allocations = processes.iter().map(|q| q.total_allocations).sum();
        meta.truncated = processes.iter().any(|q| q.truncated);
        let mut out = Profile {
            meta,
            threads: self.threads.clone(),
            timeline: p.timeline.clone(),
            processes,
            ..Profile::default()
        };
        self.copy_stacks_into(&mut out, &wanted);
        Ok(out)
    }

    /// Copies the stacks of the `wanted` processes (and the frames they use, renumbered) and
    /// their figures into `out`: a process's part costs its own size, not the whole profile's.
    fn copy_stacks_into(&self, out: &mut Profile, wanted: &[bool]) {
        let mut stack_map: HashMap<u32, u32> = HashMap::new();
        let mut frame_map: HashMap<FrameId, FrameId> = HashMap::new();
        // Where each wanted process lands in `out.processes` (same order).
        let mut position = Vec::with_capacity(wanted.len());
        let mut next = 0u32;
        for &w in wanted {
            position.push(w.then_some(next));
            next += u32::from(w);
        }
        let mut copy = |stats: &[StackStat], out: &mut Profile| -> Vec<StackStat> {
            let mut kept = Vec::new();
            for stat in stats {
                let Some(stack) = self.stacks.get(stat.stack as usize) else {
                    continue;
                };
                let Some(Some(process)) = position.get(stack.process as usize).copied() else {
                    continue;
                };
                let id = *stack_map.entry(stat.stack).or_insert_with(|| {
                    let frames = stack
                        .frames
                        .iter()
                        .filter_map(|&f| {
                            let frame = self.frames.get(f as usize)?;
                            Some(*frame_map.entry(f).or_insert_with(|| {
                                out.frames.push(frame.clone());
                                (out.frames.len() - 1) as FrameId
                            }))
                        })
                        .collect();
                    out.stacks.push(Stack {
                        frames,
                        thread: stack.thread,
                        domain: stack.domain,
                        process,
                    });
                    (out.stacks.len() - 1) as u32
                });
                kept.push(StackStat { stack: id, ..*stat });
            }
            kept
        };
        out.at_peak = copy(&self.at_peak, out);
        out.at_end = copy(&self.at_end, out);
        out.total = copy(&self.total, out);
    }

    /// Processes with recorded figures (not the untraced or unreadable ones).
    pub fn traced_processes(&self) -> usize {
        self.processes.iter().filter(|p| p.note.is_none()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{Meta, ThreadInfo, View};

    fn part(pid: u32, start: u64, file: &str, peak: u64, end: u64) -> Profile {
        Profile {
            meta: Meta {
                pid,
                start_time_unix_ms: start,
                peak_bytes: peak,
                ..Meta::default()
            },
            frames: vec![Frame::new("common.py", 1), Frame::new(file, 2)],
            stacks: vec![Stack {
                frames: vec![1, 0],
                thread: 0,
                domain: 0,
                process: 0,
            }],
            threads: vec![ThreadInfo {
                native_id: u64::from(pid),
                name: "MainThread".into(),
            }],
            at_peak: vec![StackStat {
                stack: 0,
                bytes: peak,
                count: 1,
            }],
            at_end: vec![StackStat {
                stack: 0,
                bytes: end,
                count: 1,
            }],
            total: vec![],
            timeline: vec![
                Sample {
                    t_ms: 0,
                    traced_bytes: peak,
                    rss_bytes: 0,
                },
                Sample {
                    t_ms: 100,
                    traced_bytes: end,
                    rss_bytes: 0,
                },
            ],
            processes: vec![ProcessInfo {
                pid,
                ppid: (pid != 1).then_some(1),
                start_time_unix_ms: start,
                duration_ms: 100,
                peak_bytes: peak,
                timeline: vec![
                    Sample {
                        t_ms: 0,
                        traced_bytes: peak,
                        rss_bytes: 0,
                    },
                    Sample {
                        t_ms: 100,
                        traced_bytes: end,
                        rss_bytes: 0,
                    },
                ],
                ..ProcessInfo::default()
            }],
        }
    }

    #[test]
    fn merging_sums_views_shares_frames_and_tags_stacks() {
        let merged = merge(vec![
            part(1, 1000, "root.py", 10, 5),
            part(2, 1050, "child.py", 30, 0),
        ]);
        assert_eq!(merged.processes.len(), 2);
        assert_eq!(merged.frames.len(), 3, "common.py:1 is shared");
        assert_eq!(merged.stacks[1].process, 1);
        assert_eq!(merged.stacks[1].thread, 1);
        let peak: u64 = merged.view(View::Peak).iter().map(|s| s.bytes).sum();
        assert_eq!(peak, 40, "each process at its own peak");
        // At t=50 both hold their peak figures: 10 + 30.
        assert_eq!(merged.meta.peak_bytes, 40);
        assert_eq!(merged.meta.peak_time_ms, 50);
        assert_eq!(merged.meta.duration_ms, 150);
        let only = merged.only_process(2).expect("pid 2 is there");
        assert_eq!(only.view(View::Peak).len(), 1);
        assert_eq!(only.view(View::Peak)[0].bytes, 30);
        assert_eq!(only.meta.pid, 2);
        assert!(merged.only_process(3).is_err());
    }

    #[test]
    fn a_process_stops_counting_after_its_last_sample() {
        let merged = merge(vec![
            part(1, 0, "root.py", 10, 10),
            part(2, 1000, "child.py", 30, 30),
        ]);
        // The root's last sample is at 100 ms; the child starts at 1000 ms.
        assert_eq!(merged.meta.peak_bytes, 30);
    }

    #[test]
    fn untraced_notes_parse_and_tolerate_garbage() {
        let note = parse_untraced_note(
            b"42\x001\x003.9.2\x00No module named 'heapscope'\x00python3.9\x00x.py",
        );
        assert_eq!((note.pid, note.ppid), (42, Some(1)));
        assert_eq!(note.command, ["python3.9", "x.py"]);
        assert!(note
            .note
            .as_deref()
            .is_some_and(|n| n.contains("heapscope")));
        let junk = parse_untraced_note(b"\xff\xfe");
        assert_eq!(junk.pid, 0);
    }
}
