//! The floors every later benchmark is judged against: what an atomic add, a clock read, a channel hop,
//! a concurrent map read and a lock cost on this machine. No infra-ops code runs here.

use std::hint::black_box;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, criterion_group, criterion_main};
use infra_benches::run_split;

fn floors(c: &mut Criterion) {
    let mut group = c.benchmark_group("floor");

    let counter = AtomicU64::new(0);
    group.bench_function("atomic_fetch_add", |b| b.iter(|| black_box(&counter).fetch_add(1, Ordering::Relaxed)));

    // Two threads adding to one cache line: the cost of sharing that per-core sharding avoids.
    let shared = AtomicU64::new(0);
    group.bench_function("atomic_fetch_add_2_threads", |b| {
        b.iter_custom(|iters| {
            run_split(2, iters, |_| {
                black_box(&shared).fetch_add(1, Ordering::Relaxed);
            })
        })
    });

    group.bench_function("std_instant_now", |b| b.iter(std::time::Instant::now));

    let clock = quanta::Clock::new();
    group.bench_function("quanta_clock_now", |b| b.iter(|| black_box(&clock).now()));

    let (tx, rx) = crossbeam_channel::bounded::<u64>(1024);
    group.bench_function("crossbeam_bounded_send_recv", |b| {
        b.iter(|| {
            tx.send(black_box(7)).expect("the receiver lives as long as the bench");
            rx.recv().expect("a value was just sent")
        })
    });

    let map = dashmap::DashMap::new();
    for key in 0..1024u64 {
        map.insert(key, key);
    }
    let mut key = 0u64;
    group.bench_function("dashmap_read_hit", |b| {
        b.iter(|| {
            key = (key + 1) & 1023;
            *map.get(black_box(&key)).expect("every key below 1024 was inserted")
        })
    });

    let mutex = Mutex::new(0u64);
    group.bench_function("mutex_lock_unlock", |b| {
        b.iter(|| {
            let mut guard = black_box(&mutex).lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            *guard += 1;
        })
    });

    group.finish();
}

criterion_group!(benches, floors);
criterion_main!(benches);
