//! The data the HTML report embeds: compact, pruned, every string in one shared table.

use std::borrow::Cow;
use std::collections::BTreeMap;

use hashbrown::HashMap;

use heapscope_core::profile::{Profile, View};
use serde::Serialize;

use crate::flame::{self, FlameTree, Pruning};
use crate::group::domain_tag;
use crate::labels::{stack_of, view_name, VIEWS};

/// Rows kept in each top-N table.
pub const TOP_N: usize = 200;
/// Timeline points kept (longer timelines are reduced, keeping each bucket's maximum).
pub const MAX_POINTS: usize = 2000;

#[derive(Serialize)]
pub struct ReportData<'a> {
    pub initial: &'static str,
    pub meta: MetaData<'a>,
    pub strings: Vec<Cow<'a, str>>,
    /// `[function string, file string, line]` per embedded frame.
    pub frames: Vec<[u32; 3]>,
    pub views: BTreeMap<&'static str, ViewData>,
    pub timeline: Timeline,
    /// One entry per process of a multi-process capture (empty for one process).
    pub processes: Vec<ProcessData>,
}

/// A process of the capture: its row in the processes table and, for a traced process, its
/// own views and timeline (the page's process selector shows them).
#[derive(Serialize)]
pub struct ProcessData {
    pub pid: u32,
    pub ppid: Option<u32>,
    pub command: Vec<String>,
    pub peak_bytes: u64,
    pub peak_time_ms: u64,
    pub duration_ms: u64,
    /// When the process started, in milliseconds after the start of the whole capture.
    pub start_offset_ms: u64,
    pub exit: String,
    pub note: Option<String>,
    /// Absent for untraced processes and for processes past [`MAX_PROCESS_VIEWS`].
    pub views: Option<BTreeMap<&'static str, ViewData>>,
    pub timeline: Timeline,
}

/// Processes that get their own embedded views (the rest are in the merged view and the table).
pub const MAX_PROCESS_VIEWS: usize = 64;

#[derive(Serialize)]
pub struct MetaData<'a> {
    pub command: &'a [String],
    pub python_version: &'a str,
    pub pid: u32,
    pub start_time_unix_ms: u64,
    pub duration_ms: u64,
    pub peak_bytes: u64,
    pub peak_time_ms: u64,
    pub total_allocated_bytes: u64,
    pub total_allocations: u64,
    pub trace_limit: u32,
    pub truncated: bool,
    pub threads: usize,
    pub stacks: usize,
    pub version: &'static str,
}

/// `[file, line, function, bytes, count]` (strings as indices).
pub type LineRow = (u32, u32, u32, u64, u64);
/// `[file, bytes, count]` (strings as indices).
pub type FileRow = (u32, u64, u64);

#[derive(Serialize)]
pub struct ViewData {
    pub total_bytes: u64,
    pub total_count: u64,
    /// Nodes of the full tree, and how many the embedded one keeps.
    pub full_nodes: usize,
    pub tree: Tree,
    /// `[file, line, function, bytes, count]`, largest first.
    pub by_line: Vec<LineRow>,
    /// `[file, bytes, count]`, largest first.
    pub by_file: Vec<FileRow>,
}

#[derive(Serialize)]
pub struct Tree {
    /// Embedded frame index, -1 root, -2 "other".
    pub f: Vec<i64>,
    pub p: Vec<i64>,
    pub v: Vec<u64>,
    pub c: Vec<u64>,
    /// `[node, merged nodes]` for "other" nodes.
    pub o: Vec<(usize, u64)>,
}

#[derive(Serialize, Default)]
pub struct Timeline {
    pub t: Vec<u64>,
    pub traced: Vec<u64>,
    pub rss: Vec<u64>,
}

#[derive(Default)]
struct Interner<'a> {
    strings: Vec<Cow<'a, str>>,
    index: HashMap<&'a str, u32>,
    frames: Vec<[u32; 3]>,
    frame_index: HashMap<u32, u32>,
    /// Labels made here (domain tags), by text.
    owned: HashMap<String, u32>,
    /// Embedded frame of each domain node.
    domain_frames: HashMap<u32, u32>,
}

impl<'a> Interner<'a> {
    fn string(&mut self, s: &'a str) -> u32 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.strings.len() as u32;
        self.strings.push(Cow::Borrowed(s));
        self.index.insert(s, i);
        i
    }

    fn owned_string(&mut self, s: String) -> u32 {
        if let Some(&i) = self.owned.get(&s) {
            return i;
        }
        let i = self.strings.len() as u32;
        self.strings.push(Cow::Owned(s.clone()));
        self.owned.insert(s, i);
        i
    }

    /// A pseudo-frame `[domain N]` for the flame graph's domain nodes.
    fn domain_frame(&mut self, domain: u32) -> i64 {
        if let Some(&i) = self.domain_frames.get(&domain) {
            return i64::from(i);
        }
        let entry = [self.owned_string(domain_tag(domain)), self.string(""), 0];
        let i = self.frames.len() as u32;
        self.frames.push(entry);
        self.domain_frames.insert(domain, i);
        i64::from(i)
    }

    fn frame(&mut self, profile: &'a Profile, id: u32) -> i64 {
        if let Some(&i) = self.frame_index.get(&id) {
            return i64::from(i);
        }
        let Some(frame) = profile.frames.get(id as usize) else {
            return flame::OTHER;
        };
        let function = if frame.native {
            self.owned_string(crate::labels::marked_function(frame).into_owned())
        } else {
            self.string(&frame.function)
        };
        let entry = [function, self.string(&frame.filename), frame.lineno];
        let i = self.frames.len() as u32;
        self.frames.push(entry);
        self.frame_index.insert(id, i);
        i64::from(i)
    }
}

fn tree<'a>(profile: &'a Profile, view: View, interner: &mut Interner<'a>) -> (Tree, usize) {
    let FlameTree {
        mut frame,
        parent,
        bytes,
        count,
        merged,
        full_size,
    } = flame::build(profile, view, Pruning::default());
    for f in &mut frame {
        if *f >= 0 {
            *f = interner.frame(profile, *f as u32);
        } else if let Some(domain) = flame::node_domain(*f) {
            *f = interner.domain_frame(domain);
        }
    }
    (
        Tree {
            f: frame,
            p: parent,
            v: bytes,
            c: count,
            o: merged,
        },
        full_size,
    )
}

fn tables<'a>(
    profile: &'a Profile,
    view: View,
    interner: &mut Interner<'a>,
) -> (Vec<LineRow>, Vec<FileRow>) {
    let mut lines: HashMap<(&str, u32, u32), (&str, u64, u64)> = HashMap::new();
    let mut files: HashMap<&str, (u64, u64)> = HashMap::new();
    for stat in profile.view(view) {
        let Some(stack) = stack_of(profile, stat) else {
            continue;
        };
        let Some(leaf) = crate::labels::report_leaf(profile, stack) else {
            continue;
        };
        let row = lines
            .entry((&leaf.filename, leaf.lineno, stack.domain))
            .or_insert((&leaf.function, 0, 0));
        row.1 += stat.bytes;
        row.2 += stat.count;
        let row = files.entry(&leaf.filename).or_default();
        row.0 += stat.bytes;
        row.1 += stat.count;
    }
    let mut lines: Vec<_> = lines.into_iter().collect();
    lines.sort_unstable_by(|a, b| b.1 .1.cmp(&a.1 .1).then(a.0.cmp(&b.0)));
    let mut files: Vec<_> = files.into_iter().collect();
    files.sort_unstable_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(b.0)));
    let by_line = lines
        .into_iter()
        .take(TOP_N)
        .map(|((file, line, domain), (func, bytes, count))| {
            let func = if domain == 0 {
                interner.string(func)
            } else {
                interner.owned_string(format!("{func} {}", domain_tag(domain)))
            };
            (interner.string(file), line, func, bytes, count)
        })
        .collect();
    let by_file = files
        .into_iter()
        .take(TOP_N)
        .map(|(file, (bytes, count))| (interner.string(file), bytes, count))
        .collect();
    (by_line, by_file)
}

fn timeline(profile: &Profile) -> Timeline {
    let samples = &profile.timeline;
    let bucket = samples.len().div_ceil(MAX_POINTS).max(1);
    let mut out = Timeline::default();
    for chunk in samples.chunks(bucket) {
        let top = chunk.iter().max_by_key(|s| s.traced_bytes);
        if let Some(top) = top {
            out.t.push(top.t_ms);
            out.traced.push(top.traced_bytes);
            out.rss
                .push(chunk.iter().map(|s| s.rss_bytes).max().unwrap_or(0));
        }
    }
    out
}

fn views<'a>(
    profile: &'a Profile,
    interner: &mut Interner<'a>,
) -> BTreeMap<&'static str, ViewData> {
    // Frame ids (and tree nodes) are the profile's own: another process's profile numbers
    // them afresh, so the caches keyed by them start empty (strings and embedded frames stay
    // shared).
    interner.frame_index.clear();
    interner.domain_frames.clear();
    let mut views = BTreeMap::new();
    for view in VIEWS {
        let (t, full_nodes) = tree(profile, view, interner);
        let (by_line, by_file) = tables(profile, view, interner);
        let stats = profile.view(view);
        views.insert(
            view_name(view),
            ViewData {
                total_bytes: stats.iter().map(|s| s.bytes).sum(),
                total_count: stats.iter().map(|s| s.count).sum(),
                full_nodes,
                tree: t,
                by_line,
                by_file,
            },
        );
    }
    views
}

/// Each process's own profile, for the traced processes that get embedded views (the page
/// data borrows strings from them).
fn process_profiles(profile: &Profile) -> Vec<Option<Profile>> {
    let mut seen = std::collections::HashSet::new();
    profile
        .processes
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let first_of_pid = seen.insert(p.pid);
            (p.note.is_none() && first_of_pid && i < MAX_PROCESS_VIEWS)
                .then(|| profile.only_process(p.pid).ok())
                .flatten()
        })
        .collect()
}

/// Everything the page needs, for the initial `view`. `parts` are the per-process profiles
/// from [`process_profiles`] (empty for a single process).
fn build_with<'a>(
    profile: &'a Profile,
    parts: &'a [Option<Profile>],
    initial: View,
) -> ReportData<'a> {
    let mut interner = Interner::default();
    let views = views(profile, &mut interner);
    let mut processes = Vec::new();
    if profile.processes.len() > 1 {
        for (p, part) in profile.processes.iter().zip(parts) {
            processes.push(ProcessData {
                pid: p.pid,
                ppid: p.ppid,
                command: p.command.clone(),
                peak_bytes: p.peak_bytes,
                peak_time_ms: p.peak_time_ms,
                duration_ms: p.duration_ms,
                start_offset_ms: p
                    .start_time_unix_ms
                    .saturating_sub(profile.meta.start_time_unix_ms),
                exit: crate::processes::exit_text(p),
                note: p.note.clone(),
                views: part.as_ref().map(|part| self::views(part, &mut interner)),
                timeline: part.as_ref().map(timeline).unwrap_or_default(),
            });
        }
    }
    let m = &profile.meta;
    ReportData {
        initial: view_name(initial),
        meta: MetaData {
            command: &m.command,
            python_version: &m.python_version,
            pid: m.pid,
            start_time_unix_ms: m.start_time_unix_ms,
            duration_ms: m.duration_ms,
            peak_bytes: m.peak_bytes,
            peak_time_ms: m.peak_time_ms,
            total_allocated_bytes: m.total_allocated_bytes,
            total_allocations: m.total_allocations,
            trace_limit: m.trace_limit,
            truncated: m.truncated,
            threads: profile.threads.len(),
            stacks: profile.stacks.len(),
            version: env!("CARGO_PKG_VERSION"),
        },
        strings: interner.strings,
        frames: interner.frames,
        views,
        timeline: timeline(profile),
        processes,
    }
}

/// The page data of `profile` shown at `initial`, serialized (per-process views included).
pub fn build_json(profile: &Profile, initial: View) -> Result<String, serde_json::Error> {
    let parts = if profile.processes.len() > 1 {
        process_profiles(profile)
    } else {
        Vec::new()
    };
    serde_json::to_string(&build_with(profile, &parts, initial))
}

/// Everything the page needs for one process, for the initial `view`.
#[cfg(test)]
pub fn build(profile: &Profile, initial: View) -> ReportData<'_> {
    build_with(profile, &[], initial)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::profile_from_json;

    #[test]
    fn snapshot_of_embedded_data() {
        let p = profile_from_json(
            r#"{"meta": {"command": ["app.py", "-x"], "peak_bytes": 150, "peak_time_ms": 20,
                         "duration_ms": 40},
                "frames": [["app.py", "main", 1], ["app.py", "load", 5], ["lib.py", "parse", 9]],
                "stacks": [{"frames": [1, 0]}, {"frames": [2, 1, 0]}, {"frames": [2, 0]}],
                "threads": [[1, "MainThread"]],
                "at_peak": [[0, 100, 2], [1, 40, 1], [2, 10, 1]], "at_end": [[1, 40, 1]],
                "total": [[0, 300, 6], [1, 40, 1], [2, 10, 1]],
                "timeline": [[0, 0, 1000], [20, 150, 2000], [40, 40, 2000]]}"#,
        )
        .expect("valid");
        let mut data = serde_json::to_value(build(&p, View::End)).expect("json");
        data["meta"]["version"] = "[version]".into();
        insta::assert_snapshot!(serde_json::to_string(&data).expect("json"));
    }

    #[test]
    fn long_timelines_are_reduced_keeping_the_peak() {
        let mut p = crate::fixture::synthetic(10, 1);
        p.timeline = (0..10_000u64)
            .map(|t| heapscope_core::profile::Sample {
                t_ms: t,
                traced_bytes: if t == 7777 { 1 << 30 } else { t },
                rss_bytes: t,
            })
            .collect();
        let tl = timeline(&p);
        assert!(tl.t.len() <= MAX_POINTS);
        assert!(tl.traced.contains(&(1 << 30)));
        assert!(tl.t.contains(&7777));
    }
}
