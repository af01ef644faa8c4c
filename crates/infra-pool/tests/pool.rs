//! The async pool's behaviour: reuse, fairness, errors, timing rules, close, panics, bad input.

mod common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{TestManager, assert_balanced};
use infra_pool::{BuildError, CloseError, HealthCheck, Pool, PoolBuilder, PoolError, Pooled};

fn builder(manager: &TestManager) -> PoolBuilder<TestManager> {
    Pool::builder(manager.clone())
        .max_size(4)
        .acquire_timeout(Duration::from_secs(5))
        // Tests run maintenance by hand.
        .maintenance_interval(Duration::from_secs(3600))
}

#[tokio::test]
async fn reuses_the_most_recently_returned_connection() -> Result<(), Box<dyn std::error::Error>> {
    let manager = TestManager::new();
    let pool = builder(&manager).build()?;
    let a = pool.get().await?;
    let b = pool.get().await?;
    assert_eq!((a.id, b.id), (0, 1));
    drop(a);
    drop(b);
    assert_eq!(pool.get().await?.id, 1, "last returned, first reused");
    let stats = pool.stats();
    assert_eq!((stats.creates, stats.acquisitions, stats.recycles), (2, 3, 3));
    assert_balanced(&stats);
    Ok(())
}

#[tokio::test]
async fn waiters_are_served_first_come_first_served() -> Result<(), Box<dyn std::error::Error>> {
    let manager = TestManager::new();
    let pool = builder(&manager).max_size(1).build()?;
    let held = pool.get().await?;
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for n in 0..20 {
        let (pool, order) = (pool.clone(), Arc::clone(&order));
        tasks.push(tokio::spawn(async move {
            let conn = pool.get().await.expect("served");
            order.lock().unwrap().push(n);
            tokio::task::yield_now().await;
            drop(conn);
        }));
        // Let this task queue before the next one starts (single-threaded runtime).
        tokio::task::yield_now().await;
    }
    assert_eq!(pool.stats().waiters, 20);
    // A latecomer arriving while the queue is full must not overtake it.
    let late = {
        let (pool, order) = (pool.clone(), Arc::clone(&order));
        tokio::spawn(async move {
            let _conn = pool.get().await.expect("served");
            order.lock().unwrap().push(99);
        })
    };
    tokio::task::yield_now().await;
    drop(held);
    for task in tasks {
        task.await?;
    }
    late.await?;
    let expected: Vec<i32> = (0..20).chain([99]).collect();
    assert_eq!(*order.lock().unwrap(), expected);
    let stats = pool.stats();
    assert_eq!((stats.waited, stats.max_waiters, stats.creates), (21, 21, 1));
    assert_balanced(&stats);
    Ok(())
}

#[tokio::test]
async fn an_unreachable_database_reports_its_own_error_at_once() -> Result<(), Box<dyn std::error::Error>> {
    let manager = TestManager::new();
    manager.script.fail_creates.store(true, Ordering::Relaxed);
    manager.script.create_delay_micros.store(20_000, Ordering::Relaxed);
    let pool = builder(&manager).max_size(2).acquire_timeout(Duration::from_secs(30)).build()?;
    let started = std::time::Instant::now();
    // More acquirers than slots: those queued behind failing attempts get slots of their own and fail with
    // the real error too, instead of waiting out the 30 s timeout.
    let attempts: Vec<_> = (0..6)
        .map(|_| {
            tokio::spawn({
                let pool = pool.clone();
                async move { pool.get().await.map(|_| ()) }
            })
        })
        .collect();
    for attempt in attempts {
        match attempt.await? {
            Err(PoolError::Create(err)) => assert!(err.to_string().contains("connection refused"), "{err}"),
            other => panic!("expected the connect error, got {other:?}"),
        }
    }
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    let stats = pool.stats();
    assert_eq!((stats.size, stats.create_failures, stats.creates), (0, 6, 0));

    // A timeout while attempts fail names the last failure.
    manager.script.create_delay_micros.store(0, Ordering::Relaxed);
    manager.script.fail_creates.store(false, Ordering::Relaxed);
    let _a = pool.get().await?;
    let _b = pool.get().await?;
    manager.script.fail_creates.store(true, Ordering::Relaxed);
    match pool.get_timeout(Duration::from_millis(20)).await {
        Err(error @ PoolError::Timeout { .. }) => {
            // The last attempt succeeded, so no failure is pinned on this timeout.
            assert!(!error.to_string().contains("failed"), "{error}");
            assert!(error.is_timeout());
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn a_timeout_after_failing_attempts_says_why() -> Result<(), Box<dyn std::error::Error>> {
    let manager = TestManager::new();
    let pool = builder(&manager).max_size(1).build()?;
    let held = pool.get().await?;
    manager.script.fail_creates.store(true, Ordering::Relaxed);
    held.detach(); // the slot is free again; the next acquire opens a connection and fails
    assert!(matches!(pool.get().await, Err(PoolError::Create(_))));
    manager.script.fail_creates.store(false, Ordering::Relaxed);
    let _held = pool.get().await?;
    manager.script.fail_creates.store(true, Ordering::Relaxed);
    let _ = pool.get_timeout(Duration::from_millis(1)).await; // times out: the only connection is held
    // The success cleared the remembered failure: the timeout is plain.
    match pool.get_timeout(Duration::from_millis(5)).await {
        Err(PoolError::Timeout { last_create_error: None, in_use: 1, max_size: 1, .. }) => {}
        other => panic!("expected a plain timeout, got {other:?}"),
    }
    assert_eq!(pool.stats().timeouts, 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_on_the_pool_timeout_and_on_their_own_all_time_out_in_time() -> Result<(), Box<dyn std::error::Error>> {
    let pool = builder(&TestManager::new()).max_size(1).acquire_timeout(Duration::from_millis(40)).build()?;
    let held = pool.get().await?;
    let started = std::time::Instant::now();
    let waiters: Vec<_> = (0..6u64)
        .map(|n| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let result = if n % 3 == 2 {
                    pool.get_timeout(Duration::from_millis(60)).await // a timer of its own, mid-queue
                } else {
                    pool.get().await // timed out by the pool's expiry task
                };
                (result.map(|_| ()), started.elapsed())
            })
        })
        .collect();
    for (n, waiter) in waiters.into_iter().enumerate() {
        let (result, elapsed) = waiter.await?;
        assert!(matches!(result, Err(PoolError::Timeout { in_use: 1, .. })), "{result:?}");
        let floor = if n % 3 == 2 { 60 } else { 40 };
        assert!(elapsed >= Duration::from_millis(floor) && elapsed < Duration::from_secs(2), "waiter {n}: {elapsed:?}");
    }
    let stats = pool.stats();
    assert_eq!((stats.timeouts, stats.waiters), (6, 0));
    drop(held);
    // The expiry task goes back to sleep and wakes for the next queue.
    let held = pool.get().await?;
    assert!(matches!(pool.get().await, Err(PoolError::Timeout { .. })));
    drop(held);
    assert_balanced(&pool.stats());
    Ok(())
}

#[tokio::test]
async fn lifetime_and_idleness_follow_the_injected_clock() -> Result<(), Box<dyn std::error::Error>> {
    let (clock, time) = quanta::Clock::mock();
    let manager = TestManager::new();
    let pool = builder(&manager)
        .clock(clock)
        .min_idle(1)
        .idle_timeout(Duration::from_secs(10))
        .max_lifetime(Duration::from_secs(60))
        .health_check(HealthCheck::Never)
        .build()?;
    pool.run_maintenance().await; // warms min_idle
    assert_eq!(pool.stats().idle, 1);
    let conns: Vec<Pooled<_>> = vec![pool.get().await?, pool.get().await?, pool.get().await?];
    drop(conns);
    assert_eq!(pool.stats().idle, 3);

    time.increment(Duration::from_secs(9));
    pool.run_maintenance().await;
    assert_eq!(pool.stats().closed_by_idleness, 0, "not idle long enough yet");
    time.increment(Duration::from_secs(1));
    pool.run_maintenance().await;
    let stats = pool.stats();
    assert_eq!((stats.closed_by_idleness, stats.idle), (2, 1), "idleness keeps min_idle: {stats:#?}");

    // The survivor was created at 0; at 60 s it is too old, and maintenance replaces it.
    time.increment(Duration::from_secs(50));
    pool.run_maintenance().await;
    let stats = pool.stats();
    assert_eq!((stats.closed_by_lifetime, stats.idle, stats.creates), (1, 1, 4), "{stats:#?}");

    // A connection in use past its lifetime is closed on return, not reused.
    let conn = pool.get().await?;
    time.increment(Duration::from_secs(61));
    drop(conn);
    let stats = pool.stats();
    assert_eq!((stats.closed_by_lifetime, stats.size), (2, 0));
    assert_balanced(&stats);
    Ok(())
}

#[tokio::test]
async fn health_checks_follow_the_policy() -> Result<(), Box<dyn std::error::Error>> {
    let (clock, time) = quanta::Clock::mock();
    let manager = TestManager::new();
    let validates = || manager.script.validates.load(Ordering::Relaxed);
    let pool = builder(&manager).clock(clock.clone()).health_check(HealthCheck::Always).build()?;
    drop(pool.get().await?); // new connections are not validated
    drop(pool.get().await?);
    drop(pool.get().await?);
    assert_eq!(validates(), 2);

    let pool =
        builder(&manager).clock(clock).health_check(HealthCheck::IdleLongerThan(Duration::from_secs(5))).build()?;
    drop(pool.get().await?);
    drop(pool.get().await?);
    assert_eq!(validates(), 2, "recently used: not checked");
    time.increment(Duration::from_secs(5));
    drop(pool.get().await?);
    assert_eq!(validates(), 3, "idle 5 s: checked");

    // A failed check replaces the connection in the acquirer's slot.
    time.increment(Duration::from_secs(5));
    manager.script.fail_validates.store(true, Ordering::Relaxed);
    let conn = pool.get().await?;
    assert_eq!(conn.id, 2, "a fresh connection (ids count across both pools)");
    drop(conn);
    let stats = pool.stats();
    assert_eq!((stats.failed_health_checks, stats.creates, stats.size), (1, 2, 1));
    assert_balanced(&stats);
    Ok(())
}

#[tokio::test]
async fn periodic_checks_replace_dead_idle_connections() -> Result<(), Box<dyn std::error::Error>> {
    let (clock, time) = quanta::Clock::mock();
    let manager = TestManager::new();
    let pool = builder(&manager)
        .clock(clock)
        .min_idle(2)
        .health_check(HealthCheck::Never)
        .health_check_interval(Duration::from_secs(30))
        .build()?;
    pool.run_maintenance().await;
    assert_eq!(pool.stats().idle, 2);
    time.increment(Duration::from_secs(30));
    manager.script.fail_validates.store(true, Ordering::Relaxed);
    pool.run_maintenance().await;
    let stats = pool.stats();
    assert_eq!((stats.failed_health_checks, stats.idle, stats.creates), (2, 2, 4), "{stats:#?}");
    manager.script.fail_validates.store(false, Ordering::Relaxed);
    time.increment(Duration::from_secs(30));
    pool.run_maintenance().await;
    assert_eq!(manager.script.validates.load(Ordering::Relaxed), 4);
    assert_eq!(pool.stats().creates, 4, "healthy connections are kept");
    Ok(())
}

#[tokio::test]
async fn broken_marked_and_detached_connections_leave_the_pool() -> Result<(), Box<dyn std::error::Error>> {
    let manager = TestManager::new();
    let pool = builder(&manager).max_size(2).build()?;
    let conn = pool.get().await?;
    conn.broken.store(true, Ordering::Relaxed); // the driver notices, say, a closed socket
    drop(conn);
    let mut conn = pool.get().await?;
    assert_eq!(conn.id, 1);
    conn.mark_broken();
    drop(conn);
    let conn = pool.get().await?;
    let kept = conn.detach();
    assert_eq!(kept.id, 2);
    let stats = pool.stats();
    assert_eq!((stats.closed_broken, stats.detached, stats.size, stats.creates), (2, 1, 0, 3));
    assert_balanced(&stats);

    // A connection that breaks while idle is found on checkout, without a health check.
    let conn = pool.get().await?;
    let flag = Arc::clone(&conn.broken);
    drop(conn);
    flag.store(true, Ordering::Relaxed);
    assert_eq!(pool.get().await?.id, 4);
    assert_eq!(pool.stats().closed_broken, 3);
    Ok(())
}

#[tokio::test]
async fn close_refuses_new_work_and_closes_everything() -> Result<(), Box<dyn std::error::Error>> {
    let manager = TestManager::new();
    let cleaned = Arc::new(Mutex::new(Vec::new()));
    let pool = builder(&manager)
        .max_size(2)
        .on_destroy({
            let cleaned = Arc::clone(&cleaned);
            move |conn| cleaned.lock().unwrap().push(conn.id)
        })
        .build()?;
    let busy = pool.get().await?;
    let idle = pool.get().await?;
    drop(idle);
    assert_eq!(
        pool.close(Duration::from_millis(10)).await,
        Err(CloseError::Outstanding { in_use: 1, waited: Duration::from_millis(10) })
    );
    assert!(matches!(pool.get().await, Err(PoolError::Closed)), "so does everyone after");
    assert!(pool.is_closed());
    assert_eq!(*cleaned.lock().unwrap(), vec![1], "the idle connection was closed with the hook");
    drop(busy);
    assert_eq!(*cleaned.lock().unwrap(), vec![1, 0], "the busy one when it came back");
    assert_eq!(pool.stats().size, 0);
    pool.close(Duration::from_millis(10)).await?;
    Ok(())
}

#[tokio::test]
async fn waiters_hear_of_the_close() -> Result<(), Box<dyn std::error::Error>> {
    let pool = builder(&TestManager::new()).max_size(1).build()?;
    let held = pool.get().await?;
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(|_| ()) }
    });
    tokio::task::yield_now().await;
    assert_eq!(pool.stats().waiters, 1);
    let closing = tokio::spawn({
        let pool = pool.clone();
        async move { pool.close(Duration::from_secs(5)).await }
    });
    assert!(matches!(waiter.await?, Err(PoolError::Closed)));
    drop(held);
    closing.await??;
    assert_balanced(&pool.stats());
    Ok(())
}

#[tokio::test]
async fn close_waits_for_connections_to_come_back() -> Result<(), Box<dyn std::error::Error>> {
    let pool = builder(&TestManager::new()).build()?;
    let conn = pool.get().await?;
    let returner = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(conn);
    });
    pool.close(Duration::from_secs(5)).await?;
    returner.await?;
    let stats = pool.stats();
    assert_eq!((stats.size, stats.closed), (0, 1));
    Ok(())
}

#[tokio::test]
async fn a_panicking_manager_does_not_poison_the_pool() -> Result<(), Box<dyn std::error::Error>> {
    let manager = TestManager::new();
    let pool = builder(&manager).max_size(1).health_check(HealthCheck::Always).build()?;
    manager.script.panic_creates.store(true, Ordering::Relaxed);
    assert!(matches!(pool.get().await, Err(PoolError::ManagerPanicked(_))));
    manager.script.panic_creates.store(false, Ordering::Relaxed);
    drop(pool.get().await?);

    manager.script.panic_validates.store(true, Ordering::Relaxed);
    let conn = pool.get().await?; // the check panics: the connection is replaced
    assert_eq!(conn.id, 1);
    drop(conn);
    manager.script.panic_validates.store(false, Ordering::Relaxed);

    manager.script.panic_is_broken.store(true, Ordering::Relaxed);
    let conn = pool.get().await?; // is_broken panics on checkout: replaced again
    drop(conn); // and on return: closed
    manager.script.panic_is_broken.store(false, Ordering::Relaxed);
    let stats = pool.stats();
    assert_eq!(stats.manager_panics, 4, "{stats:#?}");
    assert_eq!(pool.get().await?.id, 3);
    assert_balanced(&pool.stats());
    Ok(())
}

#[tokio::test]
async fn bad_settings_are_refused_with_a_reason() {
    let manager = TestManager::new();
    let err = |b: PoolBuilder<TestManager>| b.build().expect_err("refused");
    assert_eq!(err(builder(&manager).max_size(0)), BuildError::ZeroMaxSize);
    assert_eq!(
        err(builder(&manager).max_size(2).min_idle(3)),
        BuildError::MinIdleAboveMax { min_idle: 3, max_size: 2 }
    );
    for (built, setting) in [
        (builder(&manager).acquire_timeout(Duration::ZERO), "acquire_timeout"),
        (builder(&manager).create_timeout(Duration::ZERO), "create_timeout"),
        (builder(&manager).health_check_timeout(Duration::ZERO), "health_check_timeout"),
        (builder(&manager).idle_timeout(Duration::ZERO), "idle_timeout"),
        (builder(&manager).max_lifetime(Duration::ZERO), "max_lifetime"),
        (builder(&manager).maintenance_interval(Duration::ZERO), "maintenance_interval"),
    ] {
        let error = err(built);
        assert_eq!(error, BuildError::ZeroDuration { setting });
        assert!(error.to_string().starts_with(setting), "{error}");
    }
    let message = err(builder(&manager).max_size(2).min_idle(3)).to_string();
    assert!(message.contains("lower min_idle or raise max_size"), "{message}");
    // None turns the time rules off.
    assert!(builder(&manager).idle_timeout(None).max_lifetime(None).build().is_ok());
}

#[test]
fn building_outside_a_runtime_is_an_error_not_a_panic() {
    let built = Pool::builder(TestManager::new()).build();
    assert_eq!(built.err(), Some(BuildError::NoRuntime));
}

#[tokio::test(start_paused = true)]
async fn min_idle_is_warmed_by_the_background_task() -> Result<(), Box<dyn std::error::Error>> {
    let manager = TestManager::new();
    let pool = Pool::builder(manager.clone()).max_size(4).min_idle(3).build()?;
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(pool.stats().idle, 3);
    // A lost connection is replaced on the next pass.
    let mut conn = pool.get().await?;
    conn.mark_broken();
    drop(conn);
    assert_eq!(pool.stats().idle, 2);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(pool.stats().idle, 3);
    Ok(())
}

#[test]
fn handles_and_futures_cross_threads() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    runtime.block_on(async {
        let pool = Pool::builder(TestManager::new()).build().unwrap();
        send_sync(&pool);
        let acquire = pool.get();
        send(&acquire);
        let conn = acquire.await.unwrap();
        send_sync(&conn);
    });
}
