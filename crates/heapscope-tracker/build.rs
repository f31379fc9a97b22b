//! Exposes PyO3's interpreter cfgs (`Py_3_13`, `Py_GIL_DISABLED`, ...) to this crate: the
//! symbols the tracer links differ between the versions a wheel is built for
//! (`src/stack/mod.rs`).
fn main() {
    pyo3_build_config::print_expected_cfgs();
    pyo3_build_config::use_pyo3_cfgs();
}
