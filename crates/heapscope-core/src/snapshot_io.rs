//! Snapshots to and from heapscope's snapshot files (`Snapshot.dump` / `Snapshot.load`).

use std::path::Path;

use heapscope_format::snapshot_file::{
    read_path, write_path, AttrValue, FrameRecord, SnapshotFile, TraceRecord, TracebackRecord,
};

use crate::error::CoreError;
use crate::frame::Frame;
use crate::snapshot::{Snapshot, Trace, Traceback};

/// Extra attributes of a snapshot, by name, in order.
pub type Attrs = Vec<(String, AttrValue)>;

/// The file form of `snapshot` with `attrs`.
pub fn to_file(snapshot: &Snapshot, attrs: Attrs) -> SnapshotFile {
    SnapshotFile {
        traceback_limit: snapshot.traceback_limit,
        frames: snapshot
            .frames
            .iter()
            .map(|f| FrameRecord {
                filename: f.filename.clone(),
                function: f.function.clone(),
                lineno: f.lineno,
            })
            .collect(),
        tracebacks: snapshot
            .tracebacks
            .iter()
            .map(|t| TracebackRecord {
                frames: t.frames.to_vec(),
                total_nframe: t.total_nframe,
            })
            .collect(),
        traces: snapshot
            .traces
            .iter()
            .map(|t| TraceRecord {
                domain: t.domain,
                size: t.size,
                traceback: t.traceback,
            })
            .collect(),
        attrs,
    }
}

/// The snapshot and attributes of a decoded file (whose indexes the decoder checked).
pub fn from_file(file: SnapshotFile) -> (Snapshot, Attrs) {
    let snapshot = Snapshot {
        frames: file
            .frames
            .into_iter()
            .map(|f| Frame {
                filename: f.filename,
                function: f.function,
                lineno: f.lineno,
                native: false,
            })
            .collect(),
        tracebacks: file
            .tracebacks
            .into_iter()
            .map(|t| Traceback {
                frames: t.frames.into(),
                total_nframe: t.total_nframe,
            })
            .collect(),
        traces: file
            .traces
            .into_iter()
            .map(|t| Trace {
                domain: t.domain,
                size: t.size,
                traceback: t.traceback,
            })
            .collect(),
        traceback_limit: file.traceback_limit,
    };
    (snapshot, file.attrs)
}

/// Write `snapshot` and its extra attributes to `path`.
pub fn dump(path: &Path, snapshot: &Snapshot, attrs: Attrs) -> Result<(), CoreError> {
    Ok(write_path(path, &to_file(snapshot, attrs))?)
}

/// Read a snapshot and its extra attributes from `path`.
pub fn load(path: &Path) -> Result<(Snapshot, Attrs), CoreError> {
    Ok(from_file(read_path(path)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::SnapshotBuilder;

    #[test]
    fn file_round_trip() -> Result<(), CoreError> {
        let mut b = SnapshotBuilder::new(3);
        let f = b.frame("a.py", 1);
        let tb = b.traceback(&[f, f], 7)?;
        b.trace(0, 42, tb)?;
        let snap = b.finish();
        let attrs = vec![("x".to_owned(), AttrValue::Int(-3))];
        let dir = std::env::temp_dir().join(format!("heapscope-core-{}", std::process::id()));
        dump(&dir, &snap, attrs.clone())?;
        let (back, back_attrs) = load(&dir)?;
        let _ = std::fs::remove_file(&dir);
        assert_eq!(back.frames, snap.frames);
        assert_eq!(back.tracebacks, snap.tracebacks);
        assert_eq!(back.traces, snap.traces);
        assert_eq!(back.traceback_limit, 3);
        assert_eq!(back_attrs, attrs);
        Ok(())
    }
}
