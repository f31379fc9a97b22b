//! The NATIVE_ADDRESSES record (`--native`: native frames the reader symbolizes): it
//! round-trips, a frame id past `u32` and a count the payload cannot hold are corruption.

use heapscope_format::capture::{kind, CorruptKind, NativeAddress, Record};

#[test]
fn native_addresses_round_trip() {
    let record = Record::NativeAddresses(vec![
        NativeAddress {
            frame: 0,
            address: 0,
        },
        NativeAddress {
            frame: 7,
            address: 0x1f_2a3b,
        },
        NativeAddress {
            frame: u32::MAX,
            address: u64::MAX,
        },
    ]);
    let mut payload = Vec::new();
    record.encode(&mut payload);
    assert_eq!(record.kind(), kind::NATIVE_ADDRESSES);
    assert_eq!(
        Record::decode(kind::NATIVE_ADDRESSES, &payload),
        Ok(Some(record))
    );
}

#[test]
fn bad_native_addresses_are_corruption() {
    // One entry whose frame id is 2^32 (varint 0x80 0x80 0x80 0x80 0x10).
    let too_big = [1, 0x80, 0x80, 0x80, 0x80, 0x10, 5];
    assert!(matches!(
        Record::decode(kind::NATIVE_ADDRESSES, &too_big),
        Err(CorruptKind::ValueOutOfRange)
    ));
    // A thousand entries announced, one present.
    let short = [0xe8, 0x07, 1, 2];
    assert!(Record::decode(kind::NATIVE_ADDRESSES, &short).is_err());
}
