//! Errors of capture recording.

use std::path::PathBuf;

use heapscope_format::FormatError;

use crate::TrackerError;

/// Why starting, flushing, stopping or reading a capture failed. Every variant that concerns
/// a file names it.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The output exists and overwriting was not asked for.
    #[error("{path} already exists (use --force to overwrite it)")]
    Exists {
        /// The output path.
        path: PathBuf,
    },
    /// The output could not be created.
    #[error("cannot create {path}: {source}")]
    Create {
        /// The output path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Writing the capture failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The output path.
        path: PathBuf,
        /// What failed.
        source: FormatError,
    },
    /// Reading a capture failed.
    #[error("{path}: {source}")]
    Read {
        /// The capture path.
        path: PathBuf,
        /// What failed.
        source: FormatError,
    },
    /// A capture is already being recorded in this process.
    #[error("a capture is already being recorded in this process")]
    AlreadyCapturing,
    /// No capture is being recorded.
    #[error("no capture is being recorded")]
    NotCapturing,
    /// The tracer refused to start.
    #[error(transparent)]
    Tracker(#[from] TrackerError),
}
