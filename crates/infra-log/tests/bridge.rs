//! The `log` facade reports into the aggregator (its own test binary: the logger is per process).
#![cfg(feature = "log")]

use infra_log::{FieldValue, LogAggregator, LogBridge, MemorySink};

#[test]
fn log_macros_reach_the_sinks_with_their_source_location() {
    let memory = MemorySink::new(10);
    let logs = LogAggregator::builder("svc").directives("info,noisy=error").sink(memory.clone()).build().unwrap();
    LogBridge::install(logs.clone(), log::LevelFilter::Trace).unwrap();
    log::info!(target: "orders", "accepted order {}", 42);
    log::warn!(target: "noisy", "kept out by the directives");
    log::debug!(target: "orders", "below info");
    log::logger().flush();
    let entries = memory.entries();
    assert_eq!(entries.len(), 1);
    assert_eq!((entries[0].component.as_ref(), entries[0].message.as_ref()), ("orders", "accepted order 42"));
    assert!(matches!(entries[0].field("code.lineno"), Some(FieldValue::U64(_))));
}
