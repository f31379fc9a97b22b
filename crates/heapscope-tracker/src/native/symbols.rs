//! Names of native frames, looked up when a traceback is read (never in the hooks): the
//! object holding the address comes from the loader (`dladdr1`: its path and load bias), the
//! function, file and line from the object's symbol table and DWARF (`heapscope-symbols`), and
//! the nearest dynamic symbol (`dladdr`) where the object cannot be read.

use std::ffi::{c_int, c_void, CStr};
use std::sync::Arc;

use heapscope_symbols::Symbolizer;

/// `RTLD_DL_LINKMAP` of `dladdr1`: return the object's `struct link_map *`.
const RTLD_DL_LINKMAP: c_int = 2;

#[repr(C)]
struct LinkMap {
    addr: usize,
    name: *const libc::c_char,
}

/// A resolved native frame: (file or object path, function, line).
pub struct Described {
    pub file: Arc<str>,
    pub function: Arc<str>,
    pub line: u32,
}

/// What the native frame at return address `ip` resolves to.
///
/// The call instruction is just before a return address, so the address looked up is
/// `ip - 1` (a call at the very end of a function would otherwise name the next one).
pub fn describe(symbols: &mut Symbolizer, ip: usize) -> Described {
    let at = ip.saturating_sub(1);
    let mut info = libc::Dl_info {
        dli_fname: std::ptr::null(),
        dli_fbase: std::ptr::null_mut(),
        dli_sname: std::ptr::null(),
        dli_saddr: std::ptr::null_mut(),
    };
    let mut map: *const LinkMap = std::ptr::null();
    // SAFETY: a query about an address; `info` and `map` are valid out-parameters.
    let ok = unsafe {
        libc::dladdr1(
            at as *const c_void,
            &raw mut info,
            (&raw mut map).cast::<*mut c_void>(),
            RTLD_DL_LINKMAP,
        )
    } != 0;
    if !ok || map.is_null() {
        return Described {
            file: Arc::from("<native>"),
            function: Arc::from(format!("{ip:#x}")),
            line: 0,
        };
    }
    let text = |p: *const libc::c_char| -> Option<String> {
        // SAFETY: the loader's strings are NUL-terminated and live as long as the object.
        (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    };
    // SAFETY: `map` is the loader's link map of a loaded object.
    let (bias, name) = unsafe { ((*map).addr, text((*map).name)) };
    let object = match name.filter(|n| !n.is_empty()) {
        Some(n) => n,
        // The main program's link map has no name.
        None => std::fs::read_link("/proc/self/exe").map_or_else(
            |_| text(info.dli_fname).unwrap_or_else(|| "<native>".into()),
            |p| p.display().to_string(),
        ),
    };
    let found = symbols.lookup(&object, at.wrapping_sub(bias) as u64);
    // The object's own tables name the address only if it lies inside a symbol
    // (`heapscope-symbols`); the loader's nearest dynamic symbol is the fallback for an object
    // that cannot be read, under the same condition. Else: the object and the offset.
    let function = found
        .as_ref()
        .and_then(|s| s.function.clone())
        .or_else(|| text(info.dli_sname).filter(|_| inside_dynamic_symbol(at)))
        .unwrap_or_else(|| {
            let base = object.rsplit('/').next().unwrap_or(&object);
            format!("{base}+{:#x}", at.wrapping_sub(bias))
        });
    let (file, line) = match found {
        Some(heapscope_symbols::Symbol {
            file: Some(file),
            line,
            ..
        }) => (file, line),
        _ => (object, 0),
    };
    Described {
        file: Arc::from(file),
        function: Arc::from(function),
        line,
    }
}

/// True if `at` lies within the size of the nearest dynamic symbol `dladdr` finds for it (a
/// size of 0, from hand-written assembly or some linkers' aliases, says nothing: trusted).
fn inside_dynamic_symbol(at: usize) -> bool {
    super::elf::dynamic_symbol(at).is_some_and(|(start, size)| size == 0 || at < start + size)
}
