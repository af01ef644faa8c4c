//! Async single flight, warming, refresh-ahead and warm restart.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use infra_cache::{Cache, LoadError};
use quanta::Clock;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_misses_on_one_key_await_one_load() {
    let cache: Cache<u64, u64> = Cache::new(100);
    let loads = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (cache, loads) = (cache.clone(), Arc::clone(&loads));
            tokio::spawn(async move {
                cache
                    .get_or_insert_async(9, async {
                        loads.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        99
                    })
                    .await
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 99);
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    assert_eq!(cache.stats().loads, 1);
}

#[derive(Debug, thiserror::Error)]
#[error("upstream timed out")]
struct Timeout;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_async_loader_wakes_its_waiters() {
    let cache: Cache<u64, u64> = Cache::new(100);
    let started = Arc::new(tokio::sync::Notify::new());
    let leader = {
        let (cache, started) = (cache.clone(), Arc::clone(&started));
        tokio::spawn(async move {
            cache
                .try_get_or_insert_async(1, async {
                    started.notify_one();
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    Ok::<_, Timeout>(1)
                })
                .await
        })
    };
    started.notified().await;
    let follower = {
        let cache = cache.clone();
        tokio::spawn(async move { cache.try_get_or_insert_async(1, async { Ok::<_, Timeout>(2) }).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    leader.abort();
    let outcome = tokio::time::timeout(Duration::from_secs(10), follower).await.expect("the waiter was woken").unwrap();
    // The follower either joined the flight (and hears it was abandoned) or came after it and loaded.
    assert!(matches!(outcome, Err(LoadError::Abandoned) | Ok(2)), "{outcome:?}");
    // Nothing is left in flight: a new call loads.
    let value = cache.try_get_or_insert_async(1, async { Ok::<_, Timeout>(3) }).await.unwrap();
    assert!(value == 2 || value == 3, "{value}");
}

#[tokio::test]
async fn async_failures_are_shared_and_not_cached() {
    let cache: Cache<&'static str, u64> = Cache::new(10);
    let error = cache.try_get_or_insert_async("quote", async { Err::<u64, _>(Timeout) }).await.unwrap_err();
    assert!(error.downcast_ref::<Timeout>().is_some());
    assert_eq!(cache.try_get_or_insert_async("quote", async { Ok::<_, Timeout>(5) }).await.unwrap(), 5);
}

#[test]
fn warming_runs_at_start_on_demand_and_on_schedule() {
    let (clock, mock) = Clock::mock();
    let round = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&round);
    let cache: Cache<u64, u64> = Cache::builder()
        .max_capacity(100)
        .clock(clock)
        .warming_task(move || {
            let round = counter.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>((0..10).map(|key| (key, round)).collect())
        })
        .warm_every(Duration::from_secs(60))
        .build()
        .unwrap();
    assert_eq!(cache.get(&3), Some(0), "warmed when built");
    cache.add_warming_task(|| Err::<Vec<(u64, u64)>, _>(std::io::Error::other("reference data unavailable")));
    cache.add_warming_task(|| -> Result<Vec<(u64, u64)>, std::io::Error> { panic!("task bug") });

    let report = cache.warm();
    assert_eq!((report.tasks_run, report.entries), (3, 10));
    assert_eq!(report.failures.len(), 2);
    assert!(report.failures[0].contains("reference data unavailable"), "{:?}", report.failures);
    assert!(report.failures[1].contains("panicked"), "{:?}", report.failures);
    assert_eq!(cache.get(&3), Some(1));

    cache.run_pending_maintenance();
    assert_eq!(cache.get(&3), Some(1), "not due yet");
    mock.increment(Duration::from_secs(60));
    cache.run_pending_maintenance();
    assert_eq!(cache.get(&3), Some(2), "due: warmed again");
    let stats = cache.stats();
    assert_eq!(stats.warmed_entries, 30);
    assert_eq!(stats.warming_failures, 4);
}

#[test]
fn refresh_ahead_keeps_a_hot_key_from_ever_missing() {
    let (clock, mock) = Clock::mock();
    let version = Arc::new(AtomicU64::new(0));
    let source = Arc::clone(&version);
    let cache: Cache<&'static str, u64> = Cache::builder()
        .max_capacity(100)
        .clock(clock)
        .time_to_live(Duration::from_secs(10))
        .refresh_ahead(Duration::from_secs(2), move |_key: &&str| {
            Ok::<_, std::io::Error>(source.load(Ordering::SeqCst))
        })
        .build()
        .unwrap();
    cache.insert("EURUSD", 0);
    for second in 1..=60u64 {
        mock.increment(Duration::from_secs(1));
        version.store(second, Ordering::SeqCst);
        let value = cache.get("EURUSD").unwrap_or_else(|| panic!("missed at second {second}"));
        // A read at 8 seconds of age or more has queued a reload; like a service's next read a moment
        // later, wait (on the real clock, bounded) for the refresher to land it.
        if second - value >= 8 {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while cache.get("EURUSD").is_some_and(|value| second - value >= 8) {
                assert!(std::time::Instant::now() < deadline, "the refresh never landed (second {second})");
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    let stats = cache.stats();
    assert!(stats.refreshes >= 6, "{stats:?}");
    assert_eq!(stats.misses, 0);
    assert_eq!(stats.refreshes_dropped, 0);
}

#[test]
fn background_threads_let_the_cache_go() {
    let (clock, _mock) = Clock::mock();
    let token = Arc::new(());
    let held = Arc::clone(&token);
    let cache: Cache<u64, u64> = Cache::builder()
        .max_capacity(10)
        .clock(clock)
        .time_to_live(Duration::from_secs(10))
        .warm_every(Duration::from_secs(60))
        .refresh_ahead(Duration::from_secs(1), move |key: &u64| {
            let _ = &held;
            Ok::<_, std::io::Error>(*key)
        })
        .build()
        .unwrap();
    cache.insert(1, 1);
    drop(cache);
    // The refresher's loader holds `token`: it is dropped once the cache and its threads let go.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while Arc::strong_count(&token) > 1 {
        assert!(std::time::Instant::now() < deadline, "a background thread kept the cache alive");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[cfg(feature = "persist")]
#[test]
fn the_hot_set_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hot.jsonl");
    let before: Cache<String, u64> = Cache::builder().max_capacity(1_000).shards(1).build().unwrap();
    for key in 0..200u64 {
        before.insert(format!("k{key}"), key);
    }
    for _ in 0..3 {
        for key in 0..20u64 {
            before.get(&format!("k{key}"));
        }
    }
    assert_eq!(before.save_hot_set(&path, 50).unwrap(), 50);
    let after: Cache<String, u64> = Cache::new(1_000);
    assert_eq!(after.load_hot_set(&path).unwrap(), 50);
    for key in 0..20u64 {
        assert_eq!(after.get(&format!("k{key}")), Some(key), "hot key k{key} restored");
    }

    let keys_path = dir.path().join("keys.jsonl");
    assert_eq!(before.save_hot_keys(&keys_path, 20).unwrap(), 20);
    let reloaded: Cache<String, u64> = Cache::new(1_000);
    let report = reloaded.load_hot_keys(&keys_path, |key: &String| key[1..].parse::<u64>().map(|n| n * 10)).unwrap();
    assert_eq!((report.loaded, report.failed), (20, 0));
    assert_eq!(reloaded.get("k3"), Some(30));

    let error = reloaded.load_hot_set(&keys_path).unwrap_err();
    assert!(error.to_string().contains("holds keys"), "{error}");
    std::fs::write(&path, "not json\n").unwrap();
    let error = after.load_hot_set(&path).unwrap_err();
    assert!(error.to_string().contains(":1:"), "{error}");
}
