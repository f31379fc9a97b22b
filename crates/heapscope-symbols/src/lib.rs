//! Names and source lines of native code addresses (`--native`): the function, the file and
//! the line of an address in a shared object, from its symbol table and DWARF debug
//! information (`addr2line`: separate debug files by build id or `.gnu_debuglink` included).
//!
//! Safe code only, and slow on first use of an object (its debug information is parsed): the
//! tracer calls it when a traceback is read, never on the allocation path.
#![forbid(unsafe_code)]

use std::path::Path;

use hashbrown::HashMap;

/// What an address resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    /// The function (demangled), if known.
    pub function: Option<String>,
    /// The source file, where debug information names it.
    pub file: Option<String>,
    /// The source line (0 if unknown).
    pub line: u32,
}

/// An object's function symbols with their sizes, by address: addr2line names an address
/// after the nearest symbol before it, which in a stripped object (only its exported symbols
/// left, as most wheels ship) is often another function; a name is only given here to an
/// address inside the symbol's size.
struct Sized(Vec<(u64, u64, String)>);

impl Sized {
    fn read(path: &Path) -> Sized {
        use object::{Object, ObjectSymbol, SymbolKind};
        // Read on demand: the headers and symbol tables, not the whole object.
        let Ok(handle) = std::fs::File::open(path) else {
            return Sized(Vec::new());
        };
        let cache = object::ReadCache::new(handle);
        let Ok(file) = object::File::parse(&cache) else {
            return Sized(Vec::new());
        };
        let table: Vec<_> = if file.symbols().next().is_some() {
            file.symbols().collect()
        } else {
            file.dynamic_symbols().collect()
        };
        let mut symbols: Vec<(u64, u64, String)> = table
            .into_iter()
            .filter(|s| s.kind() == SymbolKind::Text && s.is_definition())
            .filter_map(|s| Some((s.address(), s.size(), s.name().ok()?.to_owned())))
            .collect();
        symbols.sort_unstable_by_key(|s| s.0);
        Sized(symbols)
    }

    /// The function holding `address`; a symbol of size 0 (assembly) is taken as is.
    fn find(&self, address: u64) -> Option<&str> {
        let i = self.0.partition_point(|s| s.0 <= address);
        let (start, size, name) = self.0.get(i.checked_sub(1)?)?;
        (*size == 0 || address < start + size).then_some(name.as_str())
    }
}

/// Loaded objects, by path (an object that cannot be read is remembered as such).
#[derive(Default)]
pub struct Symbolizer {
    /// The loader (debug information), and the sized symbols, read when first needed.
    objects: HashMap<String, (Option<addr2line::Loader>, Option<Sized>)>,
}

impl Symbolizer {
    /// The innermost function and location of `address`, an address relative to the object's
    /// load bias (the address in the file's own virtual addresses), in the object at `path`.
    pub fn lookup(&mut self, path: &str, address: u64) -> Option<Symbol> {
        let (loader, sized) = self
            .objects
            .entry_ref(path)
            .or_insert_with(|| (addr2line::Loader::new(Path::new(path)).ok(), None));
        let loader = loader.as_ref()?;
        let mut function = None;
        let (mut file, mut line) = (None, 0);
        if let Ok(mut frames) = loader.find_frames(address) {
            // The first frame is the innermost (inlined) one: the code at the address.
            if let Ok(Some(frame)) = frames.next() {
                function = frame
                    .function
                    .as_ref()
                    .and_then(|f| f.demangle().ok().map(std::borrow::Cow::into_owned));
                if let Some(location) = frame.location {
                    file = location.file.map(str::to_owned);
                    line = location.line.unwrap_or(0);
                }
            }
        }
        if function.is_none() {
            function = sized
                .get_or_insert_with(|| Sized::read(Path::new(path)))
                .find(address)
                .map(demangle);
        }
        (function.is_some() || file.is_some()).then_some(Symbol {
            function,
            file,
            line,
        })
    }

    /// How many objects were looked up (read or found unreadable).
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// True if no object was looked up.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Forget every loaded object.
    pub fn clear(&mut self) {
        self.objects.clear();
    }
}

/// A symbol name, demangled if it is a C++ or Rust one.
fn demangle(name: &str) -> String {
    addr2line::demangle_auto(name.into(), None).into_owned()
}

#[cfg(test)]
mod tests {
    use super::Symbolizer;

    #[inline(never)]
    fn here(x: u64) -> u64 {
        x.wrapping_mul(0x9e37_79b9) ^ (x >> 7)
    }

    /// The test binary has DWARF: a function of this file resolves to its name and this
    /// file. The binary is position-independent: its load bias is where its first segment
    /// (file offset 0, virtual address 0) is mapped (`/proc/self/maps`).
    #[test]
    fn names_a_function_of_the_test_binary() {
        let exe = std::fs::read_link("/proc/self/exe").unwrap_or_default();
        let exe = exe.display().to_string();
        assert_ne!(here(std::env::args().count() as u64), 1);
        let addr = here as *const () as usize as u64;
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
        let bias = maps.lines().find_map(|l| {
            let mut parts = l.split_whitespace();
            let (range, _, offset) = (parts.next()?, parts.next()?, parts.next()?);
            let lo = u64::from_str_radix(range.split_once('-')?.0, 16).ok()?;
            (offset.trim_start_matches('0').is_empty() && l.ends_with(&exe)).then_some(lo)
        });
        let in_file = bias.and_then(|b| addr.checked_sub(b));
        let mut s = Symbolizer::default();
        assert!(s.lookup("/nonexistent/object.so", 0x1000).is_none());
        let sym = in_file.and_then(|a| s.lookup(&exe, a));
        let sym = sym.expect("the test binary's function is found");
        let function = sym.function.unwrap_or_default();
        assert!(function.ends_with("tests::here"), "{function}");
        assert!(sym.file.unwrap_or_default().ends_with("lib.rs"));
        assert!(sym.line > 0);
    }
}
