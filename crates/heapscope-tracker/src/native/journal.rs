//! The journal of native allocations (`--native`): what the malloc-family hooks saw, in order,
//! until the next GIL holder interns it.
//!
//! The hooks run in any thread, with or without the GIL (C threads with no Python thread state
//! too), so they cannot touch the GIL-owned interner or counters. Each event is appended here
//! under a spinlock (a few words, plus the captured frames) and `PENDING` is raised; the next
//! GIL holder (any traced Python allocation, a snapshot, the profiler's drain, a dying code
//! object) applies the events in order: an allocation is interned and entered in the
//! tracked-blocks table in [`NATIVE_DOMAIN`], a free removes it.
//!
//! The set of live native addresses is kept here too, synchronously, so that a free of a block
//! that was never traced (allocated before `start`, or by libc itself) costs a hash probe and
//! no event, and so that `PyTraceMalloc_Track` can tell a block the malloc hook already saw
//! (numpy's buffers: counted once, as the malloc).
//!
//! Anonymous mappings are kept in an ordered map so that a partial `munmap` can carve them.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use hashbrown::HashSet;
pub use heapscope_core::NATIVE_DOMAIN;

use crate::spin::SpinLock;
use crate::stack::{mix, RawFrame};
use crate::state::{State, PENDING, RAW};

/// An allocation: `[header, addr, size, thread, frames...]`.
const ALLOC: u64 = 1;
/// A free: `[header, addr]`.
const FREE: u64 = 2;
/// Part of a mapping unmapped: `[header, old start, pieces..., (start, len) each]`, the
/// header's count field holding the number of pieces left (0, 1 or 2).
const CARVE: u64 = 3;

/// The journal and the live set.
#[derive(Default)]
pub struct Journal {
    words: Vec<u64>,
    /// The buffer the last application emptied, swapped in for `words` by the next one: the
    /// hooks append to a buffer that already has its capacity (a fresh one grew by doubling,
    /// copying, on every application: a third of `--native`'s added instructions on numpy).
    spare: Vec<u64>,
    live: HashSet<usize>,
    maps: BTreeMap<usize, usize>,
}

/// Words a kept buffer may hold (8 MiB): a burst's larger buffer is given back.
const KEEP_WORDS: usize = 1 << 20;

pub static JOURNAL: SpinLock<Option<Journal>> = SpinLock::new(None);

/// One event's header word: kind, Python frames written, native frames written, and the
/// Python frames the stack had.
fn header(kind: u64, npy: usize, nnative: usize, total_py: u16) -> u64 {
    kind | (npy as u64 & 0xffff) << 8 | (nnative as u64 & 0xffff) << 24 | u64::from(total_py) << 40
}

fn unpack(h: u64) -> (u64, usize, usize, u16) {
    (
        h & 0xff,
        (h >> 8 & 0xffff) as usize,
        (h >> 24 & 0xffff) as usize,
        (h >> 40 & 0xffff) as u16,
    )
}

/// What an allocation hook captured.
pub struct Site<'a> {
    pub thread: u64,
    pub py: &'a [RawFrame],
    /// Per Python frame, the invocations of `_PyEval_EvalFrameDefault` between it and the
    /// innermost frame (as long as `py`).
    pub segs: &'a [u16],
    pub total_py: u16,
    /// Return addresses, innermost first; those inside `_PyEval_EvalFrameDefault` carry
    /// [`EVAL_MARK`].
    pub native: &'a [usize],
}

/// Marks a native frame inside `_PyEval_EvalFrameDefault`: the Python frames of that
/// invocation go there.
pub const EVAL_MARK: usize = 1 << 63;
/// User-space addresses fit in 48 bits: a Python frame's journal word keeps its segment above.
const SEG_SHIFT: u32 = 48;
const ADDR_MASK: u64 = (1 << SEG_SHIFT) - 1;

/// Start journaling (forgetting anything from before).
pub fn open() {
    *JOURNAL.lock() = Some(Journal::default());
}

/// Stop journaling and drop what was not applied.
pub fn close() {
    *JOURNAL.lock() = None;
}

/// Forget everything journaled and every live address (`clear_traces`).
pub fn clear() {
    if let Some(j) = JOURNAL.lock().as_mut() {
        *j = Journal::default();
    }
}

impl Journal {
    fn push_alloc(&mut self, addr: usize, size: usize, at_site: &Site<'_>) {
        if !self.live.insert(addr) {
            // A block freed where the hooks do not see it (by libc itself, or a mapping
            // unmapped by an object left alone): drop its trace, and its range if it was one.
            self.words.extend([header(FREE, 0, 0, 0), addr as u64]);
            self.maps.remove(&addr);
        }
        self.words
            .reserve(4 + 2 * at_site.py.len() + at_site.native.len());
        self.words.extend([
            header(
                ALLOC,
                at_site.py.len(),
                at_site.native.len(),
                at_site.total_py,
            ),
            addr as u64,
            size as u64,
            at_site.thread,
        ]);
        for (f, &seg) in at_site.py.iter().zip(at_site.segs) {
            let code = f.code as u64 & ADDR_MASK | u64::from(seg) << SEG_SHIFT;
            self.words.extend([code, f.offset as u64]);
        }
        self.words
            .extend(at_site.native.iter().map(|&ip| ip as u64));
    }

    fn push_free(&mut self, addr: usize) -> bool {
        if self.live.remove(&addr) {
            self.words.extend([header(FREE, 0, 0, 0), addr as u64]);
            true
        } else {
            false
        }
    }
}

/// Journal an allocation of `size` bytes at `addr` made at `site`; `mapping` for an anonymous
/// `mmap` (kept for partial unmaps).
pub fn alloc(addr: usize, size: usize, at_site: &Site<'_>, mapping: bool) {
    let mut guard = JOURNAL.lock();
    let Some(j) = guard.as_mut() else {
        return;
    };
    j.push_alloc(addr, size, at_site);
    if mapping {
        j.maps.insert(addr, size);
    }
    PENDING.store(true, Ordering::Release);
}

/// Journal a free of `addr` if it is a live native block.
pub fn free(addr: usize) {
    let mut guard = JOURNAL.lock();
    if let Some(j) = guard.as_mut() {
        if j.push_free(addr) {
            PENDING.store(true, Ordering::Release);
        }
    }
}

/// Bytes the journal holds: its two buffers, the live set and the mappings.
pub fn memory() -> usize {
    JOURNAL.lock().as_ref().map_or(0, |j| {
        (j.words.capacity() + j.spare.capacity()) * size_of::<u64>()
            + j.live.allocation_size()
            + j.maps.len() * 4 * size_of::<usize>()
    })
}

/// True if `addr` is a live native block (a malloc the hooks saw).
pub fn holds(addr: usize) -> bool {
    JOURNAL
        .lock()
        .as_ref()
        .is_some_and(|j| j.live.contains(&addr))
}

/// Journal `munmap(addr, len)`: every traced mapping it overlaps loses the overlap (what is
/// left of a mapping keeps its traceback).
pub fn unmap(addr: usize, len: usize, page: usize) {
    let len = len.div_ceil(page) * page;
    let end = addr.saturating_add(len);
    let mut guard = JOURNAL.lock();
    let Some(j) = guard.as_mut() else {
        return;
    };
    let hit: Vec<(usize, usize)> = j
        .maps
        .range(..end)
        .rev()
        // Live mappings are disjoint, so their ends are in the order of their starts.
        .take_while(|&(&s, &l)| s + l > addr)
        .map(|(&s, &l)| (s, l))
        .collect();
    for (s, l) in hit {
        j.maps.remove(&s);
        j.live.remove(&s);
        let mut pieces = [(0usize, 0usize); 2];
        let mut n = 0;
        if s < addr {
            pieces[n] = (s, addr - s);
            n += 1;
        }
        if s + l > end {
            pieces[n] = (end, s + l - end);
            n += 1;
        }
        j.words.extend([header(CARVE, n, 0, 0), s as u64]);
        for &(ps, pl) in &pieces[..n] {
            j.words.extend([ps as u64, pl as u64]);
            j.maps.insert(ps, pl);
            j.live.insert(ps);
        }
        PENDING.store(true, Ordering::Release);
    }
}

/// The frames of one native event, innermost first: C frames in call order with the Python
/// frames of each `_PyEval_EvalFrameDefault` invocation in its place (as memray shows them);
/// Python frames beyond the last native frame walked go at the end. Returns the C frames
/// written.
fn interleave(ips: &[u64], py: &[u64], frames: &mut Vec<RawFrame>) -> usize {
    let py_frame = |w: &[u64]| RawFrame {
        code: (w[0] & ADDR_MASK) as *mut std::ffi::c_void,
        offset: w[1] as isize,
    };
    let mut py = py.chunks_exact(2).peekable();
    let (mut seg, mut native) = (0u64, 0);
    for &ip in ips {
        if ip as usize & EVAL_MARK == 0 {
            frames.push(RawFrame::native(ip as usize));
            native += 1;
            continue;
        }
        while let Some(w) = py.next_if(|w| w[0] >> SEG_SHIFT <= seg) {
            frames.push(py_frame(w));
        }
        seg += 1;
    }
    frames.extend(py.map(py_frame));
    native
}

impl State {
    /// Apply the journaled native events (the caller holds the GIL, via `apply_pending`).
    pub(crate) fn apply_native(&mut self) {
        let mut words = match JOURNAL.lock().as_mut() {
            Some(j) => {
                let spare = std::mem::take(&mut j.spare);
                std::mem::replace(&mut j.words, spare)
            }
            None => return,
        };
        let mut frames = std::mem::take(&mut self.native_frames);
        self.apply_words(&words, &mut frames);
        self.native_frames = frames;
        words.clear();
        if words.capacity() > KEEP_WORDS {
            words = Vec::new();
        }
        if let Some(j) = JOURNAL.lock().as_mut() {
            j.spare = words;
        }
    }

    fn apply_words(&mut self, words: &[u64], frames: &mut Vec<RawFrame>) {
        let mut at = 0;
        while at < words.len() {
            let (kind, npy, nnative, total_py) = unpack(words[at]);
            match kind {
                ALLOC => {
                    let (addr, size, thread) = (words[at + 1], words[at + 2], words[at + 3]);
                    let py = &words[at + 4..at + 4 + 2 * npy];
                    let ips = &words[at + 4 + 2 * npy..at + 4 + 2 * npy + nnative];
                    at += 4 + 2 * npy + nnative;
                    frames.clear();
                    let nc = interleave(ips, py, frames);
                    if frames.is_empty() {
                        frames.push(RawFrame::UNKNOWN);
                    }
                    let total = total_py.saturating_add(nc as u16).max(1);
                    self.native_record(addr as usize, size, thread, frames, total);
                }
                FREE => {
                    self.native_forget(words[at + 1] as usize);
                    at += 2;
                }
                CARVE => {
                    let old = words[at + 1] as usize;
                    let pieces = &words[at + 2..at + 2 + 2 * npy];
                    at += 2 + 2 * npy;
                    self.native_carve(old, pieces);
                }
                _ => break,
            }
        }
    }

    fn native_record(
        &mut self,
        addr: usize,
        size: u64,
        thread: u64,
        frames: &[RawFrame],
        total: u16,
    ) {
        let hash = frames.iter().fold(0x5bd1_e995, |h, f| {
            mix(mix(h, f.code as u64), f.offset as u64)
        });
        let thread = if self.by_thread { thread } else { 0 };
        let owner = crate::domains::owner_key(thread, NATIVE_DOMAIN);
        let check = crate::intern::check_hash(frames);
        let (tb, new) = self.interner.intern(frames, total, owner, hash, check);
        if new {
            self.on_new_traceback(tb);
        }
        let old = RAW
            .lock()
            .as_mut()
            .and_then(|r| r.domains.insert(NATIVE_DOMAIN, addr, size, tb));
        if let Some((s, t)) = old {
            self.stats.free(t, s);
        }
        self.stats.alloc(tb, size);
    }

    fn native_forget(&mut self, addr: usize) {
        let old = RAW
            .lock()
            .as_mut()
            .and_then(|r| r.domains.remove(NATIVE_DOMAIN, addr));
        if let Some((s, tb)) = old {
            self.stats.free(tb, s);
        }
    }

    fn native_carve(&mut self, old: usize, pieces: &[u64]) {
        let mut raw = RAW.lock();
        let Some(r) = raw.as_mut() else {
            return;
        };
        let Some((size, tb)) = r.domains.remove(NATIVE_DOMAIN, old) else {
            return;
        };
        let mut left = 0u64;
        for p in pieces.chunks_exact(2) {
            r.domains.insert(NATIVE_DOMAIN, p[0] as usize, p[1], tb);
            left += p[1];
        }
        drop(raw);
        self.stats
            .shrink(tb, size.saturating_sub(left), pieces.len() / 2);
    }
}

#[cfg(test)]
mod tests {
    use super::{header, interleave, unpack, ALLOC, CARVE, EVAL_MARK, JOURNAL, SEG_SHIFT};
    use crate::stack::RawFrame;

    /// C frames, then each interpreter invocation's Python frames where it was on the C
    /// stack; Python frames past the last C frame walked go at the end.
    #[test]
    fn native_and_python_frames_interleave_in_call_order() {
        let eval = |ip: u64| ip | EVAL_MARK as u64;
        let py = |code: u64, seg: u64| [code | seg << SEG_SHIFT, code + 1];
        // malloc <- ext_fn <- [eval: f, g] <- call_back <- [eval: h] <- [eval: i, j]
        let ips = [0x10, 0x20, eval(0x30), 0x40, eval(0x50), eval(0x60)];
        let frames: Vec<u64> = [py(0x100, 0), py(0x200, 0), py(0x300, 1), py(0x400, 2)]
            .concat()
            .into_iter()
            .chain(py(0x500, 3))
            .collect();
        let mut out = Vec::new();
        assert_eq!(interleave(&ips, &frames, &mut out), 3);
        let python = |code: usize| RawFrame {
            code: code as *mut std::ffi::c_void,
            offset: code as isize + 1,
        };
        let expected = [
            RawFrame::native(0x10),
            RawFrame::native(0x20),
            python(0x100),
            python(0x200),
            RawFrame::native(0x40),
            python(0x300),
            python(0x400),
            // Beyond the walk (its budget stopped at the third invocation).
            python(0x500),
        ];
        assert_eq!(out, expected);
    }

    /// Partial unmaps carve the traced mappings they overlap, and only those.
    #[test]
    fn munmap_carves_mappings() {
        let site = super::Site {
            thread: 1,
            py: &[],
            segs: &[],
            total_py: 0,
            native: &[0x1234],
        };
        let page = 4096;
        super::open();
        super::alloc(0x10_0000, 16 * page, &site, true);
        super::alloc(0x20_0000, 4 * page, &site, true);
        super::alloc(0x30_0000, 100, &site, false);
        // A hole of 4 pages, 4 pages in; then the first page of the second mapping.
        super::unmap(0x10_0000 + 4 * page, 4 * page, page);
        super::unmap(0x20_0000, 1, page);
        // The tail of nothing traced.
        super::unmap(0x40_0000, page, page);
        let maps: Vec<(usize, usize)> = JOURNAL
            .lock()
            .as_ref()
            .map(|j| j.maps.iter().map(|(&a, &b)| (a, b)).collect())
            .unwrap_or_default();
        assert_eq!(
            maps,
            vec![
                (0x10_0000, 4 * page),
                (0x10_0000 + 8 * page, 8 * page),
                (0x20_0000 + page, 3 * page),
            ]
        );
        assert!(super::holds(0x30_0000));
        assert!(super::holds(0x10_0000 + 8 * page));
        assert!(!super::holds(0x20_0000));
        super::free(0x30_0000);
        assert!(!super::holds(0x30_0000));
        super::close();
        assert!(!super::holds(0x10_0000));
    }

    #[test]
    fn headers_round_trip() {
        assert_eq!(unpack(header(ALLOC, 3, 17, 900)), (ALLOC, 3, 17, 900));
        assert_eq!(unpack(header(CARVE, 2, 0, 0)), (CARVE, 2, 0, 0));
        assert_eq!(
            unpack(header(ALLOC, 0xffff, 0xffff, u16::MAX)),
            (ALLOC, 0xffff, 0xffff, u16::MAX)
        );
    }
}
