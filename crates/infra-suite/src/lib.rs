//! The infra-ops crates in one dependency, wired together.
//!
//! Each crate is re-exported behind a default-on feature (`log`, `apm`, `alert`, `chaos`, `pool`, `cache`,
//! `trace`, `deploy`, `flags`; `full` for all). With them all, [`InfraSuite`] builds every component with one
//! service name and one clock and wires them: log entries carry the trace of the span they were written in,
//! finished spans feed APM, SLA breaches raise alerts and recoveries resolve them.
//!
//! ```
//! # #[cfg(feature = "full")] {
//! use infra_suite::InfraSuite;
//!
//! let suite = InfraSuite::builder("order-gateway").build()?;
//! suite.tracer().in_span("place-order", |_| {
//!     suite.logs().info("order accepted", "orders"); // carries place-order's trace id
//! });
//! suite.tracer().force_flush();
//! suite.logs().flush();
//! let entry = &suite.log_memory().search(&Default::default())[0];
//! assert!(entry.trace.is_some());
//! assert!(suite.apm().render_prometheus().contains("span_duration_seconds"));
//! suite.shutdown(std::time::Duration::from_secs(1));
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The guide is `docs/suite.md`.
//!
//! ## Feature flags
//!
//! One per crate, all on by default: `log`, `apm`, `alert`, `chaos`, `pool`, `cache`, `trace`, `deploy`,
//! `flags`, and `full` for all of them. [`InfraSuite`] needs all but `pool` and `cache`.

#[cfg(feature = "alert")]
pub use infra_alert as alert;
#[cfg(feature = "apm")]
pub use infra_apm as apm;
#[cfg(feature = "cache")]
pub use infra_cache as cache;
#[cfg(feature = "chaos")]
pub use infra_chaos as chaos;
#[cfg(feature = "deploy")]
pub use infra_deploy as deploy;
#[cfg(feature = "flags")]
pub use infra_flags as flags;
#[cfg(feature = "log")]
pub use infra_log as log;
#[cfg(feature = "pool")]
pub use infra_pool as pool;
#[cfg(feature = "trace")]
pub use infra_trace as trace;

/// Marks items that need every crate [`InfraSuite`] wires (all but `pool` and `cache`), so the list of
/// features is written once.
macro_rules! wired {
    ($($item:item)*) => {
        $(
            #[cfg(all(
                feature = "log",
                feature = "apm",
                feature = "alert",
                feature = "chaos",
                feature = "trace",
                feature = "deploy",
                feature = "flags"
            ))]
            $item
        )*
    };
}

wired! {
    mod publish;
    mod suite;
    #[cfg(feature = "ops")]
    pub mod ops;
    pub use suite::{DeploymentTransaction, InfraSuite, InfraSuiteBuilder, SpanMetrics, SuiteError, SuiteWorker};
    #[cfg(feature = "pool")]
    pub use suite::WatchedPool;
}

/// The types most code needs, in one import: `use infra_suite::prelude::*;`.
pub mod prelude {
    #[cfg(feature = "alert")]
    pub use infra_alert::{AlertManager, NewAlert, Severity};
    #[cfg(feature = "apm")]
    pub use infra_apm::Collector;
    #[cfg(feature = "cache")]
    pub use infra_cache::Cache;
    #[cfg(feature = "chaos")]
    pub use infra_chaos::{ChaosEngine, Experiment, Fault, Target};
    #[cfg(feature = "deploy")]
    pub use infra_deploy::{Deployer, HealthTarget};
    #[cfg(feature = "flags")]
    pub use infra_flags::{Context, Flags};
    #[cfg(feature = "log")]
    pub use infra_log::LogAggregator;
    #[cfg(feature = "pool")]
    pub use infra_pool::{BlockingPool, Pool};
    #[cfg(feature = "trace")]
    pub use infra_trace::Tracer;

    wired! {
        pub use crate::InfraSuite;
    }
}
