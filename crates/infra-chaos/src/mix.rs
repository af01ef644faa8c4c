//! SplitMix64's finalizer: the one bit mixer behind the engine's draws and the proxy's per-connection
//! decisions.

/// Mixes `z` into a well-distributed 64-bit value.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The golden-ratio step SplitMix64 advances its state by.
pub(crate) const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// A value in `[0, 1)` from the top 53 bits of `bits`.
pub(crate) fn unit(bits: u64) -> f64 {
    (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}
