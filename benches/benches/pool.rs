//! infra-pool against deadpool, bb8 and r2d2, each with a no-op manager and its default settings, with a
//! bare tokio semaphore as the floor:
//!
//! - `pool_acquire/1task`: one task acquires and drops a connection, nothing else running (async pools on
//!   a current-thread runtime; r2d2 and our blocking pool on the calling thread).
//! - `pool_contended/64x4` and `256x16`: that many tasks on a 2-worker runtime share a pool that small,
//!   each holding its connection across one yield; time per acquisition, all tasks together (the inverse
//!   is throughput).
//! - with `--bench`, before criterion: the wait each acquisition saw in the contended runs, as p50, p99
//!   and max per pool (`pool wait ...` lines): tails are what fairness is about.
//!
//! Defaults differ in what a checkout checks: deadpool calls `recycle`, bb8 and r2d2 `is_valid` on every
//! checkout; ours asks `is_broken` and the lifetime, and validates only connections idle 30 s or more.

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime;

#[derive(Debug)]
struct Noop;

impl infra_pool::Manager for Noop {
    type Connection = u64;
    type Error = std::io::Error;

    async fn create(&self) -> Result<u64, std::io::Error> {
        Ok(0)
    }
}

impl infra_pool::BlockingManager for Noop {
    type Connection = u64;
    type Error = std::io::Error;

    fn create(&self) -> Result<u64, std::io::Error> {
        Ok(0)
    }
}

impl deadpool::managed::Manager for Noop {
    type Type = u64;
    type Error = Infallible;

    async fn create(&self) -> Result<u64, Infallible> {
        Ok(0)
    }

    async fn recycle(
        &self,
        _: &mut u64,
        _: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<Infallible> {
        Ok(())
    }
}

impl bb8::ManageConnection for Noop {
    type Connection = u64;
    type Error = Infallible;

    async fn connect(&self) -> Result<u64, Infallible> {
        Ok(0)
    }

    async fn is_valid(&self, _: &mut u64) -> Result<(), Infallible> {
        Ok(())
    }

    fn has_broken(&self, _: &mut u64) -> bool {
        false
    }
}

#[derive(Debug)]
struct NoopError;

impl std::fmt::Display for NoopError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("never")
    }
}

impl std::error::Error for NoopError {}

impl r2d2::ManageConnection for Noop {
    type Connection = u64;
    type Error = NoopError;

    fn connect(&self) -> Result<u64, NoopError> {
        Ok(0)
    }

    fn is_valid(&self, _: &mut u64) -> Result<(), NoopError> {
        Ok(())
    }

    fn has_broken(&self, _: &mut u64) -> bool {
        false
    }
}

/// The pools under test, all of one size, built inside `runtime`.
struct Pools {
    infra: infra_pool::Pool<Noop>,
    deadpool: deadpool::managed::Pool<Noop>,
    bb8: bb8::Pool<Noop>,
    semaphore: Arc<tokio::sync::Semaphore>,
}

fn pools(runtime: &Runtime, size: usize) -> Pools {
    runtime.block_on(async {
        Pools {
            infra: infra_pool::Pool::builder(Noop).max_size(size).build().unwrap(),
            deadpool: deadpool::managed::Pool::builder(Noop).max_size(size).build().unwrap(),
            bb8: bb8::Pool::builder().max_size(size as u32).build(Noop).await.unwrap(),
            semaphore: Arc::new(tokio::sync::Semaphore::new(size)),
        }
    })
}

/// One acquisition by `pool`, as a future returning what to drop.
macro_rules! acquire {
    (infra, $pools:expr) => {
        $pools.infra.get().await.unwrap()
    };
    (deadpool, $pools:expr) => {
        $pools.deadpool.get().await.unwrap()
    };
    (bb8, $pools:expr) => {
        $pools.bb8.get().await.unwrap()
    };
    (semaphore, $pools:expr) => {
        $pools.semaphore.acquire().await.unwrap()
    };
}

fn single_task(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let pools = pools(&runtime, 4);
    let mut group = c.benchmark_group("pool_acquire");
    macro_rules! async_case {
        ($name:literal, $which:ident) => {
            group.bench_function(BenchmarkId::new($name, "1task"), |b| {
                b.iter_custom(|iters| {
                    runtime.block_on(async {
                        let started = Instant::now();
                        for _ in 0..iters {
                            drop(black_box(acquire!($which, pools)));
                        }
                        started.elapsed()
                    })
                })
            });
        };
    }
    async_case!("infra", infra);
    async_case!("deadpool", deadpool);
    async_case!("bb8", bb8);
    async_case!("semaphore", semaphore);

    let blocking = infra_pool::BlockingPool::builder(Noop).max_size(4).build().unwrap();
    group.bench_function(BenchmarkId::new("infra_blocking", "1task"), |b| {
        b.iter(|| black_box(blocking.get().unwrap()));
    });
    let r2d2 = r2d2::Pool::builder().max_size(4).build(Noop).unwrap();
    group.bench_function(BenchmarkId::new("r2d2", "1task"), |b| {
        b.iter(|| black_box(r2d2.get().unwrap()));
    });
    group.finish();
}

/// `tasks` tasks share `pools` until `per_task` acquisitions each are done; returns the elapsed time and,
/// when `record` is set, every acquisition's wait.
macro_rules! contended {
    ($runtime:expr, $pools:expr, $which:ident, $tasks:expr, $per_task:expr, $record:expr) => {{
        let pools = Arc::clone(&$pools);
        // One coordinator task spawns and awaits the others, so the thread calling `block_on` sleeps
        // through the run instead of waking for every finished task and taking a core from the workers.
        $runtime.block_on(async move {
            tokio::spawn(async move {
                let started = Instant::now();
                let handles: Vec<_> = (0..$tasks)
                    .map(|_| {
                        let pools = Arc::clone(&pools);
                        tokio::spawn(async move {
                            let mut waits = Vec::with_capacity(if $record { $per_task as usize } else { 0 });
                            for _ in 0..$per_task {
                                let asked = if $record { Some(Instant::now()) } else { None };
                                let held = acquire!($which, pools);
                                if let Some(asked) = asked {
                                    waits.push(asked.elapsed());
                                }
                                tokio::task::yield_now().await;
                                drop(held);
                            }
                            waits
                        })
                    })
                    .collect();
                let mut waits = Vec::new();
                for handle in handles {
                    waits.extend(handle.await.unwrap());
                }
                (started.elapsed(), waits)
            })
            .await
            .unwrap()
        })
    }};
}

fn multi_thread_runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn contention(c: &mut Criterion) {
    let runtime = multi_thread_runtime();
    let mut group = c.benchmark_group("pool_contended");
    for (tasks, size) in [(64u64, 4usize), (256, 16)] {
        let pools = Arc::new(pools(&runtime, size));
        let label = format!("{tasks}x{size}");
        macro_rules! case {
            ($name:literal, $which:ident) => {
                group.bench_function(BenchmarkId::new($name, &label), |b| {
                    b.iter_custom(|iters| {
                        let per_task = iters.div_ceil(tasks);
                        let (elapsed, _) = contended!(runtime, pools, $which, tasks, per_task, false);
                        elapsed.mul_f64(iters as f64 / (per_task * tasks) as f64)
                    })
                });
            };
        }
        case!("infra", infra);
        case!("deadpool", deadpool);
        case!("bb8", bb8);
        case!("semaphore", semaphore);
    }
    group.finish();
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

/// Waits seen by each acquisition in the contended runs, printed as `pool wait` lines.
fn waits() {
    let runtime = multi_thread_runtime();
    for (tasks, size) in [(64u64, 4usize), (256, 16)] {
        let pools = Arc::new(pools(&runtime, size));
        // Warm the runtime and the machine before the first measured pool, so no pool pays for going first.
        let _ = contended!(runtime, pools, semaphore, tasks, 2_000u64, true);
        macro_rules! report {
            ($name:literal, $which:ident) => {
                // A warm-up run, then the measured one.
                let _ = contended!(runtime, pools, $which, tasks, 200u64, false);
                let (elapsed, mut waits) = contended!(runtime, pools, $which, tasks, 4_000u64, true);
                waits.sort();
                let rate = waits.len() as f64 / elapsed.as_secs_f64() / 1e6;
                eprintln!(
                    "pool wait {:<9} {tasks}x{size}: p50 {:?} p99 {:?} max {:?}, p99/p50 {:.2}, {rate:.2} M acquisitions/s",
                    $name,
                    percentile(&waits, 0.5),
                    percentile(&waits, 0.99),
                    waits[waits.len() - 1],
                    percentile(&waits, 0.99).as_secs_f64() / percentile(&waits, 0.5).as_secs_f64(),
                );
            };
        }
        report!("infra", infra);
        report!("deadpool", deadpool);
        report!("bb8", bb8);
        report!("semaphore", semaphore);
    }
}

fn benches(c: &mut Criterion) {
    if std::env::args().any(|arg| arg == "--bench") {
        waits();
    }
    single_task(c);
    contention(c);
}

criterion_group!(pool_benches, benches);
criterion_main!(pool_benches);
