//! Bytes on disk: heapscope's snapshot files (`Snapshot.dump`/`load`) and capture files
//! (`heapscope run`). Safe code only, no Python. Every reader here treats its input as hostile:
//! it never panics, never allocates more than the input can justify, and reports a typed error.
#![forbid(unsafe_code)]

pub mod capture;

/// Errors raised while reading or writing heapscope files.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// An I/O error, with the path it concerns.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The input does not start with the capture magic.
    #[error("not a heapscope capture file")]
    NotACapture,
    /// The capture was written in a format version this build does not read.
    #[error("unsupported capture format version {found} (this heapscope reads versions {supported:?})", supported = capture::SUPPORTED_VERSIONS)]
    UnsupportedVersion {
        /// The version found in the file.
        found: u16,
    },
    /// The file ends before its header is complete.
    #[error("capture file is truncated before the end of its header")]
    TruncatedHeader,
    /// A record failed its checks.
    #[error("corrupt capture file at byte {offset}: {kind}")]
    Corrupt {
        /// Offset of the start of the bad record.
        offset: u64,
        /// What was wrong.
        kind: capture::CorruptKind,
    },
    /// A writer was asked to write a record larger than the format allows.
    #[error("record of {len} bytes exceeds the capture format's limit")]
    RecordTooLarge {
        /// Payload length.
        len: usize,
    },
}
