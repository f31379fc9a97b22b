//! The exit status of a process that ends by returning from its program or by an uncaught
//! `SystemExit`: Python's `atexit` handlers cannot see it, but glibc's `on_exit` hands it to
//! its handlers. A session finished "at exit" writes everything but EXIT and END at Python's
//! `atexit`, and the `on_exit` handler writes those two with the status the process really
//! exits with. Where there is no `on_exit` (other C libraries), the caller's guess is written
//! at once instead.

use std::fs::File;
use std::io::BufWriter;
use std::os::raw::{c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once, PoisonError};
use std::time::Instant;

use heapscope_core::capture::Recorder;
use heapscope_format::capture::{ExitStatus, Record};

/// What is left of a session waiting for its process's exit status.
pub(super) struct Waiting {
    /// The process that recorded it (a forked child must not write it).
    pub pid: u32,
    /// When recording started.
    pub start: Instant,
    /// The stream, everything but EXIT and END written.
    pub recorder: Recorder<BufWriter<File>>,
}

/// The session waiting for the exit status (one per process).
static WAITING: Mutex<Option<Waiting>> = Mutex::new(None);

#[cfg(all(target_os = "linux", target_env = "gnu"))]
extern "C" {
    /// glibc: `int on_exit(void (*function)(int, void *), void *arg)`.
    fn on_exit(function: extern "C" fn(c_int, *mut c_void), arg: *mut c_void) -> c_int;
}

/// Registers [`write_exit`] with the C library once per process image; false if it cannot.
fn register() -> bool {
    static REGISTER: Once = Once::new();
    static REGISTERED: AtomicBool = AtomicBool::new(false);
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    REGISTER.call_once(|| {
        // SAFETY: `write_exit` is an `extern "C"` function that never unwinds (it handles
        // every error itself, and nothing in it panics); `on_exit` only stores the pointer.
        let ok = unsafe { on_exit(write_exit, std::ptr::null_mut()) } == 0;
        REGISTERED.store(ok, Ordering::Release);
    });
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    REGISTER.call_once(|| {});
    REGISTERED.load(Ordering::Acquire)
}

/// Keeps `session` (its records written and flushed, its tracer stopped) until the process
/// exits, when EXIT (with the real status) and END are written. Returns the session back if
/// the C library offers no such hook.
pub(super) fn wait_for_status(session: Waiting) -> Option<Waiting> {
    if !register() {
        return Some(session);
    }
    let previous = WAITING
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .replace(session);
    // A session of the parent, copied by fork: never the child's to write.
    std::mem::forget(previous);
    None
}

/// Called by the C library's `exit(status)`, after the interpreter has finalized.
#[cfg_attr(not(all(target_os = "linux", target_env = "gnu")), allow(dead_code))]
extern "C" fn write_exit(status: c_int, _arg: *mut c_void) {
    let mut guard = WAITING.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(session) = guard.take() else {
        return;
    };
    if session.pid != std::process::id() {
        // Copied into a forked child: the file belongs to the parent.
        std::mem::forget(session);
        return;
    }
    let duration = session.start.elapsed().as_millis() as u64;
    let mut recorder = session.recorder;
    let code = u32::try_from(status & 0xff).unwrap_or(0);
    if recorder
        .record(&Record::Exit(ExitStatus::Code(code)))
        .is_ok()
    {
        // Nothing to report an error to at this point: the stream then reads as cut short.
        let _ = recorder.finish(duration);
    }
}
