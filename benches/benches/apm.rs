//! infra-apm against the `prometheus` and `prometheus-client` crates, the `metrics` crate (recording into
//! `metrics-exporter-prometheus`'s recorder) and the OpenTelemetry SDK (with a manual reader), with the
//! uncontended atomic add as the floor:
//!
//! - `apm_counter_inc/N`: a counter handle incremented by 1 and 2 threads (wall time per increment with
//!   all threads busy: flat from 1 to 2 means linear scaling; a shared atomic roughly doubles);
//! - `apm_histogram_record`: one observation into a histogram handle;
//! - `apm_by_name`: the seed's by-name path on an existing series with one label;
//! - `apm_render_10x100`: the OpenMetrics text of 10 counters with 100 series each.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use infra_benches::run_split;

fn counter_inc(c: &mut Criterion) {
    let ours = infra_apm::Collector::builder("bench").build().counter("requests", "Requests.", &[]).unwrap();
    let theirs = prometheus::IntCounter::new("requests", "Requests.").unwrap();
    let client: prometheus_client::metrics::counter::Counter = Default::default();
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let metrics_counter = metrics::with_local_recorder(&recorder, || metrics::counter!("requests"));
    let otel = otel_meter();
    let otel_counter = otel.u64_counter("requests").build();
    let floor = AtomicU64::new(0);

    let mut group = c.benchmark_group("apm_counter_inc");
    for threads in [1usize, 2] {
        group.bench_function(BenchmarkId::new("infra", threads), |b| {
            b.iter_custom(|iters| run_split(threads, iters, |_| ours.inc()))
        });
        group.bench_function(BenchmarkId::new("prometheus", threads), |b| {
            b.iter_custom(|iters| run_split(threads, iters, |_| theirs.inc()))
        });
        group.bench_function(BenchmarkId::new("prometheus_client", threads), |b| {
            b.iter_custom(|iters| {
                run_split(threads, iters, |_| {
                    client.inc();
                })
            })
        });
        group.bench_function(BenchmarkId::new("metrics", threads), |b| {
            b.iter_custom(|iters| run_split(threads, iters, |_| metrics_counter.increment(1)))
        });
        group.bench_function(BenchmarkId::new("opentelemetry", threads), |b| {
            b.iter_custom(|iters| run_split(threads, iters, |_| otel_counter.add(1, &[])))
        });
        group.bench_function(BenchmarkId::new("atomic_floor", threads), |b| {
            b.iter_custom(|iters| {
                run_split(threads, iters, |_| {
                    floor.fetch_add(1, Ordering::Relaxed);
                })
            })
        });
    }
    group.finish();
}

fn histogram_record(c: &mut Criterion) {
    let ours = infra_apm::Collector::builder("bench").build().histogram("latency_seconds", "Latency.", &[]).unwrap();
    let theirs =
        prometheus::Histogram::with_opts(prometheus::HistogramOpts::new("latency_seconds", "Latency.")).unwrap();
    let client = prometheus_client::metrics::histogram::Histogram::new(
        prometheus_client::metrics::histogram::exponential_buckets(0.0001, 2.0, 16),
    );
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let metrics_histogram = metrics::with_local_recorder(&recorder, || metrics::histogram!("latency_seconds"));
    let otel = otel_meter();
    let otel_histogram = otel.f64_histogram("latency_seconds").build();
    let values: Vec<f64> = (0..1024).map(|i| 0.0001 * (1.0 + (i as f64 * 7.31) % 1000.0)).collect();
    let value = |i: u64| values[(i as usize) & 1023];

    let mut group = c.benchmark_group("apm_histogram_record");
    group.bench_function("infra", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            ours.record(black_box(value(i)));
        })
    });
    group.bench_function("prometheus", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            theirs.observe(black_box(value(i)));
        })
    });
    group.bench_function("prometheus_client", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            client.observe(black_box(value(i)));
        })
    });
    group.bench_function("metrics", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            metrics_histogram.record(black_box(value(i)));
        })
    });
    group.bench_function("opentelemetry", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            otel_histogram.record(black_box(value(i)), &[]);
        })
    });
    group.finish();
}

/// An OpenTelemetry meter from an SDK provider with a manual reader (no exporter thread).
fn otel_meter() -> opentelemetry::metrics::Meter {
    use opentelemetry::metrics::MeterProvider as _;
    let reader = opentelemetry_sdk::metrics::ManualReader::builder().build();
    let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder().with_reader(reader).build();
    provider.meter("bench")
}

fn by_name(c: &mut Criterion) {
    let collector = infra_apm::Collector::builder("bench").build();
    collector.increment_counter("orders", 1, &[("venue", "XLON")]).unwrap();
    let theirs = prometheus::IntCounterVec::new(prometheus::Opts::new("orders", "Orders."), &["venue"]).unwrap();

    let mut group = c.benchmark_group("apm_by_name");
    group.bench_function("infra", |b| {
        b.iter(|| collector.increment_counter(black_box("orders"), 1, black_box(&[("venue", "XLON")])))
    });
    group.bench_function("prometheus", |b| b.iter(|| theirs.with_label_values(black_box(&["XLON"])).inc()));
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    metrics::with_local_recorder(&recorder, || {
        group.bench_function("metrics", |b| {
            b.iter(|| metrics::counter!("orders", "venue" => black_box("XLON")).increment(1))
        });
    });
    group.finish();
}

fn render(c: &mut Criterion) {
    use prometheus_client::encoding::EncodeLabelSet;

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct Labels {
        series: String,
    }

    let collector = infra_apm::Collector::builder("bench").build();
    let mut registry = prometheus_client::registry::Registry::default();
    for metric in 0..10 {
        let name = format!("metric_{metric}");
        let family =
            prometheus_client::metrics::family::Family::<Labels, prometheus_client::metrics::counter::Counter>::default(
            );
        registry.register(name.clone(), "A counter.", family.clone());
        for series in 0..100 {
            let label = format!("s{series}");
            collector.counter(&name, "A counter.", &[("series", &label)]).unwrap().add(series);
            family.get_or_create(&Labels { series: label }).inc_by(series);
        }
    }
    let mut group = c.benchmark_group("apm_render_10x100");
    group.bench_function("infra", |b| b.iter(|| collector.render_openmetrics().len()));
    group.bench_function("prometheus_client", |b| {
        b.iter(|| {
            let mut out = String::new();
            prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
            out.len()
        })
    });
    group.finish();
}

criterion_group!(benches, counter_inc, histogram_record, by_name, render);
criterion_main!(benches);
