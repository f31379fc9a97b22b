//! Measurement builds only (`--features ablation`): stop the hot path after a given stage, to
//! measure what each stage costs (`benchmarks/ablation.py`). Never in a release build.
//!
//! `HEAPSCOPE_ABLATION`: 0 = hook only, 1 = + stack walk, 2 = + interning, 3 (default) = all.

use std::sync::OnceLock;

static STAGE: OnceLock<u8> = OnceLock::new();

/// The stage at which the hot path stops.
#[inline]
pub fn stage() -> u8 {
    *STAGE.get_or_init(|| {
        std::env::var("HEAPSCOPE_ABLATION").ok().and_then(|v| v.parse().ok()).unwrap_or(3)
    })
}
