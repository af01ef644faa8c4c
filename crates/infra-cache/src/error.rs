//! Errors: what a builder rejects, and what a failed load tells its callers.

use std::sync::Arc;

use thiserror::Error;

/// A cache configuration that cannot work, from [`crate::CacheBuilder::build`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Neither `max_capacity` nor `max_weight` was set.
    #[error("the cache has no bound: set max_capacity(entries), or weigher(..) with max_weight(total)")]
    Unbounded,
    /// Both an entry count and a weight bound were set.
    #[error("max_capacity and max_weight were both set; a cache is bounded by entries or by weight, not both")]
    TwoBounds,
    /// `max_weight` was set without a weigher, or a weigher without `max_weight`.
    #[error("a weight bound needs both weigher(..) and max_weight(..); only the {0} was set")]
    HalfWeighted(&'static str),
    /// A zero duration where that cannot work: a time to live or time to idle would expire every entry
    /// as it is written, a zero interval would spin a thread.
    #[error(
        "{0} is zero, which cannot work (every entry would expire as it is written, or a thread would spin); leave it unset instead"
    )]
    ZeroDuration(&'static str),
    /// Zero shards were asked for.
    #[error("shards(0): a cache needs at least one shard")]
    ZeroShards,
}

/// Why a load through [`crate::Cache::try_get_or_insert_with`] produced no value.
///
/// Every caller waiting on the same load gets the same error (the loader's error is shared, not cloned).
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The loader returned an error.
    #[error("the loader failed: {0}")]
    Failed(Arc<dyn std::error::Error + Send + Sync + 'static>),
    /// The loader panicked; the panic went on in the loading thread, waiters get this.
    #[error("the loader panicked")]
    Panicked,
    /// The task running an async loader was dropped before the load finished.
    #[error("the task loading this key was dropped before it finished")]
    Abandoned,
}

impl LoadError {
    /// The loader's error as its own type, when it is an `E`.
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        match self {
            LoadError::Failed(error) => error.downcast_ref::<E>(),
            LoadError::Panicked | LoadError::Abandoned => None,
        }
    }
}
