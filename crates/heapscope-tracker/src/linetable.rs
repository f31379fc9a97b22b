//! Lines of many instruction offsets of one code object in one pass over its location table
//! (`co_linetable`, the format of CPython 3.11 and later: `Objects/locations.md`).
//!
//! `PyCode_Addr2Line` scans the table from its start at every call; a dying code object whose
//! interned frames name many offsets would cost a scan each. The format is checked against
//! `PyCode_Addr2Line` for every offset of every code object of the standard library, on every
//! supported version, by `tests/integration/test_code_lifetime.py`.

/// The code unit, in bytes (`sizeof(_Py_CODEUNIT)`).
const UNIT: isize = 2;

/// One entry of the table: instruction bytes `[start, end)` are on `line` (-1: no line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    start: isize,
    end: isize,
    line: i32,
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

/// The ranges of a location table, or `None` if it is malformed.
fn ranges(table: &[u8], first_line: i32) -> Option<Vec<Range>> {
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
        out.push(Range {
            start: addr * UNIT,
            end: (addr + length) * UNIT,
            line: here,
        });
        addr += length;
    }
    Some(out)
}

/// The line of each byte offset, as `PyCode_Addr2Line` gives it (`first_line` before the first
/// instruction, -1 past the table or where an instruction has no line); `None` if the table is
/// malformed.
pub fn lines(table: &[u8], first_line: i32, offsets: &[isize]) -> Option<Vec<i32>> {
    let ranges = ranges(table, first_line)?;
    Some(
        offsets
            .iter()
            .map(|&offset| {
                if offset < 0 {
                    return first_line;
                }
                let i = ranges.partition_point(|r| r.end <= offset);
                ranges
                    .get(i)
                    .filter(|r| r.start <= offset)
                    .map_or(-1, |r| r.line)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::lines;

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
    fn a_malformed_table_is_refused() {
        assert_eq!(lines(&[0x01], 1, &[0]), None);
        assert_eq!(lines(&[0x80 | (13 << 3)], 1, &[0]), None);
    }
}
