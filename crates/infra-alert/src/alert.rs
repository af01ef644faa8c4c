//! Alerts: what is raised, and what became of it.

use std::fmt;
use std::time::Duration;

use crate::labels::{Fingerprint, Labels};

/// How bad it is (the seed's `AlertSeverity`), least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// For the record.
    Info,
    /// Needs attention soon.
    Warning,
    /// Something failed.
    Error,
    /// Wake someone up.
    Critical,
}

impl Severity {
    /// Every severity, least to most.
    pub const ALL: [Severity; 4] = [Severity::Info, Severity::Warning, Severity::Error, Severity::Critical];

    /// The label value: `info`, `warning`, `error`, `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }
}

/// Where an alert stands (the seed's `AlertStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertStatus {
    /// Open and notifying.
    Firing,
    /// Open, and someone took it.
    Acknowledged,
    /// Over.
    Resolved,
    /// Open but silenced, inhibited or suppressed by a rule: nobody is told.
    Suppressed,
}

impl AlertStatus {
    /// The status in lower case, as APIs and labels write it: `firing`, `acknowledged`, `resolved`,
    /// `suppressed`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Acknowledged => "acknowledged",
            AlertStatus::Resolved => "resolved",
            AlertStatus::Suppressed => "suppressed",
        }
    }

    /// Whether the alert is still open (anything but resolved).
    pub fn is_open(self) -> bool {
        self != AlertStatus::Resolved
    }
}

/// An alert's id: one per occurrence (an alert that fires again after being resolved gets a new id; its
/// fingerprint stays).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AlertId(pub(crate) u64);

impl fmt::Display for AlertId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "alert-{}", self.0)
    }
}

impl std::str::FromStr for AlertId {
    type Err = String;

    /// Parses the form `Display` writes (`alert-7`) or the bare number (`7`), as an API path carries it.
    fn from_str(text: &str) -> Result<Self, String> {
        let digits = text.strip_prefix("alert-").unwrap_or(text);
        digits.parse().map(AlertId).map_err(|_| format!("{text:?} is not an alert id: expected alert-N or N"))
    }
}

/// Why an alert is suppressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Suppression {
    /// A silence matches it.
    Silenced(crate::silence::SilenceId),
    /// A firing alert inhibits it.
    Inhibited(Fingerprint),
    /// A suppression rule returned true.
    Rule,
}

/// What to raise (the seed's `create_alert` arguments).
#[derive(Debug, Clone)]
#[must_use = "an alert is raised by AlertManager::create_alert"]
pub struct NewAlert {
    pub(crate) severity: Severity,
    pub(crate) title: String,
    pub(crate) description: String,
    pub(crate) source: String,
    pub(crate) labels: Labels,
    pub(crate) annotations: Labels,
}

impl NewAlert {
    /// An alert titled `title` (its `alertname` label).
    pub fn new(severity: Severity, title: impl Into<String>) -> Self {
        NewAlert {
            severity,
            title: title.into(),
            description: String::new(),
            source: String::new(),
            labels: Labels::new(),
            annotations: Labels::new(),
        }
    }

    /// The detailed description (an annotation: it does not change the alert's identity).
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// The component that raised it (the `source` label).
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = source.into();
        self
    }

    /// A label: part of the alert's identity, used by routing, grouping, silences and inhibition (the
    /// seed's metadata; its `group_key` is a label too).
    pub fn label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(name, value);
        self
    }

    /// An annotation: information carried along, not part of the identity.
    pub fn annotation(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.annotations.insert(name, value);
        self
    }

    /// The identity labels: the given ones plus `alertname`, `severity` and `source`.
    pub(crate) fn identity(&self) -> Labels {
        let mut labels = self.labels.clone();
        labels.insert("alertname", self.title.clone());
        labels.insert("severity", self.severity.as_str());
        labels.insert("source", self.source.clone());
        labels.shrink();
        labels
    }
}

/// An alert and its history (the seed's `Alert`). Times are offsets on the manager's clock from when the
/// manager was built.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// This occurrence's id.
    pub id: AlertId,
    /// Its identity.
    pub fingerprint: Fingerprint,
    /// Its severity.
    pub severity: Severity,
    /// Its title (`alertname`).
    pub title: String,
    /// Its description.
    pub description: String,
    /// Its source.
    pub source: String,
    /// Its labels.
    pub labels: Labels,
    /// Its annotations.
    pub annotations: Labels,
    /// Where it stands.
    pub status: AlertStatus,
    /// Why it is suppressed, when it is.
    pub suppressed_by: Option<Suppression>,
    /// When it was raised.
    pub created: Duration,
    /// When it was last raised again.
    pub last_seen: Duration,
    /// When it was acknowledged.
    pub acknowledged: Option<Duration>,
    /// Who acknowledged it.
    pub acknowledged_by: Option<String>,
    /// When it was resolved.
    pub resolved: Option<Duration>,
    /// How many times it was raised (1 at creation; repeats while open add one each).
    pub occurrences: u64,
    /// The escalation level reached (0: none yet).
    pub escalation_level: u32,
}
