//! Streaming reader of capture files. Treats its input as hostile: every length is checked
//! before use, payloads are read incrementally (never allocated from a length field alone),
//! and a file that ends mid-record is reported as truncated rather than as an error.

use std::io::{ErrorKind, Read};

use super::record::{kind, Header, Record};
use super::{CorruptKind, MAGIC, MAX_RECORD_LEN, SUPPORTED_VERSIONS, SUPPORTED_VERSIONS_TEXT};
use crate::FormatError;

/// Reads a capture file record by record.
pub struct CaptureReader<R: Read> {
    input: R,
    header: Header,
    version: u16,
    offset: u64,
    payload: Vec<u8>,
    done: bool,
    truncated: bool,
}

/// How a framed read ended.
enum Framed {
    Record(u8),
    Eof,
}

impl<R: Read> CaptureReader<R> {
    /// Reads and checks the magic, the version and the header record.
    pub fn new(mut input: R) -> Result<Self, FormatError> {
        let mut start = [0u8; 10];
        let n = read_up_to(&mut input, &mut start)?;
        if n < MAGIC.len() || start[..MAGIC.len()] != MAGIC {
            return Err(FormatError::WrongMagic { kind: "capture" });
        }
        if n < start.len() {
            return Err(FormatError::TruncatedHeader);
        }
        let version = u16::from_le_bytes([start[8], start[9]]);
        if !SUPPORTED_VERSIONS.contains(&version) {
            return Err(FormatError::UnsupportedVersion {
                kind: "capture",
                found: version,
                supported: SUPPORTED_VERSIONS_TEXT,
            });
        }
        let mut reader = CaptureReader {
            input,
            header: Header::default(),
            version,
            offset: start.len() as u64,
            payload: Vec::new(),
            done: false,
            truncated: false,
        };
        // Version 1 is the only one so far; a later version dispatches on `version` here and
        // in `next_record`.
        match reader.read_framed()? {
            Framed::Record(kind::HEADER) => {}
            Framed::Record(_) => return Err(corrupt(10, CorruptKind::MisplacedHeader)),
            Framed::Eof => return Err(FormatError::TruncatedHeader),
        }
        reader.header = Header::decode(&reader.payload).map_err(|kind| corrupt(10, kind))?;
        Ok(reader)
    }

    /// Continues reading a capture whose header (and records up to `offset`) an earlier reader
    /// of the same file already read: `input` must be positioned at `offset`, the end of a
    /// complete record. This is how a capture still being written is tailed.
    pub fn resume(input: R, header: Header, version: u16, offset: u64) -> Self {
        CaptureReader {
            input,
            header,
            version,
            offset,
            payload: Vec::new(),
            done: false,
            truncated: false,
        }
    }

    /// The header of the file.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The format version of the file.
    pub fn version(&self) -> u16 {
        self.version
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// True once the stream ended without a closing record (the writer was killed).
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// The next record; `Ok(None)` after the closing record or at the end of a truncated file.
    pub fn next_record(&mut self) -> Result<Option<Record>, FormatError> {
        while !self.done {
            let start = self.offset;
            let kind = match self.read_framed() {
                Ok(Framed::Record(kind)) => kind,
                Ok(Framed::Eof) => {
                    self.done = true;
                    self.truncated = true;
                    return Ok(None);
                }
                Err(e) => {
                    self.done = true;
                    return Err(e);
                }
            };
            if kind == kind::HEADER {
                self.done = true;
                return Err(corrupt(start, CorruptKind::MisplacedHeader));
            }
            match Record::decode(kind, &self.payload) {
                Ok(Some(record)) => {
                    if matches!(record, Record::End { .. }) {
                        self.done = true;
                    }
                    return Ok(Some(record));
                }
                Ok(None) => {} // A kind from a newer writer: skip it.
                Err(why) => {
                    self.done = true;
                    return Err(corrupt(start, why));
                }
            }
        }
        Ok(None)
    }

    /// Reads one frame into `self.payload`; `Eof` if the input ends anywhere inside it.
    fn read_framed(&mut self) -> Result<Framed, FormatError> {
        let start = self.offset;
        let mut head = [0u8; 7];
        let n = read_up_to(&mut self.input, &mut head)?;
        self.offset += n as u64;
        if n < head.len() {
            return Ok(Framed::Eof);
        }
        let kind = head[0];
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]);
        let hcrc = u16::from_le_bytes([head[5], head[6]]);
        if crc32fast::hash(&head[..5]) as u16 != hcrc {
            return Err(corrupt(start, CorruptKind::HeaderChecksum));
        }
        if len > MAX_RECORD_LEN {
            return Err(corrupt(start, CorruptKind::RecordTooLong));
        }
        self.payload.clear();
        // Grows with the bytes actually present, never with the announced length.
        let got = (&mut self.input)
            .take(u64::from(len))
            .read_to_end(&mut self.payload)?;
        self.offset += got as u64;
        if got < len as usize {
            return Ok(Framed::Eof);
        }
        let mut crc = [0u8; 4];
        let n = read_up_to(&mut self.input, &mut crc)?;
        self.offset += n as u64;
        if n < crc.len() {
            return Ok(Framed::Eof);
        }
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&head[..5]);
        hasher.update(&self.payload);
        if hasher.finalize() != u32::from_le_bytes(crc) {
            return Err(corrupt(start, CorruptKind::Checksum));
        }
        Ok(Framed::Record(kind))
    }
}

/// Fills `buf` as far as the input allows; returns how many bytes were read.
fn read_up_to(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn corrupt(offset: u64, kind: CorruptKind) -> FormatError {
    FormatError::CorruptRecord { offset, kind }
}
