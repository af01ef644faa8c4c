//! Transactions timed on a mock clock: durations, outcomes, the closure and future wrappers.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use infra_apm::Collector;
use quanta::Clock;

fn collector() -> (Collector, Arc<quanta::Mock>) {
    let (clock, mock) = Clock::mock();
    (Collector::builder("svc").clock(clock).build(), mock)
}

#[test]
fn a_guard_times_and_counts() {
    let (collector, mock) = collector();
    for millis in [1, 2, 3, 4, 100] {
        let timer = collector.start_transaction("place_order").unwrap();
        mock.increment(Duration::from_millis(millis));
        drop(timer);
    }
    let handle = collector.transaction("place_order").unwrap();
    let mut failed = handle.start();
    mock.increment(Duration::from_millis(5));
    failed.fail();
    assert_eq!(failed.finish(), Duration::from_millis(5));

    let stats = collector.transaction_stats("place_order").unwrap();
    assert_eq!((stats.count, stats.errors), (6, 1));
    assert!((stats.error_rate - 1.0 / 6.0).abs() < 1e-12);
    assert!((stats.latency.p50 - 0.003).abs() <= 0.003 * infra_apm::RELATIVE_ERROR, "{:?}", stats.latency);
    assert!((stats.latency.max - 0.1).abs() < 1e-9);
    assert_eq!(collector.transaction_stats("never"), None);
    let text = collector.render_prometheus();
    assert!(text.contains("transactions_total{outcome=\"error\",transaction=\"place_order\"} 1"), "{text}");
    assert!(text.contains("transaction_duration_seconds_count{transaction=\"place_order\"} 6"), "{text}");
}

#[test]
fn wrappers_count_errors_and_panics() {
    let (collector, mock) = collector();
    let value = collector
        .time("price", || {
            mock.increment(Duration::from_micros(250));
            42
        })
        .unwrap();
    assert_eq!(value, 42);
    let failed: Result<u8, &str> = collector.time_result("price", || Err("stale quote")).unwrap();
    assert!(failed.is_err());
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        collector.time("price", || panic!("bug")).unwrap();
    }));
    assert!(panicked.is_err());
    collector.record_transaction("price", Duration::from_millis(1), true).unwrap();
    let stats = collector.transaction_stats("price").unwrap();
    assert_eq!((stats.count, stats.errors), (4, 2));
    // A transaction name is a label value: any text will do.
    drop(collector.start_transaction("name with \"quotes\" and spaces").unwrap());
}

struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

fn block_on<F: Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::park();
    }
}

#[test]
fn futures_are_timed_to_completion_and_dropped_ones_count_as_errors() {
    let (collector, mock) = collector();
    let output = block_on(collector.time_future("fetch", async {
        mock.increment(Duration::from_millis(7));
        "done"
    }))
    .unwrap();
    assert_eq!(output, "done");
    {
        // Polled once, then dropped before completing.
        let mut future = Box::pin(collector.time_future("fetch", std::future::pending::<()>()));
        let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
        assert!(future.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
    }
    let stats = collector.transaction_stats("fetch").unwrap();
    assert_eq!((stats.count, stats.errors), (2, 1));
    assert!((stats.latency.max - 0.007).abs() <= 0.007 * infra_apm::RELATIVE_ERROR);
}
