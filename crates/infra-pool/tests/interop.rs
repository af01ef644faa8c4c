//! The pool against real PostgreSQL and Redis servers, each started for its test so it can be restarted
//! mid-load: connection counts seen by the server, recovery after a restart, a server down at start.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use infra_pool::{Manager, Pool, PoolError, PoolStats, PostgresManager, RedisManager};
use infra_testkit::{RespValue, ServerProcess, Service};

/// One request through a pooled connection.
type Request = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

const APPLICATION: &str = "infra-pool-interop";
const TASKS: usize = 64;
const MAX_SIZE: usize = 8;

/// What the load tasks saw.
#[derive(Debug, Default)]
struct Outcomes {
    successes: AtomicU64,
    failures: AtomicU64,
    /// Per task, microseconds since the test's epoch of the first success after `recovered_after`.
    first_success_after: Vec<AtomicU64>,
    /// The epoch-relative microsecond from which first successes are recorded (0: not yet).
    recovered_after: AtomicU64,
}

fn micros_since(epoch: Instant) -> u64 {
    epoch.elapsed().as_micros() as u64
}

/// Runs `TASKS` tasks doing `query` through `pool` until `stop`, recording what they saw.
fn load<M, Q, F>(
    pool: &Pool<M>,
    query: Q,
    stop: &Arc<AtomicBool>,
    epoch: Instant,
) -> (Arc<Outcomes>, Vec<tokio::task::JoinHandle<()>>)
where
    M: Manager,
    Q: Fn(infra_pool::Pooled<M::Connection>) -> F + Send + Sync + Clone + 'static,
    F: Future<Output = Result<(), String>> + Send,
{
    let outcomes = Arc::new(Outcomes {
        first_success_after: (0..TASKS).map(|_| AtomicU64::new(0)).collect(),
        ..Outcomes::default()
    });
    let tasks = (0..TASKS)
        .map(|task| {
            let (pool, query, stop, outcomes) = (pool.clone(), query.clone(), Arc::clone(stop), Arc::clone(&outcomes));
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let result = match pool.get().await {
                        Ok(conn) => query(conn).await,
                        Err(err) => Err(err.to_string()),
                    };
                    match result {
                        Ok(()) => {
                            outcomes.successes.fetch_add(1, Ordering::Relaxed);
                            let from = outcomes.recovered_after.load(Ordering::Relaxed);
                            if from > 0 {
                                let _ = outcomes.first_success_after[task].compare_exchange(
                                    0,
                                    micros_since(epoch),
                                    Ordering::Relaxed,
                                    Ordering::Relaxed,
                                );
                            }
                        }
                        Err(_) => {
                            outcomes.failures.fetch_add(1, Ordering::Relaxed);
                            // What a real caller does after a failure: back off a little, then retry.
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
            })
        })
        .collect();
    (outcomes, tasks)
}

async fn finish(stop: &AtomicBool, tasks: Vec<tokio::task::JoinHandle<()>>) {
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("load task");
    }
}

/// Samples `server_count` while `stop` is unset; returns the largest count seen.
fn sample_server_connections(
    server_count: impl Fn() -> Option<usize> + Send + 'static,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut most = 0;
        while !stop.load(Ordering::Relaxed) {
            if let Some(count) = server_count() {
                most = most.max(count);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        most
    })
}

fn assert_books_balance(stats: &PoolStats) {
    assert_eq!((stats.in_use, stats.waiters), (0, 0), "{stats:#?}");
    assert_eq!(stats.idle, stats.size, "{stats:#?}");
    assert_eq!(stats.creates, stats.size as u64 + stats.closed + stats.detached, "connections unaccounted: {stats:#?}");
}

/// Waits until the server's count of our connections equals the pool's size (the server notices closed
/// connections a moment after the client does).
fn assert_server_agrees(server_count: impl Fn() -> Option<usize>, size: usize) {
    let agreed = infra_testkit::wait_until(Duration::from_secs(5), || match server_count() {
        Some(count) if count == size => Ok(()),
        other => Err(format!("server sees {other:?}, pool holds {size}")),
    });
    agreed.expect("the server's connection count matches the pool");
}

/// Runs the whole restart scenario against one server kind: load, a restart mid-load, recovery, books.
async fn restart_scenario<M: Manager>(
    pool: Pool<M>,
    query: impl Fn(infra_pool::Pooled<M::Connection>) -> Request + Send + Sync + Clone + 'static,
    server_count: impl Fn() -> Option<usize> + Send + Sync + Clone + 'static,
    mut server: ServerProcess,
    restart: impl FnOnce() -> ServerProcess,
    stop_server: impl FnOnce(&mut ServerProcess),
) -> ServerProcess {
    let epoch = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let sampling = sample_server_connections(server_count.clone(), Arc::clone(&stop));
    let (outcomes, tasks) = load(&pool, query, &stop, epoch);

    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(outcomes.failures.load(Ordering::Relaxed), 0, "every request succeeds while the server is up");
    assert!(outcomes.successes.load(Ordering::Relaxed) > 100);

    // Restart the server under load.
    let server = tokio::task::block_in_place(|| {
        stop_server(&mut server);
        drop(server);
        std::thread::sleep(Duration::from_millis(300));
        restart()
    });
    let back = micros_since(epoch);
    outcomes.recovered_after.store(back, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    finish(&stop, tasks).await;
    let most = sampling.join().expect("sampler");

    assert!(outcomes.failures.load(Ordering::Relaxed) > 0, "the restart was felt");
    for (task, first) in outcomes.first_success_after.iter().enumerate() {
        let first = first.load(Ordering::Relaxed);
        assert!(first > 0, "task {task} never succeeded after the restart");
        let after = Duration::from_micros(first - back);
        assert!(after <= Duration::from_secs(2), "task {task} recovered {after:?} after the server was back");
    }
    assert!(most <= MAX_SIZE, "the server saw {most} of our connections, above max_size {MAX_SIZE}");
    let stats = pool.stats();
    assert!(stats.closed_broken + stats.failed_health_checks > 0, "broken connections were found: {stats:#?}");
    assert_books_balance(&stats);
    tokio::task::block_in_place(|| assert_server_agrees(server_count, stats.size));
    eprintln!(
        "after the restart: {} requests, {} failed; {stats:#?}",
        outcomes.successes.load(Ordering::Relaxed),
        outcomes.failures.load(Ordering::Relaxed)
    );
    pool.close(Duration::from_secs(5)).await.expect("closed");
    server
}

fn postgres_count(addr: SocketAddr) -> Option<usize> {
    let sql = format!("SELECT count(*) FROM pg_stat_activity WHERE application_name = '{APPLICATION}'");
    let rows = infra_testkit::postgres_query(addr, "postgres", "postgres", &sql).ok()?;
    rows.first()?.first()?.as_ref()?.parse().ok()
}

fn postgres_manager(addr: SocketAddr) -> PostgresManager {
    let url = format!("postgres://postgres@{addr}/postgres?application_name={APPLICATION}&connect_timeout=1");
    PostgresManager::from_url(&url).expect("a valid URL")
}

fn postgres_pool(addr: SocketAddr) -> Pool<PostgresManager> {
    Pool::builder(postgres_manager(addr))
        .max_size(MAX_SIZE)
        .acquire_timeout(Duration::from_secs(2))
        .create_timeout(Duration::from_secs(1))
        .build()
        .expect("pool")
}

/// Stops PostgreSQL with a fast shutdown (SIGINT): SIGTERM would wait for our connections to leave.
fn stop_postgres(server: &mut ServerProcess) {
    let _ = std::process::Command::new("kill").args(["-INT", &server.pid().to_string()]).status();
    server.stop(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_postgres_64_tasks_on_8_connections_survive_a_restart() {
    let Some(bin) = infra_testkit::service_path(Service::PostgresBin) else { return };
    let dir = infra_testkit::temp_dir();
    let (server, addr) = infra_testkit::start_postgres(&bin, dir.path()).expect("postgres starts");
    let query = |conn: infra_pool::Pooled<tokio_postgres::Client>| -> Request {
        Box::pin(async move {
            let row = conn.query_one("SELECT 1::INT4", &[]).await.map_err(|e| e.to_string())?;
            if row.get::<_, i32>(0) == 1 { Ok(()) } else { Err("wrong answer".into()) }
        })
    };
    let server = restart_scenario(
        postgres_pool(addr),
        query,
        move || postgres_count(addr),
        server,
        || infra_testkit::restart_postgres(&bin, dir.path(), addr).expect("postgres restarts"),
        stop_postgres,
    )
    .await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_postgres_down_at_start_reports_the_connect_error_then_recovers() {
    let Some(bin) = infra_testkit::service_path(Service::PostgresBin) else { return };
    let dir = infra_testkit::temp_dir();
    let (mut server, addr) = infra_testkit::start_postgres(&bin, dir.path()).expect("postgres starts");
    stop_postgres(&mut server);
    let pool = postgres_pool(addr);
    let started = Instant::now();
    match pool.get().await {
        Err(PoolError::Create(err)) => {
            let message = format!("{err}: {:?}", std::error::Error::source(&err));
            assert!(message.to_lowercase().contains("refused"), "the driver's own error: {message}");
        }
        other => panic!("expected the connect error, got {other:?}"),
    }
    assert!(started.elapsed() <= Duration::from_secs(1), "within the create timeout: {:?}", started.elapsed());
    let _server = tokio::task::block_in_place(|| {
        infra_testkit::restart_postgres(&bin, dir.path(), addr).expect("postgres starts")
    });
    let back = Instant::now();
    let conn = pool.get().await.expect("the pool recovers once the server is up");
    conn.simple_query("SELECT 1").await.expect("a working connection");
    assert!(back.elapsed() < Duration::from_secs(2));
    drop(conn);
    let stats = pool.stats();
    assert_eq!((stats.create_failures, stats.creates), (1, 1), "{stats:#?}");
}

fn redis_count(addr: SocketAddr) -> Option<usize> {
    match infra_testkit::redis_command(addr, &[b"CLIENT", b"LIST"]).ok()? {
        // One line per client; the asking connection itself is the one running CLIENT LIST.
        RespValue::Bulk(Some(list)) => {
            Some(String::from_utf8_lossy(&list).lines().filter(|line| !line.contains("cmd=client|list")).count())
        }
        _ => None,
    }
}

fn redis_pool(addr: SocketAddr) -> Pool<RedisManager> {
    Pool::builder(RedisManager::new(format!("redis://{addr}/0")).expect("a valid URL"))
        .max_size(MAX_SIZE)
        .acquire_timeout(Duration::from_secs(2))
        .create_timeout(Duration::from_secs(1))
        .build()
        .expect("pool")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_redis_64_tasks_on_8_connections_survive_a_restart() {
    let Some(redis_server) = infra_testkit::service_path(Service::RedisServer) else { return };
    let dir = infra_testkit::temp_dir();
    let (server, addr) = infra_testkit::start_redis(&redis_server, dir.path()).expect("redis starts");
    let query = |mut conn: infra_pool::Pooled<infra_pool::RedisConnection>| -> Request {
        Box::pin(async move {
            let _: i64 = redis::cmd("INCR")
                .arg("infra-pool-interop")
                .query_async(&mut *conn)
                .await
                .map_err(|e| e.to_string())?;
            Ok(())
        })
    };
    let server = restart_scenario(
        redis_pool(addr),
        query,
        move || redis_count(addr),
        server,
        || infra_testkit::restart_redis(&redis_server, dir.path(), addr).expect("redis restarts"),
        |server| server.stop(Duration::from_secs(5)),
    )
    .await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_redis_down_at_start_reports_the_connect_error_then_recovers() {
    let Some(redis_server) = infra_testkit::service_path(Service::RedisServer) else { return };
    let dir = infra_testkit::temp_dir();
    let (mut server, addr) = infra_testkit::start_redis(&redis_server, dir.path()).expect("redis starts");
    server.stop(Duration::from_secs(5));
    let pool = redis_pool(addr);
    let started = Instant::now();
    match pool.get().await {
        Err(PoolError::Create(err)) => assert!(err.is_connection_refusal(), "the driver's own error: {err}"),
        other => panic!("expected the connect error, got {other:?}"),
    }
    assert!(started.elapsed() <= Duration::from_secs(1));
    let _server = tokio::task::block_in_place(|| {
        infra_testkit::restart_redis(&redis_server, dir.path(), addr).expect("redis starts")
    });
    let mut conn = pool.get().await.expect("the pool recovers once the server is up");
    let pong: String = redis::cmd("PING").query_async(&mut *conn).await.expect("a working connection");
    assert_eq!(pong, "PONG");
}
