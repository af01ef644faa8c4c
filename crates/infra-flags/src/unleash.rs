//! Polling an Unleash server (feature `unleash`): `GET /api/client/features` with ETags, so an unchanged
//! flag set costs the server a 304 and us nothing, and a bootstrap file for when the server is out of
//! reach at start.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use std::time::Duration;

use thiserror::Error;

use crate::error::LoadError;
use crate::flags::{Flags, lock, machine_hostname};
use crate::periodic::PeriodicWorker;

/// Why polling Unleash failed. The flags in use stay as they were.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum UnleashError {
    /// The server URL is not an `http://` or `https://` URL.
    #[error("unleash URL {0:?} is invalid; expected something like https://unleash.example.com/api")]
    InvalidUrl(String),
    /// The server could not be reached or the exchange failed.
    #[error("cannot reach unleash at {url}: {message}")]
    Transport {
        /// The URL requested.
        url: String,
        /// What failed.
        message: String,
    },
    /// The server answered with an error status.
    #[error("unleash at {url} answered {status}{}", if *.status == 401 || *.status == 403 { " (check the client API token)" } else { "" })]
    Status {
        /// The URL requested.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// The answer did not load as a flag set.
    #[error("unleash sent a flag set that does not load: {0}")]
    Load(#[from] LoadError),
    /// The poller's thread could not be started.
    #[error("cannot start the unleash poller thread: {0}")]
    Thread(std::io::Error),
}

/// What one poll did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollOutcome {
    /// A new flag set was loaded.
    Updated,
    /// The server answered 304: nothing changed since the last poll.
    NotModified,
}

/// Configures an [`UnleashPoller`].
#[derive(Debug, Clone)]
#[must_use]
pub struct UnleashPollerBuilder {
    api_url: String,
    api_token: String,
    app_name: String,
    instance_id: String,
    interval: Duration,
    timeout: Duration,
    bootstrap: Option<PathBuf>,
}

impl UnleashPollerBuilder {
    /// The application name sent to Unleash (`UNLEASH-APPNAME`; default `infra-flags`).
    pub fn app_name(mut self, name: impl Into<String>) -> Self {
        self.app_name = name.into();
        self
    }

    /// The instance id sent to Unleash (`UNLEASH-INSTANCEID`; default the host name and process id).
    pub fn instance_id(mut self, id: impl Into<String>) -> Self {
        self.instance_id = id.into();
        self
    }

    /// How often to poll (default 15 s, as Unleash's SDKs do).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// How long one request may take (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// A flag file (Unleash's `/client/features` format) to load when the first poll fails.
    pub fn bootstrap_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.bootstrap = Some(path.into());
        self
    }

    /// Polls once into `flags` and keeps polling on a background thread named `infra-flags-unleash`.
    ///
    /// When the first poll fails, the bootstrap file (if any) is loaded and polling goes on: the server
    /// may come back. The failure is in [`UnleashPoller::last_error`] and sent to listeners.
    ///
    /// # Errors
    ///
    /// [`UnleashError::InvalidUrl`]; the bootstrap file's load error when the first poll failed and the
    /// file does not load either; [`UnleashError::Thread`].
    pub fn start(self, flags: &Flags) -> Result<UnleashPoller, UnleashError> {
        let api_url = self.api_url.trim_end_matches('/').to_owned();
        if !(api_url.starts_with("http://") || api_url.starts_with("https://")) || api_url.len() < 10 {
            return Err(UnleashError::InvalidUrl(self.api_url));
        }
        let agent: ureq::Agent =
            ureq::Agent::config_builder().timeout_global(Some(self.timeout)).http_status_as_error(false).build().into();
        let shared = Arc::new(Shared {
            flags: flags.clone(),
            agent,
            features_url: format!("{api_url}/client/features"),
            api_token: self.api_token,
            app_name: self.app_name,
            instance_id: self.instance_id,
            state: Mutex::new(PollState::default()),
        });
        if let Err(err) = shared.poll() {
            if let Some(path) = &self.bootstrap {
                flags.load_file(path)?;
            }
            shared.record_error(&err);
        }
        let polled = shared.clone();
        let worker = PeriodicWorker::spawn("infra-flags-unleash", self.interval, move || {
            if let Err(err) = polled.poll() {
                polled.record_error(&err);
            }
        })
        .map_err(UnleashError::Thread)?;
        Ok(UnleashPoller { shared, worker })
    }
}

#[derive(Debug, Default)]
struct PollState {
    etag: Option<String>,
    last_error: Option<String>,
    polls: u64,
    updates: u64,
}

#[derive(Debug)]
struct Shared {
    flags: Flags,
    agent: ureq::Agent,
    features_url: String,
    api_token: String,
    app_name: String,
    instance_id: String,
    state: Mutex<PollState>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, PollState> {
        lock(&self.state)
    }

    fn poll(&self) -> Result<PollOutcome, UnleashError> {
        let etag = self.lock().etag.clone();
        let mut request = self
            .agent
            .get(&self.features_url)
            .header("Authorization", &self.api_token)
            .header("UNLEASH-APPNAME", &self.app_name)
            .header("UNLEASH-INSTANCEID", &self.instance_id)
            .header("Unleash-Client-Spec", "5.2.0")
            .header("Accept", "application/json");
        if let Some(etag) = &etag {
            request = request.header("If-None-Match", etag);
        }
        let transport =
            |err: ureq::Error| UnleashError::Transport { url: self.features_url.clone(), message: err.to_string() };
        let mut response = request.call().map_err(transport)?;
        let status = response.status().as_u16();
        self.lock().polls += 1;
        match status {
            304 => Ok(PollOutcome::NotModified),
            200 => {
                let new_etag = response.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_owned);
                let body = response.body_mut().read_to_string().map_err(transport)?;
                self.flags.load_json(&body)?;
                let mut state = self.lock();
                state.etag = new_etag;
                state.updates += 1;
                state.last_error = None;
                Ok(PollOutcome::Updated)
            }
            status => Err(UnleashError::Status { url: self.features_url.clone(), status }),
        }
    }

    /// Keeps the error and tells listeners, once per distinct error.
    fn record_error(&self, err: &UnleashError) {
        let event = Flags::source_error(&mut self.lock().last_error, err.to_string());
        if let Some(event) = event {
            self.flags.emit(&event);
        }
    }
}

/// Keeps a [`Flags`] in step with an Unleash server. Dropping it stops the polling thread.
#[derive(Debug)]
pub struct UnleashPoller {
    shared: Arc<Shared>,
    worker: PeriodicWorker,
}

impl UnleashPoller {
    /// Configures a poller for the Unleash API at `api_url` (for example `https://unleash.example.com/api`)
    /// with a client API token.
    pub fn builder(api_url: impl Into<String>, api_token: impl Into<String>) -> UnleashPollerBuilder {
        let host = machine_hostname();
        UnleashPollerBuilder {
            api_url: api_url.into(),
            api_token: api_token.into(),
            app_name: "infra-flags".to_owned(),
            instance_id: format!("{host}-{}", std::process::id()),
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(10),
            bootstrap: None,
        }
    }

    /// Polls now, without waiting for the interval.
    ///
    /// # Errors
    ///
    /// The poll's error; the flags in use stay, and the error is kept and reported as the thread's are.
    pub fn poll_now(&self) -> Result<PollOutcome, UnleashError> {
        let outcome = self.shared.poll();
        if let Err(err) = &outcome {
            self.shared.record_error(err);
        }
        outcome
    }

    /// The ETag of the flag set in use, as the server sent it.
    pub fn etag(&self) -> Option<String> {
        self.shared.lock().etag.clone()
    }

    /// The last poll's error, until a poll succeeds.
    pub fn last_error(&self) -> Option<String> {
        self.shared.lock().last_error.clone()
    }

    /// Polls answered (200 or 304), and how many of them loaded a new set.
    pub fn counts(&self) -> (u64, u64) {
        let state = self.shared.lock();
        (state.polls, state.updates)
    }

    /// Stops polling and waits for the thread (dropping the poller does the same).
    pub fn shutdown(mut self) {
        self.worker.stop();
    }
}
