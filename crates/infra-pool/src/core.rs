//! The bookkeeping both front ends share: slots, the idle set, the queue of waiters, counters.
//!
//! One mutex guards the structure; no user code (manager, hooks) ever runs under it, so it is held for a few
//! dozen instructions and a panicking manager cannot poison it.
//!
//! Invariants, each kept by every method under the lock:
//! - `size` counts connections that exist or are being opened, and never exceeds `max_size`.
//! - While anyone waits, the idle set is empty and `size == max_size`: a returned connection, or a slot set
//!   free, goes to the oldest waiter before anything else ("handoff"), so nobody overtakes the queue.
//! - A waiter is in the queue, or has been handed exactly one grant; a waiter that gives up either leaves
//!   the queue or passes its grant on, so no slot or connection is lost to a cancelled acquire.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::thread::Thread;
use std::time::Duration;

use quanta::{Clock, Instant};

use crate::config::{Config, HealthCheck};
use crate::error::PoolError;
use crate::stats::{Counts, PoolStats, add, read};

/// A connection with the times the pool keeps for it.
#[derive(Debug)]
pub(crate) struct Slot<C> {
    pub(crate) conn: C,
    pub(crate) created: Instant,
    pub(crate) last_used: Instant,
}

/// What a waiter is handed.
#[derive(Debug)]
pub(crate) enum Grant<C> {
    /// A connection (not yet screened: the receiver checks it as it would one from the idle set).
    Conn(Slot<C>),
    /// A free slot: the receiver opens a connection in it.
    Create,
    /// The pool closed.
    Closed,
    /// The waiter's deadline passed (only for waiters whose deadline the pool watches).
    TimedOut,
}

/// Whom to wake when a grant arrives.
#[derive(Debug)]
enum Wake {
    Nobody,
    Task(Waker),
    Thread(Thread),
}

impl Wake {
    fn wake(self) {
        match self {
            Wake::Nobody => {}
            Wake::Task(waker) => waker.wake(),
            Wake::Thread(thread) => thread.unpark(),
        }
    }
}

#[derive(Debug)]
struct WaiterCell<C> {
    grant: Option<Grant<C>>,
    wake: Wake,
}

/// One queued acquire. Lock order: the pool's state first, then a waiter's cell.
#[derive(Debug)]
pub(crate) struct Waiter<C> {
    cell: Mutex<WaiterCell<C>>,
    pub(crate) since: Instant,
    /// When the pool itself times this waiter out; `None` for waiters that keep their own timer.
    deadline: Option<std::time::Instant>,
}

impl<C> Waiter<C> {
    fn new(since: Instant, deadline: Option<std::time::Instant>) -> Self {
        Waiter { cell: Mutex::new(WaiterCell { grant: None, wake: Wake::Nobody }), since, deadline }
    }

    /// Hands over a grant; returns whom to wake, to be woken after the pool's lock is released.
    fn give(&self, grant: Grant<C>) -> Wake {
        let mut cell = lock(&self.cell);
        cell.grant = Some(grant);
        std::mem::replace(&mut cell.wake, Wake::Nobody)
    }

    /// The grant if it arrived; otherwise remembers the task to wake.
    pub(crate) fn poll_task(&self, waker: &Waker) -> Option<Grant<C>> {
        let mut cell = lock(&self.cell);
        if let Some(grant) = cell.grant.take() {
            return Some(grant);
        }
        match &cell.wake {
            Wake::Task(known) if known.will_wake(waker) => {}
            _ => cell.wake = Wake::Task(waker.clone()),
        }
        None
    }

    /// The grant if it arrived; otherwise remembers the current thread to unpark.
    pub(crate) fn poll_thread(&self) -> Option<Grant<C>> {
        let mut cell = lock(&self.cell);
        if let Some(grant) = cell.grant.take() {
            return Some(grant);
        }
        if matches!(cell.wake, Wake::Nobody) {
            cell.wake = Wake::Thread(std::thread::current());
        }
        None
    }

    fn take(&self) -> Option<Grant<C>> {
        lock(&self.cell).grant.take()
    }
}

/// Why a slot was given up; decides which counter moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Loss {
    /// A connection attempt failed (no connection existed).
    CreateFailed,
    /// An acquire gave up before its connection attempt finished (no connection existed).
    CreateAbandoned,
    /// Closed for age.
    Lifetime,
    /// Closed for idleness.
    Idle,
    /// Closed as broken.
    Broken,
    /// Closed after a failed health check.
    HealthCheck,
    /// Closed because the pool closed.
    Shutdown,
    /// Taken out of the pool by its user.
    Detached,
}

/// What a checkout found.
#[derive(Debug)]
pub(crate) enum Checkout<'a, C> {
    Idle(Slot<C>),
    Create(Reserved<'a, C>),
    /// Queued; `true` when the queue was empty before (whoever watches deadlines should look again).
    Wait(Arc<Waiter<C>>, bool),
    Closed,
}

/// What the sync part of a checkout screen decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Screen {
    Fine,
    Validate,
    Lost(Loss),
}

#[derive(Debug)]
struct State<C> {
    idle: VecDeque<Slot<C>>,
    size: usize,
    waiters: VecDeque<Arc<Waiter<C>>>,
    max_waiters: usize,
    /// Closers waiting for `size` to reach zero.
    closers: Vec<Arc<Waiter<C>>>,
    closed: bool,
    last_create_error: Option<String>,
    /// Slots reserved by maintenance to warm `min_idle`, counted so concurrent passes do not overshoot.
    warming: usize,
}

/// A hook run on every connection the pool closes (the seed's `cleanup`).
pub(crate) type Cleanup<C> = Box<dyn Fn(&mut C) + Send + Sync>;

/// The shared core of a pool of `C`.
pub(crate) struct Core<C> {
    state: Mutex<State<C>>,
    pub(crate) config: Config,
    pub(crate) clock: Clock,
    pub(crate) counts: Counts,
    cleanup: Option<Cleanup<C>>,
    needs_clock: bool,
    /// Stands in for the time when no rule reads connection ages.
    epoch: Instant,
}

impl<C> std::fmt::Debug for Core<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = lock(&self.state);
        f.debug_struct("Core")
            .field("size", &state.size)
            .field("idle", &state.idle.len())
            .field("waiters", &state.waiters.len())
            .field("closed", &state.closed)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Locks, ignoring poison: no user code runs under these locks, and every update is completed before
/// anything that could panic, so a poisoned lock still guards consistent data.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<C> Core<C> {
    pub(crate) fn new(config: Config, clock: Clock, cleanup: Option<Cleanup<C>>) -> Self {
        let needs_clock = config.needs_clock();
        Core {
            state: Mutex::new(State {
                idle: VecDeque::with_capacity(config.max_size),
                size: 0,
                waiters: VecDeque::new(),
                max_waiters: 0,
                closers: Vec::new(),
                closed: false,
                last_create_error: None,
                warming: 0,
            }),
            config,
            counts: Counts::default(),
            cleanup,
            needs_clock,
            epoch: clock.now(),
            clock,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<C>> {
        lock(&self.state)
    }

    /// The time, or the epoch when no rule depends on connection ages (saving the clock read).
    fn stamp(&self) -> Instant {
        if self.needs_clock { self.clock.now() } else { self.epoch }
    }

    /// Takes an idle connection, a slot to open one in, or a place in the queue. `deadline` is read only
    /// when the acquire has to queue: `Some` when the pool should time the waiter out (see [`Core::expire`]).
    pub(crate) fn checkout(&self, deadline: impl FnOnce() -> Option<std::time::Instant>) -> Checkout<'_, C> {
        let mut state = self.lock();
        if state.closed {
            return Checkout::Closed;
        }
        if state.waiters.is_empty() {
            // Most recently used first: warm connections stay warm, cold ones age out by idleness.
            if let Some(slot) = state.idle.pop_back() {
                return Checkout::Idle(slot);
            }
            if state.size < self.config.max_size {
                state.size += 1;
                return Checkout::Create(Reserved::new(self));
            }
        }
        let waiter = Arc::new(Waiter::new(self.clock.now(), deadline()));
        let first = state.waiters.is_empty();
        state.waiters.push_back(Arc::clone(&waiter));
        state.max_waiters = state.max_waiters.max(state.waiters.len());
        Checkout::Wait(waiter, first)
    }

    /// Returns a connection: to the oldest waiter if there is one, else to the idle set. When the pool is
    /// closed the connection comes back as `Err`, for the caller to close.
    pub(crate) fn put(&self, slot: Slot<C>) -> Result<(), Slot<C>> {
        let wake = {
            let mut state = self.lock();
            if state.closed {
                return Err(slot);
            }
            match state.waiters.pop_front() {
                Some(waiter) => waiter.give(Grant::Conn(slot)),
                None => {
                    state.idle.push_back(slot);
                    return Ok(());
                }
            }
        };
        wake.wake();
        Ok(())
    }

    /// Gives up a slot whose connection is gone (or never came): the oldest waiter may open one in it.
    pub(crate) fn discard(&self, loss: Loss) {
        self.count_loss(loss);
        let mut wakes = Vec::new();
        {
            let mut state = self.lock();
            match state.waiters.pop_front() {
                Some(waiter) if !state.closed => wakes.push(waiter.give(Grant::Create)),
                other => {
                    debug_assert!(other.is_none(), "waiters remain in a closed pool");
                    state.size -= 1;
                    if state.closed && state.size == 0 {
                        wakes.extend(state.closers.drain(..).map(|closer| closer.give(Grant::Closed)));
                    }
                }
            }
        }
        wakes.into_iter().for_each(Wake::wake);
    }

    pub(crate) fn count_loss(&self, loss: Loss) {
        let counts = &self.counts;
        match loss {
            // Failed attempts are counted one by one where they happen (an acquire may retry).
            Loss::CreateFailed | Loss::CreateAbandoned | Loss::Detached => {}
            Loss::Lifetime => add(&counts.closed_by_lifetime),
            Loss::Idle => add(&counts.closed_by_idleness),
            Loss::Broken => add(&counts.closed_broken),
            Loss::HealthCheck => add(&counts.failed_health_checks),
            Loss::Shutdown => {}
        }
        match loss {
            Loss::CreateFailed | Loss::CreateAbandoned => {}
            Loss::Detached => add(&self.counts.detached),
            _ => add(&self.counts.closed),
        }
    }

    /// Closes a connection (running the cleanup hook) and gives up its slot.
    pub(crate) fn destroy(&self, slot: Slot<C>, loss: Loss) {
        self.close_connection(slot.conn);
        self.discard(loss);
    }

    /// Runs the cleanup hook on a connection and drops it, catching panics from either.
    pub(crate) fn close_connection(&self, mut conn: C) {
        let closed = catch_unwind(AssertUnwindSafe(|| {
            if let Some(cleanup) = &self.cleanup {
                cleanup(&mut conn);
            }
            drop(conn);
        }));
        if closed.is_err() {
            add(&self.counts.manager_panics);
        }
    }

    /// A waiter gives up. Returns the grant it had already been handed, if any, which the caller must pass
    /// on with [`Core::give_back`].
    pub(crate) fn cancel(&self, waiter: &Arc<Waiter<C>>) -> Option<Grant<C>> {
        add(&self.counts.cancelled);
        {
            let mut state = self.lock();
            if let Some(at) = state.waiters.iter().position(|queued| Arc::ptr_eq(queued, waiter)) {
                state.waiters.remove(at);
                return None;
            }
        }
        // Out of the queue means granted, and nobody else touches a granted waiter.
        waiter.take()
    }

    /// Passes on a grant its receiver will not use.
    pub(crate) fn give_back(&self, grant: Grant<C>) {
        match grant {
            Grant::Conn(slot) => self.restore(slot),
            Grant::Create => self.discard(Loss::CreateAbandoned),
            Grant::Closed | Grant::TimedOut => {}
        }
    }

    /// Times out the waiters whose deadline passed by `now`, and returns the earliest deadline left.
    ///
    /// One watcher calling this replaces a timer per waiter, which costs more than the rest of a wait.
    pub(crate) fn expire(&self, now: std::time::Instant) -> Option<std::time::Instant> {
        let mut wakes = Vec::new();
        let mut next: Option<std::time::Instant> = None;
        {
            let mut state = self.lock();
            state.waiters.retain(|waiter| match waiter.deadline {
                Some(deadline) if deadline <= now => {
                    wakes.push(waiter.give(Grant::TimedOut));
                    false
                }
                Some(deadline) => {
                    next = Some(next.map_or(deadline, |next| next.min(deadline)));
                    true
                }
                None => true,
            });
        }
        wakes.into_iter().for_each(Wake::wake);
        next
    }

    /// Records how long an acquire queued.
    pub(crate) fn record_wait(&self, since: Instant) {
        add(&self.counts.waited);
        self.counts.waits.record(self.clock.now().saturating_duration_since(since));
    }

    /// The cheap part of checking a connection on checkout: age, and what the manager's `is_broken` says.
    pub(crate) fn screen(&self, slot: &mut Slot<C>, is_broken: impl FnOnce(&mut C) -> bool) -> Screen {
        let now = self.stamp();
        if let Some(lifetime) = self.config.max_lifetime
            && now.saturating_duration_since(slot.created) >= lifetime
        {
            return Screen::Lost(Loss::Lifetime);
        }
        match catch_unwind(AssertUnwindSafe(|| is_broken(&mut slot.conn))) {
            Ok(false) => {}
            Ok(true) => return Screen::Lost(Loss::Broken),
            Err(_) => {
                add(&self.counts.manager_panics);
                return Screen::Lost(Loss::Broken);
            }
        }
        match self.config.health_check {
            HealthCheck::Always => Screen::Validate,
            HealthCheck::IdleLongerThan(idle) if now.saturating_duration_since(slot.last_used) >= idle => {
                Screen::Validate
            }
            HealthCheck::IdleLongerThan(_) | HealthCheck::Never => Screen::Fine,
        }
    }

    /// Takes a connection back from its user. `keep` runs the manager's release hooks (reset, is-broken);
    /// a panic there counts as broken.
    pub(crate) fn release(&self, mut slot: Slot<C>, keep: impl FnOnce(&mut C) -> bool) {
        let keep = match catch_unwind(AssertUnwindSafe(|| keep(&mut slot.conn))) {
            Ok(keep) => keep,
            Err(_) => {
                add(&self.counts.manager_panics);
                false
            }
        };
        if !keep {
            return self.destroy(slot, Loss::Broken);
        }
        let now = self.stamp();
        if let Some(lifetime) = self.config.max_lifetime
            && now.saturating_duration_since(slot.created) >= lifetime
        {
            return self.destroy(slot, Loss::Lifetime);
        }
        slot.last_used = now;
        self.counts.recycled();
        self.restore(slot);
    }

    /// A fresh slot for a just-opened connection (`warm` when maintenance opened it for `min_idle`).
    fn new_slot(&self, conn: C, warm: bool) -> Slot<C> {
        add(&self.counts.creates);
        let now = self.stamp();
        let mut state = self.lock();
        state.last_create_error = None;
        if warm {
            state.warming -= 1;
        }
        drop(state);
        Slot { conn, created: now, last_used: now }
    }

    /// A warming attempt ended without a connection.
    fn warm_failed(&self) {
        self.lock().warming -= 1;
    }

    /// Counts a failed connection attempt and remembers its error, so that acquires timing out meanwhile
    /// can say why.
    pub(crate) fn attempt_failed<E: std::fmt::Display>(&self, error: &PoolError<E>) {
        add(&self.counts.create_failures);
        let message = match error {
            PoolError::Create(cause) => cause.to_string(),
            other => other.to_string(),
        };
        self.lock().last_create_error = Some(message);
    }

    /// The error for an acquire that ran out of time after `waited`, counted.
    pub(crate) fn timeout_error<E>(&self, waited: Duration) -> PoolError<E> {
        add(&self.counts.timeouts);
        let (in_use, last_create_error) = {
            let state = self.lock();
            (state.size - state.idle.len(), state.last_create_error.clone())
        };
        PoolError::Timeout { waited, in_use, max_size: self.config.max_size, last_create_error }
    }

    /// Closes the pool to new checkouts and wakes every waiter with the news. Returns the idle connections,
    /// for the caller to close with [`Core::destroy`].
    pub(crate) fn close(&self) -> Vec<Slot<C>> {
        let (idle, wakes) = {
            let mut state = self.lock();
            if state.closed {
                return Vec::new();
            }
            state.closed = true;
            let wakes: Vec<Wake> = state.waiters.drain(..).map(|waiter| waiter.give(Grant::Closed)).collect();
            (state.idle.drain(..).collect::<Vec<_>>(), wakes)
        };
        wakes.into_iter().for_each(Wake::wake);
        idle
    }

    /// A waiter that is granted `Closed` once every connection is closed, or `None` if none is left.
    pub(crate) fn closer(&self) -> Option<Arc<Waiter<C>>> {
        let mut state = self.lock();
        if state.size == 0 {
            return None;
        }
        let closer = Arc::new(Waiter::new(self.clock.now(), None));
        state.closers.push(Arc::clone(&closer));
        Some(closer)
    }

    /// Forgets a closer that stopped waiting.
    pub(crate) fn drop_closer(&self, closer: &Arc<Waiter<C>>) {
        self.lock().closers.retain(|queued| !Arc::ptr_eq(queued, closer));
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Closes idle connections past their lifetime or idle timeout, and takes out of the idle set those due
    /// for a periodic check, for the caller to validate and [`Held::keep`] or [`Held::close`].
    pub(crate) fn sweep(&self) -> Vec<Held<'_, C>> {
        let now = self.clock.now();
        let config = &self.config;
        let mut expired = Vec::new();
        let mut to_check = Vec::new();
        let mut state = self.lock();
        // Oldest-used first, so that idleness closes the coldest connections and keeps `min_idle` warm ones.
        let mut kept = VecDeque::with_capacity(state.idle.len());
        let mut idle_left = state.idle.len();
        for slot in state.idle.drain(..) {
            let age = now.saturating_duration_since(slot.created);
            let idle_for = now.saturating_duration_since(slot.last_used);
            if config.max_lifetime.is_some_and(|lifetime| age >= lifetime) {
                idle_left -= 1;
                expired.push((slot, Loss::Lifetime));
            } else if idle_left > config.min_idle && config.idle_timeout.is_some_and(|timeout| idle_for >= timeout) {
                idle_left -= 1;
                expired.push((slot, Loss::Idle));
            } else if config.health_check_interval.is_some_and(|interval| idle_for >= interval) {
                to_check.push(slot);
            } else {
                kept.push_back(slot);
            }
        }
        state.idle = kept;
        drop(state);
        for (slot, loss) in expired {
            self.destroy(slot, loss);
        }
        to_check.into_iter().map(|slot| Held::new(self, slot)).collect()
    }

    /// A slot for the maintenance pass to open a warm connection in, while the pool is below `min_idle`.
    pub(crate) fn reserve_warm(&self) -> Option<Reserved<'_, C>> {
        let mut state = self.lock();
        let short = !state.closed
            && state.waiters.is_empty()
            && state.idle.len() + state.warming < self.config.min_idle
            && state.size < self.config.max_size;
        if !short {
            return None;
        }
        state.size += 1;
        state.warming += 1;
        Some(Reserved { core: self, armed: true, warm: true })
    }

    /// Returns a connection the pool itself held (checked, or just opened by maintenance).
    pub(crate) fn restore(&self, slot: Slot<C>) {
        if let Err(slot) = self.put(slot) {
            self.destroy(slot, Loss::Shutdown);
        }
    }

    pub(crate) fn stats(&self) -> PoolStats {
        let (size, idle, waiters, max_waiters) = {
            let state = self.lock();
            (state.size, state.idle.len(), state.waiters.len(), state.max_waiters)
        };
        let counts = &self.counts;
        let (acquisitions, recycles) = counts.hot_totals();
        PoolStats {
            size,
            idle,
            in_use: size - idle,
            waiters,
            max_waiters,
            max_size: self.config.max_size,
            acquisitions,
            waited: read(&counts.waited),
            timeouts: read(&counts.timeouts),
            cancelled: read(&counts.cancelled),
            creates: read(&counts.creates),
            create_failures: read(&counts.create_failures),
            recycles,
            failed_health_checks: read(&counts.failed_health_checks),
            closed_by_lifetime: read(&counts.closed_by_lifetime),
            closed_by_idleness: read(&counts.closed_by_idleness),
            closed_broken: read(&counts.closed_broken),
            closed: read(&counts.closed),
            detached: read(&counts.detached),
            manager_panics: read(&counts.manager_panics),
            wait: counts.waits.quantiles(acquisitions),
        }
    }

    /// The time waited since `since`, for error messages.
    pub(crate) fn elapsed(&self, since: Instant) -> Duration {
        self.clock.now().saturating_duration_since(since)
    }
}

/// The schedule of connection attempts after a failure: how many more, and the pause before each.
#[derive(Debug)]
pub(crate) struct Retries {
    left: u32,
    pause: Duration,
    longest: Duration,
}

impl Retries {
    pub(crate) fn new(config: &Config) -> Self {
        Retries { left: config.create_retries, pause: config.retry_backoff, longest: config.create_timeout }
    }

    /// The pause before the next attempt, or `None` when attempts ran out or the pause would use up the
    /// `remaining` time. Pauses double, up to the create timeout.
    pub(crate) fn next(&mut self, remaining: Duration) -> Option<Duration> {
        if self.left == 0 || self.pause >= remaining {
            return None;
        }
        self.left -= 1;
        let pause = self.pause;
        self.pause = self.pause.saturating_mul(2).min(self.longest);
        Some(pause)
    }
}

/// A clock an acquire's deadline is read from: `std`'s for the blocking pool, tokio's (which tests can
/// pause) for the async one.
pub(crate) trait Now: Copy {
    fn now() -> Self;
    fn checked_add(self, duration: Duration) -> Option<Self>;
}

impl Now for std::time::Instant {
    fn now() -> Self {
        std::time::Instant::now()
    }

    fn checked_add(self, duration: Duration) -> Option<Self> {
        std::time::Instant::checked_add(&self, duration)
    }
}

impl Now for tokio::time::Instant {
    fn now() -> Self {
        tokio::time::Instant::now()
    }

    fn checked_add(self, duration: Duration) -> Option<Self> {
        tokio::time::Instant::checked_add(&self, duration)
    }
}

/// An acquire's time limit, read from the clock only once it is needed (the fast path never needs it).
#[derive(Debug)]
pub(crate) struct Budget<I> {
    timeout: Duration,
    deadline: Option<I>,
}

impl<I: Now> Budget<I> {
    pub(crate) fn new(timeout: Duration) -> Self {
        Budget { timeout, deadline: None }
    }

    pub(crate) fn deadline(&mut self) -> I {
        let timeout = self.timeout;
        *self.deadline.get_or_insert_with(|| {
            let now = I::now();
            // A timeout too large to add (Duration::MAX) means "no limit": a century will do.
            now.checked_add(timeout)
                .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
                .unwrap_or(now)
        })
    }
}

/// A slot taken for a connection about to be opened. Dropped unfilled (the attempt failed, or its future
/// was dropped), it gives the slot back, so a cancelled acquire never leaks one.
#[derive(Debug)]
pub(crate) struct Reserved<'a, C> {
    core: &'a Core<C>,
    armed: bool,
    warm: bool,
}

impl<'a, C> Reserved<'a, C> {
    /// Claims a slot already counted in `size` (by a checkout, a grant, or a connection just closed).
    pub(crate) fn new(core: &'a Core<C>) -> Self {
        Reserved { core, armed: true, warm: false }
    }

    /// The connection arrived.
    pub(crate) fn fill(mut self, conn: C) -> Slot<C> {
        self.armed = false;
        self.core.new_slot(conn, self.warm)
    }

    /// The attempt failed for `loss`.
    pub(crate) fn fail(mut self, loss: Loss) {
        self.give_up(loss);
    }

    fn give_up(&mut self, loss: Loss) {
        self.armed = false;
        if self.warm {
            self.core.warm_failed();
        }
        self.core.discard(loss);
    }
}

impl<C> Drop for Reserved<'_, C> {
    fn drop(&mut self) {
        if self.armed {
            self.give_up(Loss::CreateAbandoned);
        }
    }
}

/// A connection taken out of circulation for a check. Dropped while still held (its check was cancelled
/// midway, leaving the connection in an unknown state), it is closed and its slot given back.
#[derive(Debug)]
pub(crate) struct Held<'a, C> {
    core: &'a Core<C>,
    slot: Option<Slot<C>>,
}

impl<'a, C> Held<'a, C> {
    pub(crate) fn new(core: &'a Core<C>, slot: Slot<C>) -> Self {
        Held { core, slot: Some(slot) }
    }

    pub(crate) fn conn(&mut self) -> &mut C {
        &mut self.slot.as_mut().expect("a held slot is present until taken").conn
    }

    /// The check passed.
    pub(crate) fn keep(mut self) -> Slot<C> {
        let mut slot = self.slot.take().expect("a held slot is present until taken");
        slot.last_used = self.core.stamp();
        slot
    }

    /// The check failed: closes the connection and keeps its slot, to open a new connection in.
    pub(crate) fn renew(mut self, loss: Loss) -> Reserved<'a, C> {
        let slot = self.slot.take().expect("a held slot is present until taken");
        self.core.close_connection(slot.conn);
        self.core.count_loss(loss);
        Reserved::new(self.core)
    }

    /// The check failed: closes the connection and gives up its slot.
    pub(crate) fn close(mut self, loss: Loss) {
        let slot = self.slot.take().expect("a held slot is present until taken");
        self.core.destroy(slot, loss);
    }
}

impl<C> Drop for Held<'_, C> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            self.core.destroy(slot, Loss::Broken);
        }
    }
}
