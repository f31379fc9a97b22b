//! Primitive encodings of capture payloads: unsigned LEB128 varints and length-prefixed
//! UTF-8 strings. The decoder works over one checksummed payload and never reads past it.

use super::CorruptKind;

/// Appends `value` as an unsigned LEB128 varint (1 to 10 bytes).
pub fn put_varint(buf: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buf.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

/// Appends a string as a varint byte length followed by its UTF-8 bytes.
pub fn put_str(buf: &mut Vec<u8>, s: &str) {
    put_varint(buf, s.len() as u64);
    buf.extend_from_slice(s.as_bytes());
}

/// A cursor over one record payload. Every read checks what remains, so hostile input can
/// only produce a [`CorruptKind`], never a panic or an allocation larger than the payload.
pub struct Decoder<'a> {
    data: &'a [u8],
}

impl<'a> Decoder<'a> {
    /// A decoder over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Decoder { data }
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.data.len()
    }

    /// Reads one LEB128 varint.
    pub fn varint(&mut self) -> Result<u64, CorruptKind> {
        let mut value: u64 = 0;
        for (i, &byte) in self.data.iter().enumerate().take(10) {
            let bits = u64::from(byte & 0x7f);
            if i == 9 && byte > 1 {
                return Err(CorruptKind::VarintOverflow);
            }
            value |= bits << (7 * i);
            if byte & 0x80 == 0 {
                self.data = &self.data[i + 1..];
                return Ok(value);
            }
        }
        Err(if self.data.len() >= 10 {
            CorruptKind::VarintOverflow
        } else {
            CorruptKind::PayloadTooShort
        })
    }

    /// Reads a varint that must fit in a `u32`.
    pub fn varint_u32(&mut self) -> Result<u32, CorruptKind> {
        u32::try_from(self.varint()?).map_err(|_| CorruptKind::ValueOutOfRange)
    }

    /// Reads an element count, each element taking at least `min_size` bytes: a count the
    /// rest of the payload cannot hold is rejected before anything is allocated for it.
    pub fn count(&mut self, min_size: usize) -> Result<usize, CorruptKind> {
        let n = self.varint()?;
        let n = usize::try_from(n).map_err(|_| CorruptKind::ValueOutOfRange)?;
        if n.saturating_mul(min_size.max(1)) > self.remaining() {
            return Err(CorruptKind::CountTooLarge);
        }
        Ok(n)
    }

    /// Reads a length-prefixed UTF-8 string.
    pub fn string(&mut self) -> Result<String, CorruptKind> {
        let len = self.count(1)?;
        let (bytes, rest) = self.data.split_at(len);
        self.data = rest;
        String::from_utf8(bytes.to_vec()).map_err(|_| CorruptKind::InvalidUtf8)
    }

    /// Fails unless the whole payload was consumed.
    pub fn finish(&self) -> Result<(), CorruptKind> {
        if self.data.is_empty() {
            Ok(())
        } else {
            Err(CorruptKind::TrailingBytes)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip() {
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            let mut d = Decoder::new(&buf);
            assert_eq!(d.varint().ok(), Some(v));
            assert!(d.finish().is_ok());
        }
    }

    #[test]
    fn overlong_varint_is_rejected() {
        let buf = [0xff; 11];
        assert!(matches!(
            Decoder::new(&buf).varint(),
            Err(CorruptKind::VarintOverflow)
        ));
        assert!(matches!(
            Decoder::new(&buf[..3]).varint(),
            Err(CorruptKind::PayloadTooShort)
        ));
    }

    #[test]
    fn hostile_count_is_rejected() {
        let mut buf = Vec::new();
        put_varint(&mut buf, 1 << 40);
        assert!(matches!(
            Decoder::new(&buf).count(1),
            Err(CorruptKind::CountTooLarge)
        ));
        assert!(matches!(
            Decoder::new(&buf).string(),
            Err(CorruptKind::CountTooLarge)
        ));
    }
}
