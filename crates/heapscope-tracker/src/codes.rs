//! Code objects in interned frames, without keeping them alive.
//!
//! A captured frame names its code object by address. The tracer takes no reference to it (a
//! reference would keep alive code that the untraced program frees: module bodies, `exec`'d
//! code, templates compiled and dropped, and that memory would then be reported as the
//! program's). Instead heapscope wraps `PyCode_Type.tp_dealloc` while it traces: when a code
//! object that interned frames name dies, its file name, function name and the line of each
//! interned offset are resolved while it is still intact, and those nodes of the frame tree
//! are rewritten into tombstones (an odd "code" word that no live object can have, and the line). A new code
//! object later allocated at the same address therefore never matches the old frames.
//!
//! One mechanism on every supported version: 3.11 has no code watchers, and 3.12+ watchers are
//! a small shared pool of slots.

use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};

use hashbrown::HashMap;

use crate::intern::NodeId;
use crate::resolve::resolver;
use crate::stack::RawFrame;
use crate::state::state;

/// End of a list of nodes.
const NONE: NodeId = NodeId::MAX;

/// Which nodes of the interner's frame tree name each code object: a doubly linked list per
/// code threaded through two vectors parallel to the nodes (8 bytes per node), so that a node
/// the profiler's sweep frees leaves its list in O(1) (rebuilding every list after each sweep
/// was 5 % of `heapscope run`'s instructions on sympy: 11 M nodes re-added over 122 drains).
#[derive(Default)]
pub struct CodeFrames {
    /// Code address -> the last node that names it.
    heads: HashMap<usize, NodeId>,
    /// Node -> the previous node naming the same code (added before it), or `NONE`.
    next: Vec<NodeId>,
    /// Node -> the node naming the same code added after it, or `NONE` (the head).
    prev: Vec<NodeId>,
}

/// True for frames whose code object the lists follow.
fn followed(frame: RawFrame) -> bool {
    !(frame.code.is_null() || frame.is_dead() || frame.is_native())
}

impl CodeFrames {
    /// Note a new node of the frame tree.
    pub fn add(&mut self, node: NodeId, frame: RawFrame) {
        if self.next.len() <= node as usize {
            self.next.resize(node as usize + 1, NONE);
            self.prev.resize(node as usize + 1, NONE);
        }
        if !followed(frame) {
            return;
        }
        let head = self.heads.entry(frame.code as usize).or_insert(NONE);
        self.next[node as usize] = *head;
        self.prev[node as usize] = NONE;
        if *head != NONE {
            self.prev[*head as usize] = node;
        }
        *head = node;
    }

    /// A node was freed (its slot may be reused): it leaves its code's list. `frame` is the
    /// frame it had.
    pub fn remove(&mut self, node: NodeId, frame: RawFrame) {
        if !followed(frame) || node as usize >= self.next.len() {
            return;
        }
        let (before, after) = (self.next[node as usize], self.prev[node as usize]);
        self.next[node as usize] = NONE;
        self.prev[node as usize] = NONE;
        if after == NONE {
            let code = frame.code as usize;
            match self.heads.get_mut(&code) {
                // The head: the list now starts at the node before it.
                Some(head) if *head == node => {
                    if before == NONE {
                        self.heads.remove(&code);
                    } else {
                        *head = before;
                    }
                }
                // In no list (its code died and took it): nothing links to it.
                _ => return,
            }
        } else {
            self.next[after as usize] = before;
        }
        if before != NONE {
            self.prev[before as usize] = after;
        }
    }

    /// True if interned frames name this code object.
    #[inline]
    pub fn contains(&self, code: usize) -> bool {
        self.heads.contains_key(&code)
    }

    /// Forget a code object; returns the nodes that name it.
    pub fn take(&mut self, code: usize) -> Vec<NodeId> {
        let mut out = Vec::new();
        let mut node = self.heads.remove(&code).unwrap_or(NONE);
        while node != NONE {
            out.push(node);
            let before = self.next[node as usize];
            self.next[node as usize] = NONE;
            self.prev[node as usize] = NONE;
            node = before;
        }
        out
    }

    /// Forget everything.
    pub fn clear(&mut self) {
        self.heads.clear();
        self.next.clear();
        self.prev.clear();
    }

    /// Bytes of memory held.
    pub fn memory(&self) -> usize {
        self.heads.capacity() * (2 * size_of::<usize>() + 1)
            + (self.next.capacity() + self.prev.capacity()) * 4
    }
}

/// The `tp_dealloc` of `PyCode_Type` before ours (0: ours is not installed).
static ORIGINAL_DEALLOC: AtomicUsize = AtomicUsize::new(0);

type Dealloc = unsafe extern "C" fn(*mut pyo3_ffi::PyObject);

fn code_type() -> *mut pyo3_ffi::PyTypeObject {
    std::ptr::addr_of_mut!(pyo3_ffi::PyCode_Type)
}

/// Wrap `PyCode_Type.tp_dealloc` (no-op if already wrapped).
///
/// # Safety
/// The GIL is held.
pub unsafe fn install() {
    if ORIGINAL_DEALLOC.load(Ordering::Relaxed) != 0 {
        return;
    }
    let ty = code_type();
    // SAFETY: GIL held: nothing else reads or writes the slot meanwhile.
    let original = unsafe { (*ty).tp_dealloc };
    if let Some(f) = original {
        ORIGINAL_DEALLOC.store(f as usize, Ordering::Relaxed);
        // SAFETY: as above; the wrapper calls the original for every object.
        unsafe { (*ty).tp_dealloc = Some(code_dealloc) };
    }
}

/// Put back the original `tp_dealloc`, unless someone wrapped ours since (then ours stays, and
/// passes every object through once no frame names it).
///
/// # Safety
/// The GIL is held.
pub unsafe fn uninstall() {
    let original = ORIGINAL_DEALLOC.load(Ordering::Relaxed);
    if original == 0 {
        return;
    }
    let ty = code_type();
    // SAFETY: GIL held.
    let current = unsafe { (*ty).tp_dealloc };
    if current.map(|f| f as usize) == Some(code_dealloc as Dealloc as usize) {
        // SAFETY: GIL held; `original` was read from this slot by `install`.
        unsafe { (*ty).tp_dealloc = Some(std::mem::transmute::<usize, Dealloc>(original)) };
        ORIGINAL_DEALLOC.store(0, Ordering::Relaxed);
    }
}

unsafe extern "C" fn code_dealloc(obj: *mut pyo3_ffi::PyObject) {
    // SAFETY: deallocation runs with the GIL held, and no tracer code holds a reference to the
    // state while Python objects can die (see docs/architecture.md, "Re-entrancy").
    unsafe { bury(obj.cast()) };
    let original = ORIGINAL_DEALLOC.load(Ordering::Relaxed);
    if original != 0 {
        // SAFETY: the value was read from `PyCode_Type.tp_dealloc` by `install`.
        let f = unsafe { std::mem::transmute::<usize, Dealloc>(original) };
        // SAFETY: the interpreter asked for this object to be deallocated.
        unsafe { f(obj) };
    }
}

/// Resolve what the interned frames of a dying code object need and turn them into
/// tombstones.
///
/// # Safety
/// The GIL is held; `code` is a code object whose refcount reached zero but whose fields are
/// intact; no reference to the state or the resolver is alive.
unsafe fn bury(code: *mut c_void) {
    let (layout, offsets, nodes, suspended) = {
        // SAFETY: per the contract; the reference ends before the resolver runs.
        let Some(st) = (unsafe { state() }) else {
            return;
        };
        // Native events journaled since the last GIL holder may name this code object: intern
        // them while it is intact (`native/journal.rs`).
        st.apply_pending();
        if !st.codes.contains(code as usize) {
            // No interned frame names it (the profiler's sweep may have freed the last), but
            // the resolver may still cache its names and lines under an address that a new
            // code object can take.
            // SAFETY: GIL held, no other resolver reference alive (`st` is the state's).
            unsafe { resolver().forget(code) };
            return;
        }
        let nodes = st.codes.take(code as usize);
        let offsets: Vec<isize> = nodes
            .iter()
            .map(|&n| st.interner.node_frame(n).offset)
            .collect();
        let suspended = st.suspended;
        // Resolving names may allocate (a str's UTF-8 cache): not the program's memory.
        st.suspended = true;
        (st.layout, offsets, nodes, suspended)
    };
    // SAFETY: GIL held, no other resolver reference alive; `code` is intact.
    let tombstones = unsafe { resolver().bury(layout, code, &offsets) };
    // SAFETY: as above; the resolver reference has ended.
    if let Some(st) = unsafe { state() } {
        for (&node, &frame) in nodes.iter().zip(&tombstones) {
            st.interner.set_node_frame(node, frame);
        }
        st.interner.on_code_death();
        st.suspended = suspended;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeSet, HashMap as Model};

    fn frame(code: usize) -> RawFrame {
        RawFrame {
            code: (code * 16) as *mut c_void,
            offset: 2,
        }
    }

    proptest! {
        /// Adding, removing and taking nodes agrees with a plain map from code objects to sets
        /// of nodes, whatever the order (node slots are reused after removal, as the
        /// interner reuses them).
        #[test]
        fn lists_agree_with_a_map_of_sets(ops in prop::collection::vec((0u8..3, 0u32..24, 1usize..4), 1..200)) {
            let mut codes = CodeFrames::default();
            let mut model: Model<usize, BTreeSet<NodeId>> = Model::new();
            // The frame each live node has.
            let mut live: Model<NodeId, usize> = Model::new();
            for (op, node, code) in ops {
                match op {
                    0 if !live.contains_key(&node) => {
                        codes.add(node, frame(code));
                        model.entry(code).or_default().insert(node);
                        live.insert(node, code);
                    }
                    1 => {
                        if let Some(code) = live.remove(&node) {
                            codes.remove(node, frame(code));
                            if let Some(set) = model.get_mut(&code) {
                                set.remove(&node);
                            }
                        }
                    }
                    2 => {
                        let got: BTreeSet<NodeId> = codes.take(code * 16).into_iter().collect();
                        let want = model.remove(&code).unwrap_or_default();
                        prop_assert_eq!(&got, &want);
                        // Their nodes stay live but are in no list now (tombstones, in the
                        // tracer): removing one later must leave the other lists alone.
                        for n in got {
                            live.insert(n, usize::MAX / 32);
                        }
                    }
                    _ => {}
                }
                for (&code, set) in &model {
                    prop_assert_eq!(codes.contains(code * 16), !set.is_empty());
                }
            }
        }
    }
}
