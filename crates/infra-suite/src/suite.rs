//! `InfraSuite`: every component built with one service name and one clock, wired together, shut down in
//! order.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use infra_alert::{AlertId, AlertManager, AlertManagerBuilder, NewAlert, Severity};
use infra_apm::{Collector, SlaEvent, SlaEventKind};
use infra_chaos::ChaosEngine;
use infra_deploy::Analysis;
use infra_deploy::{Deployer, Rollout};
use infra_flags::Flags;
use infra_log::{Level, LogAggregator, MemorySink, TraceContext};

use crate::publish::{self, Publisher};
use infra_trace::{ExportError, InMemoryExporter, Resource, SpanData, SpanExporter, Status, Tracer};

/// Why the suite could not be built: the component that refused, and its reason.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    /// A component's builder refused its settings.
    #[error("building {component}: {reason}")]
    Build {
        /// The component.
        component: &'static str,
        /// What it said.
        reason: String,
    },
    /// APM refused a metric or transaction name (invalid, or over the cardinality limit).
    #[error("metrics: {0}")]
    Metrics(#[from] infra_apm::ApmError),
}

fn build_error(component: &'static str) -> impl Fn(&dyn std::fmt::Display) -> SuiteError {
    move |reason| SuiteError::Build { component, reason: reason.to_string() }
}

/// Records each finished span's duration in the APM histogram `span_duration_seconds`, labelled by
/// operation and outcome (`ok` or `error`): traces feed metrics without a second instrumentation.
#[derive(Debug)]
pub struct SpanMetrics {
    apm: Collector,
}

impl SpanMetrics {
    /// Spans into `apm`.
    pub fn new(apm: Collector) -> Self {
        SpanMetrics { apm }
    }
}

impl SpanExporter for SpanMetrics {
    fn export(&self, spans: &[SpanData], _resource: &Resource) -> Result<(), ExportError> {
        for span in spans {
            let outcome = if matches!(span.status, Status::Error(_)) { "error" } else { "ok" };
            // A name the registry refuses (too many series) is counted there; tracing goes on.
            let _ = self.apm.record_histogram(
                "span_duration_seconds",
                span.duration().as_secs_f64(),
                &[("operation", &span.name), ("outcome", outcome)],
            );
        }
        Ok(())
    }
}

/// How often [`InfraSuite::evaluate`] keeps an APM snapshot for the dashboard's charts.
const SNAPSHOT_EVERY: Duration = Duration::from_secs(2);

/// Adds settings to the alert manager the suite builds (receivers, routes, escalation policies).
type AlertSettings = Box<dyn FnOnce(AlertManagerBuilder) -> AlertManagerBuilder>;

/// Configures an [`InfraSuite`]; from [`InfraSuite::builder`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct InfraSuiteBuilder {
    service: String,
    clock: quanta::Clock,
    sample_rate: f64,
    log_capacity: usize,
    trace_capacity: usize,
    log_burst_limit: u32,
    alert_settings: Option<AlertSettings>,
}

impl std::fmt::Debug for InfraSuiteBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InfraSuiteBuilder")
            .field("service", &self.service)
            .field("sample_rate", &self.sample_rate)
            .finish_non_exhaustive()
    }
}

impl InfraSuiteBuilder {
    /// The clock every component uses (default: quanta's; tests pass `quanta::Clock::mock()`).
    pub fn clock(mut self, clock: quanta::Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The share of traces kept (default 1.0: all).
    pub fn sample_rate(mut self, rate: f64) -> Self {
        self.sample_rate = rate;
        self
    }

    /// Log entries kept in memory for search (default 100,000).
    pub fn log_capacity(mut self, entries: usize) -> Self {
        self.log_capacity = entries;
        self
    }

    /// Spans kept in memory for lookup by trace id (default 100,000).
    pub fn trace_capacity(mut self, spans: usize) -> Self {
        self.trace_capacity = spans;
        self
    }

    /// Entries a second with the same component and message before the rest are summed up in one
    /// "suppressed N similar" entry (default 1,000): a flood, such as chaos injected on every call, stays
    /// readable and cheap.
    pub fn log_burst_limit(mut self, per_second: u32) -> Self {
        self.log_burst_limit = per_second;
        self
    }

    /// Configures the alert manager beyond the suite's defaults: receivers, routes, escalation policies
    /// (the suite keeps its service name and clock).
    pub fn alerts(mut self, settings: impl FnOnce(AlertManagerBuilder) -> AlertManagerBuilder + 'static) -> Self {
        self.alert_settings = Some(Box::new(settings));
        self
    }

    /// Builds and wires every component.
    ///
    /// # Errors
    ///
    /// [`SuiteError::Build`] naming the component whose settings were refused.
    pub fn build(self) -> Result<InfraSuite, SuiteError> {
        let service = self.service;
        // Snapshots for the dashboard's charts: one every SNAPSHOT_EVERY, kept for six minutes.
        let apm = Collector::builder(service.clone()).clock(self.clock.clone()).history(180).build();
        let spans = InMemoryExporter::new(self.trace_capacity);
        let tracer = Tracer::builder(service.clone())
            .clock(self.clock.clone())
            .sample_rate(self.sample_rate)
            .exporter(spans.clone())
            .exporter(SpanMetrics::new(apm.clone()))
            .build()
            .map_err(|err| build_error("the tracer")(&err))?;
        let log_memory = MemorySink::new(self.log_capacity);
        let logs = LogAggregator::builder(service.clone())
            .clock(self.clock.clone())
            .sink(log_memory.clone())
            .burst_limit(self.log_burst_limit)
            // Entries written inside a span carry its trace and span ids.
            .context_provider(|| {
                infra_trace::current_context().map(|context| {
                    TraceContext::new(context.trace_id().to_u128(), context.span_id().to_u64(), context.flags().bits())
                })
            })
            .build()
            .map_err(|err| build_error("the log aggregator")(&err))?;
        let mut alert_builder = AlertManager::builder(service.clone());
        if let Some(settings) = self.alert_settings {
            alert_builder = settings(alert_builder);
        }
        let alerts =
            alert_builder.clock(self.clock.clone()).build().map_err(|err| build_error("the alert manager")(&err))?;
        let chaos = ChaosEngine::builder()
            .clock(self.clock.clone())
            .on_injection({
                // Every injection is counted in APM and logged (floods fold into "suppressed N similar").
                let (apm, logs) = (apm.clone(), logs.clone());
                move |injection| {
                    let kind = injection.kind.as_str();
                    let _ = apm.increment_counter(
                        "chaos_injections_total",
                        1,
                        &[("kind", kind), ("point", injection.point)],
                    );
                    infra_log::log!(
                        logs,
                        Level::Warning,
                        "chaos",
                        "chaos injection",
                        kind = kind,
                        point = injection.point.to_owned(),
                        experiment = injection.experiment.to_string()
                    );
                }
            })
            .build()
            .map_err(|err| build_error("the chaos engine")(&err))?;
        let deployer = Deployer::builder(service.clone())
            .clock(self.clock.clone())
            .build()
            .map_err(|err| build_error("the deployer")(&err))?;
        let flags = Flags::new();
        let flags_for_metrics = flags.clone();

        // SLA breaches raise alerts; recoveries resolve them.
        let breaches: Arc<Mutex<HashMap<String, AlertId>>> = Arc::default();
        {
            let (alerts, logs, breaches) = (alerts.clone(), logs.clone(), Arc::clone(&breaches));
            apm.on_sla_event(move |event: &SlaEvent| sla_to_alert(&alerts, &logs, &breaches, event));
        }

        Ok(InfraSuite {
            inner: Arc::new(Inner {
                service,
                apm,
                tracer,
                spans,
                logs,
                log_memory,
                alerts,
                chaos,
                deployer,
                flags,
                rollout: Mutex::new(None),
                shut_down: AtomicBool::new(false),
                publishers: Mutex::new(vec![publish::flags(flags_for_metrics)]),
                last_snapshot: std::sync::atomic::AtomicU64::new(0),
            }),
        })
    }
}

/// `transaction`'s stats, when it saw traffic in the last minute (what analyses and hypotheses judge).
fn last_minute(apm: &Collector, transaction: &str) -> Option<infra_apm::TransactionStats> {
    apm.transaction_stats(transaction).filter(|stats| stats.rate_1m > 0.0)
}

/// What an SLA event does to alerts: a breach raises one (once per episode), a recovery resolves it.
fn sla_to_alert(
    alerts: &AlertManager,
    logs: &LogAggregator,
    breaches: &Mutex<HashMap<String, AlertId>>,
    event: &SlaEvent,
) {
    let mut open = breaches.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    match event.kind {
        SlaEventKind::Breach => {
            let raised = alerts.create_alert(
                NewAlert::new(Severity::Critical, "SlaBreach")
                    .source("apm")
                    .label("transaction", event.transaction.clone())
                    .description(format!(
                        "{} breached its SLA: observed {:.4}, compliance {:.1}%",
                        event.transaction, event.observed, event.compliance_percent
                    )),
            );
            if let Ok(raised) = raised {
                open.insert(event.transaction.clone(), raised.id());
            }
            logs.warning(format!("SLA breached: {}", event.transaction), "suite");
        }
        SlaEventKind::Recovery => {
            if let Some(id) = open.remove(&event.transaction) {
                let _ = alerts.resolve(id);
            }
            logs.info(format!("SLA recovered: {}", event.transaction), "suite");
        }
    }
}

struct Inner {
    service: String,
    apm: Collector,
    tracer: Tracer,
    spans: InMemoryExporter,
    logs: LogAggregator,
    log_memory: MemorySink,
    alerts: AlertManager,
    chaos: ChaosEngine,
    deployer: Deployer,
    flags: Flags,
    /// The rollout the ops API promotes and aborts, when the host has handed one over.
    rollout: Mutex<Option<Rollout>>,
    shut_down: AtomicBool,
    /// When the last dashboard snapshot was taken, in nanoseconds on APM's clock.
    last_snapshot: std::sync::atomic::AtomicU64,
    /// Stats of components that keep their own (flags, watched pools and caches), published as metrics.
    publishers: Mutex<Vec<Publisher>>,
}

/// Every infra-ops component for one service, wired together (the seed's `create_infrastructure_suite`):
///
/// - log entries written inside a span carry its trace and span ids;
/// - every finished span records its duration in APM (`span_duration_seconds` by operation and outcome);
/// - an SLA breach raises a critical `SlaBreach` alert, and the recovery resolves it;
/// - chaos injections are counted (`chaos_injections_total`) and logged;
/// - flag evaluations and watched pools and caches are published as metrics;
/// - steady-state hypotheses and canary analyses read APM ([`InfraSuite::steady_state`],
///   [`InfraSuite::canary_error_rate`], [`InfraSuite::canary_latency`]);
/// - all components run on one clock.
///
/// A cheap handle: clones share the components. [`InfraSuite::shutdown`] stops them in order.
#[derive(Clone)]
pub struct InfraSuite {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for InfraSuite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InfraSuite").field("service", &self.inner.service).finish_non_exhaustive()
    }
}

impl InfraSuite {
    /// A builder for `service` (the seed's `create_infrastructure_suite(service_name)`).
    pub fn builder(service: impl Into<String>) -> InfraSuiteBuilder {
        InfraSuiteBuilder {
            service: service.into(),
            clock: quanta::Clock::new(),
            sample_rate: 1.0,
            log_capacity: 100_000,
            trace_capacity: 100_000,
            log_burst_limit: 1_000,
            alert_settings: None,
        }
    }

    /// The service name.
    pub fn service(&self) -> &str {
        &self.inner.service
    }

    /// Metrics, transactions and SLAs.
    pub fn apm(&self) -> &Collector {
        &self.inner.apm
    }

    /// The tracer.
    pub fn tracer(&self) -> &Tracer {
        &self.inner.tracer
    }

    /// Finished spans, by trace id.
    pub fn spans(&self) -> &InMemoryExporter {
        &self.inner.spans
    }

    /// The log aggregator.
    pub fn logs(&self) -> &LogAggregator {
        &self.inner.logs
    }

    /// Recent log entries, searchable.
    pub fn log_memory(&self) -> &MemorySink {
        &self.inner.log_memory
    }

    /// Alerts.
    pub fn alerts(&self) -> &AlertManager {
        &self.inner.alerts
    }

    /// Chaos experiments.
    pub fn chaos(&self) -> &ChaosEngine {
        &self.inner.chaos
    }

    /// Deployments.
    pub fn deployer(&self) -> &Deployer {
        &self.inner.deployer
    }

    /// Feature flags.
    pub fn flags(&self) -> &Flags {
        &self.inner.flags
    }

    /// Hands a canary rollout to the suite, so the ops API can report, promote and abort it (the host keeps
    /// its own handle and goes on ticking it). Replaces the one handed over before.
    pub fn track_rollout(&self, rollout: Rollout) {
        *self.inner.rollout.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(rollout);
    }

    /// The rollout handed over with [`InfraSuite::track_rollout`], if any.
    pub fn rollout(&self) -> Option<Rollout> {
        self.inner.rollout.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Whether [`InfraSuite::shutdown`] has begun (the ops server's `/readyz` then answers 503).
    pub fn is_shut_down(&self) -> bool {
        self.inner.shut_down.load(Ordering::Acquire)
    }

    /// Publishes the pool's stats as metrics labelled `pool="name"`: connections idle and in use, the
    /// maximum, waiters, and totals of acquisitions, waits, timeouts, failed creates and broken
    /// connections. The suite keeps a handle to the pool: close the pool to stop it.
    #[cfg(feature = "pool")]
    pub fn watch_pool(&self, name: impl Into<String>, pool: &impl WatchedPool) {
        let pool = pool.clone();
        self.add_publisher(publish::pool(name.into(), move || pool.pool_stats()));
    }

    /// Publishes the cache's stats as metrics labelled `cache="name"`: hits and misses, evictions, load
    /// failures, entries, weight and hit ratio.
    #[cfg(feature = "cache")]
    pub fn watch_cache<K, V, S>(&self, name: impl Into<String>, cache: &infra_cache::Cache<K, V, S>)
    where
        K: std::hash::Hash + Eq + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
        S: std::hash::BuildHasher + Send + Sync + 'static,
    {
        let cache = cache.clone();
        self.add_publisher(publish::cache(name.into(), move || cache.stats()));
    }

    fn add_publisher(&self, publisher: Publisher) {
        self.inner.publishers.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(publisher);
    }

    /// Brings the metrics of components that keep their own stats (flag evaluations, watched pools and
    /// caches) up to date. [`InfraSuite::evaluate`] and the ops server's `/metrics` call it.
    pub fn publish_metrics(&self) {
        let mut publishers = self.inner.publishers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for publisher in publishers.iter_mut() {
            publisher(&self.inner.apm);
        }
    }

    /// Records one `transaction` served by `deployment`: in APM as `transaction` and as
    /// `transaction@deployment`, so SLAs see all traffic and a canary's analysis sees its own.
    pub fn record_deployment_transaction(&self, transaction: &str, deployment: &str, elapsed: Duration, ok: bool) {
        let _ = self.inner.apm.record_transaction(transaction, elapsed, ok);
        let _ = self.inner.apm.record_transaction(&format!("{transaction}@{deployment}"), elapsed, ok);
    }

    /// The APM handles for `transaction` served by `deployment`, looked up once: recording through them
    /// costs two histogram updates, where [`InfraSuite::record_deployment_transaction`] also
    /// looks both series up by name.
    ///
    /// # Errors
    ///
    /// [`SuiteError::Metrics`] when APM refuses the names.
    pub fn deployment_transaction(
        &self,
        transaction: &str,
        deployment: &str,
    ) -> Result<DeploymentTransaction, SuiteError> {
        Ok(DeploymentTransaction {
            all: self.inner.apm.transaction(transaction)?,
            own: self.inner.apm.transaction(&format!("{transaction}@{deployment}"))?,
        })
    }

    /// A canary analysis on `deployment`'s error rate for `transaction` over the last minute (recorded with
    /// [`InfraSuite::record_deployment_transaction`]): succeeds at or under `max_error_rate` (0.01 is 1%),
    /// fails over it, inconclusive while the deployment served nothing in that minute.
    pub fn canary_error_rate(&self, transaction: &str, deployment: &str, max_error_rate: f64) -> Analysis {
        let (apm, name) = (self.inner.apm.clone(), format!("{transaction}@{deployment}"));
        Analysis::new(
            format!("{name} error rate <= {max_error_rate}"),
            move || last_minute(&apm, &name).map(|stats| stats.error_rate_1m),
            move |rate| rate <= max_error_rate,
            move |rate| rate > max_error_rate,
        )
    }

    /// A canary analysis on `deployment`'s p99 latency for `transaction` over the last minute: succeeds at
    /// or under `max_p99`, fails over it, inconclusive while the deployment served nothing in that minute.
    pub fn canary_latency(&self, transaction: &str, deployment: &str, max_p99: Duration) -> Analysis {
        let (apm, name) = (self.inner.apm.clone(), format!("{transaction}@{deployment}"));
        let max = max_p99.as_secs_f64();
        Analysis::new(
            format!("{name} p99 <= {max_p99:?}"),
            move || last_minute(&apm, &name).map(|stats| stats.latency_1m.p99),
            move |p99| p99 <= max,
            move |p99| p99 > max,
        )
    }

    /// A steady-state hypothesis for a chaos experiment, read from APM: `transaction`'s error rate over the
    /// last minute stays at or under `max_error_rate` and, when given, its p99 at or under `max_p99`.
    /// Holds while nothing was recorded in that minute. Pass it to `Experiment::steady_state`.
    pub fn steady_state(
        &self,
        transaction: &str,
        max_error_rate: f64,
        max_p99: Option<Duration>,
    ) -> impl Fn() -> bool + Send + Sync + 'static {
        let (apm, name) = (self.inner.apm.clone(), transaction.to_owned());
        move || {
            last_minute(&apm, &name).is_none_or(|stats| {
                stats.error_rate_1m <= max_error_rate
                    && max_p99.is_none_or(|max| stats.latency_1m.p99 <= max.as_secs_f64())
            })
        }
    }

    /// Judges SLAs and applies time-driven alert rules now (breaches become alerts, recoveries resolve
    /// them), publishes component stats as metrics, and keeps a snapshot for the dashboard's charts every
    /// two seconds. A host calls this on a timer; tests call it after
    /// moving the clock.
    pub fn evaluate(&self) {
        self.publish_metrics();
        self.inner.apm.evaluate_slas();
        let now = u64::try_from(self.inner.apm.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let last = self.inner.last_snapshot.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= SNAPSHOT_EVERY.as_nanos() as u64;
        if due
            && self.inner.last_snapshot.compare_exchange(last, now.max(1), Ordering::AcqRel, Ordering::Relaxed).is_ok()
        {
            self.inner.apm.record_dashboard();
        }
        self.inner.alerts.tick();
    }

    /// Calls [`InfraSuite::evaluate`] every `interval` on a thread of its own, until the returned handle is
    /// stopped or dropped, or the suite shuts down. One second suits SLAs and alert timers.
    ///
    /// # Errors
    ///
    /// [`SuiteError::Build`] for a zero interval or when the thread cannot start.
    pub fn start(&self, interval: Duration) -> Result<SuiteWorker, SuiteError> {
        if interval.is_zero() {
            return Err(SuiteError::Build { component: "the evaluator", reason: "the interval is zero".into() });
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (suite, flag) = (self.clone(), Arc::clone(&stop));
        let thread = std::thread::Builder::new()
            .name("infra-suite-evaluate".into())
            .spawn(move || {
                while !flag.load(Ordering::Acquire) && !suite.is_shut_down() {
                    suite.evaluate();
                    std::thread::park_timeout(interval);
                }
            })
            .map_err(|err| build_error("the evaluator")(&err))?;
        Ok(SuiteWorker { stop, thread: Some(thread) })
    }

    /// Stops everything in order, flushing on the way: chaos off (so nothing is injected during the
    /// flush), spans exported (their durations reach APM), SLAs judged and alerts delivered, logs flushed.
    /// Returns whether the log aggregator drained within `timeout`.
    pub fn shutdown(&self, timeout: Duration) -> bool {
        self.inner.shut_down.store(true, Ordering::Release);
        self.inner.chaos.kill_switch();
        let _ = self.inner.tracer.shutdown_with_timeout(timeout);
        self.evaluate();
        self.inner.logs.shutdown_with_timeout(timeout)
    }
}

/// A pool the suite can watch ([`InfraSuite::watch_pool`]): the async [`infra_pool::Pool`] and the
/// [`infra_pool::BlockingPool`].
#[cfg(feature = "pool")]
pub trait WatchedPool: Clone + Send + 'static {
    /// Its stats now.
    fn pool_stats(&self) -> infra_pool::PoolStats;
}

#[cfg(feature = "pool")]
impl<M: infra_pool::Manager> WatchedPool for infra_pool::Pool<M> {
    fn pool_stats(&self) -> infra_pool::PoolStats {
        self.stats()
    }
}

#[cfg(feature = "pool")]
impl<M: infra_pool::BlockingManager> WatchedPool for infra_pool::BlockingPool<M> {
    fn pool_stats(&self) -> infra_pool::PoolStats {
        self.stats()
    }
}

/// One transaction served by one deployment, as APM records it: into the transaction's series (for
/// SLAs) and into `transaction@deployment` (for the deployment's canary analysis). From
/// [`InfraSuite::deployment_transaction`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct DeploymentTransaction {
    all: infra_apm::Transaction,
    own: infra_apm::Transaction,
}

impl DeploymentTransaction {
    /// Records one transaction that took `took`.
    pub fn record(&self, took: Duration, ok: bool) {
        self.all.record(took, ok);
        self.own.record(took, ok);
    }
}

/// The thread calling [`InfraSuite::evaluate`] on a timer; from [`InfraSuite::start`]. Stops when stopped,
/// dropped, or when the suite shuts down.
#[derive(Debug)]
#[must_use = "dropping the worker stops it"]
pub struct SuiteWorker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SuiteWorker {
    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.stop.store(true, Ordering::Release);
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

impl Drop for SuiteWorker {
    fn drop(&mut self) {
        self.shut_down();
    }
}
