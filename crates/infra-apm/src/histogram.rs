//! A log-linear histogram: lock-free to record into, mergeable, and with a guaranteed relative error.
//!
//! Values fall into buckets 64 to a power of two (as HDR histograms do with 6 significant bits): a
//! bucket spans [2^e (1 + s/64), 2^e (1 + (s+1)/64)), so reporting its midpoint is never off by more than
//! 1/128 (0.78%) of the true value. Octaves are allocated on first use, so a histogram of latencies
//! between a microsecond and a second holds about 20 of them (10 KiB), not the whole range. Values
//! from 2^-20 (about 1e-6) to 2^44 (about 1.8e13) are resolved; smaller ones (zero included) are counted
//! as zero and larger ones in an overflow bucket reported at the largest value seen. Negative values, NaN
//! and infinities are not recorded; they are counted in [`HistogramSnapshot::rejected`].

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use infra_stripe::Striped;

/// Buckets per power of two, as a power of two.
const SUB_BITS: u32 = 6;
const SUB: usize = 1 << SUB_BITS;
/// The smallest resolved power of two.
const MIN_EXPONENT: i32 = -20;
/// Powers of two resolved.
const OCTAVES: usize = 64;

/// The bound on the relative error of a reported quantile.
pub const RELATIVE_ERROR: f64 = 1.0 / (2 * SUB) as f64;

type Octave = Box<[AtomicU64; SUB]>;

#[derive(Debug)]
pub(crate) struct HistogramCell {
    octaves: [OnceLock<Octave>; OCTAVES],
    zero: AtomicU64,
    overflow: AtomicU64,
    /// The sum, as `f64` bits, on per-thread stripes: a thread that owns its stripe adds with a plain
    /// load and store, so a record costs one atomic add (the bucket's) instead of two.
    sums: Striped<AtomicU64>,
    min: AtomicU64,
    max: AtomicU64,
    rejected: AtomicU64,
}

impl Default for HistogramCell {
    fn default() -> Self {
        HistogramCell {
            octaves: std::array::from_fn(|_| OnceLock::new()),
            zero: AtomicU64::new(0),
            overflow: AtomicU64::new(0),
            sums: Striped::new(),
            min: AtomicU64::new(f64::INFINITY.to_bits()),
            max: AtomicU64::new(f64::NEG_INFINITY.to_bits()),
            rejected: AtomicU64::new(0),
        }
    }
}

/// Where a value goes.
enum Slot {
    Zero,
    Bucket(usize, usize),
    Overflow,
}

fn slot(value: f64) -> Slot {
    let bits = value.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i32 - 1023;
    if exponent < MIN_EXPONENT {
        return Slot::Zero;
    }
    let octave = (exponent - MIN_EXPONENT) as usize;
    if octave >= OCTAVES {
        return Slot::Overflow;
    }
    Slot::Bucket(octave, ((bits >> (52 - SUB_BITS)) as usize) & (SUB - 1))
}

/// The lower and upper bounds of a bucket.
fn bounds(octave: usize, sub: usize) -> (f64, f64) {
    let base = 2f64.powi(octave as i32 + MIN_EXPONENT);
    (base * (1.0 + sub as f64 / SUB as f64), base * (1.0 + (sub + 1) as f64 / SUB as f64))
}

/// Adds to an `f64` kept as bits.
fn add_f64(cell: &AtomicU64, value: f64) {
    let _ =
        cell.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| Some((f64::from_bits(bits) + value).to_bits()));
}

/// Lowers (or raises) an `f64` kept as bits, writing only when it changes.
fn bound_f64(cell: &AtomicU64, value: f64, replaces: impl Fn(f64, f64) -> bool) {
    let mut current = cell.load(Ordering::Relaxed);
    while replaces(value, f64::from_bits(current)) {
        match cell.compare_exchange_weak(current, value.to_bits(), Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(actual) => current = actual,
        }
    }
}

impl HistogramCell {
    /// Records one value; see the module documentation for what is rejected.
    #[inline]
    pub(crate) fn record(&self, value: f64) {
        if value.is_nan() || value < 0.0 || value == f64::INFINITY {
            self.rejected.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match slot(value) {
            Slot::Zero => self.zero.fetch_add(1, Ordering::Relaxed),
            Slot::Overflow => self.overflow.fetch_add(1, Ordering::Relaxed),
            Slot::Bucket(octave, sub) => self.octaves[octave]
                .get_or_init(|| Box::new(std::array::from_fn(|_| AtomicU64::new(0))))[sub]
                .fetch_add(1, Ordering::Relaxed),
        };
        let local = self.sums.local();
        if local.exclusive {
            let sum = local.stripe.load(Ordering::Relaxed);
            local.stripe.store((f64::from_bits(sum) + value).to_bits(), Ordering::Relaxed);
        } else {
            add_f64(local.stripe, value);
        }
        bound_f64(&self.min, value, |new, old| new < old);
        bound_f64(&self.max, value, |new, old| new > old);
    }

    /// Empties the histogram (its octaves stay allocated). Records racing with a reset may land on
    /// either side of it.
    pub(crate) fn reset(&self) {
        for counts in self.octaves.iter().filter_map(OnceLock::get) {
            counts.iter().for_each(|count| count.store(0, Ordering::Relaxed));
        }
        for cell in [&self.zero, &self.overflow, &self.rejected] {
            cell.store(0, Ordering::Relaxed);
        }
        self.sums.iter().for_each(|sum| sum.store(0f64.to_bits(), Ordering::Relaxed));
        self.min.store(f64::INFINITY.to_bits(), Ordering::Relaxed);
        self.max.store(f64::NEG_INFINITY.to_bits(), Ordering::Relaxed);
    }

    /// A consistent-enough copy (each counter is read once; concurrent records may land on either side).
    pub(crate) fn snapshot(&self) -> HistogramSnapshot {
        let mut buckets = Vec::new();
        for (octave, counts) in self.octaves.iter().enumerate() {
            let Some(counts) = counts.get() else { continue };
            for (sub, count) in counts.iter().enumerate() {
                let count = count.load(Ordering::Relaxed);
                if count > 0 {
                    let (lower, upper) = bounds(octave, sub);
                    buckets.push(Bucket { lower, upper, count });
                }
            }
        }
        let zero = self.zero.load(Ordering::Relaxed);
        let overflow = self.overflow.load(Ordering::Relaxed);
        let count = zero + overflow + buckets.iter().map(|bucket| bucket.count).sum::<u64>();
        let finite_or_zero = |bits: &AtomicU64| {
            let value = f64::from_bits(bits.load(Ordering::Relaxed));
            if value.is_finite() { value } else { 0.0 }
        };
        HistogramSnapshot {
            count,
            sum: self.sums.iter().map(|sum| f64::from_bits(sum.load(Ordering::Relaxed))).sum(),
            min: finite_or_zero(&self.min),
            max: finite_or_zero(&self.max),
            zero,
            overflow,
            buckets,
            rejected: self.rejected.load(Ordering::Relaxed),
        }
    }
}

/// One non-empty bucket: values in `[lower, upper)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Inclusive lower bound.
    pub lower: f64,
    /// Exclusive upper bound.
    pub upper: f64,
    /// Values recorded in it.
    pub count: u64,
}

/// A histogram's contents at one moment: mergeable, and the source of quantiles and exposition.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HistogramSnapshot {
    /// Values recorded.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
    /// The smallest recorded (0 when empty).
    pub min: f64,
    /// The largest recorded (0 when empty).
    pub max: f64,
    /// Values below 2^-20, zero included.
    pub zero: u64,
    /// Values of 2^44 and above.
    pub overflow: u64,
    /// The non-empty buckets between, in ascending order.
    pub buckets: Vec<Bucket>,
    /// Values refused: negative, NaN or infinite.
    pub rejected: u64,
}

/// The seed's `get_histogram_stats`: a summary of a histogram.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct HistogramStats {
    /// Values recorded.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
    /// The mean.
    pub mean: f64,
    /// The median.
    pub p50: f64,
    /// The 90th percentile.
    pub p90: f64,
    /// The 95th percentile.
    pub p95: f64,
    /// The 99th percentile.
    pub p99: f64,
    /// The 99.9th percentile.
    pub p999: f64,
}

impl HistogramSnapshot {
    /// Count, sum, min, max, mean and the usual percentiles (each within [`RELATIVE_ERROR`]).
    pub fn stats(&self) -> HistogramStats {
        HistogramStats {
            count: self.count,
            sum: self.sum,
            min: self.min,
            max: self.max,
            mean: self.mean(),
            p50: self.quantile(0.5),
            p90: self.quantile(0.9),
            p95: self.quantile(0.95),
            p99: self.quantile(0.99),
            p999: self.quantile(0.999),
        }
    }

    /// The mean, or 0 when empty.
    pub fn mean(&self) -> f64 {
        if self.count == 0 { 0.0 } else { self.sum / self.count as f64 }
    }

    /// The `q` quantile (0..=1), within [`RELATIVE_ERROR`] of the true value (clamped to the recorded
    /// min and max); 0 when empty. `q` outside 0..=1 is clamped.
    pub fn quantile(&self, q: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let q = if q.is_nan() { 0.5 } else { q.clamp(0.0, 1.0) };
        // The rank of the value asked for, 1-based: the smallest value with at least q of all at or below.
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = self.zero;
        if rank <= seen {
            // Values this small are counted, not resolved: the smallest recorded stands for them.
            return self.min;
        }
        for bucket in &self.buckets {
            seen += bucket.count;
            if rank <= seen {
                return ((bucket.lower + bucket.upper) / 2.0).clamp(self.min, self.max);
            }
        }
        self.max
    }

    /// Values at or below `bound`, as a Prometheus bucket counts them: a fine bucket counts when its
    /// midpoint is at or below the bound (so a boundary is resolved to within [`RELATIVE_ERROR`]).
    pub fn count_at_or_below(&self, bound: f64) -> u64 {
        let fine: u64 = self.buckets.iter().filter(|b| (b.lower + b.upper) / 2.0 <= bound).map(|b| b.count).sum();
        let zero = if bound >= 0.0 { self.zero } else { 0 };
        let overflow = if bound >= self.max && self.overflow > 0 { self.overflow } else { 0 };
        zero + fine + overflow
    }

    /// Adds another snapshot's contents (histograms from several processes or windows).
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        let was_empty = self.count == 0;
        self.count += other.count;
        self.sum += other.sum;
        self.zero += other.zero;
        self.overflow += other.overflow;
        self.rejected += other.rejected;
        if other.count > 0 {
            self.min = if was_empty { other.min } else { self.min.min(other.min) };
            self.max = if was_empty { other.max } else { self.max.max(other.max) };
        }
        // Bucket bounds are exact powers-of-two fractions, so equal buckets have equal lower bounds; the
        // bits of a positive f64 order as the f64 does.
        let mut merged: std::collections::BTreeMap<u64, Bucket> =
            self.buckets.iter().map(|bucket| (bucket.lower.to_bits(), *bucket)).collect();
        for bucket in &other.buckets {
            merged.entry(bucket.lower.to_bits()).and_modify(|mine| mine.count += bucket.count).or_insert(*bucket);
        }
        let merged: Vec<Bucket> = merged.into_values().collect();
        self.buckets = merged;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_have_the_promised_width() {
        for value in [1e-6, 0.001, 0.5, 1.0, 3.7, 1234.5, 1e12] {
            let Slot::Bucket(octave, sub) = slot(value) else { panic!("{value} should be resolved") };
            let (lower, upper) = bounds(octave, sub);
            assert!(lower <= value && value < upper, "{value} not in [{lower}, {upper})");
            let midpoint = (lower + upper) / 2.0;
            assert!(((midpoint - value) / value).abs() <= RELATIVE_ERROR, "{value}");
        }
    }

    #[test]
    fn odd_values_are_counted_not_recorded() {
        let cell = HistogramCell::default();
        for value in [-1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            cell.record(value);
        }
        cell.record(0.0);
        cell.record(1e20);
        let snapshot = cell.snapshot();
        assert_eq!((snapshot.count, snapshot.rejected, snapshot.zero, snapshot.overflow), (2, 4, 1, 1));
        assert_eq!(snapshot.quantile(1.0), 1e20);
        assert_eq!(snapshot.quantile(0.0), 0.0);
    }
}
