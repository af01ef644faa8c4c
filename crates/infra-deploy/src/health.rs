//! Health checks: real HTTP GETs and TCP connects against each deployment.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How a deployment's health is checked (the seed's `health_endpoint`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthTarget {
    /// `GET path` on `addr`: healthy on a 2xx or 3xx answer within the timeout.
    Http {
        /// Where the instance listens.
        addr: SocketAddr,
        /// The health path, such as `/healthz`.
        path: String,
    },
    /// A TCP connect to `addr`: healthy when it is accepted within the timeout.
    Tcp(SocketAddr),
    /// Not checked: always healthy.
    None,
}

impl HealthTarget {
    /// An HTTP check of `path` on `addr`.
    pub fn http(addr: SocketAddr, path: impl Into<String>) -> Self {
        HealthTarget::Http { addr, path: path.into() }
    }

    /// Runs the check once; `Err` says what failed.
    pub(crate) fn probe(&self, timeout: Duration) -> Result<(), String> {
        match self {
            HealthTarget::None => Ok(()),
            HealthTarget::Tcp(addr) => {
                TcpStream::connect_timeout(addr, timeout).map(drop).map_err(|err| format!("connect {addr}: {err}"))
            }
            HealthTarget::Http { addr, path } => http_get(*addr, path, timeout),
        }
    }
}

/// One HTTP/1.0 GET; healthy on 2xx or 3xx.
fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<(), String> {
    let fail = |what: &str, err: std::io::Error| format!("GET http://{addr}{path}: {what}: {err}");
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|err| fail("connect", err))?;
    stream.set_read_timeout(Some(timeout)).map_err(|err| fail("socket", err))?;
    stream.set_write_timeout(Some(timeout)).map_err(|err| fail("socket", err))?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: infra-deploy\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(|err| fail("write", err))?;
    // The status line is all a check needs.
    let mut head = [0u8; 64];
    let mut read = 0;
    while read < 12 {
        match stream.read(&mut head[read..]).map_err(|err| fail("read", err))? {
            0 => break,
            n => read += n,
        }
    }
    let line = String::from_utf8_lossy(&head[..read]);
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("GET http://{addr}{path}: not an HTTP answer: {line:?}"))?;
    if (200..400).contains(&status) { Ok(()) } else { Err(format!("GET http://{addr}{path}: status {status}")) }
}

/// How checks decide: a timeout per check, and how many results in a row flip a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthPolicy {
    /// Each check's time limit.
    pub timeout: Duration,
    /// Consecutive successes that make an unhealthy deployment healthy again.
    pub healthy_after: u32,
    /// Consecutive failures that make a healthy deployment unhealthy.
    pub unhealthy_after: u32,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        HealthPolicy { timeout: Duration::from_secs(1), healthy_after: 2, unhealthy_after: 3 }
    }
}

/// A deployment's health as checks last decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Health {
    /// Not yet checked (eligible for traffic, as a freshly registered deployment is in the seed).
    Unknown,
    /// Passing.
    Healthy,
    /// Failing: it gets no traffic.
    Unhealthy,
}

impl Health {
    /// The health in lower case, as APIs write it: `unknown`, `healthy`, `unhealthy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// When, on the deployer's clock.
    pub at: Duration,
    /// Whether it passed.
    pub passed: bool,
    /// What failed, when it did.
    pub error: Option<String>,
}
