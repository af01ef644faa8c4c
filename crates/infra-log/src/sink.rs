//! Where entries go. Each sink runs on a thread of its own behind a bounded queue of batches, so a
//! slow or failing sink never holds up the others, the worker or the callers.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::sync::{Arc, Mutex, PoisonError};

use crate::entry::{LogEntry, TimestampCache};
use crate::filter::covers;
use crate::level::Level;

/// Receives entries in batches, on its own thread.
pub trait Sink: Send + 'static {
    /// Writes a batch.
    ///
    /// # Errors
    /// The batch could not be written; the sink's thread retries it with backoff, then counts it
    /// as dropped.
    fn write_batch(&mut self, entries: &[LogEntry]) -> io::Result<()>;

    /// Pushes out anything buffered.
    ///
    /// # Errors
    /// The flush failed; counted as a sink error.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// A name for stats and error reports.
    fn name(&self) -> String {
        std::any::type_name::<Self>().rsplit("::").next().unwrap_or("sink").to_owned()
    }
}

/// Writes one JSON object per entry and line to any writer (a file, stdout, a socket).
pub struct JsonLinesSink<W: Write + Send + 'static> {
    writer: W,
    buffer: Vec<u8>,
    timestamps: TimestampCache,
}

impl<W: Write + Send + 'static> JsonLinesSink<W> {
    /// A sink writing to `writer`; each batch is one `write_all` and a flush.
    pub fn new(writer: W) -> Self {
        JsonLinesSink { writer, buffer: Vec::new(), timestamps: TimestampCache::default() }
    }
}

impl<W: Write + Send + 'static> fmt::Debug for JsonLinesSink<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JsonLinesSink")
    }
}

impl<W: Write + Send + 'static> Sink for JsonLinesSink<W> {
    fn write_batch(&mut self, entries: &[LogEntry]) -> io::Result<()> {
        self.buffer.clear();
        for entry in entries {
            entry.write_json(&mut self.buffer, &mut self.timestamps);
            self.buffer.push(b'\n');
        }
        self.writer.write_all(&self.buffer)?;
        self.writer.flush()
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }

    fn name(&self) -> String {
        "json-lines".to_owned()
    }
}

/// Human-readable lines on standard error (or any writer), coloured when writing to a terminal
/// (the seed's `console_log_output`).
pub struct ConsoleSink<W: Write + Send + 'static> {
    writer: W,
    colour: bool,
}

impl ConsoleSink<io::Stderr> {
    /// Lines on standard error, coloured when it is a terminal.
    pub fn stderr() -> Self {
        let colour = io::stderr().is_terminal();
        ConsoleSink { writer: io::stderr(), colour }
    }
}

impl<W: Write + Send + 'static> ConsoleSink<W> {
    /// Lines on `writer`, coloured or not.
    pub fn new(writer: W, colour: bool) -> Self {
        ConsoleSink { writer, colour }
    }
}

impl<W: Write + Send + 'static> fmt::Debug for ConsoleSink<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsoleSink").field("colour", &self.colour).finish()
    }
}

impl<W: Write + Send + 'static> Sink for ConsoleSink<W> {
    fn write_batch(&mut self, entries: &[LogEntry]) -> io::Result<()> {
        let mut text = String::new();
        for entry in entries {
            text.push_str(&entry.to_text(self.colour));
            text.push('\n');
        }
        self.writer.write_all(text.as_bytes())?;
        self.writer.flush()
    }

    fn name(&self) -> String {
        "console".to_owned()
    }
}

type Callback = dyn FnMut(&[LogEntry]) -> io::Result<()> + Send;

/// Calls a closure with each batch (the seed's `add_output(callable)`).
pub struct CallbackSink {
    callback: Box<Callback>,
}

impl CallbackSink {
    /// A sink calling `callback`.
    pub fn new(callback: impl FnMut(&[LogEntry]) -> io::Result<()> + Send + 'static) -> Self {
        CallbackSink { callback: Box::new(callback) }
    }
}

impl fmt::Debug for CallbackSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CallbackSink")
    }
}

impl Sink for CallbackSink {
    fn write_batch(&mut self, entries: &[LogEntry]) -> io::Result<()> {
        (self.callback)(entries)
    }

    fn name(&self) -> String {
        "callback".to_owned()
    }
}

/// What to look for (the seed's `search_logs`); every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    /// At or after, in nanoseconds since the Unix epoch.
    pub from_unix_nanos: Option<u64>,
    /// Before, in nanoseconds since the Unix epoch.
    pub to_unix_nanos: Option<u64>,
    /// At least this severe.
    pub min_level: Option<Level>,
    /// This component or one of its sub-components.
    pub component: Option<String>,
    /// In this trace.
    pub trace_id: Option<u128>,
    /// Containing this text in the message, the error or a field value (case-insensitive).
    pub text: Option<String>,
    /// At most this many, newest kept (0: no limit).
    pub limit: usize,
}

impl Query {
    pub(crate) fn matches(&self, entry: &LogEntry, text: Option<&str>) -> bool {
        self.from_unix_nanos.is_none_or(|from| entry.time_unix_nanos >= from)
            && self.to_unix_nanos.is_none_or(|to| entry.time_unix_nanos < to)
            && self.min_level.is_none_or(|level| entry.level >= level)
            && self.component.as_deref().is_none_or(|c| covers(c, &entry.component))
            && self.trace_id.is_none_or(|id| entry.trace.is_some_and(|t| t.trace_id == id))
            && text.is_none_or(|needle| {
                contains_ignore_case(&entry.message, needle)
                    || entry.error.as_deref().is_some_and(|e| contains_ignore_case(e, needle))
                    || entry.fields.iter().any(|f| contains_ignore_case(&f.value.to_string(), needle))
            })
    }
}

fn contains_ignore_case(haystack: &str, lower_needle: &str) -> bool {
    haystack.to_lowercase().contains(lower_needle)
}

/// The last entries, in memory, searchable; a lookup by trace id goes through an index instead of
/// scanning. Clones share the same ring.
#[derive(Debug, Clone)]
pub struct MemorySink {
    ring: Arc<Mutex<Ring>>,
}

#[derive(Debug)]
struct Ring {
    capacity: usize,
    /// Sequence number of `entries[0]`.
    first: u64,
    entries: VecDeque<LogEntry>,
    by_trace: HashMap<u128, Vec<u64>>,
}

impl MemorySink {
    /// Keeps the last `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        MemorySink {
            ring: Arc::new(Mutex::new(Ring {
                capacity: capacity.max(1),
                first: 0,
                entries: VecDeque::new(),
                by_trace: HashMap::new(),
            })),
        }
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every entry held, oldest first.
    pub fn entries(&self) -> Vec<LogEntry> {
        self.ring().entries.iter().cloned().collect()
    }

    /// How many entries are held.
    pub fn len(&self) -> usize {
        self.ring().entries.len()
    }

    /// Nothing held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entries of one trace, oldest first: an index lookup.
    pub fn trace(&self, trace_id: u128) -> Vec<LogEntry> {
        let ring = self.ring();
        let Some(sequences) = ring.by_trace.get(&trace_id) else { return Vec::new() };
        sequences
            .iter()
            .filter_map(|seq| seq.checked_sub(ring.first).and_then(|i| ring.entries.get(i as usize)))
            .cloned()
            .collect()
    }

    /// The entries matching `query`, oldest first (the newest `limit` when there is one).
    pub fn search(&self, query: &Query) -> Vec<LogEntry> {
        let text = query.text.as_ref().map(|t| t.to_lowercase());
        let limit = if query.limit == 0 { usize::MAX } else { query.limit };
        // Newest first, stopping at the limit (a dashboard asking for the last 15 of 100,000 entries
        // clones 15), then back into time order.
        let mut found: Vec<LogEntry> = match query.trace_id {
            Some(id) => {
                self.trace(id).into_iter().rev().filter(|e| query.matches(e, text.as_deref())).take(limit).collect()
            }
            None => {
                let ring = self.ring();
                ring.entries.iter().rev().filter(|e| query.matches(e, text.as_deref())).take(limit).cloned().collect()
            }
        };
        found.reverse();
        found
    }
}

impl Sink for MemorySink {
    fn write_batch(&mut self, entries: &[LogEntry]) -> io::Result<()> {
        let mut ring = self.ring();
        let ring = &mut *ring;
        for entry in entries {
            let sequence = ring.first + ring.entries.len() as u64;
            if let Some(trace) = entry.trace {
                ring.by_trace.entry(trace.trace_id).or_default().push(sequence);
            }
            ring.entries.push_back(entry.clone());
            while ring.entries.len() > ring.capacity {
                let Some(old) = ring.entries.pop_front() else { break };
                if let Some(trace) = old.trace
                    && let Some(sequences) = ring.by_trace.get_mut(&trace.trace_id)
                {
                    sequences.retain(|&s| s != ring.first);
                    if sequences.is_empty() {
                        ring.by_trace.remove(&trace.trace_id);
                    }
                }
                ring.first += 1;
            }
        }
        Ok(())
    }

    fn name(&self) -> String {
        "memory".to_owned()
    }
}
