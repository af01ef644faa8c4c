//! Resource utilisation of this process (the seed's resource monitoring), read from /proc and kept in
//! gauges: `process_cpu_percent` (of one core, over the time since the last sample),
//! `process_resident_memory_bytes`, `process_threads`, `process_open_fds`.
//!
//! [`Collector::sample_process`] reads them now; the flush thread does it every flush interval. CPU time
//! is counted in the kernel's clock ticks, which Linux exposes to user space at 100 per second on every
//! mainstream architecture. On systems without /proc, sampling reports what it could not read.

use std::time::Duration;

use crate::collector::{Collector, lock};
use crate::error::ApmError;

/// The resident-memory gauge, whose unit the collector knows from the start.
pub(crate) const RESIDENT_MEMORY: &str = "process_resident_memory_bytes";

/// Clock ticks per second of `utime` and `stime` in /proc (USER_HZ).
const TICKS_PER_SECOND: f64 = 100.0;

/// One reading of the process's resources.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ProcessSample {
    /// CPU used since the previous sample, as a percentage of one core (0 on the first sample).
    pub cpu_percent: f64,
    /// Resident memory, in bytes.
    pub resident_bytes: u64,
    /// Threads.
    pub threads: u64,
    /// Open file descriptors.
    pub open_fds: u64,
}

/// The previous CPU reading: ticks, and when on the collector's clock.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CpuMark {
    ticks: u64,
    at: Duration,
}

fn read(path: &str) -> Result<String, ApmError> {
    std::fs::read_to_string(path).map_err(|error| ApmError::Resource(format!("{path}: {error}")))
}

/// utime + stime from /proc/self/stat (fields 14 and 15, counted after the command name's parenthesis).
fn cpu_ticks() -> Result<u64, ApmError> {
    let stat = read("/proc/self/stat")?;
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |index: usize| {
        fields.get(index).and_then(|field| field.parse::<u64>().ok()).ok_or_else(|| {
            ApmError::Resource(format!("/proc/self/stat: field {} is missing or not a number", index + 3))
        })
    };
    Ok(field(11)? + field(12)?)
}

/// A `Key: value` line of /proc/self/status, as a number (the unit, if any, ignored).
fn status_field(status: &str, key: &str) -> Result<u64, ApmError> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| ApmError::Resource(format!("/proc/self/status has no {key}")))
}

impl Collector {
    /// Reads the process's resources now and sets the `process_*` gauges.
    pub fn sample_process(&self) -> Result<ProcessSample, ApmError> {
        let status = read("/proc/self/status")?;
        let resident_bytes = status_field(&status, "VmRSS")? * 1024;
        let threads = status_field(&status, "Threads")?;
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .map_err(|error| ApmError::Resource(format!("/proc/self/fd: {error}")))?
            .count() as u64;
        let ticks = cpu_ticks()?;
        let at = self.elapsed();
        let cpu_percent = {
            let mut mark = lock(&self.inner.cpu_mark);
            let previous = mark.replace(CpuMark { ticks, at });
            match previous {
                Some(previous) if at > previous.at => {
                    let used = ticks.saturating_sub(previous.ticks) as f64 / TICKS_PER_SECOND;
                    100.0 * used / (at - previous.at).as_secs_f64()
                }
                _ => 0.0,
            }
        };
        let sample = ProcessSample { cpu_percent, resident_bytes, threads, open_fds };
        self.gauge("process_cpu_percent", "CPU used since the previous sample, percent of one core.", &[])?
            .set(sample.cpu_percent);
        self.gauge(RESIDENT_MEMORY, "Resident memory.", &[])?.set(resident_bytes as f64);
        self.gauge("process_threads", "Threads of this process.", &[])?.set(threads as f64);
        self.gauge("process_open_fds", "Open file descriptors.", &[])?.set(open_fds as f64);
        Ok(sample)
    }
}
