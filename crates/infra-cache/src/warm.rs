//! Warming (the seed's `add_warming_task` and `warm_cache`), refresh-ahead, and their background work.
//!
//! Warming tasks return batches of entries; they run when the cache is built, on demand
//! ([`Cache::warm`]), and on a schedule measured on the cache's clock ([`crate::CacheBuilder::warm_every`]),
//! run by the maintenance thread or by [`Cache::run_pending_maintenance`]. A failing or panicking task is
//! reported in the [`WarmReport`] and does not stop the others.
//!
//! Refresh-ahead ([`crate::CacheBuilder::refresh_ahead`]): a read that finds an entry within the refresh
//! window of its expiry queues the key for a background reload, once; the reader gets the current value
//! at once, and the reloaded value replaces it (with a fresh time to live) before it expires, so a hot
//! key never misses. Requests beyond the queue's capacity are dropped and counted
//! ([`crate::CacheStats::refreshes_dropped`]); the entry then reloads on its next miss.

use std::error::Error;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::cache::{Cache, Inner, lock};

/// A boxed error from a warming task or refresh loader.
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// A warming task: returns the entries to put in the cache.
pub(crate) type WarmingTask<K, V> = Arc<dyn Fn() -> Result<Vec<(K, V)>, BoxError> + Send + Sync>;

/// Reloads one key for refresh-ahead.
pub(crate) type RefreshLoader<K, V> = Arc<dyn Fn(&K) -> Result<V, BoxError> + Send + Sync>;

/// Requests queued for the refresher before further ones are dropped (and counted).
pub(crate) const REFRESH_QUEUE: usize = 4096;

/// What one round of warming did ([`Cache::warm`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WarmReport {
    /// Tasks run.
    pub tasks_run: usize,
    /// Entries inserted.
    pub entries: usize,
    /// One line per task that failed or panicked: its position among the tasks and what went wrong.
    pub failures: Vec<String>,
}

/// Warming tasks and their schedule.
pub(crate) struct Warming<K, V> {
    pub(crate) tasks: Vec<WarmingTask<K, V>>,
    /// Interval in clock nanoseconds, and when the next round is due.
    pub(crate) every: Option<u64>,
    pub(crate) next_due: u64,
}

impl<K, V> fmt::Debug for Warming<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Warming").field("tasks", &self.tasks.len()).field("every", &self.every).finish()
    }
}

/// Refresh-ahead as the read path sees it: how close to expiry counts as due, and the refresher's queue.
pub(crate) struct RefreshAhead<K> {
    /// The window before expiry, in clock nanoseconds.
    pub(crate) within: u64,
    sender: SyncSender<K>,
    clone_key: fn(&K) -> K,
    /// Requests that found the queue full.
    pub(crate) dropped: AtomicU64,
}

impl<K> fmt::Debug for RefreshAhead<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshAhead").field("within", &self.within).finish_non_exhaustive()
    }
}

impl<K> RefreshAhead<K> {
    pub(crate) fn new(within: u64, sender: SyncSender<K>, clone_key: fn(&K) -> K) -> Self {
        RefreshAhead { within, sender, clone_key, dropped: AtomicU64::new(0) }
    }

    /// Queues a key for reloading; false (and counted) when the queue is full or the refresher is gone.
    pub(crate) fn request(&self, key: &K) -> bool {
        let queued = self.sender.try_send((self.clone_key)(key)).is_ok();
        if !queued {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        queued
    }
}

impl<K, V, S> Cache<K, V, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    /// Adds a warming task (the seed's `add_warming_task`): it returns entries to insert, and runs on
    /// every [`warm`](Self::warm) and scheduled round.
    pub fn add_warming_task<E>(&self, task: impl Fn() -> Result<Vec<(K, V)>, E> + Send + Sync + 'static)
    where
        E: Into<BoxError>,
    {
        lock(&self.inner.warming).tasks.push(Arc::new(move || task().map_err(Into::into)));
    }

    /// Runs every warming task now and inserts what they return with the cache's time to live (the
    /// seed's `warm_cache`).
    pub fn warm(&self) -> WarmReport {
        self.warm_inner(None)
    }

    /// [`warm`](Self::warm), inserting with `ttl` instead of the cache's time to live.
    pub fn warm_with_ttl(&self, ttl: Duration) -> WarmReport {
        self.warm_inner(Some(ttl))
    }

    fn warm_inner(&self, ttl: Option<Duration>) -> WarmReport {
        // The tasks run without the lock held: a task may add another, or take its time.
        let tasks = lock(&self.inner.warming).tasks.clone();
        let mut report = WarmReport::default();
        for (position, task) in tasks.iter().enumerate() {
            report.tasks_run += 1;
            match catch_unwind(AssertUnwindSafe(|| task())) {
                Ok(Ok(entries)) => {
                    report.entries += entries.len();
                    for (key, value) in entries {
                        let hash = self.inner.hash_of(&key);
                        self.insert_hashed(hash, key, value, ttl, None);
                    }
                }
                Ok(Err(error)) => report.failures.push(format!("warming task {position} failed: {error}")),
                Err(_) => report.failures.push(format!("warming task {position} panicked")),
            }
        }
        self.inner.counters.warmed(report.entries as u64, report.failures.len() as u64);
        report
    }

    /// Runs a warming round if the schedule says one is due.
    pub(crate) fn warm_if_due(&self) {
        let now = self.inner.now();
        {
            let mut warming = lock(&self.inner.warming);
            let Some(every) = warming.every else { return };
            if now < warming.next_due {
                return;
            }
            warming.next_due = now.saturating_add(every);
        }
        self.warm();
    }
}

/// Runs refresh-ahead reloads until the cache is gone.
pub(crate) fn spawn_refresher<K, V, S>(inner: &Arc<Inner<K, V, S>>, keys: Receiver<K>, loader: RefreshLoader<K, V>)
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    let weak: Weak<Inner<K, V, S>> = Arc::downgrade(inner);
    // Without the thread (the system refused one), requests fail to queue and are counted as dropped.
    let _ = std::thread::Builder::new().name("infra-cache-refresh".into()).spawn(move || {
        // The queue's sender lives in the cache: when the cache is dropped, `recv` fails and this ends.
        while let Ok(key) = keys.recv() {
            let Some(inner) = weak.upgrade() else { break };
            let cache = Cache { inner };
            match catch_unwind(AssertUnwindSafe(|| loader(&key))) {
                Ok(Ok(value)) => {
                    cache.insert(key, value);
                    cache.inner.counters.refreshed(true);
                }
                Ok(Err(_)) | Err(_) => cache.inner.counters.refreshed(false),
            }
        }
    });
}
