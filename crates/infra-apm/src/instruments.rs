//! The handles: [`Counter`], [`Gauge`], [`Histogram`]. Obtained once from the collector, updated with
//! no lookup, no allocation and no lock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::histogram::{HistogramCell, HistogramSnapshot};

/// One cell per stripe of `infra-stripe`: a thread that holds an exclusive stripe is the only writer of
/// its cell and adds with a plain load and store; threads beyond those share the last cell and add
/// atomically. Two threads counting one series write different cache lines, without a locked
/// instruction.
const COUNTER_CELLS: usize = infra_stripe::EXCLUSIVE_STRIPES + 1;

#[derive(Debug, Default)]
#[repr(align(64))]
struct Cell(AtomicU64);

#[derive(Debug, Default)]
pub(crate) struct CounterCell {
    cells: [Cell; COUNTER_CELLS],
}

impl CounterCell {
    #[inline]
    pub(crate) fn add(&self, by: u64) {
        let index = infra_stripe::thread_index();
        infra_stripe::bump(&self.cells[index].0, by, index < infra_stripe::EXCLUSIVE_STRIPES);
    }

    pub(crate) fn value(&self) -> u64 {
        self.cells.iter().map(|cell| cell.0.load(Ordering::Relaxed)).sum()
    }
}

/// A monotonic counter series. Cheap to clone; `inc` is a plain load and store on the calling thread's
/// own cell.
#[derive(Debug, Clone)]
pub struct Counter(pub(crate) Arc<CounterCell>);

impl Counter {
    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.0.add(1);
    }

    /// Adds `by`.
    #[inline]
    pub fn add(&self, by: u64) {
        self.0.add(by);
    }

    /// The total so far.
    pub fn value(&self) -> u64 {
        self.0.value()
    }
}

/// A gauge's value (`f64` bits) and the non-finite values it refused.
#[derive(Debug, Default)]
pub(crate) struct GaugeCell {
    bits: AtomicU64,
    pub(crate) rejected: AtomicU64,
}

impl GaugeCell {
    pub(crate) fn set(&self, value: f64) {
        if value.is_finite() {
            self.bits.store(value.to_bits(), Ordering::Relaxed);
        } else {
            self.rejected.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn add(&self, delta: f64) {
        if !delta.is_finite() {
            self.rejected.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let _ = self.bits.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
            let sum = f64::from_bits(bits) + delta;
            // Keep the last finite value rather than overflow to infinity.
            sum.is_finite().then_some(sum.to_bits())
        });
    }

    pub(crate) fn value(&self) -> f64 {
        f64::from_bits(self.bits.load(Ordering::Relaxed))
    }
}

/// A gauge series: a value that goes up and down. NaN and infinities are refused and counted (a
/// gauge keeps its last finite value).
#[derive(Debug, Clone)]
pub struct Gauge(pub(crate) Arc<GaugeCell>);

impl Gauge {
    /// Sets the value.
    #[inline]
    pub fn set(&self, value: f64) {
        self.0.set(value);
    }

    /// Adds `delta`.
    pub fn add(&self, delta: f64) {
        self.0.add(delta);
    }

    /// Subtracts `delta`.
    pub fn sub(&self, delta: f64) {
        self.0.add(-delta);
    }

    /// The current value.
    pub fn value(&self) -> f64 {
        self.0.value()
    }
}

/// A histogram series with a guaranteed relative error for quantiles (see [`crate::RELATIVE_ERROR`]).
#[derive(Debug, Clone)]
pub struct Histogram(pub(crate) Arc<HistogramCell>);

impl Histogram {
    /// Records a value (negative, NaN and infinite values are refused and counted).
    #[inline]
    pub fn record(&self, value: f64) {
        self.0.record(value);
    }

    /// Records a duration, in seconds (Prometheus's base unit).
    #[inline]
    pub fn record_duration(&self, duration: Duration) {
        self.0.record(duration.as_secs_f64());
    }

    /// The contents now: count, sum, min, max, quantiles.
    pub fn snapshot(&self) -> HistogramSnapshot {
        self.0.snapshot()
    }
}
