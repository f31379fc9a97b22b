//! Bytes on disk: heapscope's snapshot files (`Snapshot.dump`/`load`) and capture files
//! (`heapscope run`). Safe code only, no Python. Every reader here treats its input as hostile:
//! it never panics, never allocates more than the input can justify, and reports a typed error.
#![forbid(unsafe_code)]

/// Errors raised while reading or writing heapscope files.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// An I/O error, with the path it concerns.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
