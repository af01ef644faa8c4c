//! Traffic backends: where weights go besides the in-process router (a load balancer, a service mesh).
//!
//! A [`Deployer`](crate::Deployer) built with backends applies every weight change to each of them
//! before it takes effect in process: a backend that refuses (unreachable, a server it does not know)
//! refuses the change, and nothing changes anywhere.

/// One deployment's share of traffic, as handed to a backend.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrafficWeight<'a> {
    /// The deployment's name.
    pub deployment: &'a str,
    /// Its share, in percent (0 to 100; the shares sum to 100).
    pub percent: f64,
}

/// Why a backend refused or failed to apply weights.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{backend}: {reason}")]
pub struct BackendError {
    /// The backend (its [`TrafficBackend::name`]).
    pub backend: String,
    /// What went wrong, for a person to act on.
    pub reason: String,
}

impl BackendError {
    /// An error of `backend`.
    pub fn new(backend: impl Into<String>, reason: impl Into<String>) -> Self {
        BackendError { backend: backend.into(), reason: reason.into() }
    }
}

/// Something that routes real traffic by weight: told every change the deployer makes.
pub trait TrafficBackend: Send + Sync + 'static {
    /// A short name for errors and events (`haproxy app`).
    fn name(&self) -> String;

    /// Makes the backend route by `weights` (every registered deployment, in registration order).
    /// Applied before the change takes effect in process; an error refuses the change.
    ///
    /// # Errors
    ///
    /// [`BackendError`] when the backend cannot be reached or refuses.
    fn apply(&self, weights: &[TrafficWeight<'_>]) -> Result<(), BackendError>;

    /// Brings the backend back to `weights` if it drifted (a load balancer reloaded and forgot its
    /// runtime weights); returns whether it had to. The default applies the weights again and reports
    /// no drift.
    ///
    /// # Errors
    ///
    /// [`BackendError`] when the backend cannot be reached or refuses.
    fn reconcile(&self, weights: &[TrafficWeight<'_>]) -> Result<bool, BackendError> {
        self.apply(weights).map(|()| false)
    }
}
