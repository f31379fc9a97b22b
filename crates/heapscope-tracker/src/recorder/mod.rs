//! Recording a capture file in-process: the session (file, header, tracer start), the
//! timeline sampler, ordered flushes of what the tracer drains, and the closing record.
//!
//! Threading: draining the tracer needs the GIL, writing must not hold it. A caller drains
//! with the GIL ([`drain`] hands out a sequence number), releases it, then calls [`write`];
//! writes are applied in drain order, so the frames and stacks a delta defines always precede
//! the counters of later deltas in the file.

mod at_exit;
mod backend;
mod error;
mod sampler;
mod signal_watch;

use std::fs::{File, OpenOptions};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use heapscope_core::capture::Recorder;
use heapscope_core::delta::ProfileDelta;
use heapscope_format::capture::{ExitStatus, Header, Record};

pub use error::CaptureError;
use sampler::Sampler;

use crate::Gil;
pub use sampler::SAMPLE_INTERVAL;

/// How a capture is started.
#[derive(Debug, Clone)]
pub struct CaptureOptions {
    /// Where the capture goes.
    pub path: PathBuf,
    /// Overwrite an existing file.
    pub force: bool,
    /// The command line being profiled (for the header).
    pub command: Vec<String>,
    /// e.g. "3.11.7".
    pub python_version: String,
    /// Frames kept per stack.
    pub trace_limit: u16,
    /// Poisson sampling: one recorded block per this many bytes on average (None: all).
    pub sample_rate: Option<u64>,
    /// The parent process, for the capture of a child of the traced program.
    pub ppid: Option<u32>,
    /// Trace native allocations too (`--native`).
    pub native: bool,
}

/// A tracer drain waiting to be written; [`write`] applies them in the order drained.
pub struct Drained {
    seq: u64,
    delta: ProfileDelta,
    /// A piece of a drain: new frames and stacks only, more to come ([`drain_piece`]).
    partial: bool,
}

impl Drained {
    /// True for a piece of a drain after which more new tracebacks remain to be drained.
    pub fn is_partial(&self) -> bool {
        self.partial
    }
}

/// New tracebacks resolved per piece of a drain: bounds what a drain holds at once (~2 MB of
/// frames at 64 a stack).
pub const PIECE: usize = 8192;

struct Session {
    /// The process that started the capture: a forked child must not write to its file.
    pid: u32,
    path: PathBuf,
    recorder: Recorder<BufWriter<File>>,
    sampler: Sampler,
    start: Instant,
    drained: u64,
    written: u64,
    /// The traceback limit and sampling rate of a tracer that ran before the capture (started
    /// by `heapscope.tracemalloc`): it shares the tracer, which goes on running for it, as it
    /// was, when the capture ends.
    resume_tracing: Option<(u32, Option<u64>)>,
}

static SESSION: Mutex<Option<Session>> = Mutex::new(None);
static TURN: Condvar = Condvar::new();

/// How long a write waits for an earlier drain to be written before going ahead anyway.
const TURN_TIMEOUT: Duration = Duration::from_secs(5);

/// The session of this process. In a child forked while capturing, the parent's session is
/// leaked without a byte written (its file offset is shared and its threads do not exist).
fn session() -> MutexGuard<'static, Option<Session>> {
    let mut guard = SESSION.lock().unwrap_or_else(PoisonError::into_inner);
    if guard.as_ref().is_some_and(|s| s.pid != std::process::id()) {
        std::mem::forget(guard.take());
    }
    guard
}

/// Creates the file, writes the header, starts the tracer and the sampler.
pub fn start(gil: Gil, opts: &CaptureOptions) -> Result<(), CaptureError> {
    let mut guard = session();
    if guard.is_some() {
        return Err(CaptureError::AlreadyCapturing);
    }
    let file = open_output(&opts.path, opts.force)?;
    let header = Header {
        python_version: opts.python_version.clone(),
        command: opts.command.clone(),
        start_time_unix_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        pid: std::process::id(),
        trace_limit: u32::from(opts.trace_limit),
    };
    let write_err = |source| CaptureError::Write {
        path: opts.path.clone(),
        source,
    };
    let mut recorder =
        Recorder::new(BufWriter::with_capacity(1 << 16, file), &header).map_err(write_err)?;
    if let Some(ppid) = opts.ppid {
        recorder
            .record(&Record::Process { ppid })
            .map_err(write_err)?;
    }
    recorder.flush().map_err(write_err)?;
    let resume_tracing = (opts.ppid.is_none() && crate::is_tracing())
        .then(|| (crate::traceback_limit(), crate::sample_rate(gil)));
    if opts.ppid.is_some() {
        // A process forked while tracing inherits its parent's traces: they are the parent's
        // memory, so a child's capture starts from an empty tracer.
        backend::stop(gil);
    }
    backend::reset_drain(gil);
    let options = crate::Options {
        by_thread: true,
        sample_rate: opts.sample_rate,
        native: opts.native,
    };
    backend::start(gil, u32::from(opts.trace_limit), options)?;
    let start = Instant::now();
    let sampler = match Sampler::spawn(start) {
        Ok(sampler) => sampler,
        Err(source) => {
            backend::stop(gil);
            return Err(CaptureError::Create {
                path: opts.path.clone(),
                source,
            });
        }
    };
    *guard = Some(Session {
        pid: std::process::id(),
        path: opts.path.clone(),
        recorder,
        sampler,
        start,
        drained: 0,
        written: 0,
        resume_tracing,
    });
    Ok(())
}

fn open_output(path: &Path, force: bool) -> Result<File, CaptureError> {
    let mut options = OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    options.open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            CaptureError::Exists {
                path: path.to_owned(),
            }
        } else {
            CaptureError::Create {
                path: path.to_owned(),
                source,
            }
        }
    })
}

/// True while a capture is being recorded.
pub fn is_capturing() -> bool {
    session().is_some()
}

/// Drains the tracer. Call with the GIL held; then release it and call [`write`].
pub fn drain(gil: Gil) -> Result<Drained, CaptureError> {
    let mut guard = session();
    let s = guard.as_mut().ok_or(CaptureError::NotCapturing)?;
    s.drained += 1;
    Ok(Drained {
        seq: s.drained,
        delta: backend::drain_profile(gil),
        partial: false,
    })
}

/// Like [`drain`], resolving at most [`PIECE`] new tracebacks and taking about as many changed
/// figures: if more remain, the piece holds what was taken ([`Drained::is_partial`]); write it
/// and drain again.
pub fn drain_piece(gil: Gil) -> Result<Drained, CaptureError> {
    let mut guard = session();
    let s = guard.as_mut().ok_or(CaptureError::NotCapturing)?;
    s.drained += 1;
    let (delta, partial) = backend::drain_up_to(gil, PIECE);
    Ok(Drained {
        seq: s.drained,
        delta,
        partial,
    })
}

/// Writes a drain, the pending samples and the thread names, and flushes them to the OS.
/// Call without the GIL.
pub fn write(drained: Drained, thread_names: &[(u64, String)]) -> Result<(), CaptureError> {
    let Drained {
        seq,
        delta,
        partial,
    } = drained;
    let guard = session();
    let (mut guard, _) = TURN
        .wait_timeout_while(guard, TURN_TIMEOUT, |s| {
            s.as_ref().is_some_and(|s| s.written + 1 < seq)
        })
        .unwrap_or_else(PoisonError::into_inner);
    let s = guard.as_mut().ok_or(CaptureError::NotCapturing)?;
    let result = write_to(s, &delta, partial, thread_names);
    s.written = s.written.max(seq);
    TURN.notify_all();
    result
}

fn write_to(
    s: &mut Session,
    delta: &ProfileDelta,
    partial: bool,
    thread_names: &[(u64, String)],
) -> Result<(), CaptureError> {
    let t_ms = s.start.elapsed().as_millis() as u64;
    let samples = s.sampler.take();
    // The peak as the sampler timed it (the drain comes up to a flush interval later).
    let peak_t_ms = s.sampler.peak_time(delta.peak_bytes).unwrap_or(t_ms);
    let r = &mut s.recorder;
    r.record_samples(&samples)
        .and_then(|()| {
            // A partial piece may carry no figures (only new frames, nodes and stacks).
            if partial && delta.changed.is_empty() && delta.peak_changed.is_empty() {
                r.record_definitions(delta)
            } else {
                r.record_delta_with_peak_time(t_ms, peak_t_ms, delta)
            }
        })
        .and_then(|()| r.record_thread_names(thread_names))
        .and_then(|()| r.flush())
        .map_err(|source| CaptureError::Write {
            path: s.path.clone(),
            source,
        })
}

/// Stops the tracer (call with the GIL held, after a final [`drain`]); if it ran before the
/// capture, it goes on with the limit and sampling rate it had, without the profiler.
pub fn stop_tracer(gil: Gil) {
    let resume = session().as_ref().and_then(|s| s.resume_tracing);
    match resume {
        Some((limit, sample_rate)) => {
            backend::reset_drain(gil);
            let options = crate::Options {
                by_thread: false,
                sample_rate,
                native: false,
            };
            // Already tracing: only the limit and the sampling rate change back.
            if backend::start(gil, limit, options).is_err() {
                backend::stop(gil);
            }
        }
        None => backend::stop(gil),
    }
}

/// Writes the final drain and the closing record, stops the sampler and closes the file.
/// Call without the GIL. Returns the path of the capture and its size in bytes.
pub fn finish(
    last: Drained,
    thread_names: &[(u64, String)],
    exit: Option<ExitStatus>,
) -> Result<(PathBuf, u64), CaptureError> {
    let written = write(last, thread_names);
    let Some(mut s) = session().take() else {
        return Err(CaptureError::NotCapturing);
    };
    TURN.notify_all();
    let samples = s.sampler.stop();
    written?;
    let duration = s.start.elapsed().as_millis() as u64;
    let path = s.path;
    let write_err = |source| CaptureError::Write {
        path: path.clone(),
        source,
    };
    s.recorder.record_samples(&samples).map_err(write_err)?;
    if let Some(exit) = exit {
        s.recorder.record(&Record::Exit(exit)).map_err(write_err)?;
    }
    let out = s.recorder.finish(duration).map_err(write_err)?;
    let size = out.get_ref().metadata().map_or(0, |m| m.len());
    Ok((path, size))
}

/// Like [`finish`], for a process ending by `exit()` whose status Python cannot see: the
/// final drain is written now; EXIT with the status the process exits with, and END, are
/// written by the C library's exit (glibc `on_exit`). Where that hook does not exist,
/// `fallback` is written as the status, and END, at once. Call without the GIL.
pub fn finish_at_exit(
    last: Drained,
    thread_names: &[(u64, String)],
    fallback: u32,
) -> Result<(PathBuf, u64), CaptureError> {
    let written = write(last, thread_names);
    let Some(mut s) = session().take() else {
        return Err(CaptureError::NotCapturing);
    };
    TURN.notify_all();
    let samples = s.sampler.stop();
    written?;
    let path = s.path.clone();
    let write_err = |source| CaptureError::Write {
        path: path.clone(),
        source,
    };
    s.recorder.record_samples(&samples).map_err(write_err)?;
    s.recorder.flush().map_err(write_err)?;
    let size = s.recorder.bytes_written();
    let waiting = at_exit::Waiting {
        pid: s.pid,
        start: s.start,
        recorder: s.recorder,
        by_signal: None,
    };
    if let Some(mut s) = at_exit::wait_for_status(waiting) {
        let duration = s.start.elapsed().as_millis() as u64;
        s.recorder
            .record(&Record::Exit(ExitStatus::Code(fallback)))
            .map_err(write_err)?;
        s.recorder.finish(duration).map_err(write_err)?;
    }
    Ok((path, size))
}

/// The process is about to die by `signal` after [`finish_at_exit`] (a SIGTERM before it got
/// to `exit()`): EXIT with the signal, and END, written now instead of by the C library's exit.
/// False if no stream of this process waits for its status.
pub fn end_waiting_by_signal(signal: u32) -> bool {
    at_exit::end_by_signal(signal)
}

/// After [`finish_at_exit`]: until the process exits, `signal` (whose Python handler the caller
/// set back to the default) ends the stream with EXIT (that signal) and END before the process
/// dies by it. False if no stream of this process waits for its status.
pub fn arm_exit_signal(signal: i32) -> bool {
    at_exit::die_by_signal_armed(signal)
}

/// Note when `signal` comes, around the C-level handler Python just installed for it (see
/// `signal_watch.rs`); false if it has none.
pub fn watch_signal(signal: i32) -> bool {
    signal_watch::watch(signal)
}

/// The Python handler of the watched signal runs.
pub fn signal_taken() {
    signal_watch::taken();
}

/// Send the watched signal again to the main thread if its Python handler has not run for
/// 200 ms; true if sent.
pub fn nudge_signal() -> bool {
    signal_watch::nudge()
}

/// Stops tracing allocations made by the calling thread (the recorder's own threads).
pub fn ignore_current_thread(gil: Gil) {
    backend::set_thread_ignored(gil, true);
}

/// The signal [`die_by_signal_at_exit`] raises once the interpreter has finalized (0: none).
static EXIT_SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn raise_exit_signal() {
    let signal = EXIT_SIGNAL.load(Ordering::Relaxed);
    if signal > 0 {
        // SAFETY: `signal` and `kill` of this process, with the default disposition: the
        // process dies by the signal here, as CPython's own exit after an uncaught
        // KeyboardInterrupt does; if the signal is blocked, exit goes on with its status.
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
            libc::kill(libc::getpid(), signal);
        }
    }
}

/// Make the process die by `signal` at the very end of the interpreter's finalization
/// (`Py_AtExit`: after `atexit` handlers and the flush of the standard streams), as
/// `python script.py` dies by SIGINT after an uncaught KeyboardInterrupt. False if it could
/// not be registered. Call with the GIL held, before finalization.
pub fn die_by_signal_at_exit(_gil: Gil, signal: i32) -> bool {
    EXIT_SIGNAL.store(signal, Ordering::Relaxed);
    // SAFETY: registers a function without arguments that touches only an atomic and
    // async-signal-safe calls; the GIL is held as Py_AtExit requires.
    unsafe { pyo3_ffi::Py_AtExit(Some(raise_exit_signal)) == 0 }
}
