//! Test support shared by the infra-ops crates.
//!
//! Tests that need a real server (Redis, PostgreSQL, Prometheus, Alertmanager, HAProxy, rsyslog) find it
//! through environment variables that `cargo xtask services up` (and `cargo xtask ci`) set. Under plain
//! `cargo test` a missing server makes the test skip with a printed reason; with
//! `INFRA_REQUIRE_SERVICES=1`, which `cargo xtask ci` sets, it fails instead, so CI never passes by skipping.
//!
//! ```
//! use infra_testkit::Service;
//!
//! // Skips (returns early) when the harness did not start Redis, fails when it was required.
//! let Some(url) = infra_testkit::service(Service::Redis) else { return Ok(()) };
//! assert!(url.starts_with("redis://"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The same code starts servers for the harness and for tests that need an instance of their own (one
//! they restart, or configure): [`start_redis`], [`start_postgres`], [`ServerProcess`], and [`restart_redis`] / [`restart_postgres`]
//! to bring a stopped one back on the same port.
//!
//! Convention: every test that talks to a real server has a name starting with `interop_`, so that
//! `cargo xtask ci` runs it in its interop tier, after the servers are up.

mod http;
mod process;
mod servers;
mod wire;

pub use http::{HttpResponse, http_request};
pub use process::{ServerProcess, free_port, pid_alive, terminate_pid, wait_until};
pub use servers::{
    postgres_bin_dir, restart_postgres, restart_redis, run_with_input, running_as_root, start_alertmanager,
    start_postgres, start_prometheus, start_redis, url_addr,
};
pub use wire::{RespValue, postgres_query, redis_command};

use std::path::PathBuf;

/// The environment variable that turns a missing server from a skip into a failure.
pub const REQUIRE_SERVICES_VAR: &str = "INFRA_REQUIRE_SERVICES";

/// A real server or tool the tests use, and how the harness hands it to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    /// A shared Redis server; the variable holds `redis://127.0.0.1:PORT`.
    Redis,
    /// The `redis-server` binary, for tests that run an instance of their own.
    RedisServer,
    /// A shared PostgreSQL server; the variable holds `postgres://postgres@127.0.0.1:PORT/postgres`.
    Postgres,
    /// The folder holding `postgres` and `initdb`, for tests that run an instance of their own.
    PostgresBin,
    /// The `prometheus` server binary (2.42 from Debian); tests start their own instance.
    Prometheus,
    /// The `promtool` binary shipped with Prometheus.
    Promtool,
    /// The Alertmanager binary (`/usr/bin/prometheus-alertmanager` on Debian).
    Alertmanager,
    /// The `amtool` binary shipped with Alertmanager.
    Amtool,
    /// The `haproxy` binary.
    Haproxy,
    /// The `rsyslogd` binary.
    Rsyslogd,
    /// A shared Unleash server (6.x, from npm); the variable holds `http://127.0.0.1:PORT`. Its tokens are
    /// [`UNLEASH_ADMIN_TOKEN`] and [`UNLEASH_CLIENT_TOKEN`].
    Unleash,
    /// A folder holding the Python `prometheus_client` package (from PyPI, under `target/`), to put on
    /// `PYTHONPATH`.
    PythonPrometheusClient,
    /// A folder holding the Python `toxiproxy-python` client and what it imports (from PyPI, under
    /// `target/`), to put on `PYTHONPATH`.
    PythonToxiproxyClient,
    /// A `node_modules` folder holding `toxiproxy-node-client` (from npm, under `target/`), to put on
    /// `NODE_PATH`.
    NodeToxiproxyClient,
    /// The Chromium browser binary (Debian's `chromium`), for the dashboard's browser test.
    Chromium,
    /// A `node_modules` folder holding `playwright-core` (from npm, under `target/`), which drives
    /// [`Service::Chromium`].
    NodePlaywright,
    /// A folder holding Schemathesis and its dependencies (from PyPI, under `target/`), to put on
    /// `PYTHONPATH`, for fuzzing the ops API from its OpenAPI document.
    PythonSchemathesis,
}

/// The admin API token of the harness's Unleash server (a throwaway server on loopback).
pub const UNLEASH_ADMIN_TOKEN: &str = "*:*.infra-testkit-admin-token";
/// The client API token (environment `development`) of the harness's Unleash server.
pub const UNLEASH_CLIENT_TOKEN: &str = "*:development.infra-testkit-client-token";

impl Service {
    /// Every service, in the order the harness prepares them.
    pub const ALL: [Service; 14] = [
        Service::Redis,
        Service::RedisServer,
        Service::Postgres,
        Service::PostgresBin,
        Service::Prometheus,
        Service::Promtool,
        Service::Alertmanager,
        Service::Amtool,
        Service::Haproxy,
        Service::Rsyslogd,
        Service::Unleash,
        Service::PythonPrometheusClient,
        Service::PythonToxiproxyClient,
        Service::NodeToxiproxyClient,
    ];

    /// The environment variable through which the harness hands this service to tests.
    pub fn env_var(self) -> &'static str {
        match self {
            Service::Redis => "INFRA_TEST_REDIS_URL",
            Service::RedisServer => "INFRA_TEST_REDIS_SERVER",
            Service::Postgres => "INFRA_TEST_POSTGRES_URL",
            Service::PostgresBin => "INFRA_TEST_POSTGRES_BIN",
            Service::Prometheus => "INFRA_TEST_PROMETHEUS",
            Service::Promtool => "INFRA_TEST_PROMTOOL",
            Service::Alertmanager => "INFRA_TEST_ALERTMANAGER",
            Service::Amtool => "INFRA_TEST_AMTOOL",
            Service::Haproxy => "INFRA_TEST_HAPROXY",
            Service::Rsyslogd => "INFRA_TEST_RSYSLOGD",
            Service::Unleash => "INFRA_TEST_UNLEASH_URL",
            Service::PythonPrometheusClient => "INFRA_TEST_PYTHON_PROMETHEUS_CLIENT",
            Service::PythonToxiproxyClient => "INFRA_TEST_PYTHON_TOXIPROXY_CLIENT",
            Service::NodeToxiproxyClient => "INFRA_TEST_NODE_TOXIPROXY_CLIENT",
            Service::Chromium => "INFRA_TEST_CHROMIUM",
            Service::NodePlaywright => "INFRA_TEST_NODE_PLAYWRIGHT",
            Service::PythonSchemathesis => "INFRA_TEST_PYTHON_SCHEMATHESIS",
        }
    }

    /// A short human name, used in skip and failure messages.
    pub fn describe(self) -> &'static str {
        match self {
            Service::Redis => "a running Redis server",
            Service::RedisServer => "the redis-server binary",
            Service::Postgres => "a running PostgreSQL server",
            Service::PostgresBin => "the PostgreSQL server binaries",
            Service::Prometheus => "the prometheus binary",
            Service::Promtool => "the promtool binary",
            Service::Alertmanager => "the Alertmanager binary",
            Service::Amtool => "the amtool binary",
            Service::Haproxy => "the haproxy binary",
            Service::Rsyslogd => "the rsyslogd binary",
            Service::Unleash => "a running Unleash server",
            Service::PythonPrometheusClient => "the Python prometheus_client package",
            Service::PythonToxiproxyClient => "the Python toxiproxy-python package",
            Service::NodeToxiproxyClient => "the Node.js toxiproxy-node-client package",
            Service::Chromium => "the chromium browser",
            Service::NodePlaywright => "the Node.js playwright-core package",
            Service::PythonSchemathesis => "the Python schemathesis package",
        }
    }
}

/// Whether missing services fail tests (`INFRA_REQUIRE_SERVICES=1`) instead of skipping them.
pub fn services_required() -> bool {
    std::env::var(REQUIRE_SERVICES_VAR).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// The harness's value for `service`: `Some` when it is available.
///
/// When it is not, prints why the calling test skips and returns `None`.
///
/// # Panics
///
/// Panics (failing the calling test) when the service is missing and [`services_required`] is true: a gate
/// that requires servers must never pass by skipping the tests that use them.
pub fn service(service: Service) -> Option<String> {
    match std::env::var(service.env_var()) {
        Ok(value) if !value.is_empty() => Some(value),
        _ if services_required() => panic!(
            "{} is required ({}=1) but {} is not set: run the tests through `cargo xtask ci`, \
             or `cargo xtask services up` and source target/xtask/services.env",
            service.describe(),
            REQUIRE_SERVICES_VAR,
            service.env_var()
        ),
        _ => {
            eprintln!(
                "skipped: {} not available ({} unset; `cargo xtask services up` provides it)",
                service.describe(),
                service.env_var()
            );
            None
        }
    }
}

/// Like [`service`], for services that are binaries: the value as a path.
pub fn service_path(which: Service) -> Option<PathBuf> {
    service(which).map(PathBuf::from)
}

/// A fresh temporary directory, removed when dropped.
///
/// # Panics
///
/// Panics when the system temporary directory is not writable, which no test can recover from.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("infra-test-")
        .tempdir()
        .expect("the system temporary directory must be writable for tests")
}
