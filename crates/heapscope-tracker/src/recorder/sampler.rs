//! The timeline sampler: a Rust thread that reads traced memory and RSS every
//! [`SAMPLE_INTERVAL`], without the GIL, and keeps the samples until the next flush.

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use heapscope_core::profile::Sample;

use super::backend;

/// Time between two samples (at least ten a second).
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(50);

/// A running sampler thread.
pub struct Sampler {
    stop: Sender<()>,
    seen: Arc<Mutex<Seen>>,
}

/// What the sampler thread hands over.
#[derive(Default)]
struct Seen {
    /// The samples not taken yet.
    samples: Vec<Sample>,
    /// The highest peak a sample has seen and the time of the first sample that saw it: the
    /// peak came after the sample before it, at most [`SAMPLE_INTERVAL`] earlier. A spike
    /// shorter than that is in no sample's traced bytes, but it moves the peak.
    peak: (u64, u64),
}

impl Sampler {
    /// Starts sampling; times are measured from `start`.
    pub fn spawn(start: Instant) -> std::io::Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let sink = Arc::clone(&seen);
        // Detached: never joined (see `stop`). Born with every signal blocked, so signals
        // sent to the process reach the program's threads as they would without heapscope
        // (a SIGTERM taken by this thread would leave the main thread asleep, its Python
        // handler waiting).
        let previous = block_signals();
        let spawned = std::thread::Builder::new()
            .name("heapscope-sampler".into())
            .spawn(move || {
                // A Rust thread with no Python thread state: its allocations never reach the
                // PyMem hooks, so there is nothing to ignore.
                let page = page_size();
                loop {
                    let (sample, peak_bytes) = take_sample(start, page);
                    let mut seen = sink.lock().unwrap_or_else(PoisonError::into_inner);
                    if peak_bytes > seen.peak.0 {
                        seen.peak = (peak_bytes, sample.t_ms);
                    }
                    seen.samples.push(sample);
                    drop(seen);
                    match stopped.recv_timeout(SAMPLE_INTERVAL) {
                        Err(RecvTimeoutError::Timeout) => {}
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            });
        if let Some(previous) = previous {
            restore_signals(&previous);
        }
        spawned?;
        Ok(Sampler { stop, seen })
    }

    /// When the traced peak reached `peak_bytes`, if a sample saw it (milliseconds from the
    /// start, at most one sampling interval late); None if it came after the last sample.
    pub fn peak_time(&self, peak_bytes: u64) -> Option<u64> {
        let (seen_bytes, at) = self
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .peak;
        (seen_bytes >= peak_bytes && peak_bytes > 0).then_some(at)
    }

    /// The samples taken since the previous call.
    pub fn take(&self) -> Vec<Sample> {
        std::mem::take(
            &mut self
                .seen
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .samples,
        )
    }

    /// Tells the thread to stop and returns the samples not yet taken. The thread is not
    /// waited for (it ends at its next wake-up, at once): every followed child process stops
    /// a sampler on its way out, and on a busy machine waiting for the thread to be scheduled
    /// cost milliseconds. A sample it takes meanwhile is dropped.
    pub fn stop(self) -> Vec<Sample> {
        let _ = self.stop.send(());
        self.take()
    }
}

/// A sample, and the traced peak so far when it was taken.
fn take_sample(start: Instant, page: u64) -> (Sample, u64) {
    let (traced_bytes, peak_bytes) = backend::traced_memory();
    let sample = Sample {
        t_ms: start.elapsed().as_millis() as u64,
        traced_bytes,
        rss_bytes: resident_pages().map_or(0, |pages| pages * page),
    };
    (sample, peak_bytes)
}

/// Resident pages of this process, from `/proc/self/statm` (0 where there is no procfs).
fn resident_pages() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    statm.split_whitespace().nth(1)?.parse().ok()
}

/// Blocks every signal in the calling thread; returns the previous mask (None on failure).
fn block_signals() -> Option<libc::sigset_t> {
    // SAFETY: `sigset_t` is plain data, valid when zeroed; `sigfillset` and `pthread_sigmask`
    // only write to the sets passed, which live on this stack frame.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut previous: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&raw mut all);
        (libc::pthread_sigmask(libc::SIG_BLOCK, &raw const all, &raw mut previous) == 0)
            .then_some(previous)
    }
}

/// Restores a signal mask returned by [`block_signals`].
fn restore_signals(previous: &libc::sigset_t) {
    // SAFETY: `previous` is a mask `pthread_sigmask` filled in; the old-mask pointer may be null.
    unsafe {
        libc::pthread_sigmask(
            libc::SIG_SETMASK,
            std::ptr::from_ref(previous),
            std::ptr::null_mut(),
        );
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions and only reads a configuration value.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|&s| s > 0).unwrap_or(4096)
}
