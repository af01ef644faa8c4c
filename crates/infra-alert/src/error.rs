//! The crate's errors.

/// A configuration the alert manager cannot work with; the message names what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A matcher with a bad label name, operator or regular expression.
    #[error("invalid matcher: {0}")]
    Matcher(String),
    /// A route naming a receiver that was not declared.
    #[error("unknown receiver {0:?}: declare it, or route to one that exists")]
    UnknownReceiver(String),
    /// A routing tree that cannot work (a root without a receiver, a root with matchers).
    #[error("invalid route: {0}")]
    Route(String),
    /// A zero interval or timeout.
    #[error("{0} is zero: give it a positive duration")]
    Zero(&'static str),
    /// A silence that would mute everything or never be active.
    #[error("invalid silence: {0}")]
    Silence(String),
    /// An escalation policy that cannot work (no level, nobody to notify, a zero delay).
    #[error("invalid escalation policy: {0}")]
    Escalation(String),
    /// The journal cannot be opened, read or rewritten.
    #[error("journal: {0}")]
    Journal(String),
    /// The background worker's thread could not be started.
    #[error("cannot start the alert worker thread: {0}")]
    Worker(String),
    /// An inhibition rule missing a side.
    #[error("invalid inhibition rule: {0}")]
    Inhibit(String),
}

/// Why an alert operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlertError {
    /// No alert has this id (or it was resolved long enough ago to be forgotten).
    #[error("no alert {0}")]
    UnknownAlert(crate::alert::AlertId),
    /// No silence has this id.
    #[error("no silence {0}")]
    UnknownSilence(crate::silence::SilenceId),
    /// An alert that cannot be raised as given.
    #[error("invalid alert: {0}")]
    Invalid(String),
}
