//! Canary rollouts as a state machine: steps that set a weight, pause, or analyse metrics; promotion,
//! abort, and a restart when a new revision arrives mid-rollout. Driven by `tick` on the deployer's clock.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::deployer::Deployer;
use crate::error::DeployError;

/// A metric for analysis: a value, or `None` when there is no data yet.
pub type Metric = Arc<dyn Fn() -> Option<f64> + Send + Sync>;
/// A condition on a metric value.
pub type Condition = Arc<dyn Fn(f64) -> bool + Send + Sync>;

/// A metric check run `count` times, `interval` apart: each measurement succeeds, fails, or is
/// inconclusive (no data, or neither condition holds). More than `failure_limit` failures abort the
/// rollout; an inconclusive analysis pauses it for a person to decide.
#[derive(Clone)]
pub struct Analysis {
    pub(crate) name: String,
    pub(crate) metric: Metric,
    pub(crate) success: Condition,
    pub(crate) failure: Condition,
    pub(crate) interval: Duration,
    pub(crate) count: u32,
    pub(crate) failure_limit: u32,
}

impl std::fmt::Debug for Analysis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analysis")
            .field("name", &self.name)
            .field("interval", &self.interval)
            .field("count", &self.count)
            .field("failure_limit", &self.failure_limit)
            .finish_non_exhaustive()
    }
}

impl Analysis {
    /// An analysis of `metric`: succeeds when `success` holds, fails when `failure` holds.
    pub fn new(
        name: impl Into<String>,
        metric: impl Fn() -> Option<f64> + Send + Sync + 'static,
        success: impl Fn(f64) -> bool + Send + Sync + 'static,
        failure: impl Fn(f64) -> bool + Send + Sync + 'static,
    ) -> Self {
        Analysis {
            name: name.into(),
            metric: Arc::new(metric),
            success: Arc::new(success),
            failure: Arc::new(failure),
            interval: Duration::from_secs(60),
            count: 5,
            failure_limit: 0,
        }
    }

    /// Measures `count` times, `interval` apart (default 5 times, a minute apart).
    pub fn runs(mut self, count: u32, interval: Duration) -> Self {
        self.count = count;
        self.interval = interval;
        self
    }

    /// Failures tolerated before aborting (default 0).
    pub fn failure_limit(mut self, limit: u32) -> Self {
        self.failure_limit = limit;
        self
    }
}

/// One step of a canary plan.
#[derive(Debug, Clone)]
pub enum Step {
    /// Give the canary this share of traffic (percent).
    SetWeight(f64),
    /// Wait this long, or (with `None`) until [`Rollout::promote`].
    Pause(Option<Duration>),
    /// Run an analysis; go on when it succeeds.
    Analyze(Analysis),
}

/// A canary plan: the canary and stable deployments, and the steps; after the last step the canary is
/// promoted (all traffic).
#[derive(Debug, Clone)]
pub struct CanaryPlan {
    pub(crate) canary: String,
    pub(crate) stable: String,
    pub(crate) steps: Vec<Step>,
}

impl CanaryPlan {
    /// A plan moving traffic from `stable` to `canary` through `steps`.
    pub fn new(canary: impl Into<String>, stable: impl Into<String>, steps: Vec<Step>) -> Self {
        CanaryPlan { canary: canary.into(), stable: stable.into(), steps }
    }

    /// Flagger's form: weights of `step`, 2 x `step`, ... up to `max` (the last one `max` itself, even when
    /// it is not a multiple of `step`), each followed by `analysis`; then promotion.
    ///
    /// # Errors
    ///
    /// [`DeployError::Percentage`] for a step or maximum outside (0, 100].
    pub fn stepped(
        canary: impl Into<String>,
        stable: impl Into<String>,
        step: f64,
        max: f64,
        analysis: Analysis,
    ) -> Result<Self, DeployError> {
        for value in [step, max] {
            if !(value > 0.0 && value <= 100.0) {
                return Err(DeployError::Percentage(value.to_string()));
            }
        }
        let mut steps = Vec::new();
        let mut weight = step;
        loop {
            let capped = weight.min(max);
            steps.push(Step::SetWeight(capped));
            steps.push(Step::Analyze(analysis.clone()));
            if capped >= max {
                break;
            }
            weight += step;
        }
        Ok(CanaryPlan::new(canary, stable, steps))
    }
}

/// Where a rollout stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// Working through its steps; `step` is the current one.
    Progressing {
        /// The current step.
        step: usize,
    },
    /// Waiting at a pause step (until a time, or for promotion).
    Paused {
        /// The pause step.
        step: usize,
        /// Why it waits.
        reason: String,
    },
    /// Done: the canary has all traffic.
    Promoted,
    /// Stopped: the stable deployment has all traffic again.
    Aborted {
        /// Why.
        reason: String,
    },
}

/// Something the rollout did, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutEvent {
    /// When, on the deployer's clock.
    pub at: Duration,
    /// What happened.
    pub what: String,
}

#[derive(Debug)]
struct Running {
    phase: Phase,
    /// When the current step started (pauses and analyses count from here).
    since: Duration,
    /// Measurements taken and failed in the current analysis step.
    measured: u32,
    failed: u32,
    /// When the next measurement is due.
    next_measure: Duration,
    /// Paused by an inconclusive analysis, or by a pause without a duration: only `promote` goes on.
    held: bool,
    version: u64,
    events: Vec<RolloutEvent>,
}

/// A canary rollout in progress on a [`Deployer`]. One rollout at a time per deployer.
#[derive(Clone)]
pub struct Rollout {
    deployer: Deployer,
    plan: Arc<CanaryPlan>,
    running: Arc<Mutex<Running>>,
}

impl std::fmt::Debug for Rollout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rollout").field("canary", &self.plan.canary).field("phase", &self.phase()).finish()
    }
}

impl Rollout {
    /// Starts `plan` on `deployer`: its first step applies at once.
    ///
    /// # Errors
    ///
    /// [`DeployError::RolloutRunning`] while another rollout runs on this deployer;
    /// [`DeployError::Unknown`] for a deployment the plan names but the deployer lacks;
    /// [`DeployError::Config`] for a plan without steps, a zero analysis interval or count, or a canary that
    /// is its own stable.
    pub fn start(deployer: &Deployer, plan: CanaryPlan) -> Result<Rollout, DeployError> {
        if plan.steps.is_empty() {
            return Err(DeployError::Config("a canary plan needs at least one step".into()));
        }
        if plan.canary == plan.stable {
            return Err(DeployError::Config("the canary and the stable deployment are the same".into()));
        }
        for step in &plan.steps {
            match step {
                Step::Analyze(analysis) if analysis.count == 0 || analysis.interval.is_zero() => {
                    return Err(DeployError::Config(format!(
                        "analysis {:?} needs a positive count and interval",
                        analysis.name
                    )));
                }
                Step::SetWeight(percent) if !(0.0..=100.0).contains(percent) => {
                    return Err(DeployError::Percentage(percent.to_string()));
                }
                _ => {}
            }
        }
        deployer.has(&plan.canary)?;
        deployer.has(&plan.stable)?;
        if !deployer.claim_rollout() {
            return Err(DeployError::RolloutRunning);
        }
        let now = deployer.elapsed();
        let rollout = Rollout {
            deployer: deployer.clone(),
            plan: Arc::new(plan),
            running: Arc::new(Mutex::new(Running {
                phase: Phase::Progressing { step: 0 },
                since: now,
                measured: 0,
                failed: 0,
                next_measure: now,
                held: false,
                version: 0,
                events: vec![RolloutEvent { at: now, what: "rollout started".into() }],
            })),
        };
        rollout.tick();
        Ok(rollout)
    }

    fn running(&self) -> MutexGuard<'_, Running> {
        self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Where the rollout stands.
    pub fn phase(&self) -> Phase {
        self.running().phase.clone()
    }

    /// What the rollout did, oldest first.
    pub fn events(&self) -> Vec<RolloutEvent> {
        self.running().events.clone()
    }

    /// Advances the rollout as far as the clock allows: weights set, pauses over, measurements due.
    pub fn tick(&self) {
        let now = self.deployer.elapsed();
        let mut running = self.running();
        // Each pass either moves one step on or stops; a plan has finitely many steps.
        for _ in 0..=self.plan.steps.len() * 2 {
            let (Phase::Progressing { step } | Phase::Paused { step, .. }) = running.phase.clone() else { return };
            if running.held {
                return;
            }
            let Some(current) = self.plan.steps.get(step) else {
                self.finish(&mut running, now, Ok(()));
                return;
            };
            match current {
                Step::SetWeight(percent) => {
                    if let Err(error) = self.deployer.shift_traffic(&self.plan.canary, *percent) {
                        self.finish(&mut running, now, Err(format!("setting the canary to {percent}%: {error}")));
                        return;
                    }
                    running.events.push(RolloutEvent { at: now, what: format!("canary at {percent}%") });
                    advance(&mut running, step, now);
                }
                Step::Pause(Some(pause)) => {
                    if now >= running.since + *pause {
                        advance(&mut running, step, now);
                    } else {
                        running.phase = Phase::Paused { step, reason: format!("pausing {pause:?}") };
                        return;
                    }
                }
                Step::Pause(None) => {
                    running.phase = Phase::Paused { step, reason: "waiting to be promoted".into() };
                    running.held = true;
                    return;
                }
                Step::Analyze(analysis) => {
                    // The first measurement comes one interval in: traffic at the new weight needs time to
                    // show in the metric.
                    let first = running.since + analysis.interval;
                    if running.measured == 0 && running.next_measure < first {
                        running.next_measure = first;
                    }
                    while running.measured < analysis.count && running.next_measure <= now {
                        let at = running.next_measure;
                        running.measured += 1;
                        running.next_measure = at + analysis.interval;
                        let value = (analysis.metric)();
                        let verdict = match value {
                            Some(value) if (analysis.failure)(value) => Some(false),
                            Some(value) if (analysis.success)(value) => Some(true),
                            _ => None,
                        };
                        match verdict {
                            Some(true) => {}
                            Some(false) => {
                                running.failed += 1;
                                let what =
                                    format!("{}: measurement {} failed ({value:?})", analysis.name, running.measured);
                                running.events.push(RolloutEvent { at, what });
                                if running.failed > analysis.failure_limit {
                                    let reason = format!("analysis {} failed {} times", analysis.name, running.failed);
                                    self.finish(&mut running, at, Err(reason));
                                    return;
                                }
                            }
                            None => {
                                running.phase = Phase::Paused {
                                    step,
                                    reason: format!("analysis {} inconclusive ({value:?})", analysis.name),
                                };
                                running.held = true;
                                running.events.push(RolloutEvent {
                                    at,
                                    what: format!("{}: inconclusive, paused", analysis.name),
                                });
                                return;
                            }
                        }
                    }
                    if running.measured >= analysis.count {
                        running.events.push(RolloutEvent { at: now, what: format!("{}: passed", analysis.name) });
                        advance(&mut running, step, now);
                    } else {
                        running.phase = Phase::Progressing { step };
                        return;
                    }
                }
            }
        }
    }

    /// Goes on past a pause or an inconclusive analysis; at the end of the plan, promotes.
    pub fn promote(&self) {
        let now = self.deployer.elapsed();
        {
            let mut running = self.running();
            let (Phase::Paused { step, .. } | Phase::Progressing { step }) = running.phase.clone() else { return };
            running.held = false;
            running.events.push(RolloutEvent { at: now, what: "promoted by hand".into() });
            advance(&mut running, step, now);
        }
        self.tick();
    }

    /// Stops the rollout: the stable deployment gets all traffic back. Works in any phase, pauses included.
    pub fn abort(&self, reason: &str) {
        let now = self.deployer.elapsed();
        let mut running = self.running();
        if matches!(running.phase, Phase::Promoted | Phase::Aborted { .. }) {
            return;
        }
        self.finish(&mut running, now, Err(reason.to_owned()));
    }

    /// A new revision of the canary arrived mid-rollout: the plan starts over from its first step (and
    /// any analysis in progress restarts with fresh measurements).
    pub fn new_revision(&self, version: &str) {
        let now = self.deployer.elapsed();
        {
            let mut running = self.running();
            if matches!(running.phase, Phase::Promoted | Phase::Aborted { .. }) {
                return;
            }
            running.version += 1;
            running.held = false;
            running.phase = Phase::Progressing { step: 0 };
            running.since = now;
            running.measured = 0;
            running.failed = 0;
            running.next_measure = now;
            running.events.push(RolloutEvent { at: now, what: format!("new revision {version}: starting over") });
        }
        let _ = self.deployer.shift_traffic(&self.plan.canary, 0.0);
        self.tick();
    }

    fn finish(&self, running: &mut Running, at: Duration, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => match self.deployer.set_active(&self.plan.canary) {
                Ok(()) => {
                    running.phase = Phase::Promoted;
                    running.events.push(RolloutEvent { at, what: format!("{} promoted", self.plan.canary) });
                }
                Err(error) => {
                    running.phase = Phase::Aborted { reason: format!("promotion refused: {error}") };
                    let _ = self.deployer.set_active(&self.plan.stable);
                }
            },
            Err(reason) => {
                // Back to stable; if stable cannot take it (unhealthy), the weights stay and the event says so.
                let restored = self.deployer.set_active(&self.plan.stable);
                running.events.push(RolloutEvent {
                    at,
                    what: match restored {
                        Ok(()) => format!("aborted: {reason}; {} has all traffic", self.plan.stable),
                        Err(error) => format!("aborted: {reason}; could not restore {}: {error}", self.plan.stable),
                    },
                });
                running.phase = Phase::Aborted { reason };
            }
        }
        self.deployer.release_rollout();
    }
}

fn advance(running: &mut Running, step: usize, now: Duration) {
    running.phase = Phase::Progressing { step: step + 1 };
    running.since = now;
    running.measured = 0;
    running.failed = 0;
    running.next_measure = now;
}
