//! A `metrics::Recorder` (feature `metrics`): code instrumented with the `metrics` crate's macros
//! (`counter!`, `gauge!`, `histogram!`) reports into a [`Collector`].
//!
//! Names and label keys are made valid for Prometheus (every character outside `[a-zA-Z0-9_:]`
//! becomes `_`, and a leading digit gets a `_` before it), so `http.requests` becomes `http_requests`.
//! A series that cannot be registered (the name already used by another kind of instrument) gets a
//! handle that does nothing, and the refusal is counted in `infra_apm_recorder_rejected_total{metric=..}`.
//! `describe_*` texts become the families' help, and units the OpenMetrics `# UNIT` when the name ends
//! with the unit (as OpenMetrics requires).

use metrics::{Key, KeyName, Metadata, SharedString, Unit};

use crate::collector::Collector;
use crate::error::ApmError;
use crate::histogram::HistogramCell;
use crate::instruments::{CounterCell, GaugeCell};

/// Reports `metrics` macros into a collector. Install it with [`Collector::install_recorder`] or use
/// it locally with `metrics::with_local_recorder`.
#[derive(Debug, Clone)]
pub struct ApmRecorder {
    collector: Collector,
}

impl Collector {
    /// A recorder for the `metrics` crate's macros.
    pub fn recorder(&self) -> ApmRecorder {
        ApmRecorder { collector: self.clone() }
    }

    /// Installs [`recorder`](Self::recorder) as the process's global `metrics` recorder (once per
    /// process; a second call fails).
    pub fn install_recorder(&self) -> Result<(), metrics::SetRecorderError<ApmRecorder>> {
        metrics::set_global_recorder(self.recorder())
    }
}

/// A name valid for Prometheus: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn sanitize(name: &str, colons: bool) -> String {
    let mut clean: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' || (colons && c == ':') { c } else { '_' })
        .collect();
    if clean.is_empty() || clean.starts_with(|c: char| c.is_ascii_digit()) {
        clean.insert(0, '_');
    }
    clean
}

impl ApmRecorder {
    fn labels(key: &Key) -> Vec<(String, String)> {
        let mut labels: Vec<(String, String)> =
            key.labels().map(|label| (sanitize(label.key(), false), label.value().to_owned())).collect();
        // Label names the sanitising made reserved or duplicate would be refused: keep the first.
        labels.retain(|(name, _)| !name.starts_with("__") && name != "le");
        labels.sort();
        labels.dedup_by(|a, b| a.0 == b.0);
        labels
    }

    /// Registers the series `key` names through `series`; on refusal counts it and returns `None` (the
    /// caller hands out a handle that does nothing).
    fn register<T>(&self, key: &Key, series: impl FnOnce(&str, &[(&str, &str)]) -> Result<T, ApmError>) -> Option<T> {
        let name = sanitize(key.name(), true);
        let labels = Self::labels(key);
        let pairs: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let registered = series(&name, &pairs).ok();
        if registered.is_none() {
            self.rejected(&name);
        }
        registered
    }

    fn rejected(&self, name: &str) {
        if let Ok(counter) = self.collector.counter(
            "infra_apm_recorder_rejected",
            "Series from the metrics crate that could not be registered.",
            &[("metric", name)],
        ) {
            counter.inc();
        }
    }
}

impl ApmRecorder {
    /// Help text, and the unit when the name carries it (OpenMetrics's rule; otherwise it is dropped).
    fn describe(&self, key: &KeyName, unit: Option<Unit>, description: &SharedString) {
        let name = sanitize(key.as_str(), true);
        self.collector.describe(&name, description);
        if let Some(unit) = unit.and_then(base_unit) {
            let _ = self.collector.set_unit(&name, unit);
        }
    }
}

/// The OpenMetrics spelling of a `metrics` unit, for the units that have one.
fn base_unit(unit: Unit) -> Option<&'static str> {
    match unit {
        Unit::Seconds => Some("seconds"),
        Unit::Milliseconds => Some("milliseconds"),
        Unit::Microseconds => Some("microseconds"),
        Unit::Nanoseconds => Some("nanoseconds"),
        Unit::Bytes => Some("bytes"),
        Unit::Percent => Some("percent"),
        _ => None,
    }
}

impl metrics::Recorder for ApmRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(&key, unit, &description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(&key, unit, &description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(&key, unit, &description);
    }

    fn register_counter(&self, key: &Key, _metadata: &Metadata<'_>) -> metrics::Counter {
        self.register(key, |name, labels| self.collector.counter(name, "", labels))
            .map_or_else(metrics::Counter::noop, |counter| metrics::Counter::from_arc(counter.0))
    }

    fn register_gauge(&self, key: &Key, _metadata: &Metadata<'_>) -> metrics::Gauge {
        self.register(key, |name, labels| self.collector.gauge(name, "", labels))
            .map_or_else(metrics::Gauge::noop, |gauge| metrics::Gauge::from_arc(gauge.0))
    }

    fn register_histogram(&self, key: &Key, _metadata: &Metadata<'_>) -> metrics::Histogram {
        self.register(key, |name, labels| self.collector.histogram(name, "", labels))
            .map_or_else(metrics::Histogram::noop, |histogram| metrics::Histogram::from_arc(histogram.0))
    }
}

impl metrics::CounterFn for CounterCell {
    fn increment(&self, value: u64) {
        self.add(value);
    }

    fn absolute(&self, value: u64) {
        // A counter only goes up: raise it to `value` if it is below.
        let current = self.value();
        if value > current {
            self.add(value - current);
        }
    }
}

impl metrics::GaugeFn for GaugeCell {
    fn increment(&self, value: f64) {
        self.add(value);
    }

    fn decrement(&self, value: f64) {
        self.add(-value);
    }

    fn set(&self, value: f64) {
        GaugeCell::set(self, value);
    }
}

impl metrics::HistogramFn for HistogramCell {
    fn record(&self, value: f64) {
        HistogramCell::record(self, value);
    }
}
