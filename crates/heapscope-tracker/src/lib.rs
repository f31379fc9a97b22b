//! The in-process recorder: PyMem allocator hooks, Python stack capture, the live table of
//! traced blocks and interned tracebacks. The only crate with real `unsafe`.

/// Errors raised by the tracer.
#[derive(Debug, thiserror::Error)]
pub enum TrackerError {
    /// This Python's frame layout is not implemented.
    #[error("heapscope does not support Python {found}: supported versions are {supported}")]
    UnsupportedPython {
        /// The running version.
        found: String,
        /// The versions heapscope implements.
        supported: String,
    },
}
pub mod recorder;
