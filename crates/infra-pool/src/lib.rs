//! A connection pool that is fair, fast, and recovers when the database restarts.
//!
//! [`Pool`] (async, tokio) and [`BlockingPool`] (threads) share one core. A [`Manager`] (or
//! [`BlockingManager`]) says how to open, check and reset a connection; the pool decides when:
//!
//! - **Fair.** Waiters are served strictly first come, first served: a returned connection, or a slot set
//!   free, goes straight to the oldest waiter, so nobody overtakes the queue and waits stay tight.
//! - **Cancellation-safe.** Dropping an acquire at any point (timeout, `select!`, an aborted task) gives
//!   back whatever it held: its place in the queue, a connection handed to it, a half-opened slot. Counters
//!   stay exact.
//! - **Honest errors.** When the database is unreachable, acquirers get the driver's own connect error at
//!   once ([`PoolError::Create`]); a timeout says what the last connection attempt failed with.
//! - **Recovers.** Connections the server closed are found on checkout (the manager's `is_broken`, no round
//!   trip) or by the [`HealthCheck`] policy, and replaced in place.
//! - **Bounded by rules.** `min_idle` kept warm in the background, `max_lifetime`, `idle_timeout`, periodic
//!   checks of idle connections, all timed by an injectable clock.
//!
//! ```
//! use std::time::Duration;
//! use infra_pool::{Manager, Pool};
//!
//! /// Hands out numbered "connections"; a real manager opens sockets.
//! #[derive(Debug, Default)]
//! struct Numbers(std::sync::atomic::AtomicU32);
//!
//! impl Manager for Numbers {
//!     type Connection = u32;
//!     type Error = std::io::Error;
//!
//!     async fn create(&self) -> Result<u32, std::io::Error> {
//!         Ok(self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build()?.block_on(async {
//! let pool = Pool::builder(Numbers::default())
//!     .max_size(4)
//!     .acquire_timeout(Duration::from_secs(2))
//!     .build()?;
//!
//! let first = pool.get().await?;
//! assert_eq!(*first, 0);
//! drop(first); // back to the pool
//! assert_eq!(*pool.get().await?, 0, "the idle connection is reused");
//!
//! let stats = pool.stats();
//! assert_eq!((stats.size, stats.idle, stats.creates, stats.acquisitions), (1, 1, 1, 2));
//! pool.close(Duration::from_secs(1)).await?;
//! assert!(pool.get().await.is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Built-in managers: [`TcpManager`] and [`BlockingTcpManager`] (plain sockets), and behind features
//! `PostgresManager` and `RedisManager`. The guide is `docs/pool.md`.
//!
//! ## Feature flags
//!
//! - `postgres`: `PostgresManager`, pooling `tokio_postgres::Client`s (broken ones found without a round
//!   trip, checked with an empty query).
//! - `redis`: `RedisManager`, pooling `redis::aio::MultiplexedConnection`s, checked with `PING`.

mod blocking;
mod config;
mod core;
mod error;
mod guard;
mod manager;
mod pool;
#[cfg(feature = "postgres")]
mod postgres_manager;
#[cfg(feature = "redis")]
mod redis_manager;
mod stats;
mod tcp;
mod unwind;

pub use blocking::{BlockingPool, BlockingPoolBuilder};
pub use config::{
    DEFAULT_ACQUIRE_TIMEOUT, DEFAULT_CREATE_TIMEOUT, DEFAULT_HEALTH_CHECK_TIMEOUT, DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAINTENANCE_INTERVAL, DEFAULT_MAX_LIFETIME, DEFAULT_MAX_SIZE, HealthCheck,
};
pub use error::{BuildError, CloseError, PoolError};
pub use guard::Pooled;
pub use manager::{BlockingManager, Manager};
pub use pool::{Pool, PoolBuilder};
#[cfg(feature = "postgres")]
pub use postgres_manager::PostgresManager;
#[cfg(feature = "redis")]
pub use redis_manager::{RedisConnection, RedisManager};
pub use stats::{PoolStats, WaitQuantiles};
pub use tcp::{BlockingTcpManager, TcpManager};
