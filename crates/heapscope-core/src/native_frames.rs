//! Native frames (`--native`) named from their shared object: the function, source file and
//! line at an address of the object, looked up in its symbol table and debug information
//! (`heapscope-symbols`). The traced process of `heapscope run` records only the object and
//! the address (its memory and time stay the program's); the reader of the capture, or the
//! in-process view of a measured block, names them here.

use std::sync::Arc;

use heapscope_symbols::{Symbol, Symbolizer};

use crate::frame::Frame;

/// What a native frame shows before (or without) a lookup: the object's file name and the
/// offset, the object's path as its file.
pub fn placeholder(object: &str, address: u64) -> Frame {
    let base = object.rsplit('/').next().unwrap_or(object);
    Frame {
        filename: Arc::from(object),
        function: Arc::from(format!("{base}+{address:#x}")),
        lineno: 0,
        native: true,
    }
}

/// The native frame at `address` of the object at `object` (an address of the object's own
/// file: the return address less one, less its load bias), if its tables name it: the
/// function, else the placeholder's name; the source file where debug information names it,
/// else the object.
pub fn symbolize(symbols: &mut Symbolizer, object: &str, address: u64) -> Option<Frame> {
    let found = symbols.lookup(object, address)?;
    Some(named(object, address, Some(found), None))
}

/// The native frame at `address` of `object` as the object's tables name it (`found`), the
/// function `fallback` where they name none, the placeholder's parts for what is still missing.
pub fn named(object: &str, address: u64, found: Option<Symbol>, fallback: Option<String>) -> Frame {
    let mut frame = placeholder(object, address);
    let (function, file, line) = match found {
        Some(s) => (s.function, s.file, s.line),
        None => (None, None, 0),
    };
    if let Some(function) = function.or(fallback) {
        frame.function = Arc::from(function);
    }
    if let Some(file) = file {
        frame.filename = Arc::from(file);
        frame.lineno = line;
    }
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_object_that_cannot_be_read_keeps_its_name_and_offset() {
        let mut symbols = Symbolizer::default();
        assert!(symbolize(&mut symbols, "/nonexistent/libgone.so", 0x1234).is_none());
        let frame = placeholder("/nonexistent/libgone.so", 0x1234);
        assert_eq!(&*frame.function, "libgone.so+0x1234");
        assert_eq!(&*frame.filename, "/nonexistent/libgone.so");
        assert!(frame.native);
    }
}
