//! Feature flags that agree with Unleash bit for bit and evaluate in nanoseconds.
//!
//! [`Flags`] holds a flag set and answers [`Flags::is_enabled`] and [`Flags::variant`] for a [`Context`].
//! Flags come from Unleash's `/client/features` JSON (a file, a server, or delta-API events) or are
//! created in code with the seed's API ([`Flags::create_flag`], [`Flags::set_percentage_rollout`],
//! [`Flags::set_user_segments`], [`Flags::set_user_override`]). Evaluation follows the Unleash client
//! specification: every strategy, constraint operator, segment, variant rule and dependency, with the
//! same MurmurHash3 bucketing, so a user gets the same answer here as from any Unleash SDK.
//!
//! Reads never lock: the flag set is an immutable snapshot swapped atomically when it changes, and
//! evaluating allocates nothing. Each evaluation is counted per flag ([`Flags::analytics`]) on striped
//! counters.
//!
//! ```
//! use infra_flags::{Context, Flags};
//!
//! let flags = Flags::new();
//! flags.load_json(r#"{"version": 2, "features": [{
//!     "name": "new-pricing",
//!     "enabled": true,
//!     "strategies": [{
//!         "name": "flexibleRollout",
//!         "parameters": {"rollout": "100", "stickiness": "userId", "groupId": "new-pricing"},
//!         "constraints": [{"contextName": "appName", "operator": "IN", "values": ["order-gateway"]}]
//!     }]
//! }]}"#)?;
//!
//! let context = Context::new().user_id("trader-7").app_name("order-gateway");
//! assert!(flags.is_enabled("new-pricing", &context));
//! assert!(!flags.is_enabled("new-pricing", &Context::new().user_id("trader-7").app_name("backtest")));
//! assert_eq!(flags.analytics("new-pricing").map(|a| (a.yes, a.no)), Some((1, 1)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Feature flags
//!
//! - `openfeature`: [`openfeature::FlagsProvider`], an OpenFeature provider for the `open-feature` crate,
//!   with OpenFeature's reasons and error codes, plus provider events (ready, configuration changed,
//!   error) that the Rust SDK does not have.
//! - `unleash`: [`unleash::UnleashPoller`], which keeps a flag set in step with an Unleash server's client
//!   API, with ETags and a bootstrap file for when the server is unreachable.

mod coarse_clock;
mod constraint;
mod context;
mod definition;
mod error;
mod file_source;
mod flags;
mod hash;
#[cfg(feature = "openfeature")]
pub mod openfeature;
mod periodic;
mod published;
mod snapshot;
mod stats;
mod text;
#[cfg(feature = "unleash")]
pub mod unleash;

pub use context::{Context, Properties, USER_SEGMENTS_FIELD};
pub use definition::{
    ClientFeatures, ConstraintDefinition, DeltaEvent, DependencyDefinition, FeatureDefinition, FeatureUpdate,
    OverrideDefinition, Payload, SegmentDefinition, StrategyDefinition, VariantDefinition,
};
pub use error::{DefinitionError, FlagError, LoadError};
pub use file_source::FileWatcher;
pub use flags::{
    Exposure, FeatureFlag, FlagAnalytics, FlagStatus, FlagSummary, Flags, FlagsBuilder, FlagsEvent, LoadReport,
};
pub use hash::rollout_bucket;
pub use snapshot::{Reason, VariantResult};
