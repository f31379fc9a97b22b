//! A small capture used by the golden and property tests.

use heapscope_format::capture::{
    CaptureWriter, CounterEntry, Counters, FrameEntry, Header, Nodes, Peak, PeakEntry, Record,
    SampleEntry, StackEntry, ThreadName, TreeStack, TreeStacks,
};

pub fn sample_header() -> Header {
    Header {
        python_version: "3.11.7".into(),
        command: vec!["app.py".into(), "--size".into(), "10".into()],
        start_time_unix_ms: 1_764_000_000_000,
        pid: 4242,
        trace_limit: 64,
    }
}

/// The records of the current version's sample: version 1's plus a stack defined through the
/// frame tree (version 2).
pub fn sample_records() -> Vec<Record> {
    let mut records = sample_records_v1();
    records.push(Record::Nodes(Nodes {
        first: 1,
        nodes: vec![(0, 1), (1, 0)],
    }));
    records.push(Record::TreeStacks(TreeStacks {
        first: 1,
        stacks: vec![TreeStack {
            thread_native_id: 78,
            domain: 389_047,
            leaf: 2,
        }],
    }));
    records.push(Record::Counters(Counters {
        t_ms: 110,
        current_bytes: 900,
        peak_bytes: 1_000_000,
        total_allocated_bytes: 1_000_900,
        total_allocations: 12,
        stacks: vec![CounterEntry {
            stack: 1,
            live_bytes: 400,
            live_count: 1,
            total_bytes: 400,
            total_count: 1,
        }],
    }));
    records
}

/// The records of `tests/golden/v1.hsc`.
#[allow(dead_code)]
pub fn sample_records_v1() -> Vec<Record> {
    vec![
        Record::Frames(vec![
            FrameEntry {
                id: 0,
                filename: "app.py".into(),
                function: "build".into(),
                lineno: 7,
            },
            FrameEntry {
                id: 1,
                filename: "app.py".into(),
                function: "<module>".into(),
                lineno: 20,
            },
        ]),
        Record::Stacks(vec![StackEntry {
            id: 0,
            thread_native_id: 77,
            frames: vec![0, 1],
        }]),
        Record::Samples(vec![
            SampleEntry {
                t_ms: 0,
                traced_bytes: 0,
                rss_bytes: 9_000_000,
            },
            SampleEntry {
                t_ms: 50,
                traced_bytes: 1_000_000,
                rss_bytes: 10_000_000,
            },
        ]),
        Record::Counters(Counters {
            t_ms: 100,
            current_bytes: 500,
            peak_bytes: 1_000_000,
            total_allocated_bytes: 1_000_500,
            total_allocations: 11,
            stacks: vec![CounterEntry {
                stack: 0,
                live_bytes: 500,
                live_count: 1,
                total_bytes: 1_000_500,
                total_count: 11,
            }],
        }),
        Record::Peak(Peak {
            t_ms: 100,
            peak_bytes: 1_000_000,
            stacks: vec![PeakEntry {
                stack: 0,
                bytes: 1_000_000,
                count: 10,
            }],
        }),
        Record::ThreadNames(vec![ThreadName {
            native_id: 77,
            name: "MainThread".into(),
        }]),
    ]
}

/// The bytes of the sample capture, closed after 120 ms.
pub fn sample_bytes() -> Vec<u8> {
    let mut w = CaptureWriter::new(Vec::new(), &sample_header()).expect("header");
    for r in sample_records() {
        w.write(&r).expect("record");
    }
    w.finish(120).expect("finish")
}
