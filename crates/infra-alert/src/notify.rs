//! Notifications: what a receiver is told about a group of alerts, and the notifiers that tell it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};

use crate::labels::{Fingerprint, Labels};

/// Whether a notification (or an alert in it) is about trouble or its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotificationStatus {
    /// At least one alert fires.
    Firing,
    /// Every alert in it is resolved.
    Resolved,
}

impl NotificationStatus {
    /// `firing` or `resolved`, as Alertmanager's payloads say.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationStatus::Firing => "firing",
            NotificationStatus::Resolved => "resolved",
        }
    }
}

/// One alert as a notification carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifiedAlert {
    /// Firing or resolved.
    pub status: NotificationStatus,
    /// Its labels.
    pub labels: Labels,
    /// Its annotations.
    pub annotations: Labels,
    /// When it started, on the manager's clock.
    pub starts_at: Duration,
    /// When it was resolved, if it was.
    pub ends_at: Option<Duration>,
    /// Its fingerprint.
    pub fingerprint: Fingerprint,
}

/// A message to one receiver about one group (Alertmanager's webhook payload, as data).
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// The receiver's name.
    pub receiver: String,
    /// Firing when any alert fires.
    pub status: NotificationStatus,
    /// Alertmanager's group key (`<route key>:<group labels>`).
    pub group_key: String,
    /// The labels the group is formed by.
    pub group_labels: Labels,
    /// Labels every alert in it shares.
    pub common_labels: Labels,
    /// Annotations every alert in it shares.
    pub common_annotations: Labels,
    /// The alerts, firing first.
    pub alerts: Vec<NotifiedAlert>,
    /// When it was sent, on the manager's clock.
    pub sent_at: Duration,
    /// The wall-clock time of the manager's clock zero: offsets above plus this are wall times.
    pub epoch: SystemTime,
}

/// RFC 3339 with nanoseconds, as Alertmanager writes times.
pub(crate) fn rfc3339(at: SystemTime) -> String {
    let at = time::OffsetDateTime::from(at);
    at.format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| at.unix_timestamp().to_string())
}

fn object(labels: &Labels) -> Value {
    Value::Object(
        labels.iter().map(|(name, value)| (name.to_owned(), Value::String(value.to_owned()))).collect::<Map<_, _>>(),
    )
}

/// Alertmanager's "zero" time, written for alerts that have not ended.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

impl Notification {
    /// The fingerprints of its firing alerts, sorted.
    pub fn firing(&self) -> Vec<Fingerprint> {
        self.fingerprints(NotificationStatus::Firing)
    }

    /// The fingerprints of its resolved alerts, sorted.
    pub fn resolved(&self) -> Vec<Fingerprint> {
        self.fingerprints(NotificationStatus::Resolved)
    }

    /// Alertmanager's webhook payload, version 4: `version`, `groupKey`, `truncatedAlerts`, `status`,
    /// `receiver`, `groupLabels`, `commonLabels`, `commonAnnotations`, `externalURL`, and `alerts` each with
    /// `status`, `labels`, `annotations`, `startsAt`, `endsAt`, `generatorURL` and `fingerprint`.
    pub fn webhook_payload(&self, external_url: &str) -> Value {
        let alerts: Vec<Value> = self
            .alerts
            .iter()
            .map(|alert| {
                json!({
                    "status": alert.status.as_str(),
                    "labels": object(&alert.labels),
                    "annotations": object(&alert.annotations),
                    "startsAt": rfc3339(self.epoch + alert.starts_at),
                    "endsAt": alert.ends_at.map_or_else(|| ZERO_TIME.to_owned(), |ends| rfc3339(self.epoch + ends)),
                    "generatorURL": external_url,
                    "fingerprint": alert.fingerprint.to_string(),
                })
            })
            .collect();
        json!({
            "version": "4",
            "groupKey": self.group_key,
            "truncatedAlerts": 0,
            "status": self.status.as_str(),
            "receiver": self.receiver,
            "groupLabels": object(&self.group_labels),
            "commonLabels": object(&self.common_labels),
            "commonAnnotations": object(&self.common_annotations),
            "externalURL": external_url,
            "alerts": alerts,
        })
    }

    fn fingerprints(&self, status: NotificationStatus) -> Vec<Fingerprint> {
        let mut found: Vec<Fingerprint> =
            self.alerts.iter().filter(|alert| alert.status == status).map(|alert| alert.fingerprint).collect();
        found.sort();
        found
    }
}

/// Delivers notifications to one destination.
///
/// Called on the thread driving the manager (its worker, or whoever calls `tick`), never under the
/// manager's lock. An error is retried with backoff; a panic counts as an error.
pub trait Notifier: Send + Sync {
    /// Delivers one notification.
    ///
    /// # Errors
    ///
    /// What went wrong, for the dead-letter list.
    fn notify(&self, notification: &Notification) -> Result<(), String>;
}

/// A notifier that calls a closure (the seed's notification handlers).
pub struct CallbackNotifier<F>(pub F);

impl<F> std::fmt::Debug for CallbackNotifier<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallbackNotifier")
    }
}

impl<F: Fn(&Notification) -> Result<(), String> + Send + Sync> Notifier for CallbackNotifier<F> {
    fn notify(&self, notification: &Notification) -> Result<(), String> {
        (self.0)(notification)
    }
}

/// A notifier that keeps what it is sent: the test double for code that raises alerts.
#[derive(Debug, Clone, Default)]
pub struct MemoryNotifier {
    received: Arc<Mutex<Vec<Notification>>>,
}

impl MemoryNotifier {
    /// An empty one.
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything received so far, in order.
    pub fn received(&self) -> Vec<Notification> {
        self.received.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Forgets what was received.
    pub fn clear(&self) {
        self.received.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
    }
}

impl Notifier for MemoryNotifier {
    fn notify(&self, notification: &Notification) -> Result<(), String> {
        self.received.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(notification.clone());
        Ok(())
    }
}

/// A notifier that writes one line per notification to a writer (standard error by default): status,
/// receiver, group key, and each alert's status, fingerprint and labels.
pub struct LogNotifier {
    out: Mutex<Box<dyn std::io::Write + Send>>,
}

impl std::fmt::Debug for LogNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogNotifier")
    }
}

impl Default for LogNotifier {
    fn default() -> Self {
        Self::to(std::io::stderr())
    }
}

impl LogNotifier {
    /// A notifier writing to standard error.
    pub fn new() -> Self {
        Self::default()
    }

    /// A notifier writing to `out` (a file, a socket, a buffer).
    pub fn to(out: impl std::io::Write + Send + 'static) -> Self {
        LogNotifier { out: Mutex::new(Box::new(out)) }
    }
}

impl Notifier for LogNotifier {
    fn notify(&self, notification: &Notification) -> Result<(), String> {
        let alerts: Vec<String> = notification
            .alerts
            .iter()
            .map(|alert| format!("{} {} {}", alert.status.as_str(), alert.fingerprint, alert.labels))
            .collect();
        let line = format!(
            "alert {} receiver={} group={} [{}]\n",
            notification.status.as_str(),
            notification.receiver,
            notification.group_key,
            alerts.join("; ")
        );
        let mut out = self.out.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        out.write_all(line.as_bytes()).and_then(|()| out.flush()).map_err(|err| err.to_string())
    }
}

/// A notification that could not be delivered after every retry.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// What was to be sent.
    pub notification: Notification,
    /// The last error.
    pub error: String,
    /// Attempts made.
    pub attempts: u32,
}
