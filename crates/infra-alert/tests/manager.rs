//! The alert manager on an injected clock: dedup, acknowledgement, resolution, silences, inhibition,
//! suppression rules, statistics.

use std::sync::Arc;
use std::time::Duration;

use infra_alert::{
    AlertError, AlertManager, AlertStatus, ConfigError, InhibitRule, Labels, Matcher, NewAlert, Raised, Severity,
    Silence, Suppression,
};

fn manager() -> (AlertManager, Arc<quanta::Mock>) {
    let (clock, time) = quanta::Clock::mock();
    (AlertManager::builder("orders").clock(clock).build().unwrap(), time)
}

fn disk_full(host: &str) -> NewAlert {
    NewAlert::new(Severity::Critical, "DiskFull").source("node-exporter").label("host", host).description("disk at 99%")
}

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn identical_labels_are_one_alert_and_repeats_do_not_create_another() {
    let (manager, time) = manager();
    let first = manager.create_alert(disk_full("a")).unwrap();
    time.increment(SECOND * 5);
    let again = manager.create_alert(disk_full("a").description("now 100%")).unwrap();
    assert_eq!(again, Raised::Repeat(first.id()), "annotations do not change the identity");
    let other = manager.create_alert(disk_full("b")).unwrap();
    assert!(matches!(other, Raised::New(id) if id != first.id()));

    let alert = manager.get(first.id()).unwrap();
    assert_eq!((alert.occurrences, alert.created, alert.last_seen), (2, Duration::ZERO, SECOND * 5));
    let expected = Labels::new()
        .with("alertname", "DiskFull")
        .with("severity", "critical")
        .with("source", "node-exporter")
        .with("host", "a");
    assert_eq!(alert.labels, expected);
    assert_eq!(alert.fingerprint, expected.fingerprint());
    let stats = manager.statistics();
    assert_eq!((stats.created, stats.repeats, stats.firing), (2, 1, 2));
}

#[test]
fn acknowledge_resolve_and_fire_again() {
    let (manager, time) = manager();
    let id = manager.create_alert(disk_full("a")).unwrap().id();
    time.increment(SECOND * 30);
    assert!(manager.acknowledge(id, "alice").unwrap());
    assert!(!manager.acknowledge(id, "bob").unwrap(), "already acknowledged");
    time.increment(SECOND * 90);
    assert!(manager.resolve(id).unwrap());
    assert!(!manager.resolve(id).unwrap());
    let alert = manager.get(id).unwrap();
    assert_eq!(alert.status, AlertStatus::Resolved);
    assert_eq!(
        (alert.acknowledged, alert.acknowledged_by.as_deref(), alert.resolved),
        (Some(SECOND * 30), Some("alice"), Some(SECOND * 120))
    );
    let stats = manager.statistics();
    assert_eq!((stats.mean_time_to_acknowledge, stats.mean_time_to_resolve), (Some(SECOND * 30), Some(SECOND * 120)));

    let refired = manager.create_alert(disk_full("a")).unwrap();
    assert!(matches!(refired, Raised::New(new) if new != id), "a resolved alert firing again is a new occurrence");
    assert_eq!(manager.get(refired.id()).unwrap().fingerprint, alert.fingerprint);

    let unknown = infra_alert::AlertId::clone(&id);
    let manager_b = AlertManager::builder("other").build().unwrap();
    assert_eq!(manager_b.acknowledge(unknown, "x"), Err(AlertError::UnknownAlert(unknown)));
    assert!(matches!(manager.create_alert(NewAlert::new(Severity::Info, " ")), Err(AlertError::Invalid(_))));
}

#[test]
fn quiet_alerts_resolve_themselves() {
    let (clock, time) = quanta::Clock::mock();
    let manager = AlertManager::builder("orders").clock(clock).auto_resolve_after(SECOND * 60).build().unwrap();
    let id = manager.create_alert(disk_full("a")).unwrap().id();
    time.increment(SECOND * 50);
    manager.create_alert(disk_full("a")).unwrap(); // seen again: the quiet time restarts
    time.increment(SECOND * 59);
    manager.tick();
    assert_eq!(manager.get(id).unwrap().status, AlertStatus::Firing);
    time.increment(SECOND);
    manager.tick();
    assert_eq!(manager.get(id).unwrap().status, AlertStatus::Resolved);
    assert_eq!(manager.statistics().auto_resolved, 1);
    assert_eq!(
        AlertManager::builder("x").auto_resolve_after(Duration::ZERO).build().unwrap_err(),
        ConfigError::Zero("auto_resolve_after")
    );
}

#[test]
fn silences_mute_while_active_and_alerts_fire_when_they_end() {
    let (manager, time) = manager();
    let host_a = Matcher::parse("host=\"a\"").unwrap();
    let later = Silence::new(vec![host_a.clone()], SECOND * 10, SECOND * 20, "bob", "maintenance").unwrap();
    let silence = manager.add_silence(later);
    let id = manager.create_alert(disk_full("a")).unwrap().id();
    assert_eq!(manager.get(id).unwrap().status, AlertStatus::Firing, "not active yet");
    time.increment(SECOND * 10);
    manager.tick();
    let alert = manager.get(id).unwrap();
    assert_eq!((alert.status, alert.suppressed_by), (AlertStatus::Suppressed, Some(Suppression::Silenced(silence))));
    let other = manager.create_alert(disk_full("b")).unwrap().id();
    assert_eq!(manager.get(other).unwrap().status, AlertStatus::Firing, "the silence matches host a only");
    time.increment(SECOND * 10);
    manager.tick();
    assert_eq!(manager.get(id).unwrap().status, AlertStatus::Firing, "expired");

    let now = SECOND * 20;
    let again = manager.add_silence(Silence::new(vec![host_a], now, now + SECOND * 3600, "bob", "again").unwrap());
    assert_eq!(manager.get(id).unwrap().status, AlertStatus::Suppressed, "applies to open alerts at once");
    manager.expire_silence(again).unwrap();
    assert_eq!(manager.get(id).unwrap().status, AlertStatus::Firing);
    assert_eq!(manager.statistics().silenced, 2);

    assert!(matches!(Silence::new(vec![], now, now + SECOND, "a", "b"), Err(ConfigError::Silence(_))));
    assert!(matches!(
        Silence::new(vec![Matcher::parse("a=b").unwrap()], now, now, "a", "b"),
        Err(ConfigError::Silence(_))
    ));
}

#[test]
fn inhibition_mutes_targets_while_the_source_fires_but_never_an_alert_by_itself() {
    let rule = InhibitRule::new(
        vec![Matcher::parse("severity=\"critical\"").unwrap()],
        vec![Matcher::parse("severity=~\"warning|critical\"").unwrap()],
        vec!["cluster".into()],
    )
    .unwrap();
    let (clock, _) = quanta::Clock::mock();
    let manager = AlertManager::builder("orders").clock(clock).inhibit(rule).build().unwrap();
    let down =
        manager.create_alert(NewAlert::new(Severity::Critical, "ClusterDown").label("cluster", "eu")).unwrap().id();
    let latency =
        manager.create_alert(NewAlert::new(Severity::Warning, "HighLatency").label("cluster", "eu")).unwrap().id();
    let elsewhere =
        manager.create_alert(NewAlert::new(Severity::Warning, "HighLatency").label("cluster", "us")).unwrap().id();
    assert_eq!(
        manager.get(down).unwrap().status,
        AlertStatus::Firing,
        "an alert matching both sides does not mute itself"
    );
    let muted = manager.get(latency).unwrap();
    assert_eq!(
        (muted.status, muted.suppressed_by),
        (AlertStatus::Suppressed, Some(Suppression::Inhibited(manager.get(down).unwrap().fingerprint)))
    );
    assert_eq!(manager.get(elsewhere).unwrap().status, AlertStatus::Firing, "another cluster");
    // A second critical in the same cluster matches both sides, like the first: neither mutes the other.
    let disk = manager.create_alert(NewAlert::new(Severity::Critical, "DiskFull").label("cluster", "eu")).unwrap().id();
    assert_eq!(manager.get(disk).unwrap().status, AlertStatus::Firing);

    manager.resolve(down).unwrap();
    assert_eq!(manager.get(latency).unwrap().status, AlertStatus::Suppressed, "the other critical still inhibits");
    manager.resolve(disk).unwrap();
    assert_eq!(manager.get(latency).unwrap().status, AlertStatus::Firing, "no source left");
    assert_eq!(manager.statistics().inhibited, 1);
    assert!(InhibitRule::new(vec![], vec![Matcher::parse("a=b").unwrap()], vec![]).is_err());
}

#[test]
fn suppression_rules_and_open_alert_listing() {
    let (clock, _) = quanta::Clock::mock();
    let manager = AlertManager::builder("orders")
        .clock(clock)
        .suppress_when(|alert| alert.source == "canary")
        .suppress_when(|_| panic!("a broken rule"))
        .build()
        .unwrap();
    let canary = manager.create_alert(NewAlert::new(Severity::Error, "Errors").source("canary")).unwrap().id();
    let real = manager.create_alert(NewAlert::new(Severity::Error, "Errors").source("api")).unwrap().id();
    manager.create_alert(NewAlert::new(Severity::Info, "Deploy")).unwrap();
    manager.create_alert(NewAlert::new(Severity::Critical, "Down")).unwrap();
    assert_eq!(manager.get(canary).unwrap().suppressed_by, Some(Suppression::Rule));
    assert_eq!(manager.get(real).unwrap().status, AlertStatus::Firing, "a panicking rule suppresses nothing");

    let open = manager.open_alerts(None);
    let severities: Vec<Severity> = open.iter().map(|alert| alert.severity).collect();
    assert_eq!(severities, [Severity::Critical, Severity::Error, Severity::Error, Severity::Info]);
    assert_eq!(manager.open_alerts(Some(Severity::Error)).len(), 2);
    let stats = manager.statistics();
    assert_eq!(
        stats.open_by_severity,
        [(Severity::Info, 1), (Severity::Warning, 0), (Severity::Error, 2), (Severity::Critical, 1)]
    );
    assert_eq!((stats.firing, stats.suppressed, stats.suppressed_by_rule), (3, 1, 1));
}
