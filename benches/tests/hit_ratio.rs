//! The ARC traces replayed single-threaded (get, insert on a miss), as the README of
//! ../shared/peers/cache-traces prescribes, against the best hit ratio any peer reached at each row
//! (theine's Caffeine-style policy included).
//!
//! The default hasher is seeded at random, and the seed moves the policy a little (which keys collide in
//! the sketch, where the hill climber's samples fall): by up to a point either way on the small OLTP
//! caches. So each row is replayed under six fixed seeds; the mean must reach the best peer, and the
//! spread is printed (`cargo test -p infra-cache --test hit_ratio -- --nocapture`).

use infra_benches::{replay, traces};

const SEEDS: u64 = 6;

fn replay(keys: &[u64], capacity: u64, seed: u64) -> f64 {
    let (hits, cache) = replay::replay(keys, capacity, seed);
    let stats = cache.stats();
    assert_eq!(stats.hits, hits, "the statistics count what the replay saw");
    assert!(stats.entries as u64 <= capacity, "{} entries in a cache of {capacity}", stats.entries);
    replay::percent(hits, keys)
}

#[test]
fn reaches_the_best_peer_at_every_row() {
    let oltp = traces::load("OLTP");
    let p3 = traces::load("P3");
    assert_eq!((oltp.len(), p3.len()), (914_145, 3_912_296), "the README's request counts");
    let mut failures = Vec::new();
    for (trace, capacity, best_peer) in traces::ROWS {
        let keys = if trace == "OLTP" { &oltp } else { &p3 };
        let ratios: Vec<f64> = (1..=SEEDS).map(|seed| replay(keys, capacity, seed)).collect();
        let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
        let (low, high) = ratios.iter().fold((f64::MAX, f64::MIN), |(low, high), &r| (low.min(r), high.max(r)));
        eprintln!("{trace} {capacity}: mean {mean:.2}% (seeds {low:.2}..{high:.2}), best peer {best_peer:.2}%");
        if mean < best_peer {
            failures.push(format!("{trace} {capacity}: {mean:.2}% < {best_peer:.2}%"));
        }
    }
    assert!(failures.is_empty(), "below the best peer: {failures:?}");
}
