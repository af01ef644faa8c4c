//! Distributed tracing that speaks W3C Trace Context and OpenTelemetry, at tens of nanoseconds a
//! span.
//!
//! A [`Tracer`] starts [`Span`]s: roots, children of the current span, or children of a remote
//! parent extracted from headers. A span records attributes, events, links and a status, and goes
//! to the exporters when it ends. A span ending inside an entered span is staged in a vector only its
//! thread touches (no lock, no atomic) and handed over when the thread leaves its outermost entered
//! span; a background worker exports in batches. An unsampled span records nothing; under an
//! unsampled local span, a child costs a few nanoseconds.
//!
//! ```
//! use std::collections::HashMap;
//! use infra_trace::{FutureExt, InMemoryExporter, KeyValue, SpanKind, Tracer};
//!
//! let spans = InMemoryExporter::new(10_000);
//! let tracer = Tracer::builder("order-gateway").sample_rate(1.0).exporter(spans.clone()).build()?;
//!
//! // An incoming request: continue the caller's trace.
//! let incoming: HashMap<String, String> = HashMap::from([(
//!     "traceparent".to_owned(),
//!     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
//! )]);
//! let parent = tracer.extract(&incoming).expect("a valid traceparent");
//! let server = tracer.span("POST /orders").kind(SpanKind::Server).parent(&parent).start().entered();
//!
//! // Work inside it is traced as its children.
//! tracer.in_span("risk-check", |span| {
//!     span.set_attribute("order.qty", 100);
//!     span.add_event("limits-loaded", [KeyValue::new("limits", 12)]);
//! });
//!
//! // An outgoing call carries the context on.
//! let mut outgoing: HashMap<String, String> = HashMap::new();
//! tracer.inject(server.context(), &mut outgoing);
//! assert!(outgoing["traceparent"].starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
//!
//! drop(server);
//! tracer.force_flush();
//! let trace = spans.trace(parent.trace_id());
//! assert_eq!(trace.len(), 2);
//! assert!(trace.iter().any(|s| s.name == "risk-check" && s.attribute("order.qty").is_some()));
//! # let _ = async { async {}.in_current_span().await };
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The current span is per thread ([`Span::enter`], [`Span::entered`], [`attach`]); futures carry
//! it across `.await` and task hops with [`FutureExt::in_span`] and [`FutureExt::in_current_span`].
//!
//! Sampling: [`Sampler`] (always on or off, OpenTelemetry-consistent trace-id ratio, parent-based,
//! rate-limited, your own). Propagation: [`TraceContextPropagator`] (W3C levels 1 and 2) and
//! [`B3Propagator`] over any [`Injector`]/[`Extractor`]. Export: [`InMemoryExporter`] (whole traces
//! by id), [`JsonLinesExporter`], [`CallbackExporter`], and with the `otlp` feature `OtlpExporter`.
//!
//! ## Feature flags
//!
//! - `http`: [`Injector`] and [`Extractor`] for `http::HeaderMap`.
//! - `otlp`: `OtlpExporter`, OTLP over HTTP/protobuf to a collector's `/v1/traces`.
//! - `tower`: `ServerLayer` and `ClientLayer`, middleware for `http` services (axum, hyper, tonic):
//!   a server span per request continuing the caller's trace, a client span per outgoing request
//!   with its context injected.
//!
//! The guide is `docs/trace.md`.

mod context;
mod current;
mod data;
mod export;
mod id;
#[cfg(feature = "tower")]
mod middleware;
#[cfg(feature = "otlp")]
mod otlp;
mod pipeline;
mod propagation;
mod runner;
mod sampler;
mod span;
mod tracer;

pub use context::{SpanContext, TRACESTATE_MAX_LEN, TRACESTATE_MAX_MEMBERS, TraceState, TraceStateError};
pub use current::{ContextGuard, FutureExt, Instrumented, attach, current_context};
pub use data::{Event, KeyValue, Link, SpanData, SpanKind, SpanLimits, Status, Value};
pub use export::{CallbackExporter, ExportError, InMemoryExporter, JsonLinesExporter, Resource, SpanExporter};
pub use id::{IdGenerator, RandomIds, SpanId, TraceFlags, TraceId};
#[cfg(feature = "tower")]
pub use middleware::{ClientLayer, ServerLayer, Traced, TracedClient, TracedServer};
#[cfg(feature = "otlp")]
pub use otlp::{OtlpExporter, OtlpExporterBuilder};
pub use pipeline::{BatchConfig, Processor};
pub use propagation::{
    B3Propagator, ExtractError, Extractor, Injector, Propagation, TRACEPARENT, TRACESTATE, TraceContextPropagator,
    parse_traceparent, traceparent,
};
pub use sampler::{RateLimiter, Sampler, SamplingInput, ShouldSample};
pub use span::{EnteredSpan, Span};
pub use tracer::{BuildError, ShutdownError, SpanBuilder, Tracer, TracerBuilder, TracerStats};
