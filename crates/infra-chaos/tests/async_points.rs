//! Async points: latency is a timer, so many tasks crossing a slow point wait together.

use std::time::{Duration, Instant};

use infra_chaos::{ChaosEngine, ChaosError, Experiment, Fault, LatencyProfile, Target};

async fn fetch_quote() -> Result<u32, ChaosError> {
    infra_chaos::point_async!("pricing.quote").await?;
    Ok(42)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_tasks_cross_a_100ms_point_in_about_100ms() -> Result<(), Box<dyn std::error::Error>> {
    let engine = ChaosEngine::builder().build()?;
    let slow = engine.create_experiment(Experiment::new(
        Target::point("pricing.quote"),
        Fault::Latency(LatencyProfile::Fixed(Duration::from_millis(100))),
    ))?;
    engine.start_experiment(slow)?;

    let started = Instant::now();
    let tasks: Vec<_> = (0..1000).map(|_| tokio::spawn(engine.scope_future(fetch_quote()))).collect();
    for task in tasks {
        assert_eq!(task.await??, 42);
    }
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(100), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(400), "latency must not block workers: {elapsed:?}");
    let results = engine.results(slow).unwrap();
    assert_eq!((results.injections, results.latency_added), (1000, Duration::from_secs(100)));
    Ok(())
}

#[tokio::test]
async fn instrumented_futures_fail_without_being_polled() -> Result<(), Box<dyn std::error::Error>> {
    let engine = ChaosEngine::builder().build()?;
    let id = engine.create_experiment(Experiment::new(Target::point("orders.send"), Fault::Error))?;
    engine.start_experiment(id)?;
    let polled = std::sync::atomic::AtomicBool::new(false);
    let result =
        engine.instrument("orders.send", async { polled.store(true, std::sync::atomic::Ordering::Relaxed) }).await;
    assert!(result.is_err());
    assert!(!polled.load(std::sync::atomic::Ordering::Relaxed));
    engine.stop_experiment(id)?;
    assert!(engine.instrument("orders.send", async { 5 }).await.is_ok());
    // Unscoped async points use the global engine, which runs nothing.
    assert_eq!(fetch_quote().await?, 42);
    Ok(())
}
