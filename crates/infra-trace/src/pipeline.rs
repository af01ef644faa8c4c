//! From an ended span to the exporters.
//!
//! A span that ends goes into a buffer owned by the ending thread (one uncontended lock, no shared
//! cache line with other threads). The batch worker, a named thread, sweeps every thread's buffer on
//! a schedule, or as soon as one holds a full batch, and hands the spans to each exporter in batches.
//! `force_flush` and shutdown sweep the same buffers, so a span is never stranded on an idle thread.
//!
//! Recordings stay boxed all the way (clippy's `vec_box` is allowed for that reason): the boxes
//! cycle between a thread and the worker and are reused, so a span costs no allocation, and a
//! thread's buffer moves 8 bytes per span instead of the whole recording.
#![allow(clippy::vec_box)]

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock, Weak};
use std::thread::Thread;
use std::time::Duration;

use crate::data::SpanData;
use crate::export::{Resource, SpanExporter};
use crate::span::Recording;

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
}

impl Default for BatchConfig {
    /// OpenTelemetry's defaults: 2048 queued, batches of 512, every 5 seconds.
    fn default() -> Self {
        BatchConfig { max_queue_size: 2048, max_export_batch_size: 512, scheduled_delay: Duration::from_secs(5) }
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
    pub(crate) sweeps: AtomicU64,
}

/// What the pipeline of one tracer shares between the hot path, the worker and the handles.
pub(crate) struct Shared {
    pub(crate) id: u64,
    pub(crate) processor: Processor,
    pub(crate) clock: quanta::Clock,
    anchor_raw: u64,
    anchor_unix_nanos: u64,
    pub(crate) resource: Resource,
    exporters: RwLock<Vec<Arc<dyn SpanExporter>>>,
    buffers: Mutex<Vec<Arc<ThreadBuffer>>>,
    /// Held while spans are swept and exported, so exporters are called from one thread at a time.
    export_lock: Mutex<()>,
    pub(crate) closed: AtomicBool,
    pub(crate) counters: Counters,
    pub(crate) worker: OnceLock<Thread>,
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

/// Tracers by id, so a span ending on a thread that has no buffer for its tracer yet can find it.
static REGISTRY: Mutex<Vec<(u64, Weak<Shared>)>> = Mutex::new(Vec::new());

/// Emptied recording boxes a thread keeps for the spans it starts.
const SPARE_BOXES: usize = 1024;

/// What a thread keeps for itself: its buffers, one per tracer it has ended spans for, and
/// emptied boxes for new recordings.
struct Local {
    buffers: Vec<LocalBuffer>,
    spares: Vec<Box<Recording>>,
}

struct LocalBuffer {
    buffer: Arc<ThreadBuffer>,
    /// Spans pushed since the worker was last woken by this thread.
    since_wake: usize,
}

thread_local! {
    static LOCAL: RefCell<Local> = const { RefCell::new(Local { buffers: Vec::new(), spares: Vec::new() }) };
}

/// A box for a new span's recording: a spare one when this thread has one, so boxes cycle between
/// the thread and the worker instead of being allocated on one and freed on the other, which the
/// allocator makes slow.
#[inline]
pub(crate) fn recording_box(recording: Recording) -> Box<Recording> {
    let spare = LOCAL.try_with(|local| local.borrow_mut().spares.pop()).ok().flatten();
    match spare {
        Some(mut boxed) => {
            *boxed = recording;
            boxed
        }
        None => Box::new(recording),
    }
}

/// One thread's ended spans for one tracer. The lock is the thread's own: only the worker's sweep
/// (which swaps the whole vector out at once) ever contends for it.
pub(crate) struct ThreadBuffer {
    tracer_id: u64,
    pending: Mutex<Pending>,
    shared: Arc<Shared>,
}

/// Ended spans waiting for the worker, and the emptied boxes the worker hands back.
#[derive(Default)]
struct Pending {
    ended: Vec<Box<Recording>>,
    spare: Vec<Box<Recording>>,
}

impl Shared {
    pub(crate) fn new(
        processor: Processor,
        clock: quanta::Clock,
        resource: Resource,
        exporters: Vec<Arc<dyn SpanExporter>>,
    ) -> Arc<Shared> {
        let anchor_unix_nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        let shared = Arc::new(Shared {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            processor,
            anchor_raw: clock.raw(),
            clock,
            anchor_unix_nanos,
            resource,
            exporters: RwLock::new(exporters),
            buffers: Mutex::new(Vec::new()),
            export_lock: Mutex::new(()),
            closed: AtomicBool::new(false),
            counters: Counters::default(),
            worker: OnceLock::new(),
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
        self.exporters.write().unwrap_or_else(PoisonError::into_inner).push(exporter);
    }

    /// Spans waiting in threads' buffers.
    pub(crate) fn queued(&self) -> usize {
        lock(&self.buffers).iter().map(|b| lock(&b.pending).ended.len()).sum()
    }

    pub(crate) fn last_error(&self) -> Option<String> {
        lock(&self.last_error).clone()
    }

    /// Moves every thread's ended spans to the exporters. Returns how many it moved.
    pub(crate) fn sweep(&self) -> usize {
        let _exporting = lock(&self.export_lock);
        self.counters.sweeps.fetch_add(1, Ordering::Relaxed);
        let buffers: Vec<Arc<ThreadBuffer>> = lock(&self.buffers).clone();
        let mut batch: Vec<SpanData> = Vec::new();
        let mut ended = Vec::new();
        for buffer in &buffers {
            // Swapping leaves the thread a vector with capacity, so its hot path does not reallocate.
            std::mem::swap(&mut ended, &mut lock(&buffer.pending).ended);
            if ended.is_empty() {
                continue;
            }
            batch.extend(ended.iter_mut().map(|boxed| Recording::take(boxed).finish(self)));
            let mut pending = lock(&buffer.pending);
            let room = SPARE_BOXES.saturating_sub(pending.spare.len());
            pending.spare.extend(ended.drain(..).take(room));
            ended.clear();
        }
        // Buffers of threads that have ended (only the list and `buffers` above hold them) and
        // that are now empty are forgotten.
        drop(buffers);
        lock(&self.buffers).retain(|b| Arc::strong_count(b) > 1 || !lock(&b.pending).ended.is_empty());
        let moved = batch.len();
        self.export(batch);
        moved
    }

    /// Hands the spans to every exporter in batches.
    fn export(&self, batch: Vec<SpanData>) {
        if batch.is_empty() {
            return;
        }
        self.counters.accepted.fetch_add(batch.len() as u64, Ordering::Relaxed);
        let (mut attributes, mut events, mut links) = (0u64, 0u64, 0u64);
        for span in &batch {
            attributes += u64::from(span.dropped_attributes);
            events += u64::from(span.dropped_events);
            links += u64::from(span.dropped_links);
        }
        self.counters.dropped_attributes.fetch_add(attributes, Ordering::Relaxed);
        self.counters.dropped_events.fetch_add(events, Ordering::Relaxed);
        self.counters.dropped_links.fetch_add(links, Ordering::Relaxed);
        let exporters = self.exporters.read().unwrap_or_else(PoisonError::into_inner).clone();
        let chunk = match self.processor {
            Processor::Batch(config) => config.max_export_batch_size.max(1),
            Processor::Simple => batch.len(),
        };
        for spans in batch.chunks(chunk) {
            for exporter in &exporters {
                let outcome =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| exporter.export(spans, &self.resource)));
                let error = match outcome {
                    Ok(Ok(())) => {
                        self.counters.exported.fetch_add(spans.len() as u64, Ordering::Relaxed);
                        continue;
                    }
                    Ok(Err(error)) => error.to_string(),
                    Err(_) => "the exporter panicked".to_owned(),
                };
                self.counters.export_failed.fetch_add(spans.len() as u64, Ordering::Relaxed);
                let first = self.counters.export_errors.fetch_add(1, Ordering::Relaxed) == 0;
                if first {
                    // Reported once; the count and the last message stay in the stats.
                    eprintln!(
                        "infra-trace: exporter {exporter:?} failed: {error} (further failures are counted in TracerStats)"
                    );
                }
                *lock(&self.last_error) = Some(error);
            }
        }
    }

    pub(crate) fn flush_exporters(&self) {
        let exporters = self.exporters.read().unwrap_or_else(PoisonError::into_inner).clone();
        for exporter in exporters {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| exporter.force_flush()));
        }
    }

    pub(crate) fn shutdown_exporters(&self) {
        let exporters = self.exporters.read().unwrap_or_else(PoisonError::into_inner).clone();
        for exporter in exporters {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| exporter.shutdown()));
        }
    }

    fn register_buffer(self: &Arc<Self>) -> Arc<ThreadBuffer> {
        let buffer = Arc::new(ThreadBuffer {
            tracer_id: self.id,
            pending: Mutex::new(Pending::default()),
            shared: Arc::clone(self),
        });
        lock(&self.buffers).push(Arc::clone(&buffer));
        buffer
    }
}

/// Hands an ended span to its tracer's pipeline, reading the end time on the tracer's clock.
#[inline]
pub(crate) fn end_span(recording: Box<Recording>) {
    let tracer_id = recording.tracer_id;
    let mut pending = Some(recording);
    let _ = LOCAL.try_with(|local| {
        let mut local = local.borrow_mut();
        let Local { buffers, spares } = &mut *local;
        if let Some(entry) = buffers.iter_mut().find(|b| b.buffer.tracer_id == tracer_id)
            && let Some(mut recording) = pending.take()
        {
            recording.end = entry.buffer.shared.clock.raw();
            entry.buffer.push(recording, &mut entry.since_wake, spares);
        }
    });
    if let Some(recording) = pending {
        end_span_slow(recording);
    }
}

/// A raw reading of the clock of the tracer with this id.
#[inline]
pub(crate) fn now(tracer_id: u64) -> u64 {
    let found = LOCAL.try_with(|local| {
        let local = local.borrow();
        local.buffers.iter().find(|b| b.buffer.tracer_id == tracer_id).map(|b| b.buffer.shared.clock.raw())
    });
    match found {
        Ok(Some(now)) => now,
        _ => registered(tracer_id).map_or(0, |shared| shared.clock.raw()),
    }
}

fn registered(tracer_id: u64) -> Option<Arc<Shared>> {
    lock(&REGISTRY).iter().find(|(id, _)| *id == tracer_id).and_then(|(_, weak)| weak.upgrade())
}

/// The first span a thread ends for a tracer: find the tracer and give the thread a buffer. A
/// tracer that is gone has shut down and exported what it had; a span ending later has nowhere to
/// go and nobody to count it.
#[cold]
fn end_span_slow(mut recording: Box<Recording>) {
    let Some(shared) = registered(recording.tracer_id) else { return };
    recording.end = shared.clock.raw();
    let buffer = shared.register_buffer();
    let mut since_wake = 0;
    let mut spares = Vec::new();
    buffer.push(recording, &mut since_wake, &mut spares);
    // During thread teardown the thread-local may be gone; the buffer stays in the tracer's list
    // and the worker still sweeps it.
    let _ = LOCAL.try_with(|local| local.borrow_mut().buffers.push(LocalBuffer { buffer, since_wake }));
}

impl ThreadBuffer {
    /// Queues an ended span for export; never blocks.
    #[inline]
    fn push(&self, span: Box<Recording>, since_wake: &mut usize, spares: &mut Vec<Box<Recording>>) {
        let shared = &*self.shared;
        let Processor::Batch(config) = shared.processor else {
            let _exporting = lock(&shared.export_lock);
            if shared.closed.load(Ordering::SeqCst) {
                shared.counters.dropped_after_shutdown.fetch_add(1, Ordering::Relaxed);
            } else {
                shared.export(vec![(*span).finish(shared)]);
            }
            return;
        };
        let mut pending = lock(&self.pending);
        // Checked under the lock: shutdown sets `closed` before its final sweep takes this lock,
        // so a span either makes the sweep or is counted here.
        if shared.closed.load(Ordering::Acquire) {
            drop(pending);
            shared.counters.dropped_after_shutdown.fetch_add(1, Ordering::Relaxed);
            recycle(span, spares);
            return;
        }
        if pending.ended.len() >= config.max_queue_size {
            drop(pending);
            shared.counters.dropped_queue_full.fetch_add(1, Ordering::Relaxed);
            recycle(span, spares);
            self.wake();
            return;
        }
        pending.ended.push(span);
        if spares.is_empty() && !pending.spare.is_empty() {
            std::mem::swap(spares, &mut pending.spare);
        }
        drop(pending);
        *since_wake += 1;
        if *since_wake >= config.max_export_batch_size {
            *since_wake = 0;
            self.wake();
        }
    }

    fn wake(&self) {
        if let Some(worker) = self.shared.worker.get() {
            worker.unpark();
        }
    }
}

fn recycle(mut span: Box<Recording>, spares: &mut Vec<Box<Recording>>) {
    if spares.len() < SPARE_BOXES {
        drop(Recording::take(&mut span));
        spares.push(span);
    }
}

/// The batch worker: sweep on schedule or when woken, once more after shutdown begins, then stop.
pub(crate) fn run_worker(shared: Arc<Shared>, delay: Duration) {
    loop {
        let closing = shared.closed.load(Ordering::Acquire);
        shared.sweep();
        if closing {
            shared.flush_exporters();
            return;
        }
        std::thread::park_timeout(delay);
    }
}
