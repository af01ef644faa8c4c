//! The suite's wiring, end to end: logs carry trace ids, spans feed APM, SLA breaches raise alerts and
//! recoveries resolve them, shutdown flushes in order.

use std::time::Duration;

use infra_suite::InfraSuite;
use infra_suite::alert::AlertStatus;
use infra_suite::apm::{Objective, SlaWindow};
use infra_suite::trace::Status;

#[test]
fn a_log_entry_written_in_a_span_carries_that_spans_ids() {
    let suite = InfraSuite::builder("order-gateway").build().unwrap();
    let (trace_id, span_id) = suite.tracer().in_span("place-order", |span| {
        suite.logs().info("order accepted", "orders");
        (span.context().trace_id(), span.context().span_id())
    });
    suite.logs().info("outside any span", "orders");
    suite.logs().flush();
    let entries = suite.log_memory().search(&Default::default());
    let inside = entries.iter().find(|e| e.message == "order accepted").unwrap();
    let trace = inside.trace.expect("the entry carries the span's context");
    assert_eq!((trace.trace_id, trace.span_id), (trace_id.to_u128(), span_id.to_u64()));
    let outside = entries.iter().find(|e| e.message == "outside any span").unwrap();
    assert!(outside.trace.is_none());
    assert_eq!(suite.log_memory().trace(trace_id.to_u128()).len(), 1, "searchable by trace id");
    suite.shutdown(Duration::from_secs(1));
}

#[test]
fn every_finished_span_records_its_duration_by_operation_and_outcome() {
    let suite = InfraSuite::builder("order-gateway").build().unwrap();
    for _ in 0..3 {
        suite.tracer().in_span("place-order", |_| std::thread::sleep(Duration::from_millis(2)));
    }
    suite.tracer().in_span("cancel-order", |span| span.set_status(Status::Error("venue down".into())));
    suite.tracer().force_flush();
    let text = suite.apm().render_prometheus();
    assert!(text.contains("span_duration_seconds_count{operation=\"place-order\",outcome=\"ok\"} 3"), "{text}");
    assert!(text.contains("span_duration_seconds_count{operation=\"cancel-order\",outcome=\"error\"} 1"), "{text}");
    suite.shutdown(Duration::from_secs(1));
}

#[test]
fn an_sla_breach_raises_an_alert_and_the_recovery_resolves_it() {
    let (clock, time) = quanta::Clock::mock();
    let suite = InfraSuite::builder("order-gateway").clock(clock).build().unwrap();
    suite.apm().set_sla("orders", Objective::ErrorRate { max: 0.01 }, SlaWindow::OneMinute).unwrap();
    for n in 0..100 {
        suite.apm().record_transaction("orders", Duration::from_millis(1), n % 10 != 0).unwrap();
    }
    suite.evaluate();
    let open = suite.alerts().open_alerts(None);
    assert_eq!(open.len(), 1, "10% errors breach a 1% objective");
    let alert = &open[0];
    assert_eq!((alert.title.as_str(), alert.labels.get("transaction")), ("SlaBreach", "orders"));
    suite.evaluate();
    assert_eq!(suite.alerts().statistics().created, 1, "one alert per breach episode");

    // A minute of clean traffic: the window forgets the errors, the objective recovers.
    time.increment(Duration::from_secs(61));
    for _ in 0..100 {
        suite.apm().record_transaction("orders", Duration::from_millis(1), true).unwrap();
    }
    suite.evaluate();
    assert_eq!(suite.alerts().get(alert.id).unwrap().status, AlertStatus::Resolved);
    suite.logs().flush();
    let said: Vec<String> =
        suite.log_memory().search(&Default::default()).into_iter().map(|e| e.message.to_string()).collect();
    assert!(
        said.contains(&"SLA breached: orders".to_owned()) && said.contains(&"SLA recovered: orders".to_owned()),
        "{said:?}"
    );
    suite.shutdown(Duration::from_secs(1));
}

#[test]
fn shutdown_exports_pending_spans_into_metrics_and_stops_chaos() {
    use infra_suite::chaos::{Experiment, Fault, Target};
    let suite = InfraSuite::builder("order-gateway").build().unwrap();
    let id = suite.chaos().create_experiment(Experiment::new(Target::Any, Fault::Error)).unwrap();
    suite.chaos().start_experiment(id).unwrap();
    suite.tracer().in_span("late-span", |_| {});
    assert!(suite.shutdown(Duration::from_secs(2)));
    assert!(suite.chaos().is_killed());
    assert!(suite.apm().render_prometheus().contains("operation=\"late-span\""), "spans flushed into APM at shutdown");
}
