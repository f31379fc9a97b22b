//! The engine's error type.

/// Errors raised by the engine.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// A caller passed a value outside what the operation accepts (maps to Python `ValueError`).
    #[error("{0}")]
    InvalidArgument(String),
    /// Reading or writing a heapscope file failed.
    #[error(transparent)]
    Format(#[from] heapscope_format::FormatError),
}
