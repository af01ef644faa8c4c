//! infra-log's hot path against `tracing` with `tracing-appender`'s non-blocking writer and the JSON
//! formatter, each writing JSON lines to a file: a call with three fields (a string, an integer, a
//! float). ftlog and fast_log are in `log_ftlog.rs` and `log_fast_log.rs` (each installs itself as
//! the process's one `log` logger) under the same group names.
//!
//! - `log_call/{impl}`: time per call (criterion);
//! - per-call p50 and p99 and the drops of each run are printed (`log latency ...` lines): a figure
//!   bought by dropping entries does not count;
//! - throughput: 4,000,000 entries to a rolling file with the blocking policy, flushed, against
//!   tracing-appender's rolling writer in its lossless mode (`log throughput ...` lines).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use infra_benches::latency;

fn infra() -> infra_log::LogAggregator {
    let file = std::fs::File::create(latency::temp_file("infra.jsonl")).unwrap();
    infra_log::LogAggregator::builder("bench")
        .overflow(infra_log::Overflow::Block)
        .sink(infra_log::JsonLinesSink::new(std::io::BufWriter::with_capacity(1 << 20, file)))
        .build()
        .unwrap()
}

fn log_call(c: &mut Criterion) {
    if std::env::args().any(|arg| arg == "--bench") {
        // The one-by-one timings and the throughput run take seconds, so only in a real benchmark
        // run (not when CI runs the benches once in test mode); and first, each on fresh files,
        // before the criterion floods below leave gigabytes of page cache behind.
        latency();
        throughput();
    }
    let logs = infra();
    let file = std::fs::File::create(latency::temp_file("tracing.jsonl")).unwrap();
    let (writer, _guard) = tracing_appender::non_blocking(file);
    let subscriber = tracing_subscriber::fmt().json().with_writer(writer).finish();
    let dispatch = tracing::Dispatch::new(subscriber);

    let mut group = c.benchmark_group("log_call");
    group.bench_function("infra", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for i in 0..iters {
                infra_log::info!(logs, "orders", "order accepted", venue = "XLON", qty = black_box(i), price = 101.25);
            }
            let elapsed = start.elapsed();
            logs.flush();
            elapsed
        })
    });
    group.bench_function("tracing", |b| {
        b.iter_custom(|iters| {
            tracing::dispatcher::with_default(&dispatch, || {
                let start = Instant::now();
                for i in 0..iters {
                    tracing::info!(target: "orders", venue = "XLON", qty = black_box(i), price = 101.25, "order accepted");
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

/// Per-call p50 and p99 over 1,000,000 calls each, with the drops.
fn latency() {
    let logs = infra();
    let (p50, p99) = latency::percentiles(1_000_000, |i| {
        infra_log::info!(logs, "orders", "order accepted", venue = "XLON", qty = i, price = 101.25);
    });
    logs.flush();
    let stats = logs.stats();
    let dropped = stats.dropped_newest + stats.dropped_oldest + stats.sinks.iter().map(|s| s.dropped).sum::<u64>();
    eprintln!("log latency infra: p50 {p50:?} p99 {p99:?}, {} written, {dropped} dropped", stats.sinks[0].written);
    drop(logs);

    let file = std::fs::File::create(latency::temp_file("tracing.jsonl")).unwrap();
    let (writer, guard) = tracing_appender::non_blocking(file);
    let subscriber = tracing_subscriber::fmt().json().with_writer(writer.clone()).finish();
    let dispatch = tracing::Dispatch::new(subscriber);
    let (p50, p99) = tracing::dispatcher::with_default(&dispatch, || {
        latency::percentiles(1_000_000, |i| {
            tracing::info!(target: "orders", venue = "XLON", qty = i, price = 101.25, "order accepted");
        })
    });
    drop(guard);
    eprintln!("log latency tracing: p50 {p50:?} p99 {p99:?}, {} dropped", writer.error_counter().dropped_lines());
}

/// 4,000,000 entries into a rolling-file sink with the blocking policy, then flush and wait:
/// entries a second with zero drops, against tracing-appender's rolling writer behind its
/// non-blocking worker in its lossless mode.
fn throughput() {
    const ENTRIES: u64 = 4_000_000;
    let dir = latency::temp_file("rolling");
    let _ = std::fs::remove_dir_all(&dir);
    let sink = infra_log::RollingFileSink::builder(&dir, "infra").max_bytes(256 << 20).build().unwrap();
    let logs =
        infra_log::LogAggregator::builder("bench").overflow(infra_log::Overflow::Block).sink(sink).build().unwrap();
    let start = Instant::now();
    for i in 0..ENTRIES {
        infra_log::info!(logs, "orders", "order accepted", venue = "XLON", qty = i, price = 101.25);
    }
    assert!(logs.flush_with_timeout(Duration::from_secs(120)));
    let elapsed = start.elapsed();
    let stats = logs.stats();
    let dropped = stats.dropped_newest + stats.dropped_oldest + stats.sinks.iter().map(|s| s.dropped).sum::<u64>();
    eprintln!(
        "log throughput infra: {:.0} entries/s to a rolling file, {} written, {dropped} dropped",
        ENTRIES as f64 / elapsed.as_secs_f64(),
        stats.sinks[0].written
    );
    drop(logs);

    let appender = tracing_appender::rolling::never(&dir, "tracing.jsonl");
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default().lossy(false).finish(appender);
    let subscriber = tracing_subscriber::fmt().json().with_writer(writer.clone()).finish();
    let dispatch = tracing::Dispatch::new(subscriber);
    let start = Instant::now();
    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..ENTRIES {
            tracing::info!(target: "orders", venue = "XLON", qty = i, price = 101.25, "order accepted");
        }
    });
    drop(guard); // waits for the worker to write everything
    let elapsed = start.elapsed();
    eprintln!(
        "log throughput tracing: {:.0} entries/s to a rolling file, {} dropped",
        ENTRIES as f64 / elapsed.as_secs_f64(),
        writer.error_counter().dropped_lines()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, log_call);
criterion_main!(benches);
