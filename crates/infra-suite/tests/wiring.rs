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

#[test]
fn chaos_injections_are_logged_and_counted() {
    use infra_suite::chaos::{Experiment, Fault, Target};
    let suite = InfraSuite::builder("order-gateway").log_burst_limit(5).build().unwrap();
    let id = suite.chaos().create_experiment(Experiment::new(Target::point("venue.send"), Fault::Error)).unwrap();
    suite.chaos().start_experiment(id).unwrap();
    let failed = (0..50).filter(|_| suite.chaos().check("venue.send").is_err()).count();
    assert_eq!(failed, 50);
    let text = suite.apm().render_prometheus();
    assert!(text.contains("chaos_injections_total{kind=\"error\",point=\"venue.send\"} 50"), "{text}");
    suite.logs().flush();
    let logged =
        suite.log_memory().search(&infra_suite::log::Query { component: Some("chaos".into()), ..Default::default() });
    let first = logged.iter().find(|e| e.message == "chaos injection").expect("injections are logged");
    assert_eq!(first.field("point").map(ToString::to_string).as_deref(), Some("venue.send"));
    assert!(logged.len() < 50, "a flood folds into 'suppressed N similar': {} entries", logged.len());
    suite.shutdown(Duration::from_secs(1));
}

#[test]
fn an_experiments_steady_state_reads_apm_and_aborts_it() {
    use infra_suite::chaos::{Experiment, ExperimentState, Fault, Target};
    let (clock, time) = quanta::Clock::mock();
    let suite = InfraSuite::builder("order-gateway").clock(clock).build().unwrap();
    let id = suite
        .chaos()
        .create_experiment(
            Experiment::new(Target::point("venue.send"), Fault::Error)
                .probability(0.5)
                .steady_state(Duration::from_secs(5), suite.steady_state("order", 0.05, None)),
        )
        .unwrap();
    suite.chaos().start_experiment(id).unwrap();
    time.increment(Duration::from_secs(5));
    suite.chaos().tick();
    assert_eq!(suite.chaos().results(id).unwrap().state, ExperimentState::Running, "no orders yet: holds");
    for _ in 0..200 {
        let ok = suite.chaos().check("venue.send").is_ok();
        suite.apm().record_transaction("order", Duration::from_micros(80), ok).unwrap();
    }
    time.increment(Duration::from_secs(5));
    suite.chaos().tick();
    let results = suite.chaos().results(id).unwrap();
    assert_eq!(results.state, ExperimentState::Aborted, "about half the orders failed: {results:?}");
    suite.shutdown(Duration::from_secs(1));
}

#[test]
fn a_canarys_analysis_reads_its_own_error_rate_and_latency_from_apm() {
    use infra_suite::deploy::{CanaryPlan, HealthTarget, Phase, Rollout, Step};
    let (clock, time) = quanta::Clock::mock();
    let suite = InfraSuite::builder("order-gateway").clock(clock).build().unwrap();
    let deployer = suite.deployer();
    deployer.register("router-v1", "1.0.0", HealthTarget::None).unwrap();
    deployer.register("router-v2", "2.0.0", HealthTarget::None).unwrap();
    let analysis = |suite: &InfraSuite| {
        vec![
            Step::SetWeight(20.0),
            Step::Analyze(suite.canary_error_rate("order", "router-v2", 0.01).runs(2, Duration::from_secs(10))),
            Step::Analyze(
                suite.canary_latency("order", "router-v2", Duration::from_millis(5)).runs(1, Duration::from_secs(10)),
            ),
        ]
    };
    let rollout = Rollout::start(deployer, CanaryPlan::new("router-v2", "router-v1", analysis(&suite))).unwrap();
    // Stable errors do not count against the canary: only router-v2's own traffic does.
    for n in 0..400 {
        let (deployment, ok) = if n % 5 == 0 { ("router-v2", true) } else { ("router-v1", n % 3 != 0) };
        suite.record_deployment_transaction("order", deployment, Duration::from_micros(300), ok);
    }
    for _ in 0..4 {
        rollout.tick();
        time.increment(Duration::from_secs(10));
    }
    rollout.tick();
    assert_eq!(rollout.phase(), Phase::Promoted, "{:?}", rollout.events());
    assert!(suite.apm().transaction_stats("order").unwrap().error_rate > 0.2, "all traffic still has its errors");

    // A canary whose own requests fail is aborted.
    deployer.register("router-v3", "3.0.0", HealthTarget::None).unwrap();
    let failing = Rollout::start(
        deployer,
        CanaryPlan::new(
            "router-v3",
            "router-v2",
            vec![
                Step::SetWeight(10.0),
                Step::Analyze(suite.canary_error_rate("order", "router-v3", 0.01).runs(3, Duration::from_secs(10))),
            ],
        ),
    )
    .unwrap();
    for n in 0..100 {
        suite.record_deployment_transaction("order", "router-v3", Duration::from_micros(300), n % 4 != 0);
    }
    rollout_until_settled(&failing, &time);
    assert!(matches!(failing.phase(), Phase::Aborted { .. }), "{:?}", failing.phase());
    suite.shutdown(Duration::from_secs(1));
}

fn rollout_until_settled(rollout: &infra_suite::deploy::Rollout, time: &quanta::Mock) {
    for _ in 0..20 {
        rollout.tick();
        time.increment(Duration::from_secs(10));
    }
}

#[test]
fn flag_evaluations_pool_and_cache_stats_appear_as_metrics() {
    use infra_suite::cache::Cache;
    use infra_suite::flags::Context;
    use infra_suite::pool::{BlockingManager, BlockingPool};

    #[derive(Debug)]
    struct Sessions;
    impl BlockingManager for Sessions {
        type Connection = u32;
        type Error = std::io::Error;
        fn create(&self) -> Result<u32, std::io::Error> {
            Ok(7)
        }
    }

    let suite = InfraSuite::builder("order-gateway").build().unwrap();
    suite
        .flags()
        .load_json(r#"{"version": 2, "features": [{"name": "new-pricing", "enabled": true, "strategies": []}]}"#)
        .unwrap();
    for _ in 0..3 {
        suite.flags().is_enabled("new-pricing", &Context::new());
    }
    let pool = BlockingPool::builder(Sessions).max_size(4).build().unwrap();
    suite.watch_pool("venue", &pool);
    let held = pool.get().unwrap();
    let quotes: Cache<String, f64> = Cache::new(100);
    suite.watch_cache("quotes", &quotes);
    quotes.insert("EURUSD".into(), 1.08);
    quotes.get("EURUSD");
    quotes.get("GBPUSD");

    suite.evaluate();
    suite.evaluate(); // a second publication adds nothing: counters grow by what the totals grew
    let text = suite.apm().render_prometheus();
    for expected in [
        "flag_evaluations_total{flag=\"new-pricing\",result=\"enabled\"} 3",
        "pool_connections{pool=\"venue\",state=\"in_use\"} 1",
        "pool_acquisitions_total{pool=\"venue\"} 1",
        "cache_requests_total{cache=\"quotes\",result=\"hit\"} 1",
        "cache_requests_total{cache=\"quotes\",result=\"miss\"} 1",
        "cache_entries{cache=\"quotes\"} 1",
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
    drop(held);
    suite.shutdown(Duration::from_secs(1));
}

#[test]
fn the_evaluator_thread_raises_a_breach_without_the_host_calling_evaluate() {
    let suite = InfraSuite::builder("order-gateway").build().unwrap();
    suite.apm().set_sla("orders", Objective::ErrorRate { max: 0.01 }, SlaWindow::OneMinute).unwrap();
    for n in 0..100 {
        suite.apm().record_transaction("orders", Duration::from_millis(1), n % 5 != 0).unwrap();
    }
    assert!(suite.start(Duration::ZERO).is_err());
    let worker = suite.start(Duration::from_millis(10)).unwrap();
    let started = std::time::Instant::now();
    while suite.alerts().open_alerts(None).is_empty() {
        assert!(started.elapsed() < Duration::from_secs(10), "the evaluator never raised the breach");
        std::thread::sleep(Duration::from_millis(5));
    }
    worker.stop();
    suite.shutdown(Duration::from_secs(1));
}
