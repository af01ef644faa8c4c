//! The async front end: acquires are futures, maintenance is a tokio task.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::config::{Settings, config_setters};
use crate::core::{Budget, Checkout, Core, Grant, Held, Loss, Reserved, Retries, Screen, Slot, Waiter, lock};
use crate::error::{BuildError, CloseError, PoolError};
use crate::guard::{Home, Pooled};
use crate::manager::Manager;
use crate::stats::{PoolStats, add};
use crate::unwind::{CatchUnwind, Panicked};

/// An async connection pool: fair (first come, first served), cancellation-safe, and quick to report why
/// the database cannot be reached.
///
/// A cheap handle: clones share one pool. Build it inside a tokio runtime with the time driver enabled;
/// its maintenance task (warming `min_idle`, reaping, periodic checks) runs there and stops when the pool
/// is closed or its last handle dropped.
pub struct Pool<M: Manager> {
    inner: Arc<Inner<M>>,
}

impl<M: Manager> Clone for Pool<M> {
    fn clone(&self) -> Self {
        Pool { inner: Arc::clone(&self.inner) }
    }
}

impl<M: Manager> std::fmt::Debug for Pool<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("core", &self.inner.core).finish_non_exhaustive()
    }
}

struct Inner<M: Manager> {
    core: Core<M::Connection>,
    manager: M,
    /// Told when the queue of waiters stops being empty, for the task that times waiters out.
    queue_started: Arc<Notify>,
    /// The maintenance and expiry tasks, stopped on close and drop.
    tasks: Mutex<Vec<AbortHandle>>,
}

/// Configures a [`Pool`]; from [`Pool::builder`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct PoolBuilder<M: Manager> {
    manager: M,
    settings: Settings<M::Connection>,
}

impl<M: Manager> std::fmt::Debug for PoolBuilder<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolBuilder").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl<M: Manager> PoolBuilder<M> {
    config_setters!(M::Connection);

    /// Builds the pool and starts its maintenance task (which opens `min_idle` connections at once).
    ///
    /// # Errors
    ///
    /// [`BuildError`] for settings the pool cannot honour, and [`BuildError::NoRuntime`] outside a tokio
    /// runtime.
    pub fn build(self) -> Result<Pool<M>, BuildError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?;
        let interval = self.settings.config.maintenance_interval;
        let core = self.settings.into_core()?;
        let queue_started = Arc::new(Notify::new());
        let inner = Arc::new(Inner {
            core,
            manager: self.manager,
            queue_started: Arc::clone(&queue_started),
            tasks: Mutex::new(Vec::new()),
        });
        let maintenance = runtime.spawn(maintain(Arc::downgrade(&inner), interval));
        let expiry = runtime.spawn(expire_waiters(Arc::downgrade(&inner), queue_started));
        *lock(&inner.tasks) = vec![maintenance.abort_handle(), expiry.abort_handle()];
        Ok(Pool { inner })
    }
}

impl<M: Manager> Pool<M> {
    /// A builder around `manager`, with the defaults listed on each setter.
    pub fn builder(manager: M) -> PoolBuilder<M> {
        PoolBuilder { manager, settings: Settings::new() }
    }

    /// Acquires a connection within the pool's acquire timeout.
    ///
    /// # Errors
    ///
    /// See [`Pool::get_timeout`].
    pub async fn get(&self) -> Result<Pooled<M::Connection>, PoolError<M::Error>> {
        self.get_timeout(self.inner.core.config.acquire_timeout).await
    }

    /// Acquires a connection within `timeout`: an idle one if any (checked per the health-check policy), a
    /// new one while the pool is below `max_size`, else the next one returned, in arrival order.
    ///
    /// Dropping the future at any point gives back whatever it held.
    ///
    /// # Errors
    ///
    /// [`PoolError::Create`] with the driver's own error when opening a connection fails (at once, not after
    /// the timeout), [`PoolError::CreateTimeout`], [`PoolError::Timeout`] (with the last connect error when
    /// connections have been failing), [`PoolError::Closed`], [`PoolError::ManagerPanicked`].
    pub async fn get_timeout(&self, timeout: Duration) -> Result<Pooled<M::Connection>, PoolError<M::Error>> {
        let mut budget = Budget::<Instant>::new(timeout);
        let core = &self.inner.core;
        // Waiters on the pool's own timeout queue in deadline order, so one task times them all out; others
        // bring a timer of their own.
        let watched = timeout == core.config.acquire_timeout;
        match core.checkout(|| watched.then(|| budget.deadline().into_std())) {
            Checkout::Idle(slot) => self.checked_out(slot, &mut budget).await,
            Checkout::Create(reserved) => self.open(reserved, &mut budget).await,
            Checkout::Wait(waiter, first) => {
                let since = waiter.since;
                let waiting = Waiting { core, waiter: Some(waiter), closer: false };
                let grant = if watched {
                    if first {
                        self.inner.queue_started.notify_one();
                    }
                    Ok(waiting.await)
                } else {
                    tokio::time::timeout_at(budget.deadline(), waiting).await
                };
                match grant {
                    Ok(Grant::Conn(slot)) => {
                        core.record_wait(since);
                        self.checked_out(slot, &mut budget).await
                    }
                    Ok(Grant::Create) => {
                        core.record_wait(since);
                        self.open(Reserved::new(core), &mut budget).await
                    }
                    Ok(Grant::Closed) => Err(PoolError::Closed),
                    Ok(Grant::TimedOut) | Err(_) => Err(core.timeout_error(core.elapsed(since))),
                }
            }
            Checkout::Closed => Err(PoolError::Closed),
        }
    }

    /// Screens a connection from the idle set (or handed over); one that fails is replaced in its slot.
    async fn checked_out(
        &self,
        mut slot: Slot<M::Connection>,
        budget: &mut Budget<Instant>,
    ) -> Result<Pooled<M::Connection>, PoolError<M::Error>> {
        let inner = &self.inner;
        let core = &inner.core;
        match core.screen(&mut slot, |conn| inner.manager.is_broken(conn)) {
            Screen::Fine => Ok(self.guard(slot)),
            Screen::Lost(loss) => {
                let reserved = Held::new(core, slot).renew(loss);
                self.open(reserved, budget).await
            }
            Screen::Validate => {
                let mut held = Held::new(core, slot);
                if inner.validate(held.conn()).await {
                    Ok(self.guard(held.keep()))
                } else {
                    let reserved = held.renew(Loss::HealthCheck);
                    self.open(reserved, budget).await
                }
            }
        }
    }

    /// Opens a connection in a reserved slot.
    async fn open(
        &self,
        reserved: Reserved<'_, M::Connection>,
        budget: &mut Budget<Instant>,
    ) -> Result<Pooled<M::Connection>, PoolError<M::Error>> {
        match self.inner.connect(budget.deadline()).await {
            Ok(conn) => Ok(self.guard(reserved.fill(conn))),
            Err(error) => {
                reserved.fail(Loss::CreateFailed);
                Err(error)
            }
        }
    }

    fn guard(&self, slot: Slot<M::Connection>) -> Pooled<M::Connection> {
        self.inner.core.counts.acquired();
        let home: Arc<dyn Home<M::Connection>> = self.inner.clone();
        Pooled::new(slot, home)
    }

    /// What the pool holds and has done.
    pub fn stats(&self) -> PoolStats {
        self.inner.core.stats()
    }

    /// The manager the pool was built with.
    pub fn manager(&self) -> &M {
        &self.inner.manager
    }

    /// Whether [`Pool::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.inner.core.is_closed()
    }

    /// Runs one maintenance pass now: closes connections past their lifetime or idle timeout, checks idle
    /// ones due for a periodic check, and opens connections up to `min_idle`. The background task does this
    /// every maintenance interval; tests driving a mock clock call it by hand.
    pub async fn run_maintenance(&self) {
        self.inner.maintain().await;
    }

    /// Closes the pool: new acquires (and those waiting) fail with [`PoolError::Closed`], idle connections
    /// are closed now, and connections in use are closed as they come back, waited for up to `timeout`.
    ///
    /// # Errors
    ///
    /// [`CloseError::Outstanding`] when connections were still in use at the timeout; they are closed when
    /// returned.
    pub async fn close(&self, timeout: Duration) -> Result<(), CloseError> {
        let core = &self.inner.core;
        self.inner.stop_tasks();
        for slot in core.close() {
            core.destroy(slot, Loss::Shutdown);
        }
        let Some(closer) = core.closer() else { return Ok(()) };
        let waiting = Waiting { core, waiter: Some(closer), closer: true };
        match tokio::time::timeout(timeout, waiting).await {
            Ok(_) => Ok(()),
            Err(_) => Err(CloseError::Outstanding { in_use: core.stats().size, waited: timeout }),
        }
    }
}

impl<M: Manager> Inner<M> {
    fn stop_tasks(&self) {
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
    }

    /// Runs the manager's `validate` within the health-check timeout; a panic counts as a failure.
    async fn validate(&self, conn: &mut M::Connection) -> bool {
        let check = CatchUnwind::new(self.manager.validate(conn));
        match tokio::time::timeout(self.core.config.health_check_timeout, check).await {
            Ok(Ok(Ok(()))) => true,
            Ok(Ok(Err(_))) | Err(_) => false,
            Ok(Err(Panicked)) => {
                add(&self.core.counts.manager_panics);
                false
            }
        }
    }

    /// Opens a connection by `deadline`, retrying with backoff as configured. Every failed attempt is
    /// counted and remembered for timeout messages.
    async fn connect(&self, deadline: Instant) -> Result<M::Connection, PoolError<M::Error>> {
        let core = &self.core;
        let create_timeout = core.config.create_timeout;
        let mut retries = Retries::new(&core.config);
        loop {
            let limit = create_timeout.min(deadline.saturating_duration_since(Instant::now()));
            let error = match tokio::time::timeout(limit, CatchUnwind::new(self.manager.create())).await {
                Ok(Ok(Ok(conn))) => return Ok(conn),
                Ok(Ok(Err(error))) => PoolError::Create(error),
                Ok(Err(Panicked)) => {
                    add(&core.counts.manager_panics);
                    add(&core.counts.create_failures);
                    return Err(PoolError::ManagerPanicked("opening a connection"));
                }
                Err(_) if limit < create_timeout => {
                    // The acquire's own deadline cut the attempt short: that is a wait timeout.
                    add(&core.counts.create_failures);
                    return Err(core.timeout_error(limit));
                }
                Err(_) => PoolError::CreateTimeout(limit),
            };
            core.attempt_failed(&error);
            match retries.next(deadline.saturating_duration_since(Instant::now())) {
                Some(pause) => tokio::time::sleep(pause).await,
                None => return Err(error),
            }
        }
    }

    async fn maintain(&self) {
        let core = &self.core;
        for mut held in core.sweep() {
            if self.validate(held.conn()).await {
                core.restore(held.keep());
            } else {
                held.close(Loss::HealthCheck);
            }
        }
        while let Some(reserved) = core.reserve_warm() {
            let deadline = Instant::now() + core.config.create_timeout;
            match self.connect(deadline).await {
                Ok(conn) => core.restore(reserved.fill(conn)),
                Err(_) => {
                    // Counted and remembered by `connect`; the next pass tries again.
                    reserved.fail(Loss::CreateFailed);
                    break;
                }
            }
        }
    }
}

impl<M: Manager> Home<M::Connection> for Inner<M> {
    fn release(&self, slot: Slot<M::Connection>, broken: bool) {
        self.core.release(slot, |conn| !broken && self.manager.on_release(conn) && !self.manager.is_broken(conn));
    }

    fn detach(&self) {
        self.core.discard(Loss::Detached);
    }
}

impl<M: Manager> Drop for Inner<M> {
    fn drop(&mut self) {
        self.stop_tasks();
        // The last handle and every guard are gone: close what is idle, with the cleanup hook.
        for slot in self.core.close() {
            self.core.close_connection(slot.conn);
        }
    }
}

/// The background task: one maintenance pass now (warming `min_idle`), then one every interval.
async fn maintain<M: Manager>(pool: Weak<Inner<M>>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(inner) = pool.upgrade() else { return };
        if inner.core.is_closed() {
            return;
        }
        inner.maintain().await;
    }
}

/// The expiry task: sleeps until the earliest deadline among waiters on the pool's timeout, times out
/// those whose deadline passed, and waits for a waiter when there is none.
async fn expire_waiters<M: Manager>(pool: Weak<Inner<M>>, queue_started: Arc<Notify>) {
    loop {
        let next = {
            let Some(inner) = pool.upgrade() else { return };
            if inner.core.is_closed() {
                return;
            }
            inner.core.expire(Instant::now().into_std())
        };
        match next {
            // Later waiters on the same timeout have later deadlines, so this sleep misses none.
            Some(deadline) => tokio::time::sleep_until(Instant::from_std(deadline)).await,
            // `notify_one` leaves a permit when nobody listens, so a queue started meanwhile is not missed.
            None => queue_started.notified().await,
        }
    }
}

/// A queued acquire (or a close waiting for returns). Dropped before its grant is taken, it leaves the
/// queue or passes the grant on.
struct Waiting<'a, C> {
    core: &'a Core<C>,
    waiter: Option<Arc<Waiter<C>>>,
    closer: bool,
}

impl<C> Future for Waiting<'_, C> {
    type Output = Grant<C>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Grant<C>> {
        let Some(waiter) = &self.waiter else { return Poll::Ready(Grant::Closed) };
        match waiter.poll_task(cx.waker()) {
            Some(grant) => {
                self.waiter = None;
                Poll::Ready(grant)
            }
            None => Poll::Pending,
        }
    }
}

impl<C> Drop for Waiting<'_, C> {
    fn drop(&mut self) {
        let Some(waiter) = self.waiter.take() else { return };
        if self.closer {
            self.core.drop_closer(&waiter);
        } else if let Some(grant) = self.core.cancel(&waiter) {
            self.core.give_back(grant);
        }
    }
}
