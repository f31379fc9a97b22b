//! The tracer entry points the recorder uses.

pub(super) use crate::{
    drain_profile, drain_up_to, reset_drain, set_thread_ignored, start, stop, traced_memory,
};
