//! Where finished spans go: the exporter trait and the exporters that need no network.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;

use crate::data::{KeyValue, SpanData};
use crate::id::TraceId;

/// Who produced the spans: the service name and any other resource attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// `service.name`.
    pub service_name: Arc<str>,
    /// Further attributes (`service.version`, `deployment.environment.name`, ...).
    pub attributes: Vec<KeyValue>,
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// Writing to the sink failed.
    #[error("exporting spans failed: {0}")]
    Io(#[from] std::io::Error),
    /// The collector refused the spans or could not be reached, after retries.
    #[error("the collector at {endpoint} did not take the spans: {reason}")]
    Collector {
        /// Where the spans were sent.
        endpoint: String,
        /// What went wrong.
        reason: String,
    },
    /// Anything else an exporter of your own reports.
    #[error("exporting spans failed: {0}")]
    Other(String),
}

/// Receives finished spans in batches, from one thread at a time.
///
/// A failing or panicking exporter is counted in the tracer's stats and never affects the others
/// or the code being traced.
pub trait SpanExporter: Send + Sync + fmt::Debug + 'static {
    /// Takes a batch.
    ///
    /// # Errors
    /// The batch could not be delivered; the spans are counted as failed.
    fn export(&self, spans: &[SpanData], resource: &Resource) -> Result<(), ExportError>;

    /// Delivers anything the exporter buffers itself.
    fn force_flush(&self) {}

    /// Releases the exporter's resources; called once at tracer shutdown, after a final export.
    fn shutdown(&self) {}
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Keeps the most recent spans in memory, grouped by trace, for tests and for the seed's
/// `get_trace`: finding a trace by id is a hash lookup. Bounded by a span count; the oldest traces
/// go first. Clones share the same store.
#[derive(Debug, Clone)]
pub struct InMemoryExporter {
    store: Arc<Mutex<Store>>,
}

#[derive(Debug)]
struct Store {
    capacity: usize,
    spans: usize,
    traces: HashMap<TraceId, Vec<SpanData>>,
    /// Trace ids in the order they first arrived, for eviction.
    order: VecDeque<TraceId>,
    evicted: u64,
}

impl InMemoryExporter {
    /// Keeps up to `max_spans` spans (at least one trace is always kept whole).
    pub fn new(max_spans: usize) -> Self {
        InMemoryExporter {
            store: Arc::new(Mutex::new(Store {
                capacity: max_spans.max(1),
                spans: 0,
                traces: HashMap::new(),
                order: VecDeque::new(),
                evicted: 0,
            })),
        }
    }

    /// The spans of one trace, in the order they ended.
    pub fn trace(&self, trace_id: TraceId) -> Vec<SpanData> {
        lock(&self.store).traces.get(&trace_id).cloned().unwrap_or_default()
    }

    /// Every span held, oldest trace first.
    pub fn spans(&self) -> Vec<SpanData> {
        let store = lock(&self.store);
        store.order.iter().filter_map(|id| store.traces.get(id)).flatten().cloned().collect()
    }

    /// The `limit` most recent traces (by first arrival), newest first, each its spans in the order they
    /// ended: what a dashboard lists, without copying the whole store.
    pub fn recent_traces(&self, limit: usize) -> Vec<Vec<SpanData>> {
        let store = lock(&self.store);
        store.order.iter().rev().take(limit).filter_map(|id| store.traces.get(id).cloned()).collect()
    }

    /// The trace ids held, oldest first.
    pub fn trace_ids(&self) -> Vec<TraceId> {
        lock(&self.store).order.iter().copied().collect()
    }

    /// How many spans are held.
    pub fn len(&self) -> usize {
        lock(&self.store).spans
    }

    /// Nothing held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Spans evicted to stay within the bound.
    pub fn evicted(&self) -> u64 {
        lock(&self.store).evicted
    }

    /// Forgets everything.
    pub fn clear(&self) {
        let mut store = lock(&self.store);
        store.traces.clear();
        store.order.clear();
        store.spans = 0;
    }
}

impl SpanExporter for InMemoryExporter {
    fn export(&self, spans: &[SpanData], _resource: &Resource) -> Result<(), ExportError> {
        let mut guard = lock(&self.store);
        let store = &mut *guard;
        for span in spans {
            let id = span.context.trace_id();
            let trace = store.traces.entry(id).or_default();
            if trace.is_empty() {
                store.order.push_back(id);
            }
            trace.push(span.clone());
            store.spans += 1;
        }
        while store.spans > store.capacity && store.order.len() > 1 {
            let Some(oldest) = store.order.pop_front() else { break };
            let gone = store.traces.remove(&oldest).map_or(0, |t| t.len());
            store.spans -= gone;
            store.evicted += gone as u64;
        }
        Ok(())
    }
}

/// Writes one JSON object per span and line to any writer, with OpenTelemetry's names for trace
/// context outside OTLP (`trace_id`, `span_id`, `trace_flags`) and `service.name` on every line.
pub struct JsonLinesExporter<W: Write + Send + 'static> {
    writer: Mutex<W>,
}

impl<W: Write + Send + 'static> fmt::Debug for JsonLinesExporter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JsonLinesExporter")
    }
}

impl<W: Write + Send + 'static> JsonLinesExporter<W> {
    /// Writes to `writer` (a file, stdout, a socket), flushing after each batch.
    pub fn new(writer: W) -> Self {
        JsonLinesExporter { writer: Mutex::new(writer) }
    }

    /// Stops and returns the writer.
    pub fn into_inner(self) -> W {
        self.writer.into_inner().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Serialize)]
struct JsonLine<'a> {
    #[serde(rename = "service.name")]
    service_name: &'a str,
    #[serde(flatten)]
    span: &'a SpanData,
    duration_nanos: u64,
}

impl<W: Write + Send + 'static> SpanExporter for JsonLinesExporter<W> {
    fn export(&self, spans: &[SpanData], resource: &Resource) -> Result<(), ExportError> {
        let mut text = Vec::with_capacity(spans.len() * 256);
        for span in spans {
            let line = JsonLine {
                service_name: &resource.service_name,
                span,
                duration_nanos: span.duration().as_nanos() as u64,
            };
            serde_json::to_writer(&mut text, &line).map_err(std::io::Error::other)?;
            text.push(b'\n');
        }
        let mut writer = lock(&self.writer);
        writer.write_all(&text)?;
        writer.flush()?;
        Ok(())
    }

    fn force_flush(&self) {
        let _ = lock(&self.writer).flush();
    }
}

type Callback = dyn Fn(&[SpanData], &Resource) + Send + Sync;

/// Calls a closure with each batch (the seed's `add_exporter(callable)`).
#[derive(Clone)]
pub struct CallbackExporter {
    callback: Arc<Callback>,
}

impl fmt::Debug for CallbackExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CallbackExporter")
    }
}

impl CallbackExporter {
    /// An exporter calling `callback`.
    pub fn new(callback: impl Fn(&[SpanData], &Resource) + Send + Sync + 'static) -> Self {
        CallbackExporter { callback: Arc::new(callback) }
    }
}

impl SpanExporter for CallbackExporter {
    fn export(&self, spans: &[SpanData], resource: &Resource) -> Result<(), ExportError> {
        (self.callback)(spans, resource);
        Ok(())
    }
}
