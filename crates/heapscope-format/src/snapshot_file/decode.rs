//! Reading snapshot files: hostile input in, typed errors out.

use std::collections::HashSet;
use std::sync::Arc;

use super::{
    AttrValue, FrameRecord, SnapshotFile, TraceRecord, TracebackRecord, HEADER_LEN, MAGIC, VERSION,
};
use crate::varint::Reader;
use crate::FormatError;

/// The first bytes of a pickle (protocol 2 and later start with the PROTO opcode 0x80).
fn looks_like_pickle(bytes: &[u8]) -> bool {
    matches!(bytes, [0x80, 2..=5, ..])
}

/// Parse and validate the bytes of a snapshot file.
pub fn decode(bytes: &[u8]) -> Result<SnapshotFile, FormatError> {
    if !bytes.starts_with(&MAGIC) {
        if looks_like_pickle(bytes) {
            return Err(FormatError::PickleRefused);
        }
        if bytes.len() < MAGIC.len() && MAGIC.starts_with(bytes) {
            return Err(FormatError::Truncated {
                expected: (HEADER_LEN + 4) as u64,
                found: bytes.len() as u64,
            });
        }
        return Err(FormatError::WrongMagic { kind: "snapshot" });
    }
    if bytes.len() < HEADER_LEN {
        return Err(FormatError::Truncated {
            expected: (HEADER_LEN + 4) as u64,
            found: bytes.len() as u64,
        });
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version != VERSION {
        return Err(FormatError::UnsupportedVersion {
            kind: "snapshot",
            found: version,
            supported: "1",
        });
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&bytes[10..18]);
    let body_len = u64::from_le_bytes(len);
    let expected = body_len.saturating_add((HEADER_LEN + 4) as u64);
    let found = bytes.len() as u64;
    if found < expected {
        return Err(FormatError::Truncated { expected, found });
    }
    if found > expected {
        return Err(FormatError::Corrupt {
            offset: expected as usize,
            what: format!(
                "{} unexpected bytes after the end of the snapshot",
                found - expected
            ),
        });
    }
    let end = bytes.len() - 4;
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&bytes[end..]);
    let stored = u32::from_le_bytes(crc);
    let computed = crc32fast::hash(&bytes[..end]);
    if stored != computed {
        return Err(FormatError::ChecksumMismatch { stored, computed });
    }
    let mut r = Reader::new(&bytes[HEADER_LEN..end], HEADER_LEN);
    let file = body(&mut r)?;
    if r.remaining() != 0 {
        return Err(r.corrupt("unexpected bytes after the attributes"));
    }
    Ok(file)
}

/// Read a table index and check it against the table's length.
fn read_index(r: &mut Reader<'_>, len: usize, what: &str) -> Result<u32, FormatError> {
    let value = r.u32()?;
    if (value as usize) < len {
        Ok(value)
    } else {
        Err(r.corrupt(format!(
            "{what} index {value} out of range (table has {len})"
        )))
    }
}

fn body(r: &mut Reader<'_>) -> Result<SnapshotFile, FormatError> {
    let traceback_limit = r.u32()?;
    let nstrings = r.count(1)?;
    let mut strings: Vec<Arc<str>> = Vec::with_capacity(nstrings);
    for _ in 0..nstrings {
        strings.push(Arc::from(r.str()?));
    }
    let nframes = r.count(3)?;
    let mut frames = Vec::with_capacity(nframes);
    let mut seen_frames = HashSet::with_capacity(nframes);
    for _ in 0..nframes {
        let filename = read_index(r, strings.len(), "string")?;
        let function = read_index(r, strings.len(), "string")?;
        let lineno = r.u32()?;
        if !seen_frames.insert((filename, function, lineno)) {
            return Err(r.corrupt("duplicate frame"));
        }
        frames.push(FrameRecord {
            filename: Arc::clone(&strings[filename as usize]),
            function: Arc::clone(&strings[function as usize]),
            lineno,
        });
    }
    let ntb = r.count(2)?;
    let mut tracebacks = Vec::with_capacity(ntb);
    let mut seen_tbs = HashSet::with_capacity(ntb);
    for _ in 0..ntb {
        let total_nframe = r.u32()?;
        let k = r.count(1)?;
        let mut ids = Vec::with_capacity(k);
        for _ in 0..k {
            ids.push(read_index(r, frames.len(), "frame")?);
        }
        let tb = TracebackRecord {
            frames: ids,
            total_nframe,
        };
        if !seen_tbs.insert(tb.clone()) {
            return Err(r.corrupt("duplicate traceback"));
        }
        tracebacks.push(tb);
    }
    let ntraces = r.count(3)?;
    let mut traces = Vec::with_capacity(ntraces);
    for _ in 0..ntraces {
        let domain = r.u32()?;
        let size = r.u64()?;
        let traceback = read_index(r, tracebacks.len(), "traceback")?;
        traces.push(TraceRecord {
            domain,
            size,
            traceback,
        });
    }
    let nattrs = r.count(2)?;
    let mut attrs = Vec::with_capacity(nattrs);
    for _ in 0..nattrs {
        let name = r.str()?.to_owned();
        attrs.push((name, AttrValue::decode(r, 0)?));
    }
    Ok(SnapshotFile {
        traceback_limit,
        frames,
        tracebacks,
        traces,
        attrs,
    })
}
