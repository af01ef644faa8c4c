//! The journal: state survives a restart, a writer killed mid-record loses only that record, compaction
//! keeps what is open.

use std::path::Path;
use std::time::Duration;

use infra_alert::{
    AlertManager, AlertStatus, EscalationLevel, EscalationPolicy, Matcher, MemoryNotifier, NewAlert, Severity, Silence,
};

const M: Duration = Duration::from_secs(60);

fn build(path: &Path, oncall: &MemoryNotifier) -> (AlertManager, std::sync::Arc<quanta::Mock>) {
    let (clock, time) = quanta::Clock::mock();
    let policy = EscalationPolicy::new(
        "desk",
        vec![
            EscalationLevel::new(["oncall"], M * 5),
            EscalationLevel::new(["oncall"], M * 5),
            EscalationLevel::new(["oncall"], M * 5),
        ],
    )
    .matcher(Matcher::parse("severity=\"critical\"").unwrap());
    let manager = AlertManager::builder("orders")
        .clock(clock)
        .receiver("oncall", oncall.clone())
        .escalation_policy(policy)
        .journal(path, false)
        .build()
        .unwrap();
    (manager, time)
}

fn advance(manager: &AlertManager, time: &quanta::Mock, by: Duration) {
    time.increment(by);
    manager.tick();
}

#[test]
fn open_alerts_acknowledgements_silences_and_escalations_survive_a_restart() {
    let dir = infra_testkit::temp_dir();
    let path = dir.path().join("alerts.journal");
    let oncall = MemoryNotifier::new();
    let (manager, time) = build(&path, &oncall);
    let venue =
        manager.create_alert(NewAlert::new(Severity::Critical, "VenueDown").label("venue", "xnas")).unwrap().id();
    let disk = manager.create_alert(NewAlert::new(Severity::Warning, "DiskFull").label("host", "a")).unwrap().id();
    manager.create_alert(NewAlert::new(Severity::Warning, "DiskFull").label("host", "a")).unwrap();
    let gone = manager.create_alert(NewAlert::new(Severity::Info, "Deploy")).unwrap().id();
    manager.resolve(gone).unwrap();
    manager.acknowledge(disk, "alice").unwrap();
    let now = manager.now();
    manager.add_silence(
        Silence::new(vec![Matcher::parse("host=\"b\"").unwrap()], now, now + M * 60, "bob", "swap").unwrap(),
    );
    advance(&manager, &time, M * 6); // the venue escalated to level 2
    assert_eq!(manager.get(venue).unwrap().escalation_level, 2);
    let before: Vec<_> = manager.open_alerts(None);
    drop(manager);

    let oncall_after = MemoryNotifier::new();
    let (restarted, time) = build(&path, &oncall_after);
    let after = restarted.open_alerts(None);
    assert_eq!(after.len(), 2);
    for (old, new) in before.iter().zip(&after) {
        assert_eq!(
            (old.id, old.fingerprint, old.status, old.occurrences),
            (new.id, new.fingerprint, new.status, new.occurrences)
        );
        assert_eq!(
            (old.created, old.acknowledged, &old.acknowledged_by),
            (new.created, new.acknowledged, &new.acknowledged_by)
        );
    }
    assert_eq!(restarted.get(disk).unwrap().status, AlertStatus::Acknowledged);
    assert!(restarted.get(gone).is_some_and(|alert| alert.status == AlertStatus::Resolved));
    assert_eq!(restarted.silences().len(), 1);
    let muted = restarted.create_alert(NewAlert::new(Severity::Warning, "DiskFull").label("host", "b")).unwrap().id();
    assert_eq!(restarted.get(muted).unwrap().status, AlertStatus::Suppressed, "the silence survived");
    // The escalation continues at level 3, five minutes after level 2, instead of starting over.
    let level_two_at = M * 5;
    advance(&restarted, &time, level_two_at + M * 5 - restarted.now() + Duration::from_secs(1));
    assert_eq!(restarted.get(venue).unwrap().escalation_level, 3);
    assert_eq!(oncall_after.received().len(), 1, "only level 3 is new after the restart");
    let new_id = restarted.create_alert(NewAlert::new(Severity::Info, "Another")).unwrap().id();
    assert!(new_id > muted, "ids keep counting after a restart");
}

#[test]
fn a_writer_killed_mid_record_loses_only_that_record() {
    let dir = infra_testkit::temp_dir();
    let path = dir.path().join("alerts.journal");
    let oncall = MemoryNotifier::new();
    {
        let (manager, _) = build(&path, &oncall);
        for n in 0..5 {
            manager.create_alert(NewAlert::new(Severity::Warning, format!("Alert{n}"))).unwrap();
        }
    }
    let whole = std::fs::metadata(&path).unwrap().len();
    {
        let (manager, _) = build(&path, &oncall);
        manager.create_alert(NewAlert::new(Severity::Warning, "TheLastOne")).unwrap();
    }
    let complete = std::fs::read(&path).unwrap();
    let last_record = whole as usize..complete.len();
    assert!(last_record.len() > 20);
    // Every place the write could have been cut: the header, the middle of the payload, one byte short.
    for cut in [last_record.start + 1, last_record.start + 7, last_record.start + 12, last_record.end - 1] {
        std::fs::write(&path, &complete[..cut]).unwrap();
        let (manager, _) = build(&path, &oncall);
        let titles: Vec<String> = manager.open_alerts(None).into_iter().map(|alert| alert.title).collect();
        assert_eq!(titles.len(), 5, "cut at {cut}: the five whole records, not the torn one: {titles:?}");
        assert!(!titles.contains(&"TheLastOne".to_owned()));
        assert_eq!(manager.statistics().journal_dropped, 1);
        drop(manager);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), whole, "the torn tail is cut off");
    }
    // A corrupted byte inside the last record is a torn record too (its checksum fails).
    let mut corrupted = complete.clone();
    corrupted[last_record.end - 3] ^= 0x55;
    std::fs::write(&path, &corrupted).unwrap();
    let (manager, _) = build(&path, &oncall);
    assert_eq!(manager.open_alerts(None).len(), 5);
    manager.create_alert(NewAlert::new(Severity::Warning, "AfterRecovery")).unwrap();
    drop(manager);
    let (manager, _) = build(&path, &oncall);
    assert_eq!(manager.open_alerts(None).len(), 6, "writes after a recovery are whole");
    assert_eq!(manager.statistics().journal_dropped, 0);
}

#[test]
fn compaction_keeps_the_open_state_and_drops_the_history() {
    let dir = infra_testkit::temp_dir();
    let path = dir.path().join("alerts.journal");
    let oncall = MemoryNotifier::new();
    let (manager, _) = build(&path, &oncall);
    for n in 0..200 {
        let id = manager.create_alert(NewAlert::new(Severity::Info, format!("Churn{n}"))).unwrap().id();
        manager.resolve(id).unwrap();
    }
    let kept = manager.create_alert(NewAlert::new(Severity::Warning, "StillOpen")).unwrap().id();
    manager.acknowledge(kept, "carol").unwrap();
    assert!(manager.journal_records() > 400);
    let size = std::fs::metadata(&path).unwrap().len();
    manager.compact_journal().unwrap();
    assert_eq!(manager.journal_records(), 2, "the open alert and its acknowledgement");
    assert!(std::fs::metadata(&path).unwrap().len() < size / 50);
    manager.create_alert(NewAlert::new(Severity::Warning, "AfterCompaction")).unwrap();
    drop(manager);
    let (manager, _) = build(&path, &oncall);
    let open: Vec<String> = manager.open_alerts(None).into_iter().map(|alert| alert.title).collect();
    assert_eq!(open, ["StillOpen", "AfterCompaction"]);
    assert_eq!(manager.get(kept).unwrap().acknowledged_by.as_deref(), Some("carol"));
    assert!(AlertManager::builder("x").build().unwrap().compact_journal().is_err(), "no journal, a typed error");
}
