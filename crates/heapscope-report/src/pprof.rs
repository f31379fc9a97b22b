//! pprof export: a gzipped `perftools.profiles.Profile` with four sample types per stack,
//! `alloc_objects`/`alloc_space` (everything allocated) and `inuse_objects`/`inuse_space`
//! (memory held at the peak, or at the end with `View::End`).
//!
//! Each profile frame becomes one Location (id = frame id + 1) with one Line; functions are
//! keyed by (name, file) and start at the first line seen. Samples carry a `thread` label, a
//! numeric `domain` label for blocks a C extension reported in its own tracemalloc domain, and a
//! numeric `pid` label in captures of several processes.

use hashbrown::HashMap;
use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;
use heapscope_core::profile::{Profile, StackStat, View};
use prost::Message;

use crate::labels::{function_name, marked_function};
use crate::pprof_proto as pb;
use crate::ReportError;

/// Interns strings into a pprof string table (index 0 is "").
struct Strings {
    table: Vec<String>,
    index: HashMap<String, i64>,
}

impl Strings {
    fn new() -> Self {
        Strings {
            table: vec![String::new()],
            index: HashMap::from([(String::new(), 0)]),
        }
    }

    fn get(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.table.len() as i64;
        self.table.push(s.to_owned());
        self.index.insert(s.to_owned(), i);
        i
    }
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// One Location per frame (id = frame id + 1), one Function per (name, file).
fn functions_and_locations(
    profile: &Profile,
    strings: &mut Strings,
) -> (Vec<pb::Function>, Vec<pb::Location>) {
    let mut functions: Vec<pb::Function> = Vec::new();
    let mut function_ids: HashMap<(&str, &str), u64> = HashMap::new();
    let mut locations = Vec::with_capacity(profile.frames.len());
    for (i, frame) in profile.frames.iter().enumerate() {
        let name = function_name(frame);
        let key = (name, &*frame.filename);
        let function_id = if let Some(&id) = function_ids.get(&key) {
            id
        } else {
            let id = functions.len() as u64 + 1;
            // Native frames are named `function [native]`; the system name stays the symbol.
            let system_idx = strings.get(name);
            let name_idx = strings.get(&marked_function(frame));
            functions.push(pb::Function {
                id,
                name: name_idx,
                system_name: system_idx,
                filename: strings.get(&frame.filename),
                start_line: i64::from(frame.lineno),
            });
            function_ids.insert(key, id);
            id
        };
        locations.push(pb::Location {
            id: i as u64 + 1,
            mapping_id: 1,
            line: vec![pb::Line {
                function_id,
                line: i64::from(frame.lineno),
            }],
        });
    }

    (functions, locations)
}

/// One sample per stack that appears in any view:
/// `[alloc_objects, alloc_space, inuse_objects, inuse_space]`, with a `thread` label.
fn samples(profile: &Profile, live: &[StackStat], strings: &mut Strings) -> Vec<pb::Sample> {
    let mut values: HashMap<u32, [u64; 4]> = HashMap::new();
    for s in &profile.total {
        let v = values.entry(s.stack).or_default();
        v[0] += s.count;
        v[1] += s.bytes;
    }
    for s in live {
        let v = values.entry(s.stack).or_default();
        v[2] += s.count;
        v[3] += s.bytes;
    }
    let mut stack_ids: Vec<u32> = values.keys().copied().collect();
    stack_ids.sort_unstable();
    let thread_key = strings.get("thread");
    // Captures of several processes: a numeric `pid` label too (`go tool pprof -tagfocus`).
    let pid_key = (profile.processes.len() > 1).then(|| strings.get("pid"));
    let mut samples = Vec::with_capacity(stack_ids.len());
    for id in stack_ids {
        let Some(stack) = profile.stacks.get(id as usize) else {
            continue;
        };
        let location_id = stack
            .frames
            .iter()
            .filter(|&&f| (f as usize) < profile.frames.len())
            .map(|&f| u64::from(f) + 1)
            .collect();
        let v = values.get(&id).copied().unwrap_or_default();
        let thread = profile
            .threads
            .get(stack.thread as usize)
            .map_or("", |t| t.name.as_str());
        let mut label = vec![pb::Label {
            key: thread_key,
            str: strings.get(thread),
            ..Default::default()
        }];
        if stack.domain != 0 {
            // Blocks a C extension reported in its own tracemalloc domain.
            label.push(pb::Label {
                key: strings.get("domain"),
                num: i64::from(stack.domain),
                ..Default::default()
            });
        }
        if let (Some(key), Some(process)) = (pid_key, profile.processes.get(stack.process as usize))
        {
            label.push(pb::Label {
                key,
                num: i64::from(process.pid),
                ..Default::default()
            });
        }
        samples.push(pb::Sample {
            location_id,
            value: v.iter().map(|&x| clamp(x)).collect(),
            label,
        });
    }
    samples
}

/// The uncompressed pprof message of a profile. `inuse` chooses what `inuse_*` means: the
/// peak (`View::Peak`, also used for `View::Total`) or the end (`View::End`); `View::Total`
/// makes `alloc_space` the default sample type.
pub fn to_message(profile: &Profile, inuse: View) -> pb::Profile {
    let mut strings = Strings::new();
    let sample_type: Vec<pb::ValueType> = [
        ("alloc_objects", "count"),
        ("alloc_space", "bytes"),
        ("inuse_objects", "count"),
        ("inuse_space", "bytes"),
    ]
    .iter()
    .map(|(t, u)| pb::ValueType {
        r#type: strings.get(t),
        unit: strings.get(u),
    })
    .collect();
    let default_sample_type = strings.get(if inuse == View::Total {
        "alloc_space"
    } else {
        "inuse_space"
    });
    let live = if inuse == View::End {
        &profile.at_end
    } else {
        &profile.at_peak
    };

    let (function, location) = functions_and_locations(profile, &mut strings);
    let samples = samples(profile, live, &mut strings);
    let comment = vec![strings.get(&format!("heapscope: {}", profile.meta.command.join(" ")))];
    let space = strings.get("space");
    let bytes = strings.get("bytes");
    let mapping = vec![pb::Mapping {
        id: 1,
        filename: strings.get(
            profile
                .meta
                .command
                .first()
                .map_or("python", String::as_str),
        ),
        has_functions: true,
        has_filenames: true,
        has_line_numbers: true,
    }];
    pb::Profile {
        sample_type,
        mapping,
        sample: samples,
        location,
        function,
        string_table: strings.table,
        time_nanos: clamp(profile.meta.start_time_unix_ms.saturating_mul(1_000_000)),
        duration_nanos: clamp(profile.meta.duration_ms.saturating_mul(1_000_000)),
        period_type: Some(pb::ValueType {
            r#type: space,
            unit: bytes,
        }),
        period: 1,
        comment,
        default_sample_type,
    }
}

/// The gzipped pprof file of a profile (see [`to_message`]).
pub fn render(profile: &Profile, inuse: View) -> Result<Vec<u8>, ReportError> {
    let raw = to_message(profile, inuse).encode_to_vec();
    let mut gz = GzEncoder::new(
        Vec::with_capacity(raw.len() / 3 + 64),
        Compression::default(),
    );
    gz.write_all(&raw)?;
    Ok(gz.finish()?)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::fixture::profile_from_json;

    #[test]
    fn decodes_back_with_four_sample_types() {
        let p = profile_from_json(
            r#"{"frames": [["m.py", "main", 1], ["m.py", "leaf", 5]],
                "stacks": [{"frames": [1, 0]}], "threads": [[7, "MainThread"]],
                "at_peak": [[0, 100, 2]], "at_end": [[0, 40, 1]], "total": [[0, 300, 6]]}"#,
        )
        .expect("valid");
        let gz = render(&p, View::End).expect("renders");
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut raw)
            .expect("gzip");
        let msg = pb::Profile::decode(&raw[..]).expect("protobuf");
        let s = &msg.string_table;
        let types: Vec<&str> = msg
            .sample_type
            .iter()
            .map(|t| s[t.r#type as usize].as_str())
            .collect();
        assert_eq!(
            types,
            [
                "alloc_objects",
                "alloc_space",
                "inuse_objects",
                "inuse_space"
            ]
        );
        assert_eq!(msg.sample[0].value, vec![6, 300, 1, 40]);
        assert_eq!(msg.sample[0].location_id, vec![2, 1]);
        let leaf = &msg.function[msg.location[1].line[0].function_id as usize - 1];
        assert_eq!(s[leaf.name as usize], "leaf");
        assert_eq!(s[msg.sample[0].label[0].str as usize], "MainThread");
        assert_eq!(s[0], "");
    }

    #[test]
    fn samples_of_several_processes_carry_their_pid() {
        let mut p = profile_from_json(
            r#"{"frames": [["m.py", "main", 1], ["w.py", "work", 5]],
                "stacks": [{"frames": [0]}, {"frames": [1, 0]}], "threads": [[7, "MainThread"]],
                "at_peak": [[0, 100, 2], [1, 50, 1]]}"#,
        )
        .expect("valid");
        p.stacks[1].process = 1;
        p.processes = vec![
            heapscope_core::profile::ProcessInfo {
                pid: 10,
                ..Default::default()
            },
            heapscope_core::profile::ProcessInfo {
                pid: 11,
                ppid: Some(10),
                ..Default::default()
            },
        ];
        let msg = to_message(&p, View::Peak);
        let s = &msg.string_table;
        let pids: Vec<i64> = msg
            .sample
            .iter()
            .map(|sample| {
                let label = sample
                    .label
                    .iter()
                    .find(|l| s[l.key as usize] == "pid")
                    .expect("a pid label");
                label.num
            })
            .collect();
        assert_eq!(pids, [10, 11]);
    }
}
