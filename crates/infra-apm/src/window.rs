//! Sliding windows: the last minute and the last five minutes of a histogram, in bounded memory.
//!
//! A window is a ring of slots, each a histogram covering a fixed slice of time on the collector's clock
//! (the 1-minute window: 6 slots of 10 s; the 5-minute window: 10 slots of 30 s). Recording goes to the
//! slot of the current slice; a slot whose slice has passed is emptied the first time it is reused. A
//! window's view merges the slots of the slices it covers, so it moves in steps of one slot. Memory is
//! bounded by the slot count, whatever the traffic.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::histogram::{HistogramCell, HistogramSnapshot};

/// The time a window spans, in slots of one width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) slots: usize,
    pub(crate) slot: Duration,
}

impl Span {
    /// The last minute, in 10-second slots.
    pub(crate) const MINUTE: Span = Span { slots: 6, slot: Duration::from_secs(10) };
    /// The last five minutes, in 30-second slots.
    pub(crate) const FIVE_MINUTES: Span = Span { slots: 10, slot: Duration::from_secs(30) };

    pub(crate) fn length(self) -> Duration {
        self.slot * self.slots as u32
    }
}

#[derive(Debug, Default)]
struct Slot {
    /// The slice this slot holds, plus one (0: never used).
    slice: AtomicU64,
    histogram: HistogramCell,
}

/// A histogram over a sliding window.
#[derive(Debug)]
pub(crate) struct Window {
    span: Span,
    slots: Box<[Slot]>,
    /// Serialises the emptying of a reused slot.
    rotation: Mutex<()>,
}

impl Window {
    pub(crate) fn new(span: Span) -> Self {
        Window { span, slots: (0..span.slots).map(|_| Slot::default()).collect(), rotation: Mutex::new(()) }
    }

    fn slice(&self, elapsed: Duration) -> u64 {
        (elapsed.as_nanos() / self.span.slot.as_nanos().max(1)) as u64
    }

    /// Records `value` at `elapsed` (time since the collector started, on its clock).
    pub(crate) fn record(&self, elapsed: Duration, value: f64) {
        let slice = self.slice(elapsed);
        let slot = &self.slots[(slice % self.slots.len() as u64) as usize];
        if slot.slice.load(Ordering::Acquire) != slice + 1 {
            let _rotation = self.rotation.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if slot.slice.load(Ordering::Acquire) != slice + 1 {
                slot.histogram.reset();
                slot.slice.store(slice + 1, Ordering::Release);
            }
        }
        slot.histogram.record(value);
    }

    /// What the window holds at `elapsed`: the slots of the last `span.slots` slices.
    pub(crate) fn view(&self, elapsed: Duration) -> HistogramSnapshot {
        let now = self.slice(elapsed);
        let oldest = now.saturating_sub(self.slots.len() as u64 - 1);
        let mut merged = HistogramSnapshot::default();
        for slot in self.slots.iter() {
            let slice = slot.slice.load(Ordering::Acquire);
            if slice != 0 && (oldest..=now).contains(&(slice - 1)) {
                merged.merge(&slot.histogram.snapshot());
            }
        }
        merged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_slices_leave_the_window() {
        let window = Window::new(Span::MINUTE);
        let at = Duration::from_secs;
        window.record(at(1), 1.0);
        window.record(at(15), 2.0);
        window.record(at(59), 3.0);
        assert_eq!(window.view(at(59)).count, 3);
        // At 65 s the slice of 0..10 s has left the window.
        assert_eq!(window.view(at(65)).count, 2);
        // Reusing its slot empties it first.
        window.record(at(61), 4.0);
        let view = window.view(at(61));
        assert_eq!((view.count, view.min, view.max), (3, 2.0, 4.0));
        assert_eq!(window.view(at(200)).count, 0);
        assert_eq!(window.span.length(), at(60));
    }
}

/// A transaction name's windows: all transactions and the failed ones, over one and five minutes.
#[derive(Debug)]
pub(crate) struct TransactionWindows {
    all: [Window; 2],
    errors: [Window; 2],
}

impl Default for TransactionWindows {
    fn default() -> Self {
        TransactionWindows {
            all: [Window::new(Span::MINUTE), Window::new(Span::FIVE_MINUTES)],
            errors: [Window::new(Span::MINUTE), Window::new(Span::FIVE_MINUTES)],
        }
    }
}

impl TransactionWindows {
    pub(crate) fn record(&self, elapsed: Duration, seconds: f64, ok: bool) {
        for window in &self.all {
            window.record(elapsed, seconds);
        }
        if !ok {
            for window in &self.errors {
                window.record(elapsed, seconds);
            }
        }
    }

    /// (all, failed) over the window of `span`.
    pub(crate) fn views(
        &self,
        window: crate::sla::SlaWindow,
        elapsed: Duration,
    ) -> (HistogramSnapshot, HistogramSnapshot) {
        let index = usize::from(window == crate::sla::SlaWindow::FiveMinutes);
        (self.all[index].view(elapsed), self.errors[index].view(elapsed))
    }
}

/// A histogram's windows, for [`crate::Collector::windowed_histogram`].
#[derive(Debug)]
pub(crate) struct HistogramWindows {
    pub(crate) minute: Window,
    pub(crate) five_minutes: Window,
}

impl Default for HistogramWindows {
    fn default() -> Self {
        HistogramWindows { minute: Window::new(Span::MINUTE), five_minutes: Window::new(Span::FIVE_MINUTES) }
    }
}
