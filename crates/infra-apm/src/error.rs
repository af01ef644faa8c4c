//! What the collector rejects, with messages that say what would be right.

use thiserror::Error;

/// A metric definition or update the collector cannot accept.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum ApmError {
    /// The metric name breaks Prometheus's rules.
    #[error("metric name {name:?} is invalid: {reason} (names match [a-zA-Z_:][a-zA-Z0-9_:]*)")]
    InvalidMetricName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A label name breaks Prometheus's rules.
    #[error(
        "metric {metric:?}: label name {label:?} is invalid: {reason} (label names match [a-zA-Z_][a-zA-Z0-9_]* and do not start with __)"
    )]
    InvalidLabelName {
        /// The metric.
        metric: String,
        /// The label name as given.
        label: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The same label name twice in one series.
    #[error("metric {metric:?}: label {label:?} is given twice")]
    DuplicateLabel {
        /// The metric.
        metric: String,
        /// The repeated label.
        label: String,
    },
    /// The name is already registered as another kind of instrument.
    #[error("metric {name:?} is already a {existing}; it cannot also be a {requested} (use another name)")]
    KindConflict {
        /// The metric.
        name: String,
        /// The kind it was registered as.
        existing: &'static str,
        /// The kind asked for now.
        requested: &'static str,
    },
    /// NaN or an infinity where a finite number is needed.
    #[error("metric {name:?}: {value} is not a finite number")]
    NotFinite {
        /// The metric.
        name: String,
        /// The value given.
        value: f64,
    },
    /// A negative value for a histogram (they describe sizes and durations).
    #[error("histogram {name:?}: {value} is negative; histograms take sizes and durations")]
    NegativeObservation {
        /// The histogram.
        name: String,
        /// The value given.
        value: f64,
    },
    /// An objective that cannot be met or judged.
    #[error("invalid objective: {0}")]
    InvalidObjective(String),
    /// A resource reading failed (a /proc file missing or unreadable).
    #[error("reading process resources: {0}")]
    Resource(String),
    /// A unit OpenMetrics cannot expose for this name.
    #[error(
        "metric {name:?} cannot have unit {unit:?}: a unit is [a-zA-Z0-9_]+ and the name must end with _{unit} (for example request_duration_seconds with seconds)"
    )]
    InvalidUnit {
        /// The metric.
        name: String,
        /// The unit given.
        unit: String,
    },
}
