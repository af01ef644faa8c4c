//! The aggregator end to end: nothing lost with the blocking policy, every drop counted with the
//! others, sinks isolated from each other and from callers, correlation, redaction, limits, the
//! injected clock, filters, directives and shutdown.

use std::io::{self, BufRead, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use infra_log::{
    CallbackSink, ConsoleSink, FieldValue, JsonLinesSink, Level, LogAggregator, LogEntry, MemorySink, Overflow, Query,
    Sink, TraceContext, info, set_trace_context, warn, with_trace_context,
};

/// A writer whose bytes the test can read back.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[test]
fn two_threads_lose_nothing_with_the_blocking_policy() {
    let dir = std::env::temp_dir().join(format!("infra-log-loss-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("loss.jsonl");
    let file = std::fs::File::create(&path).unwrap();
    let logs = LogAggregator::builder("loss")
        .buffer_capacity(4096)
        .overflow(Overflow::Block)
        .sink(JsonLinesSink::new(io::BufWriter::new(file)))
        .build()
        .unwrap();
    const PER_THREAD: u64 = 1_000_000;
    let threads: Vec<_> = (0..2u64)
        .map(|t| {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for i in 0..PER_THREAD {
                    info!(logs, "loss", "entry", thread = t, seq = i, ok = true);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert!(logs.shutdown_with_timeout(Duration::from_secs(60)));
    let reader = io::BufReader::new(std::fs::File::open(&path).unwrap());
    let mut seen = [0u64; 2];
    for line in reader.lines() {
        let value: serde_json::Value = serde_json::from_str(&line.unwrap()).expect("well-formed JSON on every line");
        let thread = value["fields"]["thread"].as_u64().unwrap() as usize;
        assert_eq!(value["fields"]["seq"].as_u64().unwrap(), seen[thread], "in order per thread");
        seen[thread] += 1;
    }
    assert_eq!(seen, [PER_THREAD, PER_THREAD]);
    let stats = logs.stats();
    assert_eq!(stats.accepted, 2 * PER_THREAD);
    assert_eq!(stats.sinks[0].written, 2 * PER_THREAD);
    assert_eq!(stats.dropped_newest + stats.dropped_oldest + stats.sinks[0].dropped, 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A sink that holds every batch until the gate opens.
struct Gated {
    gate: Arc<Mutex<()>>,
    written: Arc<AtomicUsize>,
}

impl Sink for Gated {
    fn write_batch(&mut self, entries: &[LogEntry]) -> io::Result<()> {
        let _open = self.gate.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.written.fetch_add(entries.len(), Ordering::Relaxed);
        Ok(())
    }
}

#[test]
fn a_stuck_sink_holds_up_neither_callers_nor_other_sinks_and_its_drops_are_counted() {
    let gate = Arc::new(Mutex::new(()));
    let closed = gate.lock().unwrap();
    let written = Arc::new(AtomicUsize::new(0));
    let memory = MemorySink::new(100_000);
    let logs = LogAggregator::builder("svc")
        .overflow(Overflow::DropNewest)
        .batch_size(10)
        .sink(Gated { gate: Arc::clone(&gate), written: Arc::clone(&written) })
        .sink(memory.clone())
        .build()
        .unwrap();
    for i in 0..5_000u64 {
        info!(logs, "svc", "work", i = i);
    }
    // Every batch reaches the memory sink or is counted as dropped for it, while the gated sink is
    // still stuck on its first batch: the callers went on, and so did the other sink.
    let memory_stats = |logs: &LogAggregator| logs.stats().sinks[1].clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while memory_stats(&logs).written + memory_stats(&logs).dropped < 5_000 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let stats = memory_stats(&logs);
    assert_eq!(stats.written + stats.dropped, 5_000, "{:?}", logs.stats());
    assert_eq!(memory.len() as u64, stats.written);
    assert!(!memory.is_empty());
    assert_eq!(written.load(Ordering::Relaxed), 0, "the gated sink is still stuck");
    // With the queues drained, a new entry reaches the memory sink at once, gate or no gate.
    logs.info("after the burst", "svc");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !memory.entries().iter().any(|e| e.message == "after the burst") && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(memory.entries().iter().any(|e| e.message == "after the burst"));
    assert_eq!(written.load(Ordering::Relaxed), 0);
    drop(closed);
    assert!(logs.flush());
    let stats = logs.stats();
    let gated = &stats.sinks[0];
    assert!(gated.dropped > 0, "{stats:?}");
    assert_eq!(gated.written + gated.dropped, 5_001, "every entry written or counted: {stats:?}");
    assert_eq!(gated.written as usize, written.load(Ordering::Relaxed));
}

#[test]
fn drop_policies_count_what_they_drop() {
    for overflow in [Overflow::DropNewest, Overflow::DropOldest] {
        let gate = Arc::new(Mutex::new(()));
        let closed = gate.lock().unwrap();
        let written = Arc::new(AtomicUsize::new(0));
        let logs = LogAggregator::builder("svc")
            .buffer_capacity(16)
            .batch_size(1)
            .sink_queue(1)
            .overflow(overflow)
            .sink(Gated { gate: Arc::clone(&gate), written: Arc::clone(&written) })
            .build()
            .unwrap();
        for i in 0..1_000u64 {
            info!(logs, "svc", "burst", i = i);
        }
        drop(closed);
        assert!(logs.shutdown_with_timeout(Duration::from_secs(10)));
        let stats = logs.stats();
        let dropped = stats.dropped_newest + stats.dropped_oldest + stats.sinks[0].dropped;
        assert!(dropped > 0, "{overflow:?}: {stats:?}");
        assert_eq!(stats.sinks[0].written + dropped, 1_000, "{overflow:?}: {stats:?}");
        match overflow {
            Overflow::DropNewest => assert_eq!(stats.dropped_oldest, 0),
            _ => assert_eq!(stats.dropped_newest, 0),
        }
    }
}

#[test]
fn a_failing_sink_is_retried_then_counted_and_the_others_go_on() {
    let memory = MemorySink::new(1000);
    let attempts = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&attempts);
    let logs = LogAggregator::builder("svc")
        .sink_retries(2)
        .sink(CallbackSink::new(move |_| {
            seen.fetch_add(1, Ordering::Relaxed);
            Err(io::Error::other("disk full"))
        }))
        .sink(memory.clone())
        .build()
        .unwrap();
    logs.info("one", "svc");
    assert!(logs.flush());
    let stats = logs.stats();
    assert_eq!(memory.len(), 1);
    assert_eq!(attempts.load(Ordering::Relaxed), 3, "the first try and two retries");
    assert_eq!((stats.sinks[0].errors, stats.sinks[0].dropped, stats.sinks[0].written), (3, 1, 0));
    assert_eq!(stats.sinks[1].written, 1);
    assert!(stats.last_flush_nanos > 0 && stats.max_flush_nanos >= stats.last_flush_nanos);
}

#[test]
fn a_panicking_sink_is_counted_and_keeps_its_thread() {
    let memory = MemorySink::new(10);
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let logs = LogAggregator::builder("svc")
        .sink_retries(0)
        .sink(CallbackSink::new(move |_| {
            if seen.fetch_add(1, Ordering::Relaxed) == 0 {
                panic!("a bug in a sink");
            }
            Ok(())
        }))
        .sink(memory.clone())
        .build()
        .unwrap();
    logs.info("first", "svc");
    assert!(logs.flush());
    logs.info("second", "svc");
    assert!(logs.flush());
    let stats = logs.stats();
    assert_eq!((stats.sinks[0].errors, stats.sinks[0].dropped, stats.sinks[0].written), (1, 1, 1));
    assert_eq!(memory.len(), 2);
}

#[test]
fn entries_carry_the_trace_from_the_thread_the_task_or_the_provider() {
    let memory = MemorySink::new(1000);
    let provided = TraceContext::new(7, 8, 1);
    let logs =
        LogAggregator::builder("svc").context_provider(move || Some(provided)).sink(memory.clone()).build().unwrap();
    logs.info("from the provider", "svc");
    {
        let _guard = set_trace_context(TraceContext::new(1, 2, 1));
        logs.info("from the thread", "svc");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let task_logs = logs.clone();
    runtime.block_on(async move {
        tokio::spawn(with_trace_context(TraceContext::new(3, 4, 1), async move {
            tokio::task::yield_now().await;
            task_logs.info("from the task", "svc");
        }))
        .await
        .unwrap();
    });
    assert!(logs.flush());
    assert_eq!(memory.trace(7)[0].message, "from the provider");
    assert_eq!(memory.trace(1)[0].message, "from the thread");
    assert_eq!(memory.trace(3)[0].message, "from the task");
    let json = memory.trace(1)[0].to_json();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["trace_id"], "00000000000000000000000000000001");
    assert_eq!(value["span_id"], "0000000000000002");
    assert_eq!(value["trace_flags"], "01");
}

#[test]
fn secrets_are_masked_long_messages_cut_and_control_characters_escaped() {
    let out = Shared::default();
    let console = Shared::default();
    let logs = LogAggregator::builder("svc")
        .max_message_bytes(32)
        .sink(JsonLinesSink::new(out.clone()))
        .sink(ConsoleSink::new(console.clone(), false))
        .build()
        .unwrap();
    warn!(logs, "auth", "login\nfailed\u{7}", user = "ada", Password = "hunter2", "authorization" = "Bearer x");
    logs.info("é".repeat(40), "svc");
    assert!(logs.flush());
    let text = out.text();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0]["message"], "login\nfailed\u{7}", "JSON escapes control characters losslessly");
    assert_eq!(lines[0]["fields"]["Password"], "[REDACTED]");
    assert_eq!(lines[0]["fields"]["authorization"], "[REDACTED]");
    assert_eq!(lines[0]["fields"]["user"], "ada");
    let cut = lines[1]["message"].as_str().unwrap();
    assert!(cut.starts_with(&"é".repeat(16)) && cut.ends_with("…[truncated 48 bytes]"), "{cut}");
    assert!(!text.contains("hunter2") && !console.text().contains("hunter2"));
    let first_console = console.text().lines().next().unwrap().to_owned();
    assert!(first_console.contains("login\\nfailed\\u{0007}"), "one entry, one line: {first_console}");
    assert_eq!(console.text().lines().count(), 2);
}

#[test]
fn timestamps_follow_the_injected_clock() {
    let (clock, mock) = quanta::Clock::mock();
    let memory = MemorySink::new(10);
    let logs = LogAggregator::builder("svc").clock(clock).sink(memory.clone()).build().unwrap();
    logs.info("first", "svc");
    mock.increment(Duration::from_millis(1500));
    logs.info("second", "svc");
    assert!(logs.flush());
    let entries = memory.entries();
    assert_eq!(entries[1].time_unix_nanos - entries[0].time_unix_nanos, 1_500_000_000);
    let from = entries[1].time_unix_nanos;
    let later = memory.search(&Query { from_unix_nanos: Some(from), ..Query::default() });
    assert_eq!(later.len(), 1);
}

#[test]
fn filters_directives_and_the_seed_api() {
    let memory = MemorySink::new(100);
    let logs = LogAggregator::builder("svc")
        .directives("warn,orders=debug")
        .filter(|entry| !entry.message.contains("noise"))
        .sink(memory.clone())
        .build()
        .unwrap();
    logs.debug("kept: orders logs at debug", "orders::fills");
    logs.info("not kept", "pool");
    logs.warning("noise", "pool");
    logs.error("failed", "pool", Some("connection refused"));
    logs.critical("down", "pool", None);
    logs.exception("lost", "pool", &io::Error::new(io::ErrorKind::BrokenPipe, "peer went away"));
    assert!(logs.set_directives("orders=loud").is_err());
    logs.set_directives("error").unwrap();
    logs.warning("not kept any more", "pool");
    assert!(logs.flush());
    let messages: Vec<String> = memory.entries().iter().map(|e| e.message.to_string()).collect();
    assert_eq!(messages, ["kept: orders logs at debug", "failed", "down", "lost"]);
    let entries = memory.entries();
    assert_eq!(entries[1].error.as_deref(), Some("connection refused"));
    assert_eq!(entries[3].error.as_deref(), Some("peer went away"));
    assert_eq!(logs.stats().filtered, 1);
    let errors = memory.search(&Query { min_level: Some(Level::Critical), ..Query::default() });
    assert_eq!(errors.len(), 1);
    let text =
        memory.search(&Query { text: Some("REFUSED".into()), component: Some("pool".into()), ..Query::default() });
    assert_eq!(text.len(), 1);
    assert!(LogAggregator::builder("svc").directives("info,=debug").build().is_err());
    assert!(LogAggregator::builder("svc").batch_size(0).build().is_err());
}

#[test]
fn typed_fields_keep_their_types() {
    let memory = MemorySink::new(10);
    let logs = LogAggregator::builder("svc").sink(memory.clone()).build().unwrap();
    let error = io::Error::other("boom");
    info!(logs, "svc", "typed", count = 3u32, delta = -2i64, ratio = 0.5, ok = false, err = FieldValue::error(&error));
    assert!(logs.flush());
    let entry = &memory.entries()[0];
    assert_eq!(entry.field("count"), Some(&FieldValue::U64(3)));
    assert_eq!(entry.field("delta"), Some(&FieldValue::I64(-2)));
    assert_eq!(entry.field("ratio"), Some(&FieldValue::F64(0.5)));
    assert_eq!(entry.field("ok"), Some(&FieldValue::Bool(false)));
    assert_eq!(entry.field("err"), Some(&FieldValue::Error("boom".into())));
}

#[test]
fn entries_after_shutdown_are_counted_and_dropping_the_last_handle_flushes() {
    let memory = MemorySink::new(10);
    let logs =
        LogAggregator::builder("svc").flush_interval(Duration::from_secs(3600)).sink(memory.clone()).build().unwrap();
    logs.info("before", "svc");
    drop(logs);
    assert_eq!(memory.len(), 1, "dropping the last handle wrote what was queued");
    let logs = LogAggregator::builder("svc").sink(memory.clone()).build().unwrap();
    assert!(logs.shutdown_with_timeout(Duration::from_secs(5)));
    logs.info("after", "svc");
    assert_eq!(logs.stats().dropped_after_shutdown, 1);
}

#[test]
fn handles_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<LogAggregator>();
    send_sync::<MemorySink>();
}

#[test]
fn bursts_are_suppressed_per_second_and_summed_up() {
    let (clock, mock) = quanta::Clock::mock();
    let memory = MemorySink::new(100);
    let logs = LogAggregator::builder("svc").clock(clock).burst_limit(3).sink(memory.clone()).build().unwrap();
    for _ in 0..10 {
        logs.warning("connection refused", "pool");
    }
    logs.warning("another message", "pool");
    assert!(logs.flush());
    let messages = |memory: &MemorySink| memory.entries().iter().map(|e| e.message.to_string()).collect::<Vec<_>>();
    // Flushing sums up the second so far.
    assert_eq!(
        messages(&memory),
        [
            "connection refused",
            "connection refused",
            "connection refused",
            "another message",
            "suppressed 7 similar: connection refused"
        ]
    );
    assert_eq!(memory.entries()[4].field("suppressed"), Some(&FieldValue::U64(7)));
    assert_eq!(logs.stats().suppressed, 7);
    // A new second starts a new count; the summary of the old one comes when it is over.
    mock.increment(Duration::from_secs(1));
    for _ in 0..5 {
        logs.warning("connection refused", "pool");
    }
    mock.increment(Duration::from_secs(1));
    logs.info("tick", "svc");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while memory.len() < 10 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let all = messages(&memory);
    assert_eq!(
        all[5..],
        [
            "connection refused",
            "connection refused",
            "connection refused",
            "tick",
            "suppressed 2 similar: connection refused"
        ],
        "the summary of second 1 follows the first entry of second 2"
    );
    assert_eq!(logs.stats().suppressed, 9);
}

#[test]
fn with_the_blocking_policy_a_stuck_lossy_sink_holds_up_nobody() {
    let gate = Arc::new(Mutex::new(()));
    let closed = gate.lock().unwrap();
    let written = Arc::new(AtomicUsize::new(0));
    let memory = MemorySink::new(100_000);
    let logs = LogAggregator::builder("svc")
        .overflow(Overflow::Block)
        .batch_size(10)
        .sink_queue(2)
        .lossy_sink(Gated { gate: Arc::clone(&gate), written: Arc::clone(&written) })
        .sink(memory.clone())
        .build()
        .unwrap();
    for i in 0..5_000u64 {
        info!(logs, "svc", "work", i = i);
    }
    assert!(logs.flush(), "the lossless sink has everything while the lossy one is still stuck");
    assert_eq!(memory.len(), 5_000);
    assert_eq!(written.load(Ordering::Relaxed), 0);
    drop(closed);
    assert!(logs.flush());
    // A flush does not wait for a lossy sink: wait here for it to work through its queue.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let lossy = |logs: &LogAggregator| logs.stats().sinks[0].clone();
    while lossy(&logs).written + lossy(&logs).dropped < 5_000 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let stats = logs.stats();
    assert_eq!(stats.sinks[0].written + stats.sinks[0].dropped, 5_000, "{stats:?}");
    assert_eq!((stats.sinks[1].written, stats.sinks[1].dropped), (5_000, 0));
}
