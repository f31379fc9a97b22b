//! A cache-friendly counting filter of the addresses a sampling tracer holds, so a free can
//! skip the live table. In sampling mode almost no freed block was sampled; without the filter
//! every free still paid a table probe (hash, control-group match), which was most of the
//! sampling overhead. The check is a multiply, a few bit operations and one byte load.
//!
//! Counters, not bits: pymalloc hands a freed block's address out again at once, so a bit left
//! set by a sampled block that was freed would send every later free of that hot address to the
//! table (measured: 6 million needless probes in strings.py with bits rebuilt lazily). A
//! counter drops back to zero when its last held address goes. A counter that reaches 255
//! sticks there (it can no longer be decremented safely); that costs a false positive, never a
//! missed address.

use std::cell::UnsafeCell;

const SLOTS_LOG2: u32 = 15;
const SLOTS: usize = 1 << SLOTS_LOG2;
const STUCK: u8 = u8::MAX;

/// The counters live in a static so the sampling hooks reach them with one load and no
/// pointer chase. Only the GIL holder touches them, through the one `AddrFilter` of the
/// tracer's live table (the RAW table has none).
struct Counts(UnsafeCell<[u8; SLOTS]>);
// SAFETY: accessed only by the thread holding the GIL (see `AddrFilter` and `may_hold`).
unsafe impl Sync for Counts {}
static COUNTS: Counts = Counts(UnsafeCell::new([0; SLOTS]));

/// Handle to the counters; at most one exists (the tracer's live table owns it).
pub struct AddrFilter {
    _private: (),
}

/// False if `addr` is certainly not held by the sampling tracer; true if it may be.
///
/// # Safety
/// The caller holds the GIL, and the filter is in use (sampling mode).
#[inline(always)]
pub unsafe fn may_hold(addr: usize) -> bool {
    // SAFETY: per the contract, no other thread touches the counters now.
    unsafe { (*COUNTS.0.get())[slot(addr)] != 0 }
}

#[inline(always)]
fn slot(addr: usize) -> usize {
    // Locality first: the blocks of one 1 KiB stretch (16-byte aligned) share one 64-byte line
    // of counters, so a burst of frees in a pymalloc pool touches one or two lines, not one
    // random line each (a random spread missed the cache on json_roundtrip). The 512 KiB
    // region's number is hashed into the line index, so equal offsets in different regions
    // land on different lines.
    let region = ((addr >> 19) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SLOTS_LOG2);
    (((addr >> 4) as u64 ^ (region & !63)) as usize) & (SLOTS - 1)
}

impl AddrFilter {
    /// The filter, emptied.
    ///
    /// # Safety
    /// The GIL is held and no other `AddrFilter` exists.
    pub unsafe fn new() -> Self {
        let mut f = AddrFilter { _private: () };
        f.counts().fill(0);
        f
    }

    #[allow(clippy::unused_self)] // the &mut borrow of the one handle is the exclusivity proof
    fn counts(&mut self) -> &mut [u8; SLOTS] {
        // SAFETY: the only handle is borrowed mutably, and its owner is GIL-owned.
        unsafe { &mut *COUNTS.0.get() }
    }

    /// False if `addr` is certainly not held; true if it may be.
    #[inline(always)]
    #[allow(clippy::unused_self)] // the borrow of the handle proves the GIL is held
    pub fn may_hold(&self, addr: usize) -> bool {
        // SAFETY: the handle's owner is GIL-owned, so the caller holds the GIL.
        unsafe { may_hold(addr) }
    }

    /// Count `addr` as held (once per held address).
    #[inline(always)]
    pub fn add(&mut self, addr: usize) {
        let c = &mut self.counts()[slot(addr)];
        if *c != STUCK {
            *c += 1;
        }
    }

    /// `addr`, counted by `add`, is no longer held.
    #[inline(always)]
    pub fn remove(&mut self, addr: usize) {
        let c = &mut self.counts()[slot(addr)];
        if *c != STUCK && *c != 0 {
            *c -= 1;
        }
    }

    /// Start over from exactly these addresses.
    pub fn rebuild(&mut self, addrs: impl Iterator<Item = usize>) {
        self.counts().fill(0);
        for a in addrs {
            self.add(a);
        }
    }

    /// Bytes of memory held.
    pub fn memory() -> usize {
        SLOTS
    }
}

#[cfg(test)]
mod tests {
    use super::AddrFilter;
    use std::sync::Mutex;

    /// The counters are one static: tests take turns (standing in for the GIL).
    static TURN: Mutex<()> = Mutex::new(());

    fn filter() -> (std::sync::MutexGuard<'static, ()>, AddrFilter) {
        let turn = TURN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // SAFETY: the lock above serialises the tests, and each drops its filter first.
        (turn, unsafe { AddrFilter::new() })
    }

    #[test]
    fn never_forgets_a_held_address() {
        let (_turn, mut f) = filter();
        let held: Vec<usize> = (0..100_000).map(|i| 0x7f00_0000_0000 + i * 48).collect();
        for &a in &held {
            f.add(a);
        }
        assert!(held.iter().all(|&a| f.may_hold(a)));
        for &a in held.iter().skip(1).step_by(2) {
            f.remove(a);
        }
        assert!(held.iter().step_by(2).all(|&a| f.may_hold(a)));
    }

    #[test]
    fn forgets_a_removed_address() {
        let (_turn, mut f) = filter();
        let a = 0x5555_0000_1230;
        f.add(a);
        f.remove(a);
        assert!(!f.may_hold(a));
    }

    #[test]
    fn rejects_most_other_addresses() {
        let (_turn, mut f) = filter();
        for i in 0..1000usize {
            f.add(0x5555_0000_0000 + i * 4096 * 3);
        }
        let false_hits = (0..100_000usize)
            .filter(|i| f.may_hold(0x7f00_0000_0000 + i * 16))
            .count();
        // 1000 of 32768 counters set: about 3% expected.
        assert!(false_hits < 6000, "{false_hits} false hits");
    }
}
