//! GOT patching: point every loaded object's import of a symbol at our replacement, remember
//! what was there, and put it back.
//!
//! The set of targets (symbol name -> replacement) is fixed when the interposer is made, so the
//! same machinery serves `PyTraceMalloc_Track` and, later, the malloc family (`--native`).

use std::ffi::CStr;
use std::sync::atomic::{AtomicUsize, Ordering};

use hashbrown::HashMap;

use super::elf::{for_each_object, Dynamic, ObjectInfo, ObjectKey};

/// One patched slot.
struct Patch {
    slot: usize,
    original: usize,
    replacement: usize,
    relro: bool,
}

/// The patched objects and how to undo each patch.
pub struct Interposer {
    names: Vec<&'static CStr>,
    replacements: Vec<usize>,
    /// An address inside heapscope's own module: its imports are left alone (its calls to the
    /// real functions must reach them).
    own: usize,
    objects: HashMap<ObjectKey, Vec<Patch>>,
    page: usize,
    /// Objects (by path) whose imports are left alone.
    skip: fn(&[u8]) -> bool,
}

impl Interposer {
    /// An interposer of `targets` (symbol name, address of the replacement); patches nothing.
    pub fn new(targets: &[(&'static CStr, usize)], own: usize) -> Interposer {
        // SAFETY: sysconf is always safe to call.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        Interposer {
            names: targets.iter().map(|t| t.0).collect(),
            replacements: targets.iter().map(|t| t.1).collect(),
            own,
            objects: HashMap::new(),
            page,
            skip: |_| false,
        }
    }

    /// The same, leaving alone the objects whose path `skip` accepts.
    pub fn skipping(mut self, skip: fn(&[u8]) -> bool) -> Interposer {
        self.skip = skip;
        self
    }

    /// Patch every loaded object not patched yet, and forget objects that were unloaded.
    /// Returns the number of slots patched by this call.
    ///
    /// # Safety
    /// Must not run concurrently with another call on an interposer of the same targets (the
    /// caller serialises them). Writing a GOT slot is sound only because the replacement has the
    /// same signature as the symbol it replaces.
    pub unsafe fn scan(&mut self) -> usize {
        let mut seen: Vec<ObjectKey> = Vec::new();
        let mut count = 0;
        let (names, replacements, page, skip) =
            (&self.names, &self.replacements, self.page, self.skip);
        let objects = &mut self.objects;
        let each = |obj: &ObjectInfo, dynamic: &Dynamic| {
            seen.push(obj.key);
            if obj.holds_probe || objects.contains_key(&obj.key) {
                return;
            }
            if skip(obj.name) {
                objects.insert(obj.key, Vec::new());
                return;
            }
            // SAFETY: inside for_each_object: the object is mapped.
            let slots = unsafe { dynamic.slots(obj.key.base, names) };
            let mut patches = Vec::with_capacity(slots.len());
            for s in slots {
                let relro = obj.relro.is_some_and(|(a, b)| s.addr >= a && s.addr < b);
                // A word of data is written only where the loader could write it (never a
                // text relocation in code), aligned (swapped atomically), and once it holds
                // an address.
                if s.data {
                    let writable = obj.writable.iter().any(|&(a, b)| s.addr >= a && s.addr < b);
                    if !(relro || writable) || s.addr % size_of::<usize>() != 0 {
                        continue;
                    }
                    // SAFETY: an aligned word of a mapped segment of the object (above).
                    let now = unsafe { (*(s.addr as *const AtomicUsize)).load(Ordering::Acquire) };
                    if now == 0 {
                        continue;
                    }
                }
                let replacement = replacements[s.which];
                // SAFETY: `s.addr` is a GOT slot of this mapped object.
                if let Some(original) = unsafe { write_slot(s.addr, replacement, relro, page) } {
                    patches.push(Patch {
                        slot: s.addr,
                        original,
                        replacement,
                        relro,
                    });
                }
            }
            count += patches.len();
            objects.insert(obj.key, patches);
        };
        // SAFETY: the callback only reads and writes mapped memory, never loads objects.
        unsafe { for_each_object(self.own, each) };
        self.objects.retain(|k, _| seen.contains(k));
        count
    }

    /// Put every patched slot of the objects still loaded back as it was (a slot someone else
    /// changed since is left alone).
    ///
    /// # Safety
    /// As `scan`.
    pub unsafe fn restore(&mut self) {
        let page = self.page;
        let objects = &mut self.objects;
        let each = |obj: &ObjectInfo, _: &Dynamic| {
            let Some(patches) = objects.remove(&obj.key) else {
                return;
            };
            for p in patches {
                // SAFETY: the object that holds the slot is still mapped.
                let now = unsafe { (*(p.slot as *const AtomicUsize)).load(Ordering::Acquire) };
                if now == p.replacement {
                    // SAFETY: as above.
                    unsafe { write_slot(p.slot, p.original, p.relro, page) };
                }
            }
        };
        // SAFETY: as in `scan`.
        unsafe { for_each_object(self.own, each) };
        self.objects.clear();
    }

    /// Number of slots currently patched.
    pub fn patched(&self) -> usize {
        self.objects.values().map(Vec::len).sum()
    }
}

/// Write `value` into a GOT slot, making its page writable for the time of the write if the
/// loader protected it. Returns the previous value, or `None` if the page could not be made
/// writable.
///
/// # Safety
/// `slot` is a pointer-aligned GOT slot of a mapped object; `relro` says whether it lies in
/// pages the loader made read-only.
unsafe fn write_slot(slot: usize, value: usize, relro: bool, page: usize) -> Option<usize> {
    let start = (slot & !(page - 1)) as *mut libc::c_void;
    if relro {
        // SAFETY: `start` is the page holding the slot, mapped by the loader.
        if unsafe { libc::mprotect(start, page, libc::PROT_READ | libc::PROT_WRITE) } != 0 {
            return None;
        }
    }
    // SAFETY: the slot is a mapped, aligned, writable word; an atomic swap so that threads
    // calling through it see the old or the new target, never a torn one.
    let old = unsafe { (*(slot as *const AtomicUsize)).swap(value, Ordering::AcqRel) };
    if relro {
        // SAFETY: back to what the loader set.
        unsafe { libc::mprotect(start, page, libc::PROT_READ) };
    }
    Some(old)
}

#[cfg(test)]
mod tests {
    use super::Interposer;

    extern "C" fn fake_getpgrp() -> libc::pid_t {
        -4242
    }

    /// The test binary calls `getpgrp` through its own GOT: patching every object (no object
    /// excluded) sends the call to the replacement, restoring sends it back.
    #[test]
    fn patches_and_restores_a_got_slot() {
        let real = (fake_getpgrp as *const ()) as usize;
        let mut interposer = Interposer::new(&[(c"getpgrp", real)], 0);
        // SAFETY: only this test patches getpgrp; the replacement has its signature.
        let patched = unsafe { interposer.scan() };
        assert!(patched >= 1, "no GOT slot for getpgrp found");
        assert_eq!(interposer.patched(), patched);
        // SAFETY: a plain libc call (to our replacement now).
        assert_eq!(unsafe { libc::getpgrp() }, -4242);
        // A second scan patches nothing new.
        // SAFETY: as above.
        assert_eq!(unsafe { interposer.scan() }, 0);
        // SAFETY: as above.
        unsafe { interposer.restore() };
        assert_eq!(interposer.patched(), 0);
        // SAFETY: as above.
        assert_eq!(unsafe { libc::getpgrp() }, unsafe { libc::getpgid(0) });
    }
}
