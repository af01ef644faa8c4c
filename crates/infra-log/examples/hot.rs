#![allow(missing_docs, clippy::print_stdout)]
use std::hint::black_box;
use std::time::Instant;
fn main() {
    let file = std::fs::File::create("/tmp/tp/hot.jsonl").unwrap();
    let logs = infra_log::LogAggregator::builder("bench")
        .sink(infra_log::JsonLinesSink::new(std::io::BufWriter::with_capacity(1 << 20, file)))
        .build()
        .unwrap();
    let n = 3_000_000u64;
    let t = Instant::now();
    for i in 0..n {
        infra_log::info!(logs, "orders", "order accepted", venue = "XLON", qty = black_box(i), price = 101.25);
    }
    println!("per call {:.1} ns", t.elapsed().as_nanos() as f64 / n as f64);
    logs.flush();
    println!("{:?}", logs.stats().sinks);
}
