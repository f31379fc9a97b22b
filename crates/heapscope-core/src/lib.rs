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
pub mod native_frames;
pub mod profile;
pub mod snapshot;
pub mod snapshot_io;
mod stack_tree;
pub mod stats;

pub use error::CoreError;
pub use frame::{Frame, FrameId};

/// The domain of memory that native code took with the malloc family or `mmap` while
/// `--native` traced it (`Tracker(native=True)`); ASCII "natv". Reports name it `[native]`.
pub const NATIVE_DOMAIN: u32 = 0x6e61_7476;
