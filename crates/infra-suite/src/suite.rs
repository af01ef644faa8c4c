//! `InfraSuite`: every component built with one service name and one clock, wired together, shut down in
//! order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use infra_alert::{AlertId, AlertManager, AlertManagerBuilder, NewAlert, Severity};
use infra_apm::{Collector, SlaEvent, SlaEventKind};
use infra_chaos::ChaosEngine;
use infra_deploy::Deployer;
use infra_flags::Flags;
use infra_log::{LogAggregator, MemorySink, TraceContext};
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
        let apm = Collector::builder(service.clone()).clock(self.clock.clone()).build();
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
            .build()
            .map_err(|err| build_error("the chaos engine")(&err))?;
        let deployer = Deployer::builder(service.clone())
            .clock(self.clock.clone())
            .build()
            .map_err(|err| build_error("the deployer")(&err))?;
        let flags = Flags::new();

        // SLA breaches raise alerts; recoveries resolve them.
        let breaches: Arc<Mutex<HashMap<String, AlertId>>> = Arc::default();
        {
            let (alerts, logs, breaches) = (alerts.clone(), logs.clone(), Arc::clone(&breaches));
            apm.on_sla_event(move |event: &SlaEvent| sla_to_alert(&alerts, &logs, &breaches, event));
        }

        Ok(InfraSuite {
            inner: Arc::new(Inner { service, apm, tracer, spans, logs, log_memory, alerts, chaos, deployer, flags }),
        })
    }
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
}

/// Every infra-ops component for one service, wired together (the seed's `create_infrastructure_suite`):
///
/// - log entries written inside a span carry its trace and span ids;
/// - every finished span records its duration in APM (`span_duration_seconds` by operation and outcome);
/// - an SLA breach raises a critical `SlaBreach` alert, and the recovery resolves it;
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

    /// Judges SLAs and applies time-driven alert rules now (breaches become alerts, recoveries resolve
    /// them). A host calls this on a timer; tests call it after moving the clock.
    pub fn evaluate(&self) {
        self.inner.apm.evaluate_slas();
        self.inner.alerts.tick();
    }

    /// Stops everything in order, flushing on the way: chaos off (so nothing is injected during the
    /// flush), spans exported (their durations reach APM), SLAs judged and alerts delivered, logs flushed.
    /// Returns whether the log aggregator drained within `timeout`.
    pub fn shutdown(&self, timeout: Duration) -> bool {
        self.inner.chaos.kill_switch();
        let _ = self.inner.tracer.shutdown_with_timeout(timeout);
        self.evaluate();
        self.inner.logs.shutdown_with_timeout(timeout)
    }
}
