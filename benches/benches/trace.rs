//! infra-trace against fastrace, `tracing` (bare, on the registry subscriber, and with
//! `tracing-opentelemetry`) and the OpenTelemetry SDK, every one exporting through its batch
//! processor into an exporter that does nothing. Times are per span. fastrace is measured twice:
//! with a reporter that does nothing (`fastrace`, the whole pipeline like the others) and with no
//! reporter at all (`fastrace_unreported`, spans collected and discarded).
//!
//! - `trace_span/{impl}/{children}`: a root with 1, 10 or 100 children, sampled;
//! - `trace_span_unsampled/{impl}/{children}`: the same with the trace not sampled (ratio 0 for us,
//!   1% for the OpenTelemetry SDK, so nearly every trace is dropped);
//! - `trace_span_2threads/{impl}/10`: two threads each making traces of 10 children at once (wall
//!   time per span with both busy);
//! - `trace_propagation/{impl}`: inject a `traceparent` into a `HashMap<String, String>` and extract
//!   it again (`infra_header_only`: format and parse the header alone, no map; `hashmap_floor`: the
//!   map alone, filled with an already formatted header and read back).
//!
//! Each child span is used by reference (`black_box(&span)`), as code that sets attributes on it
//! would, rather than copied into `black_box` by value, which would charge each implementation for
//! the size of its span handle.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use infra_benches::run_split;
use opentelemetry::trace::{TraceContextExt, Tracer as _, TracerProvider as _};

const CHILDREN: [usize; 3] = [1, 10, 100];

fn ours(sampled: bool) -> infra_trace::Tracer {
    let sampler = if sampled { infra_trace::Sampler::AlwaysOn } else { infra_trace::Sampler::AlwaysOff };
    let config = infra_trace::BatchConfig {
        max_queue_size: 1 << 16,
        max_export_batch_size: 512,
        scheduled_delay: Duration::from_millis(100),
        ..infra_trace::BatchConfig::default()
    };
    infra_trace::Tracer::builder("bench")
        .sampler(sampler)
        .processor(infra_trace::Processor::Batch(config))
        .exporter(infra_trace::CallbackExporter::new(|spans, _| {
            black_box(spans.len());
        }))
        .build()
        .unwrap()
}

fn ours_trace(tracer: &infra_trace::Tracer, children: usize) {
    let root = tracer.start_root("root").entered();
    for _ in 0..children {
        let child = tracer.start("child");
        black_box(&child);
    }
    drop(root);
}

struct NoopReporter;

impl fastrace::collector::Reporter for NoopReporter {
    fn report(&mut self, spans: Vec<fastrace::collector::SpanRecord>) {
        black_box(spans.len());
    }
}

fn fastrace_trace(children: usize) {
    use fastrace::prelude::*;
    let root = Span::root("root", SpanContext::random());
    let _guard = root.set_local_parent();
    for _ in 0..children {
        let child = LocalSpan::enter_with_local_parent("child");
        black_box(&child);
    }
}

fn tracing_trace(children: usize) {
    let root = tracing::info_span!("root").entered();
    for _ in 0..children {
        let child = tracing::info_span!("child").entered();
        black_box(&child);
    }
    drop(root);
}

#[derive(Debug)]
struct NoopOtelExporter;

impl opentelemetry_sdk::trace::SpanExporter for NoopOtelExporter {
    async fn export(&self, batch: Vec<opentelemetry_sdk::trace::SpanData>) -> opentelemetry_sdk::error::OTelSdkResult {
        black_box(batch.len());
        Ok(())
    }
}

fn otel_provider(ratio: f64) -> opentelemetry_sdk::trace::SdkTracerProvider {
    let processor = opentelemetry_sdk::trace::BatchSpanProcessor::builder(NoopOtelExporter)
        .with_batch_config(
            opentelemetry_sdk::trace::BatchConfigBuilder::default()
                .with_max_queue_size(1 << 16)
                .with_scheduled_delay(Duration::from_millis(100))
                .build(),
        )
        .build();
    opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(opentelemetry_sdk::trace::Sampler::TraceIdRatioBased(ratio))
        .build()
}

fn otel_trace(tracer: &opentelemetry_sdk::trace::SdkTracer, children: usize) {
    let root = tracer.start("root");
    let cx = opentelemetry::Context::current_with_span(root);
    let guard = cx.clone().attach();
    for _ in 0..children {
        let child = tracer.start("child");
        black_box(&child);
    }
    drop(guard);
    cx.span().end();
}

/// Runs `iters` spans' worth of whole traces and reports the time per span; then, untimed, lets
/// the implementation drain its backlog (`drain`), so that a pipeline's leftover work never runs
/// during the next measurement, whoever's it is.
fn per_span(iters: u64, children: usize, mut trace: impl FnMut(), drain: impl FnOnce()) -> Duration {
    let spans = children as u64 + 1;
    let traces = iters.div_ceil(spans).max(1);
    let start = Instant::now();
    for _ in 0..traces {
        trace();
    }
    let elapsed = start.elapsed().mul_f64(iters as f64 / (traces * spans) as f64);
    drain();
    elapsed
}

/// Runs one of our benchmarks and prints how many spans it exported and dropped: a figure bought by
/// dropping spans would not count.
fn ours_case(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    label: &str,
    id: BenchmarkId,
    tracer: &infra_trace::Tracer,
    run: impl FnMut(&mut criterion::Bencher<'_>),
) {
    tracer.force_flush();
    let before = tracer.stats();
    group.bench_function(id, run);
    tracer.force_flush();
    let after = tracer.stats();
    let accepted = after.accepted - before.accepted;
    let dropped = after.dropped_queue_full - before.dropped_queue_full;
    eprintln!(
        "infra-trace {label}: {accepted} spans exported, {dropped} dropped ({:.3}%)",
        100.0 * dropped as f64 / (accepted + dropped).max(1) as f64
    );
}

fn span_cost(c: &mut Criterion) {
    let sampled = ours(true);
    let mut group = c.benchmark_group("trace_span");
    // fastrace without a reporter collects spans thread-locally and then discards them (the
    // instrumentation cost alone); this must run before the reporter is set, which is for good.
    for children in CHILDREN {
        group.bench_function(BenchmarkId::new("fastrace_unreported", children), |b| {
            b.iter_custom(|iters| per_span(iters, children, || fastrace_trace(children), || ()))
        });
    }
    fastrace::set_reporter(NoopReporter, fastrace::collector::Config::default());
    let otel = otel_provider(1.0);
    let otel_tracer = otel.tracer("bench");
    let otel_layer_provider = otel_provider(1.0);
    let registry = tracing::Dispatch::new(tracing_subscriber::registry());
    let with_otel = {
        use tracing_subscriber::layer::SubscriberExt;
        tracing::Dispatch::new(
            tracing_subscriber::registry()
                .with(tracing_opentelemetry::layer().with_tracer(otel_layer_provider.tracer("bench"))),
        )
    };

    for children in CHILDREN {
        ours_case(
            &mut group,
            &format!("trace_span/infra/{children}"),
            BenchmarkId::new("infra", children),
            &sampled,
            |b| {
                b.iter_custom(|iters| {
                    per_span(
                        iters,
                        children,
                        || ours_trace(&sampled, children),
                        || {
                            sampled.force_flush();
                        },
                    )
                })
            },
        );
        group.bench_function(BenchmarkId::new("fastrace", children), |b| {
            b.iter_custom(|iters| per_span(iters, children, || fastrace_trace(children), fastrace::flush))
        });
        group.bench_function(BenchmarkId::new("tracing", children), |b| {
            b.iter_custom(|iters| {
                tracing::dispatcher::with_default(&registry, || {
                    per_span(iters, children, || tracing_trace(children), || ())
                })
            })
        });
        group.bench_function(BenchmarkId::new("tracing_opentelemetry", children), |b| {
            b.iter_custom(|iters| {
                tracing::dispatcher::with_default(&with_otel, || {
                    per_span(
                        iters,
                        children,
                        || tracing_trace(children),
                        || {
                            let _ = otel_layer_provider.force_flush();
                        },
                    )
                })
            })
        });
        otel_case(&mut group, children, &otel, &otel_tracer);
    }
    group.finish();
}

/// The OpenTelemetry SDK's case for `children`, its batch processor drained after each run.
fn otel_case(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    children: usize,
    provider: &opentelemetry_sdk::trace::SdkTracerProvider,
    tracer: &opentelemetry_sdk::trace::SdkTracer,
) {
    group.bench_function(BenchmarkId::new("opentelemetry", children), |b| {
        b.iter_custom(|iters| {
            per_span(
                iters,
                children,
                || otel_trace(tracer, children),
                || {
                    let _ = provider.force_flush();
                },
            )
        })
    });
}

fn unsampled_cost(c: &mut Criterion) {
    let unsampled = ours(false);
    let otel = otel_provider(0.01);
    let otel_tracer = otel.tracer("bench");
    let mut group = c.benchmark_group("trace_span_unsampled");
    for children in CHILDREN {
        group.bench_function(BenchmarkId::new("infra", children), |b| {
            b.iter_custom(|iters| per_span(iters, children, || ours_trace(&unsampled, children), || ()))
        });
        otel_case(&mut group, children, &otel, &otel_tracer);
    }
    group.finish();
}

fn two_threads(c: &mut Criterion) {
    let sampled = ours(true);
    let otel = otel_provider(1.0);
    let otel_tracer = otel.tracer("bench");
    let children = 10;
    let mut group = c.benchmark_group("trace_span_2threads");
    let per_span = |iters: u64, trace: &(dyn Fn() + Sync), drain: &dyn Fn()| {
        let traces = iters.div_ceil(children as u64 + 1);
        let elapsed = run_split(2, traces, |_| trace()).mul_f64(iters as f64 / (traces * 11) as f64);
        drain();
        elapsed
    };
    ours_case(
        &mut group,
        &format!("trace_span_2threads/infra/{children}"),
        BenchmarkId::new("infra", children),
        &sampled,
        |b| {
            b.iter_custom(|iters| {
                per_span(iters, &|| ours_trace(&sampled, children), &|| {
                    sampled.force_flush();
                })
            })
        },
    );
    group.bench_function(BenchmarkId::new("fastrace", children), |b| {
        b.iter_custom(|iters| per_span(iters, &|| fastrace_trace(children), &fastrace::flush))
    });
    group.bench_function(BenchmarkId::new("opentelemetry", children), |b| {
        b.iter_custom(|iters| {
            per_span(iters, &|| otel_trace(&otel_tracer, children), &|| {
                let _ = otel.force_flush();
            })
        })
    });
    group.finish();
}

fn propagation(c: &mut Criterion) {
    use opentelemetry::propagation::TextMapPropagator;
    let tracer = ours(true);
    let span = tracer.start_root("root");
    let otel = opentelemetry_sdk::propagation::TraceContextPropagator::new();
    let otel_provider = otel_provider(1.0);
    let otel_span = otel_provider.tracer("bench").start("root");
    let otel_cx = opentelemetry::Context::current_with_span(otel_span);

    let mut group = c.benchmark_group("trace_propagation");
    group.bench_function("infra", |b| {
        b.iter(|| {
            let mut headers: HashMap<String, String> = HashMap::with_capacity(2);
            infra_trace::TraceContextPropagator.inject(black_box(span.context()), &mut headers);
            black_box(infra_trace::TraceContextPropagator.extract(&headers).unwrap())
        })
    });
    // The same work without the map's allocations and hashing: what the propagator itself costs.
    group.bench_function("infra_header_only", |b| {
        b.iter(|| {
            let header = infra_trace::traceparent(black_box(span.context()));
            black_box(infra_trace::parse_traceparent(black_box(&header)).unwrap())
        })
    });
    // The carrier alone: the same map filled with an already formatted header and read back.
    let formatted = infra_trace::traceparent(span.context());
    group.bench_function("hashmap_floor", |b| {
        b.iter(|| {
            let mut headers: HashMap<String, String> = HashMap::with_capacity(2);
            headers.insert("traceparent".to_owned(), black_box(&formatted).clone());
            black_box(headers.get("traceparent").map(String::len));
            black_box(headers.get("tracestate").map(String::len))
        })
    });
    group.bench_function("opentelemetry", |b| {
        b.iter(|| {
            let mut headers: HashMap<String, String> = HashMap::with_capacity(2);
            otel.inject_context(black_box(&otel_cx), &mut headers);
            black_box(otel.extract(&headers))
        })
    });
    group.finish();
}

criterion_group!(benches, span_cost, unsampled_cost, two_threads, propagation);
criterion_main!(benches);
