//! Hit, miss, load and removal counters, and the snapshot [`CacheStats`].
//!
//! Hits and misses are counted on per-thread stripes ([`infra_stripe`]) so that the read path writes
//! only its own thread's cache line. The rest happen on slower paths and use plain atomics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use infra_stripe::{Striped, bump};

use crate::RemovalCause;

#[derive(Debug, Default)]
struct ReadCounts {
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    reads: Striped<ReadCounts>,
    loads: AtomicU64,
    load_failures: AtomicU64,
    load_nanos: AtomicU64,
    removals: [AtomicU64; 4],
    listener_panics: AtomicU64,
}

impl Counters {
    #[inline]
    pub(crate) fn hit(&self) {
        let local = self.reads.local();
        bump(&local.stripe.hits, 1, local.exclusive);
    }

    #[inline]
    pub(crate) fn miss(&self) {
        let local = self.reads.local();
        bump(&local.stripe.misses, 1, local.exclusive);
    }

    /// (hits, misses) so far.
    pub(crate) fn reads(&self) -> (u64, u64) {
        self.reads.iter().fold((0, 0), |(hits, misses), counts| {
            (hits + counts.hits.load(Ordering::Relaxed), misses + counts.misses.load(Ordering::Relaxed))
        })
    }

    pub(crate) fn load(&self, took: Duration, succeeded: bool) {
        self.loads.fetch_add(1, Ordering::Relaxed);
        if !succeeded {
            self.load_failures.fetch_add(1, Ordering::Relaxed);
        }
        self.load_nanos.fetch_add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub(crate) fn removed(&self, cause: RemovalCause) {
        self.removals[cause as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn listener_panicked(&self) {
        self.listener_panics.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, entries: usize, weight: u64, max_weight: u64) -> CacheStats {
        let (hits, misses) = self.reads();
        let removal = |cause: RemovalCause| self.removals[cause as usize].load(Ordering::Relaxed);
        CacheStats {
            hits,
            misses,
            loads: self.loads.load(Ordering::Relaxed),
            load_failures: self.load_failures.load(Ordering::Relaxed),
            total_load_time: Duration::from_nanos(self.load_nanos.load(Ordering::Relaxed)),
            removals: Removals {
                expired: removal(RemovalCause::Expired),
                capacity: removal(RemovalCause::Capacity),
                explicit: removal(RemovalCause::Explicit),
                replaced: removal(RemovalCause::Replaced),
            },
            listener_panics: self.listener_panics.load(Ordering::Relaxed),
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
    /// Time spent in loaders, summed.
    pub total_load_time: Duration,
    /// Entries removed, by cause.
    pub removals: Removals,
    /// Times the eviction listener panicked (the panic is caught; the cache goes on).
    pub listener_panics: u64,
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
