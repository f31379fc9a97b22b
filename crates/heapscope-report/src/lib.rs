//! Renderers over `heapscope_core::profile::Profile`: text tables, JSON, HTML, pprof,
//! speedscope, collapsed stacks.
#![forbid(unsafe_code)]

/// Errors raised while rendering a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Writing the output failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub mod diff;
pub mod group;
pub mod json;
pub mod text;
