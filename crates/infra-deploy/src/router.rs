//! The routing table requests read: weights as bucket ranges, swapped in whole.

use std::hash::{BuildHasher, Hasher};

/// Traffic is split in basis points: 10,000 buckets, so a weight of 0.01% is expressible.
pub const BUCKETS: u32 = 10_000;

/// Bucket ranges per deployment, in a fixed order (registration order), so that a deployment whose weight
/// grows keeps every request key it had: its range only ever extends downward into its neighbour's.
#[derive(Debug, Clone, Default)]
pub(crate) struct Table {
    /// For each deployment, in registration order: the first bucket past its range (cumulative weights,
    /// counted from the top so the last registered owns the highest buckets).
    pub(crate) upper: Vec<u32>,
    /// The weights the ranges came from, in basis points.
    pub(crate) weights: Vec<u32>,
}

impl Table {
    /// A table from basis-point weights (summing to 10,000, or all zero).
    pub(crate) fn new(weights: Vec<u32>) -> Self {
        // Ranges are laid from the top down in registration order reversed: the last registered
        // deployment takes [10,000 - w, 10,000), the one before it the range below, and so on.
        let mut upper = vec![0; weights.len()];
        let mut top = BUCKETS;
        for (index, weight) in weights.iter().enumerate().rev() {
            upper[index] = top;
            top = top.saturating_sub(*weight);
        }
        Table { upper, weights }
    }

    /// The deployment owning `bucket`, if any weight is set.
    pub(crate) fn pick(&self, bucket: u32) -> Option<usize> {
        // Deployments are few (two to four): a scan beats a search.
        (0..self.upper.len()).find(|&at| bucket < self.upper[at] && bucket >= self.upper[at] - self.weights[at])
    }
}

/// The bucket a request key falls in: stable for a key across processes and restarts (a fixed-seed
/// hash), uniform over keys.
pub fn bucket_of(key: &[u8]) -> u32 {
    let mut hasher = foldhash::fast::FixedState::with_seed(0x1D3F_7A5B_2C4E_6F81).build_hasher();
    hasher.write(key);
    (hasher.finish() % u64::from(BUCKETS)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_the_buckets_in_registration_order_from_the_top() {
        let table = Table::new(vec![7_000, 3_000]);
        assert_eq!(table.pick(0), Some(0));
        assert_eq!(table.pick(6_999), Some(0));
        assert_eq!(table.pick(7_000), Some(1));
        assert_eq!(table.pick(9_999), Some(1));
        let empty = Table::new(vec![0, 0]);
        assert_eq!(empty.pick(5), None);
        let canary = Table::new(vec![9_500, 0, 500]);
        assert_eq!(canary.pick(9_500), Some(2));
        assert_eq!(canary.pick(9_499), Some(0));
    }
}
