//! Following a capture while it is written (the `--live` UI). Logic in
//! `heapscope_core::capture::CaptureTail`; this is conversion only.

use std::path::PathBuf;
use std::sync::Arc;

use heapscope_core::capture::CaptureTail;
use pyo3::prelude::*;

use crate::errors::NativeError;
use crate::profile::PyProfile;

/// A capture file being followed (`heapscope._native.LiveCapture`).
#[pyclass(name = "LiveCapture", module = "heapscope._native")]
pub struct PyLiveCapture {
    inner: CaptureTail,
}

#[pymethods]
impl PyLiveCapture {
    #[new]
    #[allow(clippy::needless_pass_by_value)]
    fn new(path: PathBuf) -> Self {
        PyLiveCapture {
            inner: CaptureTail::new(&path),
        }
    }

    /// Reads the records appended since the last call; returns how many.
    fn poll(&mut self, py: Python<'_>) -> Result<usize, NativeError> {
        let inner = &mut self.inner;
        Ok(py.detach(|| inner.poll())?)
    }

    /// The profile so far (its "end" view is the memory held now); None before the header.
    fn profile(&self, py: Python<'_>) -> Option<PyProfile> {
        let inner = &self.inner;
        py.detach(|| inner.profile())
            .map(|p| PyProfile { inner: Arc::new(p) })
    }

    /// The last `n` timeline samples as (t_ms, traced_bytes, rss_bytes).
    fn recent(&self, n: usize) -> Vec<(u64, u64, u64)> {
        self.inner
            .recent_samples(n)
            .iter()
            .map(|s| (s.t_ms, s.traced_bytes, s.rss_bytes))
            .collect()
    }

    /// True once the closing record was read.
    #[getter]
    fn ended(&self) -> bool {
        self.inner.ended()
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyLiveCapture>()?;
    Ok(())
}
