//! Single flight: concurrent misses on one key run one loader, and everyone gets its result.
//!
//! The first caller to miss registers a flight for the key in its shard's table of flights and runs the
//! loader; callers that miss meanwhile find the flight and wait on it (threads on a condition variable,
//! tasks with a waker: any async runtime). The leader inserts the value into the cache *before* retiring
//! the flight, and a caller that finds no flight looks in the cache again while holding the flights
//! lock, so no caller can slip between the two and load twice. A leader that fails wakes its waiters with
//! the error; one that panics, or an async leader whose future is dropped, wakes them with
//! [`LoadError::Panicked`] or [`LoadError::Abandoned`]. Nobody is left waiting.

use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use hashbrown::HashTable;

use crate::cache::{Cache, lock};
use crate::error::LoadError;

/// Loads in flight in one shard.
pub(crate) struct Flights<K, V> {
    table: HashTable<InFlight<K, V>>,
    /// The token the next flight gets.
    next_token: u64,
}

impl<K, V> Default for Flights<K, V> {
    fn default() -> Self {
        Flights { table: HashTable::new(), next_token: 0 }
    }
}

/// One load in flight. Most loads run alone: the [`Flight`] the waiters sleep on is allocated by the
/// first caller that finds the load running, so a lone load allocates nothing and wakes no one.
struct InFlight<K, V> {
    hash: u64,
    key: K,
    /// Tells the leader's own entry apart when it retires (without comparing keys again).
    token: u64,
    flight: Option<Arc<Flight<V>>>,
}

struct Flight<V> {
    state: Mutex<FlightState<V>>,
    done: Condvar,
    /// Set by the first thread that blocks: without one, finishing skips the wake-up (a system call).
    awaited: AtomicBool,
}

enum FlightState<V> {
    /// Loading; the wakers of the tasks waiting.
    Running(Vec<Waker>),
    Loaded(V),
    Failed(LoadError),
}

impl<V: Clone> Flight<V> {
    fn new() -> Arc<Self> {
        Arc::new(Flight {
            state: Mutex::new(FlightState::Running(Vec::new())),
            done: Condvar::new(),
            awaited: AtomicBool::new(false),
        })
    }

    /// Blocks the thread until the flight lands.
    fn wait(&self) -> Result<V, LoadError> {
        let mut state = lock(&self.state);
        // Under the state lock, so the leader either sees the flag or has already stored the outcome.
        self.awaited.store(true, Ordering::Relaxed);
        loop {
            match &*state {
                FlightState::Running(_) => {
                    state = self.done.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
                }
                FlightState::Loaded(value) => return Ok(value.clone()),
                FlightState::Failed(error) => return Err(error.clone()),
            }
        }
    }

    /// The outcome if landed; otherwise registers the task's waker.
    fn poll_landed(&self, context: &Context<'_>) -> Poll<Result<V, LoadError>> {
        let mut state = lock(&self.state);
        match &mut *state {
            FlightState::Running(wakers) => {
                if !wakers.iter().any(|waker| waker.will_wake(context.waker())) {
                    wakers.push(context.waker().clone());
                }
                Poll::Pending
            }
            FlightState::Loaded(value) => Poll::Ready(Ok(value.clone())),
            FlightState::Failed(error) => Poll::Ready(Err(error.clone())),
        }
    }

    fn land(&self, outcome: FlightState<V>) {
        let waiting = std::mem::replace(&mut *lock(&self.state), outcome);
        if let FlightState::Running(wakers) = waiting {
            wakers.into_iter().for_each(Waker::wake);
        }
        if self.awaited.load(Ordering::Relaxed) {
            self.done.notify_all();
        }
    }
}

/// A task's wait for another caller's load.
struct Landing<V>(Arc<Flight<V>>);

impl<V: Clone> Future for Landing<V> {
    type Output = Result<V, LoadError>;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.poll_landed(context)
    }
}

enum Role<V> {
    /// The value turned up in the cache.
    Cached(V),
    /// Another caller is loading; wait for it.
    Follower(Arc<Flight<V>>),
    /// This caller loads; the token identifies its entry in the table of flights.
    Leader(u64),
}

/// Retires a flight with the outcome or, if dropped unfinished, with `unfinished` (the loader panicked,
/// or an async loader's future was dropped).
struct LeaderGuard<'a, K, V, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    cache: &'a Cache<K, V, S>,
    hash: u64,
    token: u64,
    started: quanta::Instant,
    unfinished: Option<LoadError>,
}

impl<K, V, S> LeaderGuard<'_, K, V, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    fn finish(&mut self, outcome: FlightState<V>) {
        self.unfinished = None;
        let inner = &self.cache.inner;
        let took = inner.clock_now().duration_since(self.started);
        inner.counters.load(took, matches!(outcome, FlightState::Loaded(_)));
        let waited_on = {
            let mut flights = inner.flights(self.hash);
            let waited_on = match flights.table.find_entry(self.hash, |flight| flight.token == self.token) {
                Ok(entry) => entry.remove().0.flight,
                Err(_) => None,
            };
            inner.landings(self.hash).fetch_add(1, Ordering::Release);
            waited_on
        };
        if let Some(flight) = waited_on {
            flight.land(outcome);
        }
    }
}

impl<K, V, S> Drop for LeaderGuard<'_, K, V, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    fn drop(&mut self) {
        if let Some(error) = self.unfinished.take() {
            self.finish(FlightState::Failed(error));
        }
    }
}

impl<K, V, S> Cache<K, V, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    /// The value for `key`, computing and inserting it with `init` on a miss (the seed's `get_or_set`).
    ///
    /// Concurrent misses on one key run `init` once; the other callers wait and share its value. If that
    /// `init` panics, the panic goes on in its caller and one of the waiters loads in its place.
    pub fn get_or_insert_with(&self, key: K, init: impl FnOnce() -> V) -> V {
        self.get_or_insert_with_ttl(key, None, init)
    }

    /// [`get_or_insert_with`](Self::get_or_insert_with), storing the value with its own time to live
    /// (`None`: the cache's).
    pub fn get_or_insert_with_ttl(&self, key: K, ttl: Option<Duration>, init: impl FnOnce() -> V) -> V {
        let (hash, landings) = match self.first_look(&key) {
            Ok(value) => return value,
            Err(missed) => missed,
        };
        let token = loop {
            match self.join(hash, &key, landings) {
                Role::Cached(value) => return value,
                Role::Follower(flight) => match flight.wait() {
                    Ok(value) => return value,
                    // The leader panicked: try again, perhaps as the leader.
                    Err(_) => continue,
                },
                Role::Leader(token) => break token,
            }
        };
        let mut guard = self.lead(hash, token, LoadError::Panicked);
        let value = init();
        self.insert_hashed(hash, key, value.clone(), ttl);
        guard.finish(FlightState::Loaded(value.clone()));
        value
    }

    /// The value for `key`, loading it with the fallible `init` on a miss.
    ///
    /// Concurrent misses on one key run `init` once. If it fails, its caller and every waiter get the
    /// same [`LoadError::Failed`] (nothing is cached, so the next call tries again); if it panics,
    /// waiters get [`LoadError::Panicked`].
    pub fn try_get_or_insert_with<E>(&self, key: K, init: impl FnOnce() -> Result<V, E>) -> Result<V, LoadError>
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        let (hash, landings) = match self.first_look(&key) {
            Ok(value) => return Ok(value),
            Err(missed) => missed,
        };
        let token = match self.join(hash, &key, landings) {
            Role::Cached(value) => return Ok(value),
            Role::Follower(flight) => return flight.wait(),
            Role::Leader(token) => token,
        };
        let mut guard = self.lead(hash, token, LoadError::Panicked);
        let outcome = init().map_err(|error| LoadError::Failed(Arc::new(error)));
        self.settle(hash, key, outcome, &mut guard)
    }

    /// The async [`get_or_insert_with`](Self::get_or_insert_with): on a miss, awaits `init` (in the
    /// calling task, on any runtime); concurrent misses on one key await one `init`. If the loading
    /// task is dropped or its future panics, a waiter loads in its place.
    pub async fn get_or_insert_async(&self, key: K, init: impl Future<Output = V>) -> V {
        let (hash, landings) = match self.first_look(&key) {
            Ok(value) => return value,
            Err(missed) => missed,
        };
        let token = loop {
            match self.join(hash, &key, landings) {
                Role::Cached(value) => return value,
                Role::Follower(flight) => match Landing(flight).await {
                    Ok(value) => return value,
                    Err(_) => continue,
                },
                Role::Leader(token) => break token,
            }
        };
        let mut guard = self.lead(hash, token, LoadError::Abandoned);
        let value = init.await;
        self.insert_hashed(hash, key, value.clone(), None);
        guard.finish(FlightState::Loaded(value.clone()));
        value
    }

    /// The async [`try_get_or_insert_with`](Self::try_get_or_insert_with). Waiters get the loader's
    /// error, [`LoadError::Panicked`], or [`LoadError::Abandoned`] when the loading task was dropped.
    pub async fn try_get_or_insert_async<E>(
        &self,
        key: K,
        init: impl Future<Output = Result<V, E>>,
    ) -> Result<V, LoadError>
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        let (hash, landings) = match self.first_look(&key) {
            Ok(value) => return Ok(value),
            Err(missed) => missed,
        };
        let token = match self.join(hash, &key, landings) {
            Role::Cached(value) => return Ok(value),
            Role::Follower(flight) => return Landing(flight).await,
            Role::Leader(token) => token,
        };
        let mut guard = self.lead(hash, token, LoadError::Abandoned);
        let outcome = init.await.map_err(|error| LoadError::Failed(Arc::new(error)));
        self.settle(hash, key, outcome, &mut guard)
    }

    /// Stores a loaded value (or not, on failure) and lands the flight.
    fn settle(
        &self,
        hash: u64,
        key: K,
        outcome: Result<V, LoadError>,
        guard: &mut LeaderGuard<'_, K, V, S>,
    ) -> Result<V, LoadError> {
        match outcome {
            Ok(value) => {
                self.insert_hashed(hash, key, value.clone(), None);
                guard.finish(FlightState::Loaded(value.clone()));
                Ok(value)
            }
            Err(error) => {
                guard.finish(FlightState::Failed(error.clone()));
                Err(error)
            }
        }
    }

    /// The first step of every load: a lookup that counts a hit or a miss. On a miss, returns the key's
    /// hash and its shard's count of landed flights as of before the lookup, for [`join`](Self::join).
    fn first_look(&self, key: &K) -> Result<V, (u64, u64)> {
        let hash = self.inner.hash_of(key);
        let landings = self.inner.landings(hash).load(Ordering::Acquire);
        match self.peek_hashed(hash, key) {
            Some(value) => {
                self.inner.counters.hit();
                Ok(value)
            }
            None => {
                self.inner.counters.miss();
                Err((hash, landings))
            }
        }
    }

    fn lead(&self, hash: u64, token: u64, unfinished: LoadError) -> LeaderGuard<'_, K, V, S> {
        LeaderGuard { cache: self, hash, token, started: self.inner.clock_now(), unfinished: Some(unfinished) }
    }

    /// Joins the flight for `key`, or starts one. `landings` is the shard's count of retired flights as
    /// the caller saw it before the miss that brought it here.
    fn join(&self, hash: u64, key: &K, landings: u64) -> Role<V> {
        let mut flights = self.inner.flights(hash);
        if let Some(running) = flights.table.find_mut(hash, |running| running.key == *key) {
            return Role::Follower(Arc::clone(running.flight.get_or_insert_with(Flight::new)));
        }
        // A leader inserts before it retires its flight, and counts the retirement under this lock:
        // if a flight landed since the caller's miss, the value may be here now.
        if self.inner.landings(hash).load(Ordering::Acquire) != landings
            && let Some(value) = self.peek_hashed(hash, key)
        {
            return Role::Cached(value);
        }
        let token = flights.next_token;
        flights.next_token += 1;
        flights
            .table
            .insert_unique(hash, InFlight { hash, key: key.clone(), token, flight: None }, |running| running.hash);
        Role::Leader(token)
    }
}
