//! Spans from start to exporter: parents, the current span, sampling, limits, the mock clock,
//! batching across threads, failing exporters and shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use infra_trace::{
    BatchConfig, CallbackExporter, ExportError, FutureExt, InMemoryExporter, KeyValue, Link, Processor, Resource,
    Sampler, SpanData, SpanExporter, SpanId, SpanKind, SpanLimits, Status, Tracer, current_context,
};

fn tracer_with(spans: &InMemoryExporter) -> Tracer {
    Tracer::builder("test").exporter(spans.clone()).build().unwrap()
}

#[test]
fn children_share_the_trace_and_point_at_their_parent() {
    let spans = InMemoryExporter::new(1000);
    let tracer = tracer_with(&spans);
    let root = tracer.start_root("root");
    let child = tracer.start_child("child", root.context());
    let grandchild = {
        let _in_child = child.enter();
        tracer.start("grandchild")
    };
    let (root_ctx, child_ctx) = (root.context().clone(), child.context().clone());
    assert_eq!(grandchild.context().trace_id(), root_ctx.trace_id());
    drop((grandchild, child, root));
    tracer.force_flush();
    let trace = spans.trace(root_ctx.trace_id());
    assert_eq!(trace.len(), 3);
    let by_name = |n: &str| trace.iter().find(|s| s.name == n).unwrap().clone();
    assert_eq!(by_name("root").parent_span_id, SpanId::INVALID);
    assert_eq!(by_name("child").parent_span_id, root_ctx.span_id());
    assert_eq!(by_name("grandchild").parent_span_id, child_ctx.span_id());
    assert!(trace.iter().all(|s| s.end_unix_nanos >= s.start_unix_nanos));
}

#[test]
fn the_current_span_is_restored_when_guards_drop() {
    let tracer = Tracer::builder("test").build().unwrap();
    assert!(current_context().is_none());
    let outer = tracer.start_root("outer").entered();
    let inner = tracer.start("inner").entered();
    assert_eq!(current_context().unwrap().span_id(), inner.context().span_id());
    assert_eq!(inner.context().trace_id(), outer.context().trace_id());
    drop(inner);
    assert_eq!(current_context().unwrap().span_id(), outer.context().span_id());
    drop(outer);
    assert!(current_context().is_none());
}

#[test]
fn attributes_events_links_and_status_arrive_and_limits_are_counted() {
    let spans = InMemoryExporter::new(1000);
    let limits = SpanLimits { attributes: 2, events: 1, links: 1, attributes_per_event: 1, attributes_per_link: 0 };
    let tracer = Tracer::builder("test").limits(limits).exporter(spans.clone()).build().unwrap();
    let other = tracer.start_root("other");
    let mut span = tracer.span("op").kind(SpanKind::Client).attribute("a", 1).root().start();
    span.set_attribute("b", true);
    span.set_attribute("a", 2); // replaces, not a new key
    span.set_attribute("c", "dropped");
    span.add_event("e1", [KeyValue::new("x", 1.5), KeyValue::new("y", "dropped")]);
    span.add_event("e2", []);
    span.add_link(other.context().clone(), [KeyValue::new("why", "batch")]);
    span.add_link(other.context().clone(), []);
    span.set_status(Status::error("boom"));
    let trace_id = span.context().trace_id();
    span.end();
    tracer.force_flush();
    let data = &spans.trace(trace_id)[0];
    assert_eq!(data.kind, SpanKind::Client);
    assert_eq!(data.attribute("a"), Some(&2i64.into()));
    assert_eq!(data.attributes.len(), 2);
    assert_eq!((data.dropped_attributes, data.dropped_events, data.dropped_links), (1, 1, 1));
    assert_eq!(data.events[0].attributes.len(), 1);
    assert_eq!(data.events[0].dropped_attributes, 1);
    assert_eq!(data.links[0].dropped_attributes, 1);
    assert_eq!(data.status, Status::error("boom"));
    let stats = tracer.stats();
    assert_eq!((stats.dropped_attributes, stats.dropped_events, stats.dropped_links), (1, 1, 1));
}

#[test]
fn ok_status_is_final() {
    let spans = InMemoryExporter::new(10);
    let tracer = tracer_with(&spans);
    let mut span = tracer.start_root("op");
    span.set_status(Status::Ok);
    span.set_status(Status::error("later"));
    span.end();
    tracer.force_flush();
    assert_eq!(spans.spans()[0].status, Status::Ok);
}

#[test]
fn durations_and_event_times_follow_the_injected_clock() {
    let (clock, mock) = quanta::Clock::mock();
    let spans = InMemoryExporter::new(10);
    let tracer = Tracer::builder("test").clock(clock).exporter(spans.clone()).build().unwrap();
    let mut span = tracer.start_root("op");
    mock.increment(Duration::from_millis(3));
    span.add_event("half-way", []);
    mock.increment(Duration::from_millis(4));
    span.end();
    tracer.force_flush();
    let data = &spans.spans()[0];
    assert_eq!(data.duration(), Duration::from_millis(7));
    assert_eq!(data.events[0].time_unix_nanos - data.start_unix_nanos, 3_000_000);
}

#[test]
fn unsampled_spans_propagate_but_are_never_exported() {
    let spans = InMemoryExporter::new(10);
    let tracer = Tracer::builder("test").sampler(Sampler::AlwaysOff).exporter(spans.clone()).build().unwrap();
    let mut root = tracer.start_root("op");
    root.set_attribute("ignored", 1);
    assert!(!root.is_recording());
    assert!(root.context().is_valid() && !root.context().is_sampled());
    let child = tracer.start_child("child", root.context());
    assert_eq!(child.context().trace_id(), root.context().trace_id());
    drop((child, root));
    tracer.force_flush();
    assert!(spans.is_empty());
}

#[test]
fn spans_under_an_unsampled_local_span_share_its_context() {
    let spans = InMemoryExporter::new(10);
    let tracer = Tracer::builder("test").sample_rate(0.0).exporter(spans.clone()).build().unwrap();
    let root = tracer.start_root("op").entered();
    assert!(!root.is_recording());
    let child = tracer.start("child");
    let built = tracer.span("built").kind(SpanKind::Client).start();
    assert!(!child.is_recording() && !built.is_recording());
    assert_eq!(child.context(), root.context());
    assert_eq!(built.context(), root.context());
    // A sampler that decides per span gives every span its own identity.
    let ratio = Tracer::builder("test").sampler(Sampler::TraceIdRatio(0.0)).build().unwrap();
    let root = ratio.start_root("op").entered();
    assert_ne!(ratio.start("child").context().span_id(), root.context().span_id());
    drop((child, built));
    tracer.force_flush();
    assert!(spans.is_empty());
}

#[test]
fn a_sampled_remote_parent_is_honoured_by_the_default_sampler() {
    let spans = InMemoryExporter::new(10);
    let tracer = Tracer::builder("test").sample_rate(0.0).exporter(spans.clone()).build().unwrap();
    let headers = [("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")];
    let parent = tracer.extract(&headers[..]).unwrap();
    let span = tracer.span("server").kind(SpanKind::Server).parent(&parent).start();
    assert!(span.is_recording(), "a sampled caller's trace is continued even at rate 0");
    drop(span);
    let unsampled = [("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")];
    let parent = tracer.extract(&unsampled[..]).unwrap();
    assert!(!tracer.start_child("server", &parent).is_recording());
    tracer.force_flush();
    let data = &spans.spans()[0];
    assert!(data.parent_is_remote);
    assert_eq!(data.parent_span_id.to_string(), "00f067aa0ba902b7");
}

#[test]
fn malformed_headers_are_counted_and_start_a_new_trace() {
    let tracer = Tracer::builder("test").build().unwrap();
    let bad = [("traceparent", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01")];
    assert!(tracer.extract(&bad[..]).is_none());
    let none: [(&str, &str); 0] = [];
    assert!(tracer.extract(&none[..]).is_none());
    assert_eq!(tracer.stats().malformed_headers, 1);
}

#[test]
fn links_to_spans_of_other_traces_are_kept() {
    let spans = InMemoryExporter::new(10);
    let tracer = tracer_with(&spans);
    let a = tracer.start_root("a");
    let b = tracer.span("b").root().link(Link::new(a.context().clone())).start();
    let (a_ctx, b_trace) = (a.context().clone(), b.context().trace_id());
    drop((a, b));
    tracer.force_flush();
    assert_eq!(spans.trace(b_trace)[0].links[0].context, a_ctx);
}

#[test]
fn spans_ended_on_many_threads_are_all_exported_at_shutdown() {
    let spans = InMemoryExporter::new(1_000_000);
    let config = BatchConfig {
        max_queue_size: 100_000,
        max_export_batch_size: 512,
        scheduled_delay: Duration::from_secs(3600),
        ..BatchConfig::default()
    };
    let tracer = Tracer::builder("test").processor(Processor::Batch(config)).exporter(spans.clone()).build().unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let tracer = tracer.clone();
            std::thread::spawn(move || {
                for _ in 0..10_000 {
                    let root = tracer.start_root("root").entered();
                    for _ in 0..4 {
                        drop(tracer.start("child"));
                    }
                    drop(root);
                }
            })
        })
        .collect();
    // One thread that ends a span and then idles: its buffer must be swept too.
    let idle_tracer = tracer.clone();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let idle = std::thread::spawn(move || {
        drop(idle_tracer.start_root("lonely"));
        let _ = rx.recv();
    });
    for thread in threads {
        thread.join().unwrap();
    }
    tracer.shutdown_with_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(spans.len(), 4 * 10_000 * 5 + 1);
    let stats = tracer.stats();
    assert_eq!(stats.accepted, 200_001);
    assert_eq!(stats.dropped_queue_full, 0);
    drop(tracer.start_root("late"));
    assert_eq!(tracer.stats().dropped_after_shutdown, 1);
    tx.send(()).unwrap();
    idle.join().unwrap();
}

#[derive(Debug)]
struct Failing {
    calls: Arc<AtomicUsize>,
}

impl SpanExporter for Failing {
    fn export(&self, _: &[SpanData], _: &Resource) -> Result<(), ExportError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(20));
        Err(ExportError::Other("collector down".into()))
    }
}

#[test]
fn a_failing_slow_exporter_never_blocks_callers_and_its_drops_are_counted() {
    let calls = Arc::new(AtomicUsize::new(0));
    let good = InMemoryExporter::new(100_000);
    let config = BatchConfig {
        max_queue_size: 1000,
        max_export_batch_size: 100,
        scheduled_delay: Duration::from_millis(5),
        ..BatchConfig::default()
    };
    let tracer = Tracer::builder("test")
        .processor(Processor::Batch(config))
        .exporter(Failing { calls: Arc::clone(&calls) })
        .exporter(good.clone())
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    for _ in 0..20_000 {
        drop(tracer.start_root("op"));
    }
    // 20,000 spans would take seconds if each export's 20 ms were paid by the caller.
    assert!(started.elapsed() < Duration::from_secs(2), "callers waited {:?}", started.elapsed());
    tracer.shutdown_with_timeout(Duration::from_secs(30)).unwrap();
    let stats = tracer.stats();
    assert_eq!(stats.accepted + stats.dropped_queue_full, 20_000, "{stats:?}");
    assert_eq!(stats.export_failed, stats.accepted);
    assert_eq!(good.len() as u64, stats.accepted, "the other exporter got every accepted span");
    assert!(stats.export_errors > 0 && calls.load(Ordering::Relaxed) as u64 == stats.export_errors);
    assert!(tracer.last_export_error().unwrap().contains("collector down"));
}

#[test]
fn a_panicking_exporter_is_contained() {
    let good = InMemoryExporter::new(10);
    let tracer = Tracer::builder("test")
        .processor(Processor::Simple)
        .exporter(CallbackExporter::new(|_, _| panic!("bad exporter")))
        .exporter(good.clone())
        .build()
        .unwrap();
    drop(tracer.start_root("op"));
    assert_eq!(good.len(), 1);
    assert_eq!(tracer.stats().export_errors, 1);
}

#[test]
fn the_seed_api_keeps_traces_in_memory() {
    let tracer = Tracer::builder("test").keep_traces(100).processor(Processor::Simple).build().unwrap();
    let trace_id = tracer.in_span("request", |span| {
        span.set_attribute("user", "u1");
        tracer.in_span("db", |_| {});
        span.context().trace_id()
    });
    let failed: Result<(), String> = tracer.in_span_result("fails", |_| Err("nope".to_owned()));
    assert!(failed.is_err());
    let trace = tracer.get_trace(trace_id);
    assert_eq!(trace.iter().map(|s| s.name.as_ref()).collect::<Vec<_>>(), ["db", "request"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_survives_awaits_and_task_hops() {
    let spans = InMemoryExporter::new(1000);
    let tracer = tracer_with(&spans);
    let root = tracer.start_root("request");
    let root_ctx = root.context().clone();
    let t = tracer.clone();
    let work = async move {
        for i in 0..10 {
            tokio::task::yield_now().await;
            let mut child = t.start("step");
            child.set_attribute("i", i);
            tokio::time::sleep(Duration::from_millis(1)).await;
            drop(child);
        }
        let inner = current_context().unwrap();
        tokio::spawn(
            async move {
                assert_eq!(current_context().unwrap().span_id(), inner.span_id());
            }
            .in_current_span(),
        )
        .await
        .unwrap();
    };
    tokio::spawn(work.in_span(root)).await.unwrap();
    tracer.force_flush();
    let trace = spans.trace(root_ctx.trace_id());
    assert_eq!(trace.len(), 11, "ten steps and the request, which ended when its future completed");
    assert!(trace.iter().filter(|s| s.name == "step").all(|s| s.parent_span_id == root_ctx.span_id()));
}

#[test]
fn handles_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Tracer>();
    send_sync::<InMemoryExporter>();
    send::<infra_trace::Span>();
    send::<infra_trace::Instrumented<std::future::Ready<()>>>();
}

/// Hangs for 800 ms on its first batch, then exports at once.
#[derive(Debug, Default)]
struct Hanging {
    calls: AtomicUsize,
}

impl SpanExporter for Hanging {
    fn export(&self, _: &[SpanData], _: &Resource) -> Result<(), ExportError> {
        if self.calls.fetch_add(1, Ordering::Relaxed) == 0 {
            std::thread::sleep(Duration::from_millis(800));
        }
        Ok(())
    }
}

#[test]
fn an_export_timeout_keeps_a_hung_exporter_from_holding_up_the_others() {
    let good = InMemoryExporter::new(1000);
    let config = BatchConfig {
        scheduled_delay: Duration::from_secs(3600),
        export_timeout: Some(Duration::from_millis(50)),
        ..BatchConfig::default()
    };
    let tracer = Tracer::builder("test")
        .processor(Processor::Batch(config))
        .exporter(Hanging::default())
        .exporter(good.clone())
        .build()
        .unwrap();
    drop(tracer.start_root("first"));
    let started = std::time::Instant::now();
    tracer.force_flush();
    drop(tracer.start_root("second"));
    tracer.force_flush();
    // Two batches, each waiting at most the 50 ms timeout for the hung exporter (the second one
    // not at all: it is skipped while still busy), never its 800 ms.
    assert!(started.elapsed() < Duration::from_millis(600), "flushes took {:?}", started.elapsed());
    assert_eq!(good.len(), 2, "the other exporter got both batches");
    let stats = tracer.stats();
    assert_eq!((stats.exported, stats.export_failed, stats.export_errors), (2, 2, 2));
    assert!(tracer.last_export_error().unwrap().contains("still busy"), "{:?}", tracer.last_export_error());
    // Once it returns it takes batches again.
    std::thread::sleep(Duration::from_millis(900));
    drop(tracer.start_root("third"));
    tracer.shutdown_with_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(tracer.stats().exported, 4);
}

#[test]
fn every_span_ended_during_a_shutdown_is_exported_or_counted() {
    use std::sync::atomic::{AtomicBool, AtomicU64};
    for round in 0..20 {
        let exported = Arc::new(AtomicU64::new(0));
        let seen = Arc::clone(&exported);
        let config = BatchConfig {
            max_queue_size: 4096,
            max_export_batch_size: 64,
            scheduled_delay: Duration::from_millis(1),
            ..BatchConfig::default()
        };
        let tracer = Tracer::builder("test")
            .processor(Processor::Batch(config))
            .exporter(CallbackExporter::new(move |spans, _| {
                seen.fetch_add(spans.len() as u64, Ordering::Relaxed);
            }))
            .build()
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..3)
            .map(|i| {
                let (tracer, stop) = (tracer.clone(), Arc::clone(&stop));
                std::thread::spawn(move || {
                    let mut ended = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        // Alternate spans ended inside an entered span (staged) and outside (handed
                        // over at once), so shutdown meets both.
                        if i % 2 == 0 {
                            let root = tracer.start_root("root").entered();
                            drop(tracer.start("child"));
                            drop(root);
                            ended += 2;
                        } else {
                            drop(tracer.start_root("lone"));
                            ended += 1;
                        }
                    }
                    ended
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(2 + round % 5));
        tracer.shutdown_with_timeout(Duration::from_secs(10)).unwrap();
        std::thread::sleep(Duration::from_millis(1));
        stop.store(true, Ordering::Relaxed);
        let ended: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
        let stats = tracer.stats();
        let accounted = exported.load(Ordering::Relaxed) + stats.dropped_after_shutdown + stats.dropped_queue_full;
        assert_eq!(accounted, ended, "round {round}: {stats:?}");
        assert_eq!(stats.exported, exported.load(Ordering::Relaxed));
    }
}

#[test]
fn the_in_memory_store_lists_its_most_recent_traces_first() {
    let spans = InMemoryExporter::new(1000);
    let tracer = tracer_with(&spans);
    let ids: Vec<_> = (0..5)
        .map(|n| {
            tracer.in_span(format!("order-{n}"), |span| {
                tracer.in_span("venue.send", |_| {});
                span.context().trace_id()
            })
        })
        .collect();
    tracer.force_flush();
    let recent = spans.recent_traces(3);
    let firsts: Vec<_> = recent.iter().map(|trace| trace[0].context.trace_id()).collect();
    assert_eq!(firsts, [ids[4], ids[3], ids[2]], "newest first, three of five");
    assert!(recent.iter().all(|trace| trace.len() == 2));
    assert!(spans.recent_traces(0).is_empty());
}
