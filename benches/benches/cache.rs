//! infra-cache against moka, quick_cache and mini-moka, with a dashmap read as the floor:
//!
//! - `cache_read_hit/N`: reads that hit, keys drawn from Zipf(1.0) over 100,000 keys all cached, by 1 and
//!   2 threads (wall time per read with all threads busy: the same figure from 1 to 2 threads means the
//!   second thread added nothing, half of it linear scaling), each thread from its own point of the stream.
//! - `cache_get_or_insert`: `get_or_insert_with` (moka `get_with`), Zipf(0.99) over 1,000,000 keys with
//!   room for 10% of them, so a share of the calls miss, load and evict; measured in steady state, after
//!   16 passes of the key stream, each implementation walking on through the stream from sample to sample.
//!
//! Hit ratios and memory per entry are not timings: `cargo run --release -p infra-benches --example
//! cache_quality` measures them (and `cargo xtask bench` puts its table in docs/benchmarks.md).

use std::hint::black_box;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, criterion_group, criterion_main};
use infra_benches::run_split_by_thread;
use infra_benches::workload::zipf_keys;

const KEYS: usize = 100_000;
const STREAM: usize = 1 << 16;

fn read_hits(c: &mut Criterion) {
    let keys = zipf_keys(KEYS, 1.0, STREAM, 11);
    let all = (0..KEYS as u64).map(infra_benches::workload::scatter);

    let ours: infra_cache::Cache<u64, u64> = infra_cache::Cache::new(KEYS as u64 * 2);
    let moka = moka::sync::Cache::<u64, u64>::new(KEYS as u64 * 2);
    let quick = quick_cache::sync::Cache::<u64, u64>::new(KEYS * 2);
    let mini = mini_moka::sync::Cache::<u64, u64>::new(KEYS as u64 * 2);
    let floor = dashmap::DashMap::<u64, u64>::new();
    for key in all {
        ours.insert(key, key);
        moka.insert(key, key);
        quick.insert(key, key);
        mini.insert(key, key);
        floor.insert(key, key);
    }
    moka.run_pending_tasks();
    for key in &keys {
        assert_eq!(ours.get(key), Some(*key), "every key is cached: the group measures hits");
    }

    let mut group = c.benchmark_group("cache_read_hit");
    for threads in [1usize, 2] {
        bench_reads(&mut group, "infra", threads, &keys, |key| {
            black_box(ours.get(key));
        });
        bench_reads(&mut group, "moka", threads, &keys, |key| {
            black_box(moka.get(key));
        });
        bench_reads(&mut group, "quick_cache", threads, &keys, |key| {
            black_box(quick.get(key));
        });
        bench_reads(&mut group, "mini_moka", threads, &keys, |key| {
            black_box(mini.get(key));
        });
        bench_reads(&mut group, "dashmap_floor", threads, &keys, |key| {
            black_box(floor.get(key).map(|entry| *entry.value()));
        });
    }
    group.finish();
}

/// One implementation's reads by `threads` threads, walking the key stream. Each thread reads from its own
/// starting point (started together, they would read the same keys in step, every read meeting the other
/// thread's on the same shard's lock word), and the walk goes on from sample to sample (see
/// [`bench_calls`] on why the position lives outside the routine).
fn bench_reads(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    threads: usize,
    keys: &[u64],
    read: impl Fn(&u64) + Sync,
) {
    let mut position = 0usize;
    group.bench_function(BenchmarkId::new(name, threads), |b| {
        b.iter_custom(|iters| {
            let base = position;
            position = position.wrapping_add(iters as usize);
            run_split_by_thread(threads, iters, |thread, i| {
                read(&keys[(base + thread * STREAM / threads + i as usize) & (STREAM - 1)]);
            })
        })
    });
}

fn get_or_insert(c: &mut Criterion) {
    const UNIVERSE: usize = 1_000_000;
    const CAPACITY: usize = UNIVERSE / 10;
    let keys = zipf_keys(UNIVERSE, 0.99, 1 << 20, 12);
    let load = |key: u64| key ^ 0x5555;

    let ours: infra_cache::Cache<u64, u64> = infra_cache::Cache::new(CAPACITY as u64);
    let moka = moka::sync::Cache::<u64, u64>::new(CAPACITY as u64);
    let quick = quick_cache::sync::Cache::<u64, u64>::new(CAPACITY);
    let ours_call = |k: u64| ours.get_or_insert_with(k, || load(k));
    let moka_call = |k: u64| moka.get_with(k, || load(k));
    let quick_call =
        |k: u64| quick.get_or_insert_with(&k, || Ok::<u64, std::convert::Infallible>(load(k))).unwrap_or_default();
    // Steady state before measuring: 16 passes of the stream fill each cache and settle its policy (a
    // young infra-cache misses ~15% more for its first 14 passes of this stream, docs/cache.md), so the
    // figure does not depend on how many iterations criterion's warm-up happens to run. One pass in
    // test mode, where each routine runs once.
    let settling_passes = if std::env::args().any(|arg| arg == "--bench") { 16 } else { 1 };
    for _ in 0..settling_passes {
        for &k in &keys {
            ours_call(k);
            moka_call(k);
            quick_call(k);
        }
    }

    let mut group = c.benchmark_group("cache_get_or_insert");
    bench_calls(&mut group, "infra", &keys, ours_call);
    bench_calls(&mut group, "moka", &keys, moka_call);
    bench_calls(&mut group, "quick_cache", &keys, quick_call);
    group.finish();
}

/// One implementation's calls over the key stream (a power of two long), one key a call. The position
/// in the stream lives outside the routine: criterion calls a routine once per sample (and per warm-up
/// step), and a counter declared inside would restart every sample at the stream's first key, measuring
/// replays of the stream's first few hundred thousand keys instead of the stream.
fn bench_calls(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, keys: &[u64], call: impl Fn(u64) -> u64) {
    let mut position = 0usize;
    group.bench_function(name, |b| {
        b.iter(|| {
            position += 1;
            call(keys[position & (keys.len() - 1)])
        })
    });
}

criterion_group!(benches, read_hits, get_or_insert);
criterion_main!(benches);
