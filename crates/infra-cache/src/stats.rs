//! Hit, miss, load and removal counters, and the snapshot [`CacheStats`].
//!
//! Every counter is kept on per-thread stripes ([`infra_stripe`]): a thread writes only its own cache
//! line, with a plain load and store, so counting costs the read path about a nanosecond and never
//! contends. A snapshot sums the stripes. Removals are the exception: each holds its shard's write lock,
//! so the shard counts them, and the snapshot is handed their totals.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use infra_stripe::{Striped, bump};

use crate::RemovalCause;

#[derive(Debug, Default)]
struct Counts {
    hits: AtomicU64,
    misses: AtomicU64,
    loads: AtomicU64,
    load_failures: AtomicU64,
    load_nanos: AtomicU64,
    /// Loads whose time `load_nanos` holds (see [`LOAD_TIMING_SAMPLE`]).
    timed_loads: AtomicU64,
    listener_panics: AtomicU64,
    warmed_entries: AtomicU64,
    warming_failures: AtomicU64,
    refreshes: AtomicU64,
    refresh_failures: AtomicU64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    stripes: Striped<Counts>,
}

impl Counters {
    #[inline]
    fn count(&self, counter: impl FnOnce(&Counts) -> &AtomicU64, by: u64) {
        let local = self.stripes.local();
        bump(counter(local.stripe), by, local.exclusive);
    }

    #[inline]
    pub(crate) fn hit(&self) {
        self.count(|counts| &counts.hits, 1);
    }

    #[inline]
    pub(crate) fn miss(&self) {
        self.count(|counts| &counts.misses, 1);
    }

    fn sum(&self, counter: impl Fn(&Counts) -> &AtomicU64) -> u64 {
        self.stripes.iter().map(|counts| counter(counts).load(Ordering::Relaxed)).sum()
    }

    /// (hits, misses) so far.
    pub(crate) fn reads(&self) -> (u64, u64) {
        (self.sum(|counts| &counts.hits), self.sum(|counts| &counts.misses))
    }

    /// Counts a load, with its time if it was one of the timed ones.
    #[inline]
    pub(crate) fn load(&self, took: Option<Duration>, succeeded: bool) {
        // One stripe lookup for all the counters.
        let local = self.stripes.local();
        bump(&local.stripe.loads, 1, local.exclusive);
        if !succeeded {
            bump(&local.stripe.load_failures, 1, local.exclusive);
        }
        if let Some(took) = took {
            bump(&local.stripe.timed_loads, 1, local.exclusive);
            bump(&local.stripe.load_nanos, u64::try_from(took.as_nanos()).unwrap_or(u64::MAX), local.exclusive);
        }
    }

    pub(crate) fn warmed(&self, entries: u64, failures: u64) {
        self.count(|counts| &counts.warmed_entries, entries);
        self.count(|counts| &counts.warming_failures, failures);
    }

    pub(crate) fn refreshed(&self, succeeded: bool) {
        self.count(|counts| if succeeded { &counts.refreshes } else { &counts.refresh_failures }, 1);
    }

    pub(crate) fn listener_panicked(&self) {
        self.count(|counts| &counts.listener_panics, 1);
    }

    /// The timed loads' total, scaled to every load.
    fn total_load_time(&self) -> Duration {
        let (loads, timed) = (self.sum(|counts| &counts.loads), self.sum(|counts| &counts.timed_loads));
        let nanos = u128::from(self.sum(|counts| &counts.load_nanos)) * u128::from(loads);
        Duration::from_nanos(u64::try_from(nanos.checked_div(u128::from(timed)).unwrap_or(0)).unwrap_or(u64::MAX))
    }

    /// The counters' totals, with `removals` as the shards counted them (indexed by [`RemovalCause`]).
    pub(crate) fn snapshot(
        &self,
        entries: usize,
        weight: u64,
        max_weight: u64,
        refreshes_dropped: u64,
        removals: [u64; 4],
    ) -> CacheStats {
        let (hits, misses) = self.reads();
        let removal = |cause: RemovalCause| removals[cause as usize];
        CacheStats {
            hits,
            misses,
            loads: self.sum(|counts| &counts.loads),
            load_failures: self.sum(|counts| &counts.load_failures),
            total_load_time: self.total_load_time(),
            removals: Removals {
                expired: removal(RemovalCause::Expired),
                capacity: removal(RemovalCause::Capacity),
                explicit: removal(RemovalCause::Explicit),
                replaced: removal(RemovalCause::Replaced),
            },
            listener_panics: self.sum(|counts| &counts.listener_panics),
            warmed_entries: self.sum(|counts| &counts.warmed_entries),
            warming_failures: self.sum(|counts| &counts.warming_failures),
            refreshes: self.sum(|counts| &counts.refreshes),
            refresh_failures: self.sum(|counts| &counts.refresh_failures),
            refreshes_dropped,
            entries,
            weight,
            max_weight,
        }
    }
}

/// Entries taken out of the cache, by cause.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removals {
    /// Their time to live or time to idle ran out.
    pub expired: u64,
    /// Evicted to stay within the bound (or too heavy to store at all).
    pub capacity: u64,
    /// Removed by [`crate::Cache::remove`] or [`crate::Cache::clear`].
    pub explicit: u64,
    /// Overwritten by an insert of the same key.
    pub replaced: u64,
}

impl Removals {
    /// Evictions the cache decided on: expired and capacity.
    pub fn evictions(&self) -> u64 {
        self.expired + self.capacity
    }
}

/// Loads timed: one in this many, in each shard.
pub const LOAD_TIMING_SAMPLE: u64 = 8;

/// A snapshot of a cache's counters ([`crate::Cache::stats`]).
#[derive(Debug, Clone, PartialEq)]
pub struct CacheStats {
    /// Reads that found a live entry.
    pub hits: u64,
    /// Reads that found nothing (or an expired entry).
    pub misses: u64,
    /// Loader runs (single flight: one per key however many callers waited).
    pub loads: u64,
    /// Loader runs that returned an error or panicked.
    pub load_failures: u64,
    /// Time spent in loaders, summed. Measured on one load in [`LOAD_TIMING_SAMPLE`] (in each shard,
    /// starting with the first) and scaled to all of them: reading the clock twice can cost more than a
    /// fast loader (about 18 ns on a TSC, more where the clock is not one, as in many virtual machines).
    pub total_load_time: Duration,
    /// Entries removed, by cause.
    pub removals: Removals,
    /// Times the eviction listener panicked (the panic is caught; the cache goes on).
    pub listener_panics: u64,
    /// Entries inserted by warming tasks.
    pub warmed_entries: u64,
    /// Warming task runs that failed or panicked.
    pub warming_failures: u64,
    /// Entries reloaded ahead of expiry.
    pub refreshes: u64,
    /// Reloads ahead of expiry whose loader failed or panicked (the entry expires as it would have).
    pub refresh_failures: u64,
    /// Refresh requests dropped because the refresher's queue was full (the entry reloads on a miss).
    pub refreshes_dropped: u64,
    /// Entries held now.
    pub entries: usize,
    /// Weight held now (the entry count, for a cache without a weigher).
    pub weight: u64,
    /// The bound on weight (or entries).
    pub max_weight: u64,
}

impl CacheStats {
    /// Reads, hits plus misses.
    pub fn requests(&self) -> u64 {
        self.hits + self.misses
    }

    /// Hits over reads, 0..=1; 0 before the first read.
    pub fn hit_ratio(&self) -> f64 {
        if self.requests() == 0 { 0.0 } else { self.hits as f64 / self.requests() as f64 }
    }

    /// Mean time a loader took; zero before the first load.
    pub fn average_load_time(&self) -> Duration {
        let nanos = u64::try_from(self.total_load_time.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(nanos.checked_div(self.loads).unwrap_or(0))
    }
}
