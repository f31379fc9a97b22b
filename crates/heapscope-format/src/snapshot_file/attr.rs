//! Plain-data attribute values: the extra attributes a user sets on a snapshot.

use crate::varint::{put_i64, put_str, put_u64, Reader};
use crate::FormatError;

/// Deepest nesting of lists and dicts the writer accepts and the reader reads.
pub const MAX_ATTR_DEPTH: usize = 64;

/// A plain-data value: Python's None, bool, int (64-bit), float, str, list, dict with str keys.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An `int` that fits in 64 bits.
    Int(i64),
    /// A `float`, bit for bit (NaN payloads and signed zeros survive).
    Float(f64),
    /// A `str`.
    Str(String),
    /// A `list`.
    List(Vec<AttrValue>),
    /// A `dict` with `str` keys, in insertion order.
    Dict(Vec<(String, AttrValue)>),
}

const NONE: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const INT: u8 = 3;
const FLOAT: u8 = 4;
const STR: u8 = 5;
const LIST: u8 = 6;
const DICT: u8 = 7;

impl AttrValue {
    /// Append the tagged encoding of `self`.
    pub fn encode(&self, out: &mut Vec<u8>, depth: usize) -> Result<(), FormatError> {
        if depth > MAX_ATTR_DEPTH {
            return Err(FormatError::Unencodable(format!(
                "attribute values nest deeper than {MAX_ATTR_DEPTH} levels"
            )));
        }
        match self {
            AttrValue::None => out.push(NONE),
            AttrValue::Bool(false) => out.push(FALSE),
            AttrValue::Bool(true) => out.push(TRUE),
            AttrValue::Int(i) => {
                out.push(INT);
                put_i64(out, *i);
            }
            AttrValue::Float(f) => {
                out.push(FLOAT);
                out.extend_from_slice(&f.to_bits().to_le_bytes());
            }
            AttrValue::Str(s) => {
                out.push(STR);
                put_str(out, s);
            }
            AttrValue::List(items) => {
                out.push(LIST);
                put_u64(out, items.len() as u64);
                for item in items {
                    item.encode(out, depth + 1)?;
                }
            }
            AttrValue::Dict(items) => {
                out.push(DICT);
                put_u64(out, items.len() as u64);
                for (key, value) in items {
                    put_str(out, key);
                    value.encode(out, depth + 1)?;
                }
            }
        }
        Ok(())
    }

    /// Read one tagged value.
    pub fn decode(r: &mut Reader<'_>, depth: usize) -> Result<Self, FormatError> {
        if depth > MAX_ATTR_DEPTH {
            return Err(r.corrupt(format!(
                "attribute values nest deeper than {MAX_ATTR_DEPTH}"
            )));
        }
        Ok(match r.u8()? {
            NONE => AttrValue::None,
            FALSE => AttrValue::Bool(false),
            TRUE => AttrValue::Bool(true),
            INT => AttrValue::Int(r.i64()?),
            FLOAT => {
                let mut bits = [0u8; 8];
                bits.copy_from_slice(r.bytes(8)?);
                AttrValue::Float(f64::from_bits(u64::from_le_bytes(bits)))
            }
            STR => AttrValue::Str(r.str()?.to_owned()),
            LIST => {
                let n = r.count(1)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(AttrValue::decode(r, depth + 1)?);
                }
                AttrValue::List(items)
            }
            DICT => {
                let n = r.count(2)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    let key = r.str()?.to_owned();
                    items.push((key, AttrValue::decode(r, depth + 1)?));
                }
                AttrValue::Dict(items)
            }
            tag => return Err(r.corrupt(format!("unknown attribute tag {tag}"))),
        })
    }
}
