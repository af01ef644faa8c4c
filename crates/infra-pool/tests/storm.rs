//! Cancellation storms and stress: acquires dropped at random points must leave the books exact.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{TestManager, assert_balanced};
use infra_pool::{BlockingPool, HealthCheck, Pool};
use rand::Rng;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_acquires_dropped_at_random_points_leak_nothing() -> Result<(), Box<dyn std::error::Error>> {
    let manager = TestManager::new();
    // Every manager call yields, so a cancellation can land inside a create or a check too.
    manager.script.yields.store(true, Ordering::Relaxed);
    manager.script.create_delay_micros.store(50, Ordering::Relaxed);
    let pool = Pool::builder(manager.clone())
        .max_size(4)
        .health_check(HealthCheck::Always)
        .maintenance_interval(Duration::from_millis(5))
        .min_idle(2)
        .build()?;

    // In waves of 250 concurrent acquires, so that some are served and some give up while queued.
    let mut tasks = Vec::with_capacity(250);
    for n in 0..10_000u32 {
        let pool = pool.clone();
        let (deadline, hold, fate) = {
            let mut rng = rand::rng();
            let deadline = match rng.random_range(0..10) {
                0..=2 => Duration::MAX, // only an abort stops these
                _ => Duration::from_micros(rng.random_range(0..2_000)),
            };
            (deadline, rng.random_range(0..4u32), rng.random_range(0..100u32))
        };
        let task = tokio::spawn(async move {
            let acquire = async {
                let mut conn = pool.get().await?;
                for _ in 0..hold {
                    tokio::task::yield_now().await;
                }
                match fate {
                    0..=2 => conn.mark_broken(),
                    3 => drop(conn.detach()),
                    _ => {}
                }
                Ok::<(), infra_pool::PoolError<std::io::Error>>(())
            };
            // Either outcome is fine; what matters is what is left behind.
            let _ = tokio::time::timeout(deadline, acquire).await;
        });
        if n % 7 == 0 {
            task.abort();
        }
        tasks.push(task);
        if tasks.len() == 250 {
            for task in tasks.drain(..) {
                let _ = task.await;
            }
        }
    }
    for task in tasks {
        let _ = task.await;
    }
    // Let a maintenance pass that was mid-flight finish.
    tokio::time::sleep(Duration::from_millis(20)).await;

    let stats = pool.stats();
    eprintln!("after the storm: {stats:#?}");
    assert_balanced(&stats);
    assert!(stats.cancelled > 0 && stats.waited > 0, "the storm exercised the queue: {stats:#?}");
    assert!(stats.closed_broken > 0 && stats.detached > 0, "{stats:#?}");
    // Every slot is usable: the full pool can be held at once, without waiting.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(pool.get_timeout(Duration::from_secs(1)).await?);
    }
    assert_eq!(pool.stats().in_use, 4);
    drop(held);
    pool.close(Duration::from_secs(1)).await?;
    let stats = pool.stats();
    assert_eq!((stats.size, stats.idle), (0, 0));
    assert_eq!(stats.creates, stats.closed + stats.detached, "{stats:#?}");
    Ok(())
}

#[test]
fn threads_hammering_a_blocking_pool_with_short_timeouts_leak_nothing() -> Result<(), Box<dyn std::error::Error>> {
    let manager = TestManager::new();
    let pool = BlockingPool::builder(manager)
        .max_size(3)
        .maintenance_interval(Duration::from_millis(2))
        .min_idle(1)
        .build()?;
    std::thread::scope(|scope| {
        for _ in 0..8 {
            let pool = pool.clone();
            scope.spawn(move || {
                let mut rng = rand::rng();
                for _ in 0..2_000 {
                    let timeout = Duration::from_micros(rng.random_range(1..200));
                    if let Ok(mut conn) = pool.get_timeout(timeout) {
                        if rng.random_range(0..50) == 0 {
                            conn.mark_broken();
                        }
                        if rng.random_range(0..4) == 0 {
                            std::thread::yield_now();
                        }
                    }
                }
            });
        }
    });
    std::thread::sleep(Duration::from_millis(10));
    let stats = pool.stats();
    assert_balanced(&stats);
    assert!(stats.acquisitions > 1000 && stats.waited > 0, "{stats:#?}");
    let held: Vec<_> = (0..3).map(|_| pool.get_timeout(Duration::from_secs(1))).collect::<Result<_, _>>()?;
    assert_eq!(pool.stats().in_use, 3);
    drop(held);
    Ok(())
}
