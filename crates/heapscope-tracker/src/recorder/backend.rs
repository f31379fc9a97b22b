//! The tracer entry points the recorder uses.

pub(super) use crate::{
    drain_profile, reset_drain, set_thread_ignored, start, stop, traced_memory,
};
