//! The trading-desk demo: a simulated order gateway with every component on.
//!
//! Orders from two threads at a steady rate (`--rate`, default 50,000/s), each traced and timed; a quote
//! cache warmed at start; a flag gating a new pricing path for half the traders; pooled venue sessions; a
//! canary of router v2 widening from 10% to 50%; halfway through, a chaos experiment adding 1 ms to 5% of
//! venue sends, which the gateway counts as venue timeouts (over 500 us): the order error-rate SLA
//! breaches, an alert is raised and escalates from the desk to the risk manager; a summary every two
//! seconds and a final report after `--duration` or on Ctrl-C.
//!
//! ```text
//! cargo run --release -p infra-suite --example trading_desk -- --duration 20s --rate 50000
//! ```
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use infra_suite::InfraSuite;
use infra_suite::alert::{CallbackNotifier, EscalationLevel, EscalationPolicy, Notification};
use infra_suite::apm::{Objective, SlaWindow};
use infra_suite::cache::Cache;
use infra_suite::chaos::{Experiment, Fault, LatencyProfile, Target};
use infra_suite::deploy::{CanaryPlan, HealthTarget, Rollout, Step};
use infra_suite::flags::Context;
use infra_suite::pool::{BlockingManager, BlockingPool};

const SYMBOLS: [&str; 8] = ["EURUSD", "GBPUSD", "USDJPY", "AAPL", "MSFT", "XNAS:QQQ", "BTCUSD", "ES1"];
const WORKERS: usize = 2;

/// A simulated venue session: what a real gateway would pool is a FIX or binary session.
#[derive(Debug)]
struct VenueSession {
    sent: u64,
}

#[derive(Debug)]
struct Venue;

impl BlockingManager for Venue {
    type Connection = VenueSession;
    type Error = std::io::Error;

    fn create(&self) -> Result<VenueSession, std::io::Error> {
        Ok(VenueSession { sent: 0 })
    }
}

/// A venue send slower than this is a timeout: the order is rejected.
const VENUE_TIMEOUT: Duration = Duration::from_micros(500);

/// `--rate N` orders per second in all (default 50,000).
fn rate_argument() -> Result<u64, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(at) = args.iter().position(|arg| arg == "--rate") else { return Ok(50_000) };
    let text = args.get(at + 1).ok_or("--rate needs a value, such as 50000")?;
    match text.parse::<u64>() {
        Ok(rate) if rate > 0 => Ok(rate),
        _ => Err(format!("--rate {text}: expected a positive number of orders per second")),
    }
}

/// `--duration 20s` (or `500ms`, `2m`); none: run until Ctrl-C.
fn duration_argument() -> Result<Option<Duration>, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(at) = args.iter().position(|arg| arg == "--duration") else { return Ok(None) };
    let text = args.get(at + 1).ok_or("--duration needs a value, such as 20s")?;
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let number: u64 = number.parse().map_err(|_| format!("--duration {text}: expected a number and a unit (20s)"))?;
    let duration = match unit {
        "ms" => Duration::from_millis(number),
        "s" | "" => Duration::from_secs(number),
        "m" => Duration::from_secs(number * 60),
        other => return Err(format!("--duration {text}: unknown unit {other:?}; use ms, s or m")),
    };
    Ok(Some(duration))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let duration = duration_argument()?;
    let rate = rate_argument()?;
    let page = |who: &'static str| {
        CallbackNotifier(move |notification: &Notification| {
            for alert in &notification.alerts {
                println!("  ... paged {who}: {} ({})", alert.labels.get("alertname"), alert.labels.get("transaction"));
            }
            Ok(())
        })
    };
    let suite = InfraSuite::builder("order-gateway")
        .sample_rate(0.01)
        .alerts(move |alerts| {
            alerts.receiver("desk", page("the desk")).receiver("risk", page("the risk manager")).escalation_policy(
                EscalationPolicy::new(
                    "order-gateway",
                    vec![
                        EscalationLevel::new(["desk"], Duration::from_secs(3)),
                        EscalationLevel::new(["risk"], Duration::from_secs(60)),
                    ],
                ),
            )
        })
        .build()?;
    let apm = suite.apm().clone();
    apm.set_sla("order", Objective::ErrorRate { max: 0.01 }, SlaWindow::OneMinute)?;

    // Flags: the new pricing path for half the traders.
    suite.flags().load_json(
        r#"{"version": 2, "features": [{"name": "new-pricing", "enabled": true, "strategies": [{
            "name": "flexibleRollout",
            "parameters": {"rollout": "50", "stickiness": "userId", "groupId": "new-pricing"}}]}]}"#,
    )?;
    // Quotes: warmed at start.
    let quotes: Cache<String, f64> = Cache::new(10_000);
    for (n, symbol) in SYMBOLS.iter().enumerate() {
        quotes.insert((*symbol).to_owned(), 100.0 + n as f64);
    }
    // The venue: a pool of four sessions.
    let venue = BlockingPool::builder(Venue).max_size(4).min_idle(2).build()?;
    // Routers: v1 stable, v2 as a canary widening from 10% to 50%.
    let deployer = suite.deployer().clone();
    deployer.register("router-v1", "1.8.2", HealthTarget::None)?;
    deployer.register("router-v2", "2.0.0", HealthTarget::None)?;
    let canary = Rollout::start(
        &deployer,
        CanaryPlan::new(
            "router-v2",
            "router-v1",
            vec![
                Step::SetWeight(10.0),
                Step::Pause(Some(Duration::from_secs(4))),
                Step::SetWeight(50.0),
                Step::Pause(None),
            ],
        ),
    )?;

    let stop = Arc::new(AtomicBool::new(false));
    let orders = Arc::new(AtomicU64::new(0));
    let rejected = Arc::new(AtomicU64::new(0));
    spawn_ctrl_c_watch(Arc::clone(&stop));

    let started = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|worker| {
            let (suite, quotes, venue, deployer) = (suite.clone(), quotes.clone(), venue.clone(), deployer.clone());
            let (stop, orders, rejected) = (Arc::clone(&stop), Arc::clone(&orders), Arc::clone(&rejected));
            let per_worker = rate / WORKERS as u64;
            std::thread::spawn(move || {
                let mut n = worker as u64;
                let mut placed = 0u64;
                let begun = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    // A steady rate: ahead of schedule, wait.
                    let due = (begun.elapsed().as_secs_f64() * per_worker as f64) as u64;
                    if placed >= due {
                        std::thread::sleep(Duration::from_micros(200));
                        continue;
                    }
                    placed += 1;
                    n += WORKERS as u64;
                    let trader = format!("trader-{}", n % 500);
                    let outcome = suite
                        .tracer()
                        .in_span("order", |_| place_order(&suite, &quotes, &venue, &deployer, &trader, n));
                    match outcome {
                        Ok(()) => orders.fetch_add(1, Ordering::Relaxed),
                        Err(_) => rejected.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();

    // The conductor: chaos halfway, the canary moving, summaries every two seconds.
    let half = duration.map(|total| total / 2).unwrap_or(Duration::from_secs(10));
    let mut chaos_started = false;
    let mut last = (Instant::now(), 0u64);
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(250));
        let elapsed = started.elapsed();
        canary.tick();
        suite.evaluate();
        if !chaos_started && elapsed >= half {
            chaos_started = true;
            let slow_venue = suite.chaos().create_experiment(
                Experiment::new(
                    Target::point("venue.send"),
                    Fault::Latency(LatencyProfile::Fixed(Duration::from_millis(1))),
                )
                .name("slow venue")
                .probability(0.05),
            )?;
            suite.chaos().start_experiment(slow_venue)?;
            println!("  ... chaos: venue latency +1 ms on 5% of sends (over the 500 us venue timeout)");
        }
        if last.0.elapsed() >= Duration::from_secs(2) {
            let count = orders.load(Ordering::Relaxed);
            let rate = (count - last.1) as f64 / last.0.elapsed().as_secs_f64();
            last = (Instant::now(), count);
            let latency = apm.transaction_stats("order").map(|s| s.latency_1m).unwrap_or_default();
            let split = deployer
                .status()
                .deployments
                .iter()
                .map(|d| format!("{} {:.0}%", d.info.name, d.percent))
                .collect::<Vec<_>>();
            let errors = apm.transaction_stats("order").map_or(0.0, |s| s.error_rate_1m * 100.0);
            println!(
                "{:>5.1}s  {:>7.0} orders/s  p50 {:>5.1} us  p99 {:>7.1} us  errors {errors:>4.1}%  open alerts {}  {}  chaos {}",
                elapsed.as_secs_f64(),
                rate,
                latency.p50 * 1e6,
                latency.p99 * 1e6,
                suite.alerts().open_alerts(None).len(),
                split.join(" / "),
                suite.chaos().active_experiments().len(),
            );
        }
        if duration.is_some_and(|total| elapsed >= total) {
            stop.store(true, Ordering::Relaxed);
        }
    }
    for worker in workers {
        let _ = worker.join();
    }
    let elapsed = started.elapsed();
    canary.promote();
    suite.evaluate();

    let count = orders.load(Ordering::Relaxed);
    let stats = apm.transaction_stats("order").unwrap_or_default();
    let alerts = suite.alerts().statistics();
    println!("\n=== trading desk report ===");
    println!(
        "orders         {count} in {:.1}s ({:.0}/s), rejected {}",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64(),
        rejected.load(Ordering::Relaxed)
    );
    println!(
        "latency        p50 {:.1} us, p95 {:.1} us, p99 {:.1} us",
        stats.latency.p50 * 1e6,
        stats.latency.p95 * 1e6,
        stats.latency.p99 * 1e6
    );
    println!(
        "alerts         raised {}, open {}, resolved {}",
        alerts.created,
        alerts.firing + alerts.acknowledged,
        alerts.resolved
    );
    for alert in suite.alerts().open_alerts(None) {
        println!("               {:?} {} {}", alert.severity, alert.title, alert.description);
    }
    println!("canary         {:?}", canary.phase());
    println!("venue pool     {:?} acquisitions, {} sessions", venue.stats().acquisitions, venue.stats().size);
    println!("flags          new-pricing {:?}", suite.flags().analytics("new-pricing").map(|a| (a.yes, a.no)));
    println!("traces kept    {} spans sampled", suite.tracer().stats().exported);
    let drained = suite.shutdown(Duration::from_secs(5));
    println!("shutdown       {}", if drained { "clean" } else { "logs still draining after 5 s" });
    Ok(())
}

/// One order: quote from the cache, pricing per the flag, a router per the canary, a venue session from
/// the pool, a send through the chaos point, timed in APM.
fn place_order(
    suite: &InfraSuite,
    quotes: &Cache<String, f64>,
    venue: &BlockingPool<Venue>,
    deployer: &infra_suite::deploy::Deployer,
    trader: &str,
    n: u64,
) -> Result<(), String> {
    let timer = Instant::now();
    let symbol = SYMBOLS[(n % SYMBOLS.len() as u64) as usize];
    let quote = quotes.get(symbol).ok_or_else(|| format!("no quote for {symbol}"))?;
    let new_pricing = suite.flags().is_enabled("new-pricing", &Context::new().user_id(trader));
    let price = if new_pricing { quote * 1.0001 } else { quote };
    let router = deployer.route_with(trader.as_bytes(), |d| d.version == "2.0.0").unwrap_or(false);
    let mut session = venue.get().map_err(|err| err.to_string())?;
    let sending = Instant::now();
    let sent = suite
        .chaos()
        .check("venue.send")
        .map_err(|err| err.to_string())
        .and_then(|()| if sending.elapsed() > VENUE_TIMEOUT { Err("venue timeout".to_owned()) } else { Ok(()) });
    session.sent += 1;
    drop(session);
    std::hint::black_box((price, router));
    let ok = sent.is_ok();
    let _ = suite.apm().record_transaction("order", timer.elapsed(), ok);
    if n.is_multiple_of(10_000) {
        suite.logs().info(format!("order {n} for {trader}: {symbol} at {price:.4}"), "orders");
    }
    sent
}

/// Stops the demo on Ctrl-C, so the report still prints.
fn spawn_ctrl_c_watch(stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_io().build() else { return };
        if runtime.block_on(tokio::signal::ctrl_c()).is_ok() {
            stop.store(true, Ordering::Relaxed);
        }
    });
}
