//! `tracing` events become entries through the layer.
#![cfg(feature = "tracing")]

use infra_log::{FieldValue, LogAggregator, LogLayer, MemorySink};
use tracing_subscriber::layer::SubscriberExt;

#[test]
fn tracing_events_arrive_with_typed_fields() {
    let memory = MemorySink::new(10);
    let logs = LogAggregator::builder("svc").directives("info,chatty=warn").sink(memory.clone()).build().unwrap();
    let subscriber = tracing_subscriber::registry().with(LogLayer::new(logs.clone()));
    tracing::subscriber::with_default(subscriber, || {
        let error = std::io::Error::other("boom");
        tracing::info!(target: "orders", qty = 5u64, price = 1.5, ok = true, venue = "XLON", "order accepted");
        tracing::warn!(target: "orders", error = &error as &(dyn std::error::Error + 'static), "order failed");
        tracing::info!(target: "chatty", "kept out by the directives");
    });
    assert!(logs.flush());
    let entries = memory.entries();
    assert_eq!(entries.len(), 2);
    assert_eq!((entries[0].component.as_ref(), entries[0].message.as_ref()), ("orders", "order accepted"));
    assert_eq!(entries[0].field("qty"), Some(&FieldValue::U64(5)));
    assert_eq!(entries[0].field("price"), Some(&FieldValue::F64(1.5)));
    assert_eq!(entries[0].field("ok"), Some(&FieldValue::Bool(true)));
    assert_eq!(entries[0].field("venue"), Some(&FieldValue::Str("XLON".into())));
    assert_eq!(entries[1].field("error"), Some(&FieldValue::Error("boom".into())));
}
