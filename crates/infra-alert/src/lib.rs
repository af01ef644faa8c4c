//! Alerts with Alertmanager's semantics: fingerprints bit for bit, matchers, the routing tree.
//!
//! ```
//! use infra_alert::{Labels, Matcher, Route, RouteTree};
//!
//! let tree = RouteTree::new(
//!     Route::to("ops")
//!         .group_by(["alertname"])
//!         .route(Route::to("pager").matcher(Matcher::parse("severity=\"critical\"")?).continue_matching(true))
//!         .route(Route::to("db-team").matcher(Matcher::parse("team=~\"db|storage\"")?)),
//!     &["ops", "pager", "db-team"],
//! )?;
//! let alert = Labels::new().with("alertname", "DiskFull").with("severity", "critical").with("team", "db");
//! assert_eq!(tree.receivers(&alert), ["pager", "db-team"]);
//! assert_eq!(alert.fingerprint().to_string().len(), 16);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The guide is `docs/alert.md`.

mod error;
mod labels;
mod matcher;
mod route;

pub use error::ConfigError;
pub use labels::{Fingerprint, Labels};
pub use matcher::{MatchType, Matcher, all_match};
pub use route::{
    DEFAULT_GROUP_INTERVAL, DEFAULT_GROUP_WAIT, DEFAULT_REPEAT_INTERVAL, GroupBy, ResolvedRoute, Route, RouteTree,
};
