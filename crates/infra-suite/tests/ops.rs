//! The ops server over real HTTP: every endpoint, the token, the limits, the errors, and the OpenAPI
//! document agreeing with the routes.
#![cfg(feature = "ops")]

use std::time::Duration;

use infra_suite::InfraSuite;
use infra_suite::alert::{NewAlert, Severity};
use infra_suite::deploy::{CanaryPlan, HealthTarget, Rollout, Step};
use infra_suite::ops::OpsServer;
use serde_json::{Value, json};

const TOKEN: &str = "test-token-0123456789";

struct Client {
    agent: ureq::Agent,
    base: String,
}

impl Client {
    fn new(server: &OpsServer) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        Client { agent, base: server.url() }
    }

    fn get(&self, path: &str) -> (u16, Value) {
        let mut response = self.agent.get(format!("{}{path}", self.base)).call().expect("the server answers");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().expect("a body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    fn send(&self, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let mut request = match method {
            "POST" => ureq::http::Request::post(url),
            "PUT" => ureq::http::Request::put(url),
            "DELETE" => ureq::http::Request::delete(url),
            other => panic!("no {other} here"),
        }
        .header("content-type", "application/json");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request.body(body.to_owned()).expect("a request");
        let mut response = self.agent.run(request).expect("the server answers");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().expect("a body");
        let value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{method} {path}: not JSON: {text:?}"));
        (status, value)
    }

    fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send("POST", path, Some(TOKEN), &body.to_string())
    }
}

fn setup() -> (InfraSuite, OpsServer, Client) {
    let suite = InfraSuite::builder("order-gateway").build().expect("a suite");
    let server = OpsServer::builder(&suite).token(TOKEN).body_limit(4 * 1024).start().expect("the server starts");
    let client = Client::new(&server);
    (suite, server, client)
}

#[test]
fn binds_loopback_by_default_and_reports_health_and_metrics() {
    let (suite, server, client) = setup();
    assert!(server.local_addr().ip().is_loopback());
    assert_eq!(client.get("/healthz"), (200, json!({"status": "ok"})));
    assert_eq!(client.get("/readyz").0, 200);

    suite.apm().increment_counter("orders_total", 3, &[("venue", "xnas")]).unwrap();
    let mut response = client.agent.get(format!("{}/metrics", client.base)).call().unwrap();
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    assert!(response.body_mut().read_to_string().unwrap().contains("orders_total{venue=\"xnas\"} 3"));
    let mut response = client
        .agent
        .get(format!("{}/metrics", client.base))
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .call()
        .unwrap();
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    assert!(response.body_mut().read_to_string().unwrap().trim_end().ends_with("# EOF"));

    suite.shutdown(Duration::from_secs(1));
    assert_eq!(client.get("/readyz"), (503, json!({"status": "shutting down"})));
    server.shutdown();
}

#[test]
fn mutations_need_the_token_and_bad_requests_get_json_errors() {
    let (suite, server, client) = setup();
    let raised = suite.alerts().create_alert(NewAlert::new(Severity::Critical, "VenueDown")).unwrap();
    let path = format!("/api/v1/alerts/{}/acknowledge", raised.id());

    let (status, body) = client.send("POST", &path, None, "{}");
    assert_eq!(status, 401);
    assert!(body["error"].as_str().unwrap().contains("Authorization: Bearer"), "{body}");
    assert_eq!(client.send("POST", &path, Some("wrong-token-0123456789"), "{}").0, 401);
    assert_eq!(client.send("PUT", "/api/v1/flags/x/rollout", None, "{}").0, 401);
    assert_eq!(client.send("DELETE", "/api/v1/silences/silence-1", None, "").0, 401);

    let (status, body) = client.send("POST", &path, Some(TOKEN), "{\"by\": ");
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("not the JSON"), "{body}");
    assert_eq!(client.send("POST", &path, Some(TOKEN), "{\"who\": \"me\"}").0, 400, "unknown fields are refused");
    let oversized = format!("{{\"by\": \"{}\"}}", "x".repeat(8 * 1024));
    let (status, body) = client.send("POST", &path, Some(TOKEN), &oversized);
    assert_eq!((status, body["status"].as_u64()), (413, Some(413)), "{body}");

    assert_eq!(client.post("/api/v1/alerts/alert-999/acknowledge", json!({})).0, 404);
    assert_eq!(client.post("/api/v1/alerts/not-an-id/resolve", json!({})).0, 404);
    assert_eq!(client.get("/api/v1/alerts/alert-999").0, 404);
    assert_eq!(client.get("/api/v1/nothing-here").0, 404);
    assert_eq!(client.send("PUT", "/api/v1/alerts", Some(TOKEN), "{}").0, 405);
    server.shutdown();
}

#[test]
fn alerts_are_listed_acknowledged_resolved_and_silenced() {
    let (suite, server, client) = setup();
    let raised = suite
        .alerts()
        .create_alert(NewAlert::new(Severity::Critical, "SlaBreach").label("transaction", "order"))
        .unwrap();
    let id = raised.id().to_string();

    let (status, listed) = client.get("/api/v1/alerts");
    assert_eq!(status, 200);
    assert_eq!(listed["alerts"][0]["id"], json!(id));
    assert_eq!(listed["alerts"][0]["labels"]["transaction"], json!("order"));

    let (status, acked) = client.post(&format!("/api/v1/alerts/{id}/acknowledge"), json!({"by": "desk"}));
    assert_eq!(status, 200, "{acked}");
    assert_eq!(acked["alert"]["status"], json!("acknowledged"));
    assert_eq!(suite.alerts().get(raised.id()).unwrap().acknowledged_by.as_deref(), Some("desk"));

    let (status, resolved) = client.post(&format!("/api/v1/alerts/{id}/resolve"), json!({}));
    assert_eq!((status, resolved["changed"].clone()), (200, json!(true)));
    assert!(suite.alerts().open_alerts(None).is_empty());

    let (status, silence) = client.post(
        "/api/v1/silences",
        json!({"matchers": ["alertname=\"SlaBreach\""], "duration_seconds": 3600, "comment": "maintenance"}),
    );
    assert_eq!(status, 201, "{silence}");
    assert_eq!(silence["active"], json!(true));
    let again = suite.alerts().create_alert(NewAlert::new(Severity::Critical, "SlaBreach")).unwrap();
    assert_eq!(suite.alerts().get(again.id()).unwrap().status, infra_suite::alert::AlertStatus::Suppressed);
    assert_eq!(client.get("/api/v1/silences").1["silences"].as_array().unwrap().len(), 1);

    let bad = client.post("/api/v1/silences", json!({"matchers": ["no operator"], "duration_seconds": 60}));
    assert_eq!(bad.0, 400);
    let bad = client.post("/api/v1/silences", json!({"matchers": ["a=\"b\""], "duration_seconds": -1}));
    assert_eq!(bad.0, 400);
    assert_eq!(client.post("/api/v1/silences", json!({"duration_seconds": 60})).0, 400);

    let silence_id = silence["id"].as_str().unwrap();
    assert_eq!(client.send("DELETE", &format!("/api/v1/silences/{silence_id}"), Some(TOKEN), "").0, 200);
    assert_eq!(client.send("DELETE", "/api/v1/silences/silence-77", Some(TOKEN), "").0, 404);
    server.shutdown();
}

#[test]
fn flags_are_listed_toggled_and_rolled_out() {
    let (suite, server, client) = setup();
    suite
        .flags()
        .load_json(
            r#"{"version": 2, "features": [{"name": "new-pricing", "enabled": true, "strategies": [{
                "name": "flexibleRollout", "parameters": {"rollout": "50", "stickiness": "userId", "groupId": "np"}}]}]}"#,
        )
        .unwrap();
    let (status, listed) = client.get("/api/v1/flags");
    assert_eq!(status, 200);
    assert_eq!(listed["flags"][0]["name"], json!("new-pricing"));
    assert_eq!(listed["flags"][0]["rollout_percent"], json!(50.0));

    let context = infra_suite::flags::Context::new().user_id("trader-1");
    let (status, toggled) = client.post("/api/v1/flags/new-pricing/toggle", json!({"enabled": false}));
    assert_eq!((status, toggled["enabled"].clone()), (200, json!(false)));
    assert!(!suite.flags().is_enabled("new-pricing", &context));
    let (_, flipped) = client.post("/api/v1/flags/new-pricing/toggle", json!({}));
    assert_eq!(flipped["enabled"], json!(true));

    let (status, rolled) = client.send("PUT", "/api/v1/flags/new-pricing/rollout", Some(TOKEN), r#"{"percent": 100}"#);
    assert_eq!((status, rolled["rollout_percent"].clone()), (200, json!(100.0)));
    assert!(suite.flags().is_enabled("new-pricing", &context));
    assert_eq!(client.send("PUT", "/api/v1/flags/new-pricing/rollout", Some(TOKEN), r#"{"percent": 101}"#).0, 400);
    assert_eq!(client.send("PUT", "/api/v1/flags/nope/rollout", Some(TOKEN), r#"{"percent": 10}"#).0, 404);
    assert_eq!(client.get("/api/v1/flags/nope").0, 404);
    server.shutdown();
}

#[test]
fn deployments_shift_promote_and_roll_back() {
    let (suite, server, client) = setup();
    let deployer = suite.deployer();
    deployer.register("router-v1", "1.0.0", HealthTarget::None).unwrap();
    deployer.register("router-v2", "2.0.0", HealthTarget::None).unwrap();
    assert_eq!(client.post("/api/v1/deployments/promote", json!({})).0, 404, "no rollout tracked yet");

    let (status, shifted) = client.post("/api/v1/deployments/shift", json!({"deployment": "router-v2", "percent": 25}));
    assert_eq!(status, 200, "{shifted}");
    let share = |body: &Value, name: &str| {
        body["deployments"].as_array().unwrap().iter().find(|d| d["name"] == json!(name)).unwrap()["percent"].clone()
    };
    assert_eq!(share(&shifted, "router-v2"), json!(25.0));
    assert_eq!(client.post("/api/v1/deployments/shift", json!({"deployment": "nope", "percent": 5})).0, 404);
    assert_eq!(client.post("/api/v1/deployments/shift", json!({"deployment": "router-v2", "percent": 250})).0, 400);

    let rollout = Rollout::start(
        deployer,
        CanaryPlan::new(
            "router-v2",
            "router-v1",
            vec![Step::SetWeight(10.0), Step::Pause(None), Step::SetWeight(50.0)],
        ),
    )
    .unwrap();
    rollout.tick();
    suite.track_rollout(rollout.clone());
    let (_, status_now) = client.get("/api/v1/deployments");
    assert_eq!(status_now["rollout"]["phase"]["state"], json!("paused"), "{status_now}");

    let (status, promoted) = client.post("/api/v1/deployments/promote", json!({}));
    assert_eq!(status, 200, "{promoted}");
    assert_eq!(promoted["rollout"]["phase"]["state"], json!("promoted"));
    assert_eq!(share(&promoted, "router-v2"), json!(100.0));
    assert_eq!(client.post("/api/v1/deployments/promote", json!({})).0, 409, "a finished rollout");

    let second = Rollout::start(deployer, CanaryPlan::new("router-v1", "router-v2", vec![Step::Pause(None)])).unwrap();
    second.tick();
    suite.track_rollout(second);
    let (status, rolled_back) = client.post("/api/v1/deployments/rollback", json!({"reason": "latency"}));
    assert_eq!(status, 200, "{rolled_back}");
    assert_eq!(rolled_back["rollout"]["phase"], json!({"state": "aborted", "reason": "latency"}));
    server.shutdown();
}

#[test]
fn chaos_experiments_start_stop_and_the_kill_switch() {
    let (suite, server, client) = setup();
    let (status, started) = client.post(
        "/api/v1/chaos/experiments",
        json!({"name": "venue errors", "target": "venue.send", "fault": {"type": "error"}, "probability": 1.0}),
    );
    assert_eq!(status, 201, "{started}");
    assert_eq!(started["state"], json!("running"));
    assert!(suite.chaos().check("venue.send").is_err());
    let id = started["id"].as_str().unwrap();

    let (status, stopped) = client.post(&format!("/api/v1/chaos/experiments/{id}/stop"), json!({}));
    assert_eq!((status, stopped["stopped"].clone()), (200, json!(true)), "{stopped}");
    assert!(suite.chaos().check("venue.send").is_ok());
    assert_eq!(client.post("/api/v1/chaos/experiments/exp-404/stop", json!({})).0, 404);

    let latency = json!({"target": "venue.*", "fault": {"type": "latency", "millis": 1}, "duration_seconds": 60});
    assert_eq!(client.post("/api/v1/chaos/experiments", latency).0, 201);
    let (_, listed) = client.get("/api/v1/chaos/experiments");
    assert_eq!(listed["experiments"].as_array().unwrap().len(), 2);
    assert_eq!(listed["experiments"][1]["target"], json!("venue.*"));

    assert_eq!(client.post("/api/v1/chaos/kill-switch", json!({})), (200, json!({"killed": true})));
    assert!(suite.chaos().active_experiments().is_empty());
    let refused = client.post("/api/v1/chaos/experiments", json!({"target": "x", "fault": {"type": "error"}}));
    assert_eq!(refused.0, 409, "{refused:?}");
    assert_eq!(client.post("/api/v1/chaos/rearm", json!({})), (200, json!({"killed": false})));

    for bad in [
        json!({"target": "", "fault": {"type": "error"}}),
        json!({"target": "x", "fault": {"type": "meteor"}}),
        json!({"target": "x", "fault": {"type": "latency", "millis": -5}}),
        json!({"target": "x", "fault": {"type": "error"}, "probability": 2}),
        json!({"target": "x", "fault": {"type": "error"}, "duration_seconds": 0}),
    ] {
        assert_eq!(client.post("/api/v1/chaos/experiments", bad.clone()).0, 400, "{bad}");
    }
    server.shutdown();
}

#[test]
fn traces_by_id_and_logs_by_search() {
    let (suite, server, client) = setup();
    let trace_id = suite.tracer().in_span("order", |span| {
        suite.tracer().in_span("venue.send", |_| {});
        suite.logs().info("order accepted", "orders");
        span.context().trace_id().to_string()
    });
    suite.tracer().force_flush();
    suite.logs().flush();

    let (status, trace) = client.get(&format!("/api/v1/traces/{trace_id}"));
    assert_eq!(status, 200, "{trace}");
    let names: Vec<&str> = trace["spans"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["order", "venue.send"]);
    assert_eq!(trace["spans"][1]["parent_span_id"], trace["spans"][0]["span_id"]);
    assert_eq!(client.get("/api/v1/traces/00000000000000000000000000000001").0, 404);
    assert_eq!(client.get("/api/v1/traces/not-hex").0, 404);
    let (_, recent) = client.get("/api/v1/traces?limit=5");
    assert_eq!(recent["traces"][0]["trace_id"], json!(trace_id));
    assert_eq!(recent["traces"][0]["spans"], json!(2));

    let (status, found) = client.get(&format!("/api/v1/logs?text=accepted&trace_id={trace_id}"));
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["entries"].as_array().unwrap().len(), 1, "{found}");
    assert_eq!(client.get("/api/v1/logs?level=loud").0, 400);
    assert_eq!(client.get("/api/v1/logs?limit=many").0, 400);
    assert_eq!(client.get("/api/v1/logs?trace_id=xyz").0, 400);
    server.shutdown();
}

#[test]
fn every_documented_route_exists_and_its_mutations_are_guarded() {
    let (_suite, server, client) = setup();
    let (status, document) = client.get("/api/v1/openapi.json");
    assert_eq!(status, 200);
    assert_eq!(document["openapi"], json!("3.0.3"));
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.len() >= 25, "{}", paths.len());
    for (path, methods) in paths {
        for method in methods.as_object().unwrap().keys() {
            let concrete = path.replace("{id}", "1").replace("{name}", "x");
            let (status, body) = match method.as_str() {
                "get" => client.get(&concrete),
                other => client.send(&other.to_uppercase(), &concrete, None, "{}"),
            };
            // Reads answer (a 404 for an unknown id names the id, not a missing endpoint); mutations
            // without the token stop at 401, proving the route exists and is guarded.
            let missing = body["error"].as_str().is_some_and(|e| e.contains("no such endpoint"));
            assert!(!missing && status != 405, "{method} {path}: {status} {body}");
            if method != "get" {
                assert_eq!(status, 401, "{method} {path} must need the token");
            }
        }
    }
    server.shutdown();
}

#[test]
fn a_generated_token_is_long_and_guards_mutations() {
    let suite = InfraSuite::builder("t").build().unwrap();
    let server = OpsServer::builder(&suite).start().unwrap();
    assert_eq!(server.token().len(), 32);
    let client = Client::new(&server);
    assert_eq!(client.send("POST", "/api/v1/chaos/kill-switch", None, "").0, 401);
    assert_eq!(client.send("POST", "/api/v1/chaos/kill-switch", Some(server.token()), "").0, 200);
    assert!(suite.chaos().is_killed());
    server.shutdown();
}

#[test]
fn the_dashboard_and_its_assets_are_served_from_the_binary() {
    let (suite, server, client) = setup();
    for (path, kind) in
        [("/", "text/html"), ("/assets/dashboard.js", "text/javascript"), ("/assets/dashboard.css", "text/css")]
    {
        let mut response = client.agent.get(format!("{}{path}", client.base)).call().unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with(kind), "{path}");
        assert!(response.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'self'"));
        let body = response.body_mut().read_to_string().unwrap();
        assert!(!body.contains("http://") && !body.contains("https://"), "{path} fetches nothing from elsewhere");
    }
    for n in 0..50 {
        suite.apm().record_transaction("order", Duration::from_micros(100 + n), n % 10 != 0).unwrap();
    }
    suite.evaluate();
    let (status, overview) = client.get("/api/v1/overview?history=true");
    assert_eq!(status, 200, "{overview}");
    assert_eq!(overview["transactions"][0]["name"], json!("order"));
    assert_eq!(overview["transactions"][0]["count"], json!(50));
    assert_eq!(overview["history"].as_array().unwrap().len(), 1, "evaluate kept a snapshot");
    assert_eq!(client.get("/api/v1/overview?history=maybe").0, 400);
    server.shutdown();
}

#[test]
fn every_mutation_attempt_is_audited_in_the_logs() {
    let (suite, server, client) = setup();
    assert_eq!(client.post("/api/v1/chaos/kill-switch", json!({})).0, 200);
    assert_eq!(client.send("POST", "/api/v1/chaos/rearm", None, "{}").0, 401);
    client.get("/api/v1/alerts");
    suite.logs().flush();
    let audited =
        suite.log_memory().search(&infra_suite::log::Query { component: Some("ops".into()), ..Default::default() });
    let lines: Vec<(String, String)> = audited
        .iter()
        .map(|e| (e.field("path").unwrap().to_string(), e.field("status").unwrap().to_string()))
        .collect();
    assert_eq!(
        lines,
        [
            ("/api/v1/chaos/kill-switch".to_owned(), "200".to_owned()),
            ("/api/v1/chaos/rearm".to_owned(), "401".to_owned())
        ],
        "mutations only, refused ones too"
    );
    server.shutdown();
}
