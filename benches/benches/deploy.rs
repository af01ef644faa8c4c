//! infra-deploy routing decisions (the goal is absolute: <= 20 ns with 2 threads reading while the
//! weights change; no peer library routes in-process):
//!
//! - `deploy_route/infra/1thread`: one thread routing 8-byte request keys over blue, green and a canary.
//! - `deploy_route/infra/2threads_changing`: two threads routing while a third shifts the canary's weight
//!   back and forth every 100 us (time per decision on each thread, both busy).

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use infra_benches::run_split;
use infra_deploy::{Deployer, HealthTarget};

fn deployer() -> Deployer {
    let deployer = Deployer::builder("bench").build().unwrap();
    for (name, version) in [("blue", "v1"), ("green", "v2"), ("canary", "v3")] {
        deployer.register(name, version, HealthTarget::None).unwrap();
    }
    deployer.shift_traffic("green", 40.0).unwrap();
    deployer.shift_traffic("canary", 5.0).unwrap();
    deployer
}

fn route(c: &mut Criterion) {
    let mut group = c.benchmark_group("deploy_route");
    let single = deployer();
    group.bench_function(BenchmarkId::new("infra", "1thread"), |b| {
        let mut key = 0u64;
        b.iter(|| {
            key = key.wrapping_add(0x9E37_79B9_7F4A_7C15);
            black_box(single.route_with(&key.to_le_bytes(), |deployment| deployment.version.len()))
        })
    });

    let shared = deployer();
    group.bench_function(BenchmarkId::new("infra", "2threads_changing"), |b| {
        b.iter_custom(|iters| {
            let stop = Arc::new(AtomicBool::new(false));
            let writer = {
                let (deployer, stop) = (shared.clone(), Arc::clone(&stop));
                std::thread::spawn(move || {
                    let mut changes = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let percent = if changes.is_multiple_of(2) { 5.0 } else { 10.0 };
                        deployer.shift_traffic("canary", percent).unwrap();
                        changes += 1;
                        std::thread::sleep(std::time::Duration::from_micros(100));
                    }
                    changes
                })
            };
            let elapsed = run_split(2, iters, |i| {
                let key = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                black_box(shared.route_with(&key.to_le_bytes(), |deployment| deployment.version.len()));
            });
            stop.store(true, Ordering::Relaxed);
            let changes = writer.join().unwrap();
            black_box(changes);
            // Each thread made half the decisions in the elapsed time: per decision, per thread.
            elapsed * 2
        })
    });
    group.finish();
}

criterion_group!(deploy_benches, route);
criterion_main!(deploy_benches);
