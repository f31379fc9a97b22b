//! Writing snapshot files.

use std::collections::HashMap;

use super::{SnapshotFile, HEADER_LEN, MAGIC, VERSION};
use crate::varint::{put_str, put_u64};
use crate::FormatError;

/// The bytes of `file` in the current format version.
pub fn encode(file: &SnapshotFile) -> Result<Vec<u8>, FormatError> {
    let mut strings: Vec<&str> = Vec::new();
    let mut string_ids: HashMap<&str, u64> = HashMap::new();
    for frame in &file.frames {
        for s in [&*frame.filename, &*frame.function] {
            if !string_ids.contains_key(s) {
                string_ids.insert(s, strings.len() as u64);
                strings.push(s);
            }
        }
    }
    let mut body = Vec::new();
    put_u64(&mut body, u64::from(file.traceback_limit));
    put_u64(&mut body, strings.len() as u64);
    for s in &strings {
        put_str(&mut body, s);
    }
    put_u64(&mut body, file.frames.len() as u64);
    for frame in &file.frames {
        put_u64(&mut body, string_ids[&*frame.filename]);
        put_u64(&mut body, string_ids[&*frame.function]);
        put_u64(&mut body, u64::from(frame.lineno));
    }
    put_u64(&mut body, file.tracebacks.len() as u64);
    for tb in &file.tracebacks {
        put_u64(&mut body, u64::from(tb.total_nframe));
        put_u64(&mut body, tb.frames.len() as u64);
        for &f in &tb.frames {
            put_u64(&mut body, u64::from(f));
        }
    }
    put_u64(&mut body, file.traces.len() as u64);
    for trace in &file.traces {
        put_u64(&mut body, u64::from(trace.domain));
        put_u64(&mut body, trace.size);
        put_u64(&mut body, u64::from(trace.traceback));
    }
    put_u64(&mut body, file.attrs.len() as u64);
    for (name, value) in &file.attrs {
        put_str(&mut body, name);
        value.encode(&mut body, 0)?;
    }
    let mut out = Vec::with_capacity(HEADER_LEN + body.len() + 4);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&body);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}
