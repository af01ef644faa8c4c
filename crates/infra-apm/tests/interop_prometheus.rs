//! A real Prometheus (2.42, from Debian) scrapes the `/metrics` listener; queries through its HTTP API
//! return what was recorded: a counter's value and rate, and `histogram_quantile` within a bucket.
#![cfg(feature = "http")]

use std::time::Duration;

use infra_apm::Collector;
use infra_testkit::{Service, http_request, service_path, start_prometheus, temp_dir, wait_until};

fn query(port: u16, expression: &str) -> Option<f64> {
    let encoded: String = expression
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"_-.".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }
        })
        .collect();
    let response =
        http_request(([127, 0, 0, 1], port).into(), "GET", &format!("/api/v1/query?query={encoded}"), None).ok()?;
    let json: serde_json::Value = serde_json::from_str(&response.body).ok()?;
    json["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

#[test]
fn interop_prometheus_scrapes_what_we_recorded() {
    let Some(prometheus) = service_path(Service::Prometheus) else {
        return;
    };
    let collector = Collector::builder("svc").buckets([0.001, 0.002, 0.005, 0.01, 0.02, 0.05]).build();
    let orders = collector.counter("orders", "Orders accepted.", &[("venue", "XLON")]).unwrap();
    let latency = collector.histogram("latency_seconds", "Order latency.", &[]).unwrap();
    orders.add(42);
    for i in 0..1000 {
        // Uniform over 1..=10 ms: the median is 5 ms.
        latency.record(0.001 + 0.009 * f64::from(i) / 999.0);
    }
    let server = collector.serve("127.0.0.1:0").unwrap();

    let dir = temp_dir();
    let (_prometheus, address) = start_prometheus(&prometheus, dir.path(), &[server.local_addr()]).unwrap();
    let port = address.port();

    wait_until(Duration::from_secs(60), || {
        query(port, "orders_total{venue=\"XLON\"}").filter(|v| *v == 42.0).ok_or("no scrape yet")
    })
    .unwrap();
    // More orders between scrapes: the rate over the window must be positive.
    for _ in 0..5 {
        orders.add(10);
        std::thread::sleep(Duration::from_millis(1100));
    }
    // 10 orders about every 1.1 s: the rate over the last 10 s is about 9 a second (scrape timing moves
    // it a little; an idle counter would give 0).
    let rate = wait_until(Duration::from_secs(30), || {
        query(port, "rate(orders_total{venue=\"XLON\"}[10s])").filter(|v| *v > 0.0).ok_or("no rate yet")
    })
    .unwrap();
    assert!((3.0..=20.0).contains(&rate), "rate {rate}");
    let median = query(port, "histogram_quantile(0.5, latency_seconds_bucket)").unwrap();
    // Uniform values: Prometheus's interpolation inside (0.005, 0.01] lands on the true median, 5.5 ms,
    // up to our boundary resolution (a fine bucket counts under a bound by its midpoint).
    assert!((median - 0.0055).abs() <= 0.0055 * 0.02, "median {median}");
    let exact_within_error = latency.snapshot().quantile(0.5);
    assert!((exact_within_error - 0.0055).abs() <= 0.0055 * infra_apm::RELATIVE_ERROR + 1e-5, "{exact_within_error}");
}
