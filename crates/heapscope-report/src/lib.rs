//! Renderers over `heapscope_core::profile::Profile`: text tables, JSON, HTML, pprof,
//! speedscope, collapsed stacks.
#![forbid(unsafe_code)]

pub mod collapsed;
pub mod fixture;
pub mod flame;
pub mod html;
mod html_data;
pub mod labels;
pub mod pprof;
mod pprof_proto;
pub mod processes;
pub mod speedscope;

/// Errors raised while rendering a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Writing the output failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A view name other than `peak`, `end` or `total`.
    #[error("unknown view {0:?}: expected peak, end or total")]
    UnknownView(String),
    /// An export format other than `pprof`, `speedscope` or `collapsed`.
    #[error("unknown export format {0:?}: expected pprof, speedscope or collapsed")]
    UnknownFormat(String),
    /// Serializing report data, or reading a test profile from JSON, failed.
    #[error("profile JSON: {0}")]
    Json(#[from] serde_json::Error),
}

pub mod diff;
pub mod group;
pub mod json;
pub mod text;
