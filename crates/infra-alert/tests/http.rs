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

/// Every POST the receiver got: path, arrival, payload.
type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, std::time::Instant, Value)>>>;

/// One webhook as compared: status, group key, firing and resolved fingerprints.
type Batch = (String, String, Vec<String>, Vec<String>);

/// A loopback webhook receiver that records every POST.
fn recording_receiver() -> (std::net::SocketAddr, Received) {
    use std::sync::{Arc, Mutex};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&log);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let sink = Arc::clone(&sink);
            std::thread::spawn(move || {
                // Keep-alive: read requests until the client closes.
                let mut raw = Vec::new();
                let mut buf = [0u8; 8192];
                loop {
                    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => raw.extend_from_slice(&buf[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&raw[..end]).to_string();
                    let path = head.split_whitespace().nth(1).unwrap_or_default().to_owned();
                    let length: usize = head
                        .lines()
                        .find_map(|line| {
                            line.to_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    while raw.len() < end + 4 + length {
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => raw.extend_from_slice(&buf[..n]),
                        }
                    }
                    let body: Value = serde_json::from_slice(&raw[end + 4..end + 4 + length]).unwrap_or(Value::Null);
                    sink.lock().unwrap().push((path, std::time::Instant::now(), body));
                    raw.drain(..end + 4 + length);
                    if stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, log)
}

/// What both sides must agree on: status, group key, firing and resolved fingerprints.
fn batch(payload: &Value) -> Batch {
    let fingerprints = |status: &str| {
        let mut list: Vec<String> = payload["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|alert| alert["status"] == status)
            .map(|alert| alert["fingerprint"].as_str().unwrap().to_owned())
            .collect();
        list.sort();
        list
    };
    (
        payload["status"].as_str().unwrap().to_owned(),
        payload["groupKey"].as_str().unwrap().to_owned(),
        fingerprints("firing"),
        fingerprints("resolved"),
    )
}

#[test]
fn interop_alertmanager_timeline_matches_ours() {
    let Some(binary) = infra_testkit::service_path(infra_testkit::Service::Alertmanager) else { return };
    let (hook, log) = recording_receiver();
    let dir = infra_testkit::temp_dir();
    let config = format!(
        "route:\n  receiver: hook\n  group_by: ['alertname']\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n\
         receivers:\n  - name: hook\n    webhook_configs:\n      - url: 'http://{hook}/am'\n        send_resolved: true\n"
    );
    let (_server, am) = infra_testkit::start_alertmanager(&binary, dir.path(), &config).expect("alertmanager starts");

    let tree = RouteTree::new(
        Route::to("hook")
            .group_by(["alertname"])
            .group_wait(Duration::from_secs(1))
            .group_interval(Duration::from_secs(1))
            .repeat_interval(Duration::from_secs(3600)),
        &["hook"],
    )
    .unwrap();
    let ours = AlertManager::builder("timeline")
        .routes(tree)
        .receiver(
            "hook",
            WebhookNotifier::new(format!("http://{hook}/infra"), "http://infra.example", Duration::from_secs(5)),
        )
        .build()
        .unwrap();
    let worker = ours.start(Duration::from_millis(5)).unwrap();

    // Pushes the same label set to Alertmanager, firing or resolved now.
    let push = |labels: &Labels, resolved: bool| {
        let now = std::time::SystemTime::now();
        let ends = if resolved { now } else { now + Duration::from_secs(3600) };
        let fmt = |t: std::time::SystemTime| {
            time::OffsetDateTime::from(t).format(&time::format_description::well_known::Rfc3339).unwrap()
        };
        let object: serde_json::Map<String, Value> =
            labels.iter().map(|(k, v)| (k.to_owned(), Value::String(v.to_owned()))).collect();
        let body = serde_json::json!([{ "labels": object, "startsAt": fmt(now - Duration::from_millis(1)), "endsAt": fmt(ends) }]);
        let body = serde_json::to_vec(&body).unwrap();
        let response =
            infra_testkit::http_request(am, "POST", "/api/v2/alerts", Some(("application/json", &body))).unwrap();
        assert_eq!(response.status, 200, "{}", response.body);
    };
    let raise = |title: &str, instance: &str| {
        let id = ours
            .create_alert(NewAlert::new(Severity::Critical, title).source("svc").label("instance", instance))
            .unwrap()
            .id();
        push(&ours.get(id).unwrap().labels, false);
        id
    };
    let resolve = |id| {
        let labels = ours.get(id).unwrap().labels;
        ours.resolve(id).unwrap();
        push(&labels, true);
    };

    let started = std::time::Instant::now();
    let wait_until = |at_ms: u64| {
        let target = started + Duration::from_millis(at_ms);
        if let Some(left) = target.checked_duration_since(std::time::Instant::now()) {
            std::thread::sleep(left);
        }
    };
    let x1 = raise("X", "1");
    let y1 = raise("Y", "1");
    wait_until(300);
    let x2 = raise("X", "2");
    wait_until(2_500);
    resolve(x1);
    wait_until(4_500);
    resolve(y1);
    resolve(x2);
    wait_until(7_000);
    worker.stop();

    let log = log.lock().unwrap().clone();
    let side = |path: &str| -> Vec<(Duration, Batch)> {
        log.iter()
            .filter(|(p, _, _)| p == path)
            .map(|(_, at, body)| (at.duration_since(started), batch(body)))
            .collect()
    };
    let (theirs, mine) = (side("/am"), side("/infra"));
    let summary = |list: &[(Duration, Batch)]| {
        list.iter()
            .map(|(at, (status, key, firing, resolved))| format!("{at:?} {status} {key} f={firing:?} r={resolved:?}"))
            .collect::<Vec<_>>()
    };
    eprintln!("Alertmanager: {:#?}\nours: {:#?}", summary(&theirs), summary(&mine));
    assert!(theirs.len() >= 4, "Alertmanager sent {:#?}", summary(&theirs));
    assert_eq!(theirs.len(), mine.len(), "Alertmanager: {:#?}\nours: {:#?}", summary(&theirs), summary(&mine));
    // Compare per group, in order: the same batches, each within 150 ms.
    for key in ["{}:{alertname=\"X\"}", "{}:{alertname=\"Y\"}"] {
        let pick = |list: &[(Duration, Batch)]| list.iter().filter(|(_, b)| b.1 == key).cloned().collect::<Vec<_>>();
        let (theirs, mine) = (pick(&theirs), pick(&mine));
        assert_eq!(theirs.len(), mine.len(), "{key}: Alertmanager {:#?}\nours {:#?}", summary(&theirs), summary(&mine));
        for ((their_at, their_batch), (my_at, my_batch)) in theirs.iter().zip(&mine) {
            assert_eq!(their_batch, my_batch, "{key}");
            let gap = if their_at > my_at { *their_at - *my_at } else { *my_at - *their_at };
            assert!(gap <= Duration::from_millis(150), "{key}: Alertmanager at {their_at:?}, ours at {my_at:?}");
        }
    }
    let _ = (x1, y1, x2);
}
