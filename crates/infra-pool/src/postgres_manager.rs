//! Pooled `tokio_postgres::Client`s.

use std::str::FromStr;

use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, Config, Error, NoTls, Socket};

use crate::manager::Manager;

/// Opens `tokio_postgres::Client`s (each with its connection driven by a task of its own).
///
/// A client whose connection ended (the server restarted, a network error) reports itself closed, so the
/// pool finds it on checkout without a round trip; `validate` sends an empty query.
#[derive(Debug, Clone)]
pub struct PostgresManager<T = NoTls> {
    config: Config,
    tls: T,
}

impl PostgresManager<NoTls> {
    /// A manager for plain-text connections with `config`.
    pub fn new(config: Config) -> Self {
        PostgresManager { config, tls: NoTls }
    }

    /// A manager for plain-text connections to a URL or key-value connection string
    /// (`postgres://user@host:port/db`, `host=... user=...`).
    ///
    /// # Errors
    ///
    /// The driver's parse error when the string is not a valid connection string.
    pub fn from_url(url: &str) -> Result<Self, Error> {
        Ok(Self::new(Config::from_str(url)?))
    }
}

impl<T> PostgresManager<T> {
    /// A manager whose connections go through `tls` (e.g. `postgres-native-tls` or `tokio-postgres-rustls`).
    pub fn with_tls(config: Config, tls: T) -> Self {
        PostgresManager { config, tls }
    }

    /// The connection settings.
    pub fn config(&self) -> &Config {
        &self.config
    }
}

impl<T> Manager for PostgresManager<T>
where
    T: MakeTlsConnect<Socket> + Clone + Send + Sync + 'static,
    T::Stream: Send + Sync + 'static,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    type Connection = Client;
    type Error = Error;

    async fn create(&self) -> Result<Client, Error> {
        let (client, connection) = self.config.connect(self.tls.clone()).await?;
        // The connection's end (and its error) shows up as `client.is_closed()`, which the pool checks.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    async fn validate(&self, conn: &mut Client) -> Result<(), Error> {
        conn.simple_query("").await.map(drop)
    }

    fn is_broken(&self, conn: &mut Client) -> bool {
        conn.is_closed()
    }
}
