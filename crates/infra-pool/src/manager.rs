//! What a pool asks of the code that knows how to open, check and reset a connection.

use std::future::Future;

/// Opens, checks and resets connections for the async [`Pool`](crate::Pool).
///
/// Only `create` is required. The pool calls `is_broken` (cheap, no I/O) on every checkout and return,
/// `validate` (a round trip) when the [`HealthCheck`](crate::HealthCheck) policy or a periodic check asks,
/// and `on_release` when a connection comes back. A panic in any of them is caught, counted and treated as
/// a broken connection; it never poisons the pool.
///
/// ```
/// use infra_pool::Manager;
///
/// #[derive(Debug)]
/// struct Counter;
///
/// impl Manager for Counter {
///     type Connection = u64;
///     type Error = std::io::Error;
///
///     async fn create(&self) -> Result<u64, std::io::Error> {
///         Ok(7)
///     }
/// }
/// ```
pub trait Manager: Send + Sync + 'static {
    /// The pooled connection.
    type Connection: Send + 'static;
    /// What opening or checking a connection fails with.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Opens a new connection. The pool bounds it with its create timeout.
    fn create(&self) -> impl Future<Output = Result<Self::Connection, Self::Error>> + Send;

    /// Checks that a connection still works (a round trip, e.g. `SELECT 1` or `PING`). The pool bounds it
    /// with its health-check timeout. By default every connection passes.
    fn validate(&self, conn: &mut Self::Connection) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = conn;
        std::future::ready(Ok(()))
    }

    /// Whether a connection is known to be unusable without asking the server (the driver saw it close).
    fn is_broken(&self, conn: &mut Self::Connection) -> bool {
        let _ = conn;
        false
    }

    /// Resets a connection coming back from its user; `false` closes it instead of reusing it.
    fn on_release(&self, conn: &mut Self::Connection) -> bool {
        let _ = conn;
        true
    }
}

/// Opens, checks and resets connections for the [`BlockingPool`](crate::BlockingPool), on the calling
/// thread.
///
/// The same contract as [`Manager`], with blocking calls. A blocking call cannot be interrupted, so
/// `create` and `validate` must bound their own I/O (a connect timeout, a read timeout); the pool's create
/// and health-check timeouts count against the acquire deadline but cannot stop a call midway.
pub trait BlockingManager: Send + Sync + 'static {
    /// The pooled connection.
    type Connection: Send + 'static;
    /// What opening or checking a connection fails with.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Opens a new connection.
    fn create(&self) -> Result<Self::Connection, Self::Error>;

    /// Checks that a connection still works. By default every connection passes.
    fn validate(&self, conn: &mut Self::Connection) -> Result<(), Self::Error> {
        let _ = conn;
        Ok(())
    }

    /// Whether a connection is known to be unusable without asking the server.
    fn is_broken(&self, conn: &mut Self::Connection) -> bool {
        let _ = conn;
        false
    }

    /// Resets a connection coming back from its user; `false` closes it instead of reusing it.
    fn on_release(&self, conn: &mut Self::Connection) -> bool {
        let _ = conn;
        true
    }
}
