//! Reading the loaded objects' dynamic sections: which GOT slots an object's relocations bind
//! to a given symbol name (`R_*_JUMP_SLOT` and `R_*_GLOB_DAT`, the two ways an object imports a
//! function it calls or whose address it takes).
//!
//! Everything is read from memory the dynamic loader mapped (program headers, `PT_DYNAMIC`,
//! symbol and string tables, relocation tables), through `dl_iterate_phdr`, which holds the
//! loader's lock while its callback runs, so no object is unmapped meanwhile.

use std::ffi::{c_int, c_void, CStr};

#[cfg(target_arch = "x86_64")]
mod arch {
    pub const R_JUMP_SLOT: u32 = 7;
    pub const R_GLOB_DAT: u32 = 6;
    /// `R_X86_64_64`: an absolute address written into data.
    pub const R_ABS64: u32 = 1;
}
#[cfg(target_arch = "aarch64")]
mod arch {
    pub const R_JUMP_SLOT: u32 = 1026;
    pub const R_GLOB_DAT: u32 = 1025;
    /// `R_AARCH64_ABS64`: an absolute address written into data.
    pub const R_ABS64: u32 = 257;
}

const DT_NULL: i64 = 0;
const DT_PLTRELSZ: i64 = 2;
const DT_STRTAB: i64 = 5;
const DT_SYMTAB: i64 = 6;
const DT_RELA: i64 = 7;
const DT_RELASZ: i64 = 8;
const DT_STRSZ: i64 = 10;
const DT_PLTREL: i64 = 20;
const DT_JMPREL: i64 = 23;

#[repr(C)]
struct Dyn {
    tag: i64,
    val: u64,
}

#[repr(C)]
struct Rela {
    offset: u64,
    info: u64,
    addend: i64,
}

/// `Elf64_Sym`.
#[repr(C)]
struct Sym {
    name: u32,
    info: u8,
    other: u8,
    shndx: u16,
    value: u64,
    size: u64,
}

/// One GOT slot bound to a wanted symbol.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    /// Address of the slot (a pointer-sized word).
    pub addr: usize,
    /// Index of the symbol in the list of wanted names.
    pub which: usize,
    /// A word of the object's data holding the function's address (an absolute relocation:
    /// `void *(*xmlMalloc)(size_t) = malloc;` in a library linked in statically, as libxml2
    /// is into lxml), not a GOT slot.
    pub data: bool,
}

/// A loaded object as `dl_iterate_phdr` describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ObjectKey {
    /// Load bias (0 for a non-PIE executable).
    pub base: usize,
    /// Address of its dynamic section (0 if it has none).
    pub dynamic: usize,
}

/// What the scan of one object found.
pub struct ObjectInfo {
    /// Which object.
    pub key: ObjectKey,
    /// Pages the loader made read-only after relocation (`PT_GNU_RELRO`, rounded as the loader
    /// rounds it): `[start, end)`.
    pub relro: Option<(usize, usize)>,
    /// True if one of the object's loadable segments holds `probe` (an address of ours).
    pub holds_probe: bool,
    /// The object's writable loadable segments, `[start, end)`.
    pub writable: Vec<(usize, usize)>,
    /// The object's path as the loader recorded it (empty for the main program).
    pub name: &'static [u8],
}

/// Calls `f` with each loaded object, under the loader's lock. The callback may read and write
/// the object's memory but must not load or unload objects (that would deadlock).
///
/// # Safety
/// `f` must not call `dlopen`, `dlclose` or anything that does.
pub unsafe fn for_each_object(probe: usize, mut f: impl FnMut(&ObjectInfo, &Dynamic)) {
    unsafe extern "C" fn callback(
        info: *mut libc::dl_phdr_info,
        _size: usize,
        data: *mut c_void,
    ) -> c_int {
        // SAFETY: `data` is the `&mut dyn FnMut` passed below, alive for the whole iteration.
        let f = unsafe { &mut *data.cast::<&mut dyn FnMut(*const libc::dl_phdr_info)>() };
        f(info);
        0
    }
    let mut each = |info: *const libc::dl_phdr_info| {
        // SAFETY: the loader passes a valid descriptor of a mapped object.
        let info = unsafe { &*info };
        // SAFETY: as above: program headers of a mapped object.
        if let Some((object, dynamic)) = unsafe { describe(info, probe) } {
            f(&object, &dynamic);
        }
    };
    let mut dyn_each: &mut dyn FnMut(*const libc::dl_phdr_info) = &mut each;
    // SAFETY: the callback only runs `each`, which follows the contract on `f`.
    unsafe {
        libc::dl_iterate_phdr(Some(callback), (&raw mut dyn_each).cast::<c_void>());
    }
}

/// The tables of an object's dynamic section that binding needs (absolute addresses).
pub struct Dynamic {
    symtab: usize,
    strtab: usize,
    strsz: usize,
    /// (address, size in bytes) of the two relocation tables with addends.
    tables: [(usize, usize); 2],
}

impl Dynamic {
    /// Every `JUMP_SLOT`/`GLOB_DAT` slot whose symbol name is one of `names`, and every word
    /// of data an absolute relocation sets to one of them (no addend: the function itself).
    ///
    /// # Safety
    /// The object is mapped for the duration of the call (inside `for_each_object`).
    pub unsafe fn slots(&self, base: usize, names: &[&CStr]) -> Vec<Slot> {
        let mut out = Vec::new();
        for &(addr, size) in &self.tables {
            if addr == 0 {
                continue;
            }
            let n = size / size_of::<Rela>();
            // SAFETY: the loader mapped this relocation table of `n` entries.
            let relas = unsafe { std::slice::from_raw_parts(addr as *const Rela, n) };
            for r in relas {
                let kind = (r.info & 0xffff_ffff) as u32;
                let data = kind == arch::R_ABS64 && r.addend == 0;
                if kind != arch::R_JUMP_SLOT && kind != arch::R_GLOB_DAT && !data {
                    continue;
                }
                let index = (r.info >> 32) as usize;
                // SAFETY: a relocation's symbol index is within the object's symbol table.
                let sym = unsafe { &*(self.symtab as *const Sym).add(index) };
                let name_at = sym.name as usize;
                if name_at >= self.strsz {
                    continue;
                }
                // SAFETY: names in the string table are NUL-terminated within it.
                let name = unsafe { CStr::from_ptr((self.strtab + name_at) as *const _) };
                if let Some(which) = names.iter().position(|n| *n == name) {
                    out.push(Slot {
                        addr: base.wrapping_add(r.offset as usize),
                        which,
                        data,
                    });
                }
            }
        }
        out
    }
}

/// Read an object's program headers and dynamic section.
///
/// # Safety
/// `info` describes a mapped object.
unsafe fn describe(info: &libc::dl_phdr_info, probe: usize) -> Option<(ObjectInfo, Dynamic)> {
    let base = info.dlpi_addr as usize;
    if info.dlpi_phdr.is_null() {
        return None;
    }
    // SAFETY: the loader gives `dlpi_phnum` program headers at `dlpi_phdr`.
    let phdrs = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) };
    // SAFETY: sysconf is always safe to call.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let mut dynamic = 0usize;
    let mut relro = None;
    let mut holds_probe = false;
    let mut writable = Vec::new();
    for ph in phdrs {
        let start = base.wrapping_add(ph.p_vaddr as usize);
        let len = ph.p_memsz as usize;
        match ph.p_type {
            libc::PT_DYNAMIC => dynamic = start,
            libc::PT_GNU_RELRO => {
                // The loader protects whole pages: start rounded down, end rounded down.
                let s = start & !(page - 1);
                let e = (start + len) & !(page - 1);
                if e > s {
                    relro = Some((s, e));
                }
            }
            libc::PT_LOAD => {
                holds_probe |= probe >= start && probe < start + len;
                if ph.p_flags & libc::PF_W != 0 {
                    writable.push((start, start + len));
                }
            }
            _ => {}
        }
    }
    if dynamic == 0 {
        return None;
    }
    // Most loaders relocate the dynamic section's pointers in place; some (and the vDSO's
    // read-only section) leave them relative to the load bias.
    let abs = |v: u64| -> usize {
        let v = v as usize;
        if v < base {
            base.wrapping_add(v)
        } else {
            v
        }
    };
    let mut d = Dynamic {
        symtab: 0,
        strtab: 0,
        strsz: 0,
        tables: [(0, 0); 2],
    };
    let mut plt_is_rela = true;
    let mut at = dynamic as *const Dyn;
    loop {
        // SAFETY: the dynamic section is an array of entries ending with DT_NULL.
        let e = unsafe { &*at };
        match e.tag {
            DT_NULL => break,
            DT_SYMTAB => d.symtab = abs(e.val),
            DT_STRTAB => d.strtab = abs(e.val),
            DT_STRSZ => d.strsz = e.val as usize,
            DT_RELA => d.tables[0].0 = abs(e.val),
            DT_RELASZ => d.tables[0].1 = e.val as usize,
            DT_JMPREL => d.tables[1].0 = abs(e.val),
            DT_PLTRELSZ => d.tables[1].1 = e.val as usize,
            DT_PLTREL => plt_is_rela = e.val == DT_RELA as u64,
            _ => {}
        }
        // SAFETY: not past DT_NULL yet.
        at = unsafe { at.add(1) };
    }
    if !plt_is_rela {
        d.tables[1] = (0, 0);
    }
    if d.symtab == 0 || d.strtab == 0 {
        return None;
    }
    Some((
        ObjectInfo {
            key: ObjectKey { base, dynamic },
            relro,
            holds_probe,
            writable,
            name: if info.dlpi_name.is_null() {
                &[]
            } else {
                // SAFETY: the loader's NUL-terminated name of a mapped object; it lives as long
                // as the object, and callers use it only during the scan.
                unsafe { CStr::from_ptr(info.dlpi_name) }.to_bytes()
            },
        },
        d,
    ))
}

/// `RTLD_DL_SYMENT` of `dladdr1` (`<dlfcn.h>`; not in `libc`): return the symbol's entry.
const RTLD_DL_SYMENT: std::ffi::c_int = 1;

/// Start and size of the dynamic symbol the loader finds for `addr` (`dladdr1` with
/// `RTLD_DL_SYMENT`), if any.
pub fn dynamic_symbol(addr: usize) -> Option<(usize, usize)> {
    let mut info = libc::Dl_info {
        dli_fname: std::ptr::null(),
        dli_fbase: std::ptr::null_mut(),
        dli_sname: std::ptr::null(),
        dli_saddr: std::ptr::null_mut(),
    };
    let mut sym: *const Sym = std::ptr::null();
    // SAFETY: a query about an address with valid out-parameters; `sym` receives a pointer
    // into the object's dynamic symbol table.
    let ok = unsafe {
        libc::dladdr1(
            addr as *const std::ffi::c_void,
            &raw mut info,
            (&raw mut sym).cast::<*mut std::ffi::c_void>(),
            RTLD_DL_SYMENT,
        )
    } != 0;
    if !ok || sym.is_null() || info.dli_saddr.is_null() {
        return None;
    }
    // SAFETY: `sym` points into the symbol table of a mapped object.
    let size = unsafe { (*sym).size } as usize;
    Some((info.dli_saddr as usize, size))
}
