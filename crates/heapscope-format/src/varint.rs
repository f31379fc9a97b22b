//! LEB128 variable-length integers and a bounds-checked reader over a byte slice.
//!
//! Encoding: unsigned LEB128, 7 bits per byte, least significant group first, high bit set on
//! every byte but the last; at most 10 bytes for a `u64`. Signed values use zigzag first.

use crate::FormatError;

/// Append `value` as an unsigned LEB128 varint.
pub fn put_u64(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Append `value` zigzag-encoded as a varint.
pub fn put_i64(out: &mut Vec<u8>, value: i64) {
    put_u64(out, ((value << 1) ^ (value >> 63)) as u64);
}

/// Append a length-prefixed UTF-8 string.
pub fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u64(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// A cursor over untrusted bytes: every read is checked, errors carry the offset.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf[0]` in the file, for error messages.
    base: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`, which starts at byte `base` of the file.
    pub fn new(buf: &'a [u8], base: usize) -> Self {
        Reader { buf, pos: 0, base }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// A `Corrupt` error at the current position.
    pub fn corrupt(&self, what: impl Into<String>) -> FormatError {
        FormatError::Corrupt {
            offset: self.base + self.pos,
            what: what.into(),
        }
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, FormatError> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| self.corrupt("unexpected end of data"))?;
        self.pos += 1;
        Ok(b)
    }

    /// Exactly `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        if n > self.remaining() {
            return Err(self.corrupt("unexpected end of data"));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// An unsigned varint; overlong or overflowing encodings are errors.
    pub fn u64(&mut self) -> Result<u64, FormatError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            let part = u64::from(b & 0x7f);
            if shift == 63 && part > 1 {
                return Err(self.corrupt("varint overflows 64 bits"));
            }
            value |= part << shift;
            if b & 0x80 == 0 {
                if b == 0 && shift > 0 {
                    return Err(self.corrupt("overlong varint"));
                }
                return Ok(value);
            }
        }
        Err(self.corrupt("varint longer than 10 bytes"))
    }

    /// A varint that must fit in a `u32`.
    pub fn u32(&mut self) -> Result<u32, FormatError> {
        let v = self.u64()?;
        u32::try_from(v).map_err(|_| self.corrupt(format!("value {v} does not fit in 32 bits")))
    }

    /// A zigzag varint.
    pub fn i64(&mut self) -> Result<i64, FormatError> {
        let v = self.u64()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    /// A count of items that each take at least `min_item_bytes` bytes: never more than the
    /// remaining input can hold, so callers may allocate that many.
    pub fn count(&mut self, min_item_bytes: usize) -> Result<usize, FormatError> {
        let n = self.u64()?;
        let max = self.remaining() / min_item_bytes.max(1);
        match usize::try_from(n) {
            Ok(n) if n <= max => Ok(n),
            _ => Err(self.corrupt(format!(
                "count {n} exceeds what the remaining data can hold"
            ))),
        }
    }

    /// A length-prefixed UTF-8 string.
    pub fn str(&mut self) -> Result<&'a str, FormatError> {
        let n = self.count(1)?;
        let at = self.pos;
        let bytes = self.bytes(n)?;
        std::str::from_utf8(bytes).map_err(|_| FormatError::Corrupt {
            offset: self.base + at,
            what: "string is not valid UTF-8".to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() -> Result<(), FormatError> {
        let values = [0u64, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX];
        let mut buf = Vec::new();
        for v in values {
            put_u64(&mut buf, v);
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            put_i64(&mut buf, v);
        }
        let mut r = Reader::new(&buf, 0);
        for v in values {
            assert_eq!(r.u64()?, v);
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(r.i64()?, v);
        }
        assert_eq!(r.remaining(), 0);
        Ok(())
    }

    #[test]
    fn rejects_bad_varints() {
        assert!(Reader::new(&[0x80], 0).u64().is_err());
        assert!(Reader::new(&[0x80, 0x00], 0).u64().is_err());
        assert!(Reader::new(&[0xff; 11], 0).u64().is_err());
        assert!(Reader::new(
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
            0
        )
        .u64()
        .is_err());
        assert!(Reader::new(&[100], 0).count(1).is_err());
    }
}
