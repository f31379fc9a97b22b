//! Capture files written by `heapscope run`: a header, then a stream of framed, checksummed
//! records. `docs/capture-format.md` is the normative description; this module implements it.
//!
//! ```text
//! file    = magic[8] version:u16le record(HEADER) record*
//! record  = kind:u8 len:u32le hcrc:u16le payload[len] crc:u32le
//! hcrc    = low 16 bits of crc32(kind, len)       -- a flipped length is caught before use
//! crc     = crc32(kind, len, payload)
//! ```
//!
//! A writer flushes whole records, so a process killed mid-run leaves a file whose tail is at
//! worst one partial record: the reader stops there and reports the capture as truncated.

mod codec;
mod reader;
mod record;
mod writer;

pub use reader::CaptureReader;
pub use record::{
    kind, CounterEntry, Counters, ExitStatus, FrameEntry, Header, NativeAddress, Nodes, Peak,
    PeakEntry, Record, SampleEntry, StackDomain, StackEntry, ThreadName, TreeStack, TreeStacks,
};
pub use writer::{framed, CaptureWriter};

/// The first eight bytes of every capture file.
pub const MAGIC: [u8; 8] = *b"\x89HSC\r\n\x1a\n";

/// The format version this crate writes.
pub const CURRENT_VERSION: u16 = 2;

/// The format versions this crate reads.
pub const SUPPORTED_VERSIONS: &[u16] = &[1, 2];

/// [`SUPPORTED_VERSIONS`] for error messages.
pub const SUPPORTED_VERSIONS_TEXT: &str = "1, 2";

/// Largest payload a record may carry; writers split bigger batches into several records.
pub const MAX_RECORD_LEN: u32 = 64 << 20;

/// Bytes of framing around each payload (kind, length, header check, checksum).
pub const FRAME_OVERHEAD: usize = 11;

/// Why a record was rejected as corrupt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CorruptKind {
    /// The check of a record's kind and length failed.
    #[error("record header checksum mismatch")]
    HeaderChecksum,
    /// The checksum of a record failed.
    #[error("record checksum mismatch")]
    Checksum,
    /// A record announced a payload larger than [`MAX_RECORD_LEN`].
    #[error("record length out of range")]
    RecordTooLong,
    /// A varint ran past ten bytes or past `u64`.
    #[error("malformed integer")]
    VarintOverflow,
    /// A value does not fit the field it was read for.
    #[error("value out of range")]
    ValueOutOfRange,
    /// A payload ended in the middle of a field.
    #[error("record payload too short")]
    PayloadTooShort,
    /// A list claimed more entries than its payload can hold.
    #[error("element count out of range")]
    CountTooLarge,
    /// A string was not UTF-8.
    #[error("invalid UTF-8 string")]
    InvalidUtf8,
    /// A payload had bytes left after its last field.
    #[error("trailing bytes in record")]
    TrailingBytes,
    /// The first record was not a header, or a header appeared later.
    #[error("misplaced header record")]
    MisplacedHeader,
    /// A record refers to a frame, stack or thread never defined.
    #[error("reference to an undefined {0}")]
    UndefinedReference(&'static str),
}
