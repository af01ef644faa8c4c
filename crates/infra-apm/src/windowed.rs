//! Histograms with sliding windows: the last minute and the last five minutes beside the totals, for
//! quantiles and rates of recent traffic (opt-in, as windows cost about 40 KiB per series).

use std::sync::Arc;
use std::time::Duration;

use crate::collector::{Collector, lock};
use crate::error::ApmError;
use crate::histogram::HistogramSnapshot;
use crate::instruments::Histogram;
use crate::window::HistogramWindows;

/// A histogram series that also keeps its last one and five minutes ([`Collector::windowed_histogram`]).
#[derive(Debug, Clone)]
pub struct WindowedHistogram {
    histogram: Histogram,
    windows: Arc<HistogramWindows>,
    clock: quanta::Clock,
    epoch: quanta::Instant,
}

/// A window's contents and its rate.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowView {
    /// The values recorded in the window.
    pub snapshot: HistogramSnapshot,
    /// Values per second over the window (over the time since start, if shorter).
    pub per_second: f64,
}

impl WindowedHistogram {
    /// Records a value in the totals and both windows.
    pub fn record(&self, value: f64) {
        self.histogram.record(value);
        let elapsed = self.clock.now().duration_since(self.epoch);
        self.windows.minute.record(elapsed, value);
        self.windows.five_minutes.record(elapsed, value);
    }

    /// Records a duration, in seconds.
    pub fn record_duration(&self, duration: Duration) {
        self.record(duration.as_secs_f64());
    }

    /// Everything since start.
    pub fn total(&self) -> HistogramSnapshot {
        self.histogram.snapshot()
    }

    /// The last minute (moving in 10-second steps).
    pub fn last_minute(&self) -> WindowView {
        self.view(&self.windows.minute, Duration::from_secs(60))
    }

    /// The last five minutes (moving in 30-second steps).
    pub fn last_five_minutes(&self) -> WindowView {
        self.view(&self.windows.five_minutes, Duration::from_secs(300))
    }

    fn view(&self, window: &crate::window::Window, length: Duration) -> WindowView {
        let elapsed = self.clock.now().duration_since(self.epoch);
        let snapshot = window.view(elapsed);
        let seconds = length.min(elapsed).as_secs_f64();
        let per_second = if seconds > 0.0 { snapshot.count as f64 / seconds } else { 0.0 };
        WindowView { snapshot, per_second }
    }
}

impl Collector {
    /// The histogram series `name{labels}` with 1- and 5-minute windows. The series is the same as
    /// [`histogram`](Self::histogram)'s (exposed alike); every handle from this method shares one set of
    /// windows.
    pub fn windowed_histogram(
        &self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
    ) -> Result<WindowedHistogram, ApmError> {
        let histogram = self.histogram(name, help, labels)?;
        let mut key: Vec<(String, String)> = labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        key.sort();
        let windows = Arc::clone(lock(&self.inner.histogram_windows).entry((name.to_owned(), key)).or_default());
        Ok(WindowedHistogram { histogram, windows, clock: self.clock().clone(), epoch: self.inner.epoch })
    }
}
