//! `dlopen` and `dlclose` replacements: objects loaded while tracing get their GOT patched as
//! soon as the loader returns them (before the caller can run their code), and objects unloaded
//! are forgotten. With `--native`, a `dlsym` replacement too: a program that looks an allocator
//! function up by name (ctypes' `CDLL("libc.so.6").malloc`, cffi's `dlopen(None)`) calls it
//! through the pointer it got, never through a GOT slot, so it gets the recording replacement.
//!
//! `dlopen` looks a bare file name up in the search path of the object that called it
//! (its `DT_RPATH`/`DT_RUNPATH`, found from the return address) and expands `$ORIGIN` against
//! that object. Called from here, the loader would use heapscope's module instead, so the
//! replacement finds its caller (an assembly entry reads the return address) and reproduces
//! that part of the lookup: an object already loaded under that name, then the caller's search
//! directories from `LD_LIBRARY_PATH` and its `DT_RPATH`/`DT_RUNPATH` in the loader's order
//! (`dlinfo(RTLD_DI_SERINFO)`), then the loader's own lookup (cache, default directories: the
//! same for every caller; heapscope's module has no `DT_RPATH`/`DT_RUNPATH` of its own).

use std::ffi::{c_char, c_int, c_void, CStr, CString};

/// `RTLD_DL_LINKMAP` of `dladdr1`: return the object's `struct link_map *`.
const RTLD_DL_LINKMAP: c_int = 2;
/// `RTLD_DI_SERINFOSIZE` of `dlinfo`.
const RTLD_DI_SERINFOSIZE: c_int = 5;

#[repr(C)]
struct SerPath {
    name: *const c_char,
    flags: libc::c_uint,
}

#[repr(C)]
struct SerInfo {
    size: usize,
    cnt: libc::c_uint,
    // `cnt` SerPath entries follow.
}

#[repr(C)]
struct LinkMap {
    addr: usize,
    name: *const c_char,
}

// The entry points: the caller's return address is on top of the stack (x86_64) or in the link
// register (aarch64) on entry; pass it as a third argument and jump to the Rust side.
#[cfg(target_arch = "x86_64")]
std::arch::global_asm!(
    ".globl heapscope_dlopen_entry",
    ".hidden heapscope_dlopen_entry",
    ".type heapscope_dlopen_entry, @function",
    "heapscope_dlopen_entry:",
    "mov rdx, [rsp]",
    "jmp {imp}",
    imp = sym dlopen_from,
);
#[cfg(target_arch = "aarch64")]
std::arch::global_asm!(
    ".globl heapscope_dlopen_entry",
    ".hidden heapscope_dlopen_entry",
    ".type heapscope_dlopen_entry, %function",
    "heapscope_dlopen_entry:",
    "mov x2, x30",
    "b {imp}",
    imp = sym dlopen_from,
);

// `dlsym` with `RTLD_DEFAULT` (0) or `RTLD_NEXT` (-1) searches from the calling object (its
// scope, or the objects after it), which the loader finds from the return address: those calls
// go on to the real `dlsym` by a jump, with the caller's return address in place. A handle's
// lookup does not depend on the caller: those go to `dlsym_handle`.
#[cfg(target_arch = "x86_64")]
std::arch::global_asm!(
    ".globl heapscope_dlsym_entry",
    ".hidden heapscope_dlsym_entry",
    ".type heapscope_dlsym_entry, @function",
    "heapscope_dlsym_entry:",
    "lea rax, [rdi + 1]",
    "cmp rax, 1",
    "jbe 2f",
    "jmp {imp}",
    "2:",
    "jmp {real}",
    imp = sym dlsym_handle,
    real = sym libc::dlsym,
);
#[cfg(target_arch = "aarch64")]
std::arch::global_asm!(
    ".globl heapscope_dlsym_entry",
    ".hidden heapscope_dlsym_entry",
    ".type heapscope_dlsym_entry, %function",
    "heapscope_dlsym_entry:",
    "cmn x0, #1",
    "b.eq 2f",
    "cbz x0, 2f",
    "b {imp}",
    "2:",
    "b {real}",
    imp = sym dlsym_handle,
    real = sym libc::dlsym,
);

extern "C" {
    fn heapscope_dlopen_entry(filename: *const c_char, flags: c_int) -> *mut c_void;
    fn heapscope_dlsym_entry(handle: *mut c_void, name: *const c_char) -> *mut c_void;
}

/// The address to put in `dlsym` slots (`--native`).
pub fn dlsym_replacement() -> usize {
    heapscope_dlsym_entry as *const () as usize
}

/// `dlsym` on a handle: an allocator function of the C library comes back as its recording
/// replacement while `--native` records (the replacement passes calls through once it stops,
/// so a pointer kept after that stays good).
unsafe extern "C" fn dlsym_handle(handle: *mut c_void, name: *const c_char) -> *mut c_void {
    // SAFETY: the caller's arguments, passed on; the result of a lookup on a handle does not
    // depend on which object asks.
    let found = unsafe { libc::dlsym(handle, name) };
    match super::malloc::replacement_of(found as usize) {
        Some(replacement) => replacement as *mut c_void,
        None => found,
    }
}

/// The address to put in `dlopen` slots.
pub fn dlopen_replacement() -> usize {
    heapscope_dlopen_entry as *const () as usize
}

/// The address to put in `dlclose` slots.
pub fn dlclose_replacement() -> usize {
    dlclose as *const () as usize
}

/// `dlopen` as called from `caller`, then patch what it loaded.
unsafe extern "C" fn dlopen_from(
    filename: *const c_char,
    flags: c_int,
    caller: usize,
) -> *mut c_void {
    super::loading(|| {
        // SAFETY: the arguments are the caller's, passed on unchanged.
        let handle = unsafe { open_as(filename, flags, caller) };
        if !handle.is_null() {
            super::rescan();
        }
        handle
    })
}

unsafe extern "C" fn dlclose(handle: *mut c_void) -> c_int {
    super::loading(|| {
        // SAFETY: the caller's argument, passed on.
        let r = unsafe { libc::dlclose(handle) };
        super::rescan();
        r
    })
}

/// Open `filename` the way the loader would for a call made from `caller`.
///
/// # Safety
/// As `dlopen`.
unsafe fn open_as(filename: *const c_char, flags: c_int, caller: usize) -> *mut c_void {
    if filename.is_null() {
        // SAFETY: dlopen(NULL) is the main program.
        return unsafe { libc::dlopen(filename, flags) };
    }
    // SAFETY: dlopen's argument is a NUL-terminated string.
    let name = unsafe { CStr::from_ptr(filename) }.to_bytes();
    let has_dst =
        name.windows(7).any(|w| w == b"$ORIGIN") || name.windows(9).any(|w| w == b"${ORIGIN}");
    let bare = !name.contains(&b'/');
    if !has_dst && !bare {
        // SAFETY: as above; a path is found without any search.
        return unsafe { libc::dlopen(filename, flags) };
    }
    // SAFETY: a plain query about an address.
    let caller_map = unsafe { link_map_of(caller) };
    if caller_map.is_null() {
        // SAFETY: as above.
        return unsafe { libc::dlopen(filename, flags) };
    }
    if has_dst {
        // SAFETY: `caller_map` is a loaded object's link map.
        let origin = unsafe { origin_of(caller_map) };
        if let Some(origin) = origin {
            let expanded = replace_origin(name, &origin);
            if let Ok(c) = CString::new(expanded) {
                // SAFETY: as above.
                return unsafe { libc::dlopen(c.as_ptr(), flags) };
            }
        }
        // SAFETY: as above.
        return unsafe { libc::dlopen(filename, flags) };
    }
    // Already loaded under that name (soname or file name): the loader's first step.
    // SAFETY: as above.
    let h = unsafe { libc::dlopen(filename, flags | libc::RTLD_NOLOAD) };
    if !h.is_null() {
        return h;
    }
    // SAFETY: `caller_map` is a loaded object's link map, which is also its handle.
    for dir in unsafe { caller_dirs(caller_map) } {
        let mut path = dir;
        path.push(b'/');
        path.extend_from_slice(name);
        let Ok(c) = CString::new(path) else { continue };
        // SAFETY: as above.
        let h = unsafe { libc::dlopen(c.as_ptr(), flags) };
        if !h.is_null() {
            return h;
        }
    }
    // SAFETY: as above; also sets the error dlerror reports if nothing was found.
    unsafe { libc::dlopen(filename, flags) }
}

/// The directories the caller searches before the ones every object searches: its list less
/// the default directories at its end (the tail it shares with heapscope's module, which has no
/// `DT_RPATH`/`DT_RUNPATH`). The loader's own lookup covers the rest, the cache first.
///
/// # Safety
/// `caller` is a loaded object's handle.
unsafe fn caller_dirs(caller: *mut c_void) -> Vec<Vec<u8>> {
    // SAFETY: per the contract.
    let mut theirs = unsafe { search_dirs(caller) };
    // SAFETY: a plain query about an address of this module.
    let own_map = unsafe { link_map_of(dlopen_replacement()) };
    if own_map.is_null() {
        return theirs;
    }
    // SAFETY: our own module is loaded.
    let ours = unsafe { search_dirs(own_map) };
    let shared = theirs
        .iter()
        .rev()
        .zip(ours.iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    theirs.truncate(theirs.len() - shared);
    theirs
}

/// The link map of the object holding `addr`, or null.
///
/// # Safety
/// Always safe in practice: dladdr1 only reads the loader's tables.
unsafe fn link_map_of(addr: usize) -> *mut c_void {
    // SAFETY: Dl_info is plain data; both out-parameters are valid.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    let mut map: *mut c_void = std::ptr::null_mut();
    // SAFETY: as above.
    let ok = unsafe {
        libc::dladdr1(
            addr as *const c_void,
            &raw mut info,
            (&raw mut map).cast(),
            RTLD_DL_LINKMAP,
        )
    };
    if ok == 0 {
        std::ptr::null_mut()
    } else {
        map
    }
}

/// The directory of the object of `map` (its `$ORIGIN`).
///
/// # Safety
/// `map` is a loaded object's link map.
unsafe fn origin_of(map: *mut c_void) -> Option<Vec<u8>> {
    // SAFETY: the first two fields of glibc's public `struct link_map` are l_addr and l_name.
    let name = unsafe { (*map.cast::<LinkMap>()).name };
    // SAFETY: a non-null l_name points at a NUL-terminated string (empty for the executable).
    let path = if name.is_null() || unsafe { *name } == 0 {
        std::fs::read_link("/proc/self/exe")
            .ok()?
            .into_os_string()
            .into_encoded_bytes()
    } else {
        // SAFETY: l_name is a NUL-terminated path.
        unsafe { CStr::from_ptr(name) }.to_bytes().to_vec()
    };
    let slash = path.iter().rposition(|&b| b == b'/')?;
    Some(path[..slash].to_vec())
}

fn replace_origin(name: &[u8], origin: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + origin.len());
    let mut i = 0;
    while i < name.len() {
        let rest = &name[i..];
        if rest.starts_with(b"${ORIGIN}") {
            out.extend_from_slice(origin);
            i += 9;
        } else if rest.starts_with(b"$ORIGIN") {
            out.extend_from_slice(origin);
            i += 7;
        } else {
            out.push(name[i]);
            i += 1;
        }
    }
    out
}

/// The directories the loader searches for the dependencies of the object `handle`, in its
/// order (`DT_RPATH`, `LD_LIBRARY_PATH`, `DT_RUNPATH`, the default directories; not the cache).
///
/// # Safety
/// `handle` is a loaded object's handle.
unsafe fn search_dirs(handle: *mut c_void) -> Vec<Vec<u8>> {
    let mut size = SerInfo { size: 0, cnt: 0 };
    // SAFETY: RTLD_DI_SERINFOSIZE fills a Dl_serinfo header.
    if unsafe { libc::dlinfo(handle, RTLD_DI_SERINFOSIZE, (&raw mut size).cast()) } != 0 {
        return Vec::new();
    }
    if size.size < size_of::<SerInfo>() {
        return Vec::new();
    }
    // A buffer of u64 words: aligned for the header and the entries.
    let mut buf = vec![0u64; size.size.div_ceil(8)];
    let head = buf.as_mut_ptr().cast::<SerInfo>();
    // SAFETY: the buffer holds `size.size` bytes; the loader wants size and count filled in.
    unsafe {
        (*head).size = size.size;
        (*head).cnt = size.cnt;
    }
    // SAFETY: as above.
    if unsafe { libc::dlinfo(handle, libc::RTLD_DI_SERINFO, head.cast()) } != 0 {
        return Vec::new();
    }
    // SAFETY: the entries follow the header (aligned as the C struct's flexible array).
    let entries = unsafe {
        // The header is 16 bytes, a multiple of the entries' alignment.
        let first = head.add(1).cast::<SerPath>();
        std::slice::from_raw_parts(first, (*head).cnt as usize)
    };
    entries
        .iter()
        .filter(|e| !e.name.is_null())
        // SAFETY: each name is a NUL-terminated string inside the buffer.
        .map(|e| unsafe { CStr::from_ptr(e.name) }.to_bytes().to_vec())
        .filter(|d| !d.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::replace_origin;

    #[test]
    fn origin_is_expanded_in_both_spellings() {
        assert_eq!(replace_origin(b"$ORIGIN/a.so", b"/x/y"), b"/x/y/a.so");
        assert_eq!(replace_origin(b"${ORIGIN}/../b.so", b"/x"), b"/x/../b.so");
        assert_eq!(replace_origin(b"c.so", b"/x"), b"c.so");
    }
}
