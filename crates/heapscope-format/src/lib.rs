//! Bytes on disk: heapscope's snapshot files (`Snapshot.dump`/`load`) and capture files
//! (`heapscope run`). Safe code only, no Python. Every reader here treats its input as hostile:
//! it never panics, never allocates more than the input can justify, and reports a typed error.
#![forbid(unsafe_code)]

use std::path::PathBuf;

pub mod capture;
pub mod snapshot_file;
pub mod varint;

/// Errors raised while reading or writing heapscope files.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// An I/O error, with the path it concerns.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Reading or writing the file at `path` failed.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The file does not start with the magic bytes of the expected kind of file.
    #[error("not a heapscope {kind} file (wrong magic bytes)")]
    WrongMagic {
        /// What kind of file was expected ("snapshot").
        kind: &'static str,
    },
    /// The file is a pickle, such as the standard library's `tracemalloc.Snapshot.dump` writes.
    #[error(
        "this is a pickle file (as written by the standard library's tracemalloc), not a \
         heapscope snapshot file: heapscope never unpickles, because loading a pickle can run \
         arbitrary code"
    )]
    PickleRefused,
    /// The file was written by a format version this reader does not know.
    #[error("unsupported {kind} file version {found} (this heapscope reads versions {supported})")]
    UnsupportedVersion {
        /// What kind of file ("snapshot").
        kind: &'static str,
        /// The version in the file.
        found: u16,
        /// The versions this reader supports.
        supported: &'static str,
    },
    /// The file ends before the data its header announces.
    #[error("truncated file: expected {expected} bytes, found {found}")]
    Truncated {
        /// Bytes the header announces (header, body and checksum).
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// The checksum does not match the content: the file was altered or damaged.
    #[error(
        "corrupted file: checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
    )]
    ChecksumMismatch {
        /// The checksum stored in the file.
        stored: u32,
        /// The checksum of the bytes read.
        computed: u32,
    },
    /// The content is structurally invalid.
    #[error("corrupted file at byte {offset}: {what}")]
    Corrupt {
        /// Offset of the problem from the start of the file.
        offset: usize,
        /// What is wrong.
        what: String,
    },
    /// A capture file ends before its header is complete.
    #[error("capture file is truncated before the end of its header")]
    TruncatedHeader,
    /// A capture record failed its checks.
    #[error("corrupt capture file at byte {offset}: {kind}")]
    CorruptRecord {
        /// Offset of the start of the bad record.
        offset: u64,
        /// What was wrong.
        kind: capture::CorruptKind,
    },
    /// A capture writer was asked to write a record larger than the format allows.
    #[error("record of {len} bytes exceeds the capture format's limit")]
    RecordTooLarge {
        /// Payload length.
        len: usize,
    },
    /// A value cannot be represented in the file.
    #[error("{0}")]
    Unencodable(String),
}
