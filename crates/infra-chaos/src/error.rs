//! Errors: the ones injection points return on purpose, and the ones configuring experiments can hit.

use std::sync::Arc;

use crate::action::ActionError;
use crate::experiment::{ExperimentId, ExperimentState};

/// What an injection point returns when an experiment makes it fail. Code under test handles it like any
/// other error of its dependency; nothing here is a bug.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ChaosError {
    /// An error experiment hit this point.
    #[error("chaos: injected failure at {point} (experiment {experiment})")]
    Injected {
        /// The point.
        point: String,
        /// The experiment that injected it.
        experiment: ExperimentId,
    },
    /// A dependency-failure experiment made this dependency unavailable.
    #[error("chaos: dependency {dependency} unavailable at {point} (experiment {experiment})")]
    DependencyUnavailable {
        /// The point.
        point: String,
        /// The dependency named by the experiment.
        dependency: String,
        /// The experiment.
        experiment: ExperimentId,
    },
    /// An experiment injected an error of the caller's making; `downcast_ref` recovers its type.
    #[error("chaos: {0}")]
    Custom(Arc<dyn std::error::Error + Send + Sync>),
    /// A fail-rs `return(arg)` action fired at a point that returns `Result` (the `fail_point!` macro hands
    /// the argument to its closure instead).
    #[error("chaos: failpoint {point} returned{}", arg.as_ref().map(|a| format!(" {a:?}")).unwrap_or_default())]
    Return {
        /// The point.
        point: String,
        /// The action's argument, if any.
        arg: Option<String>,
    },
}

impl ChaosError {
    /// The caller's own error, when an experiment injected one of type `E`.
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        match self {
            ChaosError::Custom(error) => error.downcast_ref(),
            _ => None,
        }
    }
}

/// Why an engine refused a request; the message names the value at fault and what would be right.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// No experiment has this id.
    #[error("no experiment {0}")]
    UnknownExperiment(ExperimentId),
    /// The experiment is not in a state that allows the request.
    #[error("experiment {id} is {state:?}; only a created experiment can start")]
    NotStartable {
        /// The experiment.
        id: ExperimentId,
        /// Its state.
        state: ExperimentState,
    },
    /// Starting would run more experiments at once than the engine allows.
    #[error("{running} experiments already run, the engine's limit is {limit}: stop one or raise max_concurrent")]
    TooManyRunning {
        /// Experiments running.
        running: usize,
        /// The engine's limit.
        limit: usize,
    },
    /// The kill switch is engaged: nothing starts until `rearm`.
    #[error("the kill switch is engaged: call rearm() before starting experiments")]
    KillSwitch,
    /// A panic experiment on an engine built without `allow_panics(true)`.
    #[error("panic experiments are off: build the engine with allow_panics(true) to run them")]
    PanicsNotAllowed,
    /// A probability outside 0..=1, or not a number.
    #[error("probability {0} is outside 0..=1")]
    Probability(String),
    /// A zero duration, interval or limit.
    #[error("{0} is zero: give it a positive value")]
    Zero(&'static str),
    /// A latency profile whose bounds are the wrong way round, or weights that are all zero.
    #[error("invalid latency profile: {0}")]
    Latency(String),
    /// A resource experiment that asks for nothing or for more than is sane.
    #[error("invalid resource: {0}")]
    Resource(String),
    /// An empty target name.
    #[error("the target is empty: name a point, a prefix ending in '.', or use Target::Any")]
    EmptyTarget,
    /// A fail-rs action string that does not parse.
    #[error("failpoint {point}: {error}")]
    Action {
        /// The point being configured.
        point: String,
        /// What is wrong with its actions.
        error: ActionError,
    },
    /// Holding a resource failed at start (no memory, no file); the experiment was not started.
    #[error("cannot start experiment {id}: {reason}")]
    Start {
        /// The experiment.
        id: ExperimentId,
        /// What went wrong.
        reason: String,
    },
    /// The engine's supervisor thread could not be started.
    #[error("cannot start the engine's supervisor thread: {0}")]
    Thread(String),
}
