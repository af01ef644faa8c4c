//! The blocking front end: acquires park the calling thread, maintenance runs on a thread of its own.

use std::sync::{Arc, Mutex, Weak};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use crate::config::{Settings, config_setters};
use crate::core::{Budget, Checkout, Core, Grant, Held, Loss, Reserved, Retries, Screen, Slot, lock};
use crate::error::{BuildError, CloseError, PoolError};
use crate::guard::{Home, Pooled};
use crate::manager::BlockingManager;
use crate::stats::{PoolStats, add};
use crate::unwind::{Panicked, catch};

/// A connection pool for threads: the same core, rules and statistics as [`Pool`](crate::Pool), with
/// acquires that park the calling thread.
///
/// A cheap handle: clones share one pool. Its maintenance thread stops when the pool is closed or its last
/// handle dropped.
pub struct BlockingPool<M: BlockingManager> {
    inner: Arc<Inner<M>>,
}

impl<M: BlockingManager> Clone for BlockingPool<M> {
    fn clone(&self) -> Self {
        BlockingPool { inner: Arc::clone(&self.inner) }
    }
}

impl<M: BlockingManager> std::fmt::Debug for BlockingPool<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingPool").field("core", &self.inner.core).finish_non_exhaustive()
    }
}

struct Inner<M: BlockingManager> {
    core: Core<M::Connection>,
    manager: M,
    maintenance: Mutex<Option<Thread>>,
}

/// Configures a [`BlockingPool`]; from [`BlockingPool::builder`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct BlockingPoolBuilder<M: BlockingManager> {
    manager: M,
    settings: Settings<M::Connection>,
}

impl<M: BlockingManager> std::fmt::Debug for BlockingPoolBuilder<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingPoolBuilder").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl<M: BlockingManager> BlockingPoolBuilder<M> {
    config_setters!(M::Connection);

    /// Builds the pool, opens its `min_idle` connections on the calling thread (each within the create
    /// timeout; one that cannot be opened is counted and left to maintenance, where r2d2 would fail the
    /// build), and starts its maintenance thread.
    ///
    /// The first maintenance pass runs here rather than on the new thread, so that the pool is warm when
    /// `build` returns, and no pass of the thread's races the caller's first acquires.
    ///
    /// # Errors
    ///
    /// [`BuildError`] for settings the pool cannot honour, or when the thread cannot be started.
    pub fn build(self) -> Result<BlockingPool<M>, BuildError> {
        let interval = self.settings.config.maintenance_interval;
        let core = self.settings.into_core()?;
        let inner = Arc::new(Inner { core, manager: self.manager, maintenance: Mutex::new(None) });
        inner.maintain();
        let pool = Arc::downgrade(&inner);
        let worker = thread::Builder::new()
            .name("infra-pool-maintenance".into())
            .spawn(move || maintain(pool, interval))
            .map_err(|err| BuildError::Thread(err.to_string()))?;
        *lock(&inner.maintenance) = Some(worker.thread().clone());
        Ok(BlockingPool { inner })
    }
}

impl<M: BlockingManager> BlockingPool<M> {
    /// A builder around `manager`, with the defaults listed on each setter.
    pub fn builder(manager: M) -> BlockingPoolBuilder<M> {
        BlockingPoolBuilder { manager, settings: Settings::new() }
    }

    /// Acquires a connection within the pool's acquire timeout.
    ///
    /// # Errors
    ///
    /// See [`BlockingPool::get_timeout`].
    pub fn get(&self) -> Result<Pooled<M::Connection>, PoolError<M::Error>> {
        self.get_timeout(self.inner.core.config.acquire_timeout)
    }

    /// Acquires a connection within `timeout`: an idle one if any (checked per the health-check policy), a
    /// new one while the pool is below `max_size`, else the next one returned, in arrival order.
    ///
    /// # Errors
    ///
    /// [`PoolError::Create`] with the driver's own error when opening a connection fails,
    /// [`PoolError::Timeout`] (with the last connect error when connections have been failing),
    /// [`PoolError::Closed`], [`PoolError::ManagerPanicked`].
    pub fn get_timeout(&self, timeout: Duration) -> Result<Pooled<M::Connection>, PoolError<M::Error>> {
        let mut budget = Budget::new(timeout);
        let core = &self.inner.core;
        match core.checkout(|| None) {
            Checkout::Idle(slot) => self.checked_out(slot, &mut budget),
            Checkout::Create(reserved) => self.open(reserved, &mut budget),
            Checkout::Wait(waiter, _) => {
                let deadline = budget.deadline();
                let grant = loop {
                    if let Some(grant) = waiter.poll_thread() {
                        break grant;
                    }
                    let now = Instant::now();
                    if now >= deadline {
                        // A grant that arrived at the last moment is used rather than passed on.
                        match core.cancel(&waiter) {
                            Some(grant) => break grant,
                            None => return Err(core.timeout_error(core.elapsed(waiter.since))),
                        }
                    }
                    thread::park_timeout(deadline - now);
                };
                match grant {
                    Grant::Conn(slot) => {
                        core.record_wait(waiter.since);
                        self.checked_out(slot, &mut budget)
                    }
                    Grant::Create => {
                        core.record_wait(waiter.since);
                        self.open(Reserved::new(core), &mut budget)
                    }
                    Grant::Closed => Err(PoolError::Closed),
                    // Blocking waiters keep their own deadline.
                    Grant::TimedOut => Err(core.timeout_error(core.elapsed(waiter.since))),
                }
            }
            Checkout::Closed => Err(PoolError::Closed),
        }
    }

    fn checked_out(
        &self,
        mut slot: Slot<M::Connection>,
        budget: &mut Budget<Instant>,
    ) -> Result<Pooled<M::Connection>, PoolError<M::Error>> {
        let inner = &self.inner;
        let core = &inner.core;
        match core.screen(&mut slot, |conn| inner.manager.is_broken(conn)) {
            Screen::Fine => Ok(self.guard(slot)),
            Screen::Lost(loss) => self.open(Held::new(core, slot).renew(loss), budget),
            Screen::Validate => {
                let mut held = Held::new(core, slot);
                if inner.validate(held.conn()) {
                    Ok(self.guard(held.keep()))
                } else {
                    self.open(held.renew(Loss::HealthCheck), budget)
                }
            }
        }
    }

    fn open(
        &self,
        reserved: Reserved<'_, M::Connection>,
        budget: &mut Budget<Instant>,
    ) -> Result<Pooled<M::Connection>, PoolError<M::Error>> {
        match self.inner.connect(budget.deadline()) {
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

    /// Whether [`BlockingPool::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.inner.core.is_closed()
    }

    /// Runs one maintenance pass now on the calling thread (see [`Pool::run_maintenance`](crate::Pool::run_maintenance)).
    pub fn run_maintenance(&self) {
        self.inner.maintain();
    }

    /// Closes the pool: new acquires (and those waiting) fail with [`PoolError::Closed`], idle connections
    /// are closed now, and connections in use are closed as they come back, waited for up to `timeout`.
    ///
    /// # Errors
    ///
    /// [`CloseError::Outstanding`] when connections were still in use at the timeout; they are closed when
    /// returned.
    pub fn close(&self, timeout: Duration) -> Result<(), CloseError> {
        let core = &self.inner.core;
        for slot in core.close() {
            core.destroy(slot, Loss::Shutdown);
        }
        self.inner.stop_maintenance();
        let Some(closer) = core.closer() else { return Ok(()) };
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if closer.poll_thread().is_some() {
                return Ok(());
            }
            let now = Instant::now();
            match deadline {
                Some(deadline) if now >= deadline => {
                    core.drop_closer(&closer);
                    return Err(CloseError::Outstanding { in_use: core.stats().size, waited: timeout });
                }
                Some(deadline) => thread::park_timeout(deadline - now),
                None => thread::park(),
            }
        }
    }
}

impl<M: BlockingManager> Inner<M> {
    fn validate(&self, conn: &mut M::Connection) -> bool {
        match catch(|| self.manager.validate(conn)) {
            Ok(Ok(())) => true,
            Ok(Err(_)) => false,
            Err(Panicked) => {
                add(&self.core.counts.manager_panics);
                false
            }
        }
    }

    /// Opens a connection, retrying with backoff while `deadline` allows. Every failed attempt is counted and
    /// remembered for timeout messages.
    fn connect(&self, deadline: Instant) -> Result<M::Connection, PoolError<M::Error>> {
        let core = &self.core;
        let mut retries = Retries::new(&core.config);
        loop {
            let error = match catch(|| self.manager.create()) {
                Ok(Ok(conn)) => return Ok(conn),
                Ok(Err(error)) => PoolError::Create(error),
                Err(Panicked) => {
                    add(&core.counts.manager_panics);
                    add(&core.counts.create_failures);
                    return Err(PoolError::ManagerPanicked("opening a connection"));
                }
            };
            core.attempt_failed(&error);
            match retries.next(deadline.saturating_duration_since(Instant::now())) {
                Some(pause) => thread::sleep(pause),
                None => return Err(error),
            }
        }
    }

    fn maintain(&self) {
        let core = &self.core;
        for mut held in core.sweep() {
            if self.validate(held.conn()) {
                core.restore(held.keep());
            } else {
                held.close(Loss::HealthCheck);
            }
        }
        while let Some(reserved) = core.reserve_warm() {
            match self.connect(Instant::now() + core.config.create_timeout) {
                Ok(conn) => core.restore(reserved.fill(conn)),
                Err(_) => {
                    reserved.fail(Loss::CreateFailed);
                    break;
                }
            }
        }
    }

    fn stop_maintenance(&self) {
        if let Some(worker) = lock(&self.maintenance).take() {
            worker.unpark();
        }
    }
}

impl<M: BlockingManager> Home<M::Connection> for Inner<M> {
    fn release(&self, slot: Slot<M::Connection>, broken: bool) {
        self.core.release(slot, |conn| !broken && self.manager.on_release(conn) && !self.manager.is_broken(conn));
    }

    fn detach(&self) {
        self.core.discard(Loss::Detached);
    }
}

impl<M: BlockingManager> Drop for Inner<M> {
    fn drop(&mut self) {
        self.stop_maintenance();
        for slot in self.core.close() {
            self.core.close_connection(slot.conn);
        }
    }
}

/// The maintenance thread: a pass every interval (`build` ran the first, warming `min_idle`), until the pool
/// closes or is dropped (either unparks it).
fn maintain<M: BlockingManager>(pool: Weak<Inner<M>>, interval: Duration) {
    loop {
        thread::park_timeout(interval);
        let Some(inner) = pool.upgrade() else { return };
        if inner.core.is_closed() {
            return;
        }
        inner.maintain();
    }
}
