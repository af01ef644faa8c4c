//! ftlog (formatting on its worker, writing to a file) under `log_call`; see `log.rs`.

mod common {
    pub(crate) mod log_facade;
}

use criterion::{Criterion, criterion_group, criterion_main};
use infra_benches::latency;

fn log_call(c: &mut Criterion) {
    let file = ftlog::appender::FileAppender::new(latency::temp_file("ftlog.log"));
    let _guard = ftlog::builder().root(file).try_init().unwrap();
    common::log_facade::bench(c, "ftlog");
}

criterion_group!(benches, log_call);
criterion_main!(benches);
