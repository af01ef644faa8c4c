//! Fingerprints: ours equal those a real Alertmanager shows for the same label sets (interop tier), and
//! hold Prometheus's properties for any labels.

use infra_alert::Labels;
use proptest::prelude::*;
use serde_json::{Value, json};

/// Prometheus's definition, written out plainly: FNV-1a 64 over `name 0xFF value 0xFF` for each label in
/// name order.
fn reference(pairs: &std::collections::BTreeMap<String, String>) -> u64 {
    let mut bytes = Vec::new();
    for (name, value) in pairs {
        bytes.extend_from_slice(name.as_bytes());
        bytes.push(0xFF);
        bytes.extend_from_slice(value.as_bytes());
        bytes.push(0xFF);
    }
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3))
}

proptest! {
    #[test]
    fn fingerprints_follow_the_definition_in_any_insertion_order(
        pairs in proptest::collection::btree_map("[a-zA-Z_][a-zA-Z0-9_]{0,8}", "[ -~\u{80}-\u{10FF}]{1,12}", 0..8)
    ) {
        let forward: Labels = pairs.iter().map(|(n, v)| (n.clone(), v.clone())).collect();
        let backward: Labels = pairs.iter().rev().map(|(n, v)| (n.clone(), v.clone())).collect();
        prop_assert_eq!(forward.fingerprint(), backward.fingerprint());
        prop_assert_eq!(forward.fingerprint().0, reference(&pairs));
    }
}

#[test]
fn interop_alertmanager_shows_the_same_fingerprints() {
    let Some(binary) = infra_testkit::service_path(infra_testkit::Service::Alertmanager) else { return };
    let dir = infra_testkit::temp_dir();
    let config = "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n";
    let (_server, addr) = infra_testkit::start_alertmanager(&binary, dir.path(), config).expect("alertmanager starts");

    let sets: Vec<Labels> = (0..40)
        .map(|n| {
            Labels::new()
                .with("alertname", format!("Alert{}", n % 7))
                .with("instance", format!("10.0.{}.{}:9100", n / 10, n))
                .with("severity", ["critical", "warning", "info"][n % 3])
                .with("note", ["plain", "üñíçødé", "quote\"and\\slash", "a=b,c"][n % 4])
        })
        .collect();
    let body: Vec<Value> = sets
        .iter()
        .map(|labels| json!({ "labels": labels.iter().collect::<std::collections::BTreeMap<_, _>>() }))
        .collect();
    let body = serde_json::to_vec(&body).unwrap();
    let posted =
        infra_testkit::http_request(addr, "POST", "/api/v2/alerts", Some(("application/json", &body))).unwrap();
    assert_eq!(posted.status, 200, "{}", posted.body);

    let listed = infra_testkit::http_request(addr, "GET", "/api/v2/alerts", None).unwrap();
    let alerts: Vec<Value> = serde_json::from_str(&listed.body).unwrap();
    assert_eq!(alerts.len(), sets.len());
    for alert in alerts {
        let labels: Labels = alert["labels"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(name, value)| (name.clone(), value.as_str().unwrap().to_owned()))
            .collect();
        assert!(sets.contains(&labels), "an alert we did not send: {labels}");
        assert_eq!(alert["fingerprint"].as_str().unwrap(), labels.fingerprint().to_string(), "{labels}");
    }
}
