//! HTTP notifiers: the webhook payload (version 4) as a receiver gets it, a real Alertmanager fed and
//! resolved by the client (interop tier), and the worker delivering what is due when it stops.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use infra_alert::{
    AlertManager, AlertmanagerNotifier, Labels, MemoryNotifier, NewAlert, Route, RouteTree, Severity, WebhookNotifier,
};
use serde_json::Value;

/// Accepts one HTTP request on loopback, answers 200, and hands back its body.
fn capture_one() -> (String, std::thread::JoinHandle<Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        let body_start = loop {
            let n = stream.read(&mut buf).unwrap();
            raw.extend_from_slice(&buf[..n]);
            if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
        };
        let head = String::from_utf8_lossy(&raw[..body_start]).to_lowercase();
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .map(|value| value.trim().parse().unwrap())
            .unwrap();
        while raw.len() < body_start + length {
            let n = stream.read(&mut buf).unwrap();
            raw.extend_from_slice(&buf[..n]);
        }
        stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
        serde_json::from_slice(&raw[body_start..body_start + length]).unwrap()
    });
    (url, handle)
}

fn tree(receiver: &str, group_wait: Duration, group_interval: Duration) -> RouteTree {
    RouteTree::new(
        Route::to(receiver).group_by(["alertname"]).group_wait(group_wait).group_interval(group_interval),
        &[receiver],
    )
    .unwrap()
}

#[test]
fn the_webhook_payload_is_alertmanagers_version_4() {
    let (url, captured) = capture_one();
    let (clock, time) = quanta::Clock::mock();
    let manager = AlertManager::builder("orders")
        .clock(clock)
        .routes(tree("hook", Duration::from_secs(10), Duration::from_secs(60)))
        .receiver("hook", WebhookNotifier::new(url, "http://infra.example/alerts", Duration::from_secs(5)))
        .build()
        .unwrap();
    let id = manager
        .create_alert(
            NewAlert::new(Severity::Critical, "DiskFull").label("host", "db-1").annotation("summary", "disk full"),
        )
        .unwrap()
        .id();
    time.increment(Duration::from_secs(10));
    manager.tick();
    let payload = captured.join().unwrap();
    let fingerprint = manager.get(id).unwrap().fingerprint.to_string();
    assert_eq!(payload["version"], "4");
    assert_eq!(payload["receiver"], "hook");
    assert_eq!(payload["status"], "firing");
    assert_eq!(payload["groupKey"], "{}:{alertname=\"DiskFull\"}");
    assert_eq!(payload["truncatedAlerts"], 0);
    assert_eq!(payload["groupLabels"], serde_json::json!({"alertname": "DiskFull"}));
    assert_eq!(payload["commonLabels"]["host"], "db-1");
    assert_eq!(payload["commonAnnotations"]["summary"], "disk full");
    assert_eq!(payload["externalURL"], "http://infra.example/alerts");
    let alert = &payload["alerts"][0];
    assert_eq!((alert["status"].as_str(), alert["fingerprint"].as_str()), (Some("firing"), Some(fingerprint.as_str())));
    assert_eq!(alert["endsAt"], "0001-01-01T00:00:00Z");
    let starts = alert["startsAt"].as_str().unwrap();
    assert!(time::OffsetDateTime::parse(starts, &time::format_description::well_known::Rfc3339).is_ok(), "{starts}");
    assert_eq!(manager.statistics().notifications_sent, 1);
}

#[test]
fn stopping_the_worker_delivers_what_is_due() {
    let memory = MemoryNotifier::new();
    let manager = AlertManager::builder("orders")
        .routes(tree("ops", Duration::from_millis(30), Duration::from_secs(60)))
        .receiver("ops", memory.clone())
        .build()
        .unwrap();
    // A worker that would not tick again for an hour: only its stop can flush the group.
    let worker = manager.start(Duration::from_secs(3600)).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    manager.create_alert(NewAlert::new(Severity::Warning, "SlowFills")).unwrap();
    std::thread::sleep(Duration::from_millis(40));
    assert!(memory.received().is_empty());
    worker.stop();
    assert_eq!(memory.received().len(), 1, "the due group was flushed and delivered by the stop");
    assert!(manager.start(Duration::ZERO).is_err());
}

#[test]
fn interop_alertmanager_receives_and_resolves_our_alerts() {
    let Some(binary) = infra_testkit::service_path(infra_testkit::Service::Alertmanager) else { return };
    let dir = infra_testkit::temp_dir();
    let config = "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n";
    let (_server, addr) = infra_testkit::start_alertmanager(&binary, dir.path(), config).expect("alertmanager starts");
    let notifier = AlertmanagerNotifier::new(
        &format!("http://{addr}"),
        "http://infra.example",
        Duration::from_secs(3600),
        Duration::from_secs(5),
    );
    let manager = AlertManager::builder("orders")
        .routes(tree("am", Duration::from_millis(20), Duration::from_millis(50)))
        .receiver("am", notifier)
        .build()
        .unwrap();
    let id = manager.create_alert(NewAlert::new(Severity::Critical, "VenueDown").label("venue", "xnas")).unwrap().id();
    std::thread::sleep(Duration::from_millis(30));
    manager.tick();
    assert_eq!(manager.statistics().notifications_sent, 1, "{:?}", manager.dead_letters());

    let listed = |addr| -> Vec<Value> {
        let response = infra_testkit::http_request(addr, "GET", "/api/v2/alerts", None).unwrap();
        serde_json::from_str(&response.body).unwrap()
    };
    let alerts = listed(addr);
    assert_eq!(alerts.len(), 1);
    let ours = manager.get(id).unwrap();
    assert_eq!(alerts[0]["fingerprint"].as_str().unwrap(), ours.fingerprint.to_string());
    assert_eq!(alerts[0]["status"]["state"], "active");
    let labels: Labels = alerts[0]["labels"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(labels, ours.labels);

    manager.resolve(id).unwrap();
    std::thread::sleep(Duration::from_millis(60));
    manager.tick();
    assert_eq!(manager.statistics().notifications_sent, 2);
    let resolved = infra_testkit::wait_until(Duration::from_secs(5), || {
        let alerts = listed(addr);
        if alerts.is_empty() { Ok(()) } else { Err(format!("still listed: {alerts:?}")) }
    });
    resolved.expect("the resolution reaches Alertmanager");
}
