//! ftlog (formatting on its worker, writing to a file) under `log_call`; see `log.rs`.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use infra_benches::latency;

fn log_call(c: &mut Criterion) {
    let file = ftlog::appender::FileAppender::new(latency::temp_file("ftlog.log"));
    let _guard = ftlog::builder().root(file).try_init().unwrap();
    let mut group = c.benchmark_group("log_call");
    group.bench_function("ftlog", |b| {
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
    eprintln!("log latency ftlog: p50 {p50:?} p99 {p99:?}");
}

criterion_group!(benches, log_call);
criterion_main!(benches);
