//! Pooled Redis connections.

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{Client, Cmd, IntoConnectionInfo, Pipeline, RedisError, RedisFuture, RedisResult, Value};

use crate::manager::Manager;

/// Opens Redis connections, one per checkout (so `MULTI`/`EXEC`, `WATCH` and blocking commands are safe).
///
/// Connections are [`RedisConnection`]s: a `redis::aio::MultiplexedConnection` that notes when a command
/// fails with an error that leaves it unusable (a dropped connection, an I/O error), so the pool closes it on
/// return and never hands it out again. `validate` sends `PING`.
#[derive(Debug, Clone)]
pub struct RedisManager {
    client: Client,
}

impl RedisManager {
    /// A manager for `info` (`redis://host:port/db`, or any `redis::IntoConnectionInfo`).
    ///
    /// # Errors
    ///
    /// The driver's error when `info` is not a valid connection address.
    pub fn new(info: impl IntoConnectionInfo) -> Result<Self, RedisError> {
        Ok(RedisManager { client: Client::open(info)? })
    }

    /// The client connections are opened from.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

/// A pooled Redis connection: use it wherever `redis` takes an async `ConnectionLike` (`query_async`,
/// `AsyncCommands`).
#[derive(Clone)]
pub struct RedisConnection {
    inner: MultiplexedConnection,
    broken: bool,
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConnection").field("db", &self.inner.get_db()).field("broken", &self.broken).finish()
    }
}

impl RedisConnection {
    /// Whether a command failed in a way that leaves this connection unusable.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// The underlying multiplexed connection.
    pub fn get_mut(&mut self) -> &mut MultiplexedConnection {
        &mut self.inner
    }

    fn note<T>(&mut self, result: &RedisResult<T>) {
        if let Err(err) = result
            && (err.is_unrecoverable_error() || err.is_connection_dropped() || err.is_io_error())
        {
            self.broken = true;
        }
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let result = self.inner.req_packed_command(cmd).await;
            self.note(&result);
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let result = self.inner.req_packed_commands(pipeline, offset, count).await;
            self.note(&result);
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }
}

impl Manager for RedisManager {
    type Connection = RedisConnection;
    type Error = RedisError;

    async fn create(&self) -> Result<RedisConnection, RedisError> {
        let inner = self.client.get_multiplexed_async_connection().await?;
        Ok(RedisConnection { inner, broken: false })
    }

    async fn validate(&self, conn: &mut RedisConnection) -> Result<(), RedisError> {
        let pong: String = redis::cmd("PING").query_async(conn).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(RedisError::from(std::io::Error::other(format!("PING answered {pong:?}"))))
        }
    }

    fn is_broken(&self, conn: &mut RedisConnection) -> bool {
        conn.broken
    }
}
