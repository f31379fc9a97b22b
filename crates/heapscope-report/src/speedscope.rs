//! speedscope export: one JSON file per speedscope's file-format schema
//! (<https://www.speedscope.app/file-format-schema.json>), with one "sampled" profile per view
//! (peak, end, total; unit bytes), the chosen view active. Samples list frames root first;
//! blocks a C extension reported in its own tracemalloc domain end with a `[domain N]` frame.
//! A capture of several processes adds one profile per process, of the chosen view (speedscope
//! lists them in its profile menu).

use std::borrow::Cow;

use heapscope_core::profile::{Profile, View};
use serde::Serialize;

use crate::group::domain_tag;
use crate::labels::{marked_function, stack_of, view_title, VIEWS};
use crate::ReportError;

const SCHEMA: &str = "https://www.speedscope.app/file-format-schema.json";

#[derive(Serialize)]
struct File<'a> {
    #[serde(rename = "$schema")]
    schema: &'static str,
    shared: Shared<'a>,
    profiles: Vec<SampledProfile>,
    name: String,
    #[serde(rename = "activeProfileIndex")]
    active_profile_index: usize,
    exporter: String,
}

#[derive(Serialize)]
struct Shared<'a> {
    frames: Vec<Frame<'a>>,
}

#[derive(Serialize)]
struct Frame<'a> {
    name: Cow<'a, str>,
    file: &'a str,
    line: u32,
}

#[derive(Serialize)]
struct SampledProfile {
    #[serde(rename = "type")]
    kind: &'static str,
    name: String,
    unit: &'static str,
    #[serde(rename = "startValue")]
    start_value: u64,
    #[serde(rename = "endValue")]
    end_value: u64,
    samples: Vec<Vec<u32>>,
    weights: Vec<u64>,
}

/// The index of the pseudo-frame of each domain, after the profile's frames.
fn domain_frames(profile: &Profile) -> Vec<u32> {
    let mut domains: Vec<u32> = profile
        .stacks
        .iter()
        .map(|s| s.domain)
        .filter(|&d| d != 0)
        .collect();
    domains.sort_unstable();
    domains.dedup();
    domains
}

/// The stacks of one view as a sampled profile; `process` keeps one process's stacks.
fn sampled(profile: &Profile, view: View, domains: &[u32], process: Option<u32>) -> SampledProfile {
    let mut samples = Vec::new();
    let mut weights = Vec::new();
    for stat in profile.view(view) {
        let Some(stack) = stack_of(profile, stat) else {
            continue;
        };
        if stat.bytes == 0 || process.is_some_and(|p| p != stack.process) {
            continue;
        }
        let mut frames: Vec<u32> = stack
            .frames
            .iter()
            .rev()
            .copied()
            .filter(|&f| (f as usize) < profile.frames.len())
            .collect();
        if let Ok(k) = domains.binary_search(&stack.domain) {
            frames.push((profile.frames.len() + k) as u32);
        }
        samples.push(frames);
        weights.push(stat.bytes);
    }
    let name = match process.and_then(|p| profile.processes.get(p as usize)) {
        Some(p) => format!(
            "pid {} ({}): {}",
            p.pid,
            p.command.join(" "),
            view_title(view)
        ),
        None => format!("heapscope: {}", view_title(view)),
    };
    SampledProfile {
        kind: "sampled",
        name,
        unit: "bytes",
        start_value: 0,
        end_value: weights.iter().sum(),
        samples,
        weights,
    }
}

/// The speedscope JSON of a profile, with `active` shown first when opened.
pub fn render(profile: &Profile, active: View) -> Result<Vec<u8>, ReportError> {
    let domains = domain_frames(profile);
    let frames = profile
        .frames
        .iter()
        .map(|f| Frame {
            name: marked_function(f),
            file: &f.filename,
            line: f.lineno,
        })
        .chain(domains.iter().map(|&d| Frame {
            name: Cow::Owned(domain_tag(d)),
            file: "",
            line: 0,
        }))
        .collect();
    let file = File {
        schema: SCHEMA,
        shared: Shared { frames },
        profiles: VIEWS
            .iter()
            .map(|&v| sampled(profile, v, &domains, None))
            .chain(per_process(profile, active, &domains))
            .collect(),
        name: format!("heapscope: {}", profile.meta.command.join(" ")),
        active_profile_index: VIEWS.iter().position(|&v| v == active).unwrap_or(0),
        exporter: format!("heapscope {}", env!("CARGO_PKG_VERSION")),
    };
    Ok(serde_json::to_vec(&file)?)
}

/// One profile of `view` per traced process, when the capture has several.
fn per_process(profile: &Profile, view: View, domains: &[u32]) -> Vec<SampledProfile> {
    if profile.processes.len() < 2 {
        return Vec::new();
    }
    (0..profile.processes.len() as u32)
        .filter(|&i| profile.processes[i as usize].note.is_none())
        .map(|i| sampled(profile, view, domains, Some(i)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::profile_from_json;

    #[test]
    fn snapshot() {
        let p = profile_from_json(
            r#"{"meta": {"command": ["app.py"]}, "frames": [["app.py", "main", 1], ["app.py", "leaf", 5]],
                "stacks": [{"frames": [1, 0]}, {"frames": [0]}],
                "at_peak": [[0, 100, 2], [1, 5, 1]], "at_end": [[0, 40, 1]], "total": [[0, 300, 6]]}"#,
        )
        .expect("valid");
        let out = render(&p, View::End).expect("renders");
        let mut value: serde_json::Value = serde_json::from_slice(&out).expect("json");
        value["exporter"] = "[exporter]".into();
        insta::assert_snapshot!(serde_json::to_string_pretty(&value).expect("json"));
    }

    #[test]
    fn one_profile_per_process() {
        let mut p = profile_from_json(
            r#"{"meta": {"command": ["app.py"]}, "frames": [["app.py", "main", 1], ["w.py", "work", 5]],
                "stacks": [{"frames": [0]}, {"frames": [1, 0]}],
                "at_peak": [[0, 100, 2], [1, 50, 1]]}"#,
        )
        .expect("valid");
        p.stacks[1].process = 1;
        p.processes = vec![
            heapscope_core::profile::ProcessInfo {
                pid: 10,
                command: vec!["app.py".into()],
                ..Default::default()
            },
            heapscope_core::profile::ProcessInfo {
                pid: 11,
                command: vec!["worker".into()],
                ..Default::default()
            },
        ];
        let out = render(&p, View::Peak).expect("renders");
        let value: serde_json::Value = serde_json::from_slice(&out).expect("json");
        let profiles = value["profiles"].as_array().expect("profiles");
        assert_eq!(
            profiles.len(),
            5,
            "three merged views, then one per process"
        );
        assert_eq!(profiles[4]["name"], "pid 11 (worker): memory at peak");
        assert_eq!(profiles[4]["weights"], serde_json::json!([50]));
        assert_eq!(profiles[3]["weights"], serde_json::json!([100]));
    }
}
