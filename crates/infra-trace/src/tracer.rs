//! The tracer: where spans start, how they are sampled, and the lifecycle of the export pipeline.

use std::borrow::Cow;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::context::{SpanContext, TraceState};
use crate::data::{KeyValue, Link, SpanKind, SpanLimits, Status};
use crate::export::{InMemoryExporter, Resource, SpanExporter};
use crate::id::{IdGenerator, RandomIds, SpanId, TraceFlags, TraceId};
use crate::pipeline::{Processor, Shared, run_worker};
use crate::propagation::{Extractor, Injector, Propagation};
use crate::sampler::Sampler;
use crate::span::{Extras, Recording, Span};

/// A tracer configuration the builder cannot accept.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The sample rate is not a number between 0 and 1.
    #[error("sample rate {0} is invalid: give a fraction between 0.0 and 1.0")]
    SampleRate(f64),
    /// A batch setting of zero.
    #[error("batch processor setting {0} must be at least 1")]
    BatchSetting(&'static str),
    /// No propagation format.
    #[error("at least one propagation format is needed")]
    NoPropagation,
    /// The worker thread could not start.
    #[error("the batch worker thread could not start: {0}")]
    Worker(String),
}

/// Why a shutdown did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShutdownError {
    /// Shutdown already ran.
    #[error("the tracer is already shut down")]
    AlreadyShutDown,
    /// The worker was still exporting when the time ran out; spans it had not handed over yet are
    /// lost.
    #[error("the batch worker did not finish within {0:?}")]
    Timeout(Duration),
}

/// The tracer's own numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct TracerStats {
    /// Ended sampled spans taken from the threads' buffers.
    pub accepted: u64,
    /// Waiting in threads' buffers now.
    pub queued: u64,
    /// Dropped because a thread's buffer was full.
    pub dropped_queue_full: u64,
    /// Ended after shutdown began.
    pub dropped_after_shutdown: u64,
    /// Spans exporters took (counted once per exporter).
    pub exported: u64,
    /// Spans an exporter failed to take (once per exporter).
    pub export_failed: u64,
    /// Failed export calls.
    pub export_errors: u64,
    /// Attributes beyond the span limits.
    pub dropped_attributes: u64,
    /// Events beyond the span limits.
    pub dropped_events: u64,
    /// Links beyond the span limits.
    pub dropped_links: u64,
    /// Incoming trace headers that were malformed (a new trace started instead).
    pub malformed_headers: u64,
}

/// Starts spans and owns the export pipeline. Cheap to clone; the last clone dropped shuts the
/// pipeline down, flushing within five seconds.
///
/// ```
/// use infra_trace::{InMemoryExporter, Tracer, KeyValue};
///
/// let spans = InMemoryExporter::new(1000);
/// let tracer = Tracer::builder("checkout").exporter(spans.clone()).build()?;
/// let root = tracer.start_root("place-order").entered();
/// let mut child = tracer.start("reserve-stock");
/// child.set_attribute("sku", "A-113");
/// child.end();
/// let trace_id = root.context().trace_id();
/// drop(root);
/// tracer.force_flush();
/// assert_eq!(spans.trace(trace_id).len(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Tracer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    sampler: Sampler,
    /// `sampler.follows_unsampled_parent()`, computed once: it is asked on every span start.
    follows_unsampled_parent: bool,
    ids: Option<Arc<dyn IdGenerator>>,
    propagation: Vec<Propagation>,
    memory: Option<InMemoryExporter>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

/// Configures a [`Tracer`].
#[must_use = "a builder does nothing until build() is called"]
#[derive(Debug)]
pub struct TracerBuilder {
    service_name: String,
    resource: Vec<KeyValue>,
    sampler: Sampler,
    sample_rate: Option<f64>,
    clock: quanta::Clock,
    ids: Option<Arc<dyn IdGenerator>>,
    limits: SpanLimits,
    processor: Processor,
    exporters: Vec<Arc<dyn SpanExporter>>,
    keep_traces: Option<usize>,
    propagation: Vec<Propagation>,
}

impl Tracer {
    /// A builder for a tracer of this service (the seed's `RequestTracer(service_name, ...)`).
    pub fn builder(service_name: impl Into<String>) -> TracerBuilder {
        TracerBuilder {
            service_name: service_name.into(),
            resource: Vec::new(),
            sampler: Sampler::parent_based(Sampler::AlwaysOn),
            sample_rate: None,
            clock: quanta::Clock::new(),
            ids: None,
            limits: SpanLimits::default(),
            processor: Processor::default(),
            exporters: Vec::new(),
            keep_traces: None,
            propagation: vec![Propagation::TraceContext],
        }
    }

    /// The service name.
    pub fn service_name(&self) -> &str {
        &self.inner.shared.resource.service_name
    }

    /// Starts a span: a child of the current span if there is one, else a root.
    ///
    /// Under an unsampled local span (and a sampler that follows its parent, as the default does),
    /// the new span records nothing and shares the current span's context: it needs no identity of
    /// its own, and this path costs a few nanoseconds.
    #[inline]
    pub fn start(&self, name: impl Into<Cow<'static, str>>) -> Span {
        if let Some(context) = self.unsampled_current() {
            return Span::non_recording(context);
        }
        let parent = crate::pipeline::current();
        self.start_span(name.into(), SpanKind::Internal, parent.as_ref(), Vec::new(), Vec::new())
    }

    /// The current context, when it is a local unsampled span whose children the sampler will not
    /// sample either: a child then shares it (the fast path of [`Tracer::start`] and builders).
    #[inline(always)]
    fn unsampled_current(&self) -> Option<SpanContext> {
        if self.inner.follows_unsampled_parent { crate::pipeline::unsampled_parent() } else { None }
    }

    /// Starts a new trace (the seed's `start_trace`), whatever is current.
    #[inline]
    pub fn start_root(&self, name: impl Into<Cow<'static, str>>) -> Span {
        self.start_span(name.into(), SpanKind::Internal, None, Vec::new(), Vec::new())
    }

    /// Starts a child of an explicit parent, local or remote (the seed's `start_span`).
    #[inline]
    pub fn start_child(&self, name: impl Into<Cow<'static, str>>, parent: &SpanContext) -> Span {
        self.start_span(name.into(), SpanKind::Internal, Some(parent), Vec::new(), Vec::new())
    }

    /// A span with more settings: kind, parent, attributes, links.
    pub fn span(&self, name: impl Into<Cow<'static, str>>) -> SpanBuilder<'_> {
        SpanBuilder {
            tracer: self,
            name: name.into(),
            kind: SpanKind::Internal,
            parent: ParentChoice::Current,
            attributes: Vec::new(),
            links: Vec::new(),
        }
    }

    /// Runs `f` inside a new span (current while it runs) and ends the span after (the seed's
    /// `traced` decorator and `SpanContext` manager).
    pub fn in_span<R>(&self, name: impl Into<Cow<'static, str>>, f: impl FnOnce(&mut Span) -> R) -> R {
        let mut span = self.start(name);
        let _guard = span.enter();
        f(&mut span)
    }

    /// Like [`Tracer::in_span`] for fallible work: an `Err` sets the span's status to error with
    /// the error's message.
    ///
    /// # Errors
    /// Whatever `f` returns.
    pub fn in_span_result<T, E: std::fmt::Display>(
        &self,
        name: impl Into<Cow<'static, str>>,
        f: impl FnOnce(&mut Span) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut span = self.start(name);
        let _guard = span.enter();
        let result = f(&mut span);
        match &result {
            Ok(_) => span.set_status(Status::Ok),
            Err(error) => span.set_status(Status::Error(error.to_string().into())),
        }
        result
    }

    #[inline(always)]
    fn start_span(
        &self,
        name: Cow<'static, str>,
        kind: SpanKind,
        parent: Option<&SpanContext>,
        attributes: Vec<KeyValue>,
        links: Vec<Link>,
    ) -> Span {
        let inner = &*self.inner;
        let parent = parent.filter(|p| p.is_valid());
        let (trace_id, span_id, parent_span_id, parent_is_remote, state, inherited) = match parent {
            Some(p) => (
                p.trace_id(),
                self.new_span_id(),
                p.span_id(),
                p.is_remote(),
                p.trace_state().clone(),
                p.flags().known().bits() & TraceFlags::RANDOM.bits(),
            ),
            None => {
                let (trace_id, span_id) = self.new_root_ids();
                (trace_id, span_id, SpanId::INVALID, false, TraceState::EMPTY, TraceFlags::RANDOM.bits())
            }
        };
        let shared = &inner.shared;
        let sampled =
            inner.sampler.decide_span(parent, trace_id, &name, kind, || shared.unix_nanos(shared.clock.raw()));
        let flags = TraceFlags::new(inherited).with_sampled(sampled);
        let context = SpanContext::new(trace_id, span_id, flags, false, state);
        if !sampled {
            return Span::new(context, None);
        }
        let mut recording = Recording {
            tracer_id: shared.id,
            parent_span_id,
            name,
            start: shared.clock.raw(),
            extras: None,
            kind,
            parent_is_remote,
        };
        if !attributes.is_empty() || !links.is_empty() {
            let limits = shared.limits;
            let mut extras = Extras::new(limits);
            extras.dropped_attributes = attributes.len().saturating_sub(limits.attributes as usize) as u32;
            extras.attributes = attributes;
            extras.attributes.truncate(limits.attributes as usize);
            extras.dropped_links = links.len().saturating_sub(limits.links as usize) as u32;
            extras.links = links;
            extras.links.truncate(limits.links as usize);
            recording.extras = Some(extras);
        }
        Span::new(context, Some(recording))
    }

    /// A new trace's trace and span ids.
    #[inline]
    fn new_root_ids(&self) -> (TraceId, SpanId) {
        match &self.inner.ids {
            None => crate::id::random_root_ids(),
            Some(ids) => (ids.new_trace_id(), ids.new_span_id()),
        }
    }

    #[inline]
    fn new_span_id(&self) -> SpanId {
        match &self.inner.ids {
            None => RandomIds.new_span_id(),
            Some(ids) => ids.new_span_id(),
        }
    }

    /// Writes a span's context into outgoing headers in every configured format (the seed's
    /// `inject_context`).
    pub fn inject(&self, context: &SpanContext, carrier: &mut (impl Injector + ?Sized)) {
        for format in &self.inner.propagation {
            format.inject(context, carrier);
        }
    }

    /// Reads a remote parent from incoming headers (the seed's `extract_context`), trying each
    /// configured format in turn. Malformed headers are counted in [`TracerStats::malformed_headers`]
    /// and ignored, so the request starts a new trace.
    pub fn extract(&self, carrier: &(impl Extractor + ?Sized)) -> Option<SpanContext> {
        for format in &self.inner.propagation {
            match format.extract(carrier) {
                Ok(Some(context)) => return Some(context),
                Ok(None) => {}
                Err(_) => {
                    self.inner.shared.counters.malformed_headers.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
            }
        }
        None
    }

    /// Adds an exporter at run time (the seed's `add_exporter`); it receives spans exported from
    /// now on.
    pub fn add_exporter(&self, exporter: impl SpanExporter) {
        self.inner.shared.add_exporter(Arc::new(exporter));
    }

    /// The spans of a trace kept in memory (the seed's `get_trace`); empty unless the builder's
    /// [`TracerBuilder::keep_traces`] was set. Spans still buffered are flushed first.
    pub fn get_trace(&self, trace_id: TraceId) -> Vec<crate::SpanData> {
        let Some(memory) = &self.inner.memory else { return Vec::new() };
        crate::pipeline::hand_over_staged();
        self.inner.shared.sweep();
        memory.trace(trace_id)
    }

    /// Exports every span handed over so far, on every thread, now, and the spans this thread has
    /// ended; returns how many it moved. (A thread hands its ended spans over when it leaves its
    /// outermost entered span, after a batch's worth, or when it exits.)
    pub fn force_flush(&self) -> usize {
        crate::pipeline::hand_over_staged();
        let moved = self.inner.shared.sweep();
        self.inner.shared.flush_exporters();
        moved
    }

    /// Stops accepting spans, exports everything accepted, and shuts the exporters down; waits at
    /// most `timeout` for the worker. Spans ending afterwards are counted as dropped.
    ///
    /// # Errors
    /// Already shut down, or the worker did not finish in time.
    pub fn shutdown_with_timeout(&self, timeout: Duration) -> Result<(), ShutdownError> {
        crate::pipeline::hand_over_staged();
        self.inner.shutdown(timeout)
    }

    /// The tracer's numbers.
    pub fn stats(&self) -> TracerStats {
        let shared = &self.inner.shared;
        let c = &shared.counters;
        let get = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
        TracerStats {
            accepted: get(&c.accepted),
            queued: shared.queued() as u64,
            dropped_queue_full: get(&c.dropped_queue_full),
            dropped_after_shutdown: get(&c.dropped_after_shutdown),
            exported: get(&c.exported),
            export_failed: get(&c.export_failed),
            export_errors: get(&c.export_errors),
            dropped_attributes: get(&c.dropped_attributes),
            dropped_events: get(&c.dropped_events),
            dropped_links: get(&c.dropped_links),
            malformed_headers: get(&c.malformed_headers),
        }
    }

    /// The last export error, if any.
    pub fn last_export_error(&self) -> Option<String> {
        self.inner.shared.last_error()
    }
}

impl Inner {
    fn shutdown(&self, timeout: Duration) -> Result<(), ShutdownError> {
        if self.shared.closed.swap(true, Ordering::AcqRel) {
            return Err(ShutdownError::AlreadyShutDown);
        }
        let worker = self.worker.lock().unwrap_or_else(PoisonError::into_inner).take();
        match worker {
            Some(worker) => {
                worker.thread().unpark();
                let deadline = Instant::now() + timeout;
                while !worker.is_finished() {
                    if Instant::now() >= deadline {
                        return Err(ShutdownError::Timeout(timeout));
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                let _ = worker.join();
            }
            None => {
                self.shared.sweep();
                self.shared.flush_exporters();
            }
        }
        self.shared.shutdown_exporters();
        Ok(())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The backstop for a tracer nobody shut down: bounded, so dropping never hangs.
        let _ = self.shutdown(Duration::from_secs(5));
    }
}

impl TracerBuilder {
    /// The sampler (default: parent-based, always on for roots).
    pub fn sampler(mut self, sampler: Sampler) -> Self {
        self.sampler = sampler;
        self.sample_rate = None;
        self
    }

    /// The seed's `sample_rate`: parent-based with a consistent trace-id ratio for roots. Checked
    /// by `build`.
    pub fn sample_rate(mut self, rate: f64) -> Self {
        self.sample_rate = Some(rate);
        self
    }

    /// The clock for span times and rate limiting (`quanta::Clock::mock()` in tests).
    pub fn clock(mut self, clock: quanta::Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Where ids come from (default: [`RandomIds`]).
    pub fn id_generator(mut self, ids: impl IdGenerator) -> Self {
        self.ids = Some(Arc::new(ids));
        self
    }

    /// Attribute, event and link limits per span.
    pub fn limits(mut self, limits: SpanLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Simple or batch processing (default: batch with OpenTelemetry's settings).
    pub fn processor(mut self, processor: Processor) -> Self {
        self.processor = processor;
        self
    }

    /// Adds an exporter (the seed's `add_exporter`).
    pub fn exporter(mut self, exporter: impl SpanExporter) -> Self {
        self.exporters.push(Arc::new(exporter));
        self
    }

    /// Keeps the last `max_spans` spans in memory for [`Tracer::get_trace`].
    pub fn keep_traces(mut self, max_spans: usize) -> Self {
        self.keep_traces = Some(max_spans);
        self
    }

    /// Adds a resource attribute (`service.version`, `deployment.environment.name`, ...).
    pub fn resource_attribute(mut self, key: impl Into<Cow<'static, str>>, value: impl Into<crate::Value>) -> Self {
        self.resource.push(KeyValue::new(key, value));
        self
    }

    /// The propagation formats, in the order extraction tries them (default: W3C Trace Context).
    pub fn propagation(mut self, formats: impl IntoIterator<Item = Propagation>) -> Self {
        self.propagation = formats.into_iter().collect();
        self
    }

    /// Builds the tracer and starts its batch worker.
    ///
    /// # Errors
    /// A sample rate outside 0..=1, a zero batch setting, no propagation format, or a worker
    /// thread that could not start.
    pub fn build(self) -> Result<Tracer, BuildError> {
        let sampler = match self.sample_rate {
            Some(rate) if !(0.0..=1.0).contains(&rate) => return Err(BuildError::SampleRate(rate)),
            Some(rate) => Sampler::ratio(rate),
            None => self.sampler,
        };
        if let Processor::Batch(config) = self.processor {
            if config.max_queue_size == 0 {
                return Err(BuildError::BatchSetting("max_queue_size"));
            }
            if config.max_export_batch_size == 0 {
                return Err(BuildError::BatchSetting("max_export_batch_size"));
            }
        }
        if self.propagation.is_empty() {
            return Err(BuildError::NoPropagation);
        }
        let mut exporters = self.exporters;
        let memory = self.keep_traces.map(InMemoryExporter::new);
        if let Some(memory) = &memory {
            exporters.push(Arc::new(memory.clone()));
        }
        let resource = Resource { service_name: self.service_name.into(), attributes: self.resource };
        let shared = Shared::new(self.processor, self.clock, self.limits, resource, exporters);
        let worker = match self.processor {
            Processor::Batch(config) => {
                let for_worker = Arc::clone(&shared);
                let handle = std::thread::Builder::new()
                    .name("infra-trace".into())
                    .spawn(move || run_worker(for_worker, config.scheduled_delay))
                    .map_err(|e| BuildError::Worker(e.to_string()))?;
                let _ = shared.worker.set(handle.thread().clone());
                Some(handle)
            }
            Processor::Simple => None,
        };
        Ok(Tracer {
            inner: Arc::new(Inner {
                shared,
                follows_unsampled_parent: sampler.follows_unsampled_parent(),
                sampler,
                ids: self.ids,
                propagation: self.propagation,
                memory,
                worker: Mutex::new(worker),
            }),
        })
    }
}

enum ParentChoice<'a> {
    Current,
    Root,
    Explicit(&'a SpanContext),
}

/// Configures one span before it starts.
#[must_use = "the span starts with start()"]
pub struct SpanBuilder<'a> {
    tracer: &'a Tracer,
    name: Cow<'static, str>,
    kind: SpanKind,
    parent: ParentChoice<'a>,
    attributes: Vec<KeyValue>,
    links: Vec<Link>,
}

impl std::fmt::Debug for SpanBuilder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanBuilder").field("name", &self.name).field("kind", &self.kind).finish()
    }
}

impl<'a> SpanBuilder<'a> {
    /// Its kind (default internal).
    pub fn kind(mut self, kind: SpanKind) -> Self {
        self.kind = kind;
        self
    }

    /// An explicit parent, local or remote.
    pub fn parent(mut self, parent: &'a SpanContext) -> Self {
        self.parent = ParentChoice::Explicit(parent);
        self
    }

    /// A new trace, whatever is current.
    pub fn root(mut self) -> Self {
        self.parent = ParentChoice::Root;
        self
    }

    /// An attribute known at the start (samplers see the span before these are set).
    pub fn attribute(mut self, key: impl Into<Cow<'static, str>>, value: impl Into<crate::Value>) -> Self {
        self.attributes.push(KeyValue::new(key, value));
        self
    }

    /// A link.
    pub fn link(mut self, link: Link) -> Self {
        self.links.push(link);
        self
    }

    /// Starts the span.
    pub fn start(self) -> Span {
        let SpanBuilder { tracer, name, kind, parent, attributes, links } = self;
        match parent {
            ParentChoice::Current => {
                if let Some(context) = tracer.unsampled_current() {
                    return Span::non_recording(context);
                }
                let parent = crate::pipeline::current();
                tracer.start_span(name, kind, parent.as_ref(), attributes, links)
            }
            ParentChoice::Root => tracer.start_span(name, kind, None, attributes, links),
            ParentChoice::Explicit(parent) => tracer.start_span(name, kind, Some(parent), attributes, links),
        }
    }
}
