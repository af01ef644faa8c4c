//! infra-alert raising alerts with dedup and routing, 10,000 distinct alerts active (no peer library
//! does this in-process; the goals are absolute: >= 500,000 repeats/s, >= 100,000 new alerts/s):
//!
//! - `alert_create/repeat`: raising one of the 10,000 open alerts again (built from scratch, as a caller
//!   would): a fingerprint and a lookup, a count bumped.
//! - `alert_create/new`: raising a new distinct alert: fingerprint, suppression checks, routing into two
//!   or three groups, escalation lookup.
//!
//! Memory per active alert is a test (`cargo test -p infra-alert --test memory -- --nocapture`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use infra_alert::{AlertManager, Matcher, MemoryNotifier, NewAlert, Route, RouteTree, Severity};

const ACTIVE: usize = 10_000;

fn manager() -> AlertManager {
    let tree = RouteTree::new(
        Route::to("ops")
            .group_by(["alertname"])
            .route(Route::to("pager").matcher(Matcher::parse("severity=\"critical\"").unwrap()).continue_matching(true))
            .route(Route::to("db").matcher(Matcher::parse("service=~\"db-.*\"").unwrap())),
        &["ops", "pager", "db"],
    )
    .unwrap();
    AlertManager::builder("bench")
        .routes(tree)
        .receiver("ops", MemoryNotifier::new())
        .receiver("pager", MemoryNotifier::new())
        .receiver("db", MemoryNotifier::new())
        .build()
        .unwrap()
}

fn alert(n: usize) -> NewAlert {
    NewAlert::new([Severity::Warning, Severity::Critical][n % 2], format!("Alert{}", n % 50))
        .source("exporter")
        .label("instance", format!("10.{}.{}.{}:9100", n / 65_536, (n / 256) % 256, n % 256))
        .label("service", format!("db-{}", n % 20))
}

fn create(c: &mut Criterion) {
    let mut group = c.benchmark_group("alert_create");
    let active = manager();
    for n in 0..ACTIVE {
        active.create_alert(alert(n)).unwrap();
    }
    let mut next = 0usize;
    group.bench_function(criterion::BenchmarkId::new("infra", "repeat"), |b| {
        b.iter(|| {
            next = (next + 1) % ACTIVE;
            black_box(active.create_alert(alert(next)).unwrap())
        })
    });
    group.bench_function(criterion::BenchmarkId::new("infra", "new"), |b| {
        b.iter_custom(|iters| {
            // A fresh manager holding 10,000 active alerts for each sample, so the map sizes stay put.
            let manager = manager();
            for n in 0..ACTIVE {
                manager.create_alert(alert(n)).unwrap();
            }
            let fresh: Vec<NewAlert> = (0..iters as usize).map(|i| alert(ACTIVE + i)).collect();
            let started = Instant::now();
            for new in fresh {
                black_box(manager.create_alert(new).unwrap());
            }
            started.elapsed()
        })
    });
    group.finish();
}

criterion_group! {
    name = alert_benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = create
}
criterion_main!(alert_benches);
