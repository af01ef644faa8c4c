//! The ops API under a bounded fuzz generated from its own OpenAPI document by Schemathesis (from PyPI,
//! installed under target/ by `cargo xtask services up`): valid and invalid requests, with and without
//! the token, and never a 5xx or a crash.
#![cfg(feature = "ops")]
#![allow(clippy::print_stdout)] // the fuzz summary, shown with --nocapture

use std::process::Command;
use std::time::Duration;

use infra_suite::InfraSuite;
use infra_suite::alert::{NewAlert, Severity};
use infra_suite::deploy::{CanaryPlan, HealthTarget, Rollout, Step};
use infra_suite::ops::OpsServer;
use infra_testkit::Service;

const TOKEN: &str = "fuzz-token-0123456789abcdef";

fn run_schemathesis(suite: &InfraSuite, server: &OpsServer, authorized: bool, pythonpath: &str) {
    let mut command = Command::new("python3");
    command
        .env("PYTHONPATH", pythonpath)
        .args(["-m", "schemathesis.cli", "--no-color", "run"])
        .arg(format!("{}/api/v1/openapi.json", server.url()))
        .args(["--url", &server.url(), "--checks", "not_a_server_error", "--max-examples", "25", "--seed", "7"])
        .args(["--request-timeout", "10"]);
    if authorized {
        command.args(["--header", &format!("Authorization: Bearer {TOKEN}")]);
    }
    let output = command.output().expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found failures (authorized: {authorized}):\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!stdout.contains("Server error"), "{stdout}");
    // The summary (operations, test cases, phases), shown with --nocapture.
    let tail: Vec<&str> = stdout.lines().rev().take(25).collect();
    println!("{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
    // The server is still there and still answers.
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let healthz = agent.get(format!("{}/healthz", server.url())).call().expect("alive after the fuzz");
    assert_eq!(healthz.status().as_u16(), 200);
    assert!(!suite.is_shut_down());
}

#[test]
fn interop_a_schemathesis_fuzz_from_the_openapi_document_finds_no_server_error() {
    let Some(pythonpath) = infra_testkit::service(Service::PythonSchemathesis) else { return };
    let suite = InfraSuite::builder("order-gateway").build().unwrap();
    // Something behind every endpoint, so the fuzz reaches past the 404s.
    suite.alerts().create_alert(NewAlert::new(Severity::Warning, "QueueDepth")).unwrap();
    suite
        .flags()
        .load_json(r#"{"version": 2, "features": [{"name": "x", "enabled": true, "strategies": []}]}"#)
        .unwrap();
    suite.deployer().register("router-v1", "1.0.0", HealthTarget::None).unwrap();
    suite.deployer().register("router-v2", "2.0.0", HealthTarget::None).unwrap();
    let rollout = Rollout::start(
        suite.deployer(),
        CanaryPlan::new("router-v2", "router-v1", vec![Step::SetWeight(10.0), Step::Pause(None)]),
    )
    .unwrap();
    suite.track_rollout(rollout);
    suite.apm().record_transaction("order", Duration::from_micros(90), true).unwrap();
    suite.tracer().in_span("order", |_| {});
    suite.tracer().force_flush();

    let server = OpsServer::builder(&suite).token(TOKEN).body_limit(8 * 1024).start().unwrap();
    run_schemathesis(&suite, &server, false, &pythonpath);
    run_schemathesis(&suite, &server, true, &pythonpath);
    server.shutdown();
    suite.shutdown(Duration::from_secs(1));
}
