//! Property tests: the reader never panics and always terminates on arbitrary input.

mod common;

use heapscope_format::capture::{CaptureReader, MAGIC};
use proptest::prelude::*;

/// Reads everything; returns the number of records. Bounded: every record consumes bytes.
fn drain(bytes: &[u8]) -> usize {
    let Ok(mut reader) = CaptureReader::new(bytes) else {
        return 0;
    };
    let mut n = 0;
    while let Ok(Some(_)) = reader.next_record() {
        n += 1;
        assert!(n <= bytes.len(), "more records than bytes");
    }
    n
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        drain(&bytes);
    }

    #[test]
    fn random_bytes_after_magic_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[1, 0]);
        bytes.extend_from_slice(&tail);
        drain(&bytes);
    }

    #[test]
    fn mutated_captures_never_panic(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let mut bytes = common::sample_bytes();
        for (pos, value) in edits {
            let len = bytes.len();
            bytes[pos % len] = value;
        }
        let keep = bytes.len() - cut % (bytes.len() / 2);
        bytes.truncate(keep);
        drain(&bytes);
    }
}
