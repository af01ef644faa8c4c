//! The OpenMetrics output parses with the OpenMetrics parser of the Python `prometheus_client`
//! package (installed by `cargo xtask services up` under target/), label values and all.

use std::process::Command;

use infra_apm::Collector;
use infra_testkit::{Service, run_with_input, service_path};

const PARSE: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
families = list(text_string_to_metric_families(sys.stdin.read()))
print(json.dumps([[f.name, f.type, [[s.name, s.labels, s.value] for s in f.samples], f.unit] for f in families]))
"#;

#[test]
fn interop_python_parses_the_openmetrics_output() {
    let Some(folder) = service_path(Service::PythonPrometheusClient) else {
        return;
    };
    let collector = Collector::builder("svc").buckets([0.01, 0.1, 1.0]).build();
    let awkward = [("venue", "a\"b\\c\nd"), ("city", "zürich ✓")];
    collector.counter("orders", "Orders \\ accepted.\nAll venues.", &awkward).unwrap().add(7);
    collector.gauge("open_orders", "Open orders.", &awkward).unwrap().set(-3.5);
    collector.set_unit("latency_seconds", "seconds").unwrap();
    let latency = collector.histogram("latency_seconds", "Round trip.", &awkward).unwrap();
    for value in [0.005, 0.05, 0.5, 5.0] {
        latency.record(value);
    }
    collector.record_transaction("place_order", std::time::Duration::from_millis(2), false).unwrap();
    let text = collector.render_openmetrics();

    let output =
        run_with_input(Command::new("python3").args(["-c", PARSE]).env("PYTHONPATH", &folder), text.as_bytes())
            .unwrap();
    assert!(output.status.success(), "the parser refused:\n{text}\n{}", String::from_utf8_lossy(&output.stderr));
    let families: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let family = |name: &str| {
        families.as_array().unwrap().iter().find(|family| family[0] == name).unwrap_or_else(|| panic!("{name} missing"))
    };
    let orders = family("orders");
    assert_eq!(orders[1], "counter");
    let sample = &orders[2][0];
    assert_eq!(sample[0], "orders_total");
    assert_eq!(sample[1]["venue"], "a\"b\\c\nd", "label values decode to what was recorded");
    assert_eq!(sample[1]["city"], "zürich ✓");
    assert_eq!(sample[2], 7.0);
    assert_eq!(family("open_orders")[2][0][2], -3.5);
    let latency = family("latency_seconds");
    assert_eq!(latency[1], "histogram");
    assert_eq!(latency[3], "seconds");
    let count = latency[2].as_array().unwrap().iter().find(|s| s[0] == "latency_seconds_count").unwrap();
    assert_eq!(count[2], 4.0);
    assert_eq!(family("transactions")[1], "counter");
}
