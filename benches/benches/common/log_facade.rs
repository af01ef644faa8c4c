//! The benchmark both `log`-facade peers share (each installs itself as the process's one logger,
//! so each needs its own bench binary): the same call as `log.rs`, as text through `log::info!`.

use std::hint::black_box;
use std::time::Instant;

use criterion::Criterion;
use infra_benches::latency;

/// Benchmarks `log::info!` into whichever logger the caller installed, under `log_call/{name}`.
pub(crate) fn bench(c: &mut Criterion, name: &str) {
    let mut group = c.benchmark_group("log_call");
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for i in 0..iters {
                log::info!(target: "orders", "order accepted venue={} qty={} price={}", "XLON", black_box(i), 101.25);
            }
            start.elapsed()
        })
    });
    group.finish();
    // One-by-one timings only in a real benchmark run, not when CI runs the benches in test mode.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let (p50, p99) = latency::percentiles(1_000_000, |i| {
        log::info!(target: "orders", "order accepted venue={} qty={} price={}", "XLON", i, 101.25);
    });
    log::logger().flush();
    eprintln!("log latency {name}: p50 {p50:?} p99 {p99:?}");
}
