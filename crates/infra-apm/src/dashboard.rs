//! Dashboard data (the seed's `get_all_metrics`): a serde-serializable snapshot of everything, and a
//! bounded ring of past snapshots for charts.

use std::collections::VecDeque;
use std::sync::Arc;

use serde::Serialize;

use crate::collector::{Cell, Collector, lock};
use crate::histogram::HistogramStats;
use crate::sla::Sla;
use crate::transaction::TransactionStats;

/// Past snapshots kept by default.
pub const DEFAULT_HISTORY: usize = 60;

/// One series' value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesValue<T> {
    /// The metric name.
    pub name: String,
    /// Its labels, sorted by name (`overflow=true` for the cardinality overflow series).
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: T,
}

/// One objective and whether it was breached at its last evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlaSummary {
    /// The transaction name.
    pub transaction: String,
    /// The objective.
    pub sla: Sla,
    /// Breached at the last evaluation.
    pub breached: bool,
}

/// Everything the collector holds, at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dashboard {
    /// The service name.
    pub service: String,
    /// Seconds since the collector was built, on its clock.
    pub at_seconds: f64,
    /// Counter series.
    pub counters: Vec<SeriesValue<u64>>,
    /// Gauge series.
    pub gauges: Vec<SeriesValue<f64>>,
    /// Histogram series, summarised.
    pub histograms: Vec<SeriesValue<HistogramStats>>,
    /// Transactions by name.
    pub transactions: Vec<(String, TransactionStats)>,
    /// Objectives.
    pub slas: Vec<SlaSummary>,
}

impl Collector {
    /// A snapshot of everything (the seed's `get_all_metrics`).
    pub fn dashboard(&self) -> Dashboard {
        let mut counters = Vec::new();
        let mut gauges = Vec::new();
        let mut histograms = Vec::new();
        for (name, family) in self.families().iter() {
            let overflow =
                family.overflow.as_ref().map(|cell| (vec![("overflow".to_owned(), "true".to_owned())], cell));
            for (labels, cell) in family.series.iter().map(|(labels, cell)| (labels.clone(), cell)).chain(overflow) {
                let name = name.clone();
                match cell {
                    Cell::Counter(counter) => counters.push(SeriesValue { name, labels, value: counter.value() }),
                    Cell::Gauge(gauge) => gauges.push(SeriesValue { name, labels, value: gauge.value() }),
                    Cell::Histogram(histogram) => {
                        histograms.push(SeriesValue { name, labels, value: histogram.snapshot().stats() });
                    }
                }
            }
        }
        let mut names: Vec<String> = lock(&self.inner.windows).keys().cloned().collect();
        names.sort();
        let transactions =
            names.into_iter().filter_map(|name| self.transaction_stats(&name).map(|stats| (name, stats))).collect();
        let slas = self
            .slas()
            .iter()
            .map(|tracked| SlaSummary {
                transaction: tracked.transaction.clone(),
                sla: tracked.sla,
                breached: tracked.breached,
            })
            .collect();
        Dashboard {
            service: self.service().to_owned(),
            at_seconds: self.elapsed().as_secs_f64(),
            counters,
            gauges,
            histograms,
            transactions,
            slas,
        }
    }

    /// Takes a snapshot and keeps it in the ring of past ones (the flush thread does this every flush
    /// interval); the oldest is dropped beyond the ring's capacity.
    pub fn record_dashboard(&self) -> Arc<Dashboard> {
        let snapshot = Arc::new(self.dashboard());
        let mut history = lock(&self.inner.history);
        if self.inner.history_capacity > 0 {
            if history.len() == self.inner.history_capacity {
                history.pop_front();
            }
            history.push_back(Arc::clone(&snapshot));
        }
        snapshot
    }

    /// The kept snapshots, oldest first.
    pub fn history(&self) -> Vec<Arc<Dashboard>> {
        lock(&self.inner.history).iter().cloned().collect()
    }
}

/// The ring of past snapshots.
pub(crate) type History = VecDeque<Arc<Dashboard>>;
