//! A scriptable manager for the pool's tests: counts every call, fails or panics on request.
#![allow(dead_code, unreachable_pub)]

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use infra_pool::{BlockingManager, Manager};

/// A connection: its number, and a flag tests flip to make the manager call it broken.
#[derive(Debug)]
pub struct Conn {
    pub id: u64,
    pub broken: Arc<AtomicBool>,
}

/// What the manager was asked and what it should do.
#[derive(Debug, Default)]
pub struct Script {
    pub creates: AtomicU64,
    pub validates: AtomicU64,
    pub releases: AtomicU64,
    pub fail_creates: AtomicBool,
    pub panic_creates: AtomicBool,
    pub fail_validates: AtomicBool,
    pub panic_validates: AtomicBool,
    pub panic_is_broken: AtomicBool,
    /// Microseconds `create` waits (async: a tokio sleep; blocking: a thread sleep).
    pub create_delay_micros: AtomicU64,
    /// Whether the async calls yield once, giving cancellation a point to strike.
    pub yields: AtomicBool,
}

#[derive(Debug, Clone, Default)]
pub struct TestManager {
    pub script: Arc<Script>,
}

fn flag(flag: &AtomicBool) -> bool {
    flag.load(Ordering::Relaxed)
}

impl TestManager {
    pub fn new() -> Self {
        Self::default()
    }

    fn next_conn(&self) -> io::Result<Conn> {
        let s = &self.script;
        if flag(&s.panic_creates) {
            panic!("scripted panic in create");
        }
        if flag(&s.fail_creates) {
            return Err(io::Error::new(io::ErrorKind::ConnectionRefused, "scripted: connection refused"));
        }
        let id = s.creates.fetch_add(1, Ordering::Relaxed);
        Ok(Conn { id, broken: Arc::new(AtomicBool::new(false)) })
    }

    fn check(&self) -> io::Result<()> {
        let s = &self.script;
        s.validates.fetch_add(1, Ordering::Relaxed);
        if flag(&s.panic_validates) {
            panic!("scripted panic in validate");
        }
        if flag(&s.fail_validates) {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "scripted: validation failed"));
        }
        Ok(())
    }

    fn broken(&self, conn: &Conn) -> bool {
        if flag(&self.script.panic_is_broken) {
            panic!("scripted panic in is_broken");
        }
        flag(&conn.broken)
    }
}

impl Manager for TestManager {
    type Connection = Conn;
    type Error = io::Error;

    async fn create(&self) -> io::Result<Conn> {
        let delay = self.script.create_delay_micros.load(Ordering::Relaxed);
        if delay > 0 {
            tokio::time::sleep(Duration::from_micros(delay)).await;
        }
        if flag(&self.script.yields) {
            tokio::task::yield_now().await;
        }
        self.next_conn()
    }

    async fn validate(&self, _conn: &mut Conn) -> io::Result<()> {
        if flag(&self.script.yields) {
            tokio::task::yield_now().await;
        }
        self.check()
    }

    fn is_broken(&self, conn: &mut Conn) -> bool {
        self.broken(conn)
    }

    fn on_release(&self, _conn: &mut Conn) -> bool {
        self.script.releases.fetch_add(1, Ordering::Relaxed);
        true
    }
}

impl BlockingManager for TestManager {
    type Connection = Conn;
    type Error = io::Error;

    fn create(&self) -> io::Result<Conn> {
        let delay = self.script.create_delay_micros.load(Ordering::Relaxed);
        if delay > 0 {
            std::thread::sleep(Duration::from_micros(delay));
        }
        self.next_conn()
    }

    fn validate(&self, _conn: &mut Conn) -> io::Result<()> {
        self.check()
    }

    fn is_broken(&self, conn: &mut Conn) -> bool {
        self.broken(conn)
    }

    fn on_release(&self, _conn: &mut Conn) -> bool {
        self.script.releases.fetch_add(1, Ordering::Relaxed);
        true
    }
}

/// Asserts the pool's books balance at rest: every connection opened is in the pool, closed or detached.
pub fn assert_balanced(stats: &infra_pool::PoolStats) {
    assert_eq!(stats.in_use, 0, "nothing in use at rest: {stats:#?}");
    assert_eq!(stats.waiters, 0, "nobody waiting at rest: {stats:#?}");
    assert_eq!(stats.idle, stats.size, "every connection idle at rest: {stats:#?}");
    assert_eq!(stats.creates, stats.size as u64 + stats.closed + stats.detached, "connections unaccounted: {stats:#?}");
    assert!(stats.size <= stats.max_size, "{stats:#?}");
}
