//! Key streams replayed through infra-cache single-threaded (a read, and an insert on a miss), as the
//! traces' README prescribes, with the hasher's seed fixed: the policy moves a little with the seed
//! (which keys collide in the sketch, where the climber's samples fall), so replays that are compared or
//! averaged use fixed seeds. Shared by the hit-ratio test, the `cache_quality` report and the
//! `cache_replay` harness.

use foldhash::fast::FixedState;
use infra_cache::Cache;

/// Our cache with a fixed hasher seed.
pub type Ours = Cache<u64, u64, FixedState>;

/// A cache of `capacity` entries whose hasher has the fixed `seed`.
pub fn seeded(capacity: u64, seed: u64) -> Ours {
    let built = Cache::builder().max_capacity(capacity).hasher(FixedState::with_seed(seed)).build();
    built.unwrap_or_else(|error| panic!("a capacity-only cache builds: {error}"))
}

/// Replays `keys` through a fresh [`seeded`] cache; returns the hits, and the cache for checks of its
/// state.
pub fn replay(keys: &[u64], capacity: u64, seed: u64) -> (u64, Ours) {
    let cache = seeded(capacity, seed);
    let mut hits = 0u64;
    for &key in keys {
        if cache.get(&key).is_some() {
            hits += 1;
        } else {
            cache.insert(key, key);
        }
    }
    (hits, cache)
}

/// Hits as a percentage of the keys replayed.
pub fn percent(hits: u64, keys: &[u64]) -> f64 {
    hits as f64 * 100.0 / keys.len().max(1) as f64
}
