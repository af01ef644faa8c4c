//! The deployer: deployments of one service, their weights, their health, the history of changes.

use std::collections::VecDeque;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use arc_swap::ArcSwap;
use quanta::{Clock, Instant};

use crate::backend::{TrafficBackend, TrafficWeight};
use crate::error::DeployError;
use crate::health::{CheckResult, Health, HealthPolicy, HealthTarget};
use crate::periodic::Periodic;
use crate::router::{BUCKETS, Table, bucket_of};

/// Results kept per deployment.
const HISTORY: usize = 100;

/// What requests see of a deployment (the seed's `DeploymentInstance`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentInfo {
    /// Its name: a color (`blue`, `green`) or a revision (`v42-canary`).
    pub name: String,
    /// The version it runs.
    pub version: String,
    /// How its health is checked.
    pub health: HealthTarget,
}

/// The well-known names of blue-green deployments (the seed's `DeploymentColor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Color {
    /// `blue`.
    Blue,
    /// `green`.
    Green,
}

impl Color {
    /// The deployment name: `blue` or `green`.
    pub fn name(self) -> &'static str {
        match self {
            Color::Blue => "blue",
            Color::Green => "green",
        }
    }
}

/// What requests read: deployments and their bucket ranges, swapped in whole on every change.
#[derive(Debug, Default)]
struct RouteTable {
    deployments: Vec<DeploymentInfo>,
    table: Table,
}

/// A routing decision: the deployment a request goes to. Holds the routing table it was read from, so the
/// answer stays consistent while it is used. [`Deployer::route_with`] avoids even that reference count.
pub struct Routed {
    table: Arc<RouteTable>,
    index: usize,
}

impl std::fmt::Debug for Routed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Routed").field(&**self).finish()
    }
}

impl Deref for Routed {
    type Target = DeploymentInfo;

    fn deref(&self) -> &DeploymentInfo {
        &self.table.deployments[self.index]
    }
}

/// Something the deployer did, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployEvent {
    /// When, on the deployer's clock.
    pub at: Duration,
    /// What happened.
    pub what: String,
}

/// A deployment as [`Deployer::status`] reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentStatus {
    /// What it is.
    pub info: DeploymentInfo,
    /// Its share of traffic, in percent.
    pub percent: f64,
    /// Its health.
    pub health: Health,
    /// Its latest check results, oldest first (up to 100).
    pub history: Vec<CheckResult>,
}

/// The seed's `get_status`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeployStatus {
    /// The service.
    pub service: String,
    /// The deployment with the most traffic, if any has traffic.
    pub active: Option<String>,
    /// Every deployment, in registration order.
    pub deployments: Vec<DeploymentStatus>,
    /// What the deployer did, oldest first.
    pub events: Vec<DeployEvent>,
}

#[derive(Debug)]
struct Deployment {
    info: DeploymentInfo,
    health: Health,
    passes: u32,
    failures: u32,
    history: VecDeque<CheckResult>,
}

#[derive(Debug, Default)]
struct State {
    deployments: Vec<Deployment>,
    weights: Vec<u32>,
    /// Earlier weights, newest last, for rollback.
    previous: Vec<Vec<u32>>,
    events: Vec<DeployEvent>,
}

impl State {
    /// The deployments' names, in registration order (the order of `weights`).
    fn names(&self) -> Vec<&str> {
        self.deployments.iter().map(|d| d.info.name.as_str()).collect()
    }
}

struct Inner {
    /// Tells deployers apart in the per-thread cache of routing tables.
    id: u64,
    service: String,
    clock: Clock,
    epoch: Instant,
    policy: HealthPolicy,
    state: Mutex<State>,
    routes: ArcSwap<RouteTable>,
    /// Bumped after every new table is stored: readers compare it with the table they cached.
    generation: AtomicU64,
    /// Whether a rollout runs (one at a time).
    rolling: AtomicBool,
    /// Where weights go besides the in-process router.
    backends: Vec<Backend>,
}

/// A traffic backend, behind a type that can say what it is in `Debug` output.
#[derive(Clone)]
struct Backend(Arc<dyn TrafficBackend>);

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.name())
    }
}

static DEPLOYER_IDS: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The routing table this thread used last: (deployer id, generation, table). Routing reads one
    /// atomic and, while nothing changed, touches no shared cache line at all.
    static CACHED: std::cell::RefCell<Option<(u64, u64, Arc<RouteTable>)>> = const { std::cell::RefCell::new(None) };
}

/// Blue-green and canary deployments of one service (the seed's `BlueGreenDeployer`): deployments by
/// name, traffic weights read lock-free and sticky by request key, health checks that take traffic away
/// from a failing deployment, rollback.
///
/// A cheap handle: clones share one deployer.
#[derive(Clone)]
pub struct Deployer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Deployer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deployer").field("service", &self.inner.service).finish_non_exhaustive()
    }
}

/// Configures a [`Deployer`]; from [`Deployer::builder`].
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct DeployerBuilder {
    service: String,
    clock: Clock,
    policy: HealthPolicy,
    backends: Vec<Backend>,
}

impl DeployerBuilder {
    /// The clock for events and check results (default: quanta's; tests pass `quanta::Clock::mock()`).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// How health checks decide (default: 1 s timeout, 2 passes to recover, 3 failures to fail).
    pub fn health_policy(mut self, policy: HealthPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Applies every weight change to `backend` too (HAProxy, a mesh), before it takes effect in process;
    /// a backend that refuses refuses the change. Several backends are applied in the order added.
    pub fn backend(mut self, backend: impl TrafficBackend) -> Self {
        self.backends.push(Backend(Arc::new(backend)));
        self
    }

    /// Builds the deployer.
    ///
    /// # Errors
    ///
    /// [`DeployError::Config`] for a zero timeout or zero pass/failure counts.
    pub fn build(self) -> Result<Deployer, DeployError> {
        let policy = self.policy;
        if policy.timeout.is_zero() || policy.healthy_after == 0 || policy.unhealthy_after == 0 {
            return Err(DeployError::Config(format!(
                "the health policy needs a positive timeout and counts, got {policy:?}"
            )));
        }
        Ok(Deployer {
            inner: Arc::new(Inner {
                id: DEPLOYER_IDS.fetch_add(1, Ordering::Relaxed),
                generation: AtomicU64::new(0),
                rolling: AtomicBool::new(false),
                service: self.service,
                epoch: self.clock.now(),
                clock: self.clock,
                policy,
                state: Mutex::new(State::default()),
                routes: ArcSwap::from_pointee(RouteTable::default()),
                backends: self.backends,
            }),
        })
    }
}

fn percent_to_bps(percent: f64) -> Result<u32, DeployError> {
    if !(0.0..=100.0).contains(&percent) {
        return Err(DeployError::Percentage(percent.to_string()));
    }
    Ok((percent * 100.0).round() as u32)
}

impl Deployer {
    /// A builder for the deployments of `service` (the seed's `BlueGreenDeployer(service_name)`).
    pub fn builder(service: impl Into<String>) -> DeployerBuilder {
        DeployerBuilder {
            service: service.into(),
            clock: Clock::new(),
            policy: HealthPolicy::default(),
            backends: Vec::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn now(&self) -> Duration {
        self.inner.clock.now().saturating_duration_since(self.inner.epoch)
    }

    /// The time on the deployer's clock (rollouts run on it).
    pub(crate) fn elapsed(&self) -> Duration {
        self.now()
    }

    /// Checks that a deployment is registered.
    pub(crate) fn has(&self, name: &str) -> Result<(), DeployError> {
        Self::index(&self.state(), name).map(drop)
    }

    /// A deployment's share of traffic now, in percent.
    pub(crate) fn percent_of(&self, name: &str) -> Option<f64> {
        let state = self.state();
        let at = Self::index(&state, name).ok()?;
        Some(f64::from(state.weights[at]) / 100.0)
    }

    /// Takes the one rollout slot; false when a rollout runs already.
    pub(crate) fn claim_rollout(&self) -> bool {
        !self.inner.rolling.swap(true, Ordering::AcqRel)
    }

    pub(crate) fn release_rollout(&self) {
        self.inner.rolling.store(false, Ordering::Release);
    }

    /// Registers a deployment (the seed's `register_deployment`). The first one registered takes all
    /// traffic; later ones start with none.
    ///
    /// # Errors
    ///
    /// [`DeployError::Config`] for an empty name, [`DeployError::Duplicate`] for a name in use,
    /// [`DeployError::Backend`] when a traffic backend refuses.
    pub fn register(&self, name: &str, version: &str, health: HealthTarget) -> Result<(), DeployError> {
        if name.trim().is_empty() {
            return Err(DeployError::Config("a deployment needs a name".into()));
        }
        let now = self.now();
        let mut state = self.state();
        if state.deployments.iter().any(|d| d.info.name == name) {
            return Err(DeployError::Duplicate(name.to_owned()));
        }
        let first = state.weights.is_empty();
        let mut names = state.names();
        names.push(name);
        let mut weights = state.weights.clone();
        weights.push(if first { BUCKETS } else { 0 });
        self.push_to_backends(&names, &weights)?;
        let info = DeploymentInfo { name: name.to_owned(), version: version.to_owned(), health };
        state.deployments.push(Deployment {
            info,
            health: Health::Unknown,
            passes: 0,
            failures: 0,
            history: VecDeque::new(),
        });
        state.weights = weights;
        let what = format!("registered {name} ({version}){}", if first { " with all traffic" } else { "" });
        self.publish(&mut state, now, what);
        Ok(())
    }

    /// Registers a blue or green deployment.
    ///
    /// # Errors
    ///
    /// See [`Deployer::register`].
    pub fn register_color(&self, color: Color, version: &str, health: HealthTarget) -> Result<(), DeployError> {
        self.register(color.name(), version, health)
    }

    fn index(state: &State, name: &str) -> Result<usize, DeployError> {
        state.deployments.iter().position(|d| d.info.name == name).ok_or_else(|| DeployError::Unknown(name.to_owned()))
    }

    /// Hands `weights` (of the deployments `names`, in order) to every backend; the first refusal stops.
    fn push_to_backends(&self, names: &[&str], weights: &[u32]) -> Result<(), DeployError> {
        if self.inner.backends.is_empty() {
            return Ok(());
        }
        let shares = shares(names, weights);
        for backend in &self.inner.backends {
            backend.0.apply(&shares)?;
        }
        Ok(())
    }

    /// Brings every backend back to the current weights if it drifted (a load balancer that reloaded and
    /// forgot its runtime weights); returns how many had to be corrected. The health-check thread calls
    /// this every round.
    ///
    /// # Errors
    ///
    /// [`DeployError::Backend`] for the first backend that cannot be reached or refuses.
    pub fn reconcile_backends(&self) -> Result<usize, DeployError> {
        if self.inner.backends.is_empty() {
            return Ok(0);
        }
        let now = self.now();
        let mut state = self.state();
        let names = state.names();
        let shares = shares(&names, &state.weights);
        let mut corrected = Vec::new();
        for backend in &self.inner.backends {
            if backend.0.reconcile(&shares)? {
                corrected.push(backend.0.name());
            }
        }
        for name in &corrected {
            state.events.push(DeployEvent { at: now, what: format!("{name} had drifted: weights applied again") });
        }
        Ok(corrected.len())
    }

    /// Swaps in new weights (backends first), remembering the old ones for rollback, and records why.
    fn apply(&self, state: &mut State, weights: Vec<u32>, now: Duration, what: String) -> Result<(), DeployError> {
        self.push_to_backends(&state.names(), &weights)?;
        self.apply_in_process(state, weights, now, what);
        Ok(())
    }

    fn apply_in_process(&self, state: &mut State, weights: Vec<u32>, now: Duration, what: String) {
        let old = std::mem::replace(&mut state.weights, weights);
        state.previous.push(old);
        if state.previous.len() > HISTORY {
            state.previous.remove(0);
        }
        self.publish(state, now, what);
    }

    fn publish(&self, state: &mut State, now: Duration, what: String) {
        let table = RouteTable {
            deployments: state.deployments.iter().map(|d| d.info.clone()).collect(),
            table: Table::new(state.weights.clone()),
        };
        self.inner.routes.store(Arc::new(table));
        // After the store: a reader that sees the new generation loads a table at least this new.
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        state.events.push(DeployEvent { at: now, what });
    }

    /// Sends all traffic to `name` (the seed's `set_active`).
    ///
    /// # Errors
    ///
    /// As [`Deployer::shift_traffic`].
    pub fn set_active(&self, name: &str) -> Result<(), DeployError> {
        self.shift_traffic(name, 100.0)
    }

    /// Gives `name` `percent` of the traffic (the seed's `shift_traffic`); the rest is shared by the other
    /// healthy deployments in proportion to what they had (or goes to the one that had the most).
    ///
    /// # Errors
    ///
    /// [`DeployError::Percentage`] outside 0..=100, [`DeployError::Unknown`], [`DeployError::Unhealthy`]
    /// when `name` fails its checks (and `percent` is above 0), [`DeployError::NoFallback`] when the rest
    /// has nowhere healthy to go, [`DeployError::Backend`] when a traffic backend refuses. Nothing changes
    /// on an error.
    pub fn shift_traffic(&self, name: &str, percent: f64) -> Result<(), DeployError> {
        let target_bps = percent_to_bps(percent)?;
        let now = self.now();
        let mut state = self.state();
        let target = Self::index(&state, name)?;
        if target_bps > 0 && state.deployments[target].health == Health::Unhealthy {
            return Err(DeployError::Unhealthy(name.to_owned()));
        }
        let weights = spread(&state, target, target_bps).ok_or_else(|| DeployError::NoFallback(name.to_owned()))?;
        self.apply(&mut state, weights, now, format!("shifted {percent}% of traffic to {name}"))
    }

    /// Puts back the weights before the last change (the seed's `rollback`).
    ///
    /// # Errors
    ///
    /// [`DeployError::NothingToRollBack`]; [`DeployError::Unhealthy`] when the old weights would give
    /// traffic to a deployment now failing its checks: a rollback never raises a weight before its target
    /// is healthy; [`DeployError::Backend`] when a traffic backend refuses.
    pub fn rollback(&self) -> Result<(), DeployError> {
        let now = self.now();
        let mut state = self.state();
        let previous = state.previous.last().cloned().ok_or(DeployError::NothingToRollBack)?;
        for (at, (old, new)) in previous.iter().zip(&state.weights).enumerate() {
            if old > new && state.deployments[at].health == Health::Unhealthy {
                return Err(DeployError::Unhealthy(state.deployments[at].info.name.clone()));
            }
        }
        self.push_to_backends(&state.names(), &previous)?;
        state.previous.pop();
        state.weights = previous;
        self.publish(&mut state, now, "rolled back to the previous weights".into());
        Ok(())
    }

    /// The deployment for a request with this key (the seed's `get_deployment_for_request`): sticky (the
    /// same key, the same deployment while weights stay), consistent (a deployment whose weight grows keeps
    /// every key it had), lock-free.
    pub fn route(&self, key: &[u8]) -> Option<Routed> {
        self.route_bucket(bucket_of(key))
    }

    /// The deployment for a request without a key: random, by weight.
    pub fn route_random(&self) -> Option<Routed> {
        thread_local! {
            static DRAWS: std::cell::Cell<u64> = const { std::cell::Cell::new(0x9E37_79B9_7F4A_7C15) };
        }
        let draw = DRAWS.with(|draws| {
            let next = draws.get().wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            draws.set(next);
            next >> 33
        });
        self.route_bucket((draw % u64::from(BUCKETS)) as u32)
    }

    fn route_bucket(&self, bucket: u32) -> Option<Routed> {
        self.with_table(|table| {
            let index = table.table.pick(bucket)?;
            Some(Routed { table: Arc::clone(table), index })
        })
    }

    /// Routes a request with this key and hands its deployment to `use_it`, without touching any shared
    /// reference count: the fastest way to route (the same decision as [`Deployer::route`]).
    pub fn route_with<R>(&self, key: &[u8], use_it: impl FnOnce(&DeploymentInfo) -> R) -> Option<R> {
        let bucket = bucket_of(key);
        self.with_table(|table| table.table.pick(bucket).map(|index| use_it(&table.deployments[index])))
    }

    /// Runs `read` on the current routing table, from this thread's cache while it is current.
    fn with_table<R>(&self, read: impl FnOnce(&Arc<RouteTable>) -> R) -> R {
        let generation = self.inner.generation.load(Ordering::Acquire);
        CACHED.with(|cached| {
            let mut cached = cached.borrow_mut();
            match &*cached {
                Some((id, seen, table)) if *id == self.inner.id && *seen == generation => read(table),
                _ => {
                    let table = self.inner.routes.load_full();
                    let answer = read(&table);
                    *cached = Some((self.inner.id, generation, table));
                    answer
                }
            }
        })
    }

    /// Runs every deployment's health check once now, on the calling thread, and applies the results: a
    /// deployment failing `unhealthy_after` checks in a row loses its traffic to the healthy ones at once.
    pub fn check_health(&self) {
        let targets: Vec<(String, HealthTarget)> =
            self.state().deployments.iter().map(|d| (d.info.name.clone(), d.info.health.clone())).collect();
        // Probes run without the lock: a slow endpoint must not hold up routing changes.
        let results: Vec<(String, Result<(), String>)> =
            targets.into_iter().map(|(name, target)| (name, target.probe(self.inner.policy.timeout))).collect();
        let now = self.now();
        let mut state = self.state();
        let policy = self.inner.policy;
        for (name, result) in results {
            let Ok(at) = Self::index(&state, &name) else { continue };
            let deployment = &mut state.deployments[at];
            let passed = result.is_ok();
            deployment.history.push_back(CheckResult { at: now, passed, error: result.err() });
            if deployment.history.len() > HISTORY {
                deployment.history.pop_front();
            }
            if passed {
                deployment.passes += 1;
                deployment.failures = 0;
            } else {
                deployment.failures += 1;
                deployment.passes = 0;
            }
            let before = deployment.health;
            let after = match before {
                Health::Unhealthy if deployment.passes >= policy.healthy_after => Health::Healthy,
                Health::Unhealthy => Health::Unhealthy,
                _ if deployment.failures >= policy.unhealthy_after => Health::Unhealthy,
                _ if passed => Health::Healthy,
                other => other,
            };
            deployment.health = after;
            if before != after {
                state.events.push(DeployEvent { at: now, what: format!("{name} is {after:?}") });
                if after == Health::Unhealthy && state.weights[at] > 0 {
                    match spread(&state, at, 0) {
                        Some(weights) => {
                            let what = format!("moved all traffic off {name}: it is unhealthy");
                            if let Err(error) = self.apply(&mut state, weights.clone(), now, what.clone()) {
                                // In process the failing deployment loses its traffic regardless; the
                                // backend is brought in line by the next reconciliation.
                                self.apply_in_process(
                                    &mut state,
                                    weights,
                                    now,
                                    format!("{what} (in process; {error})"),
                                );
                            }
                        }
                        None => state.events.push(DeployEvent {
                            at: now,
                            what: format!("{name} is unhealthy but nothing healthy can take its traffic"),
                        }),
                    }
                }
            }
        }
    }

    /// Checks health every `interval` on a thread of its own (the seed's `start_health_checks`) until the
    /// returned handle is stopped or dropped (the seed's `stop_health_checks`).
    ///
    /// # Errors
    ///
    /// [`DeployError::Config`] for a zero interval or when the thread cannot start.
    pub fn start_health_checks(&self, interval: Duration) -> Result<HealthChecks, DeployError> {
        let deployer = self.clone();
        let worker = Periodic::spawn("infra-deploy-health", "health-check", interval, move || {
            deployer.check_health();
            // A backend that reloaded gets its weights back; one that cannot be reached is retried next
            // round (its error is in the events of the change it refused).
            let _ = deployer.reconcile_backends();
            true
        })?;
        Ok(HealthChecks(worker))
    }

    /// Where everything stands (the seed's `get_status`).
    pub fn status(&self) -> DeployStatus {
        let state = self.state();
        let deployments: Vec<DeploymentStatus> = state
            .deployments
            .iter()
            .zip(&state.weights)
            .map(|(d, weight)| DeploymentStatus {
                info: d.info.clone(),
                percent: f64::from(*weight) / 100.0,
                health: d.health,
                history: d.history.iter().cloned().collect(),
            })
            .collect();
        let active = deployments
            .iter()
            .filter(|d| d.percent > 0.0)
            .max_by(|a, b| a.percent.total_cmp(&b.percent))
            .map(|d| d.info.name.clone());
        DeployStatus { service: self.inner.service.clone(), active, deployments, events: state.events.clone() }
    }
}

/// The weights as backends take them: each deployment's share in percent.
fn shares<'a>(names: &[&'a str], weights: &[u32]) -> Vec<TrafficWeight<'a>> {
    names
        .iter()
        .zip(weights)
        .map(|(name, weight)| TrafficWeight { deployment: name, percent: f64::from(*weight) / 100.0 })
        .collect()
}

/// Weights giving `target` `target_bps`, the rest shared by the other healthy (or unchecked) deployments in
/// proportion to their current weights, or all to the one with the most; `None` when the rest has
/// nowhere to go.
fn spread(state: &State, target: usize, target_bps: u32) -> Option<Vec<u32>> {
    let rest = BUCKETS - target_bps;
    let mut weights = vec![0; state.weights.len()];
    weights[target] = target_bps;
    if rest == 0 {
        return Some(weights);
    }
    let eligible: Vec<usize> = (0..state.weights.len())
        .filter(|&at| at != target && state.deployments[at].health != Health::Unhealthy)
        .collect();
    let total: u64 = eligible.iter().map(|&at| u64::from(state.weights[at])).sum();
    if total == 0 {
        // Nobody else had traffic: the first eligible deployment takes the rest.
        let first = *eligible.first()?;
        weights[first] = rest;
        return Some(weights);
    }
    let mut given = 0;
    for &at in &eligible {
        let share = (u64::from(rest) * u64::from(state.weights[at]) / total) as u32;
        weights[at] = share;
        given += share;
    }
    // Rounding leftovers go to the largest share, so the weights always sum to 10,000.
    if let Some(&largest) = eligible.iter().max_by_key(|&&at| weights[at]) {
        weights[largest] += rest - given;
    }
    Some(weights)
}

/// The background health checks; from [`Deployer::start_health_checks`]. Dropping it stops them.
#[derive(Debug)]
#[must_use = "dropping the handle stops the checks"]
pub struct HealthChecks(Periodic);

impl HealthChecks {
    /// Stops the checks and waits for the thread (the seed's `stop_health_checks`).
    pub fn stop(mut self) {
        self.0.stop();
    }
}
