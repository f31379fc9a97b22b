//! Native frames: the object holding a return address and the address in it come from the
//! loader (`dladdr1`: its path and load bias). `heapscope run` writes just those (the capture's
//! reader names the frame, so the traced process never reads debug information); the
//! in-process views (snapshots of `heapscope.tracemalloc`) name it here, from the object's
//! symbol table and DWARF (`heapscope_core::native_frames`), and from the nearest dynamic
//! symbol (`dladdr`) where the object cannot be read.

use std::ffi::{c_int, c_void, CStr};

use heapscope_core::native_frames::named;
use heapscope_core::Frame;
use heapscope_symbols::Symbolizer;

/// `RTLD_DL_LINKMAP` of `dladdr1`: return the object's `struct link_map *`.
const RTLD_DL_LINKMAP: c_int = 2;

#[repr(C)]
struct LinkMap {
    addr: usize,
    name: *const libc::c_char,
}

/// Where a native frame's code is.
pub struct Located {
    /// The shared object's path (the main program's for its own code).
    pub object: String,
    /// The call's address in the object's own virtual addresses.
    pub address: u64,
    /// The loader's nearest dynamic symbol, if the address lies inside it.
    dynamic_symbol: Option<String>,
}

/// The object and address of the native frame at return address `ip`, or `None` if no
/// loaded object holds it.
///
/// The call instruction is just before a return address, so the address looked up is
/// `ip - 1` (a call at the very end of a function would otherwise name the next one).
pub fn locate(ip: usize) -> Option<Located> {
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
        return None;
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
    Some(Located {
        object,
        address: at.wrapping_sub(bias) as u64,
        dynamic_symbol: text(info.dli_sname).filter(|_| inside_dynamic_symbol(at)),
    })
}

/// A native frame no loaded object holds: its address.
pub fn unknown(ip: usize) -> Frame {
    Frame {
        filename: "<native>".into(),
        function: format!("{ip:#x}").into(),
        lineno: 0,
        native: true,
    }
}

/// What the native frame at return address `ip` resolves to, named now.
pub fn describe(symbols: &mut Symbolizer, ip: usize) -> Frame {
    let Some(at) = locate(ip) else {
        return unknown(ip);
    };
    // The object's own tables name the address only if it lies inside a symbol
    // (`heapscope-symbols`); the loader's nearest dynamic symbol is the fallback for an object
    // that cannot be read, under the same condition. Else: the object and the offset.
    let found = symbols.lookup(&at.object, at.address);
    named(&at.object, at.address, found, at.dynamic_symbol)
}

/// True if `at` lies within the size of the nearest dynamic symbol `dladdr` finds for it (a
/// size of 0, from hand-written assembly or some linkers' aliases, says nothing: trusted).
fn inside_dynamic_symbol(at: usize) -> bool {
    super::elf::dynamic_symbol(at).is_some_and(|(start, size)| size == 0 || at < start + size)
}
