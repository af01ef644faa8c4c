//! The engine: experiments and failpoints, the snapshot injection points read, the supervisor.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::thread::Thread;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use quanta::{Clock, Instant};

use crate::action::{Actions, Task, parse_failpoints};
use crate::error::{ChaosError, EngineError};
use crate::experiment::{Experiment, ExperimentId, ExperimentResults, ExperimentState, Hypothesis, Target};
use crate::fault::{ExperimentKind, Fault};
use crate::mix;
use crate::point::{self, Gate, Verdict};
use crate::resource::Hold;

/// Default cap on experiments running at once.
pub const DEFAULT_MAX_CONCURRENT: usize = 16;
/// Default gap between supervisor passes (durations, injection limits, steady-state checks).
pub const DEFAULT_SUPERVISE_INTERVAL: Duration = Duration::from_millis(50);

/// Runs chaos experiments and evaluates injection points (the seed's `ChaosEngine`).
///
/// A cheap handle: clones share one engine. Points reach an engine explicitly (`engine.check("name")`) or
/// through the point macros, which use the engine a test scoped with [`ChaosEngine::scope`] (so tests run
/// in parallel, each with its own) or else the process-wide [`global`](crate::global) one.
#[derive(Clone)]
pub struct ChaosEngine {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for ChaosEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let registry = self.inner.registry();
        f.debug_struct("ChaosEngine")
            .field("id", &self.inner.id)
            .field("experiments", &registry.experiments.len())
            .field("failpoints", &registry.failpoints.len())
            .field("killed", &self.inner.killed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Configures a [`ChaosEngine`]; from [`ChaosEngine::builder`].
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct ChaosEngineBuilder {
    clock: Clock,
    seed: Option<u64>,
    max_concurrent: usize,
    allow_panics: bool,
    supervise_interval: Duration,
    failpoints: Option<String>,
    on_injection: Option<InjectionListener>,
}

/// What [`ChaosEngineBuilder::on_injection`] is told: one fault injected at one point.
#[derive(Debug, Clone, Copy)]
pub struct Injection<'a> {
    /// The experiment (or failpoint) that fired.
    pub experiment: ExperimentId,
    /// Its kind.
    pub kind: ExperimentKind,
    /// The point it fired at.
    pub point: &'a str,
}

/// The listener, behind a type that can say what it is in `Debug` output.
#[derive(Clone)]
struct InjectionListener(Arc<dyn Fn(&Injection<'_>) + Send + Sync>);

impl std::fmt::Debug for InjectionListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InjectionListener")
    }
}

impl ChaosEngineBuilder {
    /// Calls `listener` on every injection, on the injecting thread, before the fault takes effect: for
    /// logging and counting them. It runs on the hot path of a faulty call, so it should be quick.
    pub fn on_injection(mut self, listener: impl Fn(&Injection<'_>) + Send + Sync + 'static) -> Self {
        self.on_injection = Some(InjectionListener(Arc::new(listener)));
        self
    }

    /// The clock for durations and steady-state checks (default: quanta's). Tests pass
    /// `quanta::Clock::mock()` and call [`ChaosEngine::tick`].
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Seeds the engine's random draws (probabilities, jitter), so a single-threaded run repeats exactly.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The most experiments running at once (default 16).
    pub fn max_concurrent(mut self, max: usize) -> Self {
        self.max_concurrent = max;
        self
    }

    /// Allows experiments and failpoints that panic (off by default: a panic is a sharp tool).
    pub fn allow_panics(mut self, allow: bool) -> Self {
        self.allow_panics = allow;
        self
    }

    /// How often the supervisor thread ends experiments whose time is up and checks steady-state
    /// hypotheses (default 50 ms).
    pub fn supervise_interval(mut self, interval: Duration) -> Self {
        self.supervise_interval = interval;
        self
    }

    /// Configures failpoints from a `FAILPOINTS`-style value (`name=actions;name=actions`).
    pub fn failpoints(mut self, value: impl Into<String>) -> Self {
        self.failpoints = Some(value.into());
        self
    }

    /// Configures failpoints from the `FAILPOINTS` environment variable, if it is set (as fail-rs's
    /// `FailScenario::setup` does).
    pub fn failpoints_from_env(self) -> Self {
        match std::env::var("FAILPOINTS") {
            Ok(value) => self.failpoints(value),
            Err(_) => self,
        }
    }

    /// Builds the engine and starts its supervisor thread.
    ///
    /// # Errors
    ///
    /// A zero limit or interval, a failpoints value that does not parse (or asks for a panic without
    /// `allow_panics`), or a supervisor thread that cannot start.
    pub fn build(self) -> Result<ChaosEngine, EngineError> {
        if self.max_concurrent == 0 {
            return Err(EngineError::Zero("max_concurrent"));
        }
        if self.supervise_interval.is_zero() {
            return Err(EngineError::Zero("supervise_interval"));
        }
        let failpoints = match &self.failpoints {
            Some(value) => parse_failpoints(value).map_err(|(point, error)| EngineError::Action { point, error })?,
            None => Vec::new(),
        };
        let seed = self.seed.unwrap_or_else(random_seed);
        let inner = Arc::new(Inner {
            id: point::next_engine_id(),
            clock: self.clock,
            rng: Rng::new(seed),
            allow_panics: self.allow_panics,
            max_concurrent: self.max_concurrent,
            killed: AtomicBool::new(false),
            registry: Mutex::new(Registry::default()),
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            armed: AtomicBool::new(false),
            supervisor: Mutex::new(None),
            stopping: AtomicBool::new(false),
            on_injection: self.on_injection,
        });
        let engine = ChaosEngine { inner };
        for (name, actions) in failpoints {
            engine.install_failpoint(name, actions)?;
        }
        let weak = Arc::downgrade(&engine.inner);
        let interval = self.supervise_interval;
        let supervisor = std::thread::Builder::new()
            .name("infra-chaos-supervisor".into())
            .spawn(move || supervise(weak, interval))
            .map_err(|err| EngineError::Thread(err.to_string()))?;
        *lock(&engine.inner.supervisor) = Some(supervisor.thread().clone());
        Ok(engine)
    }
}

fn random_seed() -> u64 {
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let local = 0u8;
    nanos ^ (std::ptr::addr_of!(local) as u64).rotate_left(32) ^ u64::from(std::process::id())
}

/// A lock-free stream of random numbers: a counter run through SplitMix64, so draws from one thread
/// repeat exactly for a given seed.
#[derive(Debug)]
pub(crate) struct Rng {
    state: AtomicU64,
}

impl Rng {
    fn new(seed: u64) -> Self {
        Rng { state: AtomicU64::new(seed) }
    }

    /// A uniform draw in `[0, 1)`.
    pub(crate) fn unit(&self) -> f64 {
        let state = self.state.fetch_add(mix::GOLDEN, Ordering::Relaxed).wrapping_add(mix::GOLDEN);
        mix::unit(mix::mix64(state))
    }
}

pub(crate) struct Inner {
    pub(crate) id: u64,
    clock: Clock,
    rng: Rng,
    allow_panics: bool,
    max_concurrent: usize,
    killed: AtomicBool,
    registry: Mutex<Registry>,
    /// What points read: rebuilt on every change, swapped in whole.
    snapshot: ArcSwap<Snapshot>,
    /// Whether this engine counts in the process-wide armed count (its snapshot is not empty).
    armed: AtomicBool,
    supervisor: Mutex<Option<Thread>>,
    /// Set by `shutdown`: the supervisor thread exits at its next wake.
    stopping: AtomicBool,
    on_injection: Option<InjectionListener>,
}

#[derive(Default)]
struct Registry {
    experiments: BTreeMap<ExperimentId, Record>,
    failpoints: BTreeMap<String, Arc<Active>>,
    next_id: u64,
}

struct Record {
    spec: Experiment,
    state: ExperimentState,
    active: Option<Arc<Active>>,
    hold: Option<Hold>,
    started: Option<SystemTime>,
    ended: Option<SystemTime>,
    abort_reason: Option<String>,
    next_check: Option<Instant>,
}

/// A running experiment or a configured failpoint, as injection points see it.
pub(crate) struct Active {
    id: ExperimentId,
    target: Target,
    fault: Fault,
    probability: f64,
    /// Injections left; `u64::MAX` when unlimited.
    remaining: AtomicU64,
    ends_at: Option<Instant>,
    live: AtomicBool,
    calls: AtomicU64,
    injections: AtomicU64,
    errors: AtomicU64,
    latency_nanos: AtomicU64,
    /// Released when a `pause` failpoint is reconfigured or removed.
    gate: Arc<Gate>,
}

impl Active {
    fn new(id: ExperimentId, spec: &Experiment, ends_at: Option<Instant>) -> Self {
        Active {
            id,
            target: spec.target.clone(),
            fault: spec.fault.clone(),
            probability: spec.probability,
            remaining: AtomicU64::new(spec.max_injections.unwrap_or(u64::MAX)),
            ends_at,
            live: AtomicBool::new(true),
            calls: AtomicU64::new(0),
            injections: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            latency_nanos: AtomicU64::new(0),
            gate: Arc::new(Gate::default()),
        }
    }

    fn retire(&self) {
        self.live.store(false, Ordering::Release);
        self.gate.release();
    }

    fn used_up(&self) -> bool {
        self.remaining.load(Ordering::Acquire) == 0
    }

    fn take_injection(&self) -> bool {
        self.remaining
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| match left {
                u64::MAX => Some(u64::MAX),
                0 => None,
                left => Some(left - 1),
            })
            .is_ok()
    }
}

/// Everything points need, indexed by how targets match.
#[derive(Default)]
struct Snapshot {
    exact: hashbrown::HashMap<String, Vec<Arc<Active>>, foldhash::fast::RandomState>,
    prefixes: Vec<Arc<Active>>,
    any: Vec<Arc<Active>>,
}

impl Snapshot {
    fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.prefixes.is_empty() && self.any.is_empty()
    }

    fn matching<'a>(&'a self, point: &'a str) -> impl Iterator<Item = &'a Arc<Active>> + 'a {
        let exact = self.exact.get(point).into_iter().flatten();
        let prefixes = self.prefixes.iter().filter(move |active| active.target.matches(point));
        exact.chain(prefixes).chain(self.any.iter())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Updates complete before anything that can panic, and no user code runs under these locks.
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Inner {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        lock(&self.registry)
    }

    /// Rebuilds what points read from the running experiments and configured failpoints.
    fn publish(&self, registry: &Registry) {
        let mut snapshot = Snapshot::default();
        let running = registry.experiments.values().filter_map(|record| record.active.as_ref());
        for active in running.chain(registry.failpoints.values()) {
            if !active.fault.affects_points() {
                continue; // holds a resource or a network fault; no point is affected
            }
            match &active.target {
                Target::Point(name) => snapshot.exact.entry(name.clone()).or_default().push(Arc::clone(active)),
                Target::Prefix(_) => snapshot.prefixes.push(Arc::clone(active)),
                Target::Any => snapshot.any.push(Arc::clone(active)),
            }
        }
        let armed = !snapshot.is_empty();
        self.snapshot.store(Arc::new(snapshot));
        if self.armed.swap(armed, Ordering::AcqRel) != armed {
            point::set_armed(armed);
        }
        point::bump_generation();
    }

    /// Decides what happens at `point` (only experiments of `kind`, when given); `None` when nothing live
    /// targets it, so a call site may remember that until the next change.
    pub(crate) fn decide(&self, point: &str, kind: Option<ExperimentKind>) -> Option<Verdict> {
        let snapshot = self.snapshot.load();
        let mut now = None;
        let mut matched = false;
        for active in snapshot.matching(point) {
            if kind.is_some_and(|kind| kind != active.fault.kind()) || !active.live.load(Ordering::Acquire) {
                continue;
            }
            if let Some(ends_at) = active.ends_at
                && *now.get_or_insert_with(|| self.clock.now()) >= ends_at
            {
                continue;
            }
            matched = true;
            active.calls.fetch_add(1, Ordering::Relaxed);
            if let Some(verdict) = self.inject(active, point) {
                if let Some(listener) = &self.on_injection {
                    (listener.0)(&Injection { experiment: active.id, kind: active.fault.kind(), point });
                }
                return Some(verdict);
            }
        }
        matched.then_some(Verdict::Pass)
    }

    /// Whether `active` fires on this call, and what it does.
    fn inject(&self, active: &Active, point: &str) -> Option<Verdict> {
        let verdict = match &active.fault {
            Fault::Actions(actions) => {
                let task = actions.decide(|| self.rng.unit())?;
                active.injections.fetch_add(1, Ordering::Relaxed);
                return Some(match task {
                    Task::Off => Verdict::Pass,
                    Task::Return(arg) => Verdict::Return(arg.clone()),
                    Task::Sleep(latency) => self.latency(active, *latency),
                    Task::Panic(message) => {
                        Verdict::Panic(message.clone().unwrap_or_else(|| format!("failpoint {point} panic")))
                    }
                    Task::Print(message) => {
                        Verdict::Print(message.clone().unwrap_or_else(|| format!("failpoint {point} executed.")))
                    }
                    Task::Pause => Verdict::Pause(Arc::clone(&active.gate)),
                    Task::Yield => Verdict::Yield,
                    Task::Delay(busy) => Verdict::Busy(*busy),
                });
            }
            _ if active.probability < 1.0 && self.rng.unit() >= active.probability => return None,
            _ if !active.take_injection() => return None,
            Fault::Latency(profile) => self.latency(active, profile.sample(self.rng.unit())),
            Fault::Error => Verdict::Fail(
                self.error(active, || ChaosError::Injected { point: point.to_owned(), experiment: active.id }),
            ),
            Fault::CustomError(make) => Verdict::Fail(self.error(active, || ChaosError::Custom(Arc::from(make())))),
            Fault::Dependency { name, hang } => Verdict::HangThenFail(
                *hang,
                self.error(active, || ChaosError::DependencyUnavailable {
                    point: point.to_owned(),
                    dependency: name.clone(),
                    experiment: active.id,
                }),
            ),
            Fault::Panic(message) => Verdict::Panic(message.clone()),
            _ => return None,
        };
        active.injections.fetch_add(1, Ordering::Relaxed);
        Some(verdict)
    }

    fn latency(&self, active: &Active, latency: Duration) -> Verdict {
        active.latency_nanos.fetch_add(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
        Verdict::Sleep(latency)
    }

    fn error(&self, active: &Active, make: impl FnOnce() -> ChaosError) -> ChaosError {
        active.errors.fetch_add(1, Ordering::Relaxed);
        make()
    }

    /// Ends a running experiment; returns its held resource, to be released outside the lock.
    fn end(record: &mut Record, state: ExperimentState, reason: Option<String>) -> Option<Hold> {
        if record.state != ExperimentState::Running {
            return None;
        }
        record.state = state;
        record.ended = Some(SystemTime::now());
        record.abort_reason = reason;
        if let Some(active) = &record.active {
            active.retire();
        }
        record.hold.take()
    }

    fn results(id: ExperimentId, record: &Record) -> ExperimentResults {
        let read =
            |pick: fn(&Active) -> &AtomicU64| record.active.as_ref().map_or(0, |a| pick(a).load(Ordering::Relaxed));
        ExperimentResults {
            id,
            name: record.spec.name.clone(),
            kind: record.spec.kind(),
            target: record.spec.target.clone(),
            state: record.state,
            calls: read(|a| &a.calls),
            injections: read(|a| &a.injections),
            errors: read(|a| &a.errors),
            latency_added: Duration::from_nanos(read(|a| &a.latency_nanos)),
            started: record.started,
            ended: record.ended,
            abort_reason: record.abort_reason.clone(),
        }
    }
}

impl ChaosEngine {
    /// A builder with the defaults listed on each setter.
    pub fn builder() -> ChaosEngineBuilder {
        ChaosEngineBuilder {
            clock: Clock::new(),
            seed: None,
            max_concurrent: DEFAULT_MAX_CONCURRENT,
            allow_panics: false,
            supervise_interval: DEFAULT_SUPERVISE_INTERVAL,
            failpoints: None,
            on_injection: None,
        }
    }

    /// Registers an experiment, not yet started (the seed's `create_experiment`).
    ///
    /// # Errors
    ///
    /// [`EngineError`] for a probability outside 0..=1, zero durations or limits, an empty target, a bad
    /// latency profile or resource, or a panic on an engine that does not allow panics.
    pub fn create_experiment(&self, experiment: Experiment) -> Result<ExperimentId, EngineError> {
        self.validate(&experiment)?;
        let mut registry = self.inner.registry();
        registry.next_id += 1;
        let id = ExperimentId(registry.next_id);
        registry.experiments.insert(
            id,
            Record {
                spec: experiment,
                state: ExperimentState::Created,
                active: None,
                hold: None,
                started: None,
                ended: None,
                abort_reason: None,
                next_check: None,
            },
        );
        Ok(id)
    }

    fn validate(&self, experiment: &Experiment) -> Result<(), EngineError> {
        if !(0.0..=1.0).contains(&experiment.probability) {
            return Err(EngineError::Probability(experiment.probability.to_string()));
        }
        if experiment.duration.is_some_and(|d| d.is_zero()) {
            return Err(EngineError::Zero("duration"));
        }
        if experiment.max_injections == Some(0) {
            return Err(EngineError::Zero("max_injections"));
        }
        if experiment.steady_state.as_ref().is_some_and(|(_, every)| every.is_zero()) {
            return Err(EngineError::Zero("steady_state interval"));
        }
        match &experiment.target {
            Target::Point(name) | Target::Prefix(name) if name.is_empty() => return Err(EngineError::EmptyTarget),
            _ => {}
        }
        match &experiment.fault {
            Fault::Latency(profile) if !profile.is_valid() => Err(EngineError::Latency(format!("{profile:?}"))),
            Fault::Panic(_) if !self.inner.allow_panics => Err(EngineError::PanicsNotAllowed),
            Fault::Actions(actions) => self.check_actions(actions),
            Fault::Exhaust(resource) => resource.validate().map_err(EngineError::Resource),
            _ => Ok(()),
        }
    }

    fn check_actions(&self, actions: &Actions) -> Result<(), EngineError> {
        let panics = actions.actions().iter().any(|action| matches!(action.task(), Task::Panic(_)));
        if panics && !self.inner.allow_panics { Err(EngineError::PanicsNotAllowed) } else { Ok(()) }
    }

    /// Starts a created experiment (the seed's `start_experiment`): its resource is taken now, its points
    /// are hit from the next call on, and its duration runs from now.
    ///
    /// # Errors
    ///
    /// Unknown ids, experiments not in the created state, the concurrency cap, the kill switch, or a
    /// resource that cannot be taken (then nothing is left behind).
    pub fn start_experiment(&self, id: ExperimentId) -> Result<(), EngineError> {
        let inner = &self.inner;
        let mut registry = inner.registry();
        if inner.killed.load(Ordering::Acquire) {
            return Err(EngineError::KillSwitch);
        }
        let running = registry.experiments.values().filter(|r| r.state == ExperimentState::Running).count();
        let record = registry.experiments.get_mut(&id).ok_or(EngineError::UnknownExperiment(id))?;
        if record.state != ExperimentState::Created {
            return Err(EngineError::NotStartable { id, state: record.state });
        }
        if running >= inner.max_concurrent {
            return Err(EngineError::TooManyRunning { running, limit: inner.max_concurrent });
        }
        let hold = match &record.spec.fault {
            Fault::Exhaust(resource) => Some(resource.hold(&id.to_string())),
            #[cfg(feature = "proxy")]
            Fault::Network(network) => Some(network.apply(&format!("chaos-{id}"))),
            _ => None,
        };
        if let Some(hold) = hold {
            record.hold = Some(hold.map_err(|reason| EngineError::Start { id, reason })?);
        }
        let now = inner.clock.now();
        let ends_at = record.spec.duration.map(|duration| now + duration);
        record.active = Some(Arc::new(Active::new(id, &record.spec, ends_at)));
        record.state = ExperimentState::Running;
        record.started = Some(SystemTime::now());
        record.next_check = record.spec.steady_state.as_ref().map(|(_, every)| now + *every);
        inner.publish(&registry);
        Ok(())
    }

    /// Stops a running experiment (the seed's `stop_experiment`): every fault it made is removed before
    /// this returns (memory freed, threads joined, files removed). Returns whether it was running.
    ///
    /// # Errors
    ///
    /// Unknown ids.
    pub fn stop_experiment(&self, id: ExperimentId) -> Result<bool, EngineError> {
        self.end(id, ExperimentState::Completed, None)
    }

    /// Aborts a running experiment, recording why. Returns whether it was running.
    ///
    /// # Errors
    ///
    /// Unknown ids.
    pub fn abort_experiment(&self, id: ExperimentId, reason: &str) -> Result<bool, EngineError> {
        self.end(id, ExperimentState::Aborted, Some(reason.to_owned()))
    }

    fn end(&self, id: ExperimentId, state: ExperimentState, reason: Option<String>) -> Result<bool, EngineError> {
        let hold = {
            let mut registry = self.inner.registry();
            let record = registry.experiments.get_mut(&id).ok_or(EngineError::UnknownExperiment(id))?;
            let was_running = record.state == ExperimentState::Running;
            let hold = Inner::end(record, state, reason);
            if !was_running {
                return Ok(false);
            }
            self.inner.publish(&registry);
            hold
        };
        drop(hold);
        Ok(true)
    }

    /// The experiments running now (the seed's `get_active_experiments`).
    pub fn active_experiments(&self) -> Vec<ExperimentResults> {
        let registry = self.inner.registry();
        registry
            .experiments
            .iter()
            .filter(|(_, record)| record.state == ExperimentState::Running)
            .map(|(id, record)| Inner::results(*id, record))
            .collect()
    }

    /// What an experiment did so far (the seed's `get_experiment_results`).
    pub fn results(&self, id: ExperimentId) -> Option<ExperimentResults> {
        self.inner.registry().experiments.get(&id).map(|record| Inner::results(id, record))
    }

    /// Every experiment's results, in creation order.
    pub fn all_results(&self) -> Vec<ExperimentResults> {
        self.inner.registry().experiments.iter().map(|(id, record)| Inner::results(*id, record)).collect()
    }

    /// The kill switch: aborts every running experiment, removes every failpoint (releasing paused
    /// threads), and refuses new starts until [`ChaosEngine::rearm`].
    pub fn kill_switch(&self) {
        let holds: Vec<Hold> = {
            let mut registry = self.inner.registry();
            self.inner.killed.store(true, Ordering::Release);
            let holds = registry
                .experiments
                .values_mut()
                .filter_map(|record| Inner::end(record, ExperimentState::Aborted, Some("kill switch".to_owned())))
                .collect();
            for (_, failpoint) in std::mem::take(&mut registry.failpoints) {
                failpoint.retire();
            }
            self.inner.publish(&registry);
            holds
        };
        drop(holds);
    }

    /// Lets experiments start again after the kill switch.
    pub fn rearm(&self) {
        self.inner.killed.store(false, Ordering::Release);
    }

    /// Whether the kill switch is engaged.
    pub fn is_killed(&self) -> bool {
        self.inner.killed.load(Ordering::Acquire)
    }

    /// Configures a failpoint with a fail-rs action string (`20%3*return(x)->sleep(10)->off`), replacing
    /// its previous configuration (and releasing threads paused at it), as `fail::cfg` does.
    ///
    /// # Errors
    ///
    /// [`EngineError::Action`] where the `fail` crate rejects the string; [`EngineError::PanicsNotAllowed`]
    /// for a `panic` action on an engine without `allow_panics`; [`EngineError::KillSwitch`].
    pub fn configure(&self, point: &str, actions: &str) -> Result<(), EngineError> {
        if self.is_killed() {
            return Err(EngineError::KillSwitch);
        }
        let actions =
            Actions::parse(actions).map_err(|error| EngineError::Action { point: point.to_owned(), error })?;
        self.install_failpoint(point.to_owned(), actions)
    }

    fn install_failpoint(&self, point: String, actions: Actions) -> Result<(), EngineError> {
        if point.is_empty() {
            return Err(EngineError::EmptyTarget);
        }
        self.check_actions(&actions)?;
        let mut registry = self.inner.registry();
        registry.next_id += 1;
        let id = ExperimentId(registry.next_id);
        let spec = Experiment::new(Target::Point(point.clone()), Fault::Actions(Arc::new(actions)));
        if let Some(previous) = registry.failpoints.insert(point, Arc::new(Active::new(id, &spec, None))) {
            previous.retire();
        }
        self.inner.publish(&registry);
        Ok(())
    }

    /// Removes a failpoint's configuration (releasing threads paused at it), as `fail::remove` does.
    pub fn remove(&self, point: &str) {
        let mut registry = self.inner.registry();
        if let Some(previous) = registry.failpoints.remove(point) {
            previous.retire();
            self.inner.publish(&registry);
        }
    }

    /// The configured failpoints and their action strings, as `fail::list` gives them.
    pub fn failpoints(&self) -> Vec<(String, String)> {
        let registry = self.inner.registry();
        registry
            .failpoints
            .iter()
            .map(|(name, active)| match &active.fault {
                Fault::Actions(actions) => (name.clone(), actions.as_str().to_owned()),
                other => (name.clone(), format!("{other:?}")),
            })
            .collect()
    }

    /// One supervisor pass now: completes experiments whose duration ran out or whose injections are used
    /// up, and runs steady-state checks that are due, aborting experiments whose hypothesis fails. The
    /// supervisor thread does this every interval; tests driving a mock clock call it by hand.
    pub fn tick(&self) {
        let inner = &self.inner;
        let now = inner.clock.now();
        let mut holds = Vec::new();
        let mut due: Vec<(ExperimentId, Hypothesis)> = Vec::new();
        {
            let mut registry = inner.registry();
            let mut changed = false;
            for record in registry.experiments.values_mut().filter(|r| r.state == ExperimentState::Running) {
                let active = record.active.as_ref().expect("a running experiment has its active part");
                let expired = active.ends_at.is_some_and(|ends_at| now >= ends_at);
                if expired || active.used_up() {
                    holds.extend(Inner::end(record, ExperimentState::Completed, None));
                    changed = true;
                    continue;
                }
                if let (Some((holds_up, every)), Some(next_check)) = (&record.spec.steady_state, record.next_check)
                    && now >= next_check
                {
                    due.push((active.id, Arc::clone(holds_up)));
                    record.next_check = Some(now + *every);
                }
            }
            if changed {
                inner.publish(&registry);
            }
        }
        drop(holds);
        for (id, hypothesis) in due {
            // A hypothesis that panics has certainly not held.
            let held = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hypothesis())).unwrap_or(false);
            if !held {
                let _ = self.abort_experiment(id, "steady-state hypothesis violated");
            }
        }
    }

    /// Decides and applies what happens at `point`, on the calling thread (a sleep is a thread sleep).
    ///
    /// # Errors
    ///
    /// The [`ChaosError`] an experiment injects here.
    pub fn check(&self, point: &str) -> Result<(), ChaosError> {
        point::apply_sync(self.inner.decide(point, None).unwrap_or(Verdict::Pass), point)
    }

    /// Decides and applies what happens at `point`, waiting on tokio timers instead of sleeping the thread.
    ///
    /// # Errors
    ///
    /// The [`ChaosError`] an experiment injects here.
    pub async fn check_async(&self, point: &str) -> Result<(), ChaosError> {
        point::apply_async(self.inner.decide(point, None).unwrap_or(Verdict::Pass), point).await
    }

    /// The seed's `inject_chaos(service_name, experiment_type)`: applies only experiments of `kind`
    /// targeting `service`.
    ///
    /// # Errors
    ///
    /// The [`ChaosError`] an experiment injects here.
    pub fn inject(&self, service: &str, kind: ExperimentKind) -> Result<(), ChaosError> {
        point::apply_sync(self.inner.decide(service, Some(kind)).unwrap_or(Verdict::Pass), service)
    }

    /// Runs `call` behind the point `point` (the seed's `chaos_injection_point` decorator): an injected
    /// error is returned instead of calling it.
    ///
    /// # Errors
    ///
    /// The [`ChaosError`] an experiment injects here.
    pub fn wrap<T>(&self, point: &str, call: impl FnOnce() -> T) -> Result<T, ChaosError> {
        self.check(point)?;
        Ok(call())
    }

    /// Awaits `future` behind the point `point`: latency is a timer, an injected error is returned instead
    /// of polling the future.
    ///
    /// # Errors
    ///
    /// The [`ChaosError`] an experiment injects here.
    pub async fn instrument<F: Future>(&self, point: &str, future: F) -> Result<F::Output, ChaosError> {
        self.check_async(point).await?;
        Ok(future.await)
    }

    /// Stops the supervisor and aborts everything (also done when the last handle drops).
    pub fn shutdown(&self) {
        self.kill_switch();
        self.inner.stopping.store(true, Ordering::Release);
        if let Some(supervisor) = lock(&self.inner.supervisor).take() {
            supervisor.unpark();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let registry = self.registry.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner);
        for record in registry.experiments.values_mut() {
            drop(Inner::end(record, ExperimentState::Aborted, Some("engine dropped".to_owned())));
        }
        for failpoint in registry.failpoints.values() {
            failpoint.retire();
        }
        if self.armed.swap(false, Ordering::AcqRel) {
            point::set_armed(false);
            point::bump_generation();
        }
        if let Some(supervisor) = lock(&self.supervisor).take() {
            supervisor.unpark();
        }
    }
}

/// The supervisor thread: a pass every interval until the engine is shut down or dropped.
fn supervise(engine: Weak<Inner>, interval: Duration) {
    loop {
        std::thread::park_timeout(interval);
        let Some(inner) = engine.upgrade() else { return };
        if inner.stopping.load(Ordering::Acquire) {
            return;
        }
        ChaosEngine { inner }.tick();
    }
}
