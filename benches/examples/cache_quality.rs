//! Cache quality, measured rather than timed: hit ratios on the ARC traces, on Zipf keys and on a
//! scan-polluted mix, for infra-cache, moka, quick_cache, mini-moka and a plain LRU, replayed
//! single-threaded (get, insert on a miss); then heap bytes per entry for a million small entries.
//!
//! `cargo run --release -p infra-benches --example cache_quality` prints Markdown; `cargo xtask bench`
//! puts it in docs/benchmarks.md.

// Printing the report is this program's job.
#![allow(clippy::print_stdout)]

use std::alloc::System;
use std::num::NonZeroUsize;

use infra_benches::workload::{scan_polluted_keys, zipf_keys};
use infra_benches::{replay, traces};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// A cache as the replay sees it.
trait Replay {
    /// Looks `key` up and inserts it on a miss; true on a hit.
    fn access(&mut self, key: u64) -> bool;
}

struct Infra(infra_cache::Cache<u64, u64>);
struct Moka(moka::sync::Cache<u64, u64>);
struct Quick(quick_cache::unsync::Cache<u64, u64>);
struct MiniMoka(mini_moka::sync::Cache<u64, u64>);
struct Lru(lru::LruCache<u64, u64>);

/// The replay is the same for every cache whose API is `get` and `insert`.
macro_rules! replay_get_insert {
    ($($cache:ty),*) => {$(
        impl Replay for $cache {
            fn access(&mut self, key: u64) -> bool {
                let hit = self.0.get(&key).is_some();
                if !hit {
                    self.0.insert(key, key);
                }
                hit
            }
        }
    )*};
}

replay_get_insert!(Infra, Moka, Quick, MiniMoka);

impl Replay for Lru {
    fn access(&mut self, key: u64) -> bool {
        let hit = self.0.get(&key).is_some();
        if !hit {
            self.0.put(key, key);
        }
        hit
    }
}

const NAMES: [&str; 5] = ["infra-cache", "moka", "quick_cache", "mini-moka", "LRU"];

fn caches(capacity: usize) -> Vec<Box<dyn Replay>> {
    let entries = NonZeroUsize::new(capacity).expect("capacities are positive");
    vec![
        Box::new(Infra(infra_cache::Cache::new(capacity as u64))),
        Box::new(Moka(moka::sync::Cache::new(capacity as u64))),
        Box::new(Quick(quick_cache::unsync::Cache::new(capacity))),
        Box::new(MiniMoka(mini_moka::sync::Cache::new(capacity as u64))),
        Box::new(Lru(lru::LruCache::new(entries))),
    ]
}

fn hit_ratio(cache: &mut dyn Replay, keys: &[u64]) -> f64 {
    let hits = keys.iter().filter(|&&key| cache.access(key)).count();
    hits as f64 * 100.0 / keys.len() as f64
}

/// Hasher seeds ours is replayed under: the policy moves a little with the seed (see docs/cache.md), so
/// one run of a random seed would report luck; the row gives the mean and the range.
const SEEDS: u64 = 6;

/// Our hit ratio under each fixed seed.
fn our_ratios(keys: &[u64], capacity: usize) -> Vec<f64> {
    (1..=SEEDS).map(|seed| replay::percent(replay::replay(keys, capacity as u64, seed).0, keys)).collect()
}

/// One table row: the workload, then each cache's hit ratio (ours: mean over the seeds, and the
/// range), the best mean in bold.
fn row(label: &str, keys: &[u64], capacity: usize, reference: Option<f64>) -> String {
    let ours = our_ratios(keys, capacity);
    let mean = ours.iter().sum::<f64>() / ours.len() as f64;
    let (low, high) = ours.iter().fold((f64::MAX, f64::MIN), |(low, high), &r| (low.min(r), high.max(r)));
    let mut ratios = vec![mean];
    ratios.extend(caches(capacity).iter_mut().skip(1).map(|cache| hit_ratio(cache.as_mut(), keys)));
    let best = ratios.iter().cloned().fold(f64::MIN, f64::max);
    let bold = |ratio: f64, text: String| if ratio == best { format!("**{text}**") } else { text };
    let mut cells = vec![bold(mean, format!("{mean:.2} ({low:.2}–{high:.2})"))];
    cells.extend(ratios[1..].iter().map(|&ratio| bold(ratio, format!("{ratio:.2}"))));
    let reference = reference.map_or("–".to_owned(), |value| format!("{value:.2}"));
    format!("| {label} | {} | {reference} |", cells.join(" | "))
}

/// Heap bytes per entry once `entries` small entries (u64 keys and values) are in, caches sized for them.
fn bytes_per_entry(entries: usize) -> Vec<f64> {
    let mut measured = Vec::new();
    for index in 0..NAMES.len() {
        let region = Region::new(GLOBAL);
        let mut cache = caches(entries).swap_remove(index);
        for key in 0..entries as u64 {
            cache.access(key.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        }
        let stats = region.change();
        measured.push((stats.bytes_allocated as f64 - stats.bytes_deallocated as f64) / entries as f64);
        drop(cache);
    }
    measured
}

fn main() {
    println!("### Hit ratios (percent)\n");
    println!("Replayed single-threaded: get, insert on a miss. infra-cache: the mean over six hasher seeds,");
    println!("with the range; the peers: one run each. Best of each row in bold; the last column is the best");
    println!("figure any peer reached in ../shared/peers/cache-traces/README.md (theine included).\n");
    println!("| workload, capacity | {} | best peer, README |", NAMES.join(" | "));
    println!("| --- |{} ---: |", " ---: |".repeat(NAMES.len()));
    let oltp = traces::load("OLTP");
    let p3 = traces::load("P3");
    for (trace, capacity, best) in traces::ROWS {
        let keys = if trace == "OLTP" { &oltp } else { &p3 };
        println!("{}", row(&format!("ARC {trace}, {capacity}"), keys, capacity as usize, Some(best)));
    }
    for s in [0.8, 1.0, 1.2] {
        let keys = zipf_keys(100_000, s, 2_000_000, 5);
        println!("{}", row(&format!("Zipf s={s}, 100,000 keys, 1,000"), &keys, 1_000, None));
        println!("{}", row(&format!("Zipf s={s}, 100,000 keys, 10,000"), &keys, 10_000, None));
    }
    let scans = scan_polluted_keys(100_000, 2_000_000, 6);
    println!("{}", row("Zipf 0.99 + 20% scans, 10,000", &scans, 10_000, None));
    let skewed = zipf_keys(1_000_000, 0.99, 2_000_000, 12);
    println!("{}", row("Zipf 0.99, 1,000,000 keys, 100,000 (the get_or_insert bench)", &skewed, 100_000, None));

    println!("\n### Memory\n");
    println!("Heap bytes per entry with 1,000,000 entries (u64 keys and values) in a cache sized for them:\n");
    println!("| {} |", NAMES.join(" | "));
    println!("|{}", " ---: |".repeat(NAMES.len()));
    let cells: Vec<String> = bytes_per_entry(1_000_000).iter().map(|bytes| format!("{bytes:.0}")).collect();
    println!("| {} |", cells.join(" | "));
}
