//! Grouping a profile's per-stack figures into report rows: by line, file, function or stack.

use std::collections::HashMap;
use std::str::FromStr;

use heapscope_core::profile::{Profile, View};
use heapscope_core::Frame;

/// How rows are keyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// The line of the most recent frame.
    Line,
    /// The file of the most recent frame.
    File,
    /// The function (file and qualified name) of the most recent frame.
    Function,
    /// The whole stack.
    Stack,
}

impl GroupBy {
    /// The word used in headers ("lines", "files", ...).
    pub fn plural(self) -> &'static str {
        match self {
            GroupBy::Line => "lines",
            GroupBy::File => "files",
            GroupBy::Function => "functions",
            GroupBy::Stack => "stacks",
        }
    }

    /// The option spelling (`line`, `file`, `function`, `stack`).
    pub fn name(self) -> &'static str {
        match self {
            GroupBy::Line => "line",
            GroupBy::File => "file",
            GroupBy::Function => "function",
            GroupBy::Stack => "stack",
        }
    }
}

impl FromStr for GroupBy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "line" => Ok(GroupBy::Line),
            "file" => Ok(GroupBy::File),
            "function" => Ok(GroupBy::Function),
            "stack" => Ok(GroupBy::Stack),
            _ => Err(format!(
                "unknown grouping {s:?} (expected line, file, function or stack)"
            )),
        }
    }
}

/// Parses a view name (`peak`, `end`, `total`).
pub fn parse_view(s: &str) -> Result<View, String> {
    match s {
        "peak" => Ok(View::Peak),
        "end" => Ok(View::End),
        "total" => Ok(View::Total),
        _ => Err(format!("unknown view {s:?} (expected peak, end or total)")),
    }
}

/// The option spelling of a view.
pub fn view_name(view: View) -> &'static str {
    match view {
        View::Peak => "peak",
        View::End => "end",
        View::Total => "total",
    }
}

/// One row of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// File of the most recent frame (`<unknown>` for allocations with no Python frame).
    pub file: String,
    /// Line, 0 when grouping by file or function.
    pub line: u32,
    /// Function, empty when grouping by file.
    pub function: String,
    /// Bytes.
    pub size: u64,
    /// Blocks.
    pub count: u64,
    /// The frames of the stack, most recent first (grouping by stack only).
    pub stack: Vec<Frame>,
    /// tracemalloc domain of the row's blocks: 0 for the interpreter's, else the domain a C
    /// extension reported them in through `PyTraceMalloc_Track` (numpy: 389047). Rows of one
    /// line in two domains are two rows.
    pub domain: u32,
}

impl Row {
    /// `file:line`, or `file` when the row has no line; followed by ` [domain N]` for blocks
    /// an extension reported in its own domain.
    pub fn location(&self) -> String {
        let place = if self.line == 0 {
            self.file.clone()
        } else {
            format!("{}:{}", self.file, self.line)
        };
        if self.domain == 0 {
            place
        } else {
            format!("{place} {}", domain_tag(self.domain))
        }
    }
}

/// How a domain is shown next to a location or in a flame graph: `[domain 389047]`, and
/// `[native]` for what `--native` saw native code allocate.
pub fn domain_tag(domain: u32) -> String {
    if domain == heapscope_core::NATIVE_DOMAIN {
        "[native]".to_owned()
    } else {
        format!("[domain {domain}]")
    }
}

#[derive(Hash, PartialEq, Eq)]
enum Key {
    Frame(String, String, u32, u32),
    Stack(u32),
}

/// All rows of one view, largest first (ties broken by location for stable output).
pub fn group(profile: &Profile, view: View, by: GroupBy) -> Vec<Row> {
    let unknown = Frame::new("<unknown>", 0);
    let mut rows: Vec<Row> = Vec::new();
    let mut index: HashMap<Key, usize> = HashMap::new();
    for stat in profile.view(view) {
        let Some(stack) = profile.stacks.get(stat.stack as usize) else {
            continue;
        };
        let leaf = crate::labels::report_leaf(profile, stack).unwrap_or(&unknown);
        let (file, function, line) = match by {
            GroupBy::Line | GroupBy::Stack => (&*leaf.filename, &*leaf.function, leaf.lineno),
            GroupBy::File => (&*leaf.filename, "", 0),
            GroupBy::Function => (&*leaf.filename, &*leaf.function, 0),
        };
        let key = match by {
            GroupBy::Stack => Key::Stack(stat.stack),
            _ => Key::Frame(file.to_owned(), function.to_owned(), line, stack.domain),
        };
        let i = *index.entry(key).or_insert_with(|| {
            let stack_frames = if by == GroupBy::Stack {
                stack
                    .frames
                    .iter()
                    .filter_map(|&f| profile.frames.get(f as usize))
                    .cloned()
                    .collect()
            } else {
                Vec::new()
            };
            rows.push(Row {
                file: file.to_owned(),
                line,
                function: function.to_owned(),
                size: 0,
                count: 0,
                stack: stack_frames,
                domain: stack.domain,
            });
            rows.len() - 1
        });
        rows[i].size += stat.bytes;
        rows[i].count += stat.count;
    }
    rows.sort_by(|a, b| {
        b.size
            .cmp(&a.size)
            .then(b.count.cmp(&a.count))
            .then_with(|| {
                (&a.file, a.line, &a.function, a.domain).cmp(&(
                    &b.file,
                    b.line,
                    &b.function,
                    b.domain,
                ))
            })
    });
    rows
}

/// Bytes and blocks of a whole view.
pub fn view_totals(profile: &Profile, view: View) -> (u64, u64) {
    profile
        .view(view)
        .iter()
        .fold((0, 0), |(b, c), s| (b + s.bytes, c + s.count))
}

/// A size for people: `512 B`, `1.5 KiB`, `60.0 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A signed size for people: `+1.5 MiB`, `-512 B`.
pub fn human_delta(delta: i128) -> String {
    let sign = if delta < 0 { '-' } else { '+' };
    format!(
        "{sign}{}",
        human_bytes(delta.unsigned_abs().min(u128::from(u64::MAX)) as u64)
    )
}
