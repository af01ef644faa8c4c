//! Counters and the acquire-wait histogram behind [`PoolStats`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use infra_stripe::{Striped, bump};

/// What the pool has done and holds, read at one moment (the seed's `get_stats`).
///
/// At rest (nothing being opened), `creates == size + closed + detached`: every connection the pool ever
/// opened is either still in it, was closed by it, or was detached by its user.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolStats {
    /// Connections open or being opened.
    pub size: usize,
    /// Connections idle in the pool.
    pub idle: usize,
    /// Connections handed out (or being opened, or checked in the background): `size - idle`.
    pub in_use: usize,
    /// Acquires waiting now.
    pub waiters: usize,
    /// The most acquires ever waiting at once.
    pub max_waiters: usize,
    /// The pool's `max_size`.
    pub max_size: usize,
    /// Connections handed out.
    pub acquisitions: u64,
    /// Acquisitions that had to queue for a connection.
    pub waited: u64,
    /// Acquires that ran out of time waiting.
    pub timeouts: u64,
    /// Waiting acquires given up by their caller (a dropped future), timeouts included.
    pub cancelled: u64,
    /// Connections opened.
    pub creates: u64,
    /// Connection attempts that failed or timed out.
    pub create_failures: u64,
    /// Connections returned to the pool for reuse.
    pub recycles: u64,
    /// Health checks (on checkout or periodic) that failed or timed out.
    pub failed_health_checks: u64,
    /// Connections closed for reaching `max_lifetime`.
    pub closed_by_lifetime: u64,
    /// Connections closed for sitting idle past `idle_timeout`.
    pub closed_by_idleness: u64,
    /// Connections closed because they were broken (the manager said so, or the user marked them).
    pub closed_broken: u64,
    /// Connections closed in all, for any reason (the three above, failed health checks, `close()`).
    pub closed: u64,
    /// Connections taken out of the pool for good with `detach`.
    pub detached: u64,
    /// Panics caught from the manager or the cleanup hook.
    pub manager_panics: u64,
    /// Acquire waits: every acquisition counts, those served at once as zero.
    pub wait: WaitQuantiles,
}

/// Quantiles of the time acquires waited for a connection, within 1/8 of the true value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WaitQuantiles {
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// The longest wait.
    pub max: Duration,
}

/// Counters bumped on every acquire and return: one stripe per thread so they cost a plain store.
#[derive(Debug, Default)]
pub(crate) struct HotCounts {
    pub(crate) acquisitions: AtomicU64,
    pub(crate) recycles: AtomicU64,
}

/// Counters of rarer events.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub(crate) hot: Striped<HotCounts>,
    pub(crate) waited: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) cancelled: AtomicU64,
    pub(crate) creates: AtomicU64,
    pub(crate) create_failures: AtomicU64,
    pub(crate) failed_health_checks: AtomicU64,
    pub(crate) closed_by_lifetime: AtomicU64,
    pub(crate) closed_by_idleness: AtomicU64,
    pub(crate) closed_broken: AtomicU64,
    pub(crate) closed: AtomicU64,
    pub(crate) detached: AtomicU64,
    pub(crate) manager_panics: AtomicU64,
    pub(crate) waits: WaitHistogram,
}

impl Counts {
    pub(crate) fn acquired(&self) {
        let slot = self.hot.local();
        bump(&slot.stripe.acquisitions, 1, slot.exclusive);
    }

    pub(crate) fn recycled(&self) {
        let slot = self.hot.local();
        bump(&slot.stripe.recycles, 1, slot.exclusive);
    }

    pub(crate) fn hot_totals(&self) -> (u64, u64) {
        self.hot.iter().fold((0, 0), |(acquisitions, recycles), stripe| {
            (
                acquisitions + stripe.acquisitions.load(Ordering::Relaxed),
                recycles + stripe.recycles.load(Ordering::Relaxed),
            )
        })
    }
}

pub(crate) fn add(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// Sub-buckets per power of two: 8 keeps a quantile within 1/8 of the truth.
const SUB_BITS: u32 = 3;
const SUBS: usize = 1 << SUB_BITS;
/// Waits are kept in nanoseconds; 64 octaves cover any `u64`.
const BUCKETS: usize = 64 * SUBS;

/// A log-linear histogram of waits in nanoseconds, written only by acquires that queued (the fast path
/// never touches it; its zero waits are added at read time from the acquisition count).
#[derive(Debug)]
pub(crate) struct WaitHistogram {
    buckets: Box<[AtomicU64]>,
    max: AtomicU64,
}

impl Default for WaitHistogram {
    fn default() -> Self {
        WaitHistogram { buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(), max: AtomicU64::new(0) }
    }
}

fn bucket_of(nanos: u64) -> usize {
    if nanos < SUBS as u64 {
        return nanos as usize;
    }
    let octave = 63 - nanos.leading_zeros();
    let sub = (nanos >> (octave - SUB_BITS)) as usize & (SUBS - 1);
    (octave - SUB_BITS + 1) as usize * SUBS + sub
}

/// The largest value that falls in `bucket`, so a quantile never understates a wait.
fn bucket_ceiling(bucket: usize) -> u64 {
    if bucket < SUBS {
        return bucket as u64;
    }
    let octave = (bucket / SUBS) as u32 + SUB_BITS - 1;
    let sub = (bucket % SUBS) as u64;
    let floor = (SUBS as u64 + sub) << (octave - SUB_BITS);
    floor.saturating_add((1u64 << (octave - SUB_BITS)) - 1)
}

impl WaitHistogram {
    pub(crate) fn record(&self, wait: Duration) {
        let nanos = u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(nanos)].fetch_add(1, Ordering::Relaxed);
        self.max.fetch_max(nanos, Ordering::Relaxed);
    }

    /// Quantiles over `total` acquisitions, of which those not recorded here waited zero.
    pub(crate) fn quantiles(&self, total: u64) -> WaitQuantiles {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        let recorded: u64 = counts.iter().sum();
        let zeros = total.saturating_sub(recorded);
        let total = zeros + recorded;
        let max = self.max.load(Ordering::Relaxed);
        let quantile = |q: f64| -> Duration {
            if total == 0 {
                return Duration::ZERO;
            }
            let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
            if rank <= zeros {
                return Duration::ZERO;
            }
            let mut seen = zeros;
            for (bucket, count) in counts.iter().enumerate() {
                seen += count;
                if seen >= rank {
                    return Duration::from_nanos(bucket_ceiling(bucket).min(max));
                }
            }
            Duration::from_nanos(max)
        };
        WaitQuantiles {
            p50: quantile(0.5),
            p90: quantile(0.9),
            p99: quantile(0.99),
            p999: quantile(0.999),
            max: Duration::from_nanos(max),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_ordered_and_tight() {
        let mut last = 0;
        for nanos in (0..100_000u64).chain([u64::MAX / 3, u64::MAX]) {
            let bucket = bucket_of(nanos);
            assert!(bucket >= last, "bucket order breaks at {nanos}");
            last = bucket;
            let ceiling = bucket_ceiling(bucket);
            assert!(ceiling >= nanos, "{nanos} above its bucket's ceiling {ceiling}");
            assert!(ceiling - nanos <= nanos / 8, "{nanos}: ceiling {ceiling} too loose");
        }
    }

    #[test]
    fn quantiles_count_unrecorded_acquisitions_as_zero_waits() {
        let histogram = WaitHistogram::default();
        for micros in 1..=10 {
            histogram.record(Duration::from_micros(micros * 100));
        }
        let q = histogram.quantiles(100);
        assert_eq!(q.p50, Duration::ZERO);
        assert!(q.p99 >= Duration::from_micros(900) && q.p99 <= Duration::from_micros(1000), "{q:?}");
        assert_eq!(q.max, Duration::from_millis(1));
        assert_eq!(WaitHistogram::default().quantiles(0), WaitQuantiles::default());
    }
}
