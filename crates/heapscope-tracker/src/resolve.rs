//! Turning captured frames (code object, instruction offset) into file names, function names
//! and line numbers: done when a traceback is read, never on the allocation path, and cached.

use std::cell::UnsafeCell;
use std::ffi::c_void;
use std::sync::Arc;

use hashbrown::HashMap;
use heapscope_core::Frame;

use crate::linetable::Lines;
use crate::stack::{FrameLayout, RawFrame};

/// What the resolver keeps of a live code object.
struct Code {
    /// File and function name.
    names: (Arc<str>, Arc<str>),
    /// Its location table, decoded (`None`: unreadable, `PyCode_Addr2Line` is asked).
    lines: Option<Lines>,
    /// The offsets cached in `by_raw` under its address, to forget when it dies.
    offsets: Vec<isize>,
}

/// Resolved frames, cached by raw frame. A dying code object's entries are dropped by
/// [`Resolver::bury`] or [`Resolver::forget`] (its address may be reused); everything goes with
/// the interned frames on `clear_traces`/`stop`.
#[derive(Default)]
pub struct Resolver {
    by_raw: HashMap<RawFrame, u32>,
    /// Distinct frames: raw frames that resolve alike (offsets of one line) share an index.
    frames: Vec<Frame>,
    /// `frames` by a hash of the frame (4 bytes an entry, compared with the frame itself).
    distinct: hashbrown::HashTable<u32>,
    /// Live code objects met, by address.
    codes: HashMap<usize, Code>,
    /// File and function names of dead code objects, indexed by their tombstones.
    dead: Vec<(Arc<str>, Arc<str>)>,
    /// Bumped by every `clear`, so caches keyed by frame index know when they are stale.
    generation: u64,
    /// Objects whose symbols native frames were looked up in (`--native`).
    symbols: heapscope_symbols::Symbolizer,
    /// Native frames resolved for the capture, not named (`resolve_unnamed`).
    unnamed: HashMap<RawFrame, u32>,
    /// Their distinct frames' addresses in their objects.
    addresses: HashMap<u32, u64>,
}

pub struct ResolverCell(UnsafeCell<Option<Resolver>>);
// SAFETY: only accessed by the GIL holder (see `resolver`).
unsafe impl Sync for ResolverCell {}
static RESOLVER: ResolverCell = ResolverCell(UnsafeCell::new(None));

/// The resolver.
///
/// # Safety
/// The GIL is held and no other reference from this function is alive. Allocation hooks never
/// touch the resolver, so calling into Python while holding it is fine.
pub unsafe fn resolver() -> &'static mut Resolver {
    // SAFETY: per the contract.
    unsafe { (*RESOLVER.0.get()).get_or_insert_with(Resolver::default) }
}

unsafe fn text(obj: *mut c_void) -> Arc<str> {
    if obj.is_null() {
        return Arc::from("<unknown>");
    }
    let mut size: pyo3_ffi::Py_ssize_t = 0;
    // SAFETY: `obj` is a live str kept alive by its code object; the GIL is held.
    let data = unsafe { pyo3_ffi::PyUnicode_AsUTF8AndSize(obj.cast(), &raw mut size) };
    if data.is_null() {
        // SAFETY: clearing the error AsUTF8AndSize set (e.g. lone surrogates).
        unsafe { pyo3_ffi::PyErr_Clear() };
        // SAFETY: as above.
        return unsafe { text_with_surrogates(obj) };
    }
    // SAFETY: `data` points to `size` bytes of UTF-8 owned by the str object.
    let bytes = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), size as usize) };
    Arc::from(String::from_utf8_lossy(bytes).as_ref())
}

/// A str that has no UTF-8 form: a file name with bytes that are not UTF-8, which Python
/// keeps as lone surrogates (surrogateescape). Each becomes U+FFFD; the rest of the name
/// stays, so it is still told apart and matched by filters. Read a character at a time:
/// nothing is allocated through Python.
///
/// # Safety
/// `obj` is a live str; the GIL is held.
unsafe fn text_with_surrogates(obj: *mut c_void) -> Arc<str> {
    // SAFETY: per the contract.
    let length = unsafe { pyo3_ffi::PyUnicode_GetLength(obj.cast()) };
    if length < 0 {
        // SAFETY: clearing the error GetLength set.
        unsafe { pyo3_ffi::PyErr_Clear() };
        return Arc::from("<unknown>");
    }
    let mut out = String::with_capacity(length as usize);
    for i in 0..length {
        // SAFETY: `i` is within the str's length.
        let c = unsafe { pyo3_ffi::PyUnicode_ReadChar(obj.cast(), i) };
        out.push(char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER));
    }
    Arc::from(out)
}

impl Resolver {
    /// Index of the resolved frame (see [`Resolver::frame`]).
    ///
    /// # Safety
    /// The GIL is held and `raw.code` is a live code object.
    pub unsafe fn resolve(&mut self, layout: &FrameLayout, raw: RawFrame) -> u32 {
        if let Some(&i) = self.by_raw.get(&raw) {
            return i;
        }
        if raw.is_native() {
            let frame = crate::native::symbols::describe(&mut self.symbols, raw.native_ip());
            let i = self.distinct_index(frame);
            self.by_raw.insert(raw, i);
            return i;
        }
        if raw.code.is_null() {
            let unknown: Arc<str> = Arc::from("<unknown>");
            let i = self.distinct_index(Frame {
                filename: unknown.clone(),
                function: unknown,
                lineno: 0,
                native: false,
            });
            self.by_raw.insert(raw, i);
            return i;
        }
        let ((filename, function), line) = if raw.is_dead() {
            let names = self.dead[raw.dead_index() as usize].clone();
            (names, raw.offset as i32)
        } else {
            // SAFETY: per the contract.
            let code = unsafe { self.code(layout, raw.code) };
            code.offsets.push(raw.offset);
            // SAFETY: live code object, GIL held.
            let line = unsafe { code.line(raw.code, raw.offset) };
            (code.names.clone(), line)
        };
        let i = self.distinct_index(Frame {
            filename,
            function,
            lineno: line.max(0) as u32,
            native: false,
        });
        self.by_raw.insert(raw, i);
        i
    }

    /// [`Resolver::resolve`] for the capture (`heapscope run`): a native frame is not named
    /// here but given as its object and the address in it ([`Resolver::native_address`]),
    /// which the capture's reader names, so that the traced process never loads the objects'
    /// debug information (tens of MB for an interpreter built with it).
    ///
    /// # Safety
    /// As [`Resolver::resolve`].
    pub unsafe fn resolve_unnamed(&mut self, layout: &FrameLayout, raw: RawFrame) -> u32 {
        if !raw.is_native() {
            // SAFETY: per the contract.
            return unsafe { self.resolve(layout, raw) };
        }
        if let Some(&i) = self.unnamed.get(&raw) {
            return i;
        }
        let i = match crate::native::symbols::locate(raw.native_ip()) {
            Some(at) => {
                let i = self.distinct_index(heapscope_core::native_frames::placeholder(
                    &at.object, at.address,
                ));
                self.addresses.insert(i, at.address);
                i
            }
            None => self.distinct_index(crate::native::symbols::unknown(raw.native_ip())),
        };
        self.unnamed.insert(raw, i);
        i
    }

    /// For a frame of [`Resolver::resolve_unnamed`] still to be named: the address in its
    /// object (its file).
    pub fn native_address(&self, index: u32) -> Option<u64> {
        self.addresses.get(&index).copied()
    }

    /// The index of this frame among the distinct frames, added if new.
    fn distinct_index(&mut self, frame: Frame) -> u32 {
        let hash_of = |f: &Frame| {
            use std::hash::BuildHasher;
            std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
                .hash_one(f)
        };
        let hash = hash_of(&frame);
        let frames = &self.frames;
        if let Some(&i) = self.distinct.find(hash, |&i| frames[i as usize] == frame) {
            return i;
        }
        let i = self.frames.len() as u32;
        self.frames.push(frame);
        let frames = &self.frames;
        self.distinct
            .insert_unique(hash, i, |&j| hash_of(&frames[j as usize]));
        i
    }

    /// What is kept of a live code object: its names and its lines, read on first use.
    ///
    /// # Safety
    /// The GIL is held and `code` is a live (or dying but intact) code object.
    unsafe fn code(&mut self, layout: &FrameLayout, code: *mut c_void) -> &mut Code {
        self.codes.entry(code as usize).or_insert_with(|| {
            // SAFETY: per the contract.
            let (f, q) = unsafe { (layout.code_names)(code) };
            Code {
                // SAFETY: borrowed strs of a live code object.
                names: unsafe { (text(f), text(q)) },
                // SAFETY: per the contract.
                lines: unsafe { decoded_lines(code) },
                offsets: Vec::new(),
            }
        })
    }

    /// A code object is dying and no interned frame names it: forget what is cached under
    /// its address (a new code object may take it).
    pub fn forget(&mut self, code: *mut c_void) {
        if let Some(known) = self.codes.remove(&(code as usize)) {
            for offset in known.offsets {
                self.by_raw.remove(&RawFrame { code, offset });
            }
        }
    }

    /// A code object is dying: resolve the frames at `offsets` in it, forget what is cached
    /// under its address, and return one tombstone per offset.
    ///
    /// # Safety
    /// The GIL is held and `code` is a dying code object whose fields are intact.
    pub unsafe fn bury(
        &mut self,
        layout: &FrameLayout,
        code: *mut c_void,
        offsets: &[isize],
    ) -> Vec<RawFrame> {
        let index = self.dead.len() as u32;
        // SAFETY: per the contract.
        let known = unsafe { self.code(layout, code) };
        let names = known.names.clone();
        let tombstones = offsets
            .iter()
            // SAFETY: per the contract.
            .map(|&offset| RawFrame::dead(index, unsafe { known.line(code, offset) }.max(0)))
            .collect();
        self.dead.push(names);
        self.forget(code);
        tombstones
    }

    /// A resolved frame.
    pub fn frame(&self, i: u32) -> &Frame {
        &self.frames[i as usize]
    }

    /// Forget everything (the code objects are about to be released).
    pub fn clear(&mut self) {
        let generation = self.generation + 1;
        *self = Resolver {
            generation,
            ..Resolver::default()
        };
    }

    /// How many shared objects native frames were named from in this process.
    pub fn objects_symbolized(&self) -> usize {
        self.symbols.len()
    }

    /// Bytes of memory held, per structure (names counted once per code object or frame
    /// that holds them).
    pub fn memory_parts(&self, out: &mut Vec<(&'static str, usize)>) {
        let text = |t: &str| t.len() + 2 * size_of::<usize>();
        out.push((
            "resolver.by_raw",
            self.by_raw.capacity() * (size_of::<(RawFrame, u32)>() + 1)
                + self.unnamed.capacity() * (size_of::<(RawFrame, u32)>() + 1)
                + self.addresses.capacity() * (size_of::<(u32, u64)>() + 1),
        ));
        out.push((
            "resolver.frames",
            self.frames.capacity() * size_of::<Frame>()
                + self.distinct.capacity() * (size_of::<u32>() + 1),
        ));
        out.push((
            "resolver.names",
            self.codes.capacity() * (size_of::<(usize, Code)>() + 1)
                + self.dead.capacity() * size_of::<(Arc<str>, Arc<str>)>()
                + self
                    .codes
                    .values()
                    .map(|c| &c.names)
                    .chain(self.dead.iter())
                    .map(|(f, q)| text(f) + text(q))
                    .sum::<usize>(),
        ));
        out.push((
            "resolver.lines",
            self.codes
                .values()
                .map(|c| {
                    c.lines.as_ref().map_or(0, Lines::memory)
                        + c.offsets.capacity() * size_of::<isize>()
                })
                .sum(),
        ));
    }

    /// Changes whenever previously returned indices become invalid.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

/// `co_linetable` and `co_firstlineno`, interned once (attribute names never allocated where a
/// code object dies).
static LINETABLE_NAMES: std::sync::OnceLock<(usize, usize)> = std::sync::OnceLock::new();

/// Intern the attribute names `lines_of` reads.
///
/// # Safety
/// The GIL is held.
pub unsafe fn intern_names() {
    LINETABLE_NAMES.get_or_init(|| {
        // SAFETY: GIL held; the interned strings are kept for the life of the process.
        unsafe {
            (
                pyo3_ffi::PyUnicode_InternFromString(c"co_linetable".as_ptr()) as usize,
                pyo3_ffi::PyUnicode_InternFromString(c"co_firstlineno".as_ptr()) as usize,
            )
        }
    });
}

impl Code {
    /// The line of an offset in this code object.
    ///
    /// # Safety
    /// The GIL is held and `code` is this live (or dying but intact) code object.
    unsafe fn line(&self, code: *mut c_void, offset: isize) -> i32 {
        match &self.lines {
            Some(lines) => lines.line(offset),
            // SAFETY: per the contract.
            None => unsafe { pyo3_ffi::PyCode_Addr2Line(code.cast(), offset as i32) },
        }
    }
}

/// The location table of `code`, decoded (`linetable.rs`); `None` if it cannot be read.
///
/// # Safety
/// The GIL is held and `code` is a live or dying (intact) code object.
unsafe fn decoded_lines(code: *mut c_void) -> Option<Lines> {
    let &(table_name, first_name) = LINETABLE_NAMES.get()?;
    if table_name == 0 || first_name == 0 {
        return None;
    }
    // SAFETY: GIL held; member attributes of the code object, read without calling Python
    // code; new references released below.
    unsafe {
        let table = pyo3_ffi::PyObject_GetAttr(code.cast(), table_name as *mut _);
        let first = pyo3_ffi::PyObject_GetAttr(code.cast(), first_name as *mut _);
        let mut out = None;
        if !table.is_null() && !first.is_null() && pyo3_ffi::PyBytes_Check(table) != 0 {
            let data = pyo3_ffi::PyBytes_AsString(table);
            let size = pyo3_ffi::PyBytes_Size(table);
            let first_line = pyo3_ffi::PyLong_AsLong(first);
            if !data.is_null() && size >= 0 {
                let bytes = std::slice::from_raw_parts(data.cast::<u8>(), size as usize);
                out = Lines::decode(bytes, first_line as i32);
            }
        }
        pyo3_ffi::Py_XDECREF(table);
        pyo3_ffi::Py_XDECREF(first);
        if !pyo3_ffi::PyErr_Occurred().is_null() {
            pyo3_ffi::PyErr_Clear();
        }
        out
    }
}

/// Mismatches between the location-table reader and `PyCode_Addr2Line` over every
/// instruction offset of a live code object (a check of `linetable.rs` against the running
/// interpreter, for the tests).
///
/// # Safety
/// The GIL is held and `code` is a live code object.
pub unsafe fn check_lines(code: *mut c_void, code_bytes: usize) -> Option<usize> {
    let offsets: Vec<isize> = (-2..code_bytes as isize).step_by(2).collect();
    // SAFETY: per the contract.
    let mine = unsafe { decoded_lines(code) }?;
    let mut mismatches = 0;
    for &offset in &offsets {
        let line = mine.line(offset);
        // SAFETY: per the contract.
        if unsafe { pyo3_ffi::PyCode_Addr2Line(code.cast(), offset as i32) } != line {
            mismatches += 1;
        }
    }
    Some(mismatches)
}
