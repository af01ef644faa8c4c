//! promtool (from the `prometheus` package) accepts the exposition of a collector that uses every
//! instrument, with labels holding quotes, backslashes, newlines and non-ASCII text.

use std::process::Command;

use infra_apm::Collector;
use infra_testkit::{Service, run_with_input, service_path};

#[test]
fn interop_promtool_accepts_the_exposition() {
    let Some(promtool) = service_path(Service::Promtool) else {
        return;
    };
    let collector = Collector::builder("svc").cardinality_limit(3).build();
    let awkward = [("venue", "a\"b\\c\nd"), ("city", "zürich ✓")];
    collector.counter("orders", "Orders \\ accepted.\nAll venues.", &awkward).unwrap().add(7);
    collector.counter("fills_total", "Fills.", &[]).unwrap().inc();
    collector.gauge("open_orders", "Open orders.", &awkward).unwrap().set(-3.5);
    let latency = collector.histogram("latency_seconds", "Round trip.", &awkward).unwrap();
    for value in [0.0, 1e-7, 0.004, 0.3, 7.0, 1e3] {
        latency.record(value);
    }
    latency.record(f64::NAN);
    collector.counter("logins", "Logins, by user.", &[("user", "0")]).unwrap();
    for user in 0..10 {
        collector.increment_counter("logins", 1, &[("user", &user.to_string())]).unwrap();
    }
    let text = collector.render_prometheus();

    let output = run_with_input(Command::new(&promtool).args(["check", "metrics"]), text.as_bytes()).unwrap();
    // Exit 0: parsed, and no lint remark either (promtool exits 3 for remarks such as a missing help).
    assert!(output.status.success(), "promtool refused:\n{text}\n{output:?}");
}
