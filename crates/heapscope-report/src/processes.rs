//! The processes of a capture: the table in text reports and `meta.processes` in JSON.

use std::io::Write;

use heapscope_core::profile::{ExitStatus, ProcessInfo, Profile, View};
use serde_json::{json, Value};

use crate::group::human_bytes;
use crate::ReportError;

/// How a process ended, for people: `0`, `3`, `signal 15`, `exec`, `killed?` (no closing
/// record: SIGKILL, a crash, or still running), `unknown`.
pub fn exit_text(p: &ProcessInfo) -> String {
    match p.exit {
        Some(ExitStatus::Code(c)) => c.to_string(),
        Some(ExitStatus::Signal(s)) => format!("signal {s}"),
        Some(ExitStatus::Exec) => "exec".to_owned(),
        None if p.note.is_some() => "-".to_owned(),
        None if p.truncated => "killed?".to_owned(),
        None => "unknown".to_owned(),
    }
}

/// The exit status as `subprocess` reports it: the code, or minus the signal number;
/// `None` when unknown or for a program replaced by `exec`.
pub fn exit_code(p: &ProcessInfo) -> Option<i64> {
    match p.exit {
        Some(ExitStatus::Code(c)) => Some(i64::from(c)),
        Some(ExitStatus::Signal(s)) => Some(-i64::from(s)),
        Some(ExitStatus::Exec) | None => None,
    }
}

/// `meta.processes`: one object per process, the root first.
pub fn processes_json(profile: &Profile) -> Value {
    Value::Array(
        profile
            .processes
            .iter()
            .map(|p| {
                json!({
                    "pid": p.pid,
                    "ppid": p.ppid,
                    "command": p.command,
                    "python_version": p.python_version,
                    "peak_bytes": p.peak_bytes,
                    "total_allocated_bytes": p.total_allocated_bytes,
                    "duration_ms": p.duration_ms,
                    "exit_code": exit_code(p),
                    "exit": exit_text(p),
                    "truncated": p.truncated,
                    "note": p.note,
                })
            })
            .collect(),
    )
}

/// True if a report should describe several processes (a table, per-process peaks).
pub fn is_multi_process(profile: &Profile) -> bool {
    profile.processes.len() > 1
}

/// How the figures of a view are taken, when several processes are merged.
pub fn merged_view_note(profile: &Profile, view: View) -> Option<String> {
    if !is_multi_process(profile) {
        return None;
    }
    let n = profile.traced_processes();
    Some(match view {
        View::Peak => format!("{n} processes, each at its own peak"),
        View::End => format!("{n} processes, each at its end"),
        View::Total => format!("{n} processes"),
    })
}

/// Writes the processes table (only for captures of several processes).
pub fn write_processes(profile: &Profile, out: &mut dyn Write) -> Result<(), ReportError> {
    if !is_multi_process(profile) {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(out, "Processes ({}):", profile.processes.len())?;
    writeln!(
        out,
        "{:>9} {:>9} {:>11} {:>9}  command",
        "pid", "parent", "peak", "exit"
    )?;
    for p in &profile.processes {
        let parent = p.ppid.map_or_else(|| "-".to_owned(), |pp| pp.to_string());
        let peak = if p.note.is_some() {
            "-".to_owned()
        } else {
            human_bytes(p.peak_bytes)
        };
        let mut command = shorten(&p.command.join(" "), 70);
        if let Some(note) = &p.note {
            command = format!("{command} ({note})");
        }
        writeln!(
            out,
            "{:>9} {:>9} {:>11} {:>9}  {}",
            p.pid,
            parent,
            peak,
            exit_text(p),
            command
        )?;
    }
    Ok(())
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max.saturating_sub(3)).collect();
    format!("{cut}...")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_descriptions() {
        let mut p = ProcessInfo {
            exit: Some(ExitStatus::Signal(15)),
            ..ProcessInfo::default()
        };
        assert_eq!(
            (exit_text(&p), exit_code(&p)),
            ("signal 15".into(), Some(-15))
        );
        p.exit = Some(ExitStatus::Code(3));
        assert_eq!((exit_text(&p), exit_code(&p)), ("3".into(), Some(3)));
        p.exit = None;
        p.truncated = true;
        assert_eq!((exit_text(&p), exit_code(&p)), ("killed?".into(), None));
        assert_eq!(shorten("abcdef", 5), "ab...");
    }
}
