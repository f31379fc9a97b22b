//! Bindings of the report renderers: HTML and exports of a `Profile`.

use std::sync::Arc;

use heapscope_report::labels::parse_view;
use heapscope_report::{collapsed, fixture, html, pprof, speedscope, ReportError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::from_report;
use crate::profile::PyProfile;

/// The self-contained HTML report of a profile; `view` ("peak", "end", "total") is shown first.
#[pyfunction]
#[pyo3(signature = (profile, view = "peak"))]
fn render_html(py: Python<'_>, profile: &PyProfile, view: &str) -> PyResult<String> {
    let view = parse_view(view).map_err(from_report)?;
    let inner = Arc::clone(&profile.inner);
    py.detach(move || html::render(&inner, view))
        .map_err(from_report)
}

/// A profile exported as "pprof" (gzipped protobuf), "speedscope" (JSON) or "collapsed" (text).
#[pyfunction]
#[pyo3(signature = (profile, format, view = "peak"))]
fn export<'py>(
    py: Python<'py>,
    profile: &PyProfile,
    format: &str,
    view: &str,
) -> PyResult<Bound<'py, PyBytes>> {
    let view = parse_view(view).map_err(from_report)?;
    let inner = Arc::clone(&profile.inner);
    let bytes = match format {
        "pprof" => py
            .detach(move || pprof::render(&inner, view))
            .map_err(from_report)?,
        "speedscope" => py
            .detach(move || speedscope::render(&inner, view))
            .map_err(from_report)?,
        "collapsed" => py
            .detach(move || collapsed::render(&inner, view))
            .into_bytes(),
        other => return Err(from_report(ReportError::UnknownFormat(other.to_owned()))),
    };
    Ok(PyBytes::new(py, &bytes))
}

/// Test only: a profile from its JSON form (see `heapscope_report::fixture`).
#[pyfunction]
fn _profile_from_json(text: &str) -> PyResult<PyProfile> {
    Ok(PyProfile {
        inner: Arc::new(fixture::profile_from_json(text).map_err(from_report)?),
    })
}

/// Test only: a deterministic synthetic profile with `n_stacks` distinct stacks.
#[pyfunction]
#[pyo3(signature = (n_stacks, seed = 0))]
fn _synthetic_profile(n_stacks: usize, seed: u64) -> PyProfile {
    PyProfile {
        inner: Arc::new(fixture::synthetic(n_stacks, seed)),
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(render_html, m)?)?;
    m.add_function(wrap_pyfunction!(export, m)?)?;
    m.add_function(wrap_pyfunction!(_profile_from_json, m)?)?;
    m.add_function(wrap_pyfunction!(_synthetic_profile, m)?)?;
    Ok(())
}
