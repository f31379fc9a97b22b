//! Collapsed ("folded") stacks, as read by Brendan Gregg's flamegraph.pl and inferno: one line
//! per distinct stack, `root;caller;leaf bytes`, sorted, identical stacks merged.
//!
//! Frames are named `function (file:line)`; blocks a C extension reported in its own
//! tracemalloc domain end their stack with a `[domain N]` frame. The format has no escaping, so characters that
//! would break a line (`;` separates frames, line breaks separate stacks) are replaced.

use std::collections::BTreeMap;
use std::fmt::Write;

use heapscope_core::profile::{Profile, View};

use crate::group::domain_tag;
use crate::labels::{frame_label, frames_root_first, stack_of};

fn clean(label: &str) -> String {
    label
        .chars()
        .map(|c| match c {
            ';' => ',',
            // Control characters and Unicode line/paragraph separators would split a line.
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => ' ',
            c => c,
        })
        .collect()
}

/// The folded stacks of one view, bytes as values.
pub fn render(profile: &Profile, view: View) -> String {
    let labels: Vec<String> = profile
        .frames
        .iter()
        .map(|f| clean(&frame_label(f)))
        .collect();
    let mut lines: BTreeMap<String, u64> = BTreeMap::new();
    for stat in profile.view(view) {
        let Some(stack) = stack_of(profile, stat) else {
            continue;
        };
        if stat.bytes == 0 {
            continue;
        }
        let mut key = String::new();
        for (id, _) in frames_root_first(profile, stack) {
            if !key.is_empty() {
                key.push(';');
            }
            key.push_str(&labels[id as usize]);
        }
        if key.is_empty() {
            key.push_str("[unknown]");
        }
        if stack.domain != 0 {
            key.push(';');
            key.push_str(&domain_tag(stack.domain));
        }
        *lines.entry(key).or_default() += stat.bytes;
    }
    let mut out = String::new();
    for (stack, bytes) in lines {
        // Writing to a String cannot fail.
        let _ = writeln!(out, "{stack} {bytes}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::profile_from_json;

    #[test]
    fn folds_merges_and_cleans() {
        let p = profile_from_json(
            r#"{"frames": [["a.py", "main", 1], ["we;ird\n.py", "f", 2]],
                "stacks": [{"frames": [1, 0]}, {"frames": [1, 0], "thread": 1}, {"frames": [0]}],
                "at_peak": [[0, 10, 1], [1, 5, 1], [2, 7, 1]]}"#,
        )
        .expect("valid");
        insta::assert_snapshot!(render(&p, View::Peak), @r"
        main (a.py:1) 7
        main (a.py:1);f (we,ird .py:2) 15
        ");
    }

    #[test]
    fn inferno_renders_it() {
        let p = crate::fixture::synthetic(500, 3);
        let folded = render(&p, View::Peak);
        for line in folded.lines() {
            let (stack, value) = line.rsplit_once(' ').expect("value");
            assert!(value.parse::<u64>().is_ok() && !stack.is_empty());
        }
        let mut opts = inferno::flamegraph::Options::default();
        let mut svg = Vec::new();
        inferno::flamegraph::from_lines(&mut opts, folded.lines(), &mut svg).expect("inferno");
        let svg = String::from_utf8(svg).expect("utf8");
        assert!(svg.contains("<svg") && svg.contains("func_"));
    }
}
