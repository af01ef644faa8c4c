//! [`CacheBuilder`]: bounds, expiry, clock, hasher, shards and the eviction listener.

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use quanta::Clock;

use crate::cache::{Cache, Config, RefreshConfig};
use crate::error::BuildError;
use crate::warm::{BoxError, WarmingTask};
use crate::{DefaultHashBuilder, RemovalCause};

/// Weighs an entry; see [`CacheBuilder::weigher`].
pub(crate) type Weigher<K, V> = Arc<dyn Fn(&K, &V) -> u32 + Send + Sync>;
/// Hears of every entry leaving the cache; see [`CacheBuilder::eviction_listener`].
pub(crate) type Listener<K, V> = Arc<dyn Fn(&K, &V, RemovalCause) + Send + Sync>;

/// Entries below which a shard is not worth its own lock: small caches keep one policy for all keys,
/// which is what their hit ratio needs.
const MIN_SHARD_WEIGHT: u64 = 4096;

/// Configures a [`Cache`]. Start from [`Cache::builder`].
pub struct CacheBuilder<K, V, S = DefaultHashBuilder> {
    max_capacity: Option<u64>,
    max_weight: Option<u64>,
    weigher: Option<Weigher<K, V>>,
    time_to_live: Option<Duration>,
    time_to_idle: Option<Duration>,
    clock: Option<Clock>,
    hasher: S,
    shards: Option<usize>,
    listener: Option<Listener<K, V>>,
    maintenance_interval: Option<Duration>,
    warming_tasks: Vec<WarmingTask<K, V>>,
    warm_every: Option<Duration>,
    refresh: Option<RefreshConfig<K, V>>,
    _types: PhantomData<fn(K, V)>,
}

impl<K, V, S> fmt::Debug for CacheBuilder<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("max_capacity", &self.max_capacity)
            .field("max_weight", &self.max_weight)
            .field("weigher", &self.weigher.is_some())
            .field("time_to_live", &self.time_to_live)
            .field("time_to_idle", &self.time_to_idle)
            .field("shards", &self.shards)
            .field("listener", &self.listener.is_some())
            .field("maintenance_interval", &self.maintenance_interval)
            .field("warming_tasks", &self.warming_tasks.len())
            .field("warm_every", &self.warm_every)
            .field("refresh_ahead", &self.refresh.as_ref().map(|refresh| refresh.within))
            .finish_non_exhaustive()
    }
}

impl<K, V> CacheBuilder<K, V> {
    pub(crate) fn new() -> Self {
        CacheBuilder {
            max_capacity: None,
            max_weight: None,
            weigher: None,
            time_to_live: None,
            time_to_idle: None,
            clock: None,
            hasher: DefaultHashBuilder::default(),
            shards: None,
            listener: None,
            maintenance_interval: None,
            warming_tasks: Vec::new(),
            warm_every: None,
            refresh: None,
            _types: PhantomData,
        }
    }
}

impl<K, V, S> CacheBuilder<K, V, S> {
    /// Bounds the cache to `entries` entries. Zero is allowed and stores nothing (loads still run and
    /// are still shared), which turns caching off without changing the code around it.
    pub fn max_capacity(mut self, entries: u64) -> Self {
        self.max_capacity = Some(entries);
        self
    }

    /// Bounds the cache by total weight, as given by [`weigher`](Self::weigher) (bytes, say).
    pub fn max_weight(mut self, total: u64) -> Self {
        self.max_weight = Some(total);
        self
    }

    /// How much an entry weighs against [`max_weight`](Self::max_weight). It runs once per insert,
    /// before any lock is taken. A weight of 0 counts as 1, so that no entry is free. An entry heavier
    /// than a shard's share of the bound (`max_weight / shards`) is not stored: the eviction listener
    /// hears of it with [`RemovalCause::Capacity`].
    pub fn weigher(mut self, weigher: impl Fn(&K, &V) -> u32 + Send + Sync + 'static) -> Self {
        self.weigher = Some(Arc::new(weigher));
        self
    }

    /// Every entry expires this long after it was written (the seed's `default_ttl_seconds`);
    /// [`Cache::insert_with_ttl`] sets another time per entry.
    pub fn time_to_live(mut self, ttl: Duration) -> Self {
        self.time_to_live = Some(ttl);
        self
    }

    /// Every entry expires when it has not been read or written for this long (and in any case at its
    /// time to live).
    pub fn time_to_idle(mut self, tti: Duration) -> Self {
        self.time_to_idle = Some(tti);
        self
    }

    /// The clock expiry is measured on; `quanta::Clock::mock()` lets tests move time by hand.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The number of shards, each with its own lock and policy (rounded up to a power of two, and at most
    /// the bound itself, so that the bound splits evenly). The default is four per core, fewer for small
    /// caches so that each shard holds at least 4,096 entries.
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// Called for every entry that leaves the cache, with the cause, after the shard's lock is released
    /// (so it may use the cache). A panic in it is caught and counted in
    /// [`CacheStats::listener_panics`](crate::CacheStats::listener_panics).
    pub fn eviction_listener(mut self, listener: impl Fn(&K, &V, RemovalCause) + Send + Sync + 'static) -> Self {
        self.listener = Some(Arc::new(listener));
        self
    }

    /// Runs a background thread that reclaims expired entries every `interval` (by the system's time,
    /// whatever the cache's clock), so that they leave, and listeners hear of it, without any call into
    /// the cache. The thread ends when the last handle to the cache is dropped. Without it, expired
    /// entries are reclaimed a few at a time by writes, and all at once by
    /// [`Cache::run_pending_maintenance`].
    pub fn maintenance_interval(mut self, interval: Duration) -> Self {
        self.maintenance_interval = Some(interval);
        self
    }

    /// The hasher for keys. The default is foldhash's, seeded randomly per cache.
    pub fn hasher<S2: BuildHasher>(self, hasher: S2) -> CacheBuilder<K, V, S2> {
        CacheBuilder {
            max_capacity: self.max_capacity,
            max_weight: self.max_weight,
            weigher: self.weigher,
            time_to_live: self.time_to_live,
            time_to_idle: self.time_to_idle,
            clock: self.clock,
            hasher,
            shards: self.shards,
            listener: self.listener,
            maintenance_interval: self.maintenance_interval,
            warming_tasks: self.warming_tasks,
            warm_every: self.warm_every,
            refresh: self.refresh,
            _types: PhantomData,
        }
    }

    /// A warming task (the seed's `add_warming_task`): it returns entries to insert, and runs when the
    /// cache is built, on every [`Cache::warm`], and on the [`warm_every`](Self::warm_every) schedule.
    pub fn warming_task<E>(mut self, task: impl Fn() -> Result<Vec<(K, V)>, E> + Send + Sync + 'static) -> Self
    where
        E: Into<BoxError>,
    {
        self.warming_tasks.push(Arc::new(move || task().map_err(Into::into)));
        self
    }

    /// Runs the warming tasks again every `interval`, measured on the cache's clock, from the maintenance
    /// thread (started for it if [`maintenance_interval`](Self::maintenance_interval) is not set) or
    /// [`Cache::run_pending_maintenance`].
    pub fn warm_every(mut self, interval: Duration) -> Self {
        self.warm_every = Some(interval);
        self
    }

    /// Refresh-ahead: an entry read within `within` of its expiry is reloaded with `loader` in the
    /// background (one thread per cache) and replaced, with a fresh time to live, before it expires; the
    /// read itself returns the current value at once. Entries without a time to live never refresh.
    pub fn refresh_ahead<E>(
        mut self,
        within: Duration,
        loader: impl Fn(&K) -> Result<V, E> + Send + Sync + 'static,
    ) -> Self
    where
        K: Clone,
        E: Into<BoxError>,
    {
        self.refresh = Some(RefreshConfig {
            within,
            loader: Arc::new(move |key| loader(key).map_err(Into::into)),
            clone_key: K::clone,
        });
        self
    }

    /// Checks the configuration and builds the cache.
    pub fn build(self) -> Result<Cache<K, V, S>, BuildError>
    where
        K: Hash + Eq + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
        S: BuildHasher + Send + Sync + 'static,
    {
        let max_weight = match (self.max_capacity, self.max_weight, self.weigher.is_some()) {
            (None, None, false) => return Err(BuildError::Unbounded),
            (None, None, true) => return Err(BuildError::HalfWeighted("weigher")),
            (Some(_), Some(_), _) => return Err(BuildError::TwoBounds),
            (Some(_), None, true) => return Err(BuildError::TwoBounds),
            (None, Some(_), false) => return Err(BuildError::HalfWeighted("max_weight")),
            (Some(entries), None, false) => entries,
            (None, Some(total), true) => total,
        };
        if self.time_to_live == Some(Duration::ZERO) {
            return Err(BuildError::ZeroDuration("time_to_live"));
        }
        if self.time_to_idle == Some(Duration::ZERO) {
            return Err(BuildError::ZeroDuration("time_to_idle"));
        }
        if self.warm_every == Some(Duration::ZERO) {
            return Err(BuildError::ZeroDuration("warm_every"));
        }
        if self.maintenance_interval == Some(Duration::ZERO) {
            return Err(BuildError::ZeroDuration("maintenance_interval"));
        }
        let shards = match self.shards {
            Some(0) => return Err(BuildError::ZeroShards),
            Some(shards) => shards.next_power_of_two(),
            None => {
                let cores = std::thread::available_parallelism().map_or(4, |cores| cores.get());
                let by_size = usize::try_from(max_weight / MIN_SHARD_WEIGHT).unwrap_or(usize::MAX).max(1);
                // The largest power of two not above `by_size`, so every shard keeps its minimum.
                let by_size = 1usize << (usize::BITS - 1 - by_size.leading_zeros());
                (cores * 4).next_power_of_two().min(by_size)
            }
        };
        let shards = shards.min(1 << 16);
        Ok(Cache::from_config(Config {
            max_weight,
            weigher: self.weigher,
            time_to_live: self.time_to_live,
            time_to_idle: self.time_to_idle,
            clock: self.clock.unwrap_or_default(),
            hasher: self.hasher,
            shards,
            listener: self.listener,
            maintenance_interval: self.maintenance_interval,
            warming_tasks: self.warming_tasks,
            warm_every: self.warm_every,
            refresh: self.refresh,
        }))
    }
}
