//! Golden files: the bytes of each format version are frozen. A version bump adds a file.
//! Regenerate the current one with `HEAPSCOPE_BLESS=1 cargo test -p heapscope-format`.

mod common;

use heapscope_format::capture::{CaptureReader, Record};
use heapscope_format::FormatError;

const GOLDEN_V1: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/v1.hsc");
const GOLDEN_V2: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/v2.hsc");

fn read_all(bytes: &[u8]) -> Result<(Vec<Record>, bool), FormatError> {
    let mut reader = CaptureReader::new(bytes)?;
    let mut records = Vec::new();
    while let Some(r) = reader.next_record()? {
        records.push(r);
    }
    Ok((records, reader.truncated()))
}

#[test]
fn writer_output_matches_golden_v2() {
    let bytes = common::sample_bytes();
    if std::env::var_os("HEAPSCOPE_BLESS").is_some() {
        std::fs::write(GOLDEN_V2, &bytes).expect("bless");
    }
    let golden = std::fs::read(GOLDEN_V2).expect("golden file");
    assert_eq!(
        bytes, golden,
        "the v2 encoding changed: bump the version instead"
    );
}

#[test]
fn golden_v2_reads_back() {
    let golden = std::fs::read(GOLDEN_V2).expect("golden file");
    let reader = CaptureReader::new(&golden[..]).expect("header");
    assert_eq!(reader.header(), &common::sample_header());
    assert_eq!(reader.version(), 2);
    let (records, truncated) = read_all(&golden).expect("records");
    let mut expected = common::sample_records();
    expected.push(Record::End { t_ms: 120 });
    assert_eq!(records, expected);
    assert!(!truncated);
}

#[test]
fn golden_v1_still_reads_back() {
    let golden = std::fs::read(GOLDEN_V1).expect("golden file");
    let reader = CaptureReader::new(&golden[..]).expect("header");
    assert_eq!(reader.header(), &common::sample_header());
    assert_eq!(reader.version(), 1);
    let (records, truncated) = read_all(&golden).expect("records");
    let mut expected = common::sample_records_v1();
    expected.push(Record::End { t_ms: 120 });
    assert_eq!(records, expected);
    assert!(!truncated);
}

#[test]
fn every_truncation_is_clean() {
    let bytes = common::sample_bytes();
    let header_len = {
        let r = CaptureReader::new(&bytes[..]).expect("header");
        r.offset() as usize
    };
    for cut in 0..bytes.len() {
        match read_all(&bytes[..cut]) {
            Ok((records, truncated)) => {
                assert!(
                    cut >= header_len,
                    "cut {cut} inside the header was accepted"
                );
                assert!(truncated, "cut {cut} not reported as truncated");
                assert!(records.len() <= common::sample_records().len());
            }
            Err(FormatError::WrongMagic { .. } | FormatError::TruncatedHeader) => {
                assert!(cut < header_len, "cut {cut} after the header was rejected");
            }
            Err(e) => panic!("cut {cut}: unexpected error {e}"),
        }
    }
}

#[test]
fn every_bit_flip_is_detected() {
    let bytes = common::sample_bytes();
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut flipped = bytes.clone();
            flipped[i] ^= 1 << bit;
            // A flip is either rejected, or (in a length field) makes the tail look cut off.
            if let Ok((_, truncated)) = read_all(&flipped) {
                assert!(truncated, "flip of byte {i} bit {bit} went unnoticed");
            }
        }
    }
}

#[test]
fn wrong_magic_and_version_are_named() {
    assert!(matches!(
        read_all(b"hello world, not a capture"),
        Err(FormatError::WrongMagic { kind: "capture" })
    ));
    let mut bytes = common::sample_bytes();
    bytes[8] = 99;
    assert!(matches!(
        read_all(&bytes),
        Err(FormatError::UnsupportedVersion { found: 99, .. })
    ));
}
