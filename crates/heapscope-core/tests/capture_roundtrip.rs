//! Recorder -> bytes -> replay, on hand-built tracer deltas.

use heapscope_core::capture::{replay, Recorder};
use heapscope_core::delta::{NewNode, NewStack, NewTreeStack, ProfileDelta, StackCounters};
use heapscope_core::profile::{Sample, StackStat, View};
use heapscope_core::Frame;
use heapscope_format::capture::Header;
use heapscope_format::FormatError;
use proptest::prelude::*;

const MB: u64 = 1 << 20;

fn frame(name: &str, line: u32) -> Frame {
    Frame {
        filename: "prog.py".into(),
        function: name.into(),
        lineno: line,
        native: false,
    }
}

fn counters(stack: u32, live: u64, total: u64) -> StackCounters {
    StackCounters {
        stack,
        live_bytes: live,
        live_count: 1,
        total_bytes: total,
        total_count: 2,
    }
}

/// A run: `peak()` allocates 50 MB then frees it, `keep()` holds 10 MB until the end.
fn capture(finish: bool) -> Vec<u8> {
    let header = Header {
        command: vec!["prog.py".into()],
        pid: 7,
        ..Header::default()
    };
    let mut rec = Recorder::new(Vec::new(), &header).expect("header");
    let first = ProfileDelta {
        new_nodes: Vec::new(),
        new_tree_stacks: Vec::new(),
        new_frames: vec![
            (0, frame("peak", 3)),
            (1, frame("keep", 8)),
            (2, frame("<module>", 12)),
        ],
        native_addresses: Vec::new(),
        new_stacks: vec![
            NewStack {
                id: 0,
                frames: vec![0, 2],
                thread_native_id: 11,
                domain: 0,
            },
            NewStack {
                id: 1,
                frames: vec![1, 2],
                thread_native_id: 11,
                domain: 0,
            },
        ],
        changed: vec![counters(0, 50 * MB, 50 * MB), counters(1, 10 * MB, 10 * MB)],
        peak_changed: vec![
            StackStat {
                stack: 0,
                bytes: 50 * MB,
                count: 1,
            },
            StackStat {
                stack: 1,
                bytes: 10 * MB,
                count: 1,
            },
        ],
        current_bytes: 60 * MB,
        peak_bytes: 60 * MB,
        total_allocated_bytes: 60 * MB,
        total_allocations: 2,
    };
    rec.record_samples(&[Sample {
        t_ms: 50,
        traced_bytes: 60 * MB,
        rss_bytes: 70 * MB,
    }])
    .expect("samples");
    rec.record_delta(1000, &first).expect("delta");
    rec.record_thread_names(&[(11, "MainThread".into())])
        .expect("names");
    rec.flush().expect("flush");
    let second = ProfileDelta {
        new_nodes: Vec::new(),
        new_tree_stacks: Vec::new(),
        changed: vec![counters(0, 0, 50 * MB)],
        current_bytes: 10 * MB,
        peak_bytes: 60 * MB,
        total_allocated_bytes: 60 * MB,
        total_allocations: 2,
        ..ProfileDelta::default()
    };
    rec.record_delta(2000, &second).expect("delta");
    rec.record_samples(&[Sample {
        t_ms: 1500,
        traced_bytes: 10 * MB,
        rss_bytes: 30 * MB,
    }])
    .expect("samples");
    if finish {
        rec.finish(2100).expect("finish")
    } else {
        let mut bytes = rec.finish(0).expect("finish");
        // Drop the closing record: what a killed process leaves.
        bytes.truncate(bytes.len() - 12);
        bytes
    }
}

fn bytes_of(stats: &[StackStat], stack: u32) -> u64 {
    stats
        .iter()
        .find(|s| s.stack == stack)
        .map_or(0, |s| s.bytes)
}

#[test]
fn peak_end_and_total_views() {
    let p = replay(&capture(true)[..], &mut |_| {}).expect("replay");
    assert_eq!(p.frames.len(), 3);
    assert_eq!(p.stacks.len(), 2);
    assert_eq!(p.threads[0].name, "MainThread");
    assert_eq!(bytes_of(p.view(View::Peak), 0), 50 * MB);
    assert_eq!(bytes_of(p.view(View::Peak), 1), 10 * MB);
    assert_eq!(bytes_of(p.view(View::End), 0), 0);
    assert_eq!(bytes_of(p.view(View::End), 1), 10 * MB);
    assert_eq!(bytes_of(p.view(View::Total), 0), 50 * MB);
    assert_eq!(p.meta.peak_bytes, 60 * MB);
    assert_eq!(p.meta.peak_time_ms, 50);
    assert_eq!(p.meta.duration_ms, 2100);
    assert_eq!(p.meta.command, vec!["prog.py".to_string()]);
    assert!(!p.meta.truncated);
    assert_eq!(p.timeline.len(), 2);
}

#[test]
fn a_killed_run_replays_up_to_its_last_flush() {
    let p = replay(&capture(false)[..], &mut |_| {}).expect("replay");
    assert!(p.meta.truncated);
    assert_eq!(p.meta.duration_ms, 2000);
    assert_eq!(bytes_of(p.view(View::End), 1), 10 * MB);
}

#[test]
fn dangling_references_are_corrupt() {
    let mut rec = Recorder::new(Vec::new(), &Header::default()).expect("header");
    let bad = ProfileDelta {
        new_nodes: Vec::new(),
        new_tree_stacks: Vec::new(),
        native_addresses: Vec::new(),
        new_stacks: vec![NewStack {
            id: 0,
            frames: vec![9],
            thread_native_id: 1,
            domain: 0,
        }],
        ..ProfileDelta::default()
    };
    rec.record_delta(0, &bad).expect("delta");
    let bytes = rec.finish(1).expect("finish");
    assert!(matches!(
        replay(&bytes[..], &mut |_| {}),
        Err(FormatError::CorruptRecord { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn replay_of_mutated_captures_never_panics(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in any::<usize>(),
    ) {
        let mut bytes = capture(true);
        for (pos, value) in edits {
            let len = bytes.len();
            bytes[pos % len] = value;
        }
        let keep = bytes.len() - cut % bytes.len();
        bytes.truncate(keep);
        let _ = replay(&bytes[..], &mut |_| {});
    }
}

#[test]
fn runner_frames_are_cut_from_the_bottom_of_stacks() {
    let mut rec = Recorder::new(Vec::new(), &Header::default()).expect("header");
    let runner = |f: &str, l| Frame {
        filename: format!("/x/heapscope/cli/{f}").into(),
        function: "r".into(),
        lineno: l,
        native: false,
    };
    let delta = ProfileDelta {
        new_nodes: Vec::new(),
        new_tree_stacks: Vec::new(),
        new_frames: vec![
            (0, frame("f", 1)),
            (1, runner("run.py", 2)),
            (
                2,
                Frame {
                    filename: "<frozen runpy>".into(),
                    function: "_run_code".into(),
                    lineno: 3,
                    native: false,
                },
            ),
        ],
        native_addresses: Vec::new(),
        new_stacks: vec![
            NewStack {
                id: 0,
                frames: vec![0, 1, 2],
                thread_native_id: 1,
                domain: 0,
            },
            NewStack {
                id: 1,
                frames: vec![1, 2],
                thread_native_id: 1,
                domain: 0,
            },
        ],
        ..ProfileDelta::default()
    };
    rec.record_delta(0, &delta).expect("delta");
    let p = replay(&rec.finish(1).expect("finish")[..], &mut |_| {}).expect("replay");
    assert_eq!(p.stacks[0].frames, vec![0]);
    assert_eq!(p.stacks[1].frames, vec![1, 2]);
}

#[test]
fn stacks_keep_their_tracemalloc_domain() {
    let mut rec = Recorder::new(Vec::new(), &Header::default()).expect("header");
    let delta = ProfileDelta {
        new_nodes: Vec::new(),
        new_tree_stacks: Vec::new(),
        new_frames: vec![(0, frame("build", 5))],
        native_addresses: Vec::new(),
        new_stacks: vec![
            NewStack {
                id: 0,
                frames: vec![0],
                thread_native_id: 1,
                domain: 0,
            },
            NewStack {
                id: 1,
                frames: vec![0],
                thread_native_id: 1,
                domain: 389_047,
            },
        ],
        changed: vec![counters(0, 100, 100), counters(1, 4 * MB, 4 * MB)],
        ..ProfileDelta::default()
    };
    rec.record_delta(10, &delta).expect("delta");
    let p = replay(&rec.finish(20).expect("finish")[..], &mut |_| {}).expect("replay");
    let domains: Vec<u32> = p.stacks.iter().map(|s| s.domain).collect();
    assert_eq!(domains, vec![0, 389_047]);
    assert_eq!(bytes_of(p.view(View::End), 1), 4 * MB);
}

fn node(id: u32, parent: u32, frame: u32) -> NewNode {
    NewNode { id, parent, frame }
}

fn tree_stack(id: u32, leaf: u32, domain: u32) -> NewTreeStack {
    NewTreeStack {
        id,
        leaf,
        thread_native_id: 1,
        domain,
    }
}

/// Stacks of the frame tree: frames from the innermost node to the root; stacks written twice
/// (the tracer forgot one and met it again) are one stack whose figures are summed, unless
/// their domain differs.
#[test]
fn tree_stacks_expand_to_their_path_and_merge_when_equal() {
    let header = Header {
        command: vec!["prog.py".into()],
        ..Header::default()
    };
    let mut rec = Recorder::new(Vec::new(), &header).expect("header");
    let first = ProfileDelta {
        new_frames: vec![(0, frame("<module>", 1)), (1, frame("f", 5))],
        new_nodes: vec![node(1, 0, 0), node(2, 1, 1)],
        new_tree_stacks: vec![tree_stack(0, 2, 0), tree_stack(1, 1, 0)],
        changed: vec![counters(0, 0, 100), counters(1, 10, 10)],
        ..ProfileDelta::default()
    };
    rec.record_delta(10, &first).expect("first");
    // The same path again, under a new node and stack id, then in another domain.
    let second = ProfileDelta {
        new_nodes: vec![node(3, 1, 1)],
        new_tree_stacks: vec![tree_stack(2, 3, 0), tree_stack(3, 3, 389_047)],
        changed: vec![counters(2, 7, 50), counters(3, 3, 3)],
        ..ProfileDelta::default()
    };
    rec.record_delta(20, &second).expect("second");
    let bytes = rec.finish(30).expect("finish");
    let p = replay(&bytes[..], &mut |_| {}).expect("replay");
    assert_eq!(p.stacks.len(), 3);
    let f = p
        .stacks
        .iter()
        .position(|s| s.frames == vec![1, 0] && s.domain == 0)
        .expect("f <- <module>") as u32;
    assert_eq!(bytes_of(p.view(View::Total), f), 150);
    assert_eq!(bytes_of(p.view(View::End), f), 7);
    let numpy = p
        .stacks
        .iter()
        .position(|s| s.domain == 389_047)
        .expect("domain") as u32;
    assert_eq!(p.stacks[numpy as usize].frames, vec![1, 0]);
    assert_eq!(bytes_of(p.view(View::Total), numpy), 3);
}

/// A hostile file: a long chain of nodes and a stack naming each of them would expand to far
/// more frames than the file holds (n^2 / 2): an error, not hours of work or gigabytes.
#[test]
fn stacks_expanding_far_beyond_the_file_are_corrupt() {
    let header = Header::default();
    let mut rec = Recorder::new(Vec::new(), &header).expect("header");
    let chain: Vec<NewNode> = (1..=20_000).map(|id| node(id, id - 1, 0)).collect();
    let stacks: Vec<NewTreeStack> = (0..20_000).map(|id| tree_stack(id, id + 1, 0)).collect();
    let delta = ProfileDelta {
        new_frames: vec![(0, frame("f", 1))],
        new_nodes: chain,
        new_tree_stacks: stacks,
        ..ProfileDelta::default()
    };
    rec.record_delta(10, &delta).expect("delta");
    let bytes = rec.finish(20).expect("finish");
    assert!(bytes.len() < 200_000, "{}", bytes.len());
    let err = replay(&bytes[..], &mut |_| {}).expect_err("200M frames from a small file");
    assert!(matches!(err, FormatError::CorruptRecord { .. }), "{err}");
}

/// A 50 MB spike between two samples (none shows it), then 30 MB held from 1.2 s: the peak's
/// time is the one the PEAK record carries (the sampler's, 40 ms), not the highest sample's.
#[test]
fn a_spike_no_sample_saw_is_timed_by_its_peak_record() {
    let header = Header {
        command: vec!["prog.py".into()],
        pid: 7,
        ..Header::default()
    };
    let mut rec = Recorder::new(Vec::new(), &header).expect("header");
    let delta = |peak_changed: Vec<StackStat>, current: u64| ProfileDelta {
        new_frames: if peak_changed.is_empty() {
            Vec::new()
        } else {
            vec![(0, frame("spike", 3))]
        },
        new_stacks: if peak_changed.is_empty() {
            Vec::new()
        } else {
            vec![NewStack {
                id: 0,
                frames: vec![0],
                thread_native_id: 11,
                domain: 0,
            }]
        },
        changed: vec![counters(0, current, 80 * MB)],
        current_bytes: current,
        peak_bytes: 50 * MB,
        total_allocated_bytes: 80 * MB,
        total_allocations: 2,
        peak_changed,
        ..ProfileDelta::default()
    };
    let sample = |t_ms, traced_bytes| Sample {
        t_ms,
        traced_bytes,
        rss_bytes: 0,
    };
    rec.record_samples(&[sample(0, 0), sample(40, 0), sample(90, 0)])
        .expect("samples");
    let spike = vec![StackStat {
        stack: 0,
        bytes: 50 * MB,
        count: 1,
    }];
    rec.record_delta_with_peak_time(900, 40, &delta(spike, 0))
        .expect("delta");
    rec.record_samples(&[sample(1260, 30 * MB), sample(1800, 30 * MB)])
        .expect("samples");
    rec.record_delta(1800, &delta(Vec::new(), 30 * MB))
        .expect("delta");
    let p = replay(&rec.finish(1900).expect("finish")[..], &mut |_| {}).expect("replay");
    assert_eq!(p.meta.peak_bytes, 50 * MB);
    assert_eq!(p.meta.peak_time_ms, 40);
}
