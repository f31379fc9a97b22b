//! Lines of many instruction offsets of one code object in one pass over its location table
//! (`co_linetable`, the format of CPython 3.11 and later: `Objects/locations.md`).
//!
//! `PyCode_Addr2Line` scans the table from its start at every call: a dying code object whose
//! interned frames name many offsets would cost a scan each, and a module's body, whose table
//! is long, cost tens of thousands of instructions per frame resolved (`pip list` on 3.11: 770M
//! instructions in 10k calls). The resolver keeps each code object's table decoded
//! ([`Lines`]) and finds a line by binary search. The format is checked against
//! `PyCode_Addr2Line` for every offset of every code object of the standard library, on every
//! supported version, by `tests/integration/test_code_lifetime.py`.

/// The code unit, in bytes (`sizeof(_Py_CODEUNIT)`).
const UNIT: isize = 2;

/// A code object's lines: `(end, line)` of each run of instructions on one line (-1: no line),
/// in order; the runs are contiguous from offset 0 (8 bytes a run).
pub struct Lines {
    first_line: i32,
    runs: Box<[(u32, i32)]>,
}

impl Lines {
    /// Decode a location table, or `None` if it is malformed.
    pub fn decode(table: &[u8], first_line: i32) -> Option<Lines> {
        Some(Lines {
            first_line,
            runs: runs(table, first_line)?.into_boxed_slice(),
        })
    }

    /// The line of a byte offset, as `PyCode_Addr2Line` gives it (`first_line` before the
    /// first instruction, -1 past the table or where an instruction has no line).
    pub fn line(&self, offset: isize) -> i32 {
        if offset < 0 {
            return self.first_line;
        }
        let i = self
            .runs
            .partition_point(|&(end, _)| end as isize <= offset);
        self.runs.get(i).map_or(-1, |&(_, line)| line)
    }

    /// Bytes held on the heap (the struct itself is its owner's).
    pub fn memory(&self) -> usize {
        self.runs.len() * size_of::<(u32, i32)>()
    }
}

struct Reader<'a> {
    table: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.table.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    fn varint(&mut self) -> Option<u32> {
        let mut b = self.byte()?;
        let mut value = u32::from(b & 63);
        let mut shift = 0;
        while b & 64 != 0 {
            b = self.byte()?;
            shift += 6;
            value |= u32::from(b & 63).checked_shl(shift)?;
        }
        Some(value)
    }

    fn svarint(&mut self) -> Option<i32> {
        let v = self.varint()?;
        let magnitude = (v >> 1) as i32;
        Some(if v & 1 != 0 { -magnitude } else { magnitude })
    }
}

/// The runs of a location table (entries on one line merged), or `None` if it is malformed.
fn runs(table: &[u8], first_line: i32) -> Option<Vec<(u32, i32)>> {
    let mut r = Reader { table, at: 0 };
    let mut out = Vec::new();
    let (mut addr, mut line) = (0isize, first_line);
    while let Some(first) = r.byte() {
        if first & 0x80 == 0 {
            return None;
        }
        let code = (first >> 3) & 15;
        let length = isize::from(first & 7) + 1;
        let here = match code {
            15 => -1,
            14 => {
                line = line.wrapping_add(r.svarint()?);
                for _ in 0..3 {
                    r.varint()?;
                }
                line
            }
            13 => {
                line = line.wrapping_add(r.svarint()?);
                line
            }
            10..=12 => {
                line = line.wrapping_add(i32::from(code) - 10);
                r.byte()?;
                r.byte()?;
                line
            }
            _ => {
                r.byte()?;
                line
            }
        };
        addr += length;
        let end = u32::try_from(addr * UNIT).ok()?;
        match out.last_mut() {
            Some((last_end, last_line)) if *last_line == here => *last_end = end,
            _ => out.push((end, here)),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::Lines;

    /// The line of each byte offset; `None` if the table is malformed.
    fn lines(table: &[u8], first_line: i32, offsets: &[isize]) -> Option<Vec<i32>> {
        let lines = Lines::decode(table, first_line)?;
        Some(offsets.iter().map(|&offset| lines.line(offset)).collect())
    }

    #[test]
    fn forms_of_the_table() {
        // Line 10 (code 13, delta 0) for 2 units; one-line form +1 (code 11) for 1 unit with two
        // column bytes; no location (code 15) for 1 unit; long form (code 14) -3 with three
        // varints; short form (code 0) with one column byte.
        let table = [
            0x80 | (13 << 3) | 1,
            0,
            0x80 | (11 << 3),
            1,
            2,
            0x80 | (15 << 3),
            0x80 | (14 << 3),
            7,
            0,
            1,
            1,
            0x80,
            5,
        ];
        let got = lines(&table, 10, &[-2, 0, 2, 4, 6, 8, 10, 12]);
        assert_eq!(got, Some(vec![10, 10, 10, 11, -1, 8, 8, -1]));
    }

    #[test]
    fn entries_on_one_line_are_one_run() {
        // Line 10 for 8 units then 3 more units (two short-form entries), then line 11.
        let table = [0x80 | (13 << 3) | 7, 0, 0x80 | 2, 0, 0x80 | (11 << 3), 1, 2];
        let decoded = Lines::decode(&table, 10).map(|l| l.runs.to_vec());
        assert_eq!(decoded, Some(vec![(22, 10), (24, 11)]));
        assert_eq!(lines(&table, 10, &[20, 22, 24]), Some(vec![10, 11, -1]));
    }

    #[test]
    fn a_malformed_table_is_refused() {
        assert_eq!(lines(&[0x01], 1, &[0]), None);
        assert_eq!(lines(&[0x80 | (13 << 3)], 1, &[0]), None);
    }
}
