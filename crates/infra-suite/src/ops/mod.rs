//! The ops server (feature `ops`): `/metrics`, `/healthz`, `/readyz` and a JSON API over every component
//! of an [`InfraSuite`], described by an OpenAPI document at `/api/v1/openapi.json`.
//!
//! It binds 127.0.0.1 unless told otherwise, runs on a thread of its own (a single-threaded tokio runtime,
//! so it never competes with the host's runtime or hot threads), and answers every error as JSON
//! `{"status": 404, "error": "no alert alert-7"}`. Mutating requests (`POST`, `PUT`, `PATCH`, `DELETE`)
//! need `Authorization: Bearer <token>`: the configured token, or one generated at start and printed
//! once on stderr. Request bodies are limited (64 KiB by default; over it: 413). Every mutation attempt,
//! refused or not, is logged (component `ops`).
//!
//! Hosts that already run axum can mount [`OpsServerBuilder::router`] in their own server instead.
//!
//! ```
//! use infra_suite::InfraSuite;
//! use infra_suite::ops::OpsServer;
//!
//! let suite = InfraSuite::builder("order-gateway").build()?;
//! let ops = OpsServer::builder(&suite).token("a-token-of-at-least-16-chars").start()?;
//! assert!(ops.local_addr().ip().is_loopback());
//! println!("dashboard at {}/", ops.url());
//! ops.shutdown();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod api;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::thread::JoinHandle;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};

use crate::InfraSuite;

/// The default limit on a request body.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// Why the ops server could not start.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The address could not be bound (in use, not local, no permission).
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address asked for.
        address: SocketAddr,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The server's runtime or thread could not be created.
    #[error("cannot start the ops server's runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The configured token cannot be sent in an `Authorization` header.
    #[error("the ops API token must be 16 to 256 visible ASCII characters without spaces; got {0} characters")]
    Token(usize),
}

/// Configures the ops server; from [`OpsServer::builder`].
#[must_use = "a builder does nothing until `start` or `router` is called"]
#[derive(Debug)]
pub struct OpsServerBuilder {
    suite: InfraSuite,
    address: SocketAddr,
    token: Option<String>,
    body_limit: usize,
}

impl OpsServerBuilder {
    /// Where to listen (default `127.0.0.1:0`: loopback, a free port; see [`OpsServer::local_addr`]).
    /// Binding beyond loopback exposes the API to the network: the token is then all that guards it.
    pub fn bind(mut self, address: SocketAddr) -> Self {
        self.address = address;
        self
    }

    /// The bearer token mutating requests must carry (default: 32 random hex characters, generated at
    /// start and printed once on stderr).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The largest request body accepted, in bytes (default [`DEFAULT_BODY_LIMIT`]); larger ones get 413.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// The server's routes, for a host that serves them itself, and the token they check.
    ///
    /// # Errors
    ///
    /// [`OpsError::Token`] when the configured token is unusable.
    pub fn router(self) -> Result<(Router, String), OpsError> {
        let (token, _) = self.resolve_token()?;
        let router = routes(Arc::new(api::Shared { suite: self.suite, token: token.clone() }), self.body_limit);
        Ok((router, token))
    }

    /// Binds and serves on a thread of its own until [`OpsServer::shutdown`] (or drop).
    ///
    /// # Errors
    ///
    /// [`OpsError::Bind`] when the address cannot be bound, [`OpsError::Runtime`] when the thread or its
    /// runtime cannot be created, [`OpsError::Token`] when the configured token is unusable.
    pub fn start(self) -> Result<OpsServer, OpsError> {
        let requested = self.address;
        let (token, generated) = self.resolve_token()?;
        let listener =
            std::net::TcpListener::bind(requested).map_err(|source| OpsError::Bind { address: requested, source })?;
        let address = listener.local_addr().map_err(|source| OpsError::Bind { address: requested, source })?;
        listener.set_nonblocking(true).map_err(OpsError::Runtime)?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(OpsError::Runtime)?;
        let router = routes(Arc::new(api::Shared { suite: self.suite, token: token.clone() }), self.body_limit);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("infra-ops-http".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
                    let _ = axum::serve(listener, router)
                        .with_graceful_shutdown(async move {
                            let _ = stopped.await;
                        })
                        .await;
                });
            })
            .map_err(OpsError::Runtime)?;
        if generated {
            // Printed once, here, so an operator can use the API; it is never logged.
            eprintln!(
                "infra-ops: ops server at http://{address}/#token={token} (the token, generated now and shown only \
                 here, authorises changes: Authorization: Bearer <token>)"
            );
        }
        Ok(OpsServer { address, token, stop: Some(stop), thread: Some(thread) })
    }

    fn resolve_token(&self) -> Result<(String, bool), OpsError> {
        match &self.token {
            Some(token) => {
                let usable = (16..=256).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_graphic());
                if usable { Ok((token.clone(), false)) } else { Err(OpsError::Token(token.chars().count())) }
            }
            None => Ok((format!("{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>()), true)),
        }
    }
}

/// A running ops server; stops on [`OpsServer::shutdown`] or drop.
#[derive(Debug)]
pub struct OpsServer {
    address: SocketAddr,
    token: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl OpsServer {
    /// A builder serving `suite`.
    pub fn builder(suite: &InfraSuite) -> OpsServerBuilder {
        OpsServerBuilder {
            suite: suite.clone(),
            address: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            token: None,
            body_limit: DEFAULT_BODY_LIMIT,
        }
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Its base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The bearer token mutating requests need.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Stops accepting, lets requests in flight finish, and waits for the thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for OpsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn routes(shared: Arc<api::Shared>, body_limit: usize) -> Router {
    Router::new()
        .route("/", get(api::dashboard))
        .route("/assets/dashboard.js", get(api::dashboard_script))
        .route("/assets/dashboard.css", get(api::dashboard_style))
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .route("/metrics", get(api::metrics))
        .route("/api/v1/openapi.json", get(api::openapi))
        .route("/api/v1/overview", get(api::overview))
        .route("/api/v1/alerts", get(api::list_alerts))
        .route("/api/v1/alerts/{id}", get(api::get_alert))
        .route("/api/v1/alerts/{id}/acknowledge", post(api::acknowledge_alert))
        .route("/api/v1/alerts/{id}/resolve", post(api::resolve_alert))
        .route("/api/v1/silences", get(api::list_silences).post(api::create_silence))
        .route("/api/v1/silences/{id}", axum::routing::delete(api::expire_silence))
        .route("/api/v1/flags", get(api::list_flags))
        .route("/api/v1/flags/{name}", get(api::get_flag))
        .route("/api/v1/flags/{name}/toggle", post(api::toggle_flag))
        .route("/api/v1/flags/{name}/rollout", put(api::set_rollout))
        .route("/api/v1/deployments", get(api::deployments))
        .route("/api/v1/deployments/shift", post(api::shift_traffic))
        .route("/api/v1/deployments/promote", post(api::promote))
        .route("/api/v1/deployments/rollback", post(api::rollback))
        .route("/api/v1/chaos/experiments", get(api::list_experiments).post(api::start_experiment))
        .route("/api/v1/chaos/experiments/{id}/stop", post(api::stop_experiment))
        .route("/api/v1/chaos/kill-switch", post(api::kill_switch))
        .route("/api/v1/chaos/rearm", post(api::rearm))
        .route("/api/v1/traces", get(api::recent_traces))
        .route("/api/v1/traces/{id}", get(api::get_trace))
        .route("/api/v1/logs", get(api::search_logs))
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(middleware::from_fn_with_state(Arc::clone(&shared), require_token))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(shared)
}

/// Mutations need the bearer token; reads do not (they show nothing a metrics scrape would not).
async fn require_token(State(shared): State<Arc<api::Shared>>, request: Request, next: Next) -> Response {
    let reads = [Method::GET, Method::HEAD, Method::OPTIONS];
    if reads.contains(request.method()) {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let response = match presented {
        Some(token) if constant_time_eq(token.as_bytes(), shared.token.as_bytes()) => next.run(request).await,
        Some(_) => unauthorized("the bearer token is wrong"),
        None => unauthorized("this request changes state: send Authorization: Bearer <token> (printed at start)"),
    };
    audit(&shared.suite, &method, &path, response.status());
    response
}

/// Every mutation attempt lands in the suite's logs (component `ops`): what was asked, and the answer.
fn audit(suite: &InfraSuite, method: &Method, path: &str, status: StatusCode) {
    let level = if status.is_success() { infra_log::Level::Info } else { infra_log::Level::Warning };
    infra_log::log!(
        suite.logs(),
        level,
        "ops",
        "ops API change",
        method = method.as_str().to_owned(),
        path = path.to_owned(),
        status = u64::from(status.as_u16())
    );
}

fn unauthorized(message: &str) -> Response {
    let mut response = api::ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Compares without an early exit, so the time taken does not tell how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |difference, (x, y)| difference | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"abcdef", b"abcdef"));
        assert!(!constant_time_eq(b"abcdef", b"abcdeg"));
        assert!(!constant_time_eq(b"abc", b"abcdef"));
    }

    #[test]
    fn unusable_tokens_are_refused() {
        let suite = InfraSuite::builder("t").build().unwrap();
        for bad in ["short", "has a space in it here", &"x".repeat(300)] {
            let refused = OpsServer::builder(&suite).token(bad).router();
            assert!(matches!(refused, Err(OpsError::Token(_))), "{bad:?}");
        }
        assert!(OpsServer::builder(&suite).token("0123456789abcdef").router().is_ok());
        let (_, generated) = OpsServer::builder(&suite).router().unwrap();
        assert_eq!(generated.len(), 32);
    }
}
