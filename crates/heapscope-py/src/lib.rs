//! `heapscope._native`: the `PyO3` binding. No business logic here: conversion, handles, errors.

use pyo3::prelude::*;

mod attrs;
mod capture;
mod errors;
mod live;
mod profile;
mod raw;
mod report;
mod snapshot;
mod text_report;
mod tracer;

/// The tracker's proof that the GIL is held, from a `Python` token.
fn gil(_py: Python<'_>) -> heapscope_tracker::Gil {
    // SAFETY: a `Python` token proves the GIL is held for its lifetime.
    unsafe { heapscope_tracker::Gil::assume() }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    profile::register(m)?;
    tracer::register(m)?;
    snapshot::register(m)?;
    capture::register(m)?;
    live::register(m)?;
    report::register(m)?;
    text_report::register(m)?;
    Ok(())
}
