//! Conversion between tracemalloc's raw Python tuples and core snapshots.
//!
//! Raw trace: `(domain: int, size: int, frames: tuple, total_nframe: int)`, frames most recent
//! first as `(filename: str, lineno: int)`. Equal tracebacks come out as one tuple object.

use std::collections::HashMap;
use std::sync::Arc;

use heapscope_core::builder::SnapshotBuilder;
use heapscope_core::snapshot::Snapshot;
use heapscope_core::stats::KeyFrame;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};

/// Build a core snapshot from raw traces, or `None` when a value cannot be represented
/// natively (not a list of 4-tuples, a traceback without frames, a non-`str` or non-UTF-8 file
/// name, an int out of range):
/// the caller then keeps tracemalloc's pure-Python behaviour for that snapshot.
pub fn snapshot_from_raw(traces: &Bound<'_, PyAny>, traceback_limit: u32) -> Option<Snapshot> {
    let list = traces.cast_exact::<PyList>().ok()?;
    let mut builder = SnapshotBuilder::new(traceback_limit);
    // Tracebacks are shared tuple objects: convert each one once, keyed by identity.
    let mut seen: HashMap<(usize, u32), u32> = HashMap::new();
    let mut ids = Vec::new();
    for item in list.iter() {
        let trace = item.cast_exact::<PyTuple>().ok()?;
        if trace.len() != 4 {
            return None;
        }
        let domain: u32 = trace.get_borrowed_item(0).ok()?.extract().ok()?;
        let size: u64 = trace.get_borrowed_item(1).ok()?.extract().ok()?;
        let frames = trace.get_borrowed_item(2).ok()?;
        let total: u32 = trace.get_borrowed_item(3).ok()?.extract().ok()?;
        let key = (frames.as_ptr() as usize, total);
        let tb = if let Some(&tb) = seen.get(&key) {
            tb
        } else {
            let frames = frames.cast_exact::<PyTuple>().ok()?;
            // The stdlib fails on tracebacks without frames (IndexError); so does the fallback.
            if frames.is_empty() {
                return None;
            }
            ids.clear();
            for frame in frames.iter() {
                let frame = frame.cast_exact::<PyTuple>().ok()?;
                if frame.len() != 2 {
                    return None;
                }
                let name = frame.get_borrowed_item(0).ok()?;
                let name = name.cast_exact::<PyString>().ok()?;
                let name = name.to_str().ok()?;
                let lineno: u32 = frame.get_borrowed_item(1).ok()?.extract().ok()?;
                ids.push(builder.frame(name, lineno));
            }
            let tb = builder.traceback(&ids, total).ok()?;
            seen.insert(key, tb);
            tb
        };
        builder.trace(domain, size, tb).ok()?;
    }
    Some(builder.finish())
}

/// Python tuples for frames, created once per frame id.
struct FrameTuples<'py> {
    py: Python<'py>,
    cache: Vec<Option<Bound<'py, PyTuple>>>,
}

impl<'py> FrameTuples<'py> {
    fn get(&mut self, snapshot: &Snapshot, id: u32) -> PyResult<Bound<'py, PyTuple>> {
        let i = id as usize;
        if let Some(Some(t)) = self.cache.get(i) {
            return Ok(t.clone());
        }
        let frame = &snapshot.frames[i];
        let t = PyTuple::new(
            self.py,
            [
                PyString::new(self.py, &frame.filename).into_any(),
                frame.lineno.into_pyobject(self.py)?.into_any(),
            ],
        )?;
        self.cache[i] = Some(t.clone());
        Ok(t)
    }
}

/// The traces of `snapshot` as a list of raw tuples, in order.
pub fn raw_traces<'py>(py: Python<'py>, snapshot: &Snapshot) -> PyResult<Bound<'py, PyList>> {
    let mut frames = FrameTuples {
        py,
        cache: vec![None; snapshot.frames.len()],
    };
    let mut tbs: Vec<Option<Bound<'py, PyTuple>>> = vec![None; snapshot.tracebacks.len()];
    let out = PyList::empty(py);
    for trace in &snapshot.traces {
        let i = trace.traceback as usize;
        let tb = &snapshot.tracebacks[i];
        let tuple = if let Some(t) = &tbs[i] {
            t.clone()
        } else {
            let items = tb
                .frames
                .iter()
                .map(|&f| frames.get(snapshot, f))
                .collect::<PyResult<Vec<_>>>()?;
            let t = PyTuple::new(py, items)?;
            tbs[i] = Some(t.clone());
            t
        };
        out.append((trace.domain, trace.size, tuple, tb.total_nframe))?;
    }
    Ok(out)
}

/// A statistics key as a raw frames tuple, most recent first; file names are shared.
pub fn key_tuple<'py>(
    py: Python<'py>,
    key: &[KeyFrame],
    names: &mut HashMap<*const u8, Bound<'py, PyString>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let frames = key
        .iter()
        .map(|(name, lineno)| {
            let s = names
                .entry(Arc::as_ptr(name).cast::<u8>())
                .or_insert_with(|| PyString::new(py, name))
                .clone();
            PyTuple::new(py, [s.into_any(), lineno.into_pyobject(py)?.into_any()])
        })
        .collect::<PyResult<Vec<_>>>()?;
    PyTuple::new(py, frames)
}
