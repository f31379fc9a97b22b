//! Building a [`Snapshot`] one trace at a time, interning frames and tracebacks on the way so the
//! snapshot's tables hold no duplicates.

use std::sync::Arc;

use hashbrown::HashMap;

use crate::error::CoreError;
use crate::frame::{Frame, FrameId};
use crate::snapshot::{Snapshot, Trace, Traceback, TracebackId};

/// Interns frames and tracebacks and collects traces into a [`Snapshot`].
#[derive(Debug, Default)]
pub struct SnapshotBuilder {
    snapshot: Snapshot,
    filenames: HashMap<Arc<str>, u32>,
    filename_table: Vec<Arc<str>>,
    frames: HashMap<(u32, u32), FrameId>,
    tracebacks: HashMap<Traceback, TracebackId>,
}

impl SnapshotBuilder {
    /// An empty builder for a snapshot taken with the given traceback limit.
    pub fn new(traceback_limit: u32) -> Self {
        let mut builder = SnapshotBuilder::default();
        builder.snapshot.traceback_limit = traceback_limit;
        builder
    }

    /// The id of the frame `filename:lineno` (no function name), added if new.
    pub fn frame(&mut self, filename: &str, lineno: u32) -> FrameId {
        let file = if let Some(&id) = self.filenames.get(filename) {
            id
        } else {
            let name: Arc<str> = Arc::from(filename);
            let id = self.filename_table.len() as u32;
            self.filename_table.push(Arc::clone(&name));
            self.filenames.insert(name, id);
            id
        };
        let frames = &mut self.snapshot.frames;
        let table = &self.filename_table;
        *self.frames.entry((file, lineno)).or_insert_with(|| {
            frames.push(Frame::new(Arc::clone(&table[file as usize]), lineno));
            (frames.len() - 1) as FrameId
        })
    }

    /// The id of the traceback with these frames (most recent first), added if new.
    pub fn traceback(
        &mut self,
        frames: &[FrameId],
        total_nframe: u32,
    ) -> Result<TracebackId, CoreError> {
        let known = self.snapshot.frames.len();
        if let Some(bad) = frames.iter().find(|&&f| f as usize >= known) {
            return Err(CoreError::InvalidArgument(format!(
                "unknown frame id {bad}"
            )));
        }
        let key = Traceback {
            frames: frames.into(),
            total_nframe,
        };
        let tracebacks = &mut self.snapshot.tracebacks;
        Ok(*self.tracebacks.entry(key).or_insert_with_key(|key| {
            tracebacks.push(key.clone());
            (tracebacks.len() - 1) as TracebackId
        }))
    }

    /// Add one live block allocated from `traceback`.
    pub fn trace(
        &mut self,
        domain: u32,
        size: u64,
        traceback: TracebackId,
    ) -> Result<(), CoreError> {
        if traceback as usize >= self.snapshot.tracebacks.len() {
            return Err(CoreError::InvalidArgument(format!(
                "unknown traceback id {traceback}"
            )));
        }
        self.snapshot.traces.push(Trace {
            domain,
            size,
            traceback,
        });
        Ok(())
    }

    /// The snapshot built so far.
    pub fn finish(self) -> Snapshot {
        self.snapshot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interns_frames_and_tracebacks() -> Result<(), CoreError> {
        let mut b = SnapshotBuilder::new(5);
        let a = b.frame("a.py", 1);
        assert_eq!(b.frame("a.py", 1), a);
        let c = b.frame("a.py", 2);
        assert_ne!(a, c);
        let t1 = b.traceback(&[a, c], 3)?;
        assert_eq!(b.traceback(&[a, c], 3)?, t1);
        assert_ne!(b.traceback(&[a, c], 4)?, t1);
        b.trace(0, 10, t1)?;
        assert!(b.trace(0, 10, 99).is_err());
        assert!(b.traceback(&[42], 1).is_err());
        let s = b.finish();
        assert_eq!(
            (s.frames.len(), s.tracebacks.len(), s.traces.len()),
            (2, 2, 1)
        );
        assert_eq!(s.traceback_limit, 5);
        Ok(())
    }
}
