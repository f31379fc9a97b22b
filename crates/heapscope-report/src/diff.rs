//! What grew or shrank between two profiles, by line.

use std::collections::HashMap;
use std::io::Write;

use heapscope_core::profile::{Profile, View};

use crate::group::{group, human_bytes, human_delta, view_name, GroupBy};
use crate::ReportError;

/// One line's figures in both profiles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffRow {
    /// File.
    pub file: String,
    /// Line.
    pub line: u32,
    /// Function.
    pub function: String,
    /// Bytes in the first profile.
    pub size_a: u64,
    /// Bytes in the second profile.
    pub size_b: u64,
    /// Blocks in the first profile.
    pub count_a: u64,
    /// Blocks in the second profile.
    pub count_b: u64,
}

impl DiffRow {
    /// `size_b - size_a`.
    pub fn size_diff(&self) -> i128 {
        i128::from(self.size_b) - i128::from(self.size_a)
    }
}

/// Lines of both profiles, the biggest change first; lines that did not change are left out.
pub fn diff_by_line(a: &Profile, b: &Profile, view: View) -> Vec<DiffRow> {
    let mut rows: Vec<DiffRow> = Vec::new();
    let mut index: HashMap<(String, u32, String), usize> = HashMap::new();
    for (side, profile) in [(0, a), (1, b)] {
        for r in group(profile, view, GroupBy::Line) {
            let key = (r.file.clone(), r.line, r.function.clone());
            let i = *index.entry(key).or_insert_with(|| {
                rows.push(DiffRow {
                    file: r.file,
                    line: r.line,
                    function: r.function,
                    size_a: 0,
                    size_b: 0,
                    count_a: 0,
                    count_b: 0,
                });
                rows.len() - 1
            });
            if side == 0 {
                rows[i].size_a += r.size;
                rows[i].count_a += r.count;
            } else {
                rows[i].size_b += r.size;
                rows[i].count_b += r.count;
            }
        }
    }
    rows.retain(|r| r.size_a != r.size_b || r.count_a != r.count_b);
    rows.sort_by(|x, y| {
        y.size_diff()
            .abs()
            .cmp(&x.size_diff().abs())
            .then_with(|| (&x.file, x.line).cmp(&(&y.file, y.line)))
    });
    rows
}

/// Writes the diff as a table.
pub fn render_diff_text(
    a: &Profile,
    b: &Profile,
    view: View,
    top: usize,
    out: &mut dyn Write,
) -> Result<(), ReportError> {
    let rows = diff_by_line(a, b, view);
    writeln!(
        out,
        "heapscope diff ({}): A = {}",
        view_name(view),
        a.meta.command.join(" ")
    )?;
    writeln!(out, "{:>24}B = {}", "", b.meta.command.join(" "))?;
    writeln!(
        out,
        "  peak {} -> {} ({}), total allocated {} -> {}",
        human_bytes(a.meta.peak_bytes),
        human_bytes(b.meta.peak_bytes),
        human_delta(i128::from(b.meta.peak_bytes) - i128::from(a.meta.peak_bytes)),
        human_bytes(a.meta.total_allocated_bytes),
        human_bytes(b.meta.total_allocated_bytes),
    )?;
    for (name, profile) in [("A", a), ("B", b)] {
        if let Some(note) = crate::processes::merged_view_note(profile, view) {
            writeln!(out, "  {name}: {note}")?;
        }
    }
    writeln!(out)?;
    if rows.is_empty() {
        writeln!(out, "No line changed.")?;
        return Ok(());
    }
    writeln!(
        out,
        "{:>12} {:>11} {:>11} {:>9}  {:<40} function",
        "change", "A", "B", "count", "location"
    )?;
    for r in rows.iter().take(top) {
        let count_diff = i128::from(r.count_b) - i128::from(r.count_a);
        let location = format!("{}:{}", r.file, r.line);
        writeln!(
            out,
            "{:>12} {:>11} {:>11} {:>+9}  {:<40} {}",
            human_delta(r.size_diff()),
            human_bytes(r.size_a),
            human_bytes(r.size_b),
            count_diff,
            location,
            r.function,
        )?;
    }
    Ok(())
}
