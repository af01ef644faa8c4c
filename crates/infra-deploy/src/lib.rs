//! Blue-green and canary deployments of a service: deployments by color or revision, traffic weights
//! read lock-free and sticky by request key, real HTTP and TCP health checks that take traffic away from a
//! failing deployment, traffic shifts refused toward unhealthy targets, rollback; canary and blue-green
//! rollouts ([`Rollout`]) with analysis (closures, or Prometheus with feature `prometheus`), persisted so a
//! restarted controller resumes them ([`RolloutStore`]); weights applied to real load balancers through
//! [`TrafficBackend`]s ([`HaproxyBackend`]).
//!
//! ```
//! use infra_deploy::{Color, Deployer, HealthTarget};
//!
//! let deployer = Deployer::builder("orders").build()?;
//! deployer.register_color(Color::Blue, "v1", HealthTarget::None)?;   // the first takes all traffic
//! deployer.register_color(Color::Green, "v2", HealthTarget::None)?;
//! deployer.shift_traffic("green", 10.0)?;                           // a 10% canary
//!
//! let user = b"user-42";
//! let first = deployer.route(user).unwrap().name.clone();
//! assert_eq!(deployer.route(user).unwrap().name, first, "sticky");
//! deployer.shift_traffic("green", 50.0)?;
//! if first == "green" {
//!     assert_eq!(deployer.route(user).unwrap().name, "green", "widening never moves a canary user back");
//! }
//! deployer.set_active("green")?;
//! assert_eq!(deployer.route(user).unwrap().version, "v2");
//! deployer.rollback()?;                                              // back to 50/50
//! assert_eq!(deployer.status().deployments[1].percent, 50.0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The guide is `docs/deploy.md`.

mod backend;
mod deployer;
mod error;
mod haproxy;
mod health;
mod periodic;
mod persist;
#[cfg(feature = "prometheus")]
mod prometheus;
mod rollout;
mod router;

pub use backend::{BackendError, TrafficBackend, TrafficWeight};
pub use deployer::{
    Color, DeployEvent, DeployStatus, Deployer, DeployerBuilder, DeploymentInfo, DeploymentStatus, HealthChecks, Routed,
};
pub use error::DeployError;
pub use haproxy::{AdminSocket, HaproxyBackend, ServerState};
pub use health::{CheckResult, Health, HealthPolicy, HealthTarget};
pub use persist::RolloutStore;
#[cfg(feature = "prometheus")]
pub use prometheus::{PrometheusError, PrometheusQuery};
pub use rollout::{
    Analysis, BlueGreenPlan, CanaryPlan, Condition, Metric, Phase, Rollout, RolloutDriver, RolloutEvent, Step,
};
pub use router::{BUCKETS, bucket_of};
