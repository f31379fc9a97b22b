//! Any byte string fed to the capture reader must end in records, a clean end or an error:
//! never a panic, a hang or an allocation the input cannot justify.
#![no_main]

use heapscope_format::capture::CaptureReader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(mut reader) = CaptureReader::new(data) {
        let mut records = 0usize;
        while let Ok(Some(_)) = reader.next_record() {
            records += 1;
            assert!(records <= data.len());
        }
    }
});
