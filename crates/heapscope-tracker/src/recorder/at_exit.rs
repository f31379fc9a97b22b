//! The exit status of a process that ends by returning from its program or by an uncaught
//! `SystemExit`: Python's `atexit` handlers cannot see it, but glibc's `on_exit` hands it to
//! its handlers. A session finished "at exit" writes everything but EXIT and END at Python's
//! `atexit`, and the `on_exit` handler writes those two with the status the process really
//! exits with. Where there is no `on_exit` (other C libraries), the caller's guess is written
//! at once instead.

use std::fs::File;
use std::io::BufWriter;
use std::os::fd::AsRawFd;
use std::os::raw::{c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once, PoisonError};
use std::time::Instant;

use heapscope_core::capture::Recorder;
use heapscope_format::capture::{framed, ExitStatus, Record};

/// What is left of a session waiting for its process's exit status.
pub(super) struct Waiting {
    /// The process that recorded it (a forked child must not write it).
    pub pid: u32,
    /// When recording started.
    pub start: Instant,
    /// The stream, everything but EXIT and END written.
    pub recorder: Recorder<BufWriter<File>>,
    /// EXIT with a signal and END, framed in advance for [`on_signal`] (see [`die_by_signal_armed`]).
    pub by_signal: Option<Vec<u8>>,
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

/// The process dies by `signal` before reaching `exit()`: write EXIT with that signal, and END,
/// now. False if no session of this process waits for its status.
pub(super) fn end_by_signal(signal: u32) -> bool {
    let mut guard = WAITING.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(session) = guard.take() else {
        return false;
    };
    if session.pid != std::process::id() {
        std::mem::forget(session);
        return false;
    }
    finish(session, ExitStatus::Signal(signal));
    true
}

/// Until the process exits, `signal` (default action: die) ends the waiting stream with EXIT
/// (that signal) and END before the process dies. After Python's `atexit` the interpreter still
/// finalizes: its handlers go back to the default first, so a SIGTERM then (a process pool's
/// `terminate()` racing a worker that is exiting anyway) killed the process before `exit()`
/// could write the status, and the stream read as cut short. The records are framed now, with
/// the duration as of now; the handler only writes them (one `write(2)`: async-signal-safe, no
/// allocation), then dies by the signal. False if no stream of this process waits.
pub(super) fn die_by_signal_armed(signal: c_int) -> bool {
    let mut guard = WAITING.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(session) = guard.as_mut() else {
        return false;
    };
    if session.pid != std::process::id() {
        return false;
    }
    let t_ms = session.start.elapsed().as_millis() as u64;
    let records = [
        Record::Exit(ExitStatus::Signal(signal.unsigned_abs())),
        Record::End { t_ms },
    ];
    let mut bytes = Vec::new();
    for r in &records {
        match framed(r) {
            Ok(f) => bytes.extend_from_slice(&f),
            Err(_) => return false,
        }
    }
    session.by_signal = Some(bytes);
    drop(guard);
    // SAFETY: `on_signal` is an async-signal-safe `extern "C"` handler that never unwinds;
    // a zeroed sigaction with it as handler and an empty mask is valid.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_signal as *const () as usize;
        libc::sigemptyset(&raw mut action.sa_mask);
        libc::sigaction(signal, &raw const action, std::ptr::null_mut()) == 0
    }
}

/// The handler [`die_by_signal_armed`] installs: the prepared records, then death by `signal`.
extern "C" fn on_signal(signal: c_int) {
    // try_lock: the thread the signal interrupted may hold the lock (`write_exit` running).
    if let Ok(mut guard) = WAITING.try_lock() {
        if let Some(session) = guard.take() {
            if session.pid == std::process::id() {
                if let Some(bytes) = &session.by_signal {
                    let fd = session.recorder.get_ref().get_ref().as_raw_fd();
                    let mut done = 0;
                    while done < bytes.len() {
                        // SAFETY: write(2) of a live buffer to the stream's open file.
                        let n = unsafe {
                            libc::write(fd, bytes[done..].as_ptr().cast(), bytes.len() - done)
                        };
                        if n <= 0 {
                            break;
                        }
                        done += n as usize;
                    }
                }
            }
            // Freeing in a signal handler is not safe: the process is about to die anyway.
            std::mem::forget(session);
        }
    }
    // SAFETY: back to the default action, then the signal again: the process dies by it, as
    // it would have without heapscope.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
}

fn finish(session: Waiting, status: ExitStatus) {
    let duration = session.start.elapsed().as_millis() as u64;
    let mut recorder = session.recorder;
    if recorder.record(&Record::Exit(status)).is_ok() {
        // Nothing to report an error to at this point: the stream then reads as cut short.
        let _ = recorder.finish(duration);
    }
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
    let code = u32::try_from(status & 0xff).unwrap_or(0);
    finish(session, ExitStatus::Code(code));
}
