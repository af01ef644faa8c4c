//! Alerts with Alertmanager's semantics (fingerprints bit for bit, matchers, the routing tree, silences,
//! inhibition) and the bookkeeping of an on-call tool (acknowledgement, resolution, statistics).
//!
//! [`AlertManager`] raises alerts: identical label sets are one alert (a repeat bumps its count instead of
//! notifying again), acknowledged and resolved by id, kept quiet by silences, inhibition rules and
//! suppression rules, all on an injectable clock. [`RouteTree`] decides which receivers an alert reaches,
//! exactly as Alertmanager's `route:` does.
//!
//! ```
//! use std::time::Duration;
//! use infra_alert::{AlertManager, AlertStatus, Labels, Matcher, NewAlert, Route, RouteTree, Severity, Silence};
//!
//! let alerts = AlertManager::builder("orders").auto_resolve_after(Duration::from_secs(300)).build()?;
//! let disk = NewAlert::new(Severity::Critical, "DiskFull").source("node").label("host", "db-1");
//! let id = alerts.create_alert(disk.clone())?.id();
//! assert_eq!(alerts.create_alert(disk)?.id(), id, "the same labels: a repeat");
//! assert!(alerts.acknowledge(id, "alice")?);
//! assert_eq!(alerts.get(id).unwrap().status, AlertStatus::Acknowledged);
//!
//! let now = alerts.now();
//! let quiet = Silence::new(vec![Matcher::parse("host=\"db-2\"")?], now, now + Duration::from_secs(3600), "bob", "disk swap")?;
//! alerts.add_silence(quiet);
//! let muted = alerts.create_alert(NewAlert::new(Severity::Critical, "DiskFull").source("node").label("host", "db-2"))?;
//! assert_eq!(alerts.get(muted.id()).unwrap().status, AlertStatus::Suppressed);
//!
//! let tree = RouteTree::new(
//!     Route::to("ops")
//!         .group_by(["alertname"])
//!         .route(Route::to("pager").matcher(Matcher::parse("severity=\"critical\"")?).continue_matching(true))
//!         .route(Route::to("db-team").matcher(Matcher::parse("host=~\"db-.*\"")?)),
//!     &["ops", "pager", "db-team"],
//! )?;
//! let labels = &alerts.get(id).unwrap().labels;
//! assert_eq!(tree.receivers(labels), ["pager", "db-team"]);
//! assert_eq!(labels.fingerprint(), Labels::new()
//!     .with("alertname", "DiskFull").with("severity", "critical").with("source", "node").with("host", "db-1")
//!     .fingerprint());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The guide is `docs/alert.md`.
//!
//! ## Feature flags
//!
//! - `http`: `WebhookNotifier` (Alertmanager's webhook payload, version 4) and `AlertmanagerNotifier`
//!   (pushes alerts into a real Alertmanager's `/api/v2/alerts`, resolving them through `endsAt`).

mod alert;
mod error;
mod escalation;
#[cfg(feature = "http")]
mod http;
mod journal;
mod labels;
mod manager;
mod matcher;
mod notify;
mod route;
mod silence;

pub use alert::{Alert, AlertId, AlertStatus, NewAlert, Severity, Suppression};
pub use error::{AlertError, ConfigError};
pub use escalation::{EscalateUntil, EscalationLevel, EscalationPolicy};
#[cfg(feature = "http")]
pub use http::{AlertmanagerNotifier, WebhookNotifier};
pub use labels::{Fingerprint, Labels};
pub use manager::{
    AlertManager, AlertManagerBuilder, AlertStats, AlertWorker, DEFAULT_DELIVERY_ATTEMPTS, DEFAULT_KEEP_RESOLVED,
    DEFAULT_RETRY_BACKOFF, Raised, SuppressionRule,
};
pub use matcher::{MatchType, Matcher, all_match};
pub use notify::{
    CallbackNotifier, DeadLetter, LogNotifier, MemoryNotifier, Notification, NotificationStatus, NotifiedAlert,
    Notifier,
};
pub use route::{
    DEFAULT_GROUP_INTERVAL, DEFAULT_GROUP_WAIT, DEFAULT_REPEAT_INTERVAL, GroupBy, ResolvedRoute, Route, RouteTree,
};
pub use silence::{InhibitRule, Silence, SilenceId};
