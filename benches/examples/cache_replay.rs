//! A replay harness for work on infra-cache's policy and its miss path, where wall-clock timings on a
//! shared 2-core machine are too noisy to decide anything: it replays fixed streams, so that a change
//! can be judged by exact hit ratios and, under valgrind, by exact instruction and cache-miss counts.
//!
//! ```text
//! cargo build --release -p infra-benches --example cache_replay
//! target/release/examples/cache_replay arc [SEEDS]          # the six ARC rows, mean over hasher seeds 1..=SEEDS (6)
//! target/release/examples/cache_replay goi ours|quick PASSES # get_or_insert_with over the criterion stream
//! target/release/examples/cache_replay hits ours|quick PASSES # hits only, through get_or_insert_with
//! target/release/examples/cache_replay duel PAIRS           # get_or_insert_with, ours and quick_cache in turns
//! ```
//!
//! - `arc` takes about 4 s for six seeds. A change meant to leave the policy alone (a refactor, an
//!   inlining) must reproduce every mean to the hundredth; the rows are chaotic in the policy's details
//!   (when a random number is drawn moves OLTP 1,000 by half a point), so a policy change needs 24 seeds.
//! - `goi` replays `benches/benches/cache.rs`'s `get_or_insert_with` stream (Zipf 0.99 over 1,000,000
//!   keys, room for 100,000) one warm-up pass and then `PASSES` passes, printing each pass's misses and
//!   time. `SEED` (default 7) fixes our hasher's seed, so the miss counts are reproducible (to a few
//!   misses in 40 million: the maintenance thread's timing moves a climber sample now and then);
//!   `STREAM` (default 12, the benchmark's) draws another Zipf stream, to check that a policy change is
//!   not tuned to one stream. Under `valgrind --tool=callgrind` the whole program's instruction count is
//!   deterministic (1,857 million for `goi ours 4` with `SEED=7` on 2026-12-07; the hit path
//!   is inlined into this program's loop, so count the whole program, or the miss path alone with
//!   `--toggle-collect='*load_missed*'`; compare two builds of this example, as inlining moves counts
//!   between programs); under `--tool=cachegrind
//!   --cache-sim=yes --LL=1048576,16,64 --D1=49152,12,64` so are the simulated L2 misses.
//! - `hits` measures the hit path alone (every key cached), in nanoseconds a call.
//! - `duel` times the `goi` stream with both caches in one process, taking turns a pass at a time, and
//!   prints the median of the pairs' ratios: the steadiest timing comparison on a drifting host (not a
//!   substitute for the criterion benchmark, which `cargo xtask bench` publishes).
//!
//! The policy's climber needs 20 to 40 passes of the `goi` stream to settle; compare miss counts pass by
//! pass (or means over passes 21 onwards), not totals over a few passes.

// Printing the figures is this program's job.
#![allow(clippy::print_stdout)]

use std::convert::Infallible;
use std::time::{Duration, Instant};

use infra_benches::replay::{self, Ours, seeded};
use infra_benches::traces;
use infra_benches::workload::{scatter, zipf_keys};

/// What the loaders compute: cheap, so the figures are the cache's own cost.
fn load(key: u64) -> u64 {
    key ^ 0x5555
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |index: usize, default: u64| args.get(index).and_then(|value| value.parse().ok()).unwrap_or(default);
    let seed = std::env::var("SEED").ok().and_then(|value| value.parse().ok()).unwrap_or(7);
    match args.first().map(String::as_str) {
        Some("arc") => arc(number(1, 6)),
        Some("goi") => get_or_insert(args.get(1).map(String::as_str) == Some("quick"), number(2, 4), seed),
        Some("hits") => hits(args.get(1).map(String::as_str) == Some("quick"), number(2, 8), seed),
        Some("duel") => duel(number(1, 20), seed),
        _ => println!("usage: cache_replay arc [SEEDS] | goi ours|quick PASSES | hits ours|quick PASSES | duel PAIRS"),
    }
}

/// Each ARC row's hit ratio, the mean over hasher seeds `1..=seeds`, against the best peer's figure.
fn arc(seeds: u64) {
    let oltp = traces::load("OLTP");
    let p3 = traces::load("P3");
    for (trace, capacity, best) in traces::ROWS {
        let keys = if trace == "OLTP" { &oltp } else { &p3 };
        let ratios: Vec<f64> =
            (1..=seeds).map(|seed| replay::percent(replay::replay(keys, capacity, seed).0, keys)).collect();
        let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
        let below = ratios.iter().filter(|&&ratio| ratio < best).count();
        println!("{trace} {capacity}: {mean:.2} (best peer {best}), {below} of {seeds} seeds below it");
    }
}

/// The criterion benchmark's `get_or_insert_with` workload (Zipf 0.99 over 1,000,000 keys, room for a
/// tenth) with a cache of each kind, so that `goi` and `duel` run exactly the same passes.
struct GetOrInsert {
    keys: Vec<u64>,
    ours: Ours,
    theirs: quick_cache::sync::Cache<u64, u64>,
    their_misses: u64,
    checksum: u64,
}

impl GetOrInsert {
    const UNIVERSE: usize = 1_000_000;

    /// The workload over Zipf stream `stream` (the benchmark's is 12), our hasher seeded with `seed`.
    fn new(stream: u64, seed: u64) -> Self {
        GetOrInsert {
            keys: zipf_keys(Self::UNIVERSE, 0.99, 1 << 20, stream),
            ours: seeded(Self::UNIVERSE as u64 / 10, seed),
            theirs: quick_cache::sync::Cache::new(Self::UNIVERSE / 10),
            their_misses: 0,
            checksum: 0,
        }
    }

    /// Misses so far, ours or quick_cache's.
    fn misses(&self, quick: bool) -> u64 {
        if quick { self.their_misses } else { self.ours.stats().misses }
    }

    /// One pass of the stream through ours or quick_cache; returns its time.
    fn pass(&mut self, quick: bool) -> Duration {
        let started = Instant::now();
        let their_misses = &mut self.their_misses;
        for &key in &self.keys {
            self.checksum = self.checksum.wrapping_add(if quick {
                self.theirs
                    .get_or_insert_with(&key, || {
                        *their_misses += 1;
                        Ok::<u64, Infallible>(load(key))
                    })
                    .unwrap_or_default()
            } else {
                self.ours.get_or_insert_with(key, || load(key))
            });
        }
        started.elapsed()
    }

    /// Nanoseconds a call of a pass that took `took`.
    fn per_call(&self, took: Duration) -> f64 {
        took.as_nanos() as f64 / self.keys.len() as f64
    }
}

/// `get_or_insert_with` over the criterion benchmark's stream: misses and time per pass.
fn get_or_insert(quick: bool, passes: u64, seed: u64) {
    // `STREAM` draws another stream than the benchmark's.
    let stream = std::env::var("STREAM").ok().and_then(|value| value.parse().ok()).unwrap_or(12);
    let mut workload = GetOrInsert::new(stream, seed);
    let mut total = Duration::ZERO;
    for pass in 0..=passes {
        let misses_before = workload.misses(quick);
        let took = workload.pass(quick);
        let misses = workload.misses(quick) - misses_before;
        let label = if pass == 0 { "warm-up".to_owned() } else { format!("pass {pass}") };
        println!("{label}: {misses} misses, {:.1} ns a call", workload.per_call(took));
        if pass > 0 {
            total += took;
        }
    }
    let calls = passes.max(1) * workload.keys.len() as u64;
    println!("after warm-up: {:.1} ns a call (checksum {})", total.as_nanos() as f64 / calls as f64, workload.checksum);
}

/// `get_or_insert_with` over the benchmark's stream, ours and quick_cache taking turns pass by pass in one
/// process (the order swapped every pair), after 20 passes each to settle: on a host whose speed drifts
/// from minute to minute, the two passes of a pair run under nearly the same conditions, so the median of
/// the pairs' ratios is steadier than timings taken minutes apart.
fn duel(pairs: u64, seed: u64) {
    const SETTLING_PASSES: u64 = 20;
    let mut workload = GetOrInsert::new(12, seed);
    for _ in 0..SETTLING_PASSES {
        workload.pass(false);
        workload.pass(true);
    }
    let mut ratios = Vec::new();
    for pair in 0..pairs {
        // Swapped every pair, so that neither cache always runs right after the other.
        let order = if pair % 2 == 0 { [false, true] } else { [true, false] };
        let mut ns = [0.0; 2];
        for quick in order {
            let took = workload.pass(quick);
            ns[usize::from(quick)] = workload.per_call(took);
        }
        let [ours_ns, quick_ns] = ns;
        println!(
            "pair {}: ours {ours_ns:.1} ns, quick_cache {quick_ns:.1} ns, quick_cache/ours {:.3}",
            pair + 1,
            quick_ns / ours_ns
        );
        ratios.push(quick_ns / ours_ns);
    }
    ratios.sort_by(f64::total_cmp);
    let at = |share: f64| ratios.get(((ratios.len() - 1) as f64 * share).round() as usize).copied().unwrap_or(f64::NAN);
    println!(
        "quick_cache/ours over {pairs} pairs: median {:.3} (quartiles {:.3} to {:.3}; above 1, ours is faster)",
        at(0.5),
        at(0.25),
        at(0.75)
    );
}

/// Hits only: a cache holding every key of a Zipf stream, read through `get_or_insert_with`.
fn hits(quick: bool, passes: u64, seed: u64) {
    const KEYS: u64 = 100_000;
    let keys = zipf_keys(KEYS as usize, 1.0, 1 << 16, 11);
    let ours = seeded(KEYS * 2, seed);
    let theirs = quick_cache::sync::Cache::<u64, u64>::new(KEYS as usize * 2);
    for key in (0..KEYS).map(scatter) {
        ours.insert(key, key);
        theirs.insert(key, key);
    }
    let mut checksum = 0u64;
    let started = Instant::now();
    for _ in 0..passes * 16 {
        for &key in &keys {
            checksum = checksum.wrapping_add(if quick {
                theirs.get_or_insert_with(&key, || Ok::<u64, Infallible>(key)).unwrap_or_default()
            } else {
                ours.get_or_insert_with(key, || key)
            });
        }
    }
    let calls = passes.max(1) * 16 * keys.len() as u64;
    println!("{:.2} ns a call (checksum {checksum})", started.elapsed().as_nanos() as f64 / calls as f64);
}
