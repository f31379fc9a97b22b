//! Streaming writer of capture files.

use std::io::Write;

use super::record::{kind, Header, Record};
use super::{CURRENT_VERSION, MAGIC, MAX_RECORD_LEN};
use crate::FormatError;

/// Writes a capture file record by record. Each record reaches `W` whole, in one `write_all`;
/// [`CaptureWriter::flush`] hands everything written so far to the OS.
pub struct CaptureWriter<W: Write> {
    out: W,
    buf: Vec<u8>,
    bytes_written: u64,
}

impl<W: Write> CaptureWriter<W> {
    /// Writes the magic, the format version and the header record.
    pub fn new(out: W, header: &Header) -> Result<Self, FormatError> {
        let mut writer = CaptureWriter {
            out,
            buf: Vec::new(),
            bytes_written: 0,
        };
        writer.out.write_all(&MAGIC)?;
        writer.out.write_all(&CURRENT_VERSION.to_le_bytes())?;
        writer.bytes_written = 10;
        let mut payload = Vec::new();
        header.encode(&mut payload);
        writer.write_framed(kind::HEADER, &payload)?;
        Ok(writer)
    }

    /// Appends one record.
    pub fn write(&mut self, record: &Record) -> Result<(), FormatError> {
        let mut payload = std::mem::take(&mut self.buf);
        payload.clear();
        record.encode(&mut payload);
        let result = self.write_framed(record.kind(), &payload);
        self.buf = payload;
        result
    }

    /// Pushes buffered bytes to the underlying writer (for a file: to the OS, so they survive
    /// the process being killed).
    pub fn flush(&mut self) -> Result<(), FormatError> {
        self.out.flush()?;
        Ok(())
    }

    /// Writes the closing record, flushes, and returns the underlying writer.
    pub fn finish(mut self, duration_ms: u64) -> Result<W, FormatError> {
        self.write(&Record::End { t_ms: duration_ms })?;
        self.flush()?;
        Ok(self.out)
    }

    /// Bytes written so far, framing included.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// The underlying writer.
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    fn write_framed(&mut self, kind: u8, payload: &[u8]) -> Result<(), FormatError> {
        let frame = frame(kind, payload)?;
        self.out.write_all(&frame)?;
        self.bytes_written += frame.len() as u64;
        Ok(())
    }
}

/// `record` framed as `CaptureWriter::write` writes it: records are framed independently, so
/// bytes made in advance can be appended later (a process about to die by a signal writes its
/// last records with one `write(2)`, prepared before).
pub fn framed(record: &Record) -> Result<Vec<u8>, FormatError> {
    let mut payload = Vec::new();
    record.encode(&mut payload);
    frame(record.kind(), &payload)
}

fn frame(kind: u8, payload: &[u8]) -> Result<Vec<u8>, FormatError> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|&l| l <= MAX_RECORD_LEN)
        .ok_or(FormatError::RecordTooLarge { len: payload.len() })?;
    let mut frame = Vec::with_capacity(payload.len() + super::FRAME_OVERHEAD);
    frame.push(kind);
    frame.extend_from_slice(&len.to_le_bytes());
    let hcrc = crc32fast::hash(&frame) as u16;
    frame.extend_from_slice(&hcrc.to_le_bytes());
    frame.extend_from_slice(payload);
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&frame[..5]);
    hasher.update(payload);
    frame.extend_from_slice(&hasher.finalize().to_le_bytes());
    Ok(frame)
}
