//! The PROCESS and EXIT records of child-process streams: they round-trip, a reader that does
//! not know them skips them (kinds 8 and 9 were added to version 1), and bad values are
//! corruption.

use heapscope_format::capture::{kind, CorruptKind, ExitStatus, Record};

fn round_trip(record: &Record) -> Record {
    let mut payload = Vec::new();
    record.encode(&mut payload);
    Record::decode(record.kind(), &payload)
        .expect("valid")
        .expect("known kind")
}

#[test]
fn process_and_exit_records_round_trip() {
    for record in [
        Record::Process { ppid: 4_000_000 },
        Record::Exit(ExitStatus::Code(0)),
        Record::Exit(ExitStatus::Code(255)),
        Record::Exit(ExitStatus::Signal(15)),
        Record::Exit(ExitStatus::Exec),
    ] {
        assert_eq!(round_trip(&record), record);
    }
    assert_eq!(Record::Process { ppid: 1 }.kind(), kind::PROCESS);
    assert_eq!(Record::Exit(ExitStatus::Exec).kind(), kind::EXIT);
}

#[test]
fn an_unknown_way_to_end_is_corruption() {
    // how = 3 does not exist.
    assert_eq!(
        Record::decode(kind::EXIT, &[3, 0]),
        Err(CorruptKind::ValueOutOfRange)
    );
    assert_eq!(
        Record::decode(kind::PROCESS, &[]),
        Err(CorruptKind::PayloadTooShort)
    );
}
