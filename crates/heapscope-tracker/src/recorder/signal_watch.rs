//! A SIGTERM that Python's handler has not run for: the main thread is nudged until it does.
//!
//! heapscope ends a capture on SIGTERM through a Python handler (`_follow.py`), and CPython
//! runs Python handlers in the main thread, between two bytecodes, or when a blocking call
//! there fails with EINTR. A signal that lands just before the main thread blocks (the
//! C-level handler trips the flag after the last check, then `time.sleep`, a lock or `select`
//! starts) is seen only when that call returns. Without heapscope SIGTERM's default action
//! kills at once; with the handler, a pool worker terminated as it went to sleep slept on
//! (seen: `Pool.terminate()` of two sleeping workers took 60 s, one run in eight under load).
//!
//! So [`watch`] wraps the C-level handler Python installed: the wrapper runs it, then notes
//! when the signal came. The Python handler says it ran ([`taken`]). The capture's flush
//! thread, which wakes every 50 ms, calls [`nudge`]: a signal waiting longer than
//! [`PATIENCE_NS`] is sent again, to the main thread, whose blocking call then fails with
//! EINTR, and CPython runs the handler. A program that installs its own handler later
//! replaces the wrapper, and nothing is noted any more.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Once;

use libc::c_int;

/// How long a signal may wait for its Python handler before the main thread is nudged.
const PATIENCE_NS: u64 = 200_000_000;

/// The signal watched (0: none).
static SIGNAL: AtomicI32 = AtomicI32::new(0);
/// The handler Python installed for it, and whether it takes `siginfo` (`SA_SIGINFO`).
static PREVIOUS: AtomicUsize = AtomicUsize::new(0);
static PREVIOUS_SIGINFO: AtomicBool = AtomicBool::new(false);
/// The main thread (`pthread_t`), where Python runs signal handlers.
static MAIN: AtomicU64 = AtomicU64::new(0);
/// When the signal came, on the monotonic clock, while its handler has not run (0: none).
static PENDING_SINCE: AtomicU64 = AtomicU64::new(0);
/// The fork handler that rebinds `MAIN` in a child, registered once.
static AT_FORK: Once = Once::new();

fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write; clock_gettime is async-signal-safe.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
        .max(1)
}

/// Wrap the C-level handler of `signal` that Python just installed (call from the main
/// thread, after `signal.signal`). False if the signal has no handler to wrap.
pub fn watch(signal: c_int) -> bool {
    // SAFETY: reading and setting a signal's action with valid, zero-initialised sigactions;
    // `on_signal` is an `extern "C"` handler that never unwinds.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(signal, std::ptr::null(), &raw mut old) != 0 {
            return false;
        }
        let handler = old.sa_sigaction;
        if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
            return false;
        }
        MAIN.store(libc::pthread_self() as u64, Ordering::Relaxed);
        PENDING_SINCE.store(0, Ordering::Relaxed);
        AT_FORK.call_once(|| {
            libc::pthread_atfork(None, None, Some(after_fork_child));
        });
        if handler == on_signal as *const () as usize {
            return true;
        }
        PREVIOUS.store(handler, Ordering::Relaxed);
        PREVIOUS_SIGINFO.store(old.sa_flags & libc::SA_SIGINFO != 0, Ordering::Relaxed);
        SIGNAL.store(signal, Ordering::Relaxed);
        let mut action = old;
        action.sa_sigaction = on_signal as *const () as usize;
        action.sa_flags |= libc::SA_SIGINFO;
        libc::sigaction(signal, &raw const action, std::ptr::null_mut()) == 0
    }
}

/// The forking thread is the child's main thread (and only thread); nothing is pending there.
extern "C" fn after_fork_child() {
    // SAFETY: pthread_self has no preconditions.
    MAIN.store(unsafe { libc::pthread_self() } as u64, Ordering::Relaxed);
    PENDING_SINCE.store(0, Ordering::Relaxed);
}

extern "C" fn on_signal(signal: c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    let previous = PREVIOUS.load(Ordering::Relaxed);
    if previous != 0 {
        if PREVIOUS_SIGINFO.load(Ordering::Relaxed) {
            // SAFETY: `previous` was read from this signal's action, which took siginfo.
            let f = unsafe {
                std::mem::transmute::<
                    usize,
                    extern "C" fn(c_int, *mut libc::siginfo_t, *mut libc::c_void),
                >(previous)
            };
            f(signal, info, context);
        } else {
            // SAFETY: as above, a plain handler.
            let f = unsafe { std::mem::transmute::<usize, extern "C" fn(c_int)>(previous) };
            f(signal);
        }
    }
    let _ = PENDING_SINCE.compare_exchange(0, now_ns(), Ordering::Relaxed, Ordering::Relaxed);
}

/// The Python handler of the watched signal runs.
pub fn taken() {
    PENDING_SINCE.store(0, Ordering::Relaxed);
}

/// Send the watched signal again to the main thread if it has waited for its handler longer
/// than [`PATIENCE_NS`]; true if it was sent. From any thread but the main one.
pub fn nudge() -> bool {
    let since = PENDING_SINCE.load(Ordering::Relaxed);
    if since == 0 {
        return false;
    }
    let now = now_ns();
    if now.saturating_sub(since) < PATIENCE_NS {
        return false;
    }
    let signal = SIGNAL.load(Ordering::Relaxed);
    if signal == 0 {
        return false;
    }
    // Patience again before the next nudge; none if the handler ran meanwhile (a program's
    // own chained handler must not see the signal twice).
    if PENDING_SINCE
        .compare_exchange(since, now, Ordering::Relaxed, Ordering::Relaxed)
        .is_err()
    {
        return false;
    }
    // SAFETY: MAIN is this process's main thread (set by `watch` there, or after fork in the
    // child's only thread), which lives as long as the process.
    unsafe { libc::pthread_kill(MAIN.load(Ordering::Relaxed) as libc::pthread_t, signal) == 0 }
}
