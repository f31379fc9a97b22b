//! Fork safety: the RAW table's lock is held across `fork()` by the forking thread, so the
//! child gets a consistent table and a lock it can use. Tracing goes on in the child, as with
//! the stdlib (the GIL-owned state is consistent: the forking thread holds the GIL).

use std::sync::Once;

use crate::state::RAW;

static REGISTER: Once = Once::new();

extern "C" fn prepare() {
    crate::native::fork_prepare();
    std::mem::forget(RAW.lock());
}

extern "C" fn parent() {
    // SAFETY: `prepare` took the locks in this thread and forgot their guards.
    unsafe {
        RAW.force_unlock();
        crate::native::fork_release();
    }
}

extern "C" fn child() {
    // SAFETY: the child's only thread is the one that took the locks in `prepare`.
    unsafe {
        RAW.force_unlock();
        crate::native::fork_release();
    }
    crate::native::after_fork_in_child();
}

/// Register the fork handlers once per process.
pub fn register() {
    REGISTER.call_once(|| {
        // SAFETY: the handlers are async-signal-safe (atomic stores and a spin on an atomic).
        unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    });
}
