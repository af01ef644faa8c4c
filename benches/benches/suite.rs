//! The suite's cost per order (issue 12's goal: at most 2 us): the trading-desk demo's order, one
//! thread, with every component on and with plain code in their place.
//!
//! - `suite_order/infra/with_suite`: a traced order (1% sampled) with a venue-send child span, a quote
//!   from the cache, the pricing flag, a router chosen by the deployer, a pooled venue session, the
//!   chaos point, two APM transactions (all orders, and the router's own).
//! - `suite_order/bare/without_suite`: the same work with a `HashMap`, a hash for the flag and the router,
//!   a mutex for the session, and nothing recorded. The difference is the suite's cost.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use infra_suite::cache::Cache;
use infra_suite::deploy::HealthTarget;
use infra_suite::flags::Context;
use infra_suite::pool::{BlockingManager, BlockingPool};
use infra_suite::{DeploymentTransaction, InfraSuite};

const SYMBOLS: [&str; 8] = ["EURUSD", "GBPUSD", "USDJPY", "AAPL", "MSFT", "XNAS:QQQ", "BTCUSD", "ES1"];
const VENUE_TIMEOUT: Duration = Duration::from_micros(500);

#[derive(Debug)]
struct Venue;

impl BlockingManager for Venue {
    type Connection = u64;
    type Error = std::io::Error;

    fn create(&self) -> Result<u64, std::io::Error> {
        Ok(0)
    }
}

struct Desk {
    suite: InfraSuite,
    quotes: Cache<String, f64>,
    venue: BlockingPool<Venue>,
    routes: [(&'static str, DeploymentTransaction); 2],
}

impl Desk {
    fn new() -> Desk {
        let suite = InfraSuite::builder("bench").sample_rate(0.01).build().unwrap();
        suite
            .flags()
            .load_json(
                r#"{"version": 2, "features": [{"name": "new-pricing", "enabled": true, "strategies": [{
                    "name": "flexibleRollout",
                    "parameters": {"rollout": "50", "stickiness": "userId", "groupId": "new-pricing"}}]}]}"#,
            )
            .unwrap();
        suite.deployer().register("router-v1", "1", HealthTarget::None).unwrap();
        suite.deployer().register("router-v2", "2", HealthTarget::None).unwrap();
        suite.deployer().shift_traffic("router-v2", 30.0).unwrap();
        let quotes = Cache::new(10_000);
        for (n, symbol) in SYMBOLS.iter().enumerate() {
            quotes.insert((*symbol).to_owned(), 100.0 + n as f64);
        }
        let venue = BlockingPool::builder(Venue).max_size(4).build().unwrap();
        let routes = [
            ("router-v1", suite.deployment_transaction("order", "router-v1").unwrap()),
            ("router-v2", suite.deployment_transaction("order", "router-v2").unwrap()),
        ];
        Desk { suite, quotes, venue, routes }
    }

    fn place(&self, trader: &str, n: u64) -> Result<(), String> {
        self.suite.tracer().in_span("order", |_| {
            let timer = Instant::now();
            let symbol = SYMBOLS[(n % SYMBOLS.len() as u64) as usize];
            let quote = self.quotes.get(symbol).ok_or("no quote")?;
            let new_pricing = self.suite.flags().is_enabled("new-pricing", &Context::new().user_id(trader));
            let price = if new_pricing { quote * 1.0001 } else { quote };
            let route = self
                .suite
                .deployer()
                .route_with(trader.as_bytes(), |d| usize::from(d.name == self.routes[1].0))
                .unwrap_or_default();
            let mut session = self.venue.get().map_err(|err| err.to_string())?;
            let sending = Instant::now();
            let sent = self.suite.tracer().in_span("venue.send", |_| {
                self.suite.chaos().check("venue.send").map_err(|err| err.to_string()).and_then(|()| {
                    if sending.elapsed() > VENUE_TIMEOUT { Err("venue timeout".to_owned()) } else { Ok(()) }
                })
            });
            *session += 1;
            drop(session);
            black_box(price);
            self.routes[route].1.record(timer.elapsed(), sent.is_ok());
            sent
        })
    }
}

struct Bare {
    quotes: HashMap<&'static str, f64>,
    session: Mutex<u64>,
    hasher: RandomState,
}

impl Bare {
    fn place(&self, trader: &str, n: u64) -> Result<(), String> {
        let symbol = SYMBOLS[(n % SYMBOLS.len() as u64) as usize];
        let quote = *self.quotes.get(symbol).ok_or("no quote")?;
        let bucket = self.hasher.hash_one(trader) % 100;
        let price = if bucket < 50 { quote * 1.0001 } else { quote };
        let sending = Instant::now();
        *self.session.lock().map_err(|_| "poisoned".to_owned())? += 1;
        black_box((price, bucket < 30));
        if sending.elapsed() > VENUE_TIMEOUT { Err("venue timeout".to_owned()) } else { Ok(()) }
    }
}

fn order(c: &mut Criterion) {
    let traders: Vec<String> = (0..500).map(|n| format!("trader-{n}")).collect();
    let mut group = c.benchmark_group("suite_order");
    let desk = Desk::new();
    group.bench_function(BenchmarkId::new("infra", "with_suite"), |b| {
        let mut n = 0u64;
        b.iter(|| {
            n += 1;
            black_box(desk.place(&traders[(n % 500) as usize], n))
        })
    });
    let bare = Bare {
        quotes: SYMBOLS.iter().enumerate().map(|(n, symbol)| (*symbol, 100.0 + n as f64)).collect(),
        session: Mutex::new(0),
        hasher: RandomState::new(),
    };
    group.bench_function(BenchmarkId::new("bare", "without_suite"), |b| {
        let mut n = 0u64;
        b.iter(|| {
            n += 1;
            black_box(bare.place(&traders[(n % 500) as usize], n))
        })
    });
    group.finish();
    desk.suite.shutdown(Duration::from_secs(5));
}

criterion_group!(benches, order);
criterion_main!(benches);
