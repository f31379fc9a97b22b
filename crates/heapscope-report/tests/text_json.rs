//! Text, JSON and diff reports on a hand-built profile.

use heapscope_core::profile::{Meta, Profile, Stack, StackStat, ThreadInfo, View};
use heapscope_core::Frame;
use heapscope_report::diff::{diff_by_line, render_diff_text};
use heapscope_report::group::{group, GroupBy};
use heapscope_report::json::report_json;
use heapscope_report::text::{render_text, ReportOptions};

const MB: u64 = 1 << 20;

fn frame(function: &str, line: u32) -> Frame {
    Frame {
        filename: "prog.py".into(),
        function: function.into(),
        lineno: line,
    }
}

fn profile(peak_mb: u64) -> Profile {
    let stat = |stack, mb: u64, count| StackStat {
        stack,
        bytes: mb * MB,
        count,
    };
    Profile {
        meta: Meta {
            command: vec!["prog.py".into(), "--n".into(), "3".into()],
            python_version: "3.11.7".into(),
            pid: 7,
            start_time_unix_ms: 0,
            duration_ms: 2100,
            peak_bytes: (peak_mb + 10) * MB,
            peak_time_ms: 500,
            total_allocated_bytes: (peak_mb + 12) * MB,
            total_allocations: 40,
            trace_limit: 64,
            truncated: false,
        },
        frames: vec![
            frame("peak", 3),
            frame("keep", 8),
            frame("<module>", 12),
            frame("keep", 9),
        ],
        stacks: vec![
            Stack {
                frames: vec![0, 2],
                thread: 0,
                process: 0,
            },
            Stack {
                frames: vec![1, 2],
                thread: 0,
                process: 0,
            },
            Stack {
                frames: vec![3, 2],
                thread: 0,
                process: 0,
            },
        ],
        threads: vec![ThreadInfo {
            native_id: 1,
            name: "MainThread".into(),
        }],
        at_peak: vec![stat(0, peak_mb, 10), stat(1, 10, 1)],
        at_end: vec![stat(1, 10, 1)],
        total: vec![stat(0, peak_mb, 10), stat(1, 10, 1), stat(2, 2, 29)],
        timeline: Vec::new(),
        processes: Vec::new(),
    }
}

#[test]
fn text_report_at_peak_by_line() {
    let mut out = Vec::new();
    render_text(&profile(50), &ReportOptions::default(), &mut out).expect("render");
    insta::assert_snapshot!(String::from_utf8_lossy(&out));
}

#[test]
fn text_report_by_stack_and_function() {
    let p = profile(50);
    let mut out = Vec::new();
    let opts = ReportOptions {
        view: View::Total,
        by: GroupBy::Stack,
        top: 2,
    };
    render_text(&p, &opts, &mut out).expect("render");
    insta::assert_snapshot!(String::from_utf8_lossy(&out));
    let rows = group(&p, View::Total, GroupBy::Function);
    assert_eq!(rows[0].function, "peak");
    assert_eq!(
        (rows[1].function.as_str(), rows[1].size, rows[1].line),
        ("keep", 12 * MB, 0)
    );
}

#[test]
fn json_report_shape() {
    let opts = ReportOptions {
        view: View::End,
        by: GroupBy::Line,
        top: 5,
    };
    let value = report_json(&profile(50), &opts);
    insta::assert_snapshot!(serde_json::to_string_pretty(&value).expect("json"));
}

#[test]
fn diff_by_line_orders_by_change() {
    let rows = diff_by_line(&profile(50), &profile(80), View::Peak);
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].line, rows[0].size_diff()),
        (3, 30 * i128::from(MB))
    );
    let mut out = Vec::new();
    render_diff_text(&profile(50), &profile(80), View::Peak, 10, &mut out).expect("render");
    insta::assert_snapshot!(String::from_utf8_lossy(&out));
}
