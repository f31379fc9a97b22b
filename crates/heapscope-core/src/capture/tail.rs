//! Following a capture while it is written (`heapscope run --live`, `attach --live`): each
//! [`CaptureTail::poll`] reads only the records appended since the previous one, through the
//! same reader and replay state as [`super::replay`], so the live view and the final report are
//! the same records read the same way.

use std::fs::File;
use std::io::{BufReader, ErrorKind, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use heapscope_format::capture::{CaptureReader, Header};
use heapscope_format::FormatError;

use super::replay::State;
use crate::profile::{Profile, Sample};

/// A capture file being followed.
pub struct CaptureTail {
    path: PathBuf,
    /// Set once the header was read.
    opened: Option<Opened>,
}

struct Opened {
    header: Header,
    version: u16,
    /// End of the last complete record applied.
    offset: u64,
    state: State,
}

impl CaptureTail {
    /// Follows the capture at `path` (which need not exist yet).
    pub fn new(path: &Path) -> Self {
        CaptureTail {
            path: path.to_owned(),
            opened: None,
        }
    }

    /// Applies the complete records appended since the last call; returns how many. A file
    /// that does not exist yet, or whose header is not complete yet, has none.
    pub fn poll(&mut self) -> Result<usize, FormatError> {
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
            Err(source) => {
                return Err(FormatError::File {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let mut reader = match self.opened.take() {
            None => {
                if file.metadata().map_or(0, |m| m.len()) == 0 {
                    return Ok(0);
                }
                match CaptureReader::new(BufReader::new(file)) {
                    Ok(reader) => {
                        self.opened = Some(Opened {
                            header: reader.header().clone(),
                            version: reader.version(),
                            offset: reader.offset(),
                            state: State::new(reader.header()),
                        });
                        reader
                    }
                    Err(FormatError::TruncatedHeader) => return Ok(0),
                    Err(e) => return Err(e),
                }
            }
            Some(opened) => {
                let mut file = file;
                let seek = file.seek(SeekFrom::Start(opened.offset));
                let reader = CaptureReader::resume(
                    BufReader::new(file),
                    opened.header.clone(),
                    opened.version,
                    opened.offset,
                );
                self.opened = Some(opened);
                seek.map_err(|source| FormatError::File {
                    path: self.path.clone(),
                    source,
                })?;
                reader
            }
        };
        let Some(opened) = self.opened.as_mut() else {
            return Ok(0);
        };
        let mut applied = 0;
        // A record cut short by the writer ends the read (`Ok(None)`) before it: the offset
        // stays at the end of the last complete record and the next poll reads it whole.
        while let Some(record) = reader.next_record()? {
            let offset = reader.offset();
            opened.state.note_offset(offset);
            opened
                .state
                .apply(record)
                .map_err(|kind| FormatError::CorruptRecord { offset, kind })?;
            opened.offset = offset;
            applied += 1;
        }
        Ok(applied)
    }

    /// The profile as the records read so far describe it (`None` before the header).
    /// Its "end" view is the memory held now.
    pub fn profile(&self) -> Option<Profile> {
        self.opened.as_ref().map(|o| o.state.profile_now(false))
    }

    /// The last `n` timeline samples read.
    pub fn recent_samples(&self, n: usize) -> Vec<Sample> {
        self.opened.as_ref().map_or_else(Vec::new, |o| {
            let timeline = o.state.timeline();
            timeline[timeline.len().saturating_sub(n)..].to_vec()
        })
    }

    /// True once the closing record was read: the recording is over.
    pub fn ended(&self) -> bool {
        self.opened.as_ref().is_some_and(|o| o.state.ended())
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error;
    use std::io::Write;

    use heapscope_format::capture::{CaptureWriter, Record, SampleEntry};

    use super::*;

    fn sample(t_ms: u64) -> Record {
        Record::Samples(vec![SampleEntry {
            t_ms,
            traced_bytes: t_ms * 10,
            rss_bytes: 0,
        }])
    }

    #[test]
    fn follows_records_as_they_are_written_even_cut_mid_record() -> Result<(), Box<dyn Error>> {
        let dir = std::env::temp_dir().join(format!("heapscope-tail-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("live.hsc");
        let _ = std::fs::remove_file(&path);
        let mut tail = CaptureTail::new(&path);
        assert_eq!(tail.poll()?, 0, "no file yet");
        assert!(tail.profile().is_none());

        let mut bytes = Vec::new();
        let mut w = CaptureWriter::new(&mut bytes, &Header::default())?;
        w.write(&sample(1))?;
        w.write(&sample(2))?;
        w.finish(3)?;
        // The records' boundaries, found by reading the whole file once.
        let mut reader = CaptureReader::new(bytes.as_slice())?;
        let mut ends = vec![reader.offset()];
        while reader.next_record()?.is_some() {
            ends.push(reader.offset());
        }
        assert_eq!(ends.len(), 4);

        let mut file = File::create(&path)?;
        // Header plus half of the first sample record.
        let half = (ends[0] + ends[1]) as usize / 2;
        file.write_all(&bytes[..half])?;
        file.flush()?;
        assert_eq!(tail.poll()?, 0);
        assert!(tail.recent_samples(10).is_empty());
        file.write_all(&bytes[half..ends[2] as usize])?;
        file.flush()?;
        assert_eq!(tail.poll()?, 2);
        let samples = tail.recent_samples(10);
        assert_eq!(samples.iter().map(|s| s.t_ms).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(tail.recent_samples(1)[0].traced_bytes, 20);
        assert!(!tail.ended());
        file.write_all(&bytes[ends[2] as usize..])?;
        file.flush()?;
        assert_eq!(tail.poll()?, 1);
        assert!(tail.ended());
        assert_eq!(tail.poll()?, 0);
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
