//! From an ended span to the exporters.
//!
//! A span that ends inside an entered span (the thread's current-span stack is not empty) is staged
//! in a vector only its thread touches: no lock, no atomic, no shared cache line. The stage is handed
//! over to the thread's buffer for the tracer, under that buffer's lock, when the thread leaves its
//! outermost entered span (the end of a request, of a poll of an instrumented future), when it holds
//! a batch's worth, or when the thread exits; a span ending outside any entered span is handed over
//! at once. The batch worker, a named thread, sweeps every buffer on a schedule or as soon as one
//! holds a full batch and hands the spans to each exporter in batches. `force_flush` and shutdown
//! sweep the same buffers, so nothing handed over is ever stranded on an idle thread.
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock, Weak};
use std::thread::Thread;
use std::time::{Duration, Instant};

use crate::context::SpanContext;
use crate::data::SpanData;
use crate::data::SpanLimits;
use crate::export::{Resource, SpanExporter};
use crate::runner::{Outcome, Runner};
use crate::span::{Ended, Recording};

/// How ended spans reach the exporters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Processor {
    /// Export each span on the thread that ends it (tests, debugging; slow on the hot path).
    Simple,
    /// Buffer per thread and export in batches from a background worker (the default).
    Batch(BatchConfig),
}

impl Default for Processor {
    fn default() -> Self {
        Processor::Batch(BatchConfig::default())
    }
}

/// The batch processor's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// Spans a thread may hold waiting for export; more are dropped and counted. The caller never
    /// blocks.
    pub max_queue_size: usize,
    /// Spans handed to an exporter at once; a thread holding this many wakes the worker.
    pub max_export_batch_size: usize,
    /// How often the worker sweeps.
    pub scheduled_delay: Duration,
    /// How long the worker waits for an exporter with one batch. `None` (the default): exporters
    /// are called on the worker and bound their own time (the OTLP exporter's timeout does).
    /// `Some`: each exporter runs on a thread of its own; one that overruns is counted as failed for
    /// that batch and skipped until it returns, so it never holds up the others.
    pub export_timeout: Option<Duration>,
}

impl Default for BatchConfig {
    /// OpenTelemetry's defaults: 2048 queued, batches of 512, every 5 seconds.
    fn default() -> Self {
        BatchConfig {
            max_queue_size: 2048,
            max_export_batch_size: 512,
            scheduled_delay: Duration::from_secs(5),
            export_timeout: None,
        }
    }
}

/// Counters of the pipeline, updated off the hot path.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) accepted: AtomicU64,
    pub(crate) dropped_queue_full: AtomicU64,
    pub(crate) dropped_after_shutdown: AtomicU64,
    pub(crate) exported: AtomicU64,
    pub(crate) export_failed: AtomicU64,
    pub(crate) export_errors: AtomicU64,
    pub(crate) dropped_attributes: AtomicU64,
    pub(crate) dropped_events: AtomicU64,
    pub(crate) dropped_links: AtomicU64,
    pub(crate) malformed_headers: AtomicU64,
}

/// What the pipeline of one tracer shares between the hot path, the worker and the handles.
pub(crate) struct Shared {
    pub(crate) id: u64,
    pub(crate) processor: Processor,
    pub(crate) limits: SpanLimits,
    pub(crate) clock: quanta::Clock,
    anchor_raw: u64,
    anchor_unix_nanos: u64,
    pub(crate) resource: Arc<Resource>,
    exporters: RwLock<Vec<Arc<ExporterEntry>>>,
    buffers: Mutex<Vec<Arc<ThreadBuffer>>>,
    /// Held while spans are swept and exported, so exporters are called from one thread at a time.
    export_lock: Mutex<Scratch>,
    pub(crate) closed: AtomicBool,
    pub(crate) counters: Counters,
    pub(crate) worker: OnceLock<Thread>,
    /// Set while the worker is parked; a thread wakes it only then.
    worker_parked: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("id", &self.id).field("processor", &self.processor).finish()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic in an exporter must not take tracing down with it; the data behind these locks is
    // always left consistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// An exporter, and its thread once an export timeout asks for one.
#[derive(Debug)]
struct ExporterEntry {
    exporter: Arc<dyn SpanExporter>,
    runner: OnceLock<Option<Runner>>,
}

impl ExporterEntry {
    fn new(exporter: Arc<dyn SpanExporter>) -> Arc<ExporterEntry> {
        Arc::new(ExporterEntry { exporter, runner: OnceLock::new() })
    }

    fn runner(&self) -> Option<&Runner> {
        self.runner.get_or_init(|| Runner::start(Arc::clone(&self.exporter)).ok()).as_ref()
    }
}

/// The worker's reusable vectors; its lock also keeps exporters to one thread at a time.
#[derive(Default)]
struct Scratch {
    ended: Vec<Ended>,
    batch: Vec<SpanData>,
}

/// Tracers by id, so a span ending on a thread that has no buffer for its tracer yet can find it.
static REGISTRY: Mutex<Vec<(u64, Weak<Shared>)>> = Mutex::new(Vec::new());

/// What a thread keeps for itself: its current-span stack and, per tracer it has ended spans for,
/// its buffer and the spans it has staged.
struct Local {
    current: Vec<SpanContext>,
    tracers: Vec<LocalTracer>,
}

struct LocalTracer {
    buffer: Arc<ThreadBuffer>,
    stage: Vec<Ended>,
    /// Spans handed over since this thread last woke the worker.
    since_wake: usize,
}

impl Drop for Local {
    fn drop(&mut self) {
        // A thread that exits hands over what it staged.
        for tracer in &mut self.tracers {
            tracer.hand_over();
        }
    }
}

thread_local! {
    static LOCAL: RefCell<Local> = const { RefCell::new(Local { current: Vec::new(), tracers: Vec::new() }) };
}

/// One thread's handed-over spans for one tracer. The lock is the thread's own: only the worker's
/// sweep, which swaps the whole vector out at once, ever contends for it.
pub(crate) struct ThreadBuffer {
    tracer_id: u64,
    ended: Mutex<Vec<Ended>>,
    shared: Arc<Shared>,
}

impl Shared {
    pub(crate) fn new(
        processor: Processor,
        clock: quanta::Clock,
        limits: SpanLimits,
        resource: Resource,
        exporters: Vec<Arc<dyn SpanExporter>>,
    ) -> Arc<Shared> {
        let anchor_unix_nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        let shared = Arc::new(Shared {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            processor,
            limits,
            anchor_raw: clock.raw(),
            clock,
            anchor_unix_nanos,
            resource: Arc::new(resource),
            exporters: RwLock::new(exporters.into_iter().map(ExporterEntry::new).collect()),
            buffers: Mutex::new(Vec::new()),
            export_lock: Mutex::new(Scratch::default()),
            closed: AtomicBool::new(false),
            counters: Counters::default(),
            worker: OnceLock::new(),
            worker_parked: AtomicBool::new(false),
            last_error: Mutex::new(None),
        });
        let mut registry = lock(&REGISTRY);
        registry.retain(|(_, weak)| weak.strong_count() > 0);
        registry.push((shared.id, Arc::downgrade(&shared)));
        shared
    }

    /// Nanoseconds since the Unix epoch for a raw reading of the tracer's clock.
    #[inline]
    pub(crate) fn unix_nanos(&self, raw: u64) -> u64 {
        self.anchor_unix_nanos.saturating_add(self.clock.delta_as_nanos(self.anchor_raw, raw))
    }

    pub(crate) fn add_exporter(&self, exporter: Arc<dyn SpanExporter>) {
        self.exporters.write().unwrap_or_else(PoisonError::into_inner).push(ExporterEntry::new(exporter));
    }

    /// Spans waiting in threads' buffers.
    pub(crate) fn queued(&self) -> usize {
        lock(&self.buffers).iter().map(|b| lock(&b.ended).len()).sum()
    }

    pub(crate) fn last_error(&self) -> Option<String> {
        lock(&self.last_error).clone()
    }

    /// Moves every thread's ended spans to the exporters. Returns how many it moved.
    pub(crate) fn sweep(&self) -> usize {
        let mut scratch = lock(&self.export_lock);
        let scratch = &mut *scratch;
        let buffers: Vec<Arc<ThreadBuffer>> = lock(&self.buffers).clone();
        let batch_size = match self.processor {
            Processor::Batch(config) => config.max_export_batch_size.max(1),
            Processor::Simple => usize::MAX,
        };
        let mut moved = 0;
        for buffer in &buffers {
            // Swapping leaves the thread a vector with capacity, so handing over does not reallocate.
            std::mem::swap(&mut scratch.ended, &mut *lock(&buffer.ended));
            moved += scratch.ended.len();
            let mut spans = scratch.ended.drain(..).peekable();
            while spans.peek().is_some() {
                // Converted a batch at a time into a vector that is reused: a sweep's worth at once
                // would be megabytes of fresh memory, page-faulted in on every sweep.
                scratch.batch.extend(spans.by_ref().take(batch_size).map(|span| span.finish(self)));
                self.export(&mut scratch.batch);
                scratch.batch.clear();
            }
        }
        // Buffers of threads that have ended (only the list and `buffers` above hold them) and
        // that are now empty are forgotten.
        drop(buffers);
        lock(&self.buffers).retain(|b| Arc::strong_count(b) > 1 || !lock(&b.ended).is_empty());
        moved
    }

    /// Hands a batch to every exporter, with a deadline when the processor has one.
    fn export(&self, batch: &mut Vec<SpanData>) {
        if batch.is_empty() {
            return;
        }
        self.counters.accepted.fetch_add(batch.len() as u64, Ordering::Relaxed);
        let (mut attributes, mut events, mut links) = (0u64, 0u64, 0u64);
        for span in batch.iter() {
            attributes += u64::from(span.dropped_attributes);
            events += u64::from(span.dropped_events);
            links += u64::from(span.dropped_links);
        }
        self.counters.dropped_attributes.fetch_add(attributes, Ordering::Relaxed);
        self.counters.dropped_events.fetch_add(events, Ordering::Relaxed);
        self.counters.dropped_links.fetch_add(links, Ordering::Relaxed);
        let exporters = self.exporters.read().unwrap_or_else(PoisonError::into_inner).clone();
        let timeout = match self.processor {
            Processor::Batch(config) => config.export_timeout,
            Processor::Simple => None,
        };
        let Some(timeout) = timeout else {
            for entry in &exporters {
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    entry.exporter.export(batch, &self.resource)
                }));
                let outcome = match outcome {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(error)) => Err(error.to_string()),
                    Err(_) => Err("the exporter panicked".to_owned()),
                };
                self.count(entry, batch.len(), outcome);
            }
            return;
        };
        // Each exporter on its own thread; the batch is shared, not copied, and comes back for
        // reuse unless an exporter that overran still holds it.
        let spans = Arc::new(std::mem::take(batch));
        let deadline = Instant::now() + timeout;
        let waiting: Vec<_> = exporters
            .iter()
            .map(|entry| (entry, entry.runner().and_then(|runner| runner.submit(&spans, &self.resource))))
            .collect();
        for (entry, reply) in waiting {
            let outcome = match reply {
                None => {
                    Err("skipped: the exporter is still busy with a batch that overran its export timeout".to_owned())
                }
                Some(reply) => match reply.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(outcome) => outcome,
                    Err(_) => Err(format!("the export took longer than the export timeout of {timeout:?}")),
                },
            };
            self.count(entry, spans.len(), outcome);
        }
        *batch = Arc::try_unwrap(spans).unwrap_or_default();
    }

    /// Counts one exporter's result for a batch of `spans`.
    fn count(&self, entry: &ExporterEntry, spans: usize, outcome: Outcome) {
        let Err(error) = outcome else {
            self.counters.exported.fetch_add(spans as u64, Ordering::Relaxed);
            return;
        };
        self.counters.export_failed.fetch_add(spans as u64, Ordering::Relaxed);
        let first = self.counters.export_errors.fetch_add(1, Ordering::Relaxed) == 0;
        if first {
            // Reported once; the count and the last message stay in the stats.
            eprintln!(
                "infra-trace: exporter {:?} failed: {error} (further failures are counted in TracerStats)",
                entry.exporter
            );
        }
        *lock(&self.last_error) = Some(error);
    }

    pub(crate) fn flush_exporters(&self) {
        let exporters = self.exporters.read().unwrap_or_else(PoisonError::into_inner).clone();
        for entry in exporters {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| entry.exporter.force_flush()));
        }
    }

    pub(crate) fn shutdown_exporters(&self) {
        let exporters = self.exporters.read().unwrap_or_else(PoisonError::into_inner).clone();
        for entry in exporters {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| entry.exporter.shutdown()));
        }
    }

    fn register_buffer(self: &Arc<Self>) -> Arc<ThreadBuffer> {
        let buffer =
            Arc::new(ThreadBuffer { tracer_id: self.id, ended: Mutex::new(Vec::new()), shared: Arc::clone(self) });
        lock(&self.buffers).push(Arc::clone(&buffer));
        buffer
    }
}

fn registered(tracer_id: u64) -> Option<Arc<Shared>> {
    lock(&REGISTRY).iter().find(|(id, _)| *id == tracer_id).and_then(|(_, weak)| weak.upgrade())
}

/// The context for a non-recording child of the current span, when that is a local unsampled span:
/// under a sampler that follows its parent, a child of an unsampled local span is unsampled too,
/// and recording nothing it needs no identity of its own (downstream services see the enclosing
/// span's id, as through a pass-through proxy).
#[inline]
pub(crate) fn unsampled_parent() -> Option<SpanContext> {
    LOCAL
        .try_with(|local| {
            let local = local.try_borrow().ok()?;
            let parent = local.current.last()?;
            (!parent.is_sampled() && !parent.is_remote()).then(|| parent.clone())
        })
        .ok()
        .flatten()
}

/// The current context, cloned.
#[inline]
pub(crate) fn current() -> Option<SpanContext> {
    LOCAL.try_with(|local| local.try_borrow().ok().and_then(|local| local.current.last().cloned())).ok().flatten()
}

// The thread-local is only ever borrowed with `try_borrow*`: code run while it is borrowed (a
// custom sampler, an exporter of the simple processor) may start, enter and end spans itself, and a
// nested use that finds it borrowed takes a slower path instead of panicking.

/// The depth a guard gets when the stack could not be touched (a nested use during a borrow): its
/// drop then leaves the stack alone.
pub(crate) const NOT_PUSHED: usize = usize::MAX;

/// Pushes a current context; returns the depth to truncate back to.
#[inline(always)]
pub(crate) fn push_current(context: SpanContext) -> usize {
    push_current_ref(&context)
}

/// Pushes a copy of a current context. Cloning straight into the stack, rather than into an
/// argument first, matters: a context written a moment ago and copied again at once is read back
/// with wide loads the CPU cannot forward from the narrow stores still in flight (measured: half the
/// cost of entering an unsampled root).
#[inline(always)]
pub(crate) fn push_current_ref(context: &SpanContext) -> usize {
    LOCAL
        .try_with(|local| {
            let Ok(mut local) = local.try_borrow_mut() else { return NOT_PUSHED };
            local.current.push(context.clone());
            local.current.len() - 1
        })
        .unwrap_or(NOT_PUSHED)
}

/// Restores the current-span stack to `depth`; leaving the outermost entered span hands over what
/// the thread staged.
#[inline]
pub(crate) fn truncate_current(depth: usize) {
    if depth == NOT_PUSHED {
        return;
    }
    let _ = LOCAL.try_with(|local| {
        let Ok(mut local) = local.try_borrow_mut() else { return };
        local.current.truncate(depth);
        if local.current.is_empty() {
            for tracer in &mut local.tracers {
                if !tracer.stage.is_empty() {
                    tracer.hand_over();
                }
            }
        }
    });
}

/// Hands over everything this thread has staged (before a flush from this thread).
pub(crate) fn hand_over_staged() {
    let _ = LOCAL.try_with(|local| {
        let Ok(mut local) = local.try_borrow_mut() else { return };
        for tracer in &mut local.tracers {
            tracer.hand_over();
        }
    });
}

/// Ends a sampled span: reads the end time on its tracer's clock and stages or hands it over.
#[inline]
pub(crate) fn end_span(context: SpanContext, recording: Recording) {
    let tracer_id = recording.tracer_id;
    let mut pending = Some((context, recording));
    let _ = LOCAL.try_with(|local| {
        let Ok(mut local) = local.try_borrow_mut() else { return };
        let Local { current, tracers } = &mut *local;
        let Some(tracer) = tracers.iter_mut().find(|t| t.buffer.tracer_id == tracer_id) else { return };
        let Some((context, recording)) = pending.take() else { return };
        let shared = &*tracer.buffer.shared;
        let end = shared.clock.raw();
        tracer.stage.push(Ended { context, recording, end });
        let batch = match shared.processor {
            Processor::Batch(config) => config.max_export_batch_size,
            Processor::Simple => 1,
        };
        if current.is_empty() || tracer.stage.len() >= batch {
            tracer.hand_over();
        }
    });
    if let Some((context, recording)) = pending {
        end_span_slow(context, recording);
    }
}

/// The first span a thread ends for a tracer: find the tracer and give the thread a buffer. A
/// tracer that is gone has shut down and exported what it had; a span ending later has nowhere to
/// go and nobody to count it.
#[cold]
fn end_span_slow(context: SpanContext, recording: Recording) {
    let Some(shared) = registered(recording.tracer_id) else { return };
    let end = shared.clock.raw();
    let mut tracer = LocalTracer { buffer: shared.register_buffer(), stage: Vec::new(), since_wake: 0 };
    tracer.stage.push(Ended { context, recording, end });
    tracer.hand_over();
    // During thread teardown the thread-local may be gone; the buffer stays in the tracer's list
    // and the worker still sweeps it.
    let _ = LOCAL.try_with(|local| match local.try_borrow_mut() {
        Ok(mut local) => local.tracers.push(tracer),
        // A nested use: the span is handed over already; the buffer stays in the tracer's list
        // until the worker's sweep finds it empty and unused.
        Err(_) => drop(tracer),
    });
}

/// A raw reading of the clock of the tracer with this id.
pub(crate) fn now(tracer_id: u64) -> u64 {
    with_shared(tracer_id, |shared| shared.clock.raw()).unwrap_or(0)
}

/// The span limits of the tracer with this id.
pub(crate) fn limits(tracer_id: u64) -> SpanLimits {
    with_shared(tracer_id, |shared| shared.limits).unwrap_or_default()
}

fn with_shared<R>(tracer_id: u64, f: impl Fn(&Shared) -> R) -> Option<R> {
    let found = LOCAL.try_with(|local| {
        let local = local.try_borrow().ok()?;
        local.tracers.iter().find(|t| t.buffer.tracer_id == tracer_id).map(|t| f(&t.buffer.shared))
    });
    match found {
        Ok(Some(result)) => Some(result),
        _ => registered(tracer_id).map(|shared| f(&shared)),
    }
}

impl LocalTracer {
    /// Moves the stage to the thread's buffer (or, for the simple processor, to the exporters).
    fn hand_over(&mut self) {
        if self.stage.is_empty() {
            return;
        }
        let shared = &*self.buffer.shared;
        let count = self.stage.len() as u64;
        let Processor::Batch(config) = shared.processor else {
            let _exporting = lock(&shared.export_lock);
            if shared.closed.load(Ordering::Acquire) {
                self.stage.clear();
                shared.counters.dropped_after_shutdown.fetch_add(count, Ordering::Relaxed);
            } else {
                let mut spans: Vec<SpanData> = self.stage.drain(..).map(|span| span.finish(shared)).collect();
                shared.export(&mut spans);
            }
            return;
        };
        let mut ended = lock(&self.buffer.ended);
        // Checked under the lock: shutdown sets `closed` before its final sweep takes this lock,
        // so a span either makes the sweep or is counted here.
        if shared.closed.load(Ordering::Acquire) {
            drop(ended);
            self.stage.clear();
            shared.counters.dropped_after_shutdown.fetch_add(count, Ordering::Relaxed);
            return;
        }
        let room = config.max_queue_size.saturating_sub(ended.len());
        let dropped = self.stage.len().saturating_sub(room);
        if dropped > 0 {
            self.stage.truncate(room);
        }
        if ended.is_empty() {
            // The common case: the worker took the last batch, so trade vectors instead of copying.
            std::mem::swap(&mut *ended, &mut self.stage);
        } else {
            ended.append(&mut self.stage);
        }
        drop(ended);
        if dropped > 0 {
            shared.counters.dropped_queue_full.fetch_add(dropped as u64, Ordering::Relaxed);
        }
        self.since_wake += count as usize - dropped;
        if self.since_wake >= config.max_export_batch_size || dropped > 0 {
            self.since_wake = 0;
            shared.wake_worker();
        }
    }
}

/// How long a busy worker waits between sweeps instead of parking: while it is busy, threads that
/// hand spans over need not wake it (which would cost them a system call).
const BUSY_POLL: Duration = Duration::from_millis(1);

impl Shared {
    /// Wakes the worker if it is parked waiting for its schedule.
    fn wake_worker(&self) {
        if self.worker_parked.swap(false, Ordering::AcqRel)
            && let Some(worker) = self.worker.get()
        {
            worker.unpark();
        }
    }
}

/// The batch worker: sweep; while sweeps find full batches, sweep again at once; while they find
/// spans, sweep again a millisecond later; otherwise park
/// until the schedule or a thread with a full batch wakes it. After shutdown begins it sweeps once
/// more, flushes the exporters and stops.
pub(crate) fn run_worker(shared: Arc<Shared>, delay: Duration) {
    let batch = match shared.processor {
        Processor::Batch(config) => config.max_export_batch_size,
        Processor::Simple => 1,
    };
    loop {
        let closing = shared.closed.load(Ordering::Acquire);
        let moved = shared.sweep();
        if closing {
            shared.flush_exporters();
            return;
        }
        if moved >= batch {
            // Falling behind: sweep again at once.
            continue;
        }
        if moved > 0 && delay > BUSY_POLL {
            std::thread::sleep(BUSY_POLL);
        } else {
            shared.worker_parked.store(true, Ordering::Release);
            // A shutdown that began before the flag was set must not wait for the schedule.
            if !shared.closed.load(Ordering::Acquire) {
                std::thread::park_timeout(delay);
            }
            shared.worker_parked.store(false, Ordering::Release);
        }
    }
}
