//! Experiments: what to inject where, for how long, how often, and what came of it.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::fault::{ExperimentKind, Fault};

/// An experiment's id, unique within its engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExperimentId(pub(crate) u64);

impl fmt::Display for ExperimentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exp-{}", self.0)
    }
}

impl std::str::FromStr for ExperimentId {
    type Err = String;

    /// Parses the form `Display` writes (`exp-7`) or the bare number (`7`), as an API path carries it.
    fn from_str(text: &str) -> Result<Self, String> {
        let digits = text.strip_prefix("exp-").unwrap_or(text);
        digits.parse().map(ExperimentId).map_err(|_| format!("{text:?} is not an experiment id: expected exp-N or N"))
    }
}

/// Where an experiment applies.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// One point, by its exact name (`"orders.place"`), or the seed's service name.
    Point(String),
    /// Every point whose name starts with this prefix (`"orders."`: all of a service's points).
    Prefix(String),
    /// Every point.
    Any,
}

impl Target {
    /// A target for one point.
    pub fn point(name: impl Into<String>) -> Self {
        Target::Point(name.into())
    }

    /// A target for every point under a prefix.
    pub fn prefix(prefix: impl Into<String>) -> Self {
        Target::Prefix(prefix.into())
    }

    /// Whether this target covers `point`.
    pub fn matches(&self, point: &str) -> bool {
        match self {
            Target::Point(name) => name == point,
            Target::Prefix(prefix) => point.starts_with(prefix.as_str()),
            Target::Any => true,
        }
    }
}

/// The lifecycle of an experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExperimentState {
    /// Created, not started.
    Created,
    /// Injecting.
    Running,
    /// Ended by itself (its duration ran out, or its injections were used up) or by `stop_experiment`.
    Completed,
    /// Ended by the kill switch, a violated steady-state hypothesis, or a failed start.
    Aborted,
}

impl ExperimentState {
    /// The state in lower case, as APIs write it: `created`, `running`, `completed`, `aborted`.
    pub fn as_str(self) -> &'static str {
        match self {
            ExperimentState::Created => "created",
            ExperimentState::Running => "running",
            ExperimentState::Completed => "completed",
            ExperimentState::Aborted => "aborted",
        }
    }
}

/// A predicate over the system's health, checked while an experiment runs; `false` aborts the experiment.
pub type Hypothesis = Arc<dyn Fn() -> bool + Send + Sync>;

/// What to run: built here, handed to [`ChaosEngine::create_experiment`](crate::ChaosEngine::create_experiment).
#[derive(Clone)]
#[must_use = "an experiment does nothing until created on an engine and started"]
pub struct Experiment {
    pub(crate) target: Target,
    pub(crate) fault: Fault,
    pub(crate) duration: Option<Duration>,
    pub(crate) probability: f64,
    pub(crate) max_injections: Option<u64>,
    pub(crate) steady_state: Option<(Hypothesis, Duration)>,
    pub(crate) name: Option<String>,
}

impl fmt::Debug for Experiment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Experiment")
            .field("name", &self.name)
            .field("target", &self.target)
            .field("fault", &self.fault)
            .field("duration", &self.duration)
            .field("probability", &self.probability)
            .field("max_injections", &self.max_injections)
            .field("steady_state", &self.steady_state.as_ref().map(|(_, every)| every))
            .finish()
    }
}

impl Experiment {
    /// `fault` at `target`, on every call, until stopped.
    pub fn new(target: Target, fault: Fault) -> Self {
        Experiment {
            target,
            fault,
            duration: None,
            probability: 1.0,
            max_injections: None,
            steady_state: None,
            name: None,
        }
    }

    /// A name for reports.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Stops by itself this long after it starts (the seed's `duration_seconds`), on the engine's clock.
    pub fn duration(mut self, duration: Duration) -> Self {
        self.duration = Some(duration);
        self
    }

    /// The share of calls at the target that are hit, in 0..=1 (blast radius; default 1).
    pub fn probability(mut self, probability: f64) -> Self {
        self.probability = probability;
        self
    }

    /// Completes after this many injections (blast radius).
    pub fn max_injections(mut self, injections: u64) -> Self {
        self.max_injections = Some(injections);
        self
    }

    /// Aborts the experiment as soon as `holds` returns `false`, checked every `every` on the engine's
    /// clock while it runs (the umbrella crate plugs APM figures in here).
    pub fn steady_state(mut self, every: Duration, holds: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        self.steady_state = Some((Arc::new(holds), every));
        self
    }

    /// The kind of this experiment.
    pub fn kind(&self) -> ExperimentKind {
        self.fault.kind()
    }
}

/// What an experiment did (the seed's `get_experiment_results`).
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentResults {
    /// The experiment.
    pub id: ExperimentId,
    /// Its name, if it was given one.
    pub name: Option<String>,
    /// Its kind.
    pub kind: ExperimentKind,
    /// Where it applied.
    pub target: Target,
    /// Its state now.
    pub state: ExperimentState,
    /// Calls that reached a point it targets while it ran.
    pub calls: u64,
    /// Calls it injected a fault into (the calls affected).
    pub injections: u64,
    /// Errors it made points return.
    pub errors: u64,
    /// Latency it added, in all.
    pub latency_added: Duration,
    /// When it started (wall clock).
    pub started: Option<SystemTime>,
    /// When it ended (wall clock).
    pub ended: Option<SystemTime>,
    /// Why it was aborted, if it was.
    pub abort_reason: Option<String>,
}
