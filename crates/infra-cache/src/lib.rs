//! A concurrent, bounded cache with a high hit ratio: adaptive W-TinyLFU, TTL and time to idle,
//! single-flight loads, eviction listeners and statistics.
//!
//! [`Cache`] is sharded; reads take a shard's read lock and record the access in the entry itself, so
//! they scale across threads. Eviction is W-TinyLFU (a small window, then a frequency sketch deciding
//! who enters the main region) with a hill climber that sizes the window to the workload and a ghost
//! list that lets recently returning keys in: on the ARC traces it reaches or beats moka, mini-moka,
//! quick_cache and a Caffeine-style policy at every size measured, on the mean over hasher seeds
//! (`docs/cache.md`, `cargo xtask bench cache`).
//!
//! ```
//! use std::time::Duration;
//! use infra_cache::{Cache, RemovalCause};
//!
//! let cache: Cache<String, u64> = Cache::builder()
//!     .max_capacity(10_000)
//!     .time_to_live(Duration::from_secs(60))
//!     .eviction_listener(|key, _value, cause| {
//!         if cause == RemovalCause::Expired { eprintln!("{key} expired") }
//!     })
//!     .build()?;
//!
//! cache.insert("AAPL".to_string(), 189);
//! assert_eq!(cache.get("AAPL"), Some(189));
//!
//! // Concurrent misses on one key run the loader once; everyone gets its value.
//! let price = cache.get_or_insert_with("MSFT".to_string(), || 415);
//! assert_eq!(price, 415);
//!
//! let stats = cache.stats();
//! assert_eq!((stats.hits, stats.misses, stats.loads), (1, 1, 1));
//! # Ok::<(), infra_cache::BuildError>(())
//! ```
//!
//! Beyond the basics:
//!
//! - loads: [`Cache::get_or_insert_with`], [`Cache::try_get_or_insert_with`] and their async forms
//!   ([`Cache::get_or_insert_async`], [`Cache::try_get_or_insert_async`], any runtime) run one loader per
//!   key however many callers miss at once; failures and panics reach every waiter ([`LoadError`]);
//! - expiry: [`CacheBuilder::time_to_live`], [`CacheBuilder::time_to_idle`], [`Cache::insert_with_ttl`],
//!   reclaimed by writes, by [`CacheBuilder::maintenance_interval`]'s thread, or by
//!   [`Cache::run_pending_maintenance`];
//! - warming: [`CacheBuilder::warming_task`], [`Cache::warm`], [`CacheBuilder::warm_every`]; and
//!   [`CacheBuilder::refresh_ahead`], which reloads entries read close to their expiry in the background;
//! - [`Cache::memoize`], the seed's `cached` decorator; [`Cache::hottest`] and, with the `persist`
//!   feature, `save_hot_set` / `load_hot_set` for a warm restart;
//! - [`Cache::stats`]: hits, misses, loads, load time, removals by cause, warming and refresh counts.
//!
//! Time is read from a `quanta::Clock` given to the builder, so tests can move it by hand with
//! `quanta::Clock::mock()`. The guide is `docs/cache.md`.
//!
//! ## Feature flags
//!
//! - `persist`: warm restart, saving the hot set (keys, or keys and values) with serde.

mod builder;
mod cache;
mod error;
mod loader;
mod memo;
#[cfg(feature = "persist")]
mod persist;
mod shard;
mod sketch;
mod stats;
mod warm;

pub use builder::CacheBuilder;
pub use cache::Cache;
pub use error::{BuildError, LoadError};
pub use memo::Memoized;
#[cfg(feature = "persist")]
pub use persist::{HotKeysReport, PersistError};
pub use stats::{CacheStats, LOAD_TIMING_SAMPLE, Removals};
pub use warm::{BoxError, WarmReport};

/// The default hasher: foldhash's fast hasher, seeded randomly per cache.
pub type DefaultHashBuilder = foldhash::fast::RandomState;

/// Why an entry left the cache, as told to the eviction listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RemovalCause {
    /// Its time to live or time to idle ran out.
    Expired = 0,
    /// Evicted to keep within the bound, or too heavy to be stored at all.
    Capacity = 1,
    /// Removed by [`Cache::remove`] or [`Cache::clear`].
    Explicit = 2,
    /// Overwritten by a new value for the same key.
    Replaced = 3,
}

impl RemovalCause {
    /// True for the causes the cache decided on (expired, capacity), false for the caller's own
    /// removals and replacements.
    pub fn was_evicted(self) -> bool {
        matches!(self, RemovalCause::Expired | RemovalCause::Capacity)
    }
}
