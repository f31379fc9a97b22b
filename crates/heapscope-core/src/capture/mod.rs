//! Capture files on the engine's side: [`Recorder`] turns what the tracer drains
//! ([`crate::delta::ProfileDelta`]) and timeline samples into capture records, and [`replay`]
//! reads a capture back into a [`crate::profile::Profile`].
//!
//! The tracer aggregates per stack in the process, so a capture grows with the number of
//! distinct stacks and with time, never with the number of allocations.

mod recorder;
mod replay;
mod tail;
mod tree;

pub use recorder::Recorder;
pub use replay::{replay, replay_file};
pub use tail::CaptureTail;
pub use tree::{
    children_dir, merge, parse_untraced_note, replay_tree, CHILDREN_DIR_SUFFIX, STREAM_SUFFIX,
    UNTRACED_SUFFIX,
};
