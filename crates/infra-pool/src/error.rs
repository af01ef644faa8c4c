//! The pool's errors: one enum for building, one for acquiring.

use std::time::Duration;

/// A setting the pool cannot work with; the message names it and what would be right.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// `max_size(0)`: a pool that can never hand out a connection.
    #[error("max_size is 0: a pool needs room for at least one connection")]
    ZeroMaxSize,
    /// `min_idle` larger than `max_size`.
    #[error("min_idle ({min_idle}) is above max_size ({max_size}): lower min_idle or raise max_size")]
    MinIdleAboveMax {
        /// The requested idle floor.
        min_idle: usize,
        /// The requested ceiling.
        max_size: usize,
    },
    /// A timeout or interval of zero.
    #[error("{setting} is zero: give it a positive duration (or None, where the setting allows, to turn it off)")]
    ZeroDuration {
        /// The setting at fault.
        setting: &'static str,
    },
    /// The async pool was built outside a tokio runtime, where its background worker cannot run.
    #[error("the pool was built outside a tokio runtime: build it from within one (its maintenance task runs there)")]
    NoRuntime,
    /// The blocking pool's maintenance thread could not be started.
    #[error("cannot start the pool's maintenance thread: {0}")]
    Thread(String),
}

/// Why an acquire failed. `E` is the manager's error type.
#[derive(Debug, thiserror::Error)]
pub enum PoolError<E> {
    /// No connection became free within the acquire timeout. When connection attempts were failing
    /// meanwhile, the last of their errors is attached: the pool is not just busy.
    #[error("no connection within {waited:?} ({in_use} in use of {max_size}){}",
        last_create_error.as_ref().map(|e| format!("; the last connection attempt failed: {e}")).unwrap_or_default())]
    Timeout {
        /// How long the acquire waited.
        waited: Duration,
        /// Connections in use when it gave up.
        in_use: usize,
        /// The pool's `max_size`.
        max_size: usize,
        /// The most recent connection error, if attempts have been failing since the last success.
        last_create_error: Option<String>,
    },
    /// Opening a connection failed; this is the manager's (driver's) own error.
    #[error("cannot open a connection: {0}")]
    Create(#[source] E),
    /// Opening a connection took longer than the create timeout.
    #[error("opening a connection took longer than {0:?}")]
    CreateTimeout(Duration),
    /// The pool was closed: no connection will be handed out again.
    #[error("the pool is closed")]
    Closed,
    /// The manager panicked; the pool caught it, counted it and gave the slot back.
    #[error("the connection manager panicked while {0}")]
    ManagerPanicked(&'static str),
}

impl<E> PoolError<E> {
    /// Whether the acquire ran out of time (waiting or connecting), as opposed to failing outright.
    pub fn is_timeout(&self) -> bool {
        matches!(self, PoolError::Timeout { .. } | PoolError::CreateTimeout(_))
    }
}

/// Why `close` returned before every connection was closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloseError {
    /// Connections were still in use when the close timeout ran out; each is closed when returned.
    #[error("{in_use} connections were still in use after {waited:?}; they are closed as they are returned")]
    Outstanding {
        /// Connections not yet returned.
        in_use: usize,
        /// How long `close` waited.
        waited: Duration,
    },
}
