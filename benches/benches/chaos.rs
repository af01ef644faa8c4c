//! infra-chaos injection points against the `fail` crate's (with its `failpoints` feature on, as a build
//! that can inject at all must have it), with an empty loop body as the floor:
//!
//! - `chaos_point_idle`: a point while nothing is configured anywhere (the cost production pays).
//! - `chaos_point_other_targeted`: a point while an experiment or failpoint targets another point.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};

/// Both points inline where they are used, as in real code; the floor is the same loop with no point.
#[inline(always)]
fn ours() -> Result<(), infra_chaos::ChaosError> {
    infra_chaos::point!("bench.checked")
}

#[inline(always)]
fn theirs() -> Option<u32> {
    fail::fail_point!("bench.checked", |_| Some(1));
    None
}

#[inline(always)]
fn floor() -> Option<u32> {
    black_box(None)
}

fn points(c: &mut Criterion) {
    let mut group = c.benchmark_group("chaos_point_idle");
    group.bench_function("infra", |b| b.iter(|| black_box(ours())));
    group.bench_function("fail", |b| b.iter(|| black_box(theirs())));
    group.bench_function("floor", |b| b.iter(|| black_box(floor())));
    group.finish();

    // Something else is targeted: ours skips the lookup through the call site's cache, fail looks the
    // name up under its registry lock.
    infra_chaos::global().configure("bench.other", "return").unwrap();
    fail::cfg("bench.other", "return").unwrap();
    let mut group = c.benchmark_group("chaos_point_other_targeted");
    group.bench_function("infra", |b| b.iter(|| black_box(ours())));
    group.bench_function("fail", |b| b.iter(|| black_box(theirs())));
    group.finish();
    infra_chaos::global().remove("bench.other");
    fail::remove("bench.other");
    assert!(ours().is_ok() && theirs().is_none(), "nothing targeted the measured point");
}

criterion_group!(chaos_benches, points);
criterion_main!(chaos_benches);
