//! Shared naming helpers: view names, frame labels, and safe look-ups into a profile.

use heapscope_core::profile::{Profile, Stack, StackStat, View};
use heapscope_core::Frame;

use crate::ReportError;

/// Every view, in the order reports show them.
pub const VIEWS: [View; 3] = [View::Peak, View::End, View::Total];

/// Parses a view name as the CLI spells it: `peak`, `end` or `total`.
pub fn parse_view(name: &str) -> Result<View, ReportError> {
    match name {
        "peak" => Ok(View::Peak),
        "end" => Ok(View::End),
        "total" => Ok(View::Total),
        other => Err(ReportError::UnknownView(other.to_owned())),
    }
}

/// The CLI name of a view (the inverse of [`parse_view`]).
pub fn view_name(view: View) -> &'static str {
    match view {
        View::Peak => "peak",
        View::End => "end",
        View::Total => "total",
    }
}

/// A human title for a view.
pub fn view_title(view: View) -> &'static str {
    match view {
        View::Peak => "memory at peak",
        View::End => "memory at end (leaks)",
        View::Total => "total allocated",
    }
}

/// The function name of a frame, or `<unknown>` when the capture did not record it.
pub fn function_name(frame: &Frame) -> &str {
    if frame.function.is_empty() {
        "<unknown>"
    } else {
        &frame.function
    }
}

/// What follows the function name of a native (C) frame in every report and export.
pub const NATIVE_MARK: &str = " [native]";

/// The function name as reports show it: native frames carry [`NATIVE_MARK`].
pub fn marked_function(frame: &Frame) -> std::borrow::Cow<'_, str> {
    if frame.native {
        std::borrow::Cow::Owned(format!("{}{NATIVE_MARK}", function_name(frame)))
    } else {
        std::borrow::Cow::Borrowed(function_name(frame))
    }
}

/// `function (file:line)`: how exports name a frame (`function [native] (object:0)` for a
/// native frame).
pub fn frame_label(frame: &Frame) -> String {
    format!(
        "{} ({}:{})",
        marked_function(frame),
        frame.filename,
        frame.lineno
    )
}

/// The frame a line-level report names for a stack: the innermost Python frame (native frames
/// of `--native` sit above it), or the innermost frame if the stack has no Python frame (a
/// thread C code started).
pub fn report_leaf<'p>(profile: &'p Profile, stack: &Stack) -> Option<&'p Frame> {
    let frames = || {
        stack
            .frames
            .iter()
            .filter_map(|&f| profile.frames.get(f as usize))
    };
    frames().find(|f| !f.native).or_else(|| frames().next())
}

/// The stack a stat refers to, if the id is valid (a corrupt profile yields `None`, not a panic).
pub fn stack_of<'p>(profile: &'p Profile, stat: &StackStat) -> Option<&'p Stack> {
    profile.stacks.get(stat.stack as usize)
}

/// The frames of a stack, root first, skipping ids that are out of range.
pub fn frames_root_first<'p>(
    profile: &'p Profile,
    stack: &'p Stack,
) -> impl Iterator<Item = (u32, &'p Frame)> + 'p {
    stack
        .frames
        .iter()
        .rev()
        .filter_map(|&id| profile.frames.get(id as usize).map(|f| (id, f)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_round_trip() {
        for view in VIEWS {
            assert_eq!(parse_view(view_name(view)).ok(), Some(view));
        }
        assert!(matches!(
            parse_view("peek"),
            Err(ReportError::UnknownView(_))
        ));
    }
}
