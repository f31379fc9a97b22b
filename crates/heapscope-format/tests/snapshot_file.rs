//! Snapshot files: round trips, and hostile bytes never panic.

use std::sync::Arc;

use heapscope_format::snapshot_file::{
    decode, encode, AttrValue, FrameRecord, SnapshotFile, TraceRecord, TracebackRecord,
};
use heapscope_format::FormatError;
use proptest::prelude::*;

fn attr_value() -> impl Strategy<Value = AttrValue> {
    let leaf = prop_oneof![
        Just(AttrValue::None),
        any::<bool>().prop_map(AttrValue::Bool),
        any::<i64>().prop_map(AttrValue::Int),
        any::<f64>().prop_map(AttrValue::Float),
        ".{0,8}".prop_map(AttrValue::Str),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(AttrValue::List),
            prop::collection::vec((".{0,4}", inner), 0..4).prop_map(AttrValue::Dict),
        ]
    })
}

fn snapshot_file() -> impl Strategy<Value = SnapshotFile> {
    let frames = prop::collection::hash_set(("[a-c]{1,3}\\.py", 0u32..5), 1..8);
    (
        frames,
        any::<u32>(),
        prop::collection::vec((".{0,4}", attr_value()), 0..3),
    )
        .prop_flat_map(|(frames, limit, attrs)| {
            let frames: Vec<FrameRecord> = frames
                .into_iter()
                .map(|(f, l)| FrameRecord {
                    filename: Arc::from(f),
                    function: Arc::from(""),
                    lineno: l,
                })
                .collect();
            let nf = frames.len() as u32;
            let tbs =
                prop::collection::hash_set((prop::collection::vec(0..nf, 0..4), 0u32..10), 1..6);
            (Just(frames), tbs, Just(limit), Just(attrs)).prop_flat_map(
                |(frames, tbs, limit, attrs)| {
                    let tracebacks: Vec<TracebackRecord> = tbs
                        .into_iter()
                        .map(|(frames, total_nframe)| TracebackRecord {
                            frames,
                            total_nframe,
                        })
                        .collect();
                    let nt = tracebacks.len() as u32;
                    let traces = prop::collection::vec(
                        (any::<u32>(), any::<u64>(), 0..nt).prop_map(
                            |(domain, size, traceback)| TraceRecord {
                                domain,
                                size,
                                traceback,
                            },
                        ),
                        0..20,
                    );
                    (
                        Just(frames),
                        Just(tracebacks),
                        traces,
                        Just(limit),
                        Just(attrs),
                    )
                        .prop_map(
                            |(frames, tracebacks, traces, traceback_limit, attrs)| SnapshotFile {
                                traceback_limit,
                                frames,
                                tracebacks,
                                traces,
                                attrs,
                            },
                        )
                },
            )
        })
}

/// Equality that treats NaN floats as equal to themselves bit for bit.
fn same(a: &SnapshotFile, b: &SnapshotFile) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

proptest! {
    #[test]
    fn round_trip(file in snapshot_file()) {
        let bytes = encode(&file).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back = decode(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(same(&file, &back));
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn random_bodies_with_a_valid_envelope_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
        let mut bytes = b"\x89HSNAP\r\n".to_vec();
        bytes.extend_from_slice(&1u16.to_le_bytes());
        bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&body);
        let crc = crc32fast_hash(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        let _ = decode(&bytes);
    }

    #[test]
    fn every_truncation_and_bit_flip_is_an_error(file in snapshot_file(), flip in any::<prop::sample::Index>(), bit in 0u8..8) {
        let bytes = encode(&file).map_err(|e| TestCaseError::fail(e.to_string()))?;
        for cut in 0..bytes.len() {
            prop_assert!(decode(&bytes[..cut]).is_err());
        }
        let mut flipped = bytes.clone();
        let at = flip.index(flipped.len());
        flipped[at] ^= 1 << bit;
        prop_assert!(decode(&flipped).is_err());
    }
}

fn crc32fast_hash(bytes: &[u8]) -> u32 {
    // The format's checksum is CRC-32 (IEEE); recompute it the slow, obvious way.
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn typed_errors() {
    assert!(matches!(
        decode(b"\x80\x04\x95pickle"),
        Err(FormatError::PickleRefused)
    ));
    assert!(matches!(
        decode(b"hello world, not a snapshot"),
        Err(FormatError::WrongMagic { .. })
    ));
    let mut bytes = encode(&SnapshotFile::default()).unwrap_or_default();
    assert!(matches!(
        decode(&bytes[..bytes.len() - 1]),
        Err(FormatError::Truncated { .. })
    ));
    bytes[8] = 9;
    assert!(matches!(
        decode(&bytes),
        Err(FormatError::UnsupportedVersion { found: 9, .. })
    ));
}
