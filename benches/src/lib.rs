//! Shared helpers for the criterion benchmarks in `benches/`.
//!
//! Naming convention read by `cargo xtask bench`: within a criterion group, the function whose id starts
//! with `infra` is ours and every other function is a peer (or, in the `floor` group, a floor). The report
//! gives each peer's median divided by ours, so a ratio above 1 means we are faster.

pub mod traces;
pub mod workload;

use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Runs `op` `iters` times in total, split evenly over `threads` threads that start together, and
/// returns the wall time. Divided by `iters` (criterion does this) it is the time per operation with all
/// threads busy: throughput, stated as a duration.
pub fn run_split<F>(threads: usize, iters: u64, op: F) -> Duration
where
    F: Fn(u64) + Sync,
{
    let threads = threads.max(1);
    let per_thread = iters / threads as u64;
    let start_line = Barrier::new(threads + 1);
    std::thread::scope(|scope| {
        for t in 0..threads {
            let op = &op;
            let start_line = &start_line;
            let count = if t == 0 { iters - per_thread * (threads as u64 - 1) } else { per_thread };
            scope.spawn(move || {
                start_line.wait();
                for i in 0..count {
                    op(i);
                }
            });
        }
        start_line.wait();
        let started = Instant::now();
        // Leaving the scope joins every thread, so the elapsed time covers all the work.
        started
    })
    .elapsed()
}
