//! The dashboard in a real headless browser (Debian's Chromium, driven by playwright-core from npm, both
//! installed by `cargo xtask services up`): the page loads and shows live data, and its acknowledge,
//! toggle and stop controls change the server's state.
#![cfg(feature = "ops")]

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use infra_suite::InfraSuite;
use infra_suite::alert::{AlertStatus, NewAlert, Severity};
use infra_suite::chaos::{Experiment, ExperimentState, Fault, LatencyProfile, Target};
use infra_suite::deploy::{CanaryPlan, HealthTarget, Rollout, Step};
use infra_suite::flags::Context;
use infra_suite::ops::OpsServer;
use infra_testkit::Service;

const TOKEN: &str = "browser-test-token-0123456789";

/// Loads the page, checks what it shows, clicks acknowledge, the flag's toggle and stop; prints what it
/// saw as one JSON line.
const SCRIPT: &str = r##"
const { chromium } = require("playwright-core");
(async () => {
  const [url, executablePath] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync"],
  });
  const page = await browser.newPage();
  const problems = [];
  page.on("pageerror", (error) => problems.push(`page error: ${error}`));
  page.on("console", (message) => { if (message.type() === "error") problems.push(`console: ${message.text()}`); });
  page.on("request", (request) => { if (!request.url().startsWith(url.split("#")[0])) problems.push(`fetched ${request.url()}`); });
  await page.goto(url);
  await page.waitForSelector("tr[data-alert]");
  await page.waitForSelector("tr[data-flag='new-pricing']");
  await page.waitForSelector("tr[data-experiment]");
  await page.waitForSelector("#waterfall .row");
  const painted = () => {
    const canvas = document.getElementById("rate-chart");
    const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    let lit = 0;
    for (let i = 3; i < pixels.length; i += 4) { if (pixels[i] > 0) { lit += 1; } }
    return lit;
  };
  await page.waitForFunction(painted, null, { timeout: 15000 });
  const count = async () => Number((await page.textContent("#transaction-summary")).split(" ")[0]);
  const before = await count();
  await page.waitForFunction((n) => Number(document.getElementById("transaction-summary").textContent.split(" ")[0]) > n, before, { timeout: 10000 });
  const seen = {
    service: await page.textContent("#service"),
    readiness: await page.textContent("#readiness"),
    split: await page.textContent("#split"),
    rollout: await page.textContent("#rollout"),
    traceRows: await page.locator("#waterfall .row").count(),
    chartPixels: await page.evaluate(painted),
    ordersBefore: before,
    ordersAfter: await count(),
  };

  await page.locator("tr[data-alert] button", { hasText: "Acknowledge" }).first().click();
  await page.waitForFunction(() => [...document.querySelectorAll("#alerts tbody tr")].some((row) => row.textContent.includes("acknowledged")));
  await page.locator("tr[data-flag='new-pricing'] input[type=checkbox]").click();
  await page.waitForFunction(() => { const box = document.querySelector("tr[data-flag='new-pricing'] input"); return box && !box.checked; });
  await page.locator("tr[data-experiment] button", { hasText: "Stop" }).first().click();
  await page.waitForFunction(() => [...document.querySelectorAll("#experiments tbody tr")].every((row) => !row.textContent.includes("running")));
  seen.message = await page.textContent("#message");
  seen.problems = problems;
  console.log(JSON.stringify(seen));
  await browser.close();
})().catch((error) => { console.error(error); process.exit(1); });
"##;

#[test]
fn interop_the_dashboard_in_chromium_shows_live_data_and_its_buttons_change_the_server() {
    let Some(chromium) = infra_testkit::service(Service::Chromium) else { return };
    let Some(node_modules) = infra_testkit::service(Service::NodePlaywright) else { return };

    let suite = InfraSuite::builder("order-gateway").build().unwrap();
    let alert =
        suite.alerts().create_alert(NewAlert::new(Severity::Critical, "SlaBreach").label("transaction", "order"));
    let alert = alert.unwrap().id();
    suite
        .flags()
        .load_json(r#"{"version": 2, "features": [{"name": "new-pricing", "enabled": true, "strategies": []}]}"#)
        .unwrap();
    let deployer = suite.deployer();
    deployer.register("router-v1", "1.0.0", HealthTarget::None).unwrap();
    deployer.register("router-v2", "2.0.0", HealthTarget::None).unwrap();
    let rollout = Rollout::start(
        deployer,
        CanaryPlan::new("router-v2", "router-v1", vec![Step::SetWeight(25.0), Step::Pause(None)]),
    )
    .unwrap();
    rollout.tick();
    suite.track_rollout(rollout);
    let experiment = suite
        .chaos()
        .create_experiment(
            Experiment::new(
                Target::point("venue.send"),
                Fault::Latency(LatencyProfile::Fixed(Duration::from_micros(1))),
            )
            .name("slow venue"),
        )
        .unwrap();
    suite.chaos().start_experiment(experiment).unwrap();
    suite.tracer().in_span("order", |_| suite.tracer().in_span("venue.send", |_| {}));
    suite.tracer().force_flush();

    // Live traffic while the page is open.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let (suite, stop) = (suite.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                suite.flags().is_enabled("new-pricing", &Context::new());
                suite
                    .apm()
                    .record_transaction("order", Duration::from_micros(80 + n % 50), !n.is_multiple_of(50))
                    .unwrap();
                if n.is_multiple_of(100) {
                    suite.evaluate();
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };

    let server = OpsServer::builder(&suite).token(TOKEN).start().unwrap();
    let dir = infra_testkit::temp_dir();
    let script = dir.path().join("dashboard.js");
    std::fs::write(&script, SCRIPT).unwrap();
    let output = Command::new("node")
        .arg(&script)
        .arg(format!("{}/#token={TOKEN}", server.url()))
        .arg(&chromium)
        .env("NODE_PATH", &node_modules)
        .output()
        .expect("node runs");
    stop.store(true, Ordering::Relaxed);
    traffic.join().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the browser script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: serde_json::Value =
        serde_json::from_str(stdout.trim().lines().last().unwrap_or("")).expect("one JSON line");

    assert_eq!(seen["service"], "order-gateway", "{seen}");
    assert_eq!(seen["readiness"], "ready", "{seen}");
    let split = seen["split"].as_str().unwrap();
    assert!(split.contains("router-v1 75%") && split.contains("router-v2 25%"), "{seen}");
    assert!(seen["rollout"].as_str().unwrap().starts_with("rollout paused"), "{seen}");
    assert_eq!(seen["traceRows"], 2, "the waterfall shows both spans: {seen}");
    assert!(seen["chartPixels"].as_u64().unwrap() > 100, "the rate chart is drawn: {seen}");
    assert!(seen["ordersAfter"].as_u64() > seen["ordersBefore"].as_u64(), "the numbers move: {seen}");
    assert_eq!(seen["problems"], serde_json::json!([]), "no script errors, nothing fetched from elsewhere");

    assert_eq!(suite.alerts().get(alert).unwrap().status, AlertStatus::Acknowledged);
    assert_eq!(suite.alerts().get(alert).unwrap().acknowledged_by.as_deref(), Some("dashboard"));
    assert!(!suite.flags().is_enabled("new-pricing", &Context::new()), "the toggle switched the flag off");
    assert_eq!(suite.chaos().results(experiment).unwrap().state, ExperimentState::Completed, "stop stopped it");
    server.shutdown();
    suite.shutdown(Duration::from_secs(1));
}
