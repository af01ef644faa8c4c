//! Single flight: concurrent misses on one key run one loader, and everyone gets its result.
//!
//! The first caller to miss registers a flight for the key among its shard's loads in flight and runs
//! the loader; callers that miss meanwhile find the flight and wait on it (threads on a condition
//! variable, tasks with a waker: any async runtime). The loads in flight live in the shard, under the
//! shard's lock: a caller looks for the entry and for a flight in one critical section, and the leader inserts
//! its value and retires its flight in another, so no caller can slip between the two and load twice. A
//! leader that fails wakes its waiters with the error; one that panics, or an async leader whose future
//! is dropped, wakes them with [`LoadError::Panicked`] or [`LoadError::Abandoned`]. Nobody is left
//! waiting.

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
use crate::shard::Absence;
use crate::stats::LOAD_TIMING_SAMPLE;

/// Loads in flight in one shard: usually none or one at a time, so the first is kept inline and only
/// the others go to a table.
pub(crate) struct Flights<K, V> {
    solo: Option<InFlight<K, V>>,
    table: HashTable<InFlight<K, V>>,
    /// The token the next flight gets.
    next_token: u64,
}

impl<K, V> Default for Flights<K, V> {
    fn default() -> Self {
        Flights { solo: None, table: HashTable::new(), next_token: 0 }
    }
}

impl<K, V> std::fmt::Debug for Flights<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flights")
            .field("running", &(usize::from(self.solo.is_some()) + self.table.len()))
            .finish_non_exhaustive()
    }
}

impl<K: Eq, V> Flights<K, V> {
    /// The flight loading `key`, if one is running; the waiters' [`Flight`] is allocated by the first
    /// caller to ask.
    #[inline(always)]
    fn follow(&mut self, hash: u64, key: &K) -> Option<Arc<Flight<V>>> {
        let running = match &mut self.solo {
            Some(solo) if solo.hash == hash && solo.key == *key => solo,
            // Most misses find no other load running: no probe.
            _ if self.table.is_empty() => return None,
            _ => self.table.find_mut(hash, |running| running.key == *key)?,
        };
        Some(Arc::clone(running.flight.get_or_insert_with(Flight::new)))
    }

    /// Registers a load of `key`, returning its token.
    #[inline(always)]
    fn start(&mut self, hash: u64, key: K) -> u64 {
        let token = self.next_token;
        self.next_token += 1;
        let running = InFlight { hash, key, token, flight: None };
        if self.solo.is_none() {
            self.solo = Some(running);
        } else {
            self.table.insert_unique(hash, running, |running| running.hash);
        }
        token
    }

    /// Retires the load with `token`, returning its flight if anyone waits on it.
    pub(crate) fn retire(&mut self, hash: u64, token: u64) -> Option<Arc<Flight<V>>> {
        if self.solo.as_ref().is_some_and(|solo| solo.token == token) {
            return self.solo.take().and_then(|solo| solo.flight);
        }
        match self.table.find_entry(hash, |running| running.token == token) {
            Ok(entry) => entry.remove().0.flight,
            Err(_) => None,
        }
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

/// What waiters of one load sleep on, and the outcome they wake to.
pub(crate) struct Flight<V> {
    state: Mutex<FlightState<V>>,
    done: Condvar,
    /// Set by the first thread that blocks: without one, finishing skips the wake-up (a system call).
    awaited: AtomicBool,
}

pub(crate) enum FlightState<V> {
    /// Loading; the wakers of the tasks waiting.
    Running(Vec<Waker>),
    Loaded(V),
    Failed(LoadError),
}

impl<V> Flight<V> {
    fn new() -> Arc<Self> {
        Arc::new(Flight {
            state: Mutex::new(FlightState::Running(Vec::new())),
            done: Condvar::new(),
            awaited: AtomicBool::new(false),
        })
    }
}

impl<V: Clone> Flight<V> {
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

    pub(crate) fn land(&self, outcome: FlightState<V>) {
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
    /// This caller loads; the token identifies its load among the shard's loads in flight, and the
    /// absence is what its lookups learned of the key, for the insert that lands it.
    Leader(u64, Absence),
}

/// A load landing with the insert of its value: its flight's token, the value its waiters get, and what
/// its lookups learned of the key (see [`Absence`]).
pub(crate) struct Landed<'v, V> {
    pub(crate) token: u64,
    pub(crate) value: &'v V,
    pub(crate) absence: Absence,
}

// By hand: derived, both would require `V: Copy`.
impl<V> Clone for Landed<'_, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<V> Copy for Landed<'_, V> {}

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
    absence: Absence,
    /// When the load started, for one load in [`LOAD_TIMING_SAMPLE`].
    started: Option<quanta::Instant>,
    /// Whether the load has been counted in the stats.
    counted: bool,
    unfinished: Option<LoadError>,
}

impl<K, V, S> LeaderGuard<'_, K, V, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    /// Counts the load, its time and whether it succeeded, once.
    #[inline(always)]
    fn count(&mut self, succeeded: bool) {
        if self.counted {
            return;
        }
        self.counted = true;
        let inner = &self.cache.inner;
        let took = self.started.map(|started| inner.clock_now().duration_since(started));
        inner.counters.load(took, succeeded);
    }

    /// Stores the loaded value (with its own time to live, or the cache's) and lands the flight. Until
    /// the insert has retired the flight, the guard stays armed: a weigher or a key's `Eq` that panics
    /// on the way still wakes the waiters (with [`LoadError::Panicked`]).
    #[inline(always)]
    fn land_value(&mut self, key: K, value: V, ttl: Option<Duration>) -> V {
        self.count(true);
        let landing = Landed { token: self.token, value: &value, absence: self.absence };
        self.cache.insert_hashed(self.hash, key, value.clone(), ttl, Some(landing));
        self.unfinished = None;
        value
    }

    /// Retires the flight without a value and wakes its waiters with `error` (nothing to do if an insert
    /// retired it already).
    fn land_error(&mut self, error: LoadError) {
        self.unfinished = None;
        self.count(false);
        let flight = self.cache.inner.write(self.hash).flights.retire(self.hash, self.token);
        if let Some(flight) = flight {
            flight.land(FlightState::Failed(error));
        }
    }
}

impl<K, V, S> Drop for LeaderGuard<'_, K, V, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    #[inline(always)]
    fn drop(&mut self) {
        if let Some(error) = self.unfinished.take() {
            self.land_error(error);
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
    #[inline]
    pub fn get_or_insert_with(&self, key: K, init: impl FnOnce() -> V) -> V {
        self.get_or_insert_with_ttl(key, None, init)
    }

    /// [`get_or_insert_with`](Self::get_or_insert_with), storing the value with its own time to live
    /// (`None`: the cache's).
    #[inline]
    pub fn get_or_insert_with_ttl(&self, key: K, ttl: Option<Duration>, init: impl FnOnce() -> V) -> V {
        match self.first_look(&key) {
            Ok(value) => value,
            Err((hash, absence)) => self.load_missed(hash, absence, key, ttl, init),
        }
    }

    /// The miss path of [`get_or_insert_with_ttl`](Self::get_or_insert_with_ttl), out of line so that
    /// the hit path can be inlined into the caller. What it calls on the way (`join`, the flight table's
    /// `follow` and `start`, and the leader guard's `count`, `land_value` and `drop`) is forced inline
    /// into it: as calls of their own, the compiler's choice, their prologues, epilogues and argument
    /// passing cost a miss about 135 instructions of ~1,200 (callgrind, `cache_replay goi ours 4`).
    #[inline(never)]
    fn load_missed(&self, hash: u64, absence: Absence, key: K, ttl: Option<Duration>, init: impl FnOnce() -> V) -> V {
        let (token, absence) = loop {
            match self.join(hash, &key, absence) {
                Role::Cached(value) => return value,
                Role::Follower(flight) => match flight.wait() {
                    Ok(value) => return value,
                    // The leader panicked: try again, perhaps as the leader.
                    Err(_) => continue,
                },
                Role::Leader(token, absence) => break (token, absence),
            }
        };
        let mut guard = self.lead(hash, token, absence, LoadError::Panicked);
        let value = init();
        guard.land_value(key, value, ttl)
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
        let (hash, absence) = match self.first_look(&key) {
            Ok(value) => return Ok(value),
            Err(missed) => missed,
        };
        let (token, absence) = match self.join(hash, &key, absence) {
            Role::Cached(value) => return Ok(value),
            Role::Follower(flight) => return flight.wait(),
            Role::Leader(token, absence) => (token, absence),
        };
        let mut guard = self.lead(hash, token, absence, LoadError::Panicked);
        let outcome = init().map_err(|error| LoadError::Failed(Arc::new(error)));
        self.settle(key, outcome, &mut guard)
    }

    /// The async [`get_or_insert_with`](Self::get_or_insert_with): on a miss, awaits `init` (in the
    /// calling task, on any runtime); concurrent misses on one key await one `init`. If the loading
    /// task is dropped or its future panics, a waiter loads in its place.
    pub async fn get_or_insert_async(&self, key: K, init: impl Future<Output = V>) -> V {
        let (hash, absence) = match self.first_look(&key) {
            Ok(value) => return value,
            Err(missed) => missed,
        };
        let (token, absence) = loop {
            match self.join(hash, &key, absence) {
                Role::Cached(value) => return value,
                Role::Follower(flight) => match Landing(flight).await {
                    Ok(value) => return value,
                    Err(_) => continue,
                },
                Role::Leader(token, absence) => break (token, absence),
            }
        };
        let mut guard = self.lead(hash, token, absence, LoadError::Abandoned);
        let value = init.await;
        guard.land_value(key, value, None)
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
        let (hash, absence) = match self.first_look(&key) {
            Ok(value) => return Ok(value),
            Err(missed) => missed,
        };
        let (token, absence) = match self.join(hash, &key, absence) {
            Role::Cached(value) => return Ok(value),
            Role::Follower(flight) => return Landing(flight).await,
            Role::Leader(token, absence) => (token, absence),
        };
        let mut guard = self.lead(hash, token, absence, LoadError::Abandoned);
        let outcome = init.await.map_err(|error| LoadError::Failed(Arc::new(error)));
        self.settle(key, outcome, &mut guard)
    }

    /// Stores a loaded value (or not, on failure) and lands the flight.
    fn settle(
        &self,
        key: K,
        outcome: Result<V, LoadError>,
        guard: &mut LeaderGuard<'_, K, V, S>,
    ) -> Result<V, LoadError> {
        match outcome {
            Ok(value) => Ok(guard.land_value(key, value, None)),
            Err(error) => {
                guard.land_error(error.clone());
                Err(error)
            }
        }
    }

    /// The first step of every load: a lookup that counts a hit or a miss. On a miss, returns the key's
    /// hash and what the lookup learned, for [`join`](Self::join). Forced inline: as a call of its own
    /// (the compiler's choice) it cost a hit through `get_or_insert_with` about 20 instructions of
    /// prologue, epilogue and result passing, 15% of the hit (131 to 111 in `cache_replay hits`).
    #[inline(always)]
    fn first_look(&self, key: &K) -> Result<V, (u64, Absence)> {
        let hash = self.inner.hash_of(key);
        match self.look_hashed(hash, key) {
            Ok(value) => {
                self.inner.counters.hit();
                Ok(value)
            }
            Err(absence) => {
                self.inner.counters.miss();
                Err((hash, absence))
            }
        }
    }

    fn lead(&self, hash: u64, token: u64, absence: Absence, unfinished: LoadError) -> LeaderGuard<'_, K, V, S> {
        let started = token.is_multiple_of(LOAD_TIMING_SAMPLE).then(|| self.inner.clock_now());
        LeaderGuard { cache: self, hash, token, absence, started, counted: false, unfinished: Some(unfinished) }
    }

    /// Joins the flight for `key`, or starts one, unless the value turned up since the caller's miss
    /// (looked up again only if the shard had an insert since `absence`).
    #[inline(always)]
    fn join(&self, hash: u64, key: &K, absence: Absence) -> Role<V> {
        let inner = &*self.inner;
        let mut shard = inner.write(hash);
        let absence = if shard.still_absent(absence) {
            absence
        } else {
            match inner.look_locked(&shard, hash, key) {
                Ok(value) => return Role::Cached(value),
                Err(absence) => absence,
            }
        };
        match shard.flights.follow(hash, key) {
            Some(flight) => Role::Follower(flight),
            None => Role::Leader(shard.flights.start(hash, key.clone()), absence),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first load in flight is kept inline and the others in the table; either is found, followed and
    /// retired, in any order, and a retired load is not found again.
    #[test]
    fn flights_inline_and_in_the_table_are_followed_and_retired() {
        let mut flights: Flights<u64, u64> = Flights::default();
        assert!(flights.follow(1, &10).is_none());
        let first = flights.start(1, 10);
        let second = flights.start(2, 20);
        let third = flights.start(1, 30);
        assert!(flights.solo.is_some() && flights.table.len() == 2);
        let waiting_first = flights.follow(1, &10).expect("the inline load");
        let waiting_third = flights.follow(1, &30).expect("a load in the table with the same hash");
        assert!(flights.follow(1, &50).is_none(), "a key not in flight");
        assert!(Arc::ptr_eq(&waiting_third, &flights.follow(1, &30).expect("still running")), "one flight a load");
        let retired = flights.retire(1, first).expect("someone waits");
        assert!(Arc::ptr_eq(&retired, &waiting_first));
        assert!(flights.follow(1, &10).is_none(), "retired");
        assert!(flights.retire(2, second).is_none(), "nobody waited on it");
        assert!(Arc::ptr_eq(&flights.retire(1, third).expect("someone waits"), &waiting_third));
        assert!(flights.solo.is_none() && flights.table.is_empty());
        // The inline place is free again.
        flights.start(3, 40);
        assert!(flights.solo.is_some() && flights.table.is_empty());
    }
}
