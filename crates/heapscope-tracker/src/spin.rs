//! A minimal spinlock for the RAW table: held for a few hundred nanoseconds at most, never
//! across a call into Python, and resettable in a forked child (see `fork.rs`).

use std::cell::UnsafeCell;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};

/// A spinlock around `T`.
pub struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: access to `value` is serialised by `locked`.
unsafe impl<T: Send> Sync for SpinLock<T> {}

/// Holds the lock until dropped.
pub struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> SpinLock<T> {
    /// A new, unlocked lock.
    pub const fn new(value: T) -> Self {
        SpinLock {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Take the lock, spinning (then yielding) while another thread holds it.
    pub fn lock(&self) -> SpinGuard<'_, T> {
        let mut spins = 0u32;
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        SpinGuard { lock: self }
    }

    /// Take the lock if it is free, without waiting.
    pub fn try_lock(&self) -> Option<SpinGuard<'_, T>> {
        self.locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
            // Lazily: a guard built for nothing would unlock the holder's lock when dropped.
            .then(|| SpinGuard { lock: self })
    }

    /// Whether some thread holds the lock now.
    pub fn is_locked(&self) -> bool {
        self.locked.load(Ordering::Acquire)
    }

    /// Mark the lock free without a guard: only for a forked child, whose sole thread is the
    /// one that forked (which took the lock in the prepare handler).
    ///
    /// # Safety
    /// No guard of this lock may be used afterwards by any other thread.
    pub unsafe fn force_unlock(&self) {
        self.locked.store(false, Ordering::Release);
    }
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves the lock is held.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves the lock is held exclusively.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::SpinLock;

    /// A failed `try_lock` leaves the holder's lock held (it once dropped a guard it had built
    /// eagerly, unlocking it: two threads then walked the same unwinder cache).
    #[test]
    fn failed_try_lock_keeps_the_lock_held() {
        let lock = SpinLock::new(0u32);
        let held = lock.lock();
        std::thread::scope(|s| {
            s.spawn(|| {
                assert!(lock.try_lock().is_none());
                assert!(lock.try_lock().is_none());
            });
        });
        assert!(lock.is_locked());
        drop(held);
        assert!(!lock.is_locked());
        let mut g = lock.try_lock().expect("free lock");
        *g += 1;
        drop(g);
        assert_eq!(*lock.lock(), 1);
    }
}
