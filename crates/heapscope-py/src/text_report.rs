//! Text and JSON reports and the by-line diff over loaded profiles.

use heapscope_report::diff::render_diff_text;
use heapscope_report::group::{parse_view, GroupBy};
use heapscope_report::json::render_json;
use heapscope_report::text::{render_text, ReportOptions};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::errors::NativeError;
use crate::profile::PyProfile;

fn options(at: &str, by: &str, top: usize) -> PyResult<ReportOptions> {
    let view = parse_view(at).map_err(PyValueError::new_err)?;
    let by = by.parse::<GroupBy>().map_err(PyValueError::new_err)?;
    Ok(ReportOptions { view, by, top })
}

/// The top `top` rows of a profile as text or JSON.
#[pyfunction]
#[pyo3(signature = (profile, at = "peak", by = "line", top = 10, json = false))]
fn render_report(
    py: Python<'_>,
    profile: &PyProfile,
    at: &str,
    by: &str,
    top: usize,
    json: bool,
) -> PyResult<String> {
    let opts = options(at, by, top)?;
    let inner = &profile.inner;
    py.detach(|| {
        if json {
            return Ok(render_json(inner, &opts));
        }
        let mut out = Vec::new();
        render_text(inner, &opts, &mut out).map_err(NativeError::from)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    })
}

/// What grew or shrank, by line, between two profiles.
#[pyfunction]
#[pyo3(signature = (a, b, at = "peak", top = 20))]
fn render_diff(
    py: Python<'_>,
    a: &PyProfile,
    b: &PyProfile,
    at: &str,
    top: usize,
) -> PyResult<String> {
    let view = parse_view(at).map_err(PyValueError::new_err)?;
    let (a, b) = (&a.inner, &b.inner);
    py.detach(|| {
        let mut out = Vec::new();
        render_diff_text(a, b, view, top, &mut out).map_err(NativeError::from)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    })
}

/// True if the capture behind `profile` ended without its closing record.
#[pyfunction]
fn profile_truncated(profile: &PyProfile) -> bool {
    profile.inner.meta.truncated
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(render_report, m)?)?;
    m.add_function(wrap_pyfunction!(render_diff, m)?)?;
    m.add_function(wrap_pyfunction!(profile_truncated, m)?)?;
    Ok(())
}
