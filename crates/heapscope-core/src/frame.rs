use std::sync::Arc;

/// Index of a [`Frame`] in the frame table of a snapshot or profile.
pub type FrameId = u32;

/// One resolved Python frame: where the interpreter was when a memory block was allocated.
///
/// `function` is empty where the source did not record it (tracemalloc's raw traces carry only
/// a file name and a line number). `lineno` is 0 when the line is unknown, as in tracemalloc.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Frame {
    /// The code object's `co_filename`.
    pub filename: Arc<str>,
    /// The code object's `co_qualname` (empty if unknown).
    pub function: Arc<str>,
    /// Line number, 0 if unknown.
    pub lineno: u32,
    /// A native (C) frame of `--native`: `filename` is the source file where debug information
    /// names it, else the shared object's path; `function` the symbol.
    pub native: bool,
}

impl Frame {
    /// A frame with no function name, as tracemalloc records it.
    pub fn new(filename: impl Into<Arc<str>>, lineno: u32) -> Self {
        Frame {
            filename: filename.into(),
            function: Arc::from(""),
            lineno,
            native: false,
        }
    }
}
