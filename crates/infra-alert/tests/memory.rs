//! Memory per active alert, measured with an instrumented allocator: the bound is 1 KiB.

use std::alloc::System;

use infra_alert::{AlertManager, Matcher, MemoryNotifier, NewAlert, Route, RouteTree, Severity};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[test]
fn an_active_alert_costs_under_a_kibibyte() {
    let tree = RouteTree::new(
        Route::to("ops")
            .group_by(["alertname"])
            .route(Route::to("pager").matcher(Matcher::parse("severity=\"critical\"").unwrap()).continue_matching(true))
            .route(Route::to("db").matcher(Matcher::parse("service=~\"db-.*\"").unwrap())),
        &["ops", "pager", "db"],
    )
    .unwrap();
    let manager = AlertManager::builder("orders")
        .routes(tree)
        .receiver("ops", MemoryNotifier::new())
        .receiver("pager", MemoryNotifier::new())
        .receiver("db", MemoryNotifier::new())
        .build()
        .unwrap();
    let alert = |n: usize| {
        NewAlert::new([Severity::Warning, Severity::Critical][n % 2], format!("Alert{}", n % 50))
            .source("exporter")
            .label("instance", format!("10.0.{}.{}:9100", n / 256, n % 256))
            .label("service", format!("db-{}", n % 20))
    };
    // Warm up the maps so their first growth is not charged to the measured alerts alone.
    for n in 0..1_000 {
        manager.create_alert(alert(n)).unwrap();
    }
    let region = Region::new(GLOBAL);
    for n in 1_000..11_000 {
        manager.create_alert(alert(n)).unwrap();
    }
    let change = region.change();
    let net = change.bytes_allocated as i64 - change.bytes_deallocated as i64 + change.bytes_reallocated as i64;
    let per_alert = net as f64 / 10_000.0;
    eprintln!(
        "alert memory: {per_alert:.0} bytes per active alert (10,000 alerts, routed to two or three groups each)"
    );
    assert!(per_alert <= 1024.0, "{per_alert:.0} bytes per active alert");
    assert_eq!(manager.statistics().firing, 11_000);
}
