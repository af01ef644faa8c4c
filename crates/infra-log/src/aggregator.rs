//! The aggregator: the hot path, the batching worker, the sinks' threads, the lifecycle.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use infra_stripe::{Striped, bump};

use crate::burst::Suppressor;
use crate::context::{ContextProvider, TraceContext, current_trace_context};
use crate::entry::LogEntry;
use crate::field::{Field, FieldValue};
use crate::filter::{DirectiveError, Directives};
use crate::level::Level;
use crate::sink::Sink;

/// What to do when the queue between callers and the worker is full. Every entry dropped is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Wait for room: nothing is lost, and a caller may wait. The worker also waits for a sink whose
    /// queue is full, so a sink that stops taking batches eventually holds everything up, unless it
    /// was added with [`LogAggregatorBuilder::lossy_sink`].
    #[default]
    Block,
    /// Drop the entry being logged; callers never wait. A sink whose queue is full loses the batch
    /// (counted in its [`SinkStats::dropped`]) and the other sinks go on.
    DropNewest,
    /// Drop the oldest entry waiting, to make room; otherwise as [`Overflow::DropNewest`].
    DropOldest,
}

/// A configuration the builder cannot accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A setting of zero.
    #[error("log aggregator setting {0} must be at least 1")]
    Zero(&'static str),
    /// The level directives do not parse.
    #[error(transparent)]
    Directive(#[from] DirectiveError),
    /// A thread could not start.
    #[error("a log aggregator thread could not start: {0}")]
    Thread(String),
}

/// An entry on its way to the worker: the service and wall time are added there.
struct Pending {
    time_raw: u64,
    level: Level,
    component: Cow<'static, str>,
    message: Cow<'static, str>,
    fields: Vec<Field>,
    error: Option<String>,
    trace: Option<TraceContext>,
}

enum Message {
    Entry(Pending),
    Flush(Sender<()>),
    Shutdown(Sender<()>),
}

enum SinkMessage {
    Batch(Arc<Vec<LogEntry>>),
    Flush(Sender<()>),
}

/// Counters of one sink.
#[derive(Debug, Default)]
struct SinkCounters {
    written: AtomicU64,
    errors: AtomicU64,
    dropped: AtomicU64,
}

struct SinkHandle {
    name: String,
    /// Batches for it are dropped (and counted) when its queue is full, whatever the policy.
    lossy: bool,
    queue: Sender<SinkMessage>,
    counters: Arc<SinkCounters>,
    thread: Option<JoinHandle<()>>,
}

/// A sink's numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SinkStats {
    /// The sink's name.
    pub name: String,
    /// Entries written.
    pub written: u64,
    /// Failed writes and flushes.
    pub errors: u64,
    /// Entries dropped: its queue was full, or writing failed after the retries.
    pub dropped: u64,
}

/// The aggregator's own numbers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct LogStats {
    /// Entries taken by the hot path (after level filtering).
    pub accepted: u64,
    /// Dropped because the queue was full ([`Overflow::DropNewest`]).
    pub dropped_newest: u64,
    /// Dropped from the queue to make room ([`Overflow::DropOldest`]).
    pub dropped_oldest: u64,
    /// Removed by custom filters.
    pub filtered: u64,
    /// Held back by burst suppression (and summed up in "suppressed N similar" entries).
    pub suppressed: u64,
    /// Logged after shutdown.
    pub dropped_after_shutdown: u64,
    /// Entries waiting for the worker now.
    pub queue_depth: u64,
    /// Batches the worker has handed to the sinks.
    pub batches: u64,
    /// The longest the worker took to prepare and hand over one batch, in nanoseconds.
    pub max_batch_nanos: u64,
    /// How long the last completed [`LogAggregator::flush`] took, in nanoseconds.
    pub last_flush_nanos: u64,
    /// The longest a completed flush took, in nanoseconds.
    pub max_flush_nanos: u64,
    /// Per sink.
    pub sinks: Vec<SinkStats>,
}

type Filter = Arc<dyn Fn(&LogEntry) -> bool + Send + Sync>;

/// The worker's view of the configuration.
struct Settings {
    service: Arc<str>,
    /// [`Overflow::Block`]: the worker waits for a sink with a full queue instead of dropping.
    block: bool,
    batch_size: usize,
    flush_interval: Duration,
    burst_limit: Option<u32>,
    max_message_bytes: usize,
    redact: Vec<String>,
    clock: quanta::Clock,
    anchor_raw: u64,
    anchor_unix_nanos: u64,
}

#[derive(Default)]
struct Counters {
    dropped_newest: AtomicU64,
    dropped_oldest: AtomicU64,
    filtered: AtomicU64,
    suppressed: AtomicU64,
    dropped_after_shutdown: AtomicU64,
    batches: AtomicU64,
    max_batch_nanos: AtomicU64,
    last_flush_nanos: AtomicU64,
    max_flush_nanos: AtomicU64,
}

struct Inner {
    /// The least severe level any component keeps; below it an entry is rejected with one load.
    floor: AtomicU8,
    /// True when no per-component rule exists, so `floor` alone decides.
    simple: AtomicBool,
    directives: RwLock<Directives>,
    overflow: Overflow,
    clock: quanta::Clock,
    provider: Option<Box<dyn ContextProvider>>,
    queue: Sender<Message>,
    /// Kept for [`Overflow::DropOldest`], which takes the oldest entry out itself.
    oldest: Receiver<Message>,
    accepted: Striped<AtomicU64>,
    counters: Arc<Counters>,
    filters: Arc<RwLock<Vec<Filter>>>,
    sinks: Arc<Mutex<Vec<SinkHandle>>>,
    sink_queue: usize,
    sink_retries: u32,
    closed: AtomicBool,
    worker: Mutex<Option<JoinHandle<()>>>,
}

/// Collects structured entries from any thread and writes them to its sinks in batches from a
/// background worker. Cheap to clone; the last clone dropped flushes and stops, within five
/// seconds.
#[derive(Clone)]
pub struct LogAggregator {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LogAggregator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogAggregator").field("overflow", &self.inner.overflow).finish_non_exhaustive()
    }
}

/// Configures a [`LogAggregator`].
#[must_use = "a builder does nothing until build() is called"]
pub struct LogAggregatorBuilder {
    service: String,
    capacity: usize,
    flush_interval: Duration,
    batch_size: usize,
    directives: Result<Directives, DirectiveError>,
    overflow: Overflow,
    clock: quanta::Clock,
    provider: Option<Box<dyn ContextProvider>>,
    sinks: Vec<(Box<dyn Sink>, bool)>,
    filters: Vec<Filter>,
    redact: Vec<String>,
    max_message_bytes: usize,
    burst_limit: Option<u32>,
    sink_queue: usize,
    sink_retries: u32,
}

impl std::fmt::Debug for LogAggregatorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogAggregatorBuilder").field("service", &self.service).finish_non_exhaustive()
    }
}

impl LogAggregator {
    /// A builder for this service (the seed's `LogAggregator(service_name, buffer_size,
    /// flush_interval_seconds)`).
    pub fn builder(service: impl Into<String>) -> LogAggregatorBuilder {
        LogAggregatorBuilder {
            service: service.into(),
            capacity: 65_536,
            flush_interval: Duration::from_millis(200),
            batch_size: 512,
            directives: Ok(Directives::new(Level::Info)),
            overflow: Overflow::Block,
            clock: quanta::Clock::new(),
            provider: None,
            sinks: Vec::new(),
            filters: Vec::new(),
            redact: ["password", "token", "secret", "authorization"].map(str::to_owned).to_vec(),
            max_message_bytes: 16 * 1024,
            burst_limit: None,
            sink_queue: 64,
            sink_retries: 3,
        }
    }

    /// Whether an entry at `level` from `component` would be kept: the macros check this before
    /// building any fields.
    #[inline]
    pub fn enabled(&self, level: Level, component: &str) -> bool {
        let inner = &*self.inner;
        if (level as u8) < inner.floor.load(Ordering::Relaxed) {
            return false;
        }
        inner.simple.load(Ordering::Relaxed)
            || inner.directives.read().unwrap_or_else(PoisonError::into_inner).enabled(level, component)
    }

    /// Logs an entry (the seed's `log`). The caller pays for the clock reading, the correlation
    /// lookup and the hand-over to the queue; formatting and writing happen on the worker.
    #[inline]
    pub fn log(
        &self,
        level: Level,
        component: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
        fields: Vec<Field>,
    ) {
        let component = component.into();
        if self.enabled(level, &component) {
            self.submit(level, component, message.into(), fields, None);
        }
    }

    /// [`LogAggregator::log`] without the level check, for the macros, which check first so that
    /// they build no fields for a disabled level.
    #[doc(hidden)]
    #[inline]
    pub fn log_checked(
        &self,
        level: Level,
        component: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
        fields: Vec<Field>,
    ) {
        self.submit(level, component.into(), message.into(), fields, None);
    }

    /// Logs an entry with an error's text and its sources (the seed's `exception` argument).
    pub fn log_error(
        &self,
        level: Level,
        component: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
        error: &(dyn std::error::Error + 'static),
        fields: Vec<Field>,
    ) {
        let component = component.into();
        if self.enabled(level, &component) {
            let FieldValue::Error(text) = FieldValue::error(error) else { return };
            self.submit(level, component, message.into(), fields, Some(text));
        }
    }

    /// The seed's `debug(message, component)`.
    pub fn debug(&self, message: impl Into<Cow<'static, str>>, component: impl Into<Cow<'static, str>>) {
        self.log(Level::Debug, component, message, Vec::new());
    }

    /// The seed's `info(message, component)`.
    pub fn info(&self, message: impl Into<Cow<'static, str>>, component: impl Into<Cow<'static, str>>) {
        self.log(Level::Info, component, message, Vec::new());
    }

    /// The seed's `warning(message, component)`.
    pub fn warning(&self, message: impl Into<Cow<'static, str>>, component: impl Into<Cow<'static, str>>) {
        self.log(Level::Warning, component, message, Vec::new());
    }

    /// The seed's `error(message, component, exception)`.
    pub fn error(
        &self,
        message: impl Into<Cow<'static, str>>,
        component: impl Into<Cow<'static, str>>,
        exception: Option<&str>,
    ) {
        self.log_text_error(Level::Error, component, message, exception);
    }

    /// The seed's `critical(message, component, exception)`.
    pub fn critical(
        &self,
        message: impl Into<Cow<'static, str>>,
        component: impl Into<Cow<'static, str>>,
        exception: Option<&str>,
    ) {
        self.log_text_error(Level::Critical, component, message, exception);
    }

    /// The seed's `exception(message, component, error)`: an error-level entry with the error's text.
    pub fn exception(
        &self,
        message: impl Into<Cow<'static, str>>,
        component: impl Into<Cow<'static, str>>,
        error: &(dyn std::error::Error + 'static),
    ) {
        self.log_error(Level::Error, component, message, error, Vec::new());
    }

    fn log_text_error(
        &self,
        level: Level,
        component: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
        exception: Option<&str>,
    ) {
        let component = component.into();
        if self.enabled(level, &component) {
            self.submit(level, component, message.into(), Vec::new(), exception.map(str::to_owned));
        }
    }

    #[inline]
    fn submit(
        &self,
        level: Level,
        component: Cow<'static, str>,
        message: Cow<'static, str>,
        fields: Vec<Field>,
        error: Option<String>,
    ) {
        let inner = &*self.inner;
        if inner.closed.load(Ordering::Relaxed) {
            inner.counters.dropped_after_shutdown.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let trace = current_trace_context().or_else(|| inner.provider.as_ref().and_then(|p| p.current()));
        let pending = Pending { time_raw: inner.clock.raw(), level, component, message, fields, error, trace };
        let local = inner.accepted.local();
        bump(local.stripe, 1, local.exclusive);
        match inner.overflow {
            Overflow::Block => {
                if inner.queue.send(Message::Entry(pending)).is_err() {
                    inner.counters.dropped_after_shutdown.fetch_add(1, Ordering::Relaxed);
                }
            }
            Overflow::DropNewest => match inner.queue.try_send(Message::Entry(pending)) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    inner.counters.dropped_newest.fetch_add(1, Ordering::Relaxed);
                }
                Err(TrySendError::Disconnected(_)) => {
                    inner.counters.dropped_after_shutdown.fetch_add(1, Ordering::Relaxed);
                }
            },
            Overflow::DropOldest => {
                let mut message = Message::Entry(pending);
                loop {
                    match inner.queue.try_send(message) {
                        Ok(()) => break,
                        Err(TrySendError::Full(back)) => {
                            message = back;
                            // Make room by taking the oldest out; a control message taken by
                            // mistake goes back in (blocking is fine: it is rare and short).
                            match inner.oldest.try_recv() {
                                Ok(Message::Entry(_)) => {
                                    inner.counters.dropped_oldest.fetch_add(1, Ordering::Relaxed);
                                }
                                Ok(control) => {
                                    let _ = inner.queue.send(control);
                                }
                                Err(_) => {}
                            }
                        }
                        Err(TrySendError::Disconnected(_)) => {
                            inner.counters.dropped_after_shutdown.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                    }
                }
            }
        }
    }

    /// Replaces the level directives at run time (`"info,orders=debug"`).
    ///
    /// # Errors
    /// The directives do not parse; the old ones stay.
    pub fn set_directives(&self, text: &str) -> Result<(), DirectiveError> {
        let directives: Directives = text.parse()?;
        self.inner.apply(directives);
        Ok(())
    }

    /// Sets one level for everything.
    pub fn set_level(&self, level: Level) {
        self.inner.apply(Directives::new(level));
    }

    /// Adds a filter run on the worker: entries it rejects are counted in [`LogStats::filtered`]
    /// (the seed's `add_filter`).
    pub fn add_filter(&self, keep: impl Fn(&LogEntry) -> bool + Send + Sync + 'static) {
        self.inner.filters.write().unwrap_or_else(PoisonError::into_inner).push(Arc::new(keep));
    }

    /// Adds a sink at run time (the seed's `add_output`); it receives batches from now on.
    ///
    /// # Errors
    /// Its thread could not start.
    pub fn add_sink(&self, sink: impl Sink) -> Result<(), BuildError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(BuildError::Thread("the aggregator is shut down".to_owned()));
        }
        let handle = start_sink(Box::new(sink), false, self.inner.sink_queue, self.inner.sink_retries)?;
        self.inner.sinks.lock().unwrap_or_else(PoisonError::into_inner).push(handle);
        Ok(())
    }

    /// Writes out everything logged before this call, on every sink (the seed's `flush`); lossy
    /// sinks are asked to flush but not waited for. Waits at most five seconds; returns whether
    /// everything was written in time.
    pub fn flush(&self) -> bool {
        self.flush_with_timeout(Duration::from_secs(5))
    }

    /// Like [`LogAggregator::flush`], waiting at most `timeout`.
    pub fn flush_with_timeout(&self, timeout: Duration) -> bool {
        let (ack, done) = crossbeam_channel::bounded(1);
        let started = Instant::now();
        let deadline = started + timeout;
        let flushed = self.inner.queue.send_deadline(Message::Flush(ack), deadline).is_ok()
            && done.recv_deadline(deadline).is_ok();
        if flushed {
            let took = started.elapsed().as_nanos() as u64;
            self.inner.counters.last_flush_nanos.store(took, Ordering::Relaxed);
            self.inner.counters.max_flush_nanos.fetch_max(took, Ordering::Relaxed);
        }
        flushed
    }

    /// Stops taking entries, writes everything taken, flushes and stops the sinks (the seed's
    /// `stop`); waits at most `timeout`. Returns whether it finished in time. Later entries are
    /// counted in [`LogStats::dropped_after_shutdown`].
    pub fn shutdown_with_timeout(&self, timeout: Duration) -> bool {
        self.inner.shutdown(timeout)
    }

    /// The aggregator's numbers.
    pub fn stats(&self) -> LogStats {
        let inner = &*self.inner;
        let c = &inner.counters;
        let sinks = inner.sinks.lock().unwrap_or_else(PoisonError::into_inner);
        LogStats {
            accepted: inner.accepted.iter().map(|a| a.load(Ordering::Relaxed)).sum(),
            dropped_newest: c.dropped_newest.load(Ordering::Relaxed),
            dropped_oldest: c.dropped_oldest.load(Ordering::Relaxed),
            filtered: c.filtered.load(Ordering::Relaxed),
            suppressed: c.suppressed.load(Ordering::Relaxed),
            dropped_after_shutdown: c.dropped_after_shutdown.load(Ordering::Relaxed),
            queue_depth: inner.queue.len() as u64,
            batches: c.batches.load(Ordering::Relaxed),
            max_batch_nanos: c.max_batch_nanos.load(Ordering::Relaxed),
            last_flush_nanos: c.last_flush_nanos.load(Ordering::Relaxed),
            max_flush_nanos: c.max_flush_nanos.load(Ordering::Relaxed),
            sinks: sinks
                .iter()
                .map(|s| SinkStats {
                    name: s.name.clone(),
                    written: s.counters.written.load(Ordering::Relaxed),
                    errors: s.counters.errors.load(Ordering::Relaxed),
                    dropped: s.counters.dropped.load(Ordering::Relaxed),
                })
                .collect(),
        }
    }
}

impl Inner {
    fn apply(&self, directives: Directives) {
        let mut current = self.directives.write().unwrap_or_else(PoisonError::into_inner);
        self.floor.store(directives.floor() as u8, Ordering::Relaxed);
        self.simple.store(directives.is_uniform(), Ordering::Relaxed);
        *current = directives;
    }

    fn shutdown(&self, timeout: Duration) -> bool {
        if self.closed.swap(true, Ordering::AcqRel) {
            return true;
        }
        let deadline = Instant::now() + timeout;
        let (ack, done) = crossbeam_channel::bounded(1);
        let finished =
            self.queue.send_deadline(Message::Shutdown(ack), deadline).is_ok() && done.recv_deadline(deadline).is_ok();
        if finished && let Some(worker) = self.worker.lock().unwrap_or_else(PoisonError::into_inner).take() {
            let _ = worker.join();
        }
        finished
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.shutdown(Duration::from_secs(5));
    }
}

impl LogAggregatorBuilder {
    /// Entries the queue between callers and the worker holds (the seed's `buffer_size`).
    pub fn buffer_capacity(mut self, entries: usize) -> Self {
        self.capacity = entries;
        self
    }

    /// How long the worker waits for a batch to fill before writing what it has.
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval;
        self
    }

    /// Entries per batch handed to the sinks.
    pub fn batch_size(mut self, entries: usize) -> Self {
        self.batch_size = entries;
        self
    }

    /// One minimum level for everything.
    pub fn min_level(mut self, level: Level) -> Self {
        self.directives = Ok(Directives::new(level));
        self
    }

    /// Levels by component: `"info,orders=debug,pool=warn"`; checked by `build`.
    pub fn directives(mut self, text: &str) -> Self {
        self.directives = text.parse();
        self
    }

    /// What to do when the queue is full (default: block).
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }

    /// The clock for timestamps (`quanta::Clock::mock()` in tests).
    pub fn clock(mut self, clock: quanta::Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Where the trace context comes from when none is set on the thread (the umbrella crate plugs
    /// in the current span of `infra-trace`).
    pub fn context_provider(mut self, provider: impl ContextProvider) -> Self {
        self.provider = Some(Box::new(provider));
        self
    }

    /// Adds a sink. With [`Overflow::Block`] it is lossless: the worker waits for it when its queue
    /// is full, so a sink that stops taking batches eventually holds up the callers.
    pub fn sink(mut self, sink: impl Sink) -> Self {
        self.sinks.push((Box::new(sink), false));
        self
    }

    /// Adds a sink that may lose batches, whatever the policy: when its queue is full the batch is
    /// dropped for it (counted in its [`SinkStats::dropped`]) and nobody waits. For a console or a
    /// syslog daemon beside a lossless file, so that a slow one never holds up the others or the
    /// callers.
    pub fn lossy_sink(mut self, sink: impl Sink) -> Self {
        self.sinks.push((Box::new(sink), true));
        self
    }

    /// Adds a filter run on the worker.
    pub fn filter(mut self, keep: impl Fn(&LogEntry) -> bool + Send + Sync + 'static) -> Self {
        self.filters.push(Arc::new(keep));
        self
    }

    /// Field names whose values are masked in every sink (default: password, token, secret,
    /// authorization; compared case-insensitively).
    pub fn redact(mut self, keys: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.redact = keys.into_iter().map(Into::into).collect();
        self
    }

    /// Messages longer than this many bytes are cut, with a marker (default 16 KiB).
    pub fn max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    /// At most `per_second` entries a second with the same component and message; the rest are
    /// counted in [`LogStats::suppressed`] and summed up in one "suppressed N similar" entry when
    /// the second is over (seconds of the injected clock). Off by default.
    pub fn burst_limit(mut self, per_second: u32) -> Self {
        self.burst_limit = Some(per_second);
        self
    }

    /// Batches each sink's queue holds before batches for it are dropped and counted (default 64).
    pub fn sink_queue(mut self, batches: usize) -> Self {
        self.sink_queue = batches;
        self
    }

    /// Retries of a failed write, with backoff, before its entries are counted as dropped.
    pub fn sink_retries(mut self, retries: u32) -> Self {
        self.sink_retries = retries;
        self
    }

    /// Builds the aggregator and starts its worker and sinks.
    ///
    /// # Errors
    /// A zero capacity, batch size, sink queue or message limit, directives that do not parse, or a
    /// thread that could not start.
    pub fn build(self) -> Result<LogAggregator, BuildError> {
        for (value, name) in [
            (self.capacity, "buffer_capacity"),
            (self.batch_size, "batch_size"),
            (self.sink_queue, "sink_queue"),
            (self.max_message_bytes, "max_message_bytes"),
        ] {
            if value == 0 {
                return Err(BuildError::Zero(name));
            }
        }
        let directives = self.directives?;
        let (queue, receiver) = crossbeam_channel::bounded(self.capacity);
        let sinks = self
            .sinks
            .into_iter()
            .map(|(sink, lossy)| start_sink(sink, lossy, self.sink_queue, self.sink_retries))
            .collect::<Result<Vec<_>, _>>()?;
        let sinks = Arc::new(Mutex::new(sinks));
        let filters = Arc::new(RwLock::new(self.filters));
        let counters = Arc::new(Counters::default());
        let anchor_unix_nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        let settings = Settings {
            service: self.service.into(),
            block: self.overflow == Overflow::Block,
            batch_size: self.batch_size,
            flush_interval: self.flush_interval,
            burst_limit: self.burst_limit,
            max_message_bytes: self.max_message_bytes,
            redact: self.redact,
            anchor_raw: self.clock.raw(),
            clock: self.clock.clone(),
            anchor_unix_nanos,
        };
        let worker = {
            let (receiver, sinks, filters, counters) =
                (receiver.clone(), Arc::clone(&sinks), Arc::clone(&filters), Arc::clone(&counters));
            std::thread::Builder::new()
                .name("infra-log".into())
                .spawn(move || run_worker(settings, receiver, sinks, filters, counters))
                .map_err(|e| BuildError::Thread(e.to_string()))?
        };
        let inner = Inner {
            floor: AtomicU8::new(0),
            simple: AtomicBool::new(true),
            directives: RwLock::new(Directives::new(Level::Info)),
            overflow: self.overflow,
            clock: self.clock,
            provider: self.provider,
            queue,
            oldest: receiver,
            accepted: Striped::new(),
            counters,
            filters,
            sinks,
            sink_queue: self.sink_queue,
            sink_retries: self.sink_retries,
            closed: AtomicBool::new(false),
            worker: Mutex::new(Some(worker)),
        };
        inner.apply(directives);
        Ok(LogAggregator { inner: Arc::new(inner) })
    }
}

fn start_sink(mut sink: Box<dyn Sink>, lossy: bool, queue: usize, retries: u32) -> Result<SinkHandle, BuildError> {
    let name = sink.name();
    let (sender, receiver) = crossbeam_channel::bounded::<SinkMessage>(queue);
    let counters = Arc::new(SinkCounters::default());
    let shared = Arc::clone(&counters);
    let label = name.clone();
    let thread = std::thread::Builder::new()
        .name("infra-log-sink".into())
        .spawn(move || {
            let mut reported = false;
            let mut report = |error: &std::io::Error| {
                if !reported {
                    reported = true;
                    eprintln!("infra-log: sink {label} failed: {error} (further failures are counted in LogStats)");
                }
            };
            for message in receiver {
                match message {
                    SinkMessage::Batch(batch) => {
                        let mut backoff = Duration::from_millis(10);
                        let mut attempt = 0;
                        loop {
                            // A panicking sink is a failing one: counted, retried, never the end of
                            // its thread.
                            let written =
                                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sink.write_batch(&batch)))
                                    .unwrap_or_else(|_| Err(std::io::Error::other("the sink panicked")));
                            match written {
                                Ok(()) => {
                                    shared.written.fetch_add(batch.len() as u64, Ordering::Relaxed);
                                    break;
                                }
                                Err(error) => {
                                    shared.errors.fetch_add(1, Ordering::Relaxed);
                                    report(&error);
                                    attempt += 1;
                                    if attempt > retries {
                                        shared.dropped.fetch_add(batch.len() as u64, Ordering::Relaxed);
                                        break;
                                    }
                                    // Only this sink's thread waits; the others go on.
                                    std::thread::sleep(backoff);
                                    backoff = (backoff * 4).min(Duration::from_secs(1));
                                }
                            }
                        }
                    }
                    SinkMessage::Flush(ack) => {
                        if let Err(error) = sink.flush() {
                            shared.errors.fetch_add(1, Ordering::Relaxed);
                            report(&error);
                        }
                        let _ = ack.send(());
                    }
                }
            }
            let _ = sink.flush();
        })
        .map_err(|e| BuildError::Thread(e.to_string()))?;
    Ok(SinkHandle { name, lossy, queue: sender, counters, thread: Some(thread) })
}

fn run_worker(
    settings: Settings,
    receiver: Receiver<Message>,
    sinks: Arc<Mutex<Vec<SinkHandle>>>,
    filters: Arc<RwLock<Vec<Filter>>>,
    counters: Arc<Counters>,
) {
    let mut batch: Vec<LogEntry> = Vec::with_capacity(settings.batch_size);
    let mut suppressor = settings.burst_limit.map(Suppressor::new);
    loop {
        let first = match receiver.recv_timeout(settings.flush_interval) {
            Ok(message) => Some(message),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut control = None;
        let mut next = first;
        while let Some(message) = next {
            match message {
                Message::Entry(pending) => {
                    let entry = prepare(&settings, pending);
                    match &mut suppressor {
                        Some(suppressor) => {
                            if suppressor.admit(entry, &mut batch) {
                                counters.suppressed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        None => batch.push(entry),
                    }
                    if batch.len() >= settings.batch_size {
                        dispatch(&mut batch, settings.block, &sinks, &filters, &counters);
                    }
                }
                other => {
                    control = Some(other);
                    break;
                }
            }
            next = receiver.try_recv().ok();
        }
        if let Some(suppressor) = &mut suppressor {
            // Summaries of seconds that are over; at flush and shutdown, of every second.
            if control.is_some() {
                suppressor.drain(&mut batch);
            } else {
                suppressor.sweep(settings.now_unix_nanos(), &mut batch);
            }
        }
        dispatch(&mut batch, settings.block, &sinks, &filters, &counters);
        match control {
            Some(Message::Flush(ack)) => {
                flush_sinks(&sinks);
                let _ = ack.send(());
            }
            Some(Message::Shutdown(ack)) => {
                // The queue is FIFO: everything accepted before the shutdown message has been
                // written above.
                flush_sinks(&sinks);
                let threads: Vec<JoinHandle<()>> = {
                    let mut sinks = sinks.lock().unwrap_or_else(PoisonError::into_inner);
                    sinks
                        .iter_mut()
                        .filter_map(|sink| {
                            // Dropping the only sender ends the sink's thread once it has written
                            // what it holds; the handle stays for the stats.
                            sink.queue = crossbeam_channel::bounded(0).0;
                            sink.thread.take()
                        })
                        .collect()
                };
                for thread in threads {
                    let _ = thread.join();
                }
                let _ = ack.send(());
                return;
            }
            _ => {}
        }
    }
}

impl Settings {
    fn unix_nanos(&self, raw: u64) -> u64 {
        self.anchor_unix_nanos.saturating_add(self.clock.delta_as_nanos(self.anchor_raw, raw))
    }

    fn now_unix_nanos(&self) -> u64 {
        self.unix_nanos(self.clock.raw())
    }
}

/// Wall time, redaction and the message limit: the work the callers did not do.
fn prepare(settings: &Settings, pending: Pending) -> LogEntry {
    let Pending { time_raw, level, component, mut message, mut fields, error, trace } = pending;
    let time_unix_nanos = settings.unix_nanos(time_raw);
    if message.len() > settings.max_message_bytes {
        let mut cut = settings.max_message_bytes;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        let dropped = message.len() - cut;
        message = Cow::Owned(format!("{}…[truncated {dropped} bytes]", &message[..cut]));
    }
    if !settings.redact.is_empty() {
        for field in &mut fields {
            if settings.redact.iter().any(|k| field.key.eq_ignore_ascii_case(k)) {
                field.value = FieldValue::Str(Cow::Borrowed("[REDACTED]"));
            }
        }
    }
    LogEntry {
        time_unix_nanos,
        level,
        service: Arc::clone(&settings.service),
        component,
        message,
        fields,
        error,
        trace,
    }
}

/// Runs the filters and hands the batch to every sink's queue: with `block`, waiting for a sink
/// whose queue is full (backpressure, nothing lost), else dropping the batch for that sink and
/// counting it.
fn dispatch(
    batch: &mut Vec<LogEntry>,
    block: bool,
    sinks: &Mutex<Vec<SinkHandle>>,
    filters: &RwLock<Vec<Filter>>,
    counters: &Counters,
) {
    if batch.is_empty() {
        return;
    }
    let started = Instant::now();
    {
        let filters = filters.read().unwrap_or_else(PoisonError::into_inner);
        if !filters.is_empty() {
            let before = batch.len();
            batch.retain(|entry| filters.iter().all(|keep| keep(entry)));
            counters.filtered.fetch_add((before - batch.len()) as u64, Ordering::Relaxed);
        }
    }
    let shared = Arc::new(std::mem::take(batch));
    let sinks = sinks.lock().unwrap_or_else(PoisonError::into_inner);
    let mut full = Vec::new();
    for sink in sinks.iter() {
        match sink.queue.try_send(SinkMessage::Batch(Arc::clone(&shared))) {
            Ok(()) => {}
            Err(TrySendError::Full(message)) if block && !sink.lossy => full.push((sink, message)),
            Err(_) => {
                sink.counters.dropped.fetch_add(shared.len() as u64, Ordering::Relaxed);
            }
        }
    }
    // The sinks with room have their batch already; only now wait for the others.
    for (sink, message) in full {
        if sink.queue.send(message).is_err() {
            sink.counters.dropped.fetch_add(shared.len() as u64, Ordering::Relaxed);
        }
    }
    counters.batches.fetch_add(1, Ordering::Relaxed);
    counters.max_batch_nanos.fetch_max(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
}

/// Asks every sink to flush and waits for each lossless one (a sink's queue is FIFO, so it has
/// written every batch handed to it before); lossy sinks are asked without waiting, so a stuck one
/// holds up no flush.
fn flush_sinks(sinks: &Mutex<Vec<SinkHandle>>) {
    let acks: Vec<Receiver<()>> = sinks
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter_map(|sink| {
            let (ack, done) = crossbeam_channel::bounded(1);
            if sink.lossy {
                let _ = sink.queue.try_send(SinkMessage::Flush(ack));
                return None;
            }
            sink.queue.send_timeout(SinkMessage::Flush(ack), Duration::from_secs(5)).ok().map(|()| done)
        })
        .collect();
    for done in acks {
        let _ = done.recv_timeout(Duration::from_secs(5));
    }
}
