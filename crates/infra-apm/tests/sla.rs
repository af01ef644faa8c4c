//! Sliding windows and SLA episodes, driven by a mock clock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use infra_apm::{ApmError, Collector, Objective, SlaEvent, SlaEventKind, SlaWindow};
use quanta::Clock;

fn collector() -> (Collector, Arc<quanta::Mock>, Arc<Mutex<Vec<SlaEvent>>>) {
    let (clock, mock) = Clock::mock();
    let collector = Collector::builder("svc").clock(clock).build();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    collector.on_sla_event(move |event| sink.lock().unwrap().push(event.clone()));
    (collector, mock, events)
}

#[test]
fn one_breach_event_per_episode_and_a_recovery() {
    let (collector, mock, events) = collector();
    collector
        .set_sla(
            "place_order",
            Objective::Latency { quantile: 0.99, threshold: Duration::from_millis(5) },
            SlaWindow::OneMinute,
        )
        .unwrap();
    let orders = collector.transaction("place_order").unwrap();
    let second = Duration::from_secs(1);

    // 30 s of fast orders: compliant, no event.
    for _ in 0..30 {
        mock.increment(second);
        orders.record(Duration::from_millis(1), true);
    }
    assert!(!collector.evaluate_slas()[0].breached);
    // Then slow ones: the p99 crosses 5 ms: one breach, however many evaluations see it.
    for _ in 0..10 {
        mock.increment(second);
        orders.record(Duration::from_millis(20), true);
        collector.evaluate_slas();
    }
    let status = &collector.evaluate_slas()[0];
    assert!(status.breached);
    assert!(status.compliance_percent < 100.0 && status.compliance_percent > 50.0, "{status:?}");
    assert_eq!(events.lock().unwrap().len(), 1);
    assert_eq!(events.lock().unwrap()[0].kind, SlaEventKind::Breach);
    // Fast again for over a minute: the slow ones leave the window: one recovery.
    for _ in 0..80 {
        mock.increment(second);
        orders.record(Duration::from_millis(1), true);
        collector.evaluate_slas();
    }
    let events = events.lock().unwrap();
    assert_eq!(
        events.iter().map(|event| event.kind).collect::<Vec<_>>(),
        [SlaEventKind::Breach, SlaEventKind::Recovery]
    );
    assert_eq!(events[1].compliance_percent, 100.0);
}

#[test]
fn error_rate_objectives_and_windowed_stats() {
    let (collector, mock, events) = collector();
    collector.set_sla("fetch", Objective::ErrorRate { max: 0.1 }, SlaWindow::FiveMinutes).unwrap();
    let fetch = collector.transaction("fetch").unwrap();
    for i in 0..120 {
        mock.increment(Duration::from_millis(500));
        fetch.record(Duration::from_millis(2), i % 5 != 0);
    }
    let status = &collector.evaluate_slas()[0];
    assert!(status.breached, "{status:?}");
    assert!((status.observed - 0.2).abs() < 1e-9);
    assert_eq!(events.lock().unwrap().len(), 1);

    let stats = collector.transaction_stats("fetch").unwrap();
    assert_eq!((stats.count, stats.errors), (120, 24));
    // 120 transactions in 60 s: 2 per second, over both windows.
    assert!((stats.rate_1m - 2.0).abs() < 0.35, "{stats:?}");
    assert!((stats.rate_5m - 2.0).abs() < 1e-9, "{stats:?}");
    assert!((stats.error_rate_1m - 0.2).abs() < 0.05);
    // Ten minutes later the windows are empty and the totals remain.
    mock.increment(Duration::from_secs(600));
    let stats = collector.transaction_stats("fetch").unwrap();
    assert_eq!((stats.count, stats.latency_1m.count, stats.latency_5m.count), (120, 0, 0));
    assert_eq!(stats.rate_1m, 0.0);
    assert!(!collector.evaluate_slas()[0].breached, "an empty window is compliant");
}

#[test]
fn objectives_are_checked() {
    let (collector, _, _) = collector();
    let bad = collector.set_sla("x", Objective::ErrorRate { max: 5.0 }, SlaWindow::OneMinute);
    assert!(matches!(bad, Err(ApmError::InvalidObjective(ref message)) if message.contains("0.01")));
    let bad = collector.set_sla(
        "x",
        Objective::Latency { quantile: 99.0, threshold: Duration::from_millis(1) },
        SlaWindow::OneMinute,
    );
    assert!(bad.is_err());
    collector.set_sla_threshold("x", Duration::from_millis(3)).unwrap();
    collector.set_sla_threshold("x", Duration::from_millis(4)).unwrap();
    let statuses = collector.evaluate_slas();
    assert_eq!(statuses.len(), 1, "the same objective is replaced, not added");
    assert_eq!(statuses[0].sla.objective, Objective::Latency { quantile: 0.95, threshold: Duration::from_millis(4) });
}

#[test]
fn a_flush_thread_evaluates_without_calls_and_ends_with_the_collector() {
    let (clock, mock) = Clock::mock();
    let collector = Collector::builder("svc").clock(clock).flush_interval(Duration::from_millis(5)).build();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    collector.on_sla_event(move |event| sink.lock().unwrap().push(event.kind));
    collector.set_sla("job", Objective::ErrorRate { max: 0.0 }, SlaWindow::OneMinute).unwrap();
    mock.increment(Duration::from_secs(1));
    collector.record_transaction("job", Duration::from_millis(1), false).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while events.lock().unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "no breach event from the flush thread");
        std::thread::sleep(Duration::from_millis(2));
    }
    drop(collector);
    // The subscriber held the only other reference to `events`: once the collector is gone, so is it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while Arc::strong_count(&events) > 1 {
        assert!(std::time::Instant::now() < deadline, "the flush thread kept the collector alive");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn process_resources_become_gauges() {
    let (clock, mock) = Clock::mock();
    let collector = Collector::builder("svc").clock(clock).build();
    let first = collector.sample_process().unwrap();
    assert_eq!(first.cpu_percent, 0.0, "no previous sample to compare with");
    assert!(first.resident_bytes > 1024 * 1024 && first.threads >= 1 && first.open_fds >= 3, "{first:?}");
    // Burn some CPU, then let the mock clock say 10 s went by.
    let started = std::time::Instant::now();
    let mut spin = 0u64;
    while started.elapsed() < Duration::from_millis(100) {
        spin = spin.wrapping_add(std::hint::black_box(1));
    }
    mock.increment(Duration::from_secs(10));
    let second = collector.sample_process().unwrap();
    assert!(second.cpu_percent >= 0.0 && second.cpu_percent < 100.0, "{second:?} ({spin})");
    let text = collector.render_prometheus();
    for gauge in ["process_cpu_percent", "process_resident_memory_bytes", "process_threads", "process_open_fds"] {
        assert!(text.contains(&format!("\n{gauge} ")), "{gauge} missing from:\n{text}");
    }
}

#[test]
fn dashboards_serialize_and_the_history_is_bounded() {
    let (clock, mock) = Clock::mock();
    let collector = Collector::builder("desk").clock(clock).history(3).build();
    collector.increment_counter("orders", 2, &[("venue", "XLON")]).unwrap();
    collector.set_gauge("open_orders", 5.0, &[]).unwrap();
    collector.record_histogram("fill_size", 100.0, &[]).unwrap();
    collector.record_transaction("place_order", Duration::from_millis(3), true).unwrap();
    collector.set_sla_threshold("place_order", Duration::from_millis(10)).unwrap();
    for _ in 0..5 {
        mock.increment(Duration::from_secs(1));
        collector.record_dashboard();
    }
    let history = collector.history();
    assert_eq!(history.len(), 3, "the ring keeps the last three");
    assert_eq!(history[0].at_seconds, 3.0);
    let dashboard = collector.dashboard();
    assert_eq!(dashboard.counters.iter().find(|series| series.name == "orders").map(|series| series.value), Some(2));
    assert_eq!(dashboard.transactions[0].0, "place_order");
    assert_eq!(dashboard.slas.len(), 1);
    let json = serde_json::to_string(&dashboard).unwrap();
    assert!(json.contains("\"service\":\"desk\"") && json.contains("\"open_orders\""), "{json}");
}

#[test]
fn windowed_histograms_keep_recent_traffic() {
    let (clock, mock) = Clock::mock();
    let collector = Collector::builder("svc").clock(clock).build();
    let sizes = collector.windowed_histogram("fill_size", "Fill sizes.", &[("venue", "XLON")]).unwrap();
    let same = collector.windowed_histogram("fill_size", "", &[("venue", "XLON")]).unwrap();
    for _ in 0..100 {
        mock.increment(Duration::from_millis(500));
        sizes.record(100.0);
    }
    same.record(100.0);
    assert_eq!(sizes.total().count, 101);
    let minute = sizes.last_minute();
    assert!((minute.per_second - 2.0).abs() < 0.4, "{}", minute.per_second);
    assert!(minute.snapshot.count >= 100 && minute.snapshot.count <= 101);
    assert_eq!(sizes.last_five_minutes().snapshot.count, 101, "handles share one set of windows");
    mock.increment(Duration::from_secs(120));
    assert_eq!(sizes.last_minute().snapshot.count, 0);
    assert_eq!(sizes.last_five_minutes().snapshot.count, 101);
    assert_eq!(sizes.total().quantile(0.5), 100.0);
    assert!(collector.render_prometheus().contains("fill_size_count{venue=\"XLON\"} 101"));
}
