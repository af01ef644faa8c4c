//! Group timers and notification decisions on an injected clock, with exact notification times:
//! Alertmanager's rules (first notification after group_wait, changes every group_interval, repeats after
//! repeat_interval, one resolved notification), delivery retries and the dead-letter list.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use infra_alert::{
    AlertManager, CallbackNotifier, ConfigError, Matcher, MemoryNotifier, NewAlert, NotificationStatus, Route,
    RouteTree, Severity, Silence,
};

const S: Duration = Duration::from_secs(1);

fn disk(host: &str) -> NewAlert {
    NewAlert::new(Severity::Critical, "DiskFull").label("host", host)
}

fn setup() -> (AlertManager, Arc<quanta::Mock>, MemoryNotifier) {
    let tree = RouteTree::new(
        Route::to("ops")
            .group_by(["alertname"])
            .group_wait(S * 30)
            .group_interval(S * 300)
            .repeat_interval(S * 4 * 3600),
        &["ops"],
    )
    .unwrap();
    let (clock, time) = quanta::Clock::mock();
    let memory = MemoryNotifier::new();
    let manager =
        AlertManager::builder("orders").clock(clock).routes(tree).receiver("ops", memory.clone()).build().unwrap();
    (manager, time, memory)
}

/// Moves the mock clock to `at` (from the manager's start) and ticks.
fn at(manager: &AlertManager, time: &quanta::Mock, at: Duration) {
    time.increment(at - manager.now());
    manager.tick();
}

#[test]
fn notifications_follow_alertmanagers_timers_to_the_second() {
    let (manager, time, memory) = setup();
    let a = manager.create_alert(disk("a")).unwrap().id();
    at(&manager, &time, S * 29);
    assert!(memory.received().is_empty(), "group_wait has not passed");
    at(&manager, &time, S * 30);
    let first = memory.received();
    assert_eq!(first.len(), 1);
    assert_eq!((first[0].sent_at, first[0].status), (S * 30, NotificationStatus::Firing));
    assert_eq!(first[0].group_key, "{}:{alertname=\"DiskFull\"}");
    assert_eq!(first[0].group_labels.to_string(), "{alertname=\"DiskFull\"}");
    let a_fp = manager.get(a).unwrap().fingerprint;
    assert_eq!(first[0].firing(), [a_fp]);

    at(&manager, &time, S * 60);
    let b = manager.create_alert(disk("b")).unwrap().id();
    let b_fp = manager.get(b).unwrap().fingerprint;
    at(&manager, &time, S * 329);
    assert_eq!(memory.received().len(), 1, "a new alert waits for the group interval");
    at(&manager, &time, S * 330);
    let second = memory.received()[1].clone();
    assert_eq!(second.sent_at, S * 330);
    let mut both = vec![a_fp, b_fp];
    both.sort();
    assert_eq!(second.firing(), both);
    assert_eq!(second.common_labels.get("alertname"), "DiskFull");
    assert_eq!(second.common_labels.get("host"), "", "hosts differ: not common");

    // Nothing changes: silence until the repeat interval has passed, then exactly at a flush time.
    at(&manager, &time, S * 14_729);
    assert_eq!(memory.received().len(), 2);
    at(&manager, &time, S * 14_730);
    let repeat = memory.received();
    assert_eq!((repeat.len(), repeat[2].sent_at), (3, S * 14_730));

    // A resolution is news at the next flush; the resolved alert then leaves the group.
    at(&manager, &time, S * 14_800);
    manager.resolve(a).unwrap();
    at(&manager, &time, S * 15_030);
    let resolved = memory.received()[3].clone();
    assert_eq!((resolved.sent_at, resolved.firing(), resolved.resolved()), (S * 15_030, vec![b_fp], vec![a_fp]));

    // The last one resolved: one resolved notification, then the group is gone.
    manager.resolve(b).unwrap();
    at(&manager, &time, S * 15_330);
    let last = memory.received()[4].clone();
    assert_eq!((last.status, last.resolved(), last.firing()), (NotificationStatus::Resolved, vec![b_fp], vec![]));
    at(&manager, &time, S * 40_000);
    assert_eq!(memory.received().len(), 5);
    assert_eq!(manager.statistics().notifications_sent, 5);

    // A new alert starts a new group, with its own group_wait.
    manager.create_alert(disk("c")).unwrap();
    at(&manager, &time, S * 40_029);
    assert_eq!(memory.received().len(), 5);
    at(&manager, &time, S * 40_030);
    assert_eq!(memory.received().len(), 6);
}

#[test]
fn silenced_alerts_are_left_out_until_the_silence_ends() {
    let (manager, time, memory) = setup();
    let now = manager.now();
    manager.add_silence(
        Silence::new(vec![Matcher::parse("host=\"a\"").unwrap()], now, now + S * 100, "bob", "swap").unwrap(),
    );
    manager.create_alert(disk("a")).unwrap();
    at(&manager, &time, S * 30);
    assert!(memory.received().is_empty(), "the only alert is silenced: nothing to say");
    at(&manager, &time, S * 330);
    let received = memory.received();
    assert_eq!((received.len(), received[0].sent_at), (1, S * 330), "it fires after the silence, at the next flush");
}

#[test]
fn continue_sends_to_every_matching_receiver() {
    let tree = RouteTree::new(
        Route::to("ops")
            .group_wait(S)
            .route(Route::to("pager").matcher(Matcher::parse("severity=\"critical\"").unwrap()).continue_matching(true))
            .route(Route::to("storage").matcher(Matcher::parse("alertname=\"DiskFull\"").unwrap())),
        &["ops", "pager", "storage"],
    )
    .unwrap();
    let (clock, time) = quanta::Clock::mock();
    let (pager, storage, ops) = (MemoryNotifier::new(), MemoryNotifier::new(), MemoryNotifier::new());
    let manager = AlertManager::builder("orders")
        .clock(clock)
        .routes(tree)
        .receiver("pager", pager.clone())
        .receiver("storage", storage.clone())
        .receiver("ops", ops.clone())
        .build()
        .unwrap();
    manager.create_alert(disk("a")).unwrap();
    at(&manager, &time, S);
    assert_eq!((pager.received().len(), storage.received().len(), ops.received().len()), (1, 1, 0));
    assert_eq!(storage.received()[0].receiver, "storage");
}

#[test]
fn failed_deliveries_are_retried_then_dead_lettered() {
    let tree = RouteTree::new(Route::to("webhook").group_wait(S * 10), &["webhook"]).unwrap();
    let (clock, time) = quanta::Clock::mock();
    let attempts = Arc::new(AtomicU32::new(0));
    let failing = {
        let attempts = Arc::clone(&attempts);
        CallbackNotifier(move |_: &infra_alert::Notification| {
            attempts.fetch_add(1, Ordering::Relaxed);
            Err("connection refused".to_owned())
        })
    };
    let manager = AlertManager::builder("orders")
        .clock(clock)
        .routes(tree)
        .receiver("webhook", failing)
        .delivery(3, S)
        .build()
        .unwrap();
    manager.create_alert(disk("a")).unwrap();
    at(&manager, &time, S * 10);
    assert_eq!(attempts.load(Ordering::Relaxed), 1);
    at(&manager, &time, S * 11 - Duration::from_millis(1));
    assert_eq!(attempts.load(Ordering::Relaxed), 1, "the first retry waits its backoff (plus up to 10% jitter)");
    at(&manager, &time, S * 11 + Duration::from_millis(100));
    assert_eq!(attempts.load(Ordering::Relaxed), 2);
    at(&manager, &time, S * 14);
    assert_eq!(attempts.load(Ordering::Relaxed), 3, "the second retry after twice the backoff");
    let dead = manager.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].attempts, dead[0].error.as_str()), (3, "connection refused"));
    let stats = manager.statistics();
    assert_eq!((stats.notifications_sent, stats.notifications_failed, stats.dead_letters), (0, 3, 1));
}

#[test]
fn every_routed_receiver_needs_a_notifier() {
    let tree = RouteTree::new(Route::to("ops").route(Route::to("pager")), &["ops", "pager"]).unwrap();
    let built = AlertManager::builder("orders").routes(tree).receiver("ops", MemoryNotifier::new()).build();
    assert_eq!(built.err(), Some(ConfigError::UnknownReceiver("pager".into())));
    assert_eq!(AlertManager::builder("o").delivery(0, S).build().err(), Some(ConfigError::Zero("delivery attempts")));
}

#[test]
fn the_log_notifier_writes_one_line_per_notification() {
    #[derive(Clone, Default)]
    struct Shared(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Shared {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let out = Shared::default();
    let tree = RouteTree::new(Route::to("log").group_wait(S), &["log"]).unwrap();
    let (clock, time) = quanta::Clock::mock();
    let manager = AlertManager::builder("orders")
        .clock(clock)
        .routes(tree)
        .receiver("log", infra_alert::LogNotifier::to(out.clone()))
        .build()
        .unwrap();
    let id = manager.create_alert(disk("a")).unwrap().id();
    at(&manager, &time, S);
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let fingerprint = manager.get(id).unwrap().fingerprint.to_string();
    assert_eq!(text.lines().count(), 1);
    assert!(text.starts_with("alert firing receiver=log group={}:{} [firing "), "{text}");
    assert!(text.contains(&fingerprint) && text.contains("host=\"a\""), "{text}");
}
