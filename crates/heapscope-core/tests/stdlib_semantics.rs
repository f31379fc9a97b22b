//! The engine against the expectations of the `test_tracemalloc.py` that ships with `CPython`.

use heapscope_core::builder::SnapshotBuilder;
use heapscope_core::filter::{filter_traces, DomainFilter, Filter, TraceFilter};
use heapscope_core::snapshot::Snapshot;
use heapscope_core::stats::{compare_to, statistics, KeyType, StatisticDiff};
use heapscope_core::CoreError;

type Raw<'a> = (u32, u64, &'a [(&'a str, u32)], u32);

fn build(raw: &[Raw<'_>]) -> Result<Snapshot, CoreError> {
    let mut b = SnapshotBuilder::new(2);
    for &(domain, size, frames, total) in raw {
        let ids: Vec<u32> = frames.iter().map(|&(f, l)| b.frame(f, l)).collect();
        let tb = b.traceback(&ids, total)?;
        b.trace(domain, size, tb)?;
    }
    Ok(b.finish())
}

const AB2: &[(&str, u32)] = &[("a.py", 2), ("b.py", 4)];
const AB5: &[(&str, u32)] = &[("a.py", 5), ("b.py", 4)];

fn snapshots() -> Result<(Snapshot, Snapshot), CoreError> {
    let one = build(&[
        (0, 10, AB2, 3),
        (0, 10, AB2, 3),
        (0, 10, AB2, 3),
        (1, 2, AB5, 3),
        (2, 66, &[("b.py", 1)], 1),
        (3, 7, &[("<unknown>", 0)], 1),
    ])?;
    let two = build(&[
        (0, 10, AB2, 3),
        (0, 10, AB2, 3),
        (0, 10, AB2, 3),
        (2, 2, AB5, 3),
        (2, 5000, AB5, 3),
        (4, 400, &[("c.py", 578)], 1),
    ])?;
    Ok((one, two))
}

fn flat(s: &Snapshot, key: KeyType, cumulative: bool) -> Vec<(String, u64, u64)> {
    statistics(s, key, cumulative)
        .unwrap_or_default()
        .into_iter()
        .map(|st| {
            let key: Vec<String> = st.key.iter().map(|(f, l)| format!("{f}:{l}")).collect();
            (key.join(","), st.size, st.count)
        })
        .collect()
}

fn row(k: &str, size: u64, count: u64) -> (String, u64, u64) {
    (k.to_owned(), size, count)
}

#[test]
fn group_by_line_file_traceback() -> Result<(), CoreError> {
    let (one, two) = snapshots()?;
    assert_eq!(
        flat(&one, KeyType::Lineno, false),
        [
            row("b.py:1", 66, 1),
            row("a.py:2", 30, 3),
            row("<unknown>:0", 7, 1),
            row("a.py:5", 2, 1)
        ]
    );
    assert_eq!(
        flat(&two, KeyType::Filename, false),
        [row("a.py:0", 5032, 5), row("c.py:0", 400, 1)]
    );
    assert_eq!(
        flat(&one, KeyType::Traceback, false),
        [
            row("b.py:1", 66, 1),
            row("a.py:2,b.py:4", 30, 3),
            row("<unknown>:0", 7, 1),
            row("a.py:5,b.py:4", 2, 1)
        ]
    );
    assert!(statistics(&one, KeyType::Traceback, true).is_err());
    Ok(())
}

#[test]
fn cumulative() -> Result<(), CoreError> {
    let (one, _) = snapshots()?;
    assert_eq!(
        flat(&one, KeyType::Filename, true),
        [
            row("b.py:0", 98, 5),
            row("a.py:0", 32, 4),
            row("<unknown>:0", 7, 1)
        ]
    );
    assert_eq!(
        flat(&one, KeyType::Lineno, true),
        [
            row("b.py:1", 66, 1),
            row("b.py:4", 32, 4),
            row("a.py:2", 30, 3),
            row("<unknown>:0", 7, 1),
            row("a.py:5", 2, 1)
        ]
    );
    Ok(())
}

#[test]
fn compare() -> Result<(), CoreError> {
    let (one, two) = snapshots()?;
    let diffs: Vec<(String, u64, i64, u64, i64)> = compare_to(&two, &one, KeyType::Lineno, false)?
        .into_iter()
        .map(
            |StatisticDiff {
                 key,
                 size,
                 size_diff,
                 count,
                 count_diff,
             }| {
                (
                    format!("{}:{}", key[0].0, key[0].1),
                    size,
                    size_diff,
                    count,
                    count_diff,
                )
            },
        )
        .collect();
    let expect = [
        ("a.py:5", 5002, 5000, 2, 1),
        ("c.py:578", 400, 400, 1, 1),
        ("b.py:1", 0, -66, 0, -1),
        ("<unknown>:0", 0, -7, 0, -1),
        ("a.py:2", 30, 0, 3, 0),
    ];
    let expect: Vec<_> = expect
        .iter()
        .map(|&(k, a, b, c, d)| (k.to_owned(), a, b, c, d))
        .collect();
    assert_eq!(diffs, expect);
    Ok(())
}

fn sizes(s: &Snapshot) -> Vec<(u32, u64)> {
    s.traces.iter().map(|t| (t.domain, t.size)).collect()
}

#[test]
fn filters() -> Result<(), CoreError> {
    let (one, _) = snapshots()?;
    let excl_b = TraceFilter::File(Filter::new(false, "b.py", None, false, None));
    let s3 = filter_traces(&one, &[excl_b]);
    assert_eq!(sizes(&s3), [(0, 10), (0, 10), (0, 10), (1, 2), (3, 7)]);
    let a2 = TraceFilter::File(Filter::new(true, "a.py", Some(2), false, None));
    let a5 = TraceFilter::File(Filter::new(true, "a.py", Some(5), false, None));
    assert_eq!(
        sizes(&filter_traces(&s3, &[a2, a5])),
        [(0, 10), (0, 10), (0, 10), (1, 2)]
    );
    let excl_a1 = TraceFilter::File(Filter::new(false, "a.py", None, false, Some(1)));
    assert_eq!(
        sizes(&filter_traces(&one, &[excl_a1])),
        [(0, 10), (0, 10), (0, 10), (2, 66), (3, 7)]
    );
    let d3 = TraceFilter::Domain(DomainFilter {
        inclusive: true,
        domain: 3,
    });
    assert_eq!(sizes(&filter_traces(&one, &[d3])), [(3, 7)]);
    assert_eq!(filter_traces(&one, &[]).traces, one.traces);
    Ok(())
}

#[test]
fn match_frame() {
    let f = Filter::new(true, "abc", Some(5), false, None);
    assert!(f.match_frame("abc", 5));
    assert!(!f.match_frame("abc", 0));
    let f = Filter::new(false, "abc", Some(0), false, None);
    assert!(!f.match_frame("abc", 0));
    assert!(f.match_frame("12356", 0));
    let f = Filter::new(true, "a.pyc", None, false, None);
    assert!(f.match_frame("a.py", 1));
    assert!(!Filter::new(true, "a.py", None, false, None).match_frame("a.pyo", 1));
}

#[test]
fn cumulative_counts_a_repeated_frame_once_per_occurrence() -> Result<(), CoreError> {
    let rec = build(&[(0, 5, &[("r.py", 1), ("r.py", 1), ("m.py", 9)], 3)])?;
    assert_eq!(
        flat(&rec, KeyType::Lineno, true),
        [row("r.py:1", 10, 2), row("m.py:9", 5, 1)]
    );
    assert_eq!(
        flat(&rec, KeyType::Filename, true),
        [row("r.py:0", 10, 2), row("m.py:0", 5, 1)]
    );
    Ok(())
}

#[test]
fn groups_ignore_function_names_and_total_nframe() {
    use heapscope_core::frame::Frame;
    use heapscope_core::snapshot::{Trace, Traceback};
    let snap = Snapshot {
        frames: vec![
            Frame {
                filename: "a.py".into(),
                function: "f".into(),
                lineno: 1,
                native: false,
            },
            Frame {
                filename: "a.py".into(),
                function: "g".into(),
                lineno: 1,
                native: false,
            },
        ],
        tracebacks: vec![
            Traceback {
                frames: vec![0].into(),
                total_nframe: 1,
            },
            Traceback {
                frames: vec![1].into(),
                total_nframe: 4,
            },
        ],
        traces: vec![
            Trace {
                domain: 0,
                size: 3,
                traceback: 0,
            },
            Trace {
                domain: 0,
                size: 4,
                traceback: 1,
            },
        ],
        traceback_limit: 1,
    };
    assert_eq!(
        flat(&snap, KeyType::Traceback, false),
        [row("a.py:1", 7, 2)]
    );
    assert_eq!(flat(&snap, KeyType::Lineno, false), [row("a.py:1", 7, 2)]);
}

#[test]
fn ties_are_broken_by_traceback_oldest_frame_first() -> Result<(), CoreError> {
    let snap = build(&[
        (0, 5, &[("a.py", 1), ("z.py", 1)], 2),
        (0, 5, &[("z.py", 1), ("a.py", 1)], 2),
    ])?;
    // Same size and count: the traceback whose oldest frame sorts higher comes first.
    assert_eq!(
        flat(&snap, KeyType::Traceback, false),
        [row("a.py:1,z.py:1", 5, 1), row("z.py:1,a.py:1", 5, 1)]
    );
    Ok(())
}
