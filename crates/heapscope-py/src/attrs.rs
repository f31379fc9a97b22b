//! Extra snapshot attributes: Python plain data to and from the file's attribute values.

use heapscope_format::snapshot_file::{AttrValue, MAX_ATTR_DEPTH};
use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString};

const PLAIN: &str = "None, bool, int, float, str, list, or dict with str keys";

/// Convert attribute `name` (`where_` locates nested values) to plain data, or raise
/// `TypeError` naming it.
pub fn to_attr(
    value: &Bound<'_, PyAny>,
    name: &str,
    where_: &str,
    depth: usize,
) -> PyResult<AttrValue> {
    if depth > MAX_ATTR_DEPTH {
        return Err(PyValueError::new_err(format!(
            "cannot dump snapshot attribute '{name}': {where_} nests deeper than {MAX_ATTR_DEPTH} levels"
        )));
    }
    if value.is_none() {
        return Ok(AttrValue::None);
    }
    if let Ok(b) = value.cast_exact::<PyBool>() {
        return Ok(AttrValue::Bool(b.is_true()));
    }
    if value.is_exact_instance_of::<PyInt>() {
        return value.extract::<i64>().map(AttrValue::Int).map_err(|_| {
            PyOverflowError::new_err(format!(
                "cannot dump snapshot attribute '{name}': the int at {where_} does not fit in 64 bits"
            ))
        });
    }
    if let Ok(f) = value.cast_exact::<PyFloat>() {
        return Ok(AttrValue::Float(f.value()));
    }
    if let Ok(s) = value.cast_exact::<PyString>() {
        return Ok(AttrValue::Str(s.to_str()?.to_owned()));
    }
    if let Ok(list) = value.cast_exact::<PyList>() {
        let mut items = Vec::with_capacity(list.len());
        for (i, item) in list.iter().enumerate() {
            items.push(to_attr(&item, name, &format!("{where_}[{i}]"), depth + 1)?);
        }
        return Ok(AttrValue::List(items));
    }
    if let Ok(dict) = value.cast_exact::<PyDict>() {
        let mut items = Vec::with_capacity(dict.len());
        for (k, v) in dict.iter() {
            let Ok(key) = k.cast_exact::<PyString>() else {
                return Err(PyTypeError::new_err(format!(
                    "cannot dump snapshot attribute '{name}': the dict at {where_} has a key of \
                     type '{}'; only str keys are plain data",
                    k.get_type().name()?
                )));
            };
            let key = key.to_str()?.to_owned();
            let nested = format!("{where_}[{key:?}]");
            items.push((key, to_attr(&v, name, &nested, depth + 1)?));
        }
        return Ok(AttrValue::Dict(items));
    }
    Err(PyTypeError::new_err(format!(
        "cannot dump snapshot attribute '{name}': {where_} is of type '{}', which is not plain \
         data ({PLAIN})",
        value.get_type().name()?
    )))
}

/// The Python value of an attribute read from a file.
pub fn from_attr<'py>(py: Python<'py>, value: &AttrValue) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        AttrValue::None => py.None().into_bound(py),
        AttrValue::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        AttrValue::Int(i) => i.into_pyobject(py)?.into_any(),
        AttrValue::Float(f) => PyFloat::new(py, *f).into_any(),
        AttrValue::Str(s) => PyString::new(py, s).into_any(),
        AttrValue::List(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(from_attr(py, item)?)?;
            }
            list.into_any()
        }
        AttrValue::Dict(items) => {
            let dict = PyDict::new(py);
            for (k, v) in items {
                dict.set_item(k, from_attr(py, v)?)?;
            }
            dict.into_any()
        }
    })
}
