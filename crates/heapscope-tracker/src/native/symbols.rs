//! Names of native frames, looked up when a traceback is read (never in the hooks): the
//! nearest symbol the loader knows (`dladdr`: the dynamic symbol table) and the object's path.

use std::ffi::CStr;
use std::sync::Arc;

/// What a native frame resolves to: (object path, function name).
///
/// `ip` is a return address; the call instruction is just before it, so the address looked up
/// is `ip - 1` (a call at the very end of a function would otherwise name the next one).
pub fn describe(ip: usize) -> (Arc<str>, Arc<str>) {
    let mut info = libc::Dl_info {
        dli_fname: std::ptr::null(),
        dli_fbase: std::ptr::null_mut(),
        dli_sname: std::ptr::null(),
        dli_saddr: std::ptr::null_mut(),
    };
    let at = ip.saturating_sub(1);
    // SAFETY: a query about an address; `info` is a valid out-parameter.
    let ok = unsafe { libc::dladdr(at as *const libc::c_void, &raw mut info) } != 0;
    if !ok {
        return (Arc::from("<native>"), Arc::from(format!("{ip:#x}")));
    }
    let text = |p: *const libc::c_char| -> Option<String> {
        // SAFETY: dladdr's strings are NUL-terminated and live as long as the object.
        (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    };
    let object = text(info.dli_fname).unwrap_or_else(|| "<native>".into());
    let function = match text(info.dli_sname) {
        Some(name) => name,
        None => format!("{:#x}", at.wrapping_sub(info.dli_fbase as usize)),
    };
    (Arc::from(object), Arc::from(function))
}
