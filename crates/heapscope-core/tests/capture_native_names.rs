//! Native frames written unnamed (their object and an address in it, `NATIVE_ADDRESSES`) are
//! named by the reader from the object's tables, and frames that come out alike are one; the
//! in-process view of a drain (`Profile::from_first_delta`) names them the same way.

use heapscope_core::capture::{replay, Recorder};
use heapscope_core::delta::{NewNode, NewTreeStack, ProfileDelta, StackCounters};
use heapscope_core::native_frames::placeholder;
use heapscope_core::profile::{Meta, Profile, View};
use heapscope_core::Frame;
use heapscope_format::capture::Header;

#[inline(never)]
fn here(x: u64) -> u64 {
    x.wrapping_mul(0x9e37_79b9) ^ (x >> 7)
}

/// This test binary's path and the address of `here` in its file (the binary is
/// position-independent: its load bias is where its first segment is mapped).
fn here_in_file() -> (String, u64) {
    let exe = std::fs::read_link("/proc/self/exe").unwrap_or_default();
    let exe = exe.display().to_string();
    assert_ne!(here(std::env::args().count() as u64), 1);
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let bias = maps
        .lines()
        .find_map(|l| {
            let mut parts = l.split_whitespace();
            let (range, _, offset) = (parts.next()?, parts.next()?, parts.next()?);
            let lo = u64::from_str_radix(range.split_once('-')?.0, 16).ok()?;
            (offset.trim_start_matches('0').is_empty() && l.ends_with(&exe)).then_some(lo)
        })
        .expect("the test binary is mapped");
    (exe, here as *const () as usize as u64 - bias)
}

fn counters(stack: u32, live: u64) -> StackCounters {
    StackCounters {
        stack,
        live_bytes: live,
        live_count: 1,
        total_bytes: live,
        total_count: 1,
    }
}

/// Two native frames at two addresses of `here`'s first instruction (one name, one line) and
/// one in an object that does not exist, each called from `main.py:3`.
fn delta() -> ProfileDelta {
    let (exe, addr) = here_in_file();
    let node = |id, parent, frame| NewNode { id, parent, frame };
    let stack = |id, leaf| NewTreeStack {
        id,
        leaf,
        thread_native_id: 1,
        domain: 0,
    };
    ProfileDelta {
        new_frames: vec![
            (0, Frame::new("main.py", 3)),
            (1, placeholder(&exe, addr)),
            (2, placeholder(&exe, addr + 1)),
            (3, placeholder("/nonexistent/libgone.so", 0x40)),
        ],
        native_addresses: vec![(1, addr), (2, addr + 1), (3, 0x40)],
        new_nodes: vec![node(1, 0, 0), node(2, 1, 1), node(3, 1, 2), node(4, 1, 3)],
        new_tree_stacks: vec![stack(0, 2), stack(1, 3), stack(2, 4)],
        changed: vec![counters(0, 10), counters(1, 20), counters(2, 5)],
        ..ProfileDelta::default()
    }
}

/// The profile's stacks held at the end: (innermost frame, bytes).
fn held(p: &Profile) -> Vec<(Frame, u64)> {
    let mut rows: Vec<(Frame, u64)> = p
        .view(View::End)
        .iter()
        .map(|s| {
            let top = p.stacks[s.stack as usize].frames[0];
            (p.frames[top as usize].clone(), s.bytes)
        })
        .collect();
    rows.sort_by_key(|r| r.1);
    rows
}

fn check(p: &Profile) {
    let rows = held(p);
    assert_eq!(rows.len(), 2, "{rows:?}");
    let (gone, named) = (&rows[0], &rows[1]);
    assert_eq!(gone.1, 5);
    assert_eq!(&*gone.0.function, "libgone.so+0x40");
    assert_eq!(&*gone.0.filename, "/nonexistent/libgone.so");
    assert_eq!(named.1, 30, "the two addresses of one line are one stack");
    assert!(named.0.native);
    assert!(named.0.function.ends_with("here"), "{:?}", named.0);
    assert!(
        named.0.filename.ends_with("capture_native_names.rs"),
        "{:?}",
        named.0
    );
    assert!(named.0.lineno > 0);
}

#[test]
fn the_reader_names_native_frames_and_merges_those_named_alike() {
    let mut rec = Recorder::new(Vec::new(), &Header::default()).expect("header");
    rec.record_delta(10, &delta()).expect("delta");
    let bytes = rec.finish(20).expect("end");
    let p = replay(&bytes[..], &mut |_| {}).expect("replay");
    check(&p);
}

#[test]
fn a_drain_viewed_in_process_names_them_alike() {
    check(&Profile::from_first_delta(&delta(), Meta::default()));
}
