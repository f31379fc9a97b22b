//! The JSON report: `{"meta": {...}, "rows": [{"file", "line", "function", "size", "count",
//! "domain"}]}` (domain: the tracemalloc domain, 0 but for blocks C extensions report),
//! sizes in bytes, largest first. With `--by stack` each row also has `"stack"`: its whole
//! stack, innermost first, each frame `{"file", "line", "function", "native"}`.

use heapscope_core::profile::Profile;
use serde_json::{json, Value};

use crate::group::{group, view_name, GroupBy};
use crate::processes::{merged_view_note, processes_json};
use crate::text::ReportOptions;

/// The run's metadata as JSON.
pub fn meta_json(profile: &Profile) -> Value {
    let m = &profile.meta;
    json!({
        "command": m.command,
        "python_version": m.python_version,
        "pid": m.pid,
        "start_time_unix_ms": m.start_time_unix_ms,
        "duration_ms": m.duration_ms,
        "peak_bytes": m.peak_bytes,
        "peak_time_ms": m.peak_time_ms,
        "total_allocated_bytes": m.total_allocated_bytes,
        "total_allocations": m.total_allocations,
        "trace_limit": m.trace_limit,
        "truncated": m.truncated,
        "samples": profile.timeline.len(),
        "processes": processes_json(profile),
    })
}

/// The JSON report as a value.
pub fn report_json(profile: &Profile, opts: &ReportOptions) -> Value {
    let mut meta = meta_json(profile);
    if let Some(obj) = meta.as_object_mut() {
        obj.insert("view".into(), json!(view_name(opts.view)));
        obj.insert("by".into(), json!(opts.by.name()));
        obj.insert("merged".into(), json!(merged_view_note(profile, opts.view)));
    }
    let rows: Vec<Value> = group(profile, opts.view, opts.by)
        .into_iter()
        .take(opts.top)
        .map(|r| {
            let mut row = json!({
                "file": r.file,
                "line": r.line,
                "function": r.function,
                "size": r.size,
                "count": r.count,
                "domain": r.domain,
            });
            if opts.by == GroupBy::Stack {
                let stack: Vec<Value> = r
                    .stack
                    .iter()
                    .map(|f| {
                        json!({
                            "file": &*f.filename,
                            "line": f.lineno,
                            "function": &*f.function,
                            "native": f.native,
                        })
                    })
                    .collect();
                row["stack"] = Value::Array(stack);
            }
            row
        })
        .collect();
    json!({ "meta": meta, "rows": rows })
}

/// The JSON report as text, pretty-printed.
pub fn render_json(profile: &Profile, opts: &ReportOptions) -> String {
    let mut s = serde_json::to_string_pretty(&report_json(profile, opts)).unwrap_or_default();
    s.push('\n');
    s
}
