//! fast_log (a channel to its writer thread, writing to a file) under `log_call`; see `log.rs`.

mod common {
    pub(crate) mod log_facade;
}

use criterion::{Criterion, criterion_group, criterion_main};
use infra_benches::latency;

fn log_call(c: &mut Criterion) {
    let path = latency::temp_file("fast_log.log");
    fast_log::init(fast_log::Config::new().file(path.to_str().unwrap()).chan_len(Some(100_000))).unwrap();
    common::log_facade::bench(c, "fast_log");
}

criterion_group!(benches, log_call);
criterion_main!(benches);
