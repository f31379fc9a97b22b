//! Poisson sampling over allocated bytes: sample points fall on the byte stream at random with
//! one point per `rate` bytes on average, and a block is recorded if a point falls inside it,
//! which happens with probability `p = 1 - exp(-size / rate)`. A recorded block counts for
//! `size / p` bytes, so sums of recorded sizes are unbiased estimates of the true sums.
//! Unsampled blocks cost one subtraction and a compare: no stack walk, no table.

/// Sampling state (GIL-owned, inside the tracer state; per thread for `--native`).
#[derive(Debug, Clone, Copy)]
pub struct Sampler {
    rate: u64,
    countdown: i64,
    rng: u64,
}

impl Sampler {
    /// A sampler with one sample per `rate` bytes on average (`rate` > 0).
    pub fn new(rate: u64, seed: u64) -> Self {
        let mut s = Sampler {
            rate: rate.max(1),
            countdown: 0,
            rng: seed | 1,
        };
        s.countdown = s.next_interval();
        s
    }

    /// Mean bytes between samples.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// `None` if this block is not sampled, else the bytes it stands for.
    #[inline(always)]
    pub fn sample(&mut self, size: u64) -> Option<u64> {
        if self.take(size) {
            Some(self.sampled(size))
        } else {
            None
        }
    }

    /// Move past a block of `size` bytes; true if a sample point falls inside it, in which
    /// case `sampled` (or `set_countdown`) must follow.
    #[inline(always)]
    pub fn take(&mut self, size: u64) -> bool {
        self.countdown -= size as i64;
        self.countdown <= 0
    }

    /// The bytes a block that `take` selected stands for; draws the next sample point.
    #[cold]
    #[inline(never)]
    pub fn sampled(&mut self, size: u64) -> u64 {
        self.countdown = self.next_interval();
        self.weight(size)
    }

    /// Put the next sample point `bytes` ahead (drawn by `next_interval`).
    pub fn set_countdown(&mut self, bytes: i64) {
        self.countdown = bytes;
    }

    /// The bytes a sampled block of `size` stands for.
    pub fn weight(&self, size: u64) -> u64 {
        if size == 0 {
            return 0;
        }
        let p = -(-(size as f64) / self.rate as f64).exp_m1();
        (size as f64 / p).round() as u64
    }

    /// Draw the bytes to the next sample point (exponential, mean `rate`).
    pub fn next_interval(&mut self) -> i64 {
        // xorshift64*: statistically fine for spacing samples, and allocation-free.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let bits = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
        let u = (bits as f64 + 1.0) / (1u64 << 53) as f64; // (0, 1]
        (-u.ln() * self.rate as f64).ceil() as i64
    }
}

#[cfg(test)]
mod tests {
    use super::Sampler;

    #[test]
    fn estimates_are_unbiased() {
        for &(size, n) in &[(32u64, 2_000_000u64), (4096, 200_000), (1 << 20, 2_000)] {
            // ~4000+ samples per case: a 5% error would be a 3-sigma event.
            let mut s = Sampler::new(16 * 1024, 42);
            let est: u64 = (0..n).filter_map(|_| s.sample(size)).sum();
            let truth = (size * n) as f64;
            let err = (est as f64 - truth).abs() / truth;
            assert!(err < 0.05, "size {size}: estimate {est} vs {truth} ({err})");
        }
    }

    #[test]
    fn large_blocks_are_always_sampled_at_their_size() {
        let mut s = Sampler::new(1024, 7);
        for _ in 0..100 {
            let w = s
                .sample(1 << 30)
                .expect("a 1 GiB block holds a sample point");
            assert_eq!(w, 1 << 30);
        }
    }
}
