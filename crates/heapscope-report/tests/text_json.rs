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
        native: false,
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
                domain: 0,
                process: 0,
            },
            Stack {
                frames: vec![1, 2],
                thread: 0,
                domain: 0,
                process: 0,
            },
            Stack {
                frames: vec![3, 2],
                thread: 0,
                domain: 0,
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

#[test]
fn blocks_of_an_extension_domain_are_rows_of_their_own() {
    let mut p = profile(50);
    p.stacks.push(Stack {
        frames: vec![0, 2],
        thread: 0,
        domain: 389_047,
        process: 0,
    });
    p.at_peak.push(StackStat {
        stack: 3,
        bytes: 20 * MB,
        count: 1,
    });
    let rows = group(&p, View::Peak, GroupBy::Line);
    let at_line_3: Vec<_> = rows.iter().filter(|r| r.line == 3).collect();
    assert_eq!(at_line_3.len(), 2);
    assert_eq!((at_line_3[0].domain, at_line_3[0].size), (0, 50 * MB));
    assert_eq!((at_line_3[1].domain, at_line_3[1].size), (389_047, 20 * MB));
    assert_eq!(at_line_3[1].location(), "prog.py:3 [domain 389047]");
    let value = report_json(&p, &ReportOptions::default());
    let domains: Vec<u64> = value["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["domain"].as_u64())
        .collect();
    assert_eq!(domains, vec![0, 389_047, 0]);
    let folded = heapscope_report::collapsed::render(&p, View::Peak);
    assert!(
        folded.contains("peak (prog.py:3);[domain 389047] 20971520\n"),
        "{folded}"
    );
    let mut out = Vec::new();
    render_text(&p, &ReportOptions::default(), &mut out).expect("render");
    assert!(String::from_utf8_lossy(&out).contains("prog.py:3 [domain 389047]"));
    // speedscope: the stack ends with a `[domain N]` frame after the profile's own frames.
    let doc: serde_json::Value = serde_json::from_slice(
        &heapscope_report::speedscope::render(&p, View::Peak).expect("speedscope"),
    )
    .expect("json");
    let frames = doc["shared"]["frames"].as_array().expect("frames");
    assert_eq!(frames.len(), p.frames.len() + 1);
    assert_eq!(frames[p.frames.len()]["name"], "[domain 389047]");
    let peak_samples = doc["profiles"][0]["samples"].as_array().expect("samples");
    assert!(peak_samples
        .iter()
        .any(|s| s == &serde_json::json!([2, 0, 4])));
    // pprof: a numeric `domain` label.
    let msg = heapscope_report::pprof::to_message(&p, View::Peak);
    let domain_key = msg
        .string_table
        .iter()
        .position(|s| s == "domain")
        .expect("domain string") as i64;
    let labelled: Vec<i64> = msg
        .sample
        .iter()
        .flat_map(|s| s.label.iter())
        .filter(|l| l.key == domain_key)
        .map(|l| l.num)
        .collect();
    assert_eq!(labelled, vec![389_047]);
}
