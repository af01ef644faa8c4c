//! The alert manager: deduplication, acknowledgement, resolution, silences, inhibition, statistics.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use quanta::{Clock, Instant};

use crate::alert::{Alert, AlertId, AlertStatus, NewAlert, Severity, Suppression};
use crate::error::{AlertError, ConfigError};
use crate::escalation::{EscalateUntil, Escalation, EscalationPolicy};
use crate::journal::Journal;
use crate::labels::{Fingerprint, Labels};
use crate::matcher::Matcher;
use crate::notify::{DeadLetter, Notification, NotificationStatus, NotifiedAlert, Notifier};
use crate::route::RouteTree;
use crate::silence::{InhibitRule, Silence, SilenceId};
use serde_json::{Value, json};

/// Default number of attempts to deliver a notification before it goes to the dead-letter list.
pub const DEFAULT_DELIVERY_ATTEMPTS: u32 = 5;
/// Default pause before the first retry; it doubles with each attempt.
pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_secs(1);

/// How many resolved alerts are kept for lookups by default (their counts live on in the statistics).
pub const DEFAULT_KEEP_RESOLVED: usize = 10_000;

/// A rule that suppresses the alerts it returns `true` for (the seed's `add_suppression_rule`).
pub type SuppressionRule = Arc<dyn Fn(&Alert) -> bool + Send + Sync>;

/// What [`AlertManager::create_alert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Raised {
    /// A new alert (or a new occurrence of one resolved before).
    New(AlertId),
    /// The same labels as an open alert: its count and last-seen time moved, nobody is notified again.
    Repeat(AlertId),
}

impl Raised {
    /// The alert's id either way.
    pub fn id(self) -> AlertId {
        match self {
            Raised::New(id) | Raised::Repeat(id) => id,
        }
    }
}

/// Counts and means over the manager's life (the seed's `get_alert_statistics`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AlertStats {
    /// Open alerts (firing, acknowledged or suppressed) per severity, least severe first.
    pub open_by_severity: Vec<(Severity, usize)>,
    /// Alerts firing now.
    pub firing: usize,
    /// Alerts acknowledged and not resolved.
    pub acknowledged: usize,
    /// Alerts suppressed now.
    pub suppressed: usize,
    /// Alerts resolved, in all.
    pub resolved: u64,
    /// Alerts raised (new occurrences), in all.
    pub created: u64,
    /// Repeats folded into open alerts, in all.
    pub repeats: u64,
    /// Mean time from raising to acknowledgement, over acknowledged alerts.
    pub mean_time_to_acknowledge: Option<Duration>,
    /// Mean time from raising to resolution, over resolved alerts.
    pub mean_time_to_resolve: Option<Duration>,
    /// Alerts that were silenced when raised or later, in all.
    pub silenced: u64,
    /// Alerts that were inhibited when raised or later, in all.
    pub inhibited: u64,
    /// Alerts a suppression rule suppressed, in all.
    pub suppressed_by_rule: u64,
    /// Alerts resolved by the quiet-time rule, in all.
    pub auto_resolved: u64,
    /// Notifications delivered, in all (one per notifier).
    pub notifications_sent: u64,
    /// Delivery attempts that failed, in all (retries included).
    pub notifications_failed: u64,
    /// Notifications given up on, now in the dead-letter list.
    pub dead_letters: u64,
    /// Escalations to a next level (or a repeat of a policy), in all.
    pub escalations: u64,
    /// Acknowledged alerts re-opened by an acknowledgement timeout, in all.
    pub reopened: u64,
    /// Journal writes that failed (the change took effect but will not survive a restart).
    pub journal_errors: u64,
    /// Torn records dropped from the journal's end at start (a crash mid-write).
    pub journal_dropped: u64,
}

#[derive(Default)]
struct State {
    alerts: BTreeMap<AlertId, Alert>,
    open: HashMap<Fingerprint, AlertId>,
    resolved_order: VecDeque<AlertId>,
    silences: BTreeMap<SilenceId, Silence>,
    inhibit_rules: Vec<InhibitRule>,
    suppression_rules: Vec<SuppressionRule>,
    next_alert: u64,
    next_silence: u64,
    counts: Counts,
    groups: HashMap<(usize, String), Group>,
    deliveries: Vec<Delivery>,
    dead_letters: Vec<DeadLetter>,
    jitter: u64,
    policies: Vec<EscalationPolicy>,
    escalations: HashMap<AlertId, Escalation>,
    /// Alerts whose escalation ran its course (or that no policy takes), so it is not started again.
    escalated: std::collections::HashSet<AlertId>,
    journal: Option<Journal>,
    /// The wall-clock time of the manager's clock zero, in nanoseconds since the Unix epoch: journal
    /// records carry wall times, so they mean the same after a restart.
    wall_zero: u128,
    journal_errors: u64,
    journal_dropped: u64,
}

/// Alerts grouped on one route by the values of its `group_by` labels (Alertmanager's aggregation group).
struct Group {
    key: String,
    labels: Labels,
    members: BTreeMap<Fingerprint, AlertId>,
    next_flush: Duration,
    last: Option<Sent>,
}

/// What a group's last notification said, for deciding whether the next one is needed.
struct Sent {
    firing: BTreeSet<Fingerprint>,
    resolved: BTreeSet<Fingerprint>,
    at: Duration,
}

/// A notification on its way to one notifier.
struct Delivery {
    notifier: Arc<dyn Notifier>,
    notification: Arc<Notification>,
    attempts: u32,
    due: Duration,
}

#[derive(Default)]
struct Counts {
    created: u64,
    repeats: u64,
    resolved: u64,
    acknowledged: u64,
    time_to_acknowledge: Duration,
    time_to_resolve: Duration,
    silenced: u64,
    inhibited: u64,
    ruled: u64,
    auto_resolved: u64,
    sent: u64,
    failed: u64,
    escalations: u64,
    reopened: u64,
}

struct Inner {
    service: String,
    clock: Clock,
    epoch: Instant,
    /// Added to the clock's reading: after a replay, how long before this start the journal began, so
    /// times from before a restart stay positive offsets.
    base: Duration,
    wall_epoch: std::time::SystemTime,
    auto_resolve_after: Option<Duration>,
    keep_resolved: usize,
    routes: Option<RouteTree>,
    receivers: BTreeMap<String, Vec<Arc<dyn Notifier>>>,
    delivery_attempts: u32,
    retry_backoff: Duration,
    severity_handlers: BTreeMap<Severity, Vec<Arc<dyn Notifier>>>,
    state: Mutex<State>,
}

/// Raises, deduplicates, acknowledges and resolves alerts, and keeps them quiet when a silence, an
/// inhibition rule or a suppression rule says so (the seed's `AlertManager`).
///
/// A cheap handle: clones share one manager.
#[derive(Clone)]
pub struct AlertManager {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AlertManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state();
        f.debug_struct("AlertManager")
            .field("service", &self.inner.service)
            .field("alerts", &state.alerts.len())
            .field("open", &state.open.len())
            .finish_non_exhaustive()
    }
}

/// Configures an [`AlertManager`]; from [`AlertManager::builder`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct AlertManagerBuilder {
    service: String,
    clock: Clock,
    auto_resolve_after: Option<Duration>,
    keep_resolved: usize,
    inhibit_rules: Vec<InhibitRule>,
    suppression_rules: Vec<SuppressionRule>,
    routes: Option<RouteTree>,
    receivers: BTreeMap<String, Vec<Arc<dyn Notifier>>>,
    delivery_attempts: u32,
    retry_backoff: Duration,
    policies: Vec<EscalationPolicy>,
    severity_handlers: BTreeMap<Severity, Vec<Arc<dyn Notifier>>>,
    journal: Option<(std::path::PathBuf, bool)>,
}

impl std::fmt::Debug for AlertManagerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertManagerBuilder")
            .field("service", &self.service)
            .field("auto_resolve_after", &self.auto_resolve_after)
            .field("inhibit_rules", &self.inhibit_rules.len())
            .finish_non_exhaustive()
    }
}

impl AlertManagerBuilder {
    /// The clock for every timestamp and timer (default: quanta's; tests pass `quanta::Clock::mock()`).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Resolves an open alert nobody raised again for this long (default: never).
    pub fn auto_resolve_after(mut self, quiet: Duration) -> Self {
        self.auto_resolve_after = Some(quiet);
        self
    }

    /// How many resolved alerts stay available to [`AlertManager::get`] (default 10,000).
    pub fn keep_resolved(mut self, count: usize) -> Self {
        self.keep_resolved = count;
        self
    }

    /// Adds an inhibition rule.
    pub fn inhibit(mut self, rule: InhibitRule) -> Self {
        self.inhibit_rules.push(rule);
        self
    }

    /// Adds a suppression rule (the seed's `add_suppression_rule`).
    pub fn suppress_when(mut self, rule: impl Fn(&Alert) -> bool + Send + Sync + 'static) -> Self {
        self.suppression_rules.push(Arc::new(rule));
        self
    }

    /// Routes alerts through `tree`: each reaches its routes' receivers, grouped and timed as
    /// Alertmanager does. Without a tree, alerts are kept but nobody is notified.
    pub fn routes(mut self, tree: RouteTree) -> Self {
        self.routes = Some(tree);
        self
    }

    /// Adds a notifier to the receiver `name` (a receiver may have several).
    pub fn receiver(mut self, name: impl Into<String>, notifier: impl Notifier + 'static) -> Self {
        self.receivers.entry(name.into()).or_default().push(Arc::new(notifier));
        self
    }

    /// Adds an escalation policy (the seed's `add_escalation_policy`); an alert uses the first policy whose
    /// matchers it satisfies.
    pub fn escalation_policy(mut self, policy: EscalationPolicy) -> Self {
        self.policies.push(policy);
        self
    }

    /// Notifies `notifier` of every new alert of `severity` as it fires (the seed's
    /// `add_notification_handler`), besides any routing.
    pub fn on_severity(mut self, severity: Severity, notifier: impl Notifier + 'static) -> Self {
        self.severity_handlers.entry(severity).or_default().push(Arc::new(notifier));
        self
    }

    /// Keeps a journal at `path`: open alerts, acknowledgements, silences and escalation state survive a
    /// restart (replayed at build; open alerts are notified again once, after their group's wait). With
    /// `sync`, every record is synced to disk before the call that made it returns.
    pub fn journal(mut self, path: impl Into<std::path::PathBuf>, sync: bool) -> Self {
        self.journal = Some((path.into(), sync));
        self
    }

    /// Attempts per notification and notifier before it goes to the dead-letter list (default 5), and
    /// the pause before the first retry, doubling each time, with up to 10% jitter (default 1 s).
    pub fn delivery(mut self, attempts: u32, backoff: Duration) -> Self {
        self.delivery_attempts = attempts;
        self.retry_backoff = backoff;
        self
    }

    /// Builds the manager.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Zero`] for a zero auto-resolve time, delivery attempts or backoff;
    /// [`ConfigError::UnknownReceiver`] for a receiver the routes name but no notifier serves.
    pub fn build(self) -> Result<AlertManager, ConfigError> {
        if self.auto_resolve_after == Some(Duration::ZERO) {
            return Err(ConfigError::Zero("auto_resolve_after"));
        }
        if self.delivery_attempts == 0 {
            return Err(ConfigError::Zero("delivery attempts"));
        }
        if self.retry_backoff.is_zero() {
            return Err(ConfigError::Zero("retry backoff"));
        }
        if let Some(tree) = &self.routes
            && let Some(missing) = tree.receiver_names().into_iter().find(|name| !self.receivers.contains_key(*name))
        {
            return Err(ConfigError::UnknownReceiver(missing.to_owned()));
        }
        for policy in &self.policies {
            policy.validate(&|name| self.receivers.contains_key(name))?;
        }
        let built_wall = std::time::SystemTime::now();
        let (journal, records, torn) = match &self.journal {
            Some((path, sync)) => {
                let (journal, records, torn) = Journal::open(path, *sync)
                    .map_err(|err| ConfigError::Journal(format!("{}: {err}", path.display())))?;
                (Some(journal), records, torn)
            }
            None => (None, Vec::new(), false),
        };
        // Times from before this start must stay positive offsets: the clock's zero moves back to the
        // journal's earliest time.
        let built_nanos = built_wall.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let earliest = records.iter().filter_map(earliest_time).min().unwrap_or(built_nanos).min(built_nanos);
        let base = Duration::from_nanos(u64::try_from(built_nanos - earliest).unwrap_or(u64::MAX));
        let state = State {
            inhibit_rules: self.inhibit_rules,
            suppression_rules: self.suppression_rules,
            jitter: 0x853C_49E6_748F_EA9B,
            policies: self.policies,
            wall_zero: earliest,
            journal_dropped: u64::from(torn),
            ..State::default()
        };
        let manager = AlertManager {
            inner: Arc::new(Inner {
                service: self.service,
                epoch: self.clock.now(),
                base,
                wall_epoch: built_wall - base,
                clock: self.clock,
                auto_resolve_after: self.auto_resolve_after,
                keep_resolved: self.keep_resolved,
                routes: self.routes,
                receivers: self.receivers,
                delivery_attempts: self.delivery_attempts,
                retry_backoff: self.retry_backoff,
                severity_handlers: self.severity_handlers,
                state: Mutex::new(state),
            }),
        };
        manager.replay(&records, journal);
        Ok(manager)
    }
}

impl AlertManager {
    /// A builder for the alerts of `service`.
    pub fn builder(service: impl Into<String>) -> AlertManagerBuilder {
        AlertManagerBuilder {
            service: service.into(),
            clock: Clock::new(),
            auto_resolve_after: None,
            keep_resolved: DEFAULT_KEEP_RESOLVED,
            inhibit_rules: Vec::new(),
            suppression_rules: Vec::new(),
            routes: None,
            receivers: BTreeMap::new(),
            delivery_attempts: DEFAULT_DELIVERY_ATTEMPTS,
            retry_backoff: DEFAULT_RETRY_BACKOFF,
            policies: Vec::new(),
            severity_handlers: BTreeMap::new(),
            journal: None,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The time on the manager's clock, as an offset from when it was built.
    pub fn now(&self) -> Duration {
        self.inner.base + self.inner.clock.now().saturating_duration_since(self.inner.epoch)
    }

    /// The service this manager raises alerts for.
    pub fn service(&self) -> &str {
        &self.inner.service
    }

    /// Raises an alert (the seed's `create_alert`). Its identity is its labels (`alertname`, `severity`,
    /// `source` and the given ones): raising the same labels while an alert is open is a repeat.
    ///
    /// # Errors
    ///
    /// [`AlertError::Invalid`] for an empty title.
    pub fn create_alert(&self, new: NewAlert) -> Result<Raised, AlertError> {
        if new.title.trim().is_empty() {
            return Err(AlertError::Invalid("an alert needs a title".into()));
        }
        let labels = new.identity();
        let fingerprint = labels.fingerprint();
        let now = self.now();
        let mut state = self.state();
        if let Some(&id) = state.open.get(&fingerprint) {
            state.counts.repeats += 1;
            if let Some(alert) = state.alerts.get_mut(&id) {
                alert.occurrences += 1;
                alert.last_seen = now;
            }
            let record = json!({ "type": "repeat", "id": id.0, "at": state.wall(now) });
            state.record(record);
            return Ok(Raised::Repeat(id));
        }
        state.next_alert += 1;
        let id = AlertId(state.next_alert);
        let mut alert = Alert {
            id,
            fingerprint,
            severity: new.severity,
            title: new.title,
            description: new.description,
            source: new.source,
            labels,
            annotations: new.annotations,
            status: AlertStatus::Firing,
            suppressed_by: None,
            created: now,
            last_seen: now,
            acknowledged: None,
            acknowledged_by: None,
            resolved: None,
            occurrences: 1,
            escalation_level: 0,
        };
        if let Some(reason) = state.suppression(&alert, now) {
            state.count_suppression(&reason);
            alert.status = AlertStatus::Suppressed;
            alert.suppressed_by = Some(reason);
        }
        state.counts.created += 1;
        state.open.insert(fingerprint, id);
        if let Some(tree) = &self.inner.routes {
            for route in tree.matches(&alert.labels) {
                let key = route.group_key(&alert.labels);
                let group = state.groups.entry((route.index, key.clone())).or_insert_with(|| Group {
                    key,
                    labels: route.group_labels(&alert.labels),
                    members: BTreeMap::new(),
                    next_flush: now + route.group_wait,
                    last: None,
                });
                group.members.insert(fingerprint, id);
            }
        }
        let firing = alert.status == AlertStatus::Firing;
        if firing {
            let handlers = self.inner.severity_handlers.get(&alert.severity).into_iter().flatten();
            let receiver = format!("severity:{}", alert.severity.as_str());
            let mut notification = single(&alert, receiver.clone(), now, self.inner.wall_epoch);
            notification.receiver = receiver;
            let notification = Arc::new(notification);
            for handler in handlers {
                state.deliveries.push(Delivery {
                    notifier: Arc::clone(handler),
                    notification: Arc::clone(&notification),
                    attempts: 0,
                    due: now,
                });
            }
        }
        let record = state.alert_record(&alert);
        state.record(record);
        state.alerts.insert(id, alert);
        if firing {
            self.start_escalation(&mut state, id, now);
        }
        Ok(Raised::New(id))
    }

    /// Acknowledges an open alert (the seed's `acknowledge_alert`); `false` when it was acknowledged or
    /// resolved already.
    ///
    /// # Errors
    ///
    /// [`AlertError::UnknownAlert`].
    pub fn acknowledge(&self, id: AlertId, by: &str) -> Result<bool, AlertError> {
        let now = self.now();
        let mut state = self.state();
        let alert = state.alerts.get_mut(&id).ok_or(AlertError::UnknownAlert(id))?;
        if matches!(alert.status, AlertStatus::Acknowledged | AlertStatus::Resolved) {
            return Ok(false);
        }
        alert.status = AlertStatus::Acknowledged;
        alert.acknowledged = Some(now);
        alert.acknowledged_by = Some(by.to_owned());
        let waited = now.saturating_sub(alert.created);
        state.counts.acknowledged += 1;
        state.counts.time_to_acknowledge += waited;
        let record = json!({ "type": "ack", "id": id.0, "by": by, "at": state.wall(now) });
        state.record(record);
        Ok(true)
    }

    /// Resolves an open alert (the seed's `resolve_alert`); `false` when it was resolved already.
    ///
    /// # Errors
    ///
    /// [`AlertError::UnknownAlert`].
    pub fn resolve(&self, id: AlertId) -> Result<bool, AlertError> {
        let now = self.now();
        let mut state = self.state();
        if !state.alerts.contains_key(&id) {
            return Err(AlertError::UnknownAlert(id));
        }
        Ok(state.resolve(id, now, self.inner.keep_resolved))
    }

    /// One alert, open or recently resolved.
    pub fn get(&self, id: AlertId) -> Option<Alert> {
        self.state().alerts.get(&id).cloned()
    }

    /// Open alerts, most severe first then oldest first, optionally of one severity (the seed's
    /// `get_open_alerts`).
    pub fn open_alerts(&self, severity: Option<Severity>) -> Vec<Alert> {
        let state = self.state();
        let mut open: Vec<Alert> = state
            .open
            .values()
            .filter_map(|id| state.alerts.get(id))
            .filter(|alert| severity.is_none_or(|severity| alert.severity == severity))
            .cloned()
            .collect();
        open.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.id.cmp(&b.id)));
        open
    }

    /// Adds a silence; it applies to open alerts at once and to new ones while active.
    pub fn add_silence(&self, silence: Silence) -> SilenceId {
        let now = self.now();
        let mut state = self.state();
        state.next_silence += 1;
        let id = SilenceId(state.next_silence);
        let record = state.silence_record(id, &silence);
        state.record(record);
        state.silences.insert(id, silence);
        state.reevaluate(now);
        id
    }

    /// Ends a silence now (alerts it muted fire again unless something else mutes them).
    ///
    /// # Errors
    ///
    /// [`AlertError::UnknownSilence`].
    pub fn expire_silence(&self, id: SilenceId) -> Result<(), AlertError> {
        let now = self.now();
        let mut state = self.state();
        let silence = state.silences.get_mut(&id).ok_or(AlertError::UnknownSilence(id))?;
        silence.ends = silence.ends.min(now);
        let ends = silence.ends;
        let record = json!({ "type": "silence_ends", "id": id.0, "ends": state.wall(ends) });
        state.record(record);
        state.reevaluate(now);
        Ok(())
    }

    /// The silences, with their ids.
    pub fn silences(&self) -> Vec<(SilenceId, Silence)> {
        self.state().silences.iter().map(|(id, silence)| (*id, silence.clone())).collect()
    }

    /// Adds an inhibition rule at run time.
    pub fn add_inhibit_rule(&self, rule: InhibitRule) {
        let now = self.now();
        let mut state = self.state();
        state.inhibit_rules.push(rule);
        state.reevaluate(now);
    }

    /// Adds a suppression rule at run time (the seed's `add_suppression_rule`); it applies to alerts
    /// raised from now on.
    pub fn add_suppression_rule(&self, rule: impl Fn(&Alert) -> bool + Send + Sync + 'static) {
        self.state().suppression_rules.push(Arc::new(rule));
    }

    /// Runs what time drives now: alerts quiet for the auto-resolve time are resolved, silences that
    /// started or ended and inhibitions that lapsed are applied. The worker does this on its own;
    /// tests on a mock clock call it by hand.
    pub fn tick(&self) {
        let now = self.now();
        let due = {
            let mut state = self.state();
            self.apply_time(&mut state, now);
            self.escalate(&mut state, now);
            self.flush_groups(&mut state, now);
            let (due, waiting): (Vec<Delivery>, Vec<Delivery>) =
                std::mem::take(&mut state.deliveries).into_iter().partition(|delivery| delivery.due <= now);
            state.deliveries = waiting;
            due
        };
        self.deliver(due, now);
    }

    fn apply_time(&self, state: &mut State, now: Duration) {
        if let Some(quiet) = self.inner.auto_resolve_after {
            let stale: Vec<AlertId> = state
                .open
                .values()
                .copied()
                .filter(|id| state.alerts.get(id).is_some_and(|alert| now.saturating_sub(alert.last_seen) >= quiet))
                .collect();
            for id in stale {
                if state.resolve(id, now, self.inner.keep_resolved) {
                    state.counts.auto_resolved += 1;
                }
            }
        }
        state.reevaluate(now);
    }

    /// Flushes every group whose timer is due, each at its scheduled time (so a late tick notifies as
    /// a punctual one would have), and queues the notifications.
    fn flush_groups(&self, state: &mut State, now: Duration) {
        let Some(tree) = &self.inner.routes else { return };
        loop {
            let Some(key) = state
                .groups
                .iter()
                .filter(|(_, group)| group.next_flush <= now)
                .min_by_key(|(_, group)| group.next_flush)
                .map(|(key, _)| key.clone())
            else {
                return;
            };
            let Some(route) = tree.route(key.0) else { return };
            let Some(mut group) = state.groups.remove(&key) else { return };
            let at = group.next_flush;
            if let Some(notification) = self.flush(state, &mut group, route, at) {
                let notification = Arc::new(notification);
                for notifier in self.inner.receivers.get(&route.receiver).into_iter().flatten() {
                    state.deliveries.push(Delivery {
                        notifier: Arc::clone(notifier),
                        notification: Arc::clone(&notification),
                        attempts: 0,
                        due: at,
                    });
                }
            }
            if !group.members.is_empty() {
                group.next_flush = at + route.group_interval;
                state.groups.insert(key, group);
            }
        }
    }

    /// One group flush: Alertmanager's decision whether to notify, then resolved alerts leave the group.
    fn flush(
        &self,
        state: &mut State,
        group: &mut Group,
        route: &crate::route::ResolvedRoute,
        at: Duration,
    ) -> Option<Notification> {
        let mut firing = Vec::new();
        let mut resolved = Vec::new();
        for (fingerprint, id) in &group.members {
            let Some(alert) = state.alerts.get(id) else {
                continue;
            };
            match alert.status {
                AlertStatus::Firing | AlertStatus::Acknowledged => firing.push((*fingerprint, alert)),
                AlertStatus::Resolved => resolved.push((*fingerprint, alert)),
                AlertStatus::Suppressed => {}
            }
        }
        let firing_set: BTreeSet<Fingerprint> = firing.iter().map(|(fp, _)| *fp).collect();
        let resolved_set: BTreeSet<Fingerprint> = resolved.iter().map(|(fp, _)| *fp).collect();
        let notify = match &group.last {
            // Never notified: only if something fires.
            None => !firing_set.is_empty(),
            Some(last) if !firing_set.is_subset(&last.firing) => true,
            // All resolved: tell the receiver, if it was told about something firing.
            Some(last) if firing_set.is_empty() => !last.firing.is_empty(),
            Some(last) if !resolved_set.is_subset(&last.resolved) => true,
            // Nothing changed: only once the repeat interval has passed.
            Some(last) => last.at + route.repeat_interval <= at,
        };
        let notification = notify.then(|| {
            let to_notified = |status: NotificationStatus, alert: &Alert| NotifiedAlert {
                status,
                labels: alert.labels.clone(),
                annotations: alert.annotations.clone(),
                starts_at: alert.created,
                ends_at: alert.resolved,
                fingerprint: alert.fingerprint,
            };
            let alerts: Vec<NotifiedAlert> = firing
                .iter()
                .map(|(_, alert)| to_notified(NotificationStatus::Firing, alert))
                .chain(resolved.iter().map(|(_, alert)| to_notified(NotificationStatus::Resolved, alert)))
                .collect();
            let common = |pick: fn(&NotifiedAlert) -> &Labels| -> Labels {
                let mut common = alerts.first().map(|alert| pick(alert).clone()).unwrap_or_default();
                for alert in &alerts[1.min(alerts.len())..] {
                    common = common.iter().filter(|(name, value)| pick(alert).get(name) == *value).collect();
                }
                common
            };
            Notification {
                receiver: route.receiver.clone(),
                status: if firing.is_empty() { NotificationStatus::Resolved } else { NotificationStatus::Firing },
                group_key: group.key.clone(),
                group_labels: group.labels.clone(),
                common_labels: common(|alert| &alert.labels),
                common_annotations: common(|alert| &alert.annotations),
                alerts,
                sent_at: at,
                epoch: self.inner.wall_epoch,
            }
        });
        if notify {
            group.last = Some(Sent { firing: firing_set, resolved: resolved_set.clone(), at });
        }
        // Resolved alerts leave the group once flushed; so do alerts the manager forgot.
        group.members.retain(|fingerprint, id| !resolved_set.contains(fingerprint) && state.alerts.contains_key(id));
        notification
    }

    /// Delivers notifications outside the lock; failures are retried with backoff, then dead-lettered.
    fn deliver(&self, due: Vec<Delivery>, now: Duration) {
        if due.is_empty() {
            return;
        }
        let mut outcomes = Vec::with_capacity(due.len());
        for delivery in due {
            let notifier = Arc::clone(&delivery.notifier);
            let result =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| notifier.notify(&delivery.notification)))
                    .unwrap_or_else(|_| Err("the notifier panicked".to_owned()));
            outcomes.push((delivery, result));
        }
        let mut state = self.state();
        for (mut delivery, result) in outcomes {
            delivery.attempts += 1;
            match result {
                Ok(()) => state.counts.sent += 1,
                Err(error) => {
                    state.counts.failed += 1;
                    if delivery.attempts >= self.inner.delivery_attempts {
                        state.dead_letters.push(DeadLetter {
                            notification: (*delivery.notification).clone(),
                            error,
                            attempts: delivery.attempts,
                        });
                    } else {
                        let backoff = self.inner.retry_backoff.saturating_mul(1 << (delivery.attempts - 1).min(16));
                        state.jitter = state.jitter.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                        let jitter = backoff.mul_f64(((state.jitter >> 33) % 1000) as f64 / 10_000.0);
                        delivery.due = now + backoff + jitter;
                        state.deliveries.push(delivery);
                    }
                }
            }
        }
    }

    /// Starts the escalation of a firing alert under the first policy that takes it: level 1 is notified
    /// at `at`.
    fn start_escalation(&self, state: &mut State, id: AlertId, at: Duration) {
        if state.escalations.contains_key(&id) || state.escalated.contains(&id) {
            return;
        }
        let Some(alert) = state.alerts.get(&id) else { return };
        let policy =
            state.policies.iter().position(|policy| crate::matcher::all_match(&policy.matchers, &alert.labels));
        let Some(policy) = policy else {
            state.escalated.insert(id);
            return;
        };
        let escalation = Escalation {
            policy,
            level: 0,
            next: at + state.policies[policy].levels[0].delay,
            repeats_left: state.policies[policy].repeat,
        };
        self.notify_level(state, id, &escalation, at);
        let record = state.escalation_record(id, &escalation);
        state.record(record);
        state.escalations.insert(id, escalation);
    }

    /// Notifies the receivers of an escalation's current level about the alert.
    fn notify_level(&self, state: &mut State, id: AlertId, escalation: &Escalation, at: Duration) {
        let Some(alert) = state.alerts.get_mut(&id) else { return };
        alert.escalation_level = escalation.level as u32 + 1;
        let policy = &state.policies[escalation.policy];
        let key = format!("escalation/{}/{}", policy.name(), escalation.level + 1);
        let notification = Arc::new(single(alert, key, at, self.inner.wall_epoch));
        for receiver in &policy.levels[escalation.level].receivers {
            for notifier in self.inner.receivers.get(receiver).into_iter().flatten() {
                let mut addressed = (*notification).clone();
                addressed.receiver.clone_from(receiver);
                state.deliveries.push(Delivery {
                    notifier: Arc::clone(notifier),
                    notification: Arc::new(addressed),
                    attempts: 0,
                    due: at,
                });
            }
        }
    }

    /// Moves escalations whose time came, each at its scheduled time; re-opens acknowledged alerts whose
    /// acknowledgement timed out; starts escalations of alerts that began firing (a silence ended, say).
    fn escalate(&self, state: &mut State, now: Duration) {
        // Acknowledgement timeouts first: a re-opened alert escalates again from level 1.
        let reopen: Vec<(AlertId, Duration)> = state
            .open
            .values()
            .filter_map(|id| state.alerts.get(id))
            .filter(|alert| alert.status == AlertStatus::Acknowledged)
            .filter_map(|alert| {
                let policy = state.policies.iter().find(|p| crate::matcher::all_match(&p.matchers, &alert.labels))?;
                let due = alert.acknowledged? + policy.acknowledgement_timeout?;
                (due <= now).then_some((alert.id, due))
            })
            .collect();
        for (id, due) in reopen {
            if let Some(alert) = state.alerts.get_mut(&id) {
                alert.status = AlertStatus::Firing;
                alert.acknowledged = None;
                alert.acknowledged_by = None;
            }
            state.counts.reopened += 1;
            let record = json!({ "type": "reopened", "id": id.0, "at": state.wall(due) });
            state.record(record);
            state.escalations.remove(&id);
            state.escalated.remove(&id);
            self.start_escalation(state, id, due);
        }
        let starting: Vec<AlertId> = state
            .open
            .values()
            .copied()
            .filter(|id| !state.escalations.contains_key(id) && !state.escalated.contains(id))
            .filter(|id| state.alerts.get(id).is_some_and(|alert| alert.status == AlertStatus::Firing))
            .collect();
        for id in starting {
            self.start_escalation(state, id, now);
        }
        let due: Vec<AlertId> =
            state.escalations.iter().filter(|(_, escalation)| escalation.next <= now).map(|(id, _)| *id).collect();
        for id in due {
            let Some(mut escalation) = state.escalations.remove(&id) else { continue };
            let mut going = true;
            while going && escalation.next <= now {
                let at = escalation.next;
                let policy = &state.policies[escalation.policy];
                let status = state.alerts.get(&id).map(|alert| alert.status);
                let stopped = match status {
                    None | Some(AlertStatus::Resolved) => true,
                    Some(AlertStatus::Acknowledged) => policy.until == EscalateUntil::Acknowledged,
                    _ => false,
                };
                if stopped {
                    going = false;
                    continue;
                }
                if status == Some(AlertStatus::Suppressed) {
                    // Quiet alerts do not page anyone; the clock keeps running.
                    escalation.next = at + policy.levels[escalation.level].delay;
                    continue;
                }
                if escalation.level + 1 < policy.levels.len() {
                    escalation.level += 1;
                } else if escalation.repeats_left > 0 {
                    escalation.repeats_left -= 1;
                    escalation.level = 0;
                } else {
                    state.escalated.insert(id);
                    state.record(json!({ "type": "escalation_done", "id": id.0 }));
                    going = false;
                    continue;
                }
                escalation.next = at + policy.levels[escalation.level].delay;
                state.counts.escalations += 1;
                self.notify_level(state, id, &escalation, at);
                let record = state.escalation_record(id, &escalation);
                state.record(record);
            }
            if going {
                state.escalations.insert(id, escalation);
            }
        }
    }

    /// Rebuilds the state from journal records, then keeps the journal for what follows.
    fn replay(&self, records: &[Value], journal: Option<Journal>) {
        let now = self.now();
        let mut state = self.state();
        for record in records {
            state.apply(record, self.inner.keep_resolved);
        }
        state.journal = journal;
        state.reevaluate(now);
        // Open alerts join their groups again: receivers hear the current state once after a restart.
        if let Some(tree) = &self.inner.routes {
            let open: Vec<(AlertId, Fingerprint, Labels)> = state
                .open
                .values()
                .filter_map(|id| state.alerts.get(id))
                .map(|alert| (alert.id, alert.fingerprint, alert.labels.clone()))
                .collect();
            for (id, fingerprint, labels) in open {
                for route in tree.matches(&labels) {
                    let key = route.group_key(&labels);
                    let group = state.groups.entry((route.index, key.clone())).or_insert_with(|| Group {
                        key,
                        labels: route.group_labels(&labels),
                        members: BTreeMap::new(),
                        next_flush: now + route.group_wait,
                        last: None,
                    });
                    group.members.insert(fingerprint, id);
                }
            }
        }
    }

    /// Rewrites the journal as the current state only (open alerts, their acknowledgements, live
    /// silences, escalations), dropping the history of what is over; atomic (written beside, renamed).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Journal`] when there is no journal or it cannot be rewritten (the old one stays).
    pub fn compact_journal(&self) -> Result<(), ConfigError> {
        let now = self.now();
        let mut state = self.state();
        let mut records = Vec::new();
        let open: Vec<&Alert> = state.open.values().filter_map(|id| state.alerts.get(id)).collect();
        for alert in open {
            records.push(state.alert_record(alert));
            if let (Some(at), Some(by)) = (alert.acknowledged, &alert.acknowledged_by) {
                records.push(json!({ "type": "ack", "id": alert.id.0, "by": by, "at": state.wall(at) }));
            }
            if let Some(escalation) = state.escalations.get(&alert.id) {
                records.push(state.escalation_record(alert.id, escalation));
            }
        }
        for (id, silence) in state.silences.iter().filter(|(_, silence)| silence.ends > now) {
            records.push(state.silence_record(*id, silence));
        }
        let journal = state.journal.as_mut().ok_or_else(|| ConfigError::Journal("no journal configured".into()))?;
        journal.compact(&records).map_err(|err| ConfigError::Journal(err.to_string()))
    }

    /// Records written to the journal since it was last compacted (none without a journal).
    pub fn journal_records(&self) -> u64 {
        self.state().journal.as_ref().map_or(0, Journal::records)
    }

    /// Starts the background worker (the seed's `start`): a thread that ticks every `interval`, driving
    /// group timers, escalations, auto-resolution and retries. Stop it with [`AlertWorker::stop`], which
    /// delivers what is due before returning; dropping the worker stops it the same way.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Zero`] for a zero interval; [`ConfigError::Worker`] when the thread cannot start.
    pub fn start(&self, interval: Duration) -> Result<AlertWorker, ConfigError> {
        if interval.is_zero() {
            return Err(ConfigError::Zero("worker interval"));
        }
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let manager = self.clone();
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("infra-alert-worker".into())
            .spawn(move || {
                while !flag.load(std::sync::atomic::Ordering::Acquire) {
                    manager.tick();
                    std::thread::park_timeout(interval);
                }
            })
            .map_err(|err| ConfigError::Worker(err.to_string()))?;
        Ok(AlertWorker { manager: self.clone(), stop, thread: Some(thread) })
    }

    /// Notifications that could not be delivered after every retry.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.state().dead_letters.clone()
    }

    /// Counts and means (the seed's `get_alert_statistics`).
    pub fn statistics(&self) -> AlertStats {
        let state = self.state();
        let mut by_severity: BTreeMap<Severity, usize> = Severity::ALL.iter().map(|s| (*s, 0)).collect();
        let (mut firing, mut acknowledged, mut suppressed) = (0, 0, 0);
        for alert in state.open.values().filter_map(|id| state.alerts.get(id)) {
            *by_severity.entry(alert.severity).or_default() += 1;
            match alert.status {
                AlertStatus::Firing => firing += 1,
                AlertStatus::Acknowledged => acknowledged += 1,
                AlertStatus::Suppressed => suppressed += 1,
                AlertStatus::Resolved => {}
            }
        }
        let counts = &state.counts;
        let mean = |total: Duration, n: u64| (n > 0).then(|| total / u32::try_from(n).unwrap_or(u32::MAX));
        AlertStats {
            open_by_severity: by_severity.into_iter().collect(),
            firing,
            acknowledged,
            suppressed,
            resolved: counts.resolved,
            created: counts.created,
            repeats: counts.repeats,
            mean_time_to_acknowledge: mean(counts.time_to_acknowledge, counts.acknowledged),
            mean_time_to_resolve: mean(counts.time_to_resolve, counts.resolved),
            silenced: counts.silenced,
            inhibited: counts.inhibited,
            suppressed_by_rule: counts.ruled,
            auto_resolved: counts.auto_resolved,
            notifications_sent: counts.sent,
            notifications_failed: counts.failed,
            dead_letters: state.dead_letters.len() as u64,
            escalations: counts.escalations,
            reopened: counts.reopened,
            journal_errors: state.journal_errors,
            journal_dropped: state.journal_dropped,
        }
    }
}

/// The earliest time a journal record mentions, in nanoseconds since the Unix epoch.
fn earliest_time(record: &Value) -> Option<u128> {
    ["at", "starts"].iter().filter_map(|field| record.get(*field)?.as_u64()).min().map(u128::from)
}

fn labels_json(labels: &Labels) -> Value {
    Value::Object(labels.iter().map(|(k, v)| (k.to_owned(), Value::String(v.to_owned()))).collect())
}

fn labels_from(value: Option<&Value>) -> Labels {
    value
        .and_then(Value::as_object)
        .map(|map| map.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
        .unwrap_or_default()
}

fn severity_from(name: &str) -> Severity {
    Severity::ALL.into_iter().find(|s| s.as_str() == name).unwrap_or(Severity::Error)
}

impl State {
    /// Writes a journal record, if there is a journal; a failed write is counted, never fatal.
    fn record(&mut self, record: Value) {
        if let Some(journal) = &mut self.journal
            && journal.append(&record).is_err()
        {
            self.journal_errors += 1;
        }
    }

    /// A manager-clock offset as wall-clock nanoseconds since the Unix epoch.
    fn wall(&self, at: Duration) -> u64 {
        u64::try_from(self.wall_zero + at.as_nanos()).unwrap_or(u64::MAX)
    }

    /// Wall-clock nanoseconds as an offset on the manager's clock.
    fn offset(&self, wall: Option<&Value>) -> Duration {
        let wall = u128::from(wall.and_then(Value::as_u64).unwrap_or(0));
        Duration::from_nanos(u64::try_from(wall.saturating_sub(self.wall_zero)).unwrap_or(u64::MAX))
    }

    fn escalation_record(&self, id: AlertId, escalation: &Escalation) -> Value {
        json!({
            "type": "escalation",
            "id": id.0,
            "policy": self.policies[escalation.policy].name(),
            "level": escalation.level,
            "next": self.wall(escalation.next),
            "repeats_left": escalation.repeats_left,
        })
    }

    fn alert_record(&self, alert: &Alert) -> Value {
        json!({
            "type": "created",
            "id": alert.id.0,
            "severity": alert.severity.as_str(),
            "title": alert.title,
            "description": alert.description,
            "source": alert.source,
            "labels": labels_json(&alert.labels),
            "annotations": labels_json(&alert.annotations),
            "at": self.wall(alert.created),
            "last_seen": self.wall(alert.last_seen),
            "occurrences": alert.occurrences,
        })
    }

    fn silence_record(&self, id: SilenceId, silence: &Silence) -> Value {
        json!({
            "type": "silence",
            "id": id.0,
            "matchers": silence.matchers.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "starts": self.wall(silence.starts),
            "ends": self.wall(silence.ends),
            "author": silence.author,
            "comment": silence.comment,
        })
    }

    /// Applies one journal record at replay.
    fn apply(&mut self, record: &Value, keep_resolved: usize) {
        let id = AlertId(record.get("id").and_then(Value::as_u64).unwrap_or(0));
        let text = |field: &str| record.get(field).and_then(Value::as_str).unwrap_or_default().to_owned();
        match record.get("type").and_then(Value::as_str).unwrap_or_default() {
            "created" => {
                let labels = labels_from(record.get("labels"));
                let fingerprint = labels.fingerprint();
                let created = self.offset(record.get("at"));
                let alert = Alert {
                    id,
                    fingerprint,
                    severity: severity_from(&text("severity")),
                    title: text("title"),
                    description: text("description"),
                    source: text("source"),
                    labels,
                    annotations: labels_from(record.get("annotations")),
                    status: AlertStatus::Firing,
                    suppressed_by: None,
                    created,
                    last_seen: record.get("last_seen").map_or(created, |wall| self.offset(Some(wall))),
                    acknowledged: None,
                    acknowledged_by: None,
                    resolved: None,
                    occurrences: record.get("occurrences").and_then(Value::as_u64).unwrap_or(1),
                    escalation_level: 0,
                };
                self.next_alert = self.next_alert.max(id.0);
                self.counts.created += 1;
                self.open.insert(fingerprint, id);
                self.alerts.insert(id, alert);
            }
            "repeat" => {
                let at = self.offset(record.get("at"));
                if let Some(alert) = self.alerts.get_mut(&id) {
                    alert.occurrences += 1;
                    alert.last_seen = at;
                }
                self.counts.repeats += 1;
            }
            "ack" => {
                let at = self.offset(record.get("at"));
                if let Some(alert) = self.alerts.get_mut(&id) {
                    alert.status = AlertStatus::Acknowledged;
                    alert.acknowledged = Some(at);
                    alert.acknowledged_by = Some(text("by"));
                    let waited = at.saturating_sub(alert.created);
                    self.counts.acknowledged += 1;
                    self.counts.time_to_acknowledge += waited;
                }
            }
            "reopened" => {
                if let Some(alert) = self.alerts.get_mut(&id) {
                    alert.status = AlertStatus::Firing;
                    alert.acknowledged = None;
                    alert.acknowledged_by = None;
                }
                self.counts.reopened += 1;
            }
            "resolved" => {
                let at = self.offset(record.get("at"));
                self.resolve(id, at, keep_resolved);
            }
            "silence" => {
                let silence_id = SilenceId(id.0);
                let matchers: Vec<Matcher> = record
                    .get("matchers")
                    .and_then(Value::as_array)
                    .map(|list| list.iter().filter_map(|m| Matcher::parse(m.as_str()?).ok()).collect())
                    .unwrap_or_default();
                let silence = Silence {
                    matchers,
                    starts: self.offset(record.get("starts")),
                    ends: self.offset(record.get("ends")),
                    author: text("author"),
                    comment: text("comment"),
                };
                self.next_silence = self.next_silence.max(silence_id.0);
                self.silences.insert(silence_id, silence);
            }
            "silence_ends" => {
                let ends = self.offset(record.get("ends"));
                if let Some(silence) = self.silences.get_mut(&SilenceId(id.0)) {
                    silence.ends = silence.ends.min(ends);
                }
            }
            "escalation" => {
                let name = text("policy");
                if let Some(policy) = self.policies.iter().position(|p| p.name() == name) {
                    let level = record.get("level").and_then(Value::as_u64).unwrap_or(0) as usize;
                    let escalation = Escalation {
                        policy,
                        level: level.min(self.policies[policy].levels.len() - 1),
                        next: self.offset(record.get("next")),
                        repeats_left: record.get("repeats_left").and_then(Value::as_u64).unwrap_or(0) as u32,
                    };
                    if let Some(alert) = self.alerts.get_mut(&id) {
                        alert.escalation_level = escalation.level as u32 + 1;
                    }
                    self.escalations.insert(id, escalation);
                }
            }
            "escalation_done" => {
                self.escalations.remove(&id);
                self.escalated.insert(id);
            }
            _ => {}
        }
    }

    /// For each inhibition rule, the open alerts on its source side: computed once per pass, so a pass
    /// over n open alerts costs n times the (usually few) sources, not n squared.
    fn inhibition_sources(&self) -> Vec<Vec<(Fingerprint, Labels)>> {
        self.inhibit_rules
            .iter()
            .map(|rule| {
                self.open
                    .values()
                    .filter_map(|id| self.alerts.get(id))
                    .filter(|alert| crate::matcher::all_match(&rule.source, &alert.labels))
                    .map(|alert| (alert.fingerprint, alert.labels.clone()))
                    .collect()
            })
            .collect()
    }

    /// Why `alert` should be quiet at `now`, if it should.
    fn suppression(&self, alert: &Alert, now: Duration) -> Option<Suppression> {
        let sources = if self.inhibit_rules.is_empty() { Vec::new() } else { self.inhibition_sources() };
        self.suppression_with(alert, now, &sources)
    }

    fn suppression_with(
        &self,
        alert: &Alert,
        now: Duration,
        sources: &[Vec<(Fingerprint, Labels)>],
    ) -> Option<Suppression> {
        if let Some((id, _)) = self.silences.iter().find(|(_, silence)| silence.mutes(&alert.labels, now)) {
            return Some(Suppression::Silenced(*id));
        }
        for (rule, sources) in self.inhibit_rules.iter().zip(sources) {
            let source = sources.iter().find(|(fingerprint, labels)| {
                *fingerprint != alert.fingerprint && rule.inhibits(labels, &alert.labels)
            });
            if let Some((fingerprint, _)) = source {
                return Some(Suppression::Inhibited(*fingerprint));
            }
        }
        // A rule that panics suppresses nothing: a broken rule must not hide alerts.
        let ruled = self
            .suppression_rules
            .iter()
            .any(|rule| std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rule(alert))).unwrap_or(false));
        ruled.then_some(Suppression::Rule)
    }

    fn count_suppression(&mut self, reason: &Suppression) {
        match reason {
            Suppression::Silenced(_) => self.counts.silenced += 1,
            Suppression::Inhibited(_) => self.counts.inhibited += 1,
            Suppression::Rule => self.counts.ruled += 1,
        }
    }

    /// Moves open alerts between firing and suppressed as silences and inhibitions now say.
    fn reevaluate(&mut self, now: Duration) {
        let sources = self.inhibition_sources();
        let open: Vec<AlertId> = self.open.values().copied().collect();
        for id in open {
            let Some(alert) = self.alerts.get(&id) else { continue };
            if !matches!(alert.status, AlertStatus::Firing | AlertStatus::Suppressed) {
                continue;
            }
            let reason = self.suppression_with(alert, now, &sources);
            let was = alert.suppressed_by.clone();
            if reason == was {
                continue;
            }
            if let Some(reason) = &reason
                && was.is_none()
            {
                self.count_suppression(reason);
            }
            if let Some(alert) = self.alerts.get_mut(&id) {
                alert.status = if reason.is_some() { AlertStatus::Suppressed } else { AlertStatus::Firing };
                alert.suppressed_by = reason;
            }
        }
    }

    fn resolve(&mut self, id: AlertId, now: Duration, keep_resolved: usize) -> bool {
        let Some(alert) = self.alerts.get_mut(&id) else { return false };
        if alert.status == AlertStatus::Resolved {
            return false;
        }
        alert.status = AlertStatus::Resolved;
        alert.resolved = Some(now);
        let lasted = now.saturating_sub(alert.created);
        let fingerprint = alert.fingerprint;
        if self.open.get(&fingerprint) == Some(&id) {
            self.open.remove(&fingerprint);
        }
        self.counts.resolved += 1;
        self.counts.time_to_resolve += lasted;
        self.escalations.remove(&id);
        self.escalated.remove(&id);
        let record = json!({ "type": "resolved", "id": id.0, "at": self.wall(now) });
        self.record(record);
        self.resolved_order.push_back(id);
        while self.resolved_order.len() > keep_resolved {
            if let Some(old) = self.resolved_order.pop_front() {
                self.alerts.remove(&old);
            }
        }
        // Alerts this one inhibited may fire now.
        if !self.inhibit_rules.is_empty() {
            self.reevaluate(now);
        }
        true
    }
}

/// A notification about one alert (escalations and severity handlers).
fn single(alert: &Alert, key: String, at: Duration, epoch: std::time::SystemTime) -> Notification {
    Notification {
        receiver: String::new(),
        status: NotificationStatus::Firing,
        group_key: format!("{key}:{}", alert.labels),
        group_labels: alert.labels.clone(),
        common_labels: alert.labels.clone(),
        common_annotations: alert.annotations.clone(),
        alerts: vec![NotifiedAlert {
            status: NotificationStatus::Firing,
            labels: alert.labels.clone(),
            annotations: alert.annotations.clone(),
            starts_at: alert.created,
            ends_at: None,
            fingerprint: alert.fingerprint,
        }],
        sent_at: at,
        epoch,
    }
}

/// The running background worker; from [`AlertManager::start`].
#[derive(Debug)]
#[must_use = "dropping the worker stops it"]
pub struct AlertWorker {
    manager: AlertManager,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl AlertWorker {
    /// Stops the worker (the seed's `stop`), then runs one last pass so that what is due is delivered.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        let Some(thread) = self.thread.take() else { return };
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        thread.thread().unpark();
        let _ = thread.join();
        self.manager.tick();
    }
}

impl Drop for AlertWorker {
    fn drop(&mut self) {
        self.shut_down();
    }
}
