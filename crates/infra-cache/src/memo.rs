//! [`Memoized`]: a function whose results are cached by argument (the seed's `cached` decorator).

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::time::Duration;

use crate::Cache;

/// A function whose results are kept in a [`Cache`], keyed by the argument.
///
/// Concurrent calls with one argument run the function once (single flight). Build one with
/// [`Cache::memoize`].
///
/// ```
/// use std::time::Duration;
/// use infra_cache::Cache;
///
/// let square = Cache::new(1_000).memoize(|x: &u64| x * x).with_ttl(Duration::from_secs(30));
/// assert_eq!(square.call(12), 144);
/// assert_eq!(square.call(12), 144);
/// assert_eq!(square.cache().stats().loads, 1);
/// ```
pub struct Memoized<A, R, F, S = crate::DefaultHashBuilder> {
    cache: Cache<A, R, S>,
    function: F,
    ttl: Option<Duration>,
}

impl<A, R, F, S> fmt::Debug for Memoized<A, R, F, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Memoized").field("cache", &self.cache).field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl<A, R, S> Cache<A, R, S>
where
    A: Hash + Eq + Clone + Send + Sync + 'static,
    R: Clone + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    /// Wraps `function` so that its results are kept in this cache, keyed by the argument.
    pub fn memoize<F: Fn(&A) -> R>(self, function: F) -> Memoized<A, R, F, S> {
        Memoized { cache: self, function, ttl: None }
    }
}

impl<A, R, F, S> Memoized<A, R, F, S>
where
    A: Hash + Eq + Clone + Send + Sync + 'static,
    R: Clone + Send + Sync + 'static,
    F: Fn(&A) -> R,
    S: BuildHasher + Send + Sync + 'static,
{
    /// Results expire after `ttl` (the seed's `ttl_seconds`), whatever the cache's own time to live.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// The function's result for `argument`, from the cache when it is there.
    pub fn call(&self, argument: A) -> R {
        let function = &self.function;
        let computed = |argument: &A| function(argument);
        let key = argument.clone();
        self.cache.get_or_insert_with_ttl(key, self.ttl, move || computed(&argument))
    }

    /// The cache behind the function, for statistics or invalidation.
    pub fn cache(&self) -> &Cache<A, R, S> {
        &self.cache
    }
}
