//! A capture of a process tree on disk: `OUT.hsc` plus `OUT.hsc.d/` streams and notes,
//! replayed and merged; PROCESS and EXIT records; a cut-short and a corrupt child stream.

use std::path::Path;

use heapscope_core::capture::{children_dir, replay_tree, Recorder};
use heapscope_core::delta::{NewNode, NewTreeStack, ProfileDelta, StackCounters};
use heapscope_core::profile::{ExitStatus, Sample, StackStat, View};
use heapscope_core::Frame;
use heapscope_format::capture::{Header, Record};

const MB: u64 = 1 << 20;

/// One process holding `mb` MiB at `func.py:5`, with a PROCESS record if it has a parent
/// and an EXIT record if it says how it ended.
fn stream(pid: u32, parent: Option<u32>, func: &str, mb: u64, exit: Option<ExitStatus>) -> Vec<u8> {
    let header = Header {
        command: vec![format!("{func}.py")],
        pid,
        start_time_unix_ms: 1_000_000 + u64::from(pid),
        ..Header::default()
    };
    let mut rec = Recorder::new(Vec::new(), &header).expect("header");
    if let Some(ppid) = parent {
        rec.record(&Record::Process { ppid }).expect("process");
    }
    let delta = ProfileDelta {
        new_frames: vec![
            (
                0,
                Frame {
                    filename: "shared.py".into(),
                    function: "main".into(),
                    lineno: 1,
                    native: false,
                },
            ),
            (
                1,
                Frame {
                    filename: format!("{func}.py").into(),
                    function: func.into(),
                    lineno: 5,
                    native: false,
                },
            ),
        ],
        // The stack through the frame tree, as the tracer writes it: main <- func.
        native_addresses: Vec::new(),
        new_stacks: Vec::new(),
        new_nodes: vec![
            NewNode {
                id: 1,
                parent: 0,
                frame: 0,
            },
            NewNode {
                id: 2,
                parent: 1,
                frame: 1,
            },
        ],
        new_tree_stacks: vec![NewTreeStack {
            id: 0,
            leaf: 2,
            thread_native_id: u64::from(pid),
            domain: 0,
        }],
        changed: vec![StackCounters {
            stack: 0,
            live_bytes: mb * MB,
            live_count: 1,
            total_bytes: mb * MB,
            total_count: 1,
        }],
        peak_changed: vec![StackStat {
            stack: 0,
            bytes: mb * MB,
            count: 1,
        }],
        current_bytes: mb * MB,
        peak_bytes: mb * MB,
        total_allocated_bytes: mb * MB,
        total_allocations: 1,
    };
    rec.record_samples(&[Sample {
        t_ms: 10,
        traced_bytes: mb * MB,
        rss_bytes: 0,
    }])
    .expect("samples");
    rec.record_delta(20, &delta).expect("delta");
    rec.flush().expect("flush");
    if let Some(exit) = exit {
        rec.record(&Record::Exit(exit)).expect("exit");
    }
    rec.finish(30).expect("finish")
}

fn cut_short(pid: u32, parent: u32, func: &str, mb: u64) -> Vec<u8> {
    let full = stream(pid, Some(parent), func, mb, None);
    // Drop the END record (11 bytes of framing + 1 byte of payload): as if SIGKILLed.
    full[..full.len() - 12].to_vec()
}

fn write_tree(dir: &Path) -> std::path::PathBuf {
    let root = dir.join("out.hsc");
    std::fs::write(
        &root,
        stream(100, None, "root", 10, Some(ExitStatus::Code(0))),
    )
    .expect("root");
    let children = children_dir(&root);
    std::fs::create_dir(&children).expect("dir");
    let write = |name: &str, bytes: Vec<u8>| std::fs::write(children.join(name), bytes);
    write(
        "101.hsc",
        stream(101, Some(100), "worker", 30, Some(ExitStatus::Signal(15))),
    )
    .expect("101");
    write("102.hsc", cut_short(102, 100, "killed", 20)).expect("102");
    write(
        "103.hsc",
        stream(103, Some(101), "grandchild", 5, Some(ExitStatus::Exec)),
    )
    .expect("103");
    write(
        "103.1.hsc",
        stream(103, Some(101), "after_exec", 7, Some(ExitStatus::Code(2))),
    )
    .expect("103.1");
    write("104.hsc", b"\x89HSC\r\n\x1a\n\x01\x00garbage".to_vec()).expect("104");
    write(
        "105.untraced",
        b"105\x00100\x003.9.2\x00cannot import heapscope\x00python3.9\x00x.py".to_vec(),
    )
    .expect("105");
    root
}

#[test]
fn a_tree_replays_merged_with_every_process_listed() {
    let tmp = tempdir();
    let root = write_tree(tmp.path());
    let p = replay_tree(&root, &mut |_| {}).expect("replays");
    let pids: Vec<u32> = p.processes.iter().map(|q| q.pid).collect();
    assert_eq!(pids, [100, 101, 102, 103, 103, 104, 105]);
    let by_pid = |pid: u32, i: usize| {
        p.processes
            .iter()
            .filter(|q| q.pid == pid)
            .nth(i)
            .expect("there")
    };
    assert_eq!(by_pid(101, 0).exit, Some(ExitStatus::Signal(15)));
    assert_eq!(by_pid(101, 0).ppid, Some(100));
    assert!(by_pid(102, 0).truncated && by_pid(102, 0).exit.is_none());
    assert_eq!(by_pid(103, 0).exit, Some(ExitStatus::Exec));
    assert_eq!(by_pid(103, 1).exit, Some(ExitStatus::Code(2)));
    assert!(by_pid(104, 0)
        .note
        .as_deref()
        .is_some_and(|n| n.contains("unreadable")));
    assert!(by_pid(105, 0)
        .note
        .as_deref()
        .is_some_and(|n| n.contains("not traced")));
    assert_eq!(p.processes[0].ppid, None);
    // Each process at its own peak: 10 + 30 + 20 + 5 + 7 MiB.
    let peak: u64 = p.view(View::Peak).iter().map(|s| s.bytes).sum();
    assert_eq!(peak, 72 * MB);
    assert_eq!(
        p.frames
            .iter()
            .filter(|f| &*f.filename == "shared.py")
            .count(),
        1
    );
    assert!(!p.meta.truncated, "the root ended normally");
    assert_eq!(p.meta.pid, 100);

    let one = p.only_process(103).expect("103");
    let bytes: u64 = one.view(View::Peak).iter().map(|s| s.bytes).sum();
    assert_eq!(bytes, 12 * MB, "both programs of pid 103");
    assert_eq!(one.processes.len(), 2);
    // Only its own stacks and frames, stacks pointing at its two programs.
    assert_eq!(one.stacks.len(), 2);
    assert_eq!(one.frames.len(), 3);
    let mut programs: Vec<u32> = one.stacks.iter().map(|s| s.process).collect();
    programs.sort_unstable();
    assert_eq!(programs, [0, 1]);
}

#[test]
fn a_single_file_capture_still_reads_alone() {
    let tmp = tempdir();
    let root = tmp.path().join("solo.hsc");
    std::fs::write(&root, stream(9, None, "solo", 3, None)).expect("write");
    let p = replay_tree(&root, &mut |_| {}).expect("replays");
    assert_eq!(p.processes.len(), 1);
    assert_eq!(p.view(View::Peak)[0].bytes, 3 * MB);
}

struct TempDir(std::path::PathBuf);

impl TempDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir() -> TempDir {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "heapscope-tree-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("tempdir");
    TempDir(dir)
}
