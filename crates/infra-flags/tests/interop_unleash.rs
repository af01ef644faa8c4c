//! Polling a real Unleash server (6.x, started by `cargo xtask services up`): flags created through its
//! admin API arrive, an unchanged set costs a 304, changes arrive on the next poll, and a bootstrap file
//! stands in when the server cannot be reached.
#![cfg(feature = "unleash")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use infra_flags::unleash::{PollOutcome, UnleashError, UnleashPoller};
use infra_flags::{Context, Flags, FlagsEvent};
use infra_testkit::{Service, UNLEASH_ADMIN_TOKEN, UNLEASH_CLIENT_TOKEN, free_port, service};

fn admin(url: &str, path: &str, body: Option<serde_json::Value>) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let full = format!("{url}/api/admin/projects/default/features{path}");
    let request = agent.post(&full).header("Authorization", UNLEASH_ADMIN_TOKEN);
    let mut response = match body {
        Some(body) => request.header("Content-Type", "application/json").send(body.to_string()).unwrap(),
        None => request.send_empty().unwrap(),
    };
    let status = response.status().as_u16();
    assert!(status < 300, "POST {full}: {status} {}", response.body_mut().read_to_string().unwrap_or_default());
}

#[test]
fn interop_unleash_polls_with_etags() {
    let Some(url) = service(Service::Unleash) else { return };
    let name = format!("infra-flags-{}-{}", std::process::id(), quanta::Clock::new().raw());
    admin(&url, "", Some(serde_json::json!({ "name": name })));
    admin(
        &url,
        &format!("/{name}/environments/development/strategies"),
        Some(serde_json::json!({
            "name": "flexibleRollout",
            "parameters": {"rollout": "100", "stickiness": "default", "groupId": name},
            "constraints": [{"contextName": "appName", "operator": "IN", "values": ["order-gateway"]}]
        })),
    );
    admin(&url, &format!("/{name}/environments/development/on"), None);

    let flags = Flags::new();
    let poller = UnleashPoller::builder(format!("{url}/api"), UNLEASH_CLIENT_TOKEN)
        .app_name("infra-flags-interop")
        .interval(Duration::from_secs(3600))
        .start(&flags)
        .unwrap();
    assert_eq!(poller.last_error(), None);
    let gateway = Context::new().user_id("u1").app_name("order-gateway");
    assert!(flags.is_enabled(&name, &gateway));
    assert!(!flags.is_enabled(&name, &Context::new().user_id("u1").app_name("backtest")));
    let etag = poller.etag().expect("Unleash sends an ETag");

    assert_eq!(poller.poll_now().unwrap(), PollOutcome::NotModified);
    assert_eq!(poller.etag().as_deref(), Some(etag.as_str()));

    admin(&url, &format!("/{name}/environments/development/off"), None);
    // Unleash publishes a change to its client API when its revision tracker next looks (about once a
    // second): poll until it shows, within a bound.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut polls = 2;
    loop {
        polls += 1;
        if poller.poll_now().unwrap() == PollOutcome::Updated {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the change never reached the client API");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!flags.is_enabled(&name, &gateway), "the change arrived");
    assert_ne!(poller.etag(), Some(etag));
    assert_eq!(poller.counts(), (polls, 2));
    poller.shutdown();
}

#[test]
fn interop_unleash_rejected_token_and_unreachable_server_fall_back_to_bootstrap() {
    let Some(url) = service(Service::Unleash) else { return };
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = dir.path().join("bootstrap.json");
    std::fs::write(&bootstrap, r#"{"version":2,"features":[{"name":"from-bootstrap","enabled":true}]}"#).unwrap();

    // A wrong token: the server answers 401, the bootstrap set is served, the error says what to check.
    let flags = Flags::new();
    let errors = Arc::new(Mutex::new(Vec::new()));
    let sink = errors.clone();
    flags.subscribe(move |event| {
        if let FlagsEvent::Error { message } = event {
            sink.lock().unwrap().push(message.clone());
        }
    });
    let poller = UnleashPoller::builder(format!("{url}/api"), "*:development.wrong-token")
        .interval(Duration::from_secs(3600))
        .bootstrap_file(&bootstrap)
        .start(&flags)
        .unwrap();
    assert!(flags.is_enabled("from-bootstrap", &Context::new()));
    let error = poller.last_error().unwrap();
    assert!(error.contains("401") && error.contains("token"), "{error}");
    assert!(matches!(poller.poll_now(), Err(UnleashError::Status { status: 401, .. })));
    assert_eq!(errors.lock().unwrap().len(), 1, "the same failure is reported once");

    // Nothing listening: a transport error, the bootstrap set again.
    let port = free_port().unwrap();
    let flags = Flags::new();
    let poller = UnleashPoller::builder(format!("http://127.0.0.1:{port}/api"), UNLEASH_CLIENT_TOKEN)
        .timeout(Duration::from_secs(2))
        .interval(Duration::from_secs(3600))
        .bootstrap_file(&bootstrap)
        .start(&flags)
        .unwrap();
    assert!(flags.is_enabled("from-bootstrap", &Context::new()));
    assert!(poller.last_error().unwrap().contains("cannot reach unleash"));

    // Without a bootstrap file the poller still starts (the server may come back), with no flags.
    let flags = Flags::new();
    let poller = UnleashPoller::builder(format!("http://127.0.0.1:{port}/api"), UNLEASH_CLIENT_TOKEN)
        .timeout(Duration::from_secs(2))
        .start(&flags)
        .unwrap();
    assert!(flags.names().is_empty());
    drop(poller);

    assert!(matches!(UnleashPoller::builder("ftp://nope", "t").start(&Flags::new()), Err(UnleashError::InvalidUrl(_))));
    let missing = dir.path().join("missing.json");
    let failed = UnleashPoller::builder(format!("http://127.0.0.1:{port}/api"), "t")
        .bootstrap_file(&missing)
        .start(&Flags::new());
    assert!(matches!(failed, Err(UnleashError::Load(_))), "no server and no bootstrap to read: {failed:?}");
}
