//! The trading-desk demo: a simulated order gateway with every component on.
//!
//! Orders from eight threads at a steady rate (`--rate`, default 50,000/s), each traced and timed; a quote
//! cache warmed at start; a flag gating a new pricing path for half the traders; pooled venue sessions; a
//! canary of router v2 widening from 10% to 50%; halfway through, a chaos experiment adding 1 ms to 5% of
//! venue sends, which the gateway counts as venue timeouts (over 500 us): the order error-rate SLA
//! breaches, an alert is raised and escalates from the desk to the risk manager; a summary every two
//! seconds and a final report after `--duration` or on Ctrl-C, with the suite's cost per order measured
//! against the same order loop without it. The ops dashboard runs at the printed local URL
//! (`--ops 127.0.0.1:8080` to choose the address).
//!
//! ```text
//! cargo run --release -p infra-suite --example trading_desk -- --duration 20s --rate 50000
//! ```
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use infra_suite::alert::{CallbackNotifier, EscalationLevel, EscalationPolicy, Notification};
use infra_suite::apm::{Objective, SlaWindow};
use infra_suite::cache::Cache;
use infra_suite::chaos::{Experiment, Fault, LatencyProfile, Target};
use infra_suite::deploy::{CanaryPlan, HealthTarget, Rollout, Step};
use infra_suite::flags::Context;
use infra_suite::ops::OpsServer;
use infra_suite::pool::{BlockingManager, BlockingPool};
use infra_suite::{DeploymentTransaction, InfraSuite};

const SYMBOLS: [&str; 8] = ["EURUSD", "GBPUSD", "USDJPY", "AAPL", "MSFT", "XNAS:QQQ", "BTCUSD", "ES1"];
/// Order threads: more than the cores, so orders held up by venue latency do not hold up the rest.
const WORKERS: usize = 8;

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

/// `--ops 127.0.0.1:8080`: where the ops server listens (default: a free loopback port).
fn ops_argument() -> Result<Option<std::net::SocketAddr>, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(at) = args.iter().position(|arg| arg == "--ops") else { return Ok(None) };
    let text = args.get(at + 1).ok_or("--ops needs an address, such as 127.0.0.1:8080")?;
    text.parse().map(Some).map_err(|_| format!("--ops {text}: expected an address and port, such as 127.0.0.1:8080"))
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
    // The canary's analysis reads router-v2's own error rate from APM.
    let canary = Rollout::start(
        &deployer,
        CanaryPlan::new(
            "router-v2",
            "router-v1",
            vec![
                Step::SetWeight(10.0),
                Step::Pause(Some(Duration::from_secs(4))),
                Step::Analyze(suite.canary_error_rate("order", "router-v2", 0.05).runs(1, Duration::from_secs(1))),
                Step::SetWeight(50.0),
                Step::Pause(None),
            ],
        ),
    )?;
    suite.track_rollout(canary.clone());
    suite.watch_pool("venue", &venue);
    suite.watch_cache("quotes", &quotes);
    let mut ops = OpsServer::builder(&suite);
    if let Some(address) = ops_argument()? {
        ops = ops.bind(address);
    }
    let ops = ops.start()?;
    println!("dashboard: {}/  (the link with its token is on the line above)", ops.url());

    let stop = Arc::new(AtomicBool::new(false));
    let orders = Arc::new(AtomicU64::new(0));
    let rejected = Arc::new(AtomicU64::new(0));
    spawn_ctrl_c_watch(Arc::clone(&stop));

    let started = Instant::now();
    let desk = Desk {
        suite: suite.clone(),
        quotes: quotes.clone(),
        venue: venue.clone(),
        deployer: deployer.clone(),
        routes: [
            ("router-v1", suite.deployment_transaction("order", "router-v1")?),
            ("router-v2", suite.deployment_transaction("order", "router-v2")?),
        ],
    };
    let workers: Vec<_> = (0..WORKERS)
        .map(|worker| {
            let desk = desk.clone();
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
                    match desk.place(&format!("trader-{}", n % 500), n) {
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
                .probability(0.05)
                // The safety net: far worse than the 5% planned, and the experiment stops itself.
                .steady_state(Duration::from_secs(1), suite.steady_state("order", 0.25, None)),
            )?;
            suite.chaos().start_experiment(slow_venue)?;
            println!("  ... chaos: venue latency +1 ms on 5% of sends (over the 500 us venue timeout)");
        }
        if last.0.elapsed() >= Duration::from_secs(2) {
            // Throughput counts every order placed, accepted or rejected.
            let count = orders.load(Ordering::Relaxed) + rejected.load(Ordering::Relaxed);
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

    let (accepted, refused) = (orders.load(Ordering::Relaxed), rejected.load(Ordering::Relaxed));
    let count = accepted + refused;
    let stats = apm.transaction_stats("order").unwrap_or_default();
    let alerts = suite.alerts().statistics();
    println!("\n=== trading desk report ===");
    println!(
        "orders         {count} placed in {:.1}s ({:.0}/s): {accepted} accepted, {refused} rejected",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64(),
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
    // The suite's cost: chaos off (what production runs between experiments), same orders, one thread.
    suite.chaos().kill_switch();
    let bare = Bare {
        quotes: SYMBOLS.iter().enumerate().map(|(n, symbol)| (*symbol, 100.0 + n as f64)).collect(),
        session: std::sync::Mutex::new(VenueSession { sent: 0 }),
    };
    let (with, without) = cost_per_order(&desk, &bare, 20_000);
    println!(
        "suite cost     {:.2} us per order ({:.2} us with the suite, {:.2} us without; goal <= 2 us)",
        with.saturating_sub(without).as_secs_f64() * 1e6,
        with.as_secs_f64() * 1e6,
        without.as_secs_f64() * 1e6
    );
    ops.shutdown();
    let drained = suite.shutdown(Duration::from_secs(5));
    println!("shutdown       {}", if drained { "clean" } else { "logs still draining after 5 s" });
    Ok(())
}

/// The order gateway with every component on.
#[derive(Clone)]
struct Desk {
    suite: InfraSuite,
    quotes: Cache<String, f64>,
    venue: BlockingPool<Venue>,
    deployer: infra_suite::deploy::Deployer,
    /// Each router's APM handles (all orders, and the router's own for the canary analysis).
    routes: [(&'static str, DeploymentTransaction); 2],
}

impl Desk {
    /// One order, traced: quote from the cache, pricing per the flag, a router per the canary, a venue
    /// session from the pool, a send through the chaos point, timed in APM by router.
    fn place(&self, trader: &str, n: u64) -> Result<(), String> {
        self.suite.tracer().in_span("order", |_| {
            let timer = Instant::now();
            let symbol = SYMBOLS[(n % SYMBOLS.len() as u64) as usize];
            let quote = self.quotes.get(symbol).ok_or_else(|| format!("no quote for {symbol}"))?;
            let new_pricing = self.suite.flags().is_enabled("new-pricing", &Context::new().user_id(trader));
            let price = if new_pricing { quote * 1.0001 } else { quote };
            let route = self
                .deployer
                .route_with(trader.as_bytes(), |d| usize::from(d.name == self.routes[1].0))
                .unwrap_or_default();
            let mut session = self.venue.get().map_err(|err| err.to_string())?;
            let sending = Instant::now();
            let sent = self.suite.tracer().in_span("venue.send", |span| {
                let sent = self.suite.chaos().check("venue.send").map_err(|err| err.to_string()).and_then(|()| {
                    if sending.elapsed() > VENUE_TIMEOUT { Err("venue timeout".to_owned()) } else { Ok(()) }
                });
                if let Err(reason) = &sent {
                    span.set_status(infra_suite::trace::Status::Error(reason.clone().into()));
                }
                sent
            });
            session.sent += 1;
            drop(session);
            std::hint::black_box(price);
            self.routes[route].1.record(timer.elapsed(), sent.is_ok());
            if n.is_multiple_of(10_000) {
                self.suite.logs().info(format!("order {n} for {trader}: {symbol} at {price:.4}"), "orders");
            }
            sent
        })
    }
}

/// The same order with the suite off: a plain map for quotes, a hash for the pricing split and the
/// router, a mutex for the venue session, no tracing, metrics, logs or chaos. The yardstick for the
/// suite's cost per order.
struct Bare {
    quotes: std::collections::HashMap<&'static str, f64>,
    session: std::sync::Mutex<VenueSession>,
}

impl Bare {
    fn place(&self, trader: &str, n: u64) -> Result<(), String> {
        use std::hash::{BuildHasher, RandomState};
        let symbol = SYMBOLS[(n % SYMBOLS.len() as u64) as usize];
        let quote = *self.quotes.get(symbol).ok_or_else(|| format!("no quote for {symbol}"))?;
        let bucket = RandomState::new().hash_one(trader) % 100;
        let price = if bucket < 50 { quote * 1.0001 } else { quote };
        let sending = Instant::now();
        let mut session = self.session.lock().map_err(|_| "venue session poisoned".to_owned())?;
        session.sent += 1;
        drop(session);
        std::hint::black_box((price, bucket < 30));
        if sending.elapsed() > VENUE_TIMEOUT { Err("venue timeout".to_owned()) } else { Ok(()) }
    }
}

/// The suite's cost per order: the same orders, one thread, with the suite and without it (median of
/// five rounds each, interleaved so both see the same machine). Returns (with, without) per order.
fn cost_per_order(desk: &Desk, bare: &Bare, orders: u64) -> (Duration, Duration) {
    let traders: Vec<String> = (0..500).map(|n| format!("trader-{n}")).collect();
    let round = |place: &dyn Fn(&str, u64) -> Result<(), String>| {
        let started = Instant::now();
        for n in 0..orders {
            let _ = std::hint::black_box(place(&traders[(n % 500) as usize], n));
        }
        started.elapsed() / orders as u32
    };
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        with.push(round(&|trader, n| desk.place(trader, n)));
        without.push(round(&|trader, n| bare.place(trader, n)));
    }
    with.sort();
    without.sort();
    (with[2], without[2])
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
