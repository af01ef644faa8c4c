//! A network fault proxy: TCP proxies with toxics, driven in code or through Toxiproxy's HTTP API, so the
//! Toxiproxy clients in every language work against it unchanged.

mod api;
mod link;
mod toxic;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener as StdTcpListener, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinHandle, JoinSet};

pub use toxic::{Direction, Toxic, ToxicKind};

/// The version `/version` reports.
pub const VERSION: &str = concat!("infra-chaos ", env!("CARGO_PKG_VERSION"), " (toxiproxy 2.x API)");

/// Why a proxy request failed; each maps to the HTTP status Toxiproxy answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// No proxy or toxic of that name (404).
    #[error("{0} not found")]
    NotFound(String),
    /// A proxy or toxic of that name exists already (409).
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// A malformed request: bad JSON, a missing field, an unknown toxic type, a bad value (400).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The listen address cannot be bound (in use, not local, unresolvable) (400).
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address asked for.
        addr: String,
        /// What the system said.
        reason: String,
    },
    /// The proxy server is not running inside a tokio runtime, or has been shut down (500).
    #[error("the proxy server is not running: {0}")]
    NotRunning(String),
}

impl ProxyError {
    /// The HTTP status Toxiproxy answers this error with.
    pub fn status(&self) -> u16 {
        match self {
            ProxyError::NotFound(_) => 404,
            ProxyError::AlreadyExists(_) => 409,
            ProxyError::BadRequest(_) | ProxyError::Listen { .. } => 400,
            ProxyError::NotRunning(_) => 500,
        }
    }
}

/// A toxic as installed on a proxy: an id that changes on every update (links decide toxicity per id),
/// and the count `fail_first` keeps.
#[derive(Debug)]
pub(crate) struct ToxicEntry {
    pub(crate) id: u64,
    pub(crate) toxic: Toxic,
    pub(crate) refused: AtomicU64,
}

/// The toxics of one proxy, as links read them.
pub(crate) type ToxicList = Arc<Vec<Arc<ToxicEntry>>>;

/// A proxy's settings and state, as the API reports them.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyInfo {
    /// Its name.
    pub name: String,
    /// The address it listens on (the bound one, when asked for port 0).
    pub listen: String,
    /// Where it forwards connections.
    pub upstream: String,
    /// Whether it listens.
    pub enabled: bool,
    /// Its toxics, in the order they apply.
    pub toxics: Vec<Toxic>,
}

impl ProxyInfo {
    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": self.toxics.iter().map(Toxic::to_json).collect::<Vec<_>>(),
        })
    }
}

struct ProxyState {
    listen: String,
    upstream: String,
    enabled: bool,
    toxics: Vec<Arc<ToxicEntry>>,
    published: watch::Sender<ToxicList>,
    /// The accept loop; aborting it drops its listener and its set of links, closing every connection.
    accepting: Option<JoinHandle<()>>,
}

struct Inner {
    proxies: Mutex<BTreeMap<String, ProxyState>>,
    runtime: Handle,
    api_addr: SocketAddr,
    api_task: Mutex<Option<AbortHandle>>,
    next_id: AtomicU64,
}

/// A Toxiproxy-compatible fault proxy: TCP proxies on loopback with toxics, and the HTTP API on `api_addr`.
///
/// A cheap handle; everything stops with [`ProxyServer::shutdown`] or when the last handle drops.
#[derive(Clone)]
pub struct ProxyServer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ProxyServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyServer").field("api_addr", &self.inner.api_addr).finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ProxyServer {
    /// Starts the HTTP API on `api_addr` (port 0 picks a free one) in the current tokio runtime.
    ///
    /// # Errors
    ///
    /// [`ProxyError::Listen`] when the address cannot be bound; [`ProxyError::NotRunning`] outside a
    /// runtime.
    pub async fn start(api_addr: SocketAddr) -> Result<Self, ProxyError> {
        let runtime = Handle::try_current().map_err(|err| ProxyError::NotRunning(err.to_string()))?;
        let listener = TcpListener::bind(api_addr)
            .await
            .map_err(|err| ProxyError::Listen { addr: api_addr.to_string(), reason: err.to_string() })?;
        let api_addr = listener.local_addr().map_err(|err| ProxyError::NotRunning(err.to_string()))?;
        let server = ProxyServer {
            inner: Arc::new(Inner {
                proxies: Mutex::new(BTreeMap::new()),
                runtime,
                api_addr,
                api_task: Mutex::new(None),
                next_id: AtomicU64::new(1),
            }),
        };
        let task = tokio::spawn(api::serve(listener, Arc::downgrade(&server.inner)));
        *lock(&server.inner.api_task) = Some(task.abort_handle());
        Ok(server)
    }

    /// Where the HTTP API listens.
    pub fn api_addr(&self) -> SocketAddr {
        self.inner.api_addr
    }

    /// Creates a proxy (Toxiproxy's `POST /proxies`), listening at once when `enabled`.
    ///
    /// # Errors
    ///
    /// [`ProxyError::AlreadyExists`], [`ProxyError::BadRequest`] for an empty name or upstream,
    /// [`ProxyError::Listen`] when the listen address cannot be bound.
    pub fn create(&self, name: &str, listen: &str, upstream: &str, enabled: bool) -> Result<ProxyInfo, ProxyError> {
        if name.is_empty() {
            return Err(ProxyError::BadRequest("missing required field: name".into()));
        }
        if upstream.is_empty() {
            return Err(ProxyError::BadRequest("missing required field: upstream".into()));
        }
        let listen = if listen.is_empty() { "127.0.0.1:0" } else { listen };
        let mut proxies = lock(&self.inner.proxies);
        if proxies.contains_key(name) {
            return Err(ProxyError::AlreadyExists(format!("proxy {name}")));
        }
        let (published, _) = watch::channel(Arc::new(Vec::new()));
        let mut state = ProxyState {
            listen: listen.to_owned(),
            upstream: upstream.to_owned(),
            enabled: false,
            toxics: Vec::new(),
            published,
            accepting: None,
        };
        if enabled {
            self.enable(&mut state)?;
        }
        let info = info(name, &state);
        proxies.insert(name.to_owned(), state);
        Ok(info)
    }

    /// Binds the proxy's listen address and starts accepting.
    fn enable(&self, state: &mut ProxyState) -> Result<(), ProxyError> {
        if state.enabled {
            return Ok(());
        }
        let listen_error = |reason: String| ProxyError::Listen { addr: state.listen.clone(), reason };
        let addr = state
            .listen
            .to_socket_addrs()
            .map_err(|err| listen_error(err.to_string()))?
            .next()
            .ok_or_else(|| listen_error("no address".into()))?;
        let std_listener = StdTcpListener::bind(addr).map_err(|err| listen_error(err.to_string()))?;
        std_listener.set_nonblocking(true).map_err(|err| listen_error(err.to_string()))?;
        let bound = std_listener.local_addr().map_err(|err| listen_error(err.to_string()))?;
        let _runtime = self.inner.runtime.enter();
        let listener = TcpListener::from_std(std_listener).map_err(|err| listen_error(err.to_string()))?;
        state.listen = bound.to_string();
        let task = self.inner.runtime.spawn(accept(
            listener,
            state.upstream.clone(),
            state.published.subscribe(),
            self.inner.next_id.fetch_add(1, Ordering::Relaxed),
        ));
        state.accepting = Some(task);
        state.enabled = true;
        Ok(())
    }

    /// Stops accepting; the returned task, once awaited, guarantees the listener is closed.
    fn disable(state: &mut ProxyState) -> Option<JoinHandle<()>> {
        state.enabled = false;
        let accepting = state.accepting.take()?;
        accepting.abort();
        Some(accepting)
    }

    /// Waits until stopped accept loops have dropped their listeners, so the ports are closed (and free).
    async fn stopped(tasks: impl IntoIterator<Item = JoinHandle<()>>) {
        for task in tasks {
            let _ = task.await;
        }
    }

    /// Every proxy (Toxiproxy's `GET /proxies`).
    pub fn proxies(&self) -> Vec<ProxyInfo> {
        lock(&self.inner.proxies).iter().map(|(name, state)| info(name, state)).collect()
    }

    /// One proxy (Toxiproxy's `GET /proxies/{name}`).
    ///
    /// # Errors
    ///
    /// [`ProxyError::NotFound`].
    pub fn proxy(&self, name: &str) -> Result<ProxyInfo, ProxyError> {
        let proxies = lock(&self.inner.proxies);
        proxies.get(name).map(|state| info(name, state)).ok_or_else(|| not_found_proxy(name))
    }

    /// Changes a proxy's listen address, upstream or enabled flag (Toxiproxy's `POST /proxies/{name}`).
    /// Disabling closes every connection through it (a partition); a new listen address or upstream
    /// restarts it.
    ///
    /// # Errors
    ///
    /// [`ProxyError::NotFound`], [`ProxyError::Listen`].
    pub async fn update(
        &self,
        name: &str,
        listen: Option<&str>,
        upstream: Option<&str>,
        enabled: Option<bool>,
    ) -> Result<ProxyInfo, ProxyError> {
        let (stopped, enable) = {
            let mut proxies = lock(&self.inner.proxies);
            let state = proxies.get_mut(name).ok_or_else(|| not_found_proxy(name))?;
            let moved = listen.is_some_and(|listen| listen != state.listen)
                || upstream.is_some_and(|upstream| upstream != state.upstream);
            let enable = enabled.unwrap_or(state.enabled);
            (if moved || !enable { Self::disable(state) } else { None }, enable)
        };
        // The old listener is closed before anything rebinds: a partition refuses connections at once.
        Self::stopped(stopped).await;
        let mut proxies = lock(&self.inner.proxies);
        let state = proxies.get_mut(name).ok_or_else(|| not_found_proxy(name))?;
        if let Some(listen) = listen {
            state.listen = listen.to_owned();
        }
        if let Some(upstream) = upstream.filter(|upstream| !upstream.is_empty()) {
            state.upstream = upstream.to_owned();
        }
        if enable {
            self.enable(state)?;
        }
        Ok(info(name, state))
    }

    /// Deletes a proxy, closing its connections (Toxiproxy's `DELETE /proxies/{name}`).
    ///
    /// # Errors
    ///
    /// [`ProxyError::NotFound`].
    pub async fn delete(&self, name: &str) -> Result<(), ProxyError> {
        let mut state = lock(&self.inner.proxies).remove(name).ok_or_else(|| not_found_proxy(name))?;
        Self::stopped(Self::disable(&mut state)).await;
        Ok(())
    }

    /// Creates or replaces a set of proxies (Toxiproxy's `POST /populate`): a proxy whose listen address
    /// and upstream are unchanged is kept (with its connections); others are replaced.
    ///
    /// # Errors
    ///
    /// The first failure; proxies created before it are removed again.
    pub async fn populate(&self, specs: &[(String, String, String, bool)]) -> Result<Vec<ProxyInfo>, ProxyError> {
        let mut created = Vec::new();
        let mut result = Vec::new();
        for (name, listen, upstream, enabled) in specs {
            let current = self.proxy(name).ok();
            let unchanged = current.as_ref().is_some_and(|current| {
                current.upstream == *upstream && (listen.is_empty() || current.listen == *listen)
            });
            if unchanged {
                result.push(self.update(name, None, None, Some(*enabled)).await?);
                continue;
            }
            if current.is_some() {
                self.delete(name).await?;
            }
            match self.create(name, listen, upstream, *enabled) {
                Ok(info) => {
                    created.push(name.clone());
                    result.push(info);
                }
                Err(error) => {
                    for name in created {
                        let _ = self.delete(&name).await;
                    }
                    return Err(error);
                }
            }
        }
        Ok(result)
    }

    /// Enables every proxy and removes every toxic (Toxiproxy's `POST /reset`).
    ///
    /// # Errors
    ///
    /// [`ProxyError::Listen`] when a proxy cannot listen again.
    pub fn reset(&self) -> Result<(), ProxyError> {
        let mut proxies = lock(&self.inner.proxies);
        for state in proxies.values_mut() {
            state.toxics.clear();
            state.published.send_replace(Arc::new(Vec::new()));
            self.enable(state)?;
        }
        Ok(())
    }

    /// Adds a toxic to a proxy (Toxiproxy's `POST /proxies/{name}/toxics`); it applies to open connections
    /// too, from their next chunk.
    ///
    /// # Errors
    ///
    /// [`ProxyError::NotFound`], [`ProxyError::AlreadyExists`] for a toxic name in use.
    pub fn add_toxic(&self, proxy: &str, toxic: Toxic) -> Result<Toxic, ProxyError> {
        let mut proxies = lock(&self.inner.proxies);
        let state = proxies.get_mut(proxy).ok_or_else(|| not_found_proxy(proxy))?;
        if state.toxics.iter().any(|entry| entry.toxic.name == toxic.name) {
            return Err(ProxyError::AlreadyExists(format!("toxic {}", toxic.name)));
        }
        state.toxics.push(self.entry(toxic.clone()));
        publish(state);
        Ok(toxic)
    }

    fn entry(&self, toxic: Toxic) -> Arc<ToxicEntry> {
        Arc::new(ToxicEntry {
            id: self.inner.next_id.fetch_add(1, Ordering::Relaxed),
            toxic,
            refused: AtomicU64::new(0),
        })
    }

    /// A proxy's toxics (Toxiproxy's `GET /proxies/{name}/toxics`).
    ///
    /// # Errors
    ///
    /// [`ProxyError::NotFound`].
    pub fn toxics(&self, proxy: &str) -> Result<Vec<Toxic>, ProxyError> {
        Ok(self.proxy(proxy)?.toxics)
    }

    /// Changes a toxic from Toxiproxy's update form (`{"attributes": {...}, "toxicity": x}`).
    ///
    /// # Errors
    ///
    /// [`ProxyError::NotFound`], [`ProxyError::BadRequest`].
    pub fn update_toxic(&self, proxy: &str, name: &str, update: &Value) -> Result<Toxic, ProxyError> {
        let mut proxies = lock(&self.inner.proxies);
        let state = proxies.get_mut(proxy).ok_or_else(|| not_found_proxy(proxy))?;
        let position = state
            .toxics
            .iter()
            .position(|entry| entry.toxic.name == name)
            .ok_or_else(|| ProxyError::NotFound(format!("toxic {name}")))?;
        let updated = state.toxics[position].toxic.updated(update)?;
        state.toxics[position] = self.entry(updated.clone());
        publish(state);
        Ok(updated)
    }

    /// Removes a toxic (Toxiproxy's `DELETE /proxies/{name}/toxics/{toxic}`); open connections are
    /// released from it at once (a black hole lets data through again).
    ///
    /// # Errors
    ///
    /// [`ProxyError::NotFound`].
    pub fn remove_toxic(&self, proxy: &str, name: &str) -> Result<(), ProxyError> {
        let mut proxies = lock(&self.inner.proxies);
        let state = proxies.get_mut(proxy).ok_or_else(|| not_found_proxy(proxy))?;
        let before = state.toxics.len();
        state.toxics.retain(|entry| entry.toxic.name != name);
        if state.toxics.len() == before {
            return Err(ProxyError::NotFound(format!("toxic {name}")));
        }
        publish(state);
        Ok(())
    }

    /// Stops the API and every proxy, closing all connections and freeing every port before it returns.
    pub async fn shutdown(&self) {
        if let Some(task) = lock(&self.inner.api_task).take() {
            task.abort();
        }
        let stopped: Vec<_> = lock(&self.inner.proxies).values_mut().filter_map(Self::disable).collect();
        Self::stopped(stopped).await;
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.api_task).take() {
            task.abort();
        }
        for state in self.proxies.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner).values_mut() {
            drop(ProxyServer::disable(state));
        }
    }
}

/// A network experiment: toxics to put on one proxy of a [`ProxyServer`] for as long as the experiment
/// runs (see [`Fault::Network`](crate::Fault::Network)).
#[derive(Debug, Clone)]
pub struct NetworkFault {
    server: ProxyServer,
    proxy: String,
    toxics: Vec<Toxic>,
}

impl NetworkFault {
    /// A partition: a black hole both ways (Toxiproxy's `timeout` of 0), so connections hang, as across
    /// a cut link, until the experiment ends.
    pub fn partition(server: &ProxyServer, proxy: &str) -> Self {
        let hole = |direction| Toxic::new(ToxicKind::Timeout { timeout: 0 }, direction);
        NetworkFault {
            server: server.clone(),
            proxy: proxy.to_owned(),
            toxics: vec![hole(Direction::Upstream), hole(Direction::Downstream)],
        }
    }

    /// A degraded link: these toxics (latency, bandwidth, resets, ...).
    pub fn degrade(server: &ProxyServer, proxy: &str, toxics: Vec<Toxic>) -> Self {
        NetworkFault { server: server.clone(), proxy: proxy.to_owned(), toxics }
    }

    /// Installs the toxics under names unique to `tag`; a failure removes those already installed.
    pub(crate) fn apply(&self, tag: &str) -> Result<crate::resource::Hold, String> {
        let mut installed = Vec::new();
        for toxic in &self.toxics {
            let mut toxic = toxic.clone();
            toxic.name = format!("{tag}-{}", toxic.name);
            match self.server.add_toxic(&self.proxy, toxic) {
                Ok(toxic) => installed.push(toxic.name),
                Err(error) => {
                    for name in &installed {
                        let _ = self.server.remove_toxic(&self.proxy, name);
                    }
                    return Err(error.to_string());
                }
            }
        }
        Ok(crate::resource::Hold::Network { server: self.server.clone(), proxy: self.proxy.clone(), toxics: installed })
    }
}

fn not_found_proxy(name: &str) -> ProxyError {
    ProxyError::NotFound(format!("proxy {name}"))
}

fn publish(state: &ProxyState) {
    state.published.send_replace(Arc::new(state.toxics.clone()));
}

fn info(name: &str, state: &ProxyState) -> ProxyInfo {
    ProxyInfo {
        name: name.to_owned(),
        listen: state.listen.clone(),
        upstream: state.upstream.clone(),
        enabled: state.enabled,
        toxics: state.toxics.iter().map(|entry| entry.toxic.clone()).collect(),
    }
}

/// Accepts connections until aborted; aborting drops the set of links, closing each.
async fn accept(listener: TcpListener, upstream: String, toxics: watch::Receiver<ToxicList>, proxy_seed: u64) {
    let mut links = JoinSet::new();
    let mut accepted: u64 = 0;
    loop {
        tokio::select! {
            incoming = listener.accept() => match incoming {
                Ok((client, _)) => {
                    accepted += 1;
                    let seed = crate::mix::mix64(proxy_seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ accepted.wrapping_mul(crate::mix::GOLDEN));
                    links.spawn(link::run(client, upstream.clone(), toxics.clone(), seed));
                }
                // Out of descriptors, say: back off a little rather than spin.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            },
            Some(_) = links.join_next(), if !links.is_empty() => {}
        }
    }
}
