//! The blocking pool: the same rules as the async one, with parked threads.

mod common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{TestManager, assert_balanced};
use infra_pool::{BlockingPool, BlockingPoolBuilder, BuildError, HealthCheck, PoolError};

fn builder(manager: &TestManager) -> BlockingPoolBuilder<TestManager> {
    BlockingPool::builder(manager.clone()).max_size(2).maintenance_interval(Duration::from_secs(3600))
}

/// Waits (briefly) until the pool reports `waiters` queued.
fn until_waiting(pool: &BlockingPool<TestManager>, waiters: usize) {
    let started = Instant::now();
    while pool.stats().waiters < waiters {
        assert!(started.elapsed() < Duration::from_secs(5), "waiters never queued");
        std::thread::yield_now();
    }
}

#[test]
fn threads_are_served_in_arrival_order() -> Result<(), Box<dyn std::error::Error>> {
    let pool = builder(&TestManager::new()).max_size(1).build()?;
    let held = pool.get()?;
    let order = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|scope| {
        for n in 0..8 {
            let (queued, order) = (pool.clone(), Arc::clone(&order));
            scope.spawn(move || {
                let _conn = queued.get().expect("served");
                order.lock().unwrap().push(n);
            });
            until_waiting(&pool, n + 1);
        }
        drop(held);
    });
    assert_eq!(*order.lock().unwrap(), (0..8).collect::<Vec<_>>());
    assert_balanced(&pool.stats());
    Ok(())
}

#[test]
fn connect_errors_come_back_at_once_and_timeouts_say_why() -> Result<(), Box<dyn std::error::Error>> {
    let manager = TestManager::new();
    let pool = builder(&manager).max_size(1).build()?;
    manager.script.fail_creates.store(true, Ordering::Relaxed);
    let started = Instant::now();
    match pool.get() {
        Err(PoolError::Create(err)) => assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused),
        other => panic!("expected the connect error, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(1));

    manager.script.fail_creates.store(false, Ordering::Relaxed);
    let held = pool.get()?;
    match pool.get_timeout(Duration::from_millis(20)) {
        Err(PoolError::Timeout { waited, in_use: 1, max_size: 1, last_create_error: None }) => {
            assert!(waited >= Duration::from_millis(20), "{waited:?}");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    drop(held);
    let stats = pool.stats();
    assert_eq!((stats.timeouts, stats.cancelled, stats.create_failures), (1, 1, 1));
    assert_balanced(&stats);
    Ok(())
}

#[test]
fn retries_back_off_within_the_deadline() -> Result<(), Box<dyn std::error::Error>> {
    let manager = TestManager::new();
    manager.script.fail_creates.store(true, Ordering::Relaxed);
    let pool = builder(&manager)
        .create_retries(3, Duration::from_millis(10))
        .acquire_timeout(Duration::from_secs(5))
        .build()?;
    let started = Instant::now();
    assert!(matches!(pool.get(), Err(PoolError::Create(_))));
    // 10 + 20 + 40 ms of backoff between four attempts.
    assert!(started.elapsed() >= Duration::from_millis(70), "{:?}", started.elapsed());
    assert_eq!(pool.stats().create_failures, 4);
    Ok(())
}

#[test]
fn health_checks_and_lifetimes_work_as_in_the_async_pool() -> Result<(), Box<dyn std::error::Error>> {
    let (clock, time) = quanta::Clock::mock();
    let manager = TestManager::new();
    let pool = builder(&manager)
        .clock(clock)
        .health_check(HealthCheck::IdleLongerThan(Duration::from_secs(1)))
        .max_lifetime(Duration::from_secs(10))
        .min_idle(1)
        .build()?;
    pool.run_maintenance();
    assert_eq!(pool.stats().idle, 1);
    time.increment(Duration::from_secs(2));
    manager.script.fail_validates.store(true, Ordering::Relaxed);
    let conn = pool.get()?;
    assert_eq!(conn.id, 1, "the stale one failed its check and was replaced");
    manager.script.fail_validates.store(false, Ordering::Relaxed);
    drop(conn);
    time.increment(Duration::from_secs(10));
    pool.run_maintenance();
    let stats = pool.stats();
    assert_eq!((stats.failed_health_checks, stats.closed_by_lifetime, stats.idle), (1, 1, 1), "{stats:#?}");
    assert_balanced(&stats);
    Ok(())
}

#[test]
fn close_wakes_waiters_and_closes_returns() -> Result<(), Box<dyn std::error::Error>> {
    let closed = Arc::new(Mutex::new(0));
    let pool = builder(&TestManager::new())
        .max_size(1)
        .on_destroy({
            let closed = Arc::clone(&closed);
            move |_| *closed.lock().unwrap() += 1
        })
        .build()?;
    let held = pool.get()?;
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| pool.get().map(|_| ()));
        until_waiting(&pool, 1);
        let closer = scope.spawn(|| pool.close(Duration::from_secs(5)));
        assert!(matches!(waiter.join().unwrap(), Err(PoolError::Closed)));
        drop(held);
        closer.join().unwrap().expect("closed once the connection came back");
    });
    assert_eq!(*closed.lock().unwrap(), 1);
    assert!(matches!(pool.get(), Err(PoolError::Closed)));
    Ok(())
}

#[test]
fn bad_settings_are_refused() {
    let manager = TestManager::new();
    assert_eq!(builder(&manager).max_size(0).build().err(), Some(BuildError::ZeroMaxSize));
    assert_eq!(
        builder(&manager).create_timeout(Duration::ZERO).build().err(),
        Some(BuildError::ZeroDuration { setting: "create_timeout" })
    );
    assert_eq!(
        builder(&manager).health_check(HealthCheck::IdleLongerThan(Duration::ZERO)).build().err().map(|e| e.to_string()),
        Some("health_check(HealthCheck::IdleLongerThan) is zero: give it a positive duration (or None, where the setting allows, to turn it off)".to_owned())
    );
}

#[test]
fn a_dropped_pool_stops_its_thread_and_closes_idle_connections() -> Result<(), Box<dyn std::error::Error>> {
    let closed = Arc::new(Mutex::new(0));
    let pool = builder(&TestManager::new())
        .min_idle(2)
        .maintenance_interval(Duration::from_millis(1))
        .on_destroy({
            let closed = Arc::clone(&closed);
            move |_| *closed.lock().unwrap() += 1
        })
        .build()?;
    let started = Instant::now();
    while pool.stats().idle < 2 {
        assert!(started.elapsed() < Duration::from_secs(5), "never warmed");
        std::thread::yield_now();
    }
    drop(pool);
    let started = Instant::now();
    while *closed.lock().unwrap() < 2 {
        assert!(started.elapsed() < Duration::from_secs(5), "idle connections not closed on drop");
        std::thread::yield_now();
    }
    Ok(())
}
