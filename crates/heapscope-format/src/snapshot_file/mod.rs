//! heapscope's snapshot files: what `Snapshot.dump` writes and `Snapshot.load` reads. Never
//! pickle: reading a file can only ever produce data.
//!
//! # Layout (version 1; all integers little-endian, "varint" = unsigned LEB128)
//! ```text
//! magic      8 bytes   89 'H' 'S' 'N' 'A' 'P' 0d 0a
//! version    u16       1
//! body_len   u64       length of the body in bytes
//! body:
//!   traceback_limit varint
//!   strings    varint n, then n x (varint len, UTF-8 bytes)     file and function names
//!   frames     varint n, then n x (filename: string index, function: string index, lineno)
//!   tracebacks varint n, then n x (total_nframe, varint k, k x frame index)  most recent first
//!   traces     varint n, then n x (domain, size, traceback index)
//!   attrs      varint n, then n x (name: varint len + UTF-8, value: tagged attribute value)
//! crc32      u32       CRC-32 (IEEE) of every byte before it
//! ```
//! Attribute values are tagged: 0 None, 1 False, 2 True, 3 int (zigzag varint, i64),
//! 4 float (8 bytes, IEEE-754 bits), 5 str (varint len + UTF-8), 6 list (varint n + n values),
//! 7 dict (varint n + n x (key: varint len + UTF-8, value)); nesting is limited to
//! [`MAX_ATTR_DEPTH`]. The reader rejects duplicate frames and tracebacks, out-of-range
//! indexes, counts the remaining bytes cannot hold, trailing bytes and checksum mismatches.

mod attr;
mod decode;
mod encode;

use std::path::Path;
use std::sync::Arc;

pub use attr::{AttrValue, MAX_ATTR_DEPTH};
pub use decode::decode;
pub use encode::encode;

use crate::FormatError;

/// First bytes of every snapshot file.
pub const MAGIC: [u8; 8] = *b"\x89HSNAP\r\n";
/// The version this code writes.
pub const VERSION: u16 = 1;
/// Bytes before the body: magic, version, body length.
pub const HEADER_LEN: usize = 8 + 2 + 8;

/// One frame: file name, function name (may be empty) and line number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FrameRecord {
    /// `co_filename`.
    pub filename: Arc<str>,
    /// `co_qualname`, or empty.
    pub function: Arc<str>,
    /// Line number, 0 if unknown.
    pub lineno: u32,
}

/// One traceback: indexes into the frame table, most recent first.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TracebackRecord {
    /// Frame indexes.
    pub frames: Vec<u32>,
    /// Frames the stack had, including those cut by the traceback limit.
    pub total_nframe: u32,
}

/// One live block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceRecord {
    /// Address space.
    pub domain: u32,
    /// Size in bytes.
    pub size: u64,
    /// Index into the traceback table.
    pub traceback: u32,
}

/// Everything a snapshot file holds.
///
/// Invariant after [`decode`]: indexes are in range and the frame and traceback tables hold no
/// duplicates.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SnapshotFile {
    /// The traceback limit in force when the snapshot was taken.
    pub traceback_limit: u32,
    /// Distinct frames.
    pub frames: Vec<FrameRecord>,
    /// Distinct tracebacks.
    pub tracebacks: Vec<TracebackRecord>,
    /// Live traces, in order.
    pub traces: Vec<TraceRecord>,
    /// Extra attributes set on the snapshot, in order.
    pub attrs: Vec<(String, AttrValue)>,
}

/// Write `file` to `path` (created or truncated).
pub fn write_path(path: &Path, file: &SnapshotFile) -> Result<(), FormatError> {
    let bytes = encode(file)?;
    std::fs::write(path, bytes).map_err(|source| FormatError::File {
        path: path.to_path_buf(),
        source,
    })
}

/// Read and validate the snapshot file at `path`.
pub fn read_path(path: &Path) -> Result<SnapshotFile, FormatError> {
    let bytes = std::fs::read(path).map_err(|source| FormatError::File {
        path: path.to_path_buf(),
        source,
    })?;
    decode(&bytes)
}
