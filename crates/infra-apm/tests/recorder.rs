//! The `metrics` crate's macros report into the collector (feature `metrics`).
#![cfg(feature = "metrics")]

use infra_apm::Collector;

#[test]
fn metrics_macros_land_in_the_collector() {
    let collector = Collector::builder("svc").build();
    let recorder = collector.recorder();
    metrics::with_local_recorder(&recorder, || {
        metrics::describe_counter!("http.requests", "Requests served.");
        metrics::counter!("http.requests", "method" => "GET", "route.name" => "/quotes").increment(3);
        metrics::counter!("http.requests", "method" => "GET", "route.name" => "/quotes").absolute(10);
        metrics::gauge!("queue.depth").set(4.0);
        metrics::gauge!("queue.depth").decrement(1.5);
        metrics::histogram!("latency").record(0.25);
        // The same name as another kind: refused, and counted.
        metrics::gauge!("http.requests").set(1.0);
    });
    let text = collector.render_prometheus();
    assert!(text.contains("# HELP http_requests_total Requests served.\n"), "{text}");
    assert!(text.contains("http_requests_total{method=\"GET\",route_name=\"/quotes\"} 10\n"), "{text}");
    assert!(text.contains("queue_depth 2.5\n"), "{text}");
    assert!(text.contains("latency_count 1\n"), "{text}");
    assert!(text.contains("infra_apm_recorder_rejected_total{metric=\"http_requests\"} 1\n"), "{text}");
}
