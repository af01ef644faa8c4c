//! The crate's errors.

/// Why a deployment request was refused; nothing changes on an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeployError {
    /// No deployment has this name.
    #[error("no deployment {0:?}: register it first")]
    Unknown(String),
    /// A deployment of this name exists already.
    #[error("a deployment {0:?} is registered already")]
    Duplicate(String),
    /// A percentage outside 0..=100 (or not a number).
    #[error("percentage {0} is outside 0..=100")]
    Percentage(String),
    /// The target fails its health checks: no traffic is shifted to it.
    #[error("{0} is unhealthy: traffic is not shifted to a deployment failing its checks")]
    Unhealthy(String),
    /// The traffic left over has no healthy deployment to go to.
    #[error("shifting traffic from {0} leaves traffic with no healthy deployment to take it")]
    NoFallback(String),
    /// Rollback without an earlier state.
    #[error("nothing to roll back to: the weights have not changed yet")]
    NothingToRollBack,
    /// A rollout runs on this deployer already.
    #[error("a rollout is running already: let it finish or abort it first")]
    RolloutRunning,
    /// A traffic backend could not apply the change (unreachable, or it refused): nothing changed.
    #[error("traffic backend {0}; nothing changed")]
    Backend(#[from] crate::backend::BackendError),
    /// A rollout's state could not be written or read back.
    #[error("rollout state: {0}")]
    Persist(String),
    /// A setting that cannot work.
    #[error("invalid configuration: {0}")]
    Config(String),
}
