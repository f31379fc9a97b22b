//! Stacks given as a frame tree (capture format version 2, and the tracer's drains): each
//! node is a frame under its parent, each stack its innermost node.
//!
//! Nodes are mapped to canonical nodes, one per distinct (parent, frame), so two stacks with
//! the same frames end at the same canonical node (the tracer writes a stack again after
//! forgetting it, and tracebacks of one line resolve alike): they merge by that node, without
//! hashing or comparing frame lists, and only a new stack's frames are expanded.

use hashbrown::HashMap;
use heapscope_format::capture::CorruptKind;

use crate::frame::FrameId;
use crate::profile::{Stack, StackId};

/// Nodes numbered from 1 in the order given, and the profile stacks made of them.
#[derive(Default)]
pub(crate) struct StackTree {
    /// Node `i + 1` at `i`: its canonical node.
    nodes: Vec<u32>,
    /// Canonical node `i + 1` at `i`: (canonical parent or 0, frame).
    canon: Vec<(u32, FrameId)>,
    canon_index: HashMap<(u32, FrameId), u32>,
    /// Profile stacks by canonical innermost node, thread and domain.
    by_leaf: HashMap<(u32, u32, u32), StackId>,
    /// Frames walked so far to expand stacks.
    frames_walked: u64,
}

impl StackTree {
    /// The id the next node gets.
    pub(crate) fn next_node(&self) -> u32 {
        self.nodes.len() as u32 + 1
    }

    /// Node [`StackTree::next_node`]: `frame` under `parent` (0 for an outermost frame, else a
    /// node given before, so every path ends).
    pub(crate) fn add_node(&mut self, parent: u32, frame: FrameId) -> Result<(), CorruptKind> {
        let parent = match parent {
            0 => 0,
            p => *self
                .nodes
                .get(p as usize - 1)
                .ok_or(CorruptKind::UndefinedReference("node"))?,
        };
        let next = self.canon.len() as u32 + 1;
        let canon = *self.canon_index.entry((parent, frame)).or_insert(next);
        if canon == next {
            self.canon.push((parent, frame));
        }
        self.nodes.push(canon);
        Ok(())
    }

    /// The profile stack ending at node `leaf` with this thread and domain, pushed onto
    /// `stacks` if none is there yet. Expanding stacks may walk at most `budget` frames in all
    /// (a small hostile file must not expand into unbounded work and memory).
    pub(crate) fn stack(
        &mut self,
        leaf: u32,
        thread: u32,
        domain: u32,
        stacks: &mut Vec<Stack>,
        budget: u64,
    ) -> Result<StackId, CorruptKind> {
        let leaf = leaf
            .checked_sub(1)
            .and_then(|i| self.nodes.get(i as usize))
            .copied()
            .ok_or(CorruptKind::UndefinedReference("node"))?;
        if let Some(&stack) = self.by_leaf.get(&(leaf, thread, domain)) {
            return Ok(stack);
        }
        let mut frames = Vec::new();
        let mut node = leaf;
        while node != 0 {
            self.frames_walked += 1;
            if self.frames_walked > budget {
                return Err(CorruptKind::ValueOutOfRange);
            }
            let &(parent, frame) = self
                .canon
                .get(node as usize - 1)
                .ok_or(CorruptKind::UndefinedReference("node"))?;
            frames.push(frame);
            node = parent;
        }
        let stack = stacks.len() as StackId;
        stacks.push(Stack {
            frames,
            thread,
            domain,
            process: 0,
        });
        self.by_leaf.insert((leaf, thread, domain), stack);
        Ok(stack)
    }
}
