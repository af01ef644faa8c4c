//! Escalation on an injected clock, with the semantics PagerDuty documents: levels in turn until
//! acknowledged, repeats, acknowledgement timeouts that re-open, a new occurrence that starts over.

use std::time::Duration;

use infra_alert::{
    AlertManager, AlertStatus, ConfigError, EscalateUntil, EscalationLevel, EscalationPolicy, Matcher, MemoryNotifier,
    NewAlert, Severity,
};

const M: Duration = Duration::from_secs(60);

struct Desk {
    manager: AlertManager,
    time: std::sync::Arc<quanta::Mock>,
    oncall: MemoryNotifier,
    lead: MemoryNotifier,
    boss: MemoryNotifier,
}

fn desk(policy: impl FnOnce(EscalationPolicy) -> EscalationPolicy) -> Desk {
    let (clock, time) = quanta::Clock::mock();
    let (oncall, lead, boss) = (MemoryNotifier::new(), MemoryNotifier::new(), MemoryNotifier::new());
    let base = EscalationPolicy::new(
        "trading",
        vec![
            EscalationLevel::new(["oncall"], M * 5),
            EscalationLevel::new(["lead"], M * 10),
            EscalationLevel::new(["boss"], M * 15),
        ],
    )
    .matcher(Matcher::parse("severity=\"critical\"").unwrap());
    let manager = AlertManager::builder("orders")
        .clock(clock)
        .receiver("oncall", oncall.clone())
        .receiver("lead", lead.clone())
        .receiver("boss", boss.clone())
        .escalation_policy(policy(base))
        .build()
        .unwrap();
    Desk { manager, time, oncall, lead, boss }
}

impl Desk {
    fn at(&self, at: Duration) {
        self.time.increment(at - self.manager.now());
        self.manager.tick();
    }

    fn times(notifier: &MemoryNotifier) -> Vec<Duration> {
        notifier.received().iter().map(|n| n.sent_at).collect()
    }
}

fn outage() -> NewAlert {
    NewAlert::new(Severity::Critical, "VenueDown").label("venue", "xnas")
}

#[test]
fn levels_are_notified_in_turn_and_the_policy_repeats() {
    let desk = desk(|policy| policy.repeat(1));
    let id = desk.manager.create_alert(outage()).unwrap().id();
    desk.at(Duration::ZERO);
    assert_eq!(Desk::times(&desk.oncall), [Duration::ZERO], "level 1 at once");
    // One late tick: every level at its scheduled time.
    desk.at(M * 120);
    assert_eq!(Desk::times(&desk.oncall), [Duration::ZERO, M * 30]);
    assert_eq!(Desk::times(&desk.lead), [M * 5, M * 35]);
    assert_eq!(Desk::times(&desk.boss), [M * 15, M * 45]);
    assert_eq!(desk.oncall.received()[0].receiver, "oncall");
    let alert = desk.manager.get(id).unwrap();
    assert_eq!(alert.escalation_level, 3);
    assert_eq!(desk.manager.statistics().escalations, 5, "two levels up, the repeat, two levels up");
}

#[test]
fn an_acknowledgement_stops_it_and_a_timeout_reopens_it() {
    let desk = desk(|policy| policy.acknowledgement_timeout(M * 10));
    let id = desk.manager.create_alert(outage()).unwrap().id();
    desk.at(M * 6); // oncall at 0, lead at 5
    desk.manager.acknowledge(id, "alice").unwrap();
    desk.at(M * 15);
    assert!(desk.boss.received().is_empty(), "acknowledged before level 3");
    // Not resolved within 10 minutes of the acknowledgement: re-opened, escalated again from level 1.
    desk.at(M * 16);
    let alert = desk.manager.get(id).unwrap();
    assert_eq!((alert.status, alert.acknowledged_by), (AlertStatus::Firing, None));
    assert_eq!(Desk::times(&desk.oncall), [Duration::ZERO, M * 16]);
    desk.at(M * 21);
    assert_eq!(Desk::times(&desk.lead), [M * 5, M * 21]);
    desk.manager.resolve(id).unwrap();
    desk.at(M * 60);
    assert!(desk.boss.received().is_empty(), "resolved: nothing more");
    assert_eq!(desk.manager.statistics().reopened, 1);

    // Firing again after the resolution starts over at level 1.
    desk.manager.create_alert(outage()).unwrap();
    desk.at(M * 61);
    assert_eq!(Desk::times(&desk.oncall), [Duration::ZERO, M * 16, M * 60]);
}

#[test]
fn until_resolved_keeps_going_after_an_acknowledgement() {
    let desk = desk(|policy| policy.until(EscalateUntil::Resolved));
    let id = desk.manager.create_alert(outage()).unwrap().id();
    desk.manager.acknowledge(id, "alice").unwrap();
    desk.at(M * 15);
    assert_eq!(Desk::times(&desk.boss), [M * 15]);
    let other = desk.manager.create_alert(NewAlert::new(Severity::Warning, "SlowFills")).unwrap().id();
    desk.at(M * 30);
    assert_eq!(desk.manager.get(other).unwrap().escalation_level, 0, "the policy takes critical alerts only");
}

#[test]
fn bad_policies_are_refused_and_severity_handlers_hear_new_alerts() {
    let build = |policy: EscalationPolicy| {
        AlertManager::builder("o").receiver("oncall", MemoryNotifier::new()).escalation_policy(policy).build().err()
    };
    assert!(matches!(build(EscalationPolicy::new("empty", vec![])), Some(ConfigError::Escalation(_))));
    assert!(matches!(
        build(EscalationPolicy::new("zero", vec![EscalationLevel::new(["oncall"], Duration::ZERO)])),
        Some(ConfigError::Escalation(_))
    ));
    assert_eq!(
        build(EscalationPolicy::new("ghost", vec![EscalationLevel::new(["ghost"], M)])),
        Some(ConfigError::UnknownReceiver("ghost".into()))
    );
    assert!(matches!(
        build(EscalationPolicy::new("nobody", vec![EscalationLevel::new(Vec::<String>::new(), M)])),
        Some(ConfigError::Escalation(_))
    ));

    let (clock, _) = quanta::Clock::mock();
    let critical = MemoryNotifier::new();
    let manager =
        AlertManager::builder("o").clock(clock).on_severity(Severity::Critical, critical.clone()).build().unwrap();
    manager.create_alert(outage()).unwrap();
    manager.create_alert(outage()).unwrap(); // a repeat: no second notification
    manager.create_alert(NewAlert::new(Severity::Warning, "SlowFills")).unwrap();
    manager.tick();
    let received = critical.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].receiver, "severity:critical");
}
