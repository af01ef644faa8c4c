//! Rollouts as a state machine: canary plans (steps that set a weight, pause, or analyse metrics) and
//! blue-green plans (pre-promotion analysis, promotion by hand or after a delay, post-promotion analysis
//! with automatic rollback, a delay before the old side is released); promotion, abort, a restart when a
//! new revision arrives mid-rollout, and state persisted so a restarted controller resumes or safely
//! aborts. Driven by `tick` on the deployer's clock.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::deployer::Deployer;
use crate::error::DeployError;
use crate::periodic::Periodic;

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

    /// What identifies the plan across a controller restart: deployments, steps and their settings.
    pub(crate) fn fingerprint(&self) -> String {
        let steps: Vec<String> = self
            .steps
            .iter()
            .map(|step| match step {
                Step::SetWeight(percent) => format!("weight {percent}"),
                Step::Pause(pause) => format!("pause {pause:?}"),
                Step::Analyze(a) => {
                    format!("analyze {} x{} every {:?} limit {}", a.name, a.count, a.interval, a.failure_limit)
                }
            })
            .collect();
        format!("{} from {}: {}", self.canary, self.stable, steps.join(", "))
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

/// A blue-green plan (Argo Rollouts' `blueGreen` strategy): the new side gets no traffic while an
/// optional pre-promotion analysis runs; then it is promoted (by hand, or after a delay); the cut-over
/// moves all traffic at once; an optional post-promotion analysis runs while the old side is kept, and
/// rolls back to it on failure; after the release delay the old side is released (see
/// [`Rollout::on_release`]). An abort at any point before the release gives the old side all traffic.
#[derive(Debug, Clone)]
#[must_use = "a plan does nothing until a rollout starts it"]
pub struct BlueGreenPlan {
    new: String,
    old: String,
    pre_promotion: Option<Analysis>,
    auto_promote: Option<Duration>,
    post_promotion: Option<Analysis>,
    release_delay: Duration,
}

impl BlueGreenPlan {
    /// A cut-over from `old` to `new`, promoted by hand, releasing `old` 30 seconds after the cut-over
    /// (Argo's default scale-down delay).
    pub fn new(new: impl Into<String>, old: impl Into<String>) -> Self {
        BlueGreenPlan {
            new: new.into(),
            old: old.into(),
            pre_promotion: None,
            auto_promote: None,
            post_promotion: None,
            release_delay: Duration::from_secs(30),
        }
    }

    /// Runs `analysis` before promotion, while the new side has no traffic (it checks the new side on
    /// its own, through a preview route or synthetic traffic); failure aborts.
    pub fn pre_promotion(mut self, analysis: Analysis) -> Self {
        self.pre_promotion = Some(analysis);
        self
    }

    /// Promotes by itself this long after the pre-promotion analysis passed (default: wait for
    /// [`Rollout::promote`]).
    pub fn auto_promote_after(mut self, delay: Duration) -> Self {
        self.auto_promote = Some(delay);
        self
    }

    /// Runs `analysis` after the cut-over, while the old side is kept; failure rolls back to it.
    pub fn post_promotion(mut self, analysis: Analysis) -> Self {
        self.post_promotion = Some(analysis);
        self
    }

    /// How long the old side is kept after the cut-over (and a passed post-promotion analysis) before
    /// it is released (default 30 s).
    pub fn release_after(mut self, delay: Duration) -> Self {
        self.release_delay = delay;
        self
    }

    /// The plan as steps: the state machine is the canary one, with blue-green's order of steps.
    fn into_steps(self) -> CanaryPlan {
        let mut steps = Vec::new();
        steps.extend(self.pre_promotion.map(Step::Analyze));
        steps.push(Step::Pause(self.auto_promote));
        steps.push(Step::SetWeight(100.0));
        steps.extend(self.post_promotion.map(Step::Analyze));
        if !self.release_delay.is_zero() {
            steps.push(Step::Pause(Some(self.release_delay)));
        }
        CanaryPlan { canary: self.new, stable: self.old, steps }
    }
}

/// Where a rollout stands. As JSON (persisted state, APIs): `{"state": "paused", "step": 1, "reason": ...}`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
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
    /// The canary's share set by the last weight step (re-applied when a controller resumes).
    weight: f64,
    events: Vec<RolloutEvent>,
    /// What was persisted last, and when: a tick that changes nothing writes at most every
    /// [`SAVE_PROGRESS_EVERY`] (to keep the time spent in a pause), a transition writes at once.
    last_saved: Option<(Progress, Duration)>,
}

/// What a transition changes (times aside): when it differs from the last one saved, the rollout moved.
#[derive(Debug, Clone, PartialEq)]
struct Progress {
    phase: Phase,
    measured: u32,
    failed: u32,
    held: bool,
    version: u64,
    weight: f64,
    events: usize,
}

/// How often a persisted rollout writes its progress within a step when nothing else changes.
const SAVE_PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// What to call with the old side's name when a rollout releases it.
type Release = Arc<dyn Fn(&str) + Send + Sync>;

/// A rollout (canary or blue-green) in progress on a [`Deployer`]. One rollout at a time per deployer.
#[derive(Clone)]
pub struct Rollout {
    deployer: Deployer,
    plan: Arc<CanaryPlan>,
    running: Arc<Mutex<Running>>,
    on_release: Arc<Mutex<Option<Release>>>,
    store: Option<Arc<crate::persist::RolloutStore>>,
    /// Added to the deployer's clock: a resumed rollout's clock runs on from where the previous
    /// controller's stopped (the new deployer's clock starts near zero).
    skew: Duration,
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
        Self::launch(deployer, plan, None)
    }

    /// Starts a blue-green `plan` on `deployer`.
    ///
    /// # Errors
    ///
    /// As [`Rollout::start`].
    pub fn start_blue_green(deployer: &Deployer, plan: BlueGreenPlan) -> Result<Rollout, DeployError> {
        Self::launch(deployer, plan.into_steps(), None)
    }

    /// Starts `plan` with its state written to `store` at every transition, so a controller that
    /// restarts can [`Rollout::resume`] it.
    ///
    /// # Errors
    ///
    /// As [`Rollout::start`]; [`DeployError::Persist`] when the state cannot be written.
    pub fn start_persisted(
        deployer: &Deployer,
        plan: CanaryPlan,
        store: crate::persist::RolloutStore,
    ) -> Result<Rollout, DeployError> {
        Self::launch(deployer, plan, Some(Arc::new(store)))
    }

    /// Picks up a rollout a previous controller persisted in `store`, with the same `plan` (plans hold
    /// closures, so the controller rebuilds it): the canary's weight is applied again and the rollout goes
    /// on from its step, pauses and analyses keeping the time already spent. When `plan` differs from the
    /// persisted one (other deployments or steps) the rollout is aborted safely: the stable side gets all
    /// traffic. `Ok(None)` when the store holds no rollout in flight.
    ///
    /// # Errors
    ///
    /// [`DeployError::Persist`] for an unreadable store; [`DeployError::RolloutRunning`],
    /// [`DeployError::Unknown`] as for [`Rollout::start`].
    pub fn resume(
        deployer: &Deployer,
        plan: CanaryPlan,
        store: crate::persist::RolloutStore,
    ) -> Result<Option<Rollout>, DeployError> {
        let Some(saved) = store.load()? else { return Ok(None) };
        if matches!(saved.phase, Phase::Promoted | Phase::Aborted { .. }) {
            return Ok(None);
        }
        Self::validate(deployer, &plan)?;
        if !deployer.claim_rollout() {
            return Err(DeployError::RolloutRunning);
        }
        let now = deployer.elapsed() + saved.in_step;
        let fingerprint = plan.fingerprint();
        let mut events = saved.events;
        let rollout = Rollout {
            deployer: deployer.clone(),
            plan: Arc::new(plan),
            running: Arc::new(Mutex::new(Running {
                phase: saved.phase.clone(),
                since: now - saved.in_step,
                measured: saved.measured,
                failed: saved.failed,
                next_measure: now + saved.next_measure_in,
                held: saved.held,
                version: saved.version,
                weight: saved.weight,
                events: Vec::new(),
                last_saved: None,
            })),
            on_release: Arc::default(),
            store: Some(Arc::new(store)),
            skew: saved.in_step,
        };
        {
            let mut running = rollout.running();
            if saved.fingerprint != fingerprint {
                events.push(RolloutEvent { at: now, what: "resumed with a different plan".into() });
                running.events = events;
                rollout.finish(&mut running, now, Err("the plan changed while the controller was down".into()));
                rollout.save(&mut running, now);
                drop(running);
                return Ok(Some(rollout));
            }
            events.push(RolloutEvent { at: now, what: format!("resumed at {:?}", saved.phase) });
            running.events = events;
            if let Err(error) = rollout.deployer.shift_traffic(&rollout.plan.canary, saved.weight) {
                let reason = format!("re-applying the canary's {}% on resume: {error}", saved.weight);
                rollout.finish(&mut running, now, Err(reason));
                rollout.save(&mut running, now);
                drop(running);
                return Ok(Some(rollout));
            }
            rollout.save(&mut running, now);
        }
        rollout.tick();
        Ok(Some(rollout))
    }

    /// Calls `release` with the old side's name when the rollout releases it: a promoted canary's stable
    /// side, a blue-green plan's old side once its release delay is over (scale it down there).
    pub fn on_release(&self, release: impl Fn(&str) + Send + Sync + 'static) {
        *self.on_release.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(release));
    }

    fn validate(deployer: &Deployer, plan: &CanaryPlan) -> Result<(), DeployError> {
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
        Ok(())
    }

    fn launch(
        deployer: &Deployer,
        plan: CanaryPlan,
        store: Option<Arc<crate::persist::RolloutStore>>,
    ) -> Result<Rollout, DeployError> {
        Self::validate(deployer, &plan)?;
        if !deployer.claim_rollout() {
            return Err(DeployError::RolloutRunning);
        }
        let now = deployer.elapsed();
        let weight = deployer.percent_of(&plan.canary).unwrap_or(0.0);
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
                weight,
                events: vec![RolloutEvent { at: now, what: "rollout started".into() }],
                last_saved: None,
            })),
            on_release: Arc::default(),
            store,
            skew: Duration::ZERO,
        };
        if let Some(store) = &rollout.store
            && let Err(error) = store.save(&rollout.snapshot(&rollout.running(), now))
        {
            deployer.release_rollout();
            return Err(error);
        }
        rollout.tick();
        Ok(rollout)
    }

    /// The running state as the store keeps it.
    fn snapshot(&self, running: &Running, now: Duration) -> crate::persist::Saved {
        crate::persist::Saved {
            fingerprint: self.plan.fingerprint(),
            phase: running.phase.clone(),
            in_step: now.saturating_sub(running.since),
            measured: running.measured,
            failed: running.failed,
            next_measure_in: running.next_measure.saturating_sub(now),
            held: running.held,
            version: running.version,
            weight: running.weight,
            events: running.events.clone(),
        }
    }

    /// Writes the state when the rollout is persisted. A failed write is recorded as an event and the
    /// rollout goes on: losing the ability to resume is better than freezing traffic changes.
    fn save(&self, running: &mut Running, now: Duration) {
        let Some(store) = &self.store else { return };
        let state = Progress {
            phase: running.phase.clone(),
            measured: running.measured,
            failed: running.failed,
            held: running.held,
            version: running.version,
            weight: running.weight,
            events: running.events.len(),
        };
        if let Some((saved, at)) = &running.last_saved
            && *saved == state
            && now.saturating_sub(*at) < SAVE_PROGRESS_EVERY
        {
            return;
        }
        running.last_saved = Some((state, now));
        if let Err(error) = store.save(&self.snapshot(running, now)) {
            let what = format!("could not persist the rollout: {error}");
            if running.events.last().is_none_or(|last| last.what != what) {
                running.events.push(RolloutEvent { at: now, what });
            }
        }
    }

    /// The rollout's time: the deployer's clock, plus the time a resumed rollout had already run.
    fn now(&self) -> Duration {
        self.deployer.elapsed() + self.skew
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
        let now = self.now();
        let mut running = self.running();
        self.step_on(&mut running, now);
        self.save(&mut running, now);
    }

    fn step_on(&self, running: &mut Running, now: Duration) {
        // Each pass either moves one step on or stops; a plan has finitely many steps.
        for _ in 0..=self.plan.steps.len() * 2 {
            let (Phase::Progressing { step } | Phase::Paused { step, .. }) = running.phase.clone() else { return };
            if running.held {
                return;
            }
            let Some(current) = self.plan.steps.get(step) else {
                self.finish(running, now, Ok(()));
                return;
            };
            match current {
                Step::SetWeight(percent) => {
                    if let Err(error) = self.deployer.shift_traffic(&self.plan.canary, *percent) {
                        self.finish(running, now, Err(format!("setting the canary to {percent}%: {error}")));
                        return;
                    }
                    running.weight = *percent;
                    running.events.push(RolloutEvent { at: now, what: format!("canary at {percent}%") });
                    advance(running, step, now);
                }
                Step::Pause(Some(pause)) => {
                    if now >= running.since + *pause {
                        advance(running, step, now);
                    } else {
                        let reason = if step + 1 == self.plan.steps.len() {
                            format!("keeping {} for {pause:?} before releasing it", self.plan.stable)
                        } else {
                            format!("pausing {pause:?}")
                        };
                        running.phase = Phase::Paused { step, reason };
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
                                    self.finish(running, at, Err(reason));
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
                        advance(running, step, now);
                    } else {
                        running.phase = Phase::Progressing { step };
                        return;
                    }
                }
            }
        }
    }

    /// Ticks the rollout every `interval` on a thread of its own until it is promoted or aborted, or the
    /// returned handle is stopped or dropped.
    ///
    /// # Errors
    ///
    /// [`DeployError::Config`] for a zero interval or when the thread cannot start.
    pub fn drive(&self, interval: Duration) -> Result<RolloutDriver, DeployError> {
        let rollout = self.clone();
        let worker = Periodic::spawn("infra-deploy-rollout", "rollout driver", interval, move || {
            rollout.tick();
            !matches!(rollout.phase(), Phase::Promoted | Phase::Aborted { .. })
        })?;
        Ok(RolloutDriver(worker))
    }

    /// Goes on past a pause or an inconclusive analysis; at the end of the plan, promotes.
    pub fn promote(&self) {
        let now = self.now();
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
        let now = self.now();
        let mut running = self.running();
        if matches!(running.phase, Phase::Promoted | Phase::Aborted { .. }) {
            return;
        }
        self.finish(&mut running, now, Err(reason.to_owned()));
        self.save(&mut running, now);
    }

    /// A new revision of the canary arrived mid-rollout: the plan starts over from its first step (and
    /// any analysis in progress restarts with fresh measurements).
    pub fn new_revision(&self, version: &str) {
        let now = self.now();
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
            running.weight = 0.0;
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
                    running.weight = 100.0;
                    running.events.push(RolloutEvent { at, what: format!("{} promoted", self.plan.canary) });
                    let release = self.on_release.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
                    if let Some(release) = release {
                        release(&self.plan.stable);
                    }
                    running.events.push(RolloutEvent { at, what: format!("{} released", self.plan.stable) });
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
                running.weight = 0.0;
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

/// A thread ticking a rollout; from [`Rollout::drive`]. Stops when the rollout finishes, or when stopped
/// or dropped.
#[derive(Debug)]
#[must_use = "dropping the driver stops it"]
pub struct RolloutDriver(Periodic);

impl RolloutDriver {
    /// Stops ticking and waits for the thread.
    pub fn stop(mut self) {
        self.0.stop();
    }

    /// Whether the thread has ended (the rollout finished, or the driver was stopped).
    pub fn is_finished(&self) -> bool {
        self.0.is_finished()
    }
}
