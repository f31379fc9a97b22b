//! `heapscope._native.NativeSnapshot`: a handle on a core snapshot for `heapscope.tracemalloc`.
//! Conversion only; the work is in `heapscope_core` and `heapscope_format`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use heapscope_core::filter::{filter_traces, DomainFilter, Filter, TraceFilter};
use heapscope_core::snapshot::Snapshot;
use heapscope_core::snapshot_io;
use heapscope_core::stats::{self, KeyType};
use heapscope_format::snapshot_file;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use crate::attrs::{from_attr, to_attr};
use crate::errors::{core_err, format_err};
use crate::raw;

use crate::gil;
use heapscope_tracker::untraced;

/// Live traces with their interned frames and tracebacks (immutable, shareable).
#[pyclass(name = "NativeSnapshot", module = "heapscope._native", frozen)]
pub struct NativeSnapshot {
    pub inner: Arc<Snapshot>,
}

impl NativeSnapshot {
    /// Wrap a snapshot built by the tracer (`_take_snapshot`).
    pub fn from_core(snap: Snapshot) -> NativeSnapshot {
        NativeSnapshot {
            inner: Arc::new(snap),
        }
    }
}

/// A filter spec from Python: `(inclusive, pattern | None, lineno | None, all_frames, domain |
/// None)`; a `None` pattern means a `DomainFilter` on `domain`.
type FilterSpec = (bool, Option<String>, Option<i64>, bool, Option<i64>);

fn to_filter(spec: FilterSpec) -> Option<TraceFilter> {
    let (inclusive, pattern, lineno, all_frames, domain) = spec;
    Some(match pattern {
        Some(p) => TraceFilter::File(Filter::new(inclusive, &p, lineno, all_frames, domain)),
        None => TraceFilter::Domain(DomainFilter {
            inclusive,
            domain: domain?,
        }),
    })
}

#[pymethods]
impl NativeSnapshot {
    /// Build from a list of raw trace tuples; `None` if they cannot be represented natively.
    #[staticmethod]
    fn from_raw(traces: &Bound<'_, PyAny>, traceback_limit: u32) -> Option<Self> {
        raw::snapshot_from_raw(traces, traceback_limit).map(Self::from_core)
    }

    #[getter]
    fn traceback_limit(&self) -> u32 {
        self.inner.traceback_limit
    }

    fn __len__(&self) -> usize {
        self.inner.traces.len()
    }

    /// The traces as raw tuples `(domain, size, frames, total_nframe)` (untraced, as the
    /// stdlib's snapshot data).
    fn raw_traces<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        untraced(gil(py), || raw::raw_traces(py, &self.inner))
    }

    /// Sorted `(frames, size, count)` groups.
    fn statistics<'py>(
        &self,
        py: Python<'py>,
        key_type: &str,
        cumulative: bool,
    ) -> PyResult<Bound<'py, PyList>> {
        let key = KeyType::parse(key_type).map_err(core_err)?;
        let groups = py.detach(|| stats::statistics(&self.inner, key, cumulative));
        let groups = groups.map_err(core_err)?;
        // The frame tuples stand for the stdlib's snapshot data, made untraced by
        // `_get_traces`; the Statistic and Traceback objects made from them are traced.
        untraced(gil(py), || {
            let mut names: HashMap<*const u8, Bound<'py, PyString>> = HashMap::new();
            let out = PyList::empty(py);
            for g in groups {
                out.append((raw::key_tuple(py, &g.key, &mut names)?, g.size, g.count))?;
            }
            Ok(out)
        })
    }

    /// Sorted `(frames, size, size_diff, count, count_diff)` differences with `old`.
    fn compare_to<'py>(
        &self,
        py: Python<'py>,
        old: &NativeSnapshot,
        key_type: &str,
        cumulative: bool,
    ) -> PyResult<Bound<'py, PyList>> {
        let key = KeyType::parse(key_type).map_err(core_err)?;
        let diffs = py.detach(|| stats::compare_to(&self.inner, &old.inner, key, cumulative));
        let diffs = diffs.map_err(core_err)?;
        untraced(gil(py), || {
            let mut names: HashMap<*const u8, Bound<'py, PyString>> = HashMap::new();
            let out = PyList::empty(py);
            for d in diffs {
                let key = raw::key_tuple(py, &d.key, &mut names)?;
                out.append((key, d.size, d.size_diff, d.count, d.count_diff))?;
            }
            Ok(out)
        })
    }

    /// A new snapshot with the traces the filters keep; `None` if a spec is not representable.
    fn filter_traces(&self, py: Python<'_>, filters: &Bound<'_, PyList>) -> Option<Self> {
        let specs: Vec<FilterSpec> = filters.extract().ok()?;
        let filters = specs
            .into_iter()
            .map(to_filter)
            .collect::<Option<Vec<_>>>()?;
        Some(Self::from_core(
            py.detach(|| filter_traces(&self.inner, &filters)),
        ))
    }

    // PyO3 extracts arguments as owned values.
    #[allow(clippy::needless_pass_by_value)]
    /// Write the snapshot with `traceback_limit` and the plain-data attributes `attrs`.
    fn dump(
        &self,
        py: Python<'_>,
        path: PathBuf,
        traceback_limit: u32,
        attrs: &Bound<'_, PyDict>,
    ) -> PyResult<()> {
        let mut plain = Vec::with_capacity(attrs.len());
        for (name, value) in attrs.iter() {
            let name: String = name.extract()?;
            let value = to_attr(&value, &name, &name, 0)?;
            plain.push((name, value));
        }
        let mut file = snapshot_io::to_file(&self.inner, plain);
        file.traceback_limit = traceback_limit;
        py.detach(|| snapshot_file::write_path(&path, &file))
            .map_err(format_err)
    }

    /// Read a snapshot file: `(snapshot, attrs)`.
    #[staticmethod]
    #[allow(clippy::needless_pass_by_value)]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<(Self, Bound<'_, PyDict>)> {
        let file = py
            .detach(|| snapshot_file::read_path(&path))
            .map_err(format_err)?;
        let (snapshot, attrs) = snapshot_io::from_file(file);
        let dict = PyDict::new(py);
        for (name, value) in &attrs {
            dict.set_item(name, from_attr(py, value)?)?;
        }
        Ok((Self::from_core(snapshot), dict))
    }

    fn __repr__(&self) -> String {
        format!("<NativeSnapshot traces={}>", self.inner.traces.len())
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeSnapshot>()?;
    Ok(())
}
