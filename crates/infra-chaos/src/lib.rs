//! Chaos experiments, with injection points that cost one relaxed atomic load while nothing is injected.
//!
//! A [`ChaosEngine`] runs [`Experiment`]s: a [`Fault`] (latency, errors, panics, a failing dependency,
//! resources held, or a fail-rs action chain) at a [`Target`] (a point, every point under a prefix, every
//! point), with a duration on the engine's clock, a probability and an injection cap as blast radius, and
//! a steady-state hypothesis that aborts it when it stops holding. Stopping an experiment removes every
//! fault it made before returning.
//!
//! Code marks where faults may strike with [`point!`] (or [`point_async!`], whose latency is a tokio timer),
//! or [`fail_point!`] for code written against the `fail` crate. Failpoints take fail-rs action strings
//! ([`ChaosEngine::configure`], `FAILPOINTS`), accepted and rejected exactly as `fail` 0.5 does. Each test
//! can [`scope`](ChaosEngine::scope) its own engine, so tests that configure points run in parallel.
//!
//! ```
//! use std::time::Duration;
//! use infra_chaos::{ChaosEngine, ChaosError, Experiment, Fault, Target};
//!
//! fn place_order() -> Result<&'static str, ChaosError> {
//!     infra_chaos::point!("orders.place")?;
//!     Ok("placed")
//! }
//!
//! let engine = ChaosEngine::builder().seed(7).build()?;
//! engine.scope(|| assert_eq!(place_order().unwrap(), "placed")); // nothing running: a free pass
//!
//! let outage = engine.create_experiment(
//!     Experiment::new(Target::point("orders.place"), Fault::Error)
//!         .duration(Duration::from_secs(30))
//!         .max_injections(2),
//! )?;
//! engine.start_experiment(outage)?;
//! engine.scope(|| {
//!     assert!(matches!(place_order(), Err(ChaosError::Injected { .. })));
//!     assert!(place_order().is_err());
//!     assert!(place_order().is_ok(), "two injections, then it is used up");
//! });
//! let results = engine.results(outage).unwrap();
//! assert_eq!((results.calls, results.injections, results.errors), (3, 2, 2));
//!
//! // fail-rs syntax: 50% of calls sleep 1 ms, the rest go on.
//! engine.configure("orders.cancel", "50%sleep(1)->off")?;
//! assert_eq!(engine.failpoints(), [("orders.cancel".to_owned(), "50%sleep(1)->off".to_owned())]);
//! engine.remove("orders.cancel");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The guide is `docs/chaos.md`.
//!
//! ## Feature flags
//!
//! - `points` (default): injection points are compiled in. Without it, [`point!`], [`point_async!`] and
//!   [`fail_point!`] expand to nothing at all, so a production build carries the instrumentation for free.
//! - `proxy`: `ProxyServer`, a TCP fault proxy speaking Toxiproxy's HTTP API (so its clients in every
//!   language drive it), with its toxics and two more: `http_status` and `fail_first`.

mod action;
mod engine;
mod error;
mod experiment;
mod fault;
mod mix;
mod point;
#[cfg(feature = "proxy")]
mod proxy;
mod resource;

pub use action::{Action, ActionError, Actions, Task, parse_failpoints};
pub use engine::{ChaosEngine, ChaosEngineBuilder, DEFAULT_MAX_CONCURRENT, DEFAULT_SUPERVISE_INTERVAL, Injection};
pub use error::{ChaosError, EngineError};
pub use experiment::{Experiment, ExperimentId, ExperimentResults, ExperimentState, Hypothesis, Target};
pub use fault::{ErrorFactory, ExperimentKind, Fault, LatencyProfile, Resource};
pub use point::{Scoped, Site, global};
#[cfg(feature = "proxy")]
pub use proxy::{Direction, NetworkFault, ProxyError, ProxyInfo, ProxyServer, Toxic, ToxicKind, VERSION};

/// An injection point: `Result<(), ChaosError>`, `Ok(())` unless an experiment on the current engine (the
/// scoped one, else [`global`]) injects here. Latency is a thread sleep; use [`point_async!`] in async code.
///
/// ```
/// fn charge() -> Result<(), infra_chaos::ChaosError> {
///     infra_chaos::point!("payments.charge")?;
///     Ok(())
/// }
/// assert!(charge().is_ok());
/// ```
#[cfg(feature = "points")]
#[macro_export]
macro_rules! point {
    ($name:literal) => {{
        static SITE: $crate::Site = $crate::Site::new($name);
        SITE.check()
    }};
}

/// An injection point (compiled out: the `points` feature is off).
#[cfg(not(feature = "points"))]
#[macro_export]
macro_rules! point {
    ($name:literal) => {
        ::core::result::Result::<(), $crate::ChaosError>::Ok(())
    };
}

/// An async injection point: a future of `Result<(), ChaosError>`. Latency waits on a tokio timer, so a
/// thousand tasks crossing a 100 ms point take 100 ms, not a blocked worker each.
///
/// ```
/// async fn quote() -> Result<u32, infra_chaos::ChaosError> {
///     infra_chaos::point_async!("pricing.quote").await?;
///     Ok(42)
/// }
/// ```
#[cfg(feature = "points")]
#[macro_export]
macro_rules! point_async {
    ($name:literal) => {{
        static SITE: $crate::Site = $crate::Site::new($name);
        SITE.check_async()
    }};
}

/// An async injection point (compiled out: the `points` feature is off).
#[cfg(not(feature = "points"))]
#[macro_export]
macro_rules! point_async {
    ($name:literal) => {
        ::core::future::ready(::core::result::Result::<(), $crate::ChaosError>::Ok(()))
    };
}

/// A failpoint written as for the `fail` crate: `fail_point!("name")`, `fail_point!("name", |arg| value)`
/// (returns `value` from the enclosing function when a `return` action fires), or
/// `fail_point!("name", condition, |arg| value)`.
///
/// ```
/// fn read_config() -> Result<String, String> {
///     infra_chaos::fail_point!("config.read", |arg: Option<String>| Err(arg.unwrap_or_default()));
///     Ok("config".into())
/// }
/// assert_eq!(read_config(), Ok("config".into()));
/// ```
#[cfg(feature = "points")]
#[macro_export]
macro_rules! fail_point {
    ($name:literal) => {{
        static SITE: $crate::Site = $crate::Site::new($name);
        let _ = SITE.failpoint();
    }};
    ($name:literal, $e:expr) => {{
        static SITE: $crate::Site = $crate::Site::new($name);
        if let ::core::option::Option::Some(arg) = SITE.failpoint() {
            return ($e)(arg);
        }
    }};
    ($name:literal, $cond:expr, $e:expr) => {{
        if $cond {
            $crate::fail_point!($name, $e);
        }
    }};
}

/// A failpoint (compiled out: the `points` feature is off).
#[cfg(not(feature = "points"))]
#[macro_export]
macro_rules! fail_point {
    ($name:literal) => {{}};
    ($name:literal, $e:expr) => {{}};
    ($name:literal, $cond:expr, $e:expr) => {{}};
}
