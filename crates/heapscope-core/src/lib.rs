//! The engine shared by the in-process tracer and the capture-file reports: frames and
//! tracebacks, snapshots of live traces and their statistics, and profiles replayed from
//! capture files. Safe code only, no Python: what `heapscope.tracemalloc` says and what a
//! report says come from the same code.
#![forbid(unsafe_code)]

pub mod builder;
pub mod capture;
pub mod delta;
pub mod error;
pub mod filter;
pub mod fnmatch;
pub mod frame;
pub mod profile;
pub mod snapshot;
pub mod snapshot_io;
pub mod stats;

pub use error::CoreError;
pub use frame::{Frame, FrameId};
