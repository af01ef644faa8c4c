//! The collector's contract: naming rules, kinds, cardinality, exposition, exact counts under threads,
//! and quantiles within the promised error.

use infra_apm::{ApmError, Collector, RELATIVE_ERROR};
use proptest::prelude::*;

#[test]
fn bad_names_and_labels_are_typed_errors() {
    let collector = Collector::builder("svc").build();
    assert!(matches!(collector.counter("9lives", "", &[]), Err(ApmError::InvalidMetricName { .. })));
    assert!(matches!(collector.counter("ok", "", &[("bad-label", "x")]), Err(ApmError::InvalidLabelName { .. })));
    assert!(matches!(collector.histogram("h", "", &[("le", "1")]), Err(ApmError::InvalidLabelName { .. })));
    assert!(matches!(collector.gauge("g", "", &[("a", "1"), ("a", "2")]), Err(ApmError::DuplicateLabel { .. })));
    collector.counter("requests", "", &[]).unwrap();
    let error = collector.gauge("requests", "", &[]).unwrap_err();
    assert!(matches!(error, ApmError::KindConflict { existing: "counter", requested: "gauge", .. }), "{error}");
    assert!(error.to_string().contains("use another name"));
    assert!(matches!(collector.set_gauge("g", f64::NAN, &[]), Err(ApmError::NotFinite { .. })));
    assert!(matches!(collector.record_histogram("h", -1.0, &[]), Err(ApmError::NegativeObservation { .. })));
}

#[test]
fn units_follow_the_openmetrics_rule() {
    let collector = Collector::builder("svc").build();
    assert!(matches!(collector.set_unit("latency", "seconds"), Err(ApmError::InvalidUnit { .. })));
    assert!(matches!(collector.set_unit("latency_seconds", "sec onds"), Err(ApmError::InvalidUnit { .. })));
    collector.set_unit("latency_seconds", "seconds").unwrap();
    collector.histogram("latency_seconds", "Latency.", &[]).unwrap().record(0.1);
    collector.counter("sent_bytes", "Bytes sent.", &[]).unwrap().add(10);
    collector.set_unit("sent_bytes", "bytes").unwrap();
    let open = collector.render_openmetrics();
    assert!(open.contains("# TYPE latency_seconds histogram\n# UNIT latency_seconds seconds\n"), "{open}");
    assert!(open.contains("# TYPE sent_bytes counter\n# UNIT sent_bytes bytes\n"), "{open}");
    assert!(!collector.render_prometheus().contains("# UNIT"), "0.0.4 has no UNIT line");
}

#[test]
fn label_order_does_not_make_a_new_series() {
    let collector = Collector::builder("svc").build();
    collector.increment_counter("fills", 2, &[("venue", "XLON"), ("side", "buy")]).unwrap();
    collector.increment_counter("fills", 3, &[("side", "buy"), ("venue", "XLON")]).unwrap();
    let counter = collector.counter("fills", "", &[("side", "buy"), ("venue", "XLON")]).unwrap();
    assert_eq!(counter.value(), 5);
}

#[test]
fn the_by_name_fast_path_keeps_kinds_apart() {
    let collector = Collector::builder("svc").build();
    collector.set_gauge("depth", 3.0, &[("book", "EURUSD")]).unwrap();
    collector.set_gauge("depth", 4.0, &[("book", "EURUSD")]).unwrap();
    assert!(matches!(
        collector.increment_counter("depth", 1, &[("book", "EURUSD")]),
        Err(ApmError::KindConflict { existing: "gauge", requested: "counter", .. })
    ));
    assert_eq!(collector.gauge("depth", "", &[("book", "EURUSD")]).unwrap().value(), 4.0);
}

#[test]
fn one_bad_label_cannot_exhaust_memory() {
    let collector = Collector::builder("svc").cardinality_limit(10).build();
    for id in 0..1_000 {
        collector.increment_counter("requests", 1, &[("user", &id.to_string())]).unwrap();
    }
    let text = collector.render_prometheus();
    assert_eq!(text.matches("requests_total{user=").count(), 10);
    assert!(text.contains("requests_total{overflow=\"true\"} 990"), "{text}");
    assert!(text.contains("infra_apm_rejected_label_sets_total{metric=\"requests\"} 990"), "{text}");
}

#[test]
fn the_exposition_is_exact() {
    let collector = Collector::builder("svc").buckets([0.1, 1.0]).build();
    collector.counter("orders", "Orders \\ accepted.\nAll venues.", &[("venue", "a\"b\\c\nd")]).unwrap().add(3);
    collector.gauge("temperature_celsius", "", &[("room", "zürich")]).unwrap().set(21.5);
    let latency = collector.histogram("latency_seconds", "Round trip.", &[]).unwrap();
    for value in [0.05, 0.5, 0.5, 2.0] {
        latency.record(value);
    }
    latency.record(f64::NAN);
    let text = collector.render_prometheus();
    assert_eq!(
        text,
        "# HELP latency_seconds Round trip.\n\
         # TYPE latency_seconds histogram\n\
         latency_seconds_bucket{le=\"0.1\"} 1\n\
         latency_seconds_bucket{le=\"1\"} 3\n\
         latency_seconds_bucket{le=\"+Inf\"} 4\n\
         latency_seconds_sum 3.05\n\
         latency_seconds_count 4\n\
         # HELP orders_total Orders \\\\ accepted.\\nAll venues.\n\
         # TYPE orders_total counter\n\
         orders_total{venue=\"a\\\"b\\\\c\\nd\"} 3\n\
         # TYPE temperature_celsius gauge\n\
         temperature_celsius{room=\"zürich\"} 21.5\n\
         # HELP infra_apm_rejected_observations_total Values refused because they were NaN, infinite, or negative for a histogram.\n\
         # TYPE infra_apm_rejected_observations_total counter\n\
         infra_apm_rejected_observations_total{metric=\"latency_seconds\"} 1\n"
    );
}

#[test]
fn two_threads_count_exactly() {
    let collector = Collector::builder("svc").build();
    let counter = collector.counter("events", "", &[]).unwrap();
    let histogram = collector.histogram("sizes", "", &[]).unwrap();
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                for i in 0..100_000u64 {
                    counter.inc();
                    histogram.record((i % 1000) as f64);
                }
            });
        }
    });
    assert_eq!(counter.value(), 200_000);
    let snapshot = histogram.snapshot();
    assert_eq!(snapshot.count, 200_000);
    assert_eq!(snapshot.sum, 2.0 * 100.0 * (0..1000).sum::<u64>() as f64);
    assert_eq!((snapshot.min, snapshot.max), (0.0, 999.0));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn quantiles_are_within_the_error_bound(
        values in prop::collection::vec(1e-5f64..1e6, 1..2_000),
        q in 0.0f64..=1.0,
    ) {
        let collector = Collector::builder("svc").build();
        let histogram = collector.histogram("h", "", &[]).unwrap();
        for &value in &values {
            histogram.record(value);
        }
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        let exact = sorted[rank - 1];
        let estimate = histogram.snapshot().quantile(q);
        prop_assert!(((estimate - exact) / exact).abs() <= RELATIVE_ERROR + 1e-12,
            "q {} exact {} estimate {}", q, exact, estimate);
    }

    #[test]
    fn merging_equals_recording_together(a in prop::collection::vec(0.0f64..1e4, 0..500), b in prop::collection::vec(0.0f64..1e4, 0..500)) {
        let collector = Collector::builder("svc").build();
        let (left, right, both) = (
            collector.histogram("a", "", &[]).unwrap(),
            collector.histogram("b", "", &[]).unwrap(),
            collector.histogram("c", "", &[]).unwrap(),
        );
        a.iter().for_each(|&v| { left.record(v); both.record(v); });
        b.iter().for_each(|&v| { right.record(v); both.record(v); });
        let mut merged = left.snapshot();
        merged.merge(&right.snapshot());
        let together = both.snapshot();
        prop_assert_eq!(merged.count, together.count);
        prop_assert_eq!(&merged.buckets, &together.buckets);
        prop_assert_eq!((merged.min, merged.max), (together.min, together.max));
        for q in [0.5, 0.9, 0.99] {
            prop_assert_eq!(merged.quantile(q), together.quantile(q));
        }
    }
}
