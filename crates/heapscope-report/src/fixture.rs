//! Test and benchmark profiles: a JSON form of [`Profile`] and a synthetic generator.
//!
//! Real profiles come from replaying capture files; these exist so renderers can be tested
//! (from Rust and, through a private binding, from Python) without a capture.

use std::sync::Arc;

use heapscope_core::profile::{Meta, Profile, Sample, Stack, StackStat, ThreadInfo};
use heapscope_core::Frame;
use serde::Deserialize;

use crate::ReportError;

/// `[filename, function, lineno]`.
type FrameRow = (String, String, u32);
/// `[stack id, bytes, count]`.
type StatRow = (u32, u64, u64);
/// `[t_ms, traced_bytes, rss_bytes]`.
type SampleRow = (u64, u64, u64);

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct MetaJson {
    command: Vec<String>,
    python_version: String,
    pid: u32,
    start_time_unix_ms: u64,
    duration_ms: u64,
    peak_bytes: u64,
    peak_time_ms: u64,
    total_allocated_bytes: u64,
    total_allocations: u64,
    trace_limit: u32,
    truncated: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StackJson {
    frames: Vec<u32>,
    #[serde(default)]
    thread: u32,
    #[serde(default)]
    domain: u32,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct ProfileJson {
    meta: MetaJson,
    frames: Vec<FrameRow>,
    stacks: Vec<StackJson>,
    threads: Vec<(u64, String)>,
    at_peak: Vec<StatRow>,
    at_end: Vec<StatRow>,
    total: Vec<StatRow>,
    timeline: Vec<SampleRow>,
}

fn stats(rows: Vec<StatRow>) -> Vec<StackStat> {
    rows.into_iter()
        .map(|(stack, bytes, count)| StackStat {
            stack,
            bytes,
            count,
        })
        .collect()
}

/// Builds a profile from its test JSON form: `{"meta": {...}, "frames": [[file, function,
/// line]], "stacks": [{"frames": [ids, leaf first], "thread": 0}], "threads": [[id, name]],
/// "at_peak" / "at_end" / "total": [[stack, bytes, count]], "timeline": [[t_ms, traced, rss]]}`.
/// Every key is optional.
pub fn profile_from_json(text: &str) -> Result<Profile, ReportError> {
    let p: ProfileJson = serde_json::from_str(text)?;
    let m = p.meta;
    Ok(Profile {
        meta: Meta {
            command: m.command,
            python_version: m.python_version,
            pid: m.pid,
            start_time_unix_ms: m.start_time_unix_ms,
            duration_ms: m.duration_ms,
            peak_bytes: m.peak_bytes,
            peak_time_ms: m.peak_time_ms,
            total_allocated_bytes: m.total_allocated_bytes,
            total_allocations: m.total_allocations,
            trace_limit: m.trace_limit,
            truncated: m.truncated,
        },
        frames: p
            .frames
            .into_iter()
            .map(|(file, func, line)| Frame {
                filename: Arc::from(file),
                function: Arc::from(func),
                lineno: line,
                native: false,
            })
            .collect(),
        stacks: p
            .stacks
            .into_iter()
            .map(|s| Stack {
                frames: s.frames,
                thread: s.thread,
                domain: s.domain,
                process: 0,
            })
            .collect(),
        threads: p
            .threads
            .into_iter()
            .map(|(native_id, name)| ThreadInfo { native_id, name })
            .collect(),
        at_peak: stats(p.at_peak),
        at_end: stats(p.at_end),
        total: stats(p.total),
        timeline: p
            .timeline
            .into_iter()
            .map(|(t_ms, traced_bytes, rss_bytes)| Sample {
                t_ms,
                traced_bytes,
                rss_bytes,
            })
            .collect(),
        processes: Vec::new(),
    })
}

fn synthetic_frames(n_funcs: u64) -> Vec<Frame> {
    let n_files = 40u64;
    (0..n_funcs * 4)
        .map(|i| Frame {
            filename: Arc::from(format!(
                "/srv/app/pkg{}/module_{}.py",
                (i / 4) % n_files % 7,
                (i / 4) % n_files
            )),
            function: Arc::from(format!("func_{}", i / 4)),
            lineno: 10 + (i % 4) as u32 * 7 + (i / 4) as u32 % 50,
            native: false,
        })
        .collect()
}

fn synthetic_timeline(peak_bytes: u64) -> Vec<Sample> {
    (0..600u64)
        .map(|t| {
            let traced = peak_bytes * (t.min(400)) / 400
                - if t > 400 {
                    peak_bytes * (t - 400) / 400
                } else {
                    0
                };
            Sample {
                t_ms: t * 100,
                traced_bytes: traced,
                rss_bytes: traced + (30 << 20),
            }
        })
        .collect()
}

/// A deterministic profile with `n_stacks` distinct stacks over a few hundred functions in a
/// few dozen files, with skewed sizes (a few big stacks, a long tail), for load tests.
pub fn synthetic(n_stacks: usize, seed: u64) -> Profile {
    let mut state = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        state >> 33
    };
    let n_funcs = 400u64;
    let frames = synthetic_frames(n_funcs);
    let mut stacks = Vec::with_capacity(n_stacks);
    let (mut at_peak, mut at_end, mut total) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n_stacks {
        let depth = 3 + (next() % 22) as usize;
        // A shared trunk (main -> run -> ...) then a random walk: realistic prefix sharing.
        let mut ids: Vec<u32> = vec![0, 4];
        for d in 2..depth {
            let fan = if d < 5 { 3 } else { n_funcs };
            ids.push(
                ((next() % fan) * 4 + next() % 4) as u32 + if d < 5 { 8 * d as u32 } else { 0 },
            );
        }
        ids.reverse();
        stacks.push(Stack {
            frames: ids,
            thread: u32::from(i % 13 == 0),
            domain: 0,
            process: 0,
        });
        let id = i as u32;
        let big = if next() % 100 == 0 { 1 << 8 } else { 1 };
        let bytes = (16 + next() % 4096) * big;
        let count = 1 + next() % 64;
        at_peak.push(StackStat {
            stack: id,
            bytes,
            count,
        });
        if i % 3 == 0 {
            at_end.push(StackStat {
                stack: id,
                bytes: bytes / 2,
                count: count / 2 + 1,
            });
        }
        total.push(StackStat {
            stack: id,
            bytes: bytes * 3,
            count: count * 3,
        });
    }
    let peak_bytes: u64 = at_peak.iter().map(|s| s.bytes).sum();
    let timeline = synthetic_timeline(peak_bytes);
    Profile {
        meta: Meta {
            command: vec!["synthetic.py".into(), format!("--stacks={n_stacks}")],
            python_version: "3.11.7".into(),
            pid: 4242,
            start_time_unix_ms: 1_700_000_000_000,
            duration_ms: 60_000,
            peak_bytes,
            peak_time_ms: 40_000,
            total_allocated_bytes: total.iter().map(|s| s.bytes).sum(),
            total_allocations: total.iter().map(|s| s.count).sum(),
            trace_limit: 64,
            truncated: false,
        },
        frames,
        stacks,
        threads: vec![
            ThreadInfo {
                native_id: 1,
                name: "MainThread".into(),
            },
            ThreadInfo {
                native_id: 2,
                name: "worker".into(),
            },
        ],
        at_peak,
        at_end,
        total,
        timeline,
        processes: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_and_defaults() {
        let p = profile_from_json(
            r#"{"frames": [["a.py", "f", 3]], "stacks": [{"frames": [0]}],
            "at_peak": [[0, 10, 1]]}"#,
        )
        .expect("valid JSON");
        assert_eq!(p.frames[0].lineno, 3);
        assert_eq!(p.at_peak[0].bytes, 10);
        assert!(p.total.is_empty());
        assert!(profile_from_json("{\"nope\": 1}").is_err());
        assert!(profile_from_json("[").is_err());
    }

    #[test]
    fn synthetic_has_the_requested_stacks() {
        let p = synthetic(1000, 1);
        assert_eq!(p.stacks.len(), 1000);
        assert!(p
            .stacks
            .iter()
            .all(|s| s.frames.iter().all(|&f| (f as usize) < p.frames.len())));
    }
}
