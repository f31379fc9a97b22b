//! The check, at start, of the pool records' assumption about the running allocator
//! (`table/pools.rs`): pymalloc with 16 KiB pools whose blocks start after a 48-byte header,
//! one size class per pool, 16-byte classes up to 512 bytes (CPython 3.10 to 3.15, 64-bit).
//!
//! Runs of blocks of three classes are allocated from the OBJ domain (as objects are) and
//! freed at once; if any block is off its pool's grid (`PYTHONMALLOC=malloc` or
//! `pymalloc_debug`, another allocator, a CPython whose pools differ), the live table keeps
//! every block in its hashed part. Correctness never depends on this (a block off the grid
//! goes to the hashed part anyway): it saves a failing pool lookup per block.

use crate::table::LiveTable;

/// Sizes probed: a small, a middle and the largest size classes.
const SIZES: [usize; 3] = [48, 208, 496];
/// Blocks per size: enough that a general-purpose allocator passes by chance with
/// probability below 3^-32.
const BLOCKS: usize = 32;

/// True if blocks the OBJ allocator hands out now sit where the pool records expect them.
///
/// # Safety
/// The GIL is held (the OBJ allocator is called).
pub unsafe fn pool_layout_holds() -> bool {
    let mut blocks = [(0usize, 0usize); SIZES.len() * BLOCKS];
    let mut ok = true;
    for (i, slot) in blocks.iter_mut().enumerate() {
        let size = SIZES[i / BLOCKS];
        // SAFETY: GIL held; the block is freed below.
        let p = unsafe { pyo3_ffi::PyObject_Malloc(size) };
        if p.is_null() {
            ok = false;
            break;
        }
        *slot = (p as usize, size);
    }
    ok = ok && LiveTable::pool_layout_holds(&blocks);
    for &(addr, _) in blocks.iter().filter(|(addr, _)| *addr != 0) {
        // SAFETY: allocated above with PyObject_Malloc, freed once.
        unsafe { pyo3_ffi::PyObject_Free(addr as *mut std::ffi::c_void) };
    }
    ok
}
