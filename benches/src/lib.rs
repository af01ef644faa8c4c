//! Shared helpers for the criterion benchmarks in `benches/`.
//!
//! Naming convention read by `cargo xtask bench`: within a criterion group, the function whose id starts
//! with `infra` is ours and every other function is a peer (or, in the `floor` group, a floor). The report
//! gives each peer's median divided by ours, so a ratio above 1 means we are faster.

pub mod replay;
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
    run_split_by_thread(threads, iters, |_, i| op(i))
}

/// [`run_split`], telling `op` which thread (0-based) runs it as well as the call's number within that
/// thread, so that threads can work on different parts of a stream.
pub fn run_split_by_thread<F>(threads: usize, iters: u64, op: F) -> Duration
where
    F: Fn(usize, u64) + Sync,
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
                    op(t, i);
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

/// Per-call latency for the logging benchmarks: each call timed on its own with the TSC clock
/// (about 9 ns of the figure is the clock itself, the same for every implementation).
pub mod latency {
    use std::time::Duration;

    /// Times `calls` calls of `op` one by one; returns the 50th and 99th percentiles.
    pub fn percentiles(calls: usize, mut op: impl FnMut(u64)) -> (Duration, Duration) {
        let clock = quanta::Clock::new();
        let mut samples: Vec<u64> = Vec::with_capacity(calls);
        for i in 0..calls as u64 {
            let start = clock.raw();
            op(i);
            samples.push(clock.delta_as_nanos(start, clock.raw()));
        }
        samples.sort_unstable();
        let at = |q: f64| Duration::from_nanos(samples[((samples.len() - 1) as f64 * q) as usize]);
        (at(0.50), at(0.99))
    }

    /// A fresh file path under the system's temporary folder for a benchmark's output, in a folder of
    /// this process's own. A benchmark process has no exit hook to remove it (criterion ends with
    /// `exit`), so the first call sweeps away the folders of earlier runs whose process is gone: logging
    /// benchmarks write gigabytes, and left alone they fill the disk within a few runs.
    pub fn temp_file(name: &str) -> std::path::PathBuf {
        static SWEPT: std::sync::Once = std::sync::Once::new();
        SWEPT.call_once(sweep_finished_runs);
        let dir = std::env::temp_dir().join(format!("infra-benches-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        dir.join(name)
    }

    fn sweep_finished_runs() {
        let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("infra-benches-")) else { continue };
            let alive = std::path::Path::new("/proc").join(pid).exists();
            if !alive && pid.parse::<u32>().is_ok() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}
