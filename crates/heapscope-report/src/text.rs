//! The terminal report: a header about the run, then the top rows of one view.

use std::io::Write;

use heapscope_core::profile::{Profile, View};

use crate::group::{group, human_bytes, view_totals, GroupBy, Row};
use crate::processes::{merged_view_note, write_processes};
use crate::ReportError;

/// What a text or JSON report shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportOptions {
    /// Which figures.
    pub view: View,
    /// How rows are keyed.
    pub by: GroupBy,
    /// How many rows at most.
    pub top: usize,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            view: View::Peak,
            by: GroupBy::Line,
            top: 10,
        }
    }
}

/// Writes the header lines describing the run.
pub fn write_header(profile: &Profile, out: &mut dyn Write) -> Result<(), ReportError> {
    let m = &profile.meta;
    writeln!(out, "heapscope report: {}", m.command.join(" "))?;
    writeln!(
        out,
        "  duration {:.2} s, peak {} at {:.2} s, total allocated {} in {} blocks",
        m.duration_ms as f64 / 1000.0,
        human_bytes(m.peak_bytes),
        m.peak_time_ms as f64 / 1000.0,
        human_bytes(m.total_allocated_bytes),
        m.total_allocations,
    )?;
    writeln!(
        out,
        "  python {}, pid {}, trace limit {}",
        m.python_version, m.pid, m.trace_limit
    )?;
    if m.truncated {
        writeln!(
            out,
            "  warning: the capture was cut short (the program was killed before recording \
             ended); figures are as of its last flush"
        )?;
    }
    write_processes(profile, out)?;
    Ok(())
}

fn view_phrase(view: View) -> &'static str {
    match view {
        View::Peak => "held at peak",
        View::End => "still held at exit",
        View::Total => "allocated in total",
    }
}

/// Writes the text report.
pub fn render_text(
    profile: &Profile,
    opts: &ReportOptions,
    out: &mut dyn Write,
) -> Result<(), ReportError> {
    write_header(profile, out)?;
    let rows = group(profile, opts.view, opts.by);
    let (total_bytes, total_count) = view_totals(profile, opts.view);
    writeln!(out)?;
    let merged =
        merged_view_note(profile, opts.view).map_or_else(String::new, |n| format!("; {n}"));
    writeln!(
        out,
        "Top {} {} by memory {} ({} in {} blocks{merged}):",
        opts.top.min(rows.len()),
        opts.by.plural(),
        view_phrase(opts.view),
        human_bytes(total_bytes),
        total_count,
    )?;
    if rows.is_empty() {
        writeln!(out, "  (nothing)")?;
        return Ok(());
    }
    writeln!(
        out,
        "{:>11} {:>9} {:>7}  {:<40} function",
        "size", "count", "share", "location"
    )?;
    for row in rows.iter().take(opts.top) {
        write_row(row, total_bytes, out)?;
    }
    Ok(())
}

fn write_row(row: &Row, total: u64, out: &mut dyn Write) -> Result<(), ReportError> {
    let share = if total == 0 {
        0.0
    } else {
        row.size as f64 * 100.0 / total as f64
    };
    writeln!(
        out,
        "{:>11} {:>9} {:>6.1}%  {:<40} {}",
        human_bytes(row.size),
        row.count,
        share,
        row.location(),
        row.function,
    )?;
    // The heading names the row's innermost Python frame; a `--native` stack may have C
    // frames before it, which are listed (marked) rather than dropped.
    let heading_is_first = row.stack.first().is_some_and(|f| {
        !f.native
            && *f.filename == *row.file
            && f.lineno == row.line
            && *f.function == *row.function
    });
    for frame in row.stack.iter().skip(usize::from(heading_is_first)) {
        let mark = if frame.native { " [native]" } else { "" };
        writeln!(
            out,
            "{:>31}{}:{} {}{mark}",
            "", frame.filename, frame.lineno, frame.function
        )?;
    }
    Ok(())
}
