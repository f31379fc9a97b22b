//! Counts the records and entries of each kind in a capture file (for size comparisons).
//!
//! `cargo run --release -p heapscope-format --example capture_census -- FILE...`

use std::fs::File;
use std::io::BufReader;

use heapscope_format::capture::{CaptureReader, Record};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for path in std::env::args().skip(1) {
        let mut reader = CaptureReader::new(BufReader::new(File::open(&path)?))?;
        // (records, entries) per kind: frames, stacks, counters, peak, samples, other.
        let mut kinds = [(0u64, 0u64); 6];
        while let Some(record) = reader.next_record()? {
            let (kind, entries) = match &record {
                Record::Frames(f) => (0, f.len()),
                Record::Stacks(s) => (1, s.len()),
                Record::Counters(c) => (2, c.stacks.len()),
                Record::Peak(p) => (3, p.stacks.len()),
                Record::Samples(s) => (4, s.len()),
                _ => (5, 0),
            };
            kinds[kind].0 += 1;
            kinds[kind].1 += entries as u64;
        }
        println!("{path}");
        let names = ["frames", "stacks", "counters", "peak", "samples", "other"];
        for (name, (records, entries)) in names.iter().zip(kinds) {
            println!("  {name:9} {records:8} records {entries:10} entries");
        }
    }
    Ok(())
}
