//! [`Cache`]: the handle, the shards behind it, and the hill climber that tunes the policy (the
//! window's share, ghost admission and narrow admission).

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};
use std::time::Duration;

use quanta::Clock;

use crate::builder::{CacheBuilder, Listener, Weigher};
use crate::loader::{Flight, FlightState, Landed};
use crate::shard::{Absence, Expiry, NEVER, Removed, RemovedList, Shard, Tuning};
use crate::stats::{CacheStats, Counters};
use crate::warm::{REFRESH_QUEUE, RefreshAhead, RefreshLoader, Warming, WarmingTask, spawn_refresher};
use crate::{DefaultHashBuilder, RemovalCause};

/// Slots a write looks at for expired entries on its way out, so that expired entries leave even
/// without a maintenance thread.
const SWEEP_PER_WRITE: usize = 4;
/// Inserts into a shard between two looks at the cache-wide hit ratio.
const INSERTS_PER_TUNING: u32 = 64;

/// What the builder hands over.
pub(crate) struct Config<K, V, S> {
    pub(crate) max_weight: u64,
    pub(crate) weigher: Option<Weigher<K, V>>,
    pub(crate) time_to_live: Option<Duration>,
    pub(crate) time_to_idle: Option<Duration>,
    pub(crate) clock: Clock,
    pub(crate) hasher: S,
    pub(crate) shards: usize,
    pub(crate) listener: Option<Listener<K, V>>,
    pub(crate) maintenance_interval: Option<Duration>,
    pub(crate) warming_tasks: Vec<WarmingTask<K, V>>,
    pub(crate) warm_every: Option<Duration>,
    pub(crate) refresh: Option<RefreshConfig<K, V>>,
}

/// Refresh-ahead as configured: the window, the loader, and how to clone a key for the queue.
pub(crate) struct RefreshConfig<K, V> {
    pub(crate) within: Duration,
    pub(crate) loader: RefreshLoader<K, V>,
    pub(crate) clone_key: fn(&K) -> K,
}

/// A concurrent, bounded cache: cheap to clone (an `Arc`), safe to share between threads.
///
/// Reads ([`get`](Self::get)) take a shard's read lock and write nothing shared but that lock; writes
/// run the eviction policy (adaptive W-TinyLFU, described in `docs/cache.md`) under the shard's write
/// lock. Values are returned by clone: store an `Arc` for values that are costly to clone.
pub struct Cache<K, V, S = DefaultHashBuilder> {
    pub(crate) inner: Arc<Inner<K, V, S>>,
}

impl<K, V, S> Clone for Cache<K, V, S> {
    fn clone(&self) -> Self {
        Cache { inner: Arc::clone(&self.inner) }
    }
}

impl<K, V, S> fmt::Debug for Cache<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("shards", &self.inner.shards.len())
            .field("max_weight", &self.inner.max_weight)
            .finish_non_exhaustive()
    }
}

/// A shard behind its lock, on cache lines of its own.
#[repr(align(128))]
pub(crate) struct ShardCell<K, V> {
    shard: RwLock<Shard<K, V>>,
}

pub(crate) struct Inner<K, V, S> {
    shards: Box<[ShardCell<K, V>]>,
    shard_mask: u64,
    pub(crate) hasher: S,
    weigher: Option<Weigher<K, V>>,
    listener: Option<Listener<K, V>>,
    time_to_live: Option<u64>,
    time_to_idle: Option<u64>,
    /// Set once any entry may expire; until then writes skip reading the clock.
    may_expire: AtomicBool,
    clock: Clock,
    epoch: quanta::Instant,
    pub(crate) counters: Counters,
    max_weight: u64,
    /// The window's share of each shard, an `f64` as bits, set by the climber.
    window_share: AtomicU64,
    /// The probability of admitting a returning ghost, an `f64` as bits, set by the climber.
    ghost_admission: AtomicU64,
    /// The probability of admitting a candidate whose frequency beats its victim's by one, as `f64` bits.
    narrow_admission: AtomicU64,
    climber: Mutex<Climber>,
    maintenance: Mutex<Option<std::thread::Thread>>,
    pub(crate) warming: Mutex<Warming<K, V>>,
    refresh: Option<RefreshAhead<K>>,
}

impl<K, V> Cache<K, V> {
    /// A builder; at least a bound ([`CacheBuilder::max_capacity`] or a weigher with
    /// [`CacheBuilder::max_weight`]) is needed.
    pub fn builder() -> CacheBuilder<K, V> {
        CacheBuilder::new()
    }
}

impl<K, V> Cache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A cache of up to `max_capacity` entries, with defaults for everything else.
    pub fn new(max_capacity: u64) -> Self {
        let built = Cache::builder().max_capacity(max_capacity).build();
        // A capacity alone is a complete configuration: nothing in it can be rejected.
        built.unwrap_or_else(|error| unreachable!("a capacity-only configuration is valid: {error}"))
    }
}

impl<K, V, S> Cache<K, V, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    pub(crate) fn from_config(config: Config<K, V, S>) -> Self {
        // No more shards than units of weight, so that splitting the bound never rounds it up; the
        // remainder of the division goes one unit each to the first shards.
        let most_shards = 1u64 << (u64::BITS - 1 - config.max_weight.max(1).leading_zeros());
        let shard_count = (config.shards as u64).min(most_shards);
        let (base_weight, remainder) = (config.max_weight / shard_count, config.max_weight % shard_count);
        let shards = (0..shard_count)
            .map(|index| {
                let shard_weight = base_weight + u64::from(index < remainder);
                let expected_entries = if config.weigher.is_some() {
                    usize::try_from(shard_weight.min(1024)).unwrap_or(1024)
                } else {
                    usize::try_from(shard_weight).unwrap_or(usize::MAX)
                };
                ShardCell {
                    shard: RwLock::new(Shard::new(shard_weight, expected_entries, index.wrapping_mul(0x9E37_79B9) + 1)),
                }
            })
            .collect();
        let nanos = |duration: Duration| u64::try_from(duration.as_nanos()).unwrap_or(NEVER);
        let epoch = config.clock.now();
        let (refresh, refresh_work) = match config.refresh {
            Some(refresh) => {
                let (sender, receiver) = std::sync::mpsc::sync_channel(REFRESH_QUEUE);
                let ahead = RefreshAhead::new(nanos(refresh.within), sender, refresh.clone_key);
                (Some(ahead), Some((receiver, refresh.loader)))
            }
            None => (None, None),
        };
        let has_warming = !config.warming_tasks.is_empty();
        let inner = Arc::new(Inner {
            shards,
            shard_mask: shard_count - 1,
            hasher: config.hasher,
            weigher: config.weigher,
            listener: config.listener,
            time_to_live: config.time_to_live.map(nanos),
            time_to_idle: config.time_to_idle.map(nanos),
            may_expire: AtomicBool::new(config.time_to_live.is_some() || config.time_to_idle.is_some()),
            clock: config.clock,
            epoch,
            counters: Counters::default(),
            max_weight: config.max_weight,
            window_share: AtomicU64::new(Climber::INITIAL_SHARE.to_bits()),
            ghost_admission: AtomicU64::new(Climber::INITIAL_GHOST_ADMISSION.to_bits()),
            narrow_admission: AtomicU64::new(Climber::INITIAL_NARROW_ADMISSION.to_bits()),
            climber: Mutex::new(Climber::new()),
            maintenance: Mutex::new(None),
            warming: Mutex::new(Warming {
                tasks: config.warming_tasks,
                every: config.warm_every.map(nanos),
                next_due: config.warm_every.map_or(NEVER, nanos),
            }),
            refresh,
        });
        // A schedule needs someone to keep it: without a maintenance interval of its own, the thread
        // wakes often enough for the warming interval (at least once a second).
        let interval = match (config.maintenance_interval, config.warm_every) {
            (Some(interval), _) => Some(interval),
            (None, Some(every)) => Some(every.min(Duration::from_secs(1))),
            (None, None) => None,
        };
        if let Some(interval) = interval {
            spawn_maintenance(&inner, interval);
        }
        if let Some((receiver, loader)) = refresh_work {
            spawn_refresher(&inner, receiver, loader);
        }
        let cache = Cache { inner };
        if has_warming {
            cache.warm();
        }
        cache
    }

    /// The value for `key`, if present and unexpired. Counts a hit or a miss.
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let found = self.peek(key);
        if found.is_some() {
            self.inner.counters.hit()
        } else {
            self.inner.counters.miss()
        }
        found
    }

    /// [`get`](Self::get) without counting a hit or a miss (it still counts as an access). The read
    /// path is forced inline into `get` (its rare branches are calls), so callers get it whole.
    #[inline(always)]
    pub(crate) fn peek<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.look_hashed(self.inner.hash_of(key), key).ok()
    }

    /// [`peek`](Self::peek) with the key's hash already computed, telling on a miss what the lookup
    /// learned ([`Absence`]).
    #[inline(always)]
    pub(crate) fn look_hashed<Q>(&self, hash: u64, key: &Q) -> Result<V, Absence>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.inner.look_locked(&self.inner.read(hash), hash, key)
    }

    /// Whether `key` is present and unexpired; counts neither a hit nor a miss and does not count as
    /// an access for eviction or time to idle.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.inner.hash_of(key);
        let now = self.inner.now();
        self.inner.read(hash).contains(hash, key, now)
    }

    /// Inserts or replaces the value for `key`, with the cache's time to live (the seed's `set`).
    pub fn insert(&self, key: K, value: V) {
        let hash = self.inner.hash_of(&key);
        self.inner.insert(hash, key, value, self.inner.time_to_live, None);
    }

    /// Inserts or replaces the value for `key`, expiring after `ttl` instead of the cache's default.
    ///
    /// A zero `ttl` stores nothing: an entry already there for the key is removed (as replaced) and the
    /// listener hears of the new value as expired.
    pub fn insert_with_ttl(&self, key: K, value: V, ttl: Duration) {
        let hash = self.inner.hash_of(&key);
        self.insert_hashed(hash, key, value, Some(ttl), None);
    }

    /// Inserts with the key's hash already computed; `ttl` of `None` means the cache's. `landing` is the
    /// caller's load in flight for the key (its token and the value loaded): it is retired in the same
    /// critical section as the insert (so that no caller finds the key neither cached nor in flight in
    /// between), and its waiters get the value before any user code (listeners, drops) runs.
    #[inline]
    pub(crate) fn insert_hashed(
        &self,
        hash: u64,
        key: K,
        value: V,
        ttl: Option<Duration>,
        landing: Option<Landed<'_, V>>,
    ) {
        match ttl {
            None => self.inner.insert(hash, key, value, self.inner.time_to_live, landing),
            Some(ttl) => self.insert_with_ttl_hashed(hash, key, value, ttl, landing),
        }
    }

    /// [`insert_hashed`](Self::insert_hashed) with a time to live of the entry's own.
    #[inline(never)]
    fn insert_with_ttl_hashed(&self, hash: u64, key: K, value: V, ttl: Duration, landing: Option<Landed<'_, V>>) {
        if ttl.is_zero() {
            let mut removed = RemovedList::new();
            let flight = {
                let mut shard = self.inner.write(hash);
                if let Some((old_key, old_value, _)) = shard.remove(hash, &key) {
                    shard.count_removal(RemovalCause::Replaced);
                    removed.push(Removed { key: old_key, value: old_value, cause: RemovalCause::Replaced });
                }
                // The new value, which never enters the shard, counts as expired there too.
                shard.count_removal(RemovalCause::Expired);
                landing.and_then(|landing| shard.flights.retire(hash, landing.token))
            };
            land(flight, landing);
            removed.push(Removed { key, value, cause: RemovalCause::Expired });
            self.inner.finish(removed);
            return;
        }
        if !self.inner.may_expire.load(Ordering::Relaxed) {
            self.inner.may_expire.store(true, Ordering::Relaxed);
        }
        self.inner.insert(hash, key, value, Some(u64::try_from(ttl.as_nanos()).unwrap_or(NEVER)), landing)
    }

    /// Removes the entry for `key`, returning its value if it was present and unexpired (the seed's
    /// `delete`, which returned whether it was).
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.inner.hash_of(key);
        let now = self.inner.now();
        let (key, value, cause) = {
            let mut shard = self.inner.write(hash);
            let (key, value, expires) = shard.remove(hash, key)?;
            let cause = if now >= expires { RemovalCause::Expired } else { RemovalCause::Explicit };
            shard.count_removal(cause);
            (key, value, cause)
        };
        self.inner.notify(&key, &value, cause);
        (cause == RemovalCause::Explicit).then_some(value)
    }

    /// Removes every entry (each reported to the listener as explicit).
    pub fn clear(&self) {
        for cell in self.inner.shards.iter() {
            let mut removed = RemovedList::new();
            write_lock(&cell.shard).drain(RemovalCause::Explicit, &mut removed);
            self.inner.finish(removed);
        }
    }

    /// Reclaims every expired entry now (the background thread and writes do it a little at a time),
    /// and runs a warming round if the schedule says one is due.
    pub fn run_pending_maintenance(&self) {
        self.inner.sweep_all();
        self.warm_if_due();
    }

    /// Entries held, expired ones not yet reclaimed included.
    pub fn entry_count(&self) -> usize {
        self.inner.entry_count()
    }

    /// Total weight held (the entry count, without a weigher).
    pub fn weight(&self) -> u64 {
        self.inner.shards.iter().map(|cell| read_lock(&cell.shard).weight()).sum()
    }

    /// Whether the cache holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entry_count() == 0
    }

    /// The bound on weight (entries, without a weigher).
    pub fn max_weight(&self) -> u64 {
        self.inner.max_weight
    }

    /// A snapshot of the counters (the seed's `get_stats`).
    pub fn stats(&self) -> CacheStats {
        let (mut entries, mut weight, mut removals) = (0, 0, [0u64; 4]);
        for cell in self.inner.shards.iter() {
            let shard = read_lock(&cell.shard);
            entries += shard.len();
            weight += shard.weight();
            removals.iter_mut().zip(shard.removals()).for_each(|(total, count)| *total += count);
        }
        let dropped = self.inner.refresh.as_ref().map_or(0, |refresh| refresh.dropped.load(Ordering::Relaxed));
        self.inner.counters.snapshot(entries, weight, self.inner.max_weight, dropped, removals)
    }

    /// Heap bytes the cache's own structures hold (tables, slots, queues, sketch, ghosts), beside what
    /// keys and values allocate themselves.
    pub fn heap_bytes(&self) -> usize {
        self.inner.shards.iter().map(|cell| read_lock(&cell.shard).heap_bytes()).sum()
    }

    /// Up to `limit` live entries, the most valuable to keep first: by estimated popularity, then (per
    /// shard) protected before probation before window. Used to save a hot set for a warm restart; only
    /// the entries returned are cloned.
    pub fn hottest(&self, limit: usize) -> Vec<(K, V)>
    where
        K: Clone,
    {
        let now = self.inner.now();
        let mut found: Vec<(u8, usize, K, V)> = Vec::new();
        for cell in self.inner.shards.iter() {
            let shard = read_lock(&cell.shard);
            let mut ranked: Vec<(u8, usize, &K, &V)> = Vec::new();
            shard.for_each_hot(now, |key, value, frequency| ranked.push((frequency, ranked.len(), key, value)));
            let hottest_first = |a: &(u8, usize, &K, &V), b: &(u8, usize, &K, &V)| b.0.cmp(&a.0).then(a.1.cmp(&b.1));
            if ranked.len() > limit && limit > 0 {
                ranked.select_nth_unstable_by(limit - 1, hottest_first);
            }
            ranked.truncate(limit);
            found.extend(
                ranked.into_iter().map(|(frequency, rank, key, value)| (frequency, rank, key.clone(), value.clone())),
            );
        }
        found.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        found.truncate(limit);
        found.into_iter().map(|(_, _, key, value)| (key, value)).collect()
    }
}

impl<K, V, S> Inner<K, V, S>
where
    K: Hash + Eq,
    S: BuildHasher,
{
    #[inline]
    fn cell(&self, hash: u64) -> &ShardCell<K, V> {
        // Bits 32 and up: hashbrown picks buckets with the low bits and tags with the top seven.
        &self.shards[((hash >> 32) & self.shard_mask) as usize]
    }

    /// The key's hash. Written out rather than through `BuildHasher::hash_one`, which the compiler may
    /// leave as a call of its own on the read path.
    #[inline(always)]
    pub(crate) fn hash_of<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        let mut hasher = self.hasher.build_hasher();
        key.hash(&mut hasher);
        std::hash::Hasher::finish(&hasher)
    }

    #[inline]
    fn read(&self, hash: u64) -> RwLockReadGuard<'_, Shard<K, V>> {
        read_lock(&self.cell(hash).shard)
    }

    pub(crate) fn write(&self, hash: u64) -> RwLockWriteGuard<'_, Shard<K, V>> {
        write_lock(&self.cell(hash).shard)
    }

    /// The read path in a shard the caller has locked (for reading or writing); on a miss, what the
    /// lookup learned.
    #[inline(always)]
    pub(crate) fn look_locked<Q>(&self, shard: &Shard<K, V>, hash: u64, key: &Q) -> Result<V, Absence>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
        V: Clone,
    {
        shard.look(hash, key, || Expiry { now: self.now(), idle: self.time_to_idle, refresh: self.refresh.as_ref() })
    }

    /// The cache's clock, read.
    pub(crate) fn clock_now(&self) -> quanta::Instant {
        self.clock.now()
    }

    /// Nanoseconds since the cache was built, on its clock.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        u64::try_from(self.clock.now().duration_since(self.epoch).as_nanos()).unwrap_or(NEVER - 1)
    }

    /// Inserts an entry and, with `landing`, retires that load in flight in the same critical section and
    /// wakes its waiters with the value before reporting and dropping removed entries (user code that
    /// may panic).
    pub(crate) fn insert(&self, hash: u64, key: K, value: V, time_to_live: Option<u64>, landing: Option<Landed<'_, V>>)
    where
        V: Clone,
    {
        let weight = self.weigher.as_ref().map_or(1, |weigher| weigher(&key, &value).max(1));
        let now = if self.may_expire.load(Ordering::Relaxed) { self.now() } else { 0 };
        let deadline = time_to_live.map_or(NEVER, |ttl| now.saturating_add(ttl));
        let expires = self.time_to_idle.map_or(deadline, |tti| now.saturating_add(tti).min(deadline));
        let tuning = Tuning {
            window_share: f64::from_bits(self.window_share.load(Ordering::Relaxed)),
            ghost_admission: f64::from_bits(self.ghost_admission.load(Ordering::Relaxed)),
            narrow_admission: f64::from_bits(self.narrow_admission.load(Ordering::Relaxed)),
            now,
        };
        let mut removed = RemovedList::new();
        let (tune, flight) = {
            let mut shard = self.write(hash);
            let absence = landing.map_or(Absence::UNKNOWN, |landing| landing.absence);
            shard.insert(hash, key, value, weight, deadline, expires, tuning, absence, &mut removed);
            shard.sweep_expired(now, SWEEP_PER_WRITE, &mut removed);
            let flight = landing.and_then(|landing| shard.flights.retire(hash, landing.token));
            let tune = shard.inserts_since_tuning >= INSERTS_PER_TUNING;
            if tune {
                shard.inserts_since_tuning = 0;
            }
            (tune, flight)
        };
        land(flight, landing);
        if tune {
            self.tune();
        }
        self.finish(removed);
    }

    fn entry_count(&self) -> usize {
        self.shards.iter().map(|cell| read_lock(&cell.shard).len()).sum()
    }

    fn sweep_all(&self) {
        let now = self.now();
        for cell in self.shards.iter() {
            let mut removed = RemovedList::new();
            {
                let mut shard = write_lock(&cell.shard);
                let slots = shard.len().max(1) * 2;
                shard.sweep_expired(now, slots, &mut removed);
            }
            self.finish(removed);
        }
    }

    /// Feeds the cache-wide hit ratio to the climber, which may move one of its knobs.
    fn tune(&self) {
        let Ok(mut climber) = self.climber.try_lock() else { return };
        let (hits, misses) = self.counters.reads();
        let sample = if self.weigher.is_some() { self.entry_count().max(1024) as u64 } else { self.max_weight.max(64) };
        if let Some([share, ghosts, narrow]) = climber.observe(
            hits,
            misses,
            sample.saturating_mul(Climber::SAMPLE_PER_ENTRY),
            sample.saturating_mul(Climber::MISSES_PER_ENTRY),
        ) {
            self.window_share.store(share.to_bits(), Ordering::Relaxed);
            self.ghost_admission.store(ghosts.to_bits(), Ordering::Relaxed);
            self.narrow_admission.store(narrow.to_bits(), Ordering::Relaxed);
        }
    }

    /// Reports removed entries (counted already, by their shard) to the listener, then drops them, all
    /// outside any lock.
    #[inline]
    pub(crate) fn finish(&self, removed: RemovedList<K, V>) {
        if self.listener.is_some() {
            removed.for_each(|entry| self.notify(&entry.key, &entry.value, entry.cause));
        }
    }

    /// Tells the listener, if there is one, of a removed entry; a listener that panics is counted.
    fn notify(&self, key: &K, value: &V, cause: RemovalCause) {
        if let Some(listener) = &self.listener
            && catch_unwind(AssertUnwindSafe(|| listener(key, value, cause))).is_err()
        {
            self.counters.listener_panicked();
        }
    }
}

impl<K, V, S> Drop for Inner<K, V, S> {
    fn drop(&mut self) {
        // Wake the maintenance thread so that it finds the cache gone and ends now, not an interval later.
        if let Some(thread) = lock(&self.maintenance).take() {
            thread.unpark();
        }
    }
}

fn spawn_maintenance<K, V, S>(inner: &Arc<Inner<K, V, S>>, interval: Duration)
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    let weak: Weak<Inner<K, V, S>> = Arc::downgrade(inner);
    let spawned = std::thread::Builder::new().name("infra-cache-maintenance".into()).spawn(move || {
        loop {
            std::thread::park_timeout(interval);
            let Some(inner) = weak.upgrade() else { break };
            Cache { inner }.run_pending_maintenance();
        }
    });
    // Without the thread (the system refused one), writes and explicit calls still reclaim.
    if let Ok(handle) = spawned {
        *lock(&inner.maintenance) = Some(handle.thread().clone());
    }
}

/// Caffeine's hill climber, on three parameters taken in turn: the window's share, the probability of
/// admitting a returning ghost, and the probability of admitting a candidate that beats its victim's
/// frequency by exactly one (a narrow win). After each sample a parameter moves again in the direction
/// that last raised the hit ratio, or turns back; steps shrink as it settles and restart when the hit
/// ratio jumps (a new workload).
///
/// The third knob is ours. A candidate's count includes the read that brought it in, while an equally
/// popular victim's next read is still to come: plain TinyLFU lets such newcomers displace one another
/// (keys read once a period churn through the cache instead of some of them staying). Recency-heavy
/// workloads want the newcomer (narrow wins admitted), frequency-heavy ones want the incumbent; the climber
/// finds out which this workload is.
#[derive(Debug)]
struct Climber {
    /// The window's share, ghost admission, narrow admission.
    knobs: [Knob; 3],
    /// The knob whose turn it is at the next sample.
    turn: usize,
    /// The moving average of the hit ratio, as of the last sample.
    previous_ratio: f64,
    samples: u64,
    hits: u64,
    misses: u64,
}

#[derive(Debug)]
struct Knob {
    value: f64,
    step: f64,
    initial_step: f64,
}

impl Knob {
    /// Judges this knob's last move by the change in hit ratio that followed it: the next move goes the
    /// same way if the ratio did not fall, back if it did. Steps shrink as the knob settles and grow back
    /// to the initial step when the ratio jumps (a new workload).
    fn judge(&mut self, change: f64) {
        let direction = if change >= 0.0 { self.step } else { -self.step };
        self.step = if change.abs() >= Climber::RESTART {
            self.initial_step.abs().copysign(direction)
        } else {
            Climber::DECAY * direction
        };
    }

    /// Moves by the current step.
    fn make_move(&mut self) {
        self.value = (self.value + self.step).clamp(0.0, 1.0);
    }
}

impl Climber {
    const INITIAL_SHARE: f64 = 0.01;
    const SHARE_STEP: f64 = 0.0625;
    const INITIAL_GHOST_ADMISSION: f64 = 1.0;
    const GHOST_STEP: f64 = 0.125;
    /// Narrow wins start admitted, as in plain TinyLFU. The steps, the knobs' order (ghost admission
    /// first) and the other constants were chosen by replaying the ARC traces (docs/cache.md).
    const INITIAL_NARROW_ADMISSION: f64 = 1.0;
    const NARROW_STEP: f64 = 0.25;
    const DECAY: f64 = 0.98;
    const RESTART: f64 = 0.05;
    const SAMPLE_PER_ENTRY: u64 = 10;
    /// Misses a sample must hold as well, per entry. A knob's move shows in the hit ratio once the cache's
    /// contents have turned over, and `SAMPLE_PER_ENTRY` capacities of reads hold only that many times the
    /// miss ratio turnovers: 1.4 at a 14% miss ratio, too few to tell one move's effect from the moves
    /// before it. With four, the `get_or_insert_with` benchmark's stream settles at 2-3% fewer misses
    /// (docs/cache.md); caches that miss 40% of reads or more (the ARC rows) sample as before.
    const MISSES_PER_ENTRY: u64 = 4;
    /// Weight of the newest sample in the moving average of the hit ratio.
    const SMOOTHING: f64 = 0.7;

    fn new() -> Self {
        Climber {
            // The first move shrinks the window; the initial 1% is a frequency-first guess.
            knobs: [
                Knob { value: Self::INITIAL_SHARE, step: -Self::SHARE_STEP, initial_step: Self::SHARE_STEP },
                // Ghosts start admitted, and the first move takes a step towards not.
                Knob { value: Self::INITIAL_GHOST_ADMISSION, step: -Self::GHOST_STEP, initial_step: Self::GHOST_STEP },
                // Narrow wins start admitted (plain TinyLFU), and the first move takes a step towards not.
                Knob {
                    value: Self::INITIAL_NARROW_ADMISSION,
                    step: -Self::NARROW_STEP,
                    initial_step: Self::NARROW_STEP,
                },
            ],
            // Ghost admission moves first.
            turn: 1,
            previous_ratio: 0.0,
            samples: 0,
            hits: 0,
            misses: 0,
        }
    }

    /// Given the running totals, returns the new [share, ghost admission, narrow admission] when a
    /// sample of at least `sample` reads and `least_misses` misses has passed.
    fn observe(&mut self, hits: u64, misses: u64, sample: u64, least_misses: u64) -> Option<[f64; 3]> {
        let (sample_hits, sample_misses) = (hits - self.hits, misses - self.misses);
        if sample_hits + sample_misses < sample || sample_misses < least_misses {
            return None;
        }
        self.hits = hits;
        self.misses = misses;
        let ratio = sample_hits as f64 / (sample_hits + sample_misses) as f64;
        // Small caches have small samples, and their hit ratio jumps from one to the next: judging moves
        // by a moving average keeps the climber from chasing noise.
        let smoothed = if self.samples == 0 {
            ratio
        } else {
            Self::SMOOTHING * ratio + (1.0 - Self::SMOOTHING) * self.previous_ratio
        };
        self.samples += 1;
        let change = smoothed - self.previous_ratio;
        self.previous_ratio = smoothed;
        // The change follows the move made at the last sample, by the knob before this one in turn: that
        // knob is judged by it (not the one about to move, whose own move is older).
        if self.samples > 1 {
            let moved_last = (self.turn + self.knobs.len() - 1) % self.knobs.len();
            self.knobs[moved_last].judge(change);
        }
        self.knobs[self.turn].make_move();
        self.turn = (self.turn + 1) % self.knobs.len();
        Some(self.knobs.each_ref().map(|knob| knob.value))
    }
}

/// Wakes a retired flight's waiters, if it had any, with the landed value.
#[inline]
fn land<V: Clone>(flight: Option<Arc<Flight<V>>>, landing: Option<Landed<'_, V>>) {
    if let (Some(flight), Some(landing)) = (flight, landing) {
        flight.land(FlightState::Loaded(landing.value.clone()));
    }
}

/// Locks a mutex, going on past poisoning: every writer leaves the state consistent before running
/// user code that could panic (see the shard module).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[inline]
fn read_lock<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write_lock<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::Climber;

    /// Feeds the climber one sample of 1,000 reads at `ratio`, returning its knobs if it moved.
    fn sample(climber: &mut Climber, totals: &mut (u64, u64), ratio: f64) -> Option<[f64; 3]> {
        let hits = (ratio * 1_000.0) as u64;
        totals.0 += hits;
        totals.1 += 1_000 - hits;
        climber.observe(totals.0, totals.1, 1_000, 0)
    }

    fn close(a: [f64; 3], b: [f64; 3]) -> bool {
        a.iter().zip(b).all(|(a, b)| (a - b).abs() < 1e-9)
    }

    #[test]
    fn the_climber_moves_its_knobs_in_turn_and_judges_each_by_the_change_that_followed_it() {
        let mut climber = Climber::new();
        let mut totals = (0, 0);
        assert_eq!(climber.observe(10, 10, 1_000, 0), None, "no move before a whole sample");
        let (share, ghosts, narrow) = (Climber::INITIAL_SHARE, Climber::INITIAL_GHOST_ADMISSION, 1.0);
        // Ghost admission moves first, then narrow admission, then the share, each a step towards less.
        let after_ghosts = ghosts - Climber::GHOST_STEP;
        let after_narrow = narrow - Climber::NARROW_STEP;
        assert_eq!(sample(&mut climber, &mut totals, 0.5), Some([share, after_ghosts, narrow]));
        assert_eq!(sample(&mut climber, &mut totals, 0.5), Some([share, after_ghosts, after_narrow]));
        // The share goes below zero and is held at it.
        assert_eq!(sample(&mut climber, &mut totals, 0.5), Some([0.0, after_ghosts, after_narrow]));
        // The hit ratio falls after the share's move: ghost admission, whose turn it is, goes on down
        // (its own move had not lowered the ratio) ...
        let knobs = sample(&mut climber, &mut totals, 0.3).expect("a whole sample");
        assert!(close(knobs, [0.0, after_ghosts - Climber::DECAY * Climber::GHOST_STEP, after_narrow]), "{knobs:?}");
        sample(&mut climber, &mut totals, 0.3).expect("a whole sample");
        // ... and the share, judged by the fall, comes back up at its next turn.
        let knobs = sample(&mut climber, &mut totals, 0.3).expect("a whole sample");
        assert!(close([knobs[0], 0.0, 0.0], [Climber::SHARE_STEP, 0.0, 0.0]), "{knobs:?}");
        for round in 0..300 {
            let ratio = if round % 7 < 3 { 0.9 } else { 0.1 };
            let knobs = sample(&mut climber, &mut totals, ratio).expect("every call is a whole sample");
            assert!(knobs.iter().all(|knob| (0.0..=1.0).contains(knob)), "{knobs:?}");
        }
    }

    /// A sample ends once it holds enough reads and enough misses, whichever comes last.
    #[test]
    fn a_sample_holds_enough_misses_too() {
        let mut climber = Climber::new();
        assert_eq!(climber.observe(990, 10, 1_000, 50), None, "enough reads, too few misses");
        assert_eq!(climber.observe(5_000, 49, 1_000, 50), None, "still too few misses");
        assert!(climber.observe(5_000, 50, 1_000, 50).is_some(), "both");
        assert_eq!(climber.observe(5_100, 150, 1_000, 50), None, "enough misses, too few reads");
        assert!(climber.observe(5_900, 150, 1_000, 50).is_some(), "both again");
    }
}
